"""Request/reply over one os-ken datapath: bundles, barriers, flow and port dumps.

os-ken delivers replies as events to the app's handlers; a caller that waits for them must not
be that handler thread. So the os-ken app only *resolves* pending requests here
(``on_error`` / ``on_reply``), and the flow engine's worker threads block in ``bundle()`` or
``dump_flows()``. xids come from our own counter (top half of the 32-bit space) so they never
collide with the ones os-ken picks for echo and features requests.
"""
from __future__ import annotations

import itertools
import logging
import threading

LOG = logging.getLogger(__name__)

XID_BASE = 0x80000000


class LinkError(RuntimeError):
    """The switch refused a request, or did not answer in time, or the connection is gone."""


class _Pending:
    def __init__(self, what: str):
        self.what = what
        self.done = threading.Event()
        self.errors: list = []
        self.body: list = []


class DatapathLink:
    def __init__(self, datapath, timeout: float = 30.0):
        self.dp = datapath
        self.ofp = datapath.ofproto
        self.parser = datapath.ofproto_parser
        self.timeout = timeout
        self._xids = itertools.count(1)
        self._bundle_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self.closed = False

    # --- sending ---------------------------------------------------------------------------
    def _send(self, msg, pending: _Pending | None = None) -> int:
        with self._lock:
            xid = XID_BASE | (next(self._xids) & 0x7FFFFFFF)
            msg.set_xid(xid)
            if pending is not None:
                self._pending[xid] = pending
        if self.closed or not self.dp.send_msg(msg):
            self.closed = True
            raise LinkError(f"{self.what()}: connection closed")
        return xid

    def _wait(self, pending: _Pending, xids: list[int], timeout: float | None = None) -> _Pending:
        try:
            if not pending.done.wait(timeout or self.timeout):
                raise LinkError(f"{self.what()}: no answer to {pending.what} within {timeout or self.timeout}s")
            if self.closed and not pending.body and not pending.errors:
                raise LinkError(f"{self.what()}: connection closed during {pending.what}")
            return pending
        finally:
            with self._lock:
                for xid in xids:
                    self._pending.pop(xid, None)

    def what(self) -> str:
        return f"datapath {self.dp.id:016x}" if self.dp.id is not None else "datapath ?"

    def barrier(self, timeout: float | None = None) -> None:
        pending = _Pending("barrier")
        xid = self._send(self.parser.OFPBarrierRequest(self.dp), pending)
        self._wait(pending, [xid], timeout)

    def bundle(self, messages: list, timeout: float | None = None) -> None:
        """Send ``messages`` as one atomic, ordered ONF bundle (OpenFlow 1.3 extension) and wait
        until the switch committed it. Raises LinkError (with the switch's errors) otherwise."""
        ofp, parser = self.ofp, self.parser
        flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
        bundle_id = next(self._bundle_ids) & 0xFFFFFFFF
        pending = _Pending(f"bundle {bundle_id} ({len(messages)} messages)")
        xids = [self._send(parser.ONFBundleCtrlMsg(self.dp, bundle_id, ofp.ONF_BCT_OPEN_REQUEST, flags, []),
                           pending)]
        for msg in messages:
            xids.append(self._send(parser.ONFBundleAddMsg(self.dp, bundle_id, flags, msg, []), pending))
        xids.append(self._send(parser.ONFBundleCtrlMsg(self.dp, bundle_id, ofp.ONF_BCT_COMMIT_REQUEST, flags, []),
                               pending))
        # Errors for any message precede the reply to a later barrier.
        barrier = self._send(parser.OFPBarrierRequest(self.dp), pending)
        xids.append(barrier)
        pending.barrier_xid = barrier
        self._wait(pending, xids, timeout)
        if pending.errors:
            raise LinkError(f"{self.what()}: {pending.what} refused: " + "; ".join(pending.errors[:5]))

    def dump_flows(self, timeout: float | None = None) -> list:
        """Every flow of every table (OFPFlowStats entries)."""
        parser, ofp = self.parser, self.ofp
        pending = _Pending("flow dump")
        req = parser.OFPFlowStatsRequest(self.dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0,
                                         parser.OFPMatch())
        xid = self._send(req, pending)
        self._wait(pending, [xid], timeout)
        if pending.errors:
            raise LinkError(f"{self.what()}: flow dump refused: {pending.errors[0]}")
        return pending.body

    def port_desc(self, timeout: float | None = None) -> dict[str, int]:
        """Port name -> ofport for every port of the bridge (LOCAL included)."""
        pending = _Pending("port description")
        xid = self._send(self.parser.OFPPortDescStatsRequest(self.dp, 0), pending)
        self._wait(pending, [xid], timeout)
        return {p.name.decode() if isinstance(p.name, bytes) else p.name: p.port_no for p in pending.body}

    def send(self, msg) -> None:
        """Fire and forget (no reply expected)."""
        self._send(msg)

    # --- replies (called from os-ken's handler thread; must never block or raise) ------------
    def on_error(self, msg) -> bool:
        with self._lock:
            pending = self._pending.get(msg.xid)
        if pending is None:
            return False
        pending.errors.append(f"type={msg.type} code={msg.code}")
        return True

    def on_reply(self, msg, more: bool = False) -> bool:
        with self._lock:
            pending = self._pending.get(msg.xid)
        if pending is None:
            return False
        body = getattr(msg, "body", None)
        if isinstance(body, list):
            pending.body.extend(body)
        if not more and (getattr(pending, "barrier_xid", None) in (None, msg.xid)):
            pending.done.set()
        return True

    def close(self) -> None:
        self.closed = True
        with self._lock:
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.done.set()
