"""Request/reply over one os-ken datapath: bundles, barriers, flow, group and port dumps.

os-ken delivers replies as events to the app's handlers; a caller that waits for them must not
be that handler thread. So the os-ken app only *resolves* pending requests here
(``on_error`` / ``on_reply``), and the flow engine's worker threads block in ``bundle()`` or
``dump_flows()``. xids come from our own counter (top half of the 32-bit space) so they never
collide with the ones os-ken picks for echo and features requests.

Bundles go out as bytes: each message (pre-encoded bytes such as ``ofencode.encode_flow_mod``, or
an os-ken message object, serialised here) gets its xid and its ONF bundle-add header, and the
stream (open, adds, commit, barrier) is handed to os-ken in chunks of about ``CHUNK`` bytes with
``Datapath.send(bytes)``. That is os-ken's own send path (``send_msg`` serialises and then calls
it): it puts the buffer on the datapath's send queue (a thread-safe queue, bounded, so a fast
producer waits for the socket), and its one send thread writes each buffer whole with
``sendall``, in order. A chunk holds whole messages only, so nothing another thread sends
(echo requests, a dump) can land inside a message. Every xid of a chunk is registered before the
chunk is queued, so an error for any bundled message, and the barrier reply that follows all of
them, find their request.
"""
from __future__ import annotations

import itertools
import logging
import os
import struct
import threading
from collections.abc import Iterable

from os_ken.ofproto import ofproto_common
from os_ken.ofproto import ofproto_v1_3 as _OFP13
from os_ken.ofproto import ofproto_v1_3_parser as _PARSER13

LOG = logging.getLogger(__name__)

XID_BASE = 0x80000000
CHUNK = 256 * 1024                          # bytes per Datapath.send of a bundle

_HEADER = struct.Struct("!BBHI")            # ofp_header: version, type, length, xid
_XID = struct.Struct("!I")
_BUNDLE_ADD = struct.Struct("!BBHIIII2xH")  # ofp_header, ONF experimenter + type, bundle_id, pad, flags
_BUNDLE_ADD_SIZE = _BUNDLE_ADD.size         # 24: the bundled message follows
_MULTIPART_REPLY_SIZE = 16                  # ofp_header + type, flags, pad


class LinkError(RuntimeError):
    """The switch refused a request, or did not answer in time, or the connection is gone."""


class _Pending:
    def __init__(self, what: str, raw: bool = False):
        self.what = what
        self.done = threading.Event()
        self.errors: list = []
        self.codes: list[tuple[int, int]] = []            # (type, code) of each error, as errors
        self.body: list = []
        self.barrier_xid = None
        self.replies: list | None = [] if raw else None   # (raw message bytes, its parsed body)


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
    def _next_xid(self) -> int:
        return XID_BASE | (next(self._xids) & 0x7FFFFFFF)

    def _send(self, msg, pending: _Pending | None = None) -> int:
        """Send one message: an os-ken message object, or the bytes of a complete message (its
        xid field is replaced)."""
        raw = isinstance(msg, (bytes, bytearray, memoryview))
        if raw:
            msg = bytes(msg)
            _check_length(msg)
        with self._lock:
            xid = self._next_xid()
            if pending is not None:
                self._pending[xid] = pending
        try:
            if raw:
                ok = not self.closed and self.dp.send(msg[:4] + _XID.pack(xid) + msg[8:])
            else:
                msg.set_xid(xid)
                ok = not self.closed and self.dp.send_msg(msg)
        except BaseException:
            self._forget([xid])
            raise
        if not ok:
            self.closed = True
            self._forget([xid])
            raise LinkError(f"{self.what()}: connection closed")
        return xid

    @staticmethod
    def _with_xid(msg, xid: int) -> bytes:
        msg = bytes(msg)
        _check_length(msg)
        return msg[:4] + _XID.pack(xid) + msg[8:]

    def _wait(self, pending: _Pending, xids: Iterable[int], timeout: float | None = None) -> _Pending:
        try:
            if not pending.done.wait(timeout or self.timeout):
                raise LinkError(f"{self.what()}: no answer to {pending.what} within {timeout or self.timeout}s")
            if self.closed and not pending.body and not pending.errors:
                raise LinkError(f"{self.what()}: connection closed during {pending.what}")
            return pending
        finally:
            self._forget(xids)

    def _forget(self, xids: Iterable[int]) -> None:
        with self._lock:
            pop = self._pending.pop
            for xid in xids:
                pop(xid, None)

    def what(self) -> str:
        return f"datapath {self.dp.id:016x}" if self.dp.id is not None else "datapath ?"

    def barrier(self, timeout: float | None = None) -> None:
        pending = _Pending("barrier")
        xid = self._send(self.parser.OFPBarrierRequest(self.dp), pending)
        self._wait(pending, [xid], timeout)

    def _serialized(self, msg, xid: int) -> bytes:
        """The bytes of ``msg`` (bytes of a complete message, or an os-ken message) with ``xid``."""
        if isinstance(msg, (bytes, bytearray, memoryview)):
            return self._with_xid(msg, xid)
        msg.xid = None
        msg.set_xid(xid)
        msg.serialize()
        return bytes(msg.buf)

    def bundle(self, messages: Iterable, timeout: float | None = None, meanwhile=None) -> None:
        """Send ``messages`` as one atomic, ordered ONF bundle (OpenFlow 1.3 extension) and wait
        until the switch committed it. Raises LinkError (with the switch's errors) otherwise.

        Each message is the bytes of a complete OpenFlow message (``ofencode.encode_flow_mod``;
        its xid is replaced) or an os-ken message object. ``messages`` may be any iterable, e.g.
        a generator that encodes while earlier chunks are on their way; if it raises, the
        bundle is discarded on the switch and the exception propagates. ``meanwhile``, if
        given, is called once everything is queued, before waiting for the switch (work that
        needs no answer, e.g. preparing caches to adopt after the commit); if it raises, the
        bundle still completes (or fails) first, then its exception propagates."""
        ofp, parser = self.ofp, self.parser
        flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
        bundle_id = next(self._bundle_ids) & 0xFFFFFFFF
        pending = _Pending(f"bundle {bundle_id}")
        xids: list[int] = []
        pack, with_xid, counter = _BUNDLE_ADD.pack, _XID.pack, self._xids
        version, experimenter = ofp.OFP_VERSION, ofp.OFPT_EXPERIMENTER
        onf, add_type = ofproto_common.ONF_EXPERIMENTER_ID, ofp.ONF_ET_BUNDLE_ADD_MESSAGE
        lock, registry = self._lock, self._pending
        opened = committed = False
        count = 0
        try:
            with lock:
                xid = self._next_xid()
                registry[xid] = pending
            xids.append(xid)
            parts = [self._serialized(parser.ONFBundleCtrlMsg(self.dp, bundle_id, ofp.ONF_BCT_OPEN_REQUEST,
                                                              flags, []), xid)]
            size, first = len(parts[0]), 0
            for msg in messages:
                if type(msg) is bytes:
                    length = len(msg)
                    if length < 8 or (msg[2] << 8 | msg[3]) != length:
                        _check_length(msg)   # raises
                    xid = XID_BASE | (next(counter) & 0x7FFFFFFF)   # itertools.count: atomic
                    xids.append(xid)
                    parts += (pack(version, experimenter, _BUNDLE_ADD_SIZE + length, xid, onf, add_type,
                                   bundle_id, flags), msg[:4], with_xid(xid), msg[8:])
                    size += _BUNDLE_ADD_SIZE + length
                else:
                    with lock:
                        xid = self._next_xid()
                    xids.append(xid)
                    inner = self._serialized(msg, xid)
                    parts += (pack(version, experimenter, _BUNDLE_ADD_SIZE + len(inner), xid, onf, add_type,
                                   bundle_id, flags), inner)
                    size += _BUNDLE_ADD_SIZE + len(inner)
                count += 1
                if size >= CHUNK:
                    self._send_chunk(parts, pending, xids, first)
                    opened = True
                    parts, size, first = [], 0, len(xids)
            with lock:
                commit, barrier = self._next_xid(), self._next_xid()
            xids += (commit, barrier)
            pending.barrier_xid = barrier
            parts.append(self._serialized(parser.ONFBundleCtrlMsg(self.dp, bundle_id, ofp.ONF_BCT_COMMIT_REQUEST,
                                                                  flags, []), commit))
            parts.append(self._serialized(parser.OFPBarrierRequest(self.dp), barrier))
            pending.what = f"bundle {bundle_id} ({count} messages)"
            self._send_chunk(parts, pending, xids, first)
            opened = committed = True
        except BaseException:
            if opened and not committed and not self.closed:
                self._discard(bundle_id, flags)
            self._forget(xids)
            raise
        failure = None
        if meanwhile is not None:
            try:
                meanwhile()
            except BaseException as exc:  # noqa: BLE001 - after the bundle's own outcome
                failure = exc
        self._wait(pending, xids, timeout)
        if pending.errors:
            raise LinkError(f"{self.what()}: {pending.what} refused: " + "; ".join(pending.errors[:5]))
        if failure is not None:
            raise failure

    def _send_chunk(self, parts: list, pending: _Pending, xids: list[int], first: int) -> None:
        """Register xids[first:] for ``pending`` and queue ``parts`` as one buffer."""
        with self._lock:
            for xid in xids[first:]:
                self._pending[xid] = pending
        if self.closed or not self.dp.send(b"".join(parts)):
            self.closed = True
            raise LinkError(f"{self.what()}: connection closed")

    def _discard(self, bundle_id: int, flags: int) -> None:
        """Best effort: drop a bundle we opened but will not commit (its errors are ignored)."""
        try:
            self._send(self.parser.ONFBundleCtrlMsg(self.dp, bundle_id, self.ofp.ONF_BCT_DISCARD_REQUEST,
                                                    flags, []))
        except Exception as exc:  # noqa: BLE001 - the connection is going: the switch drops it then
            LOG.debug("%s: cannot discard bundle %d: %s", self.what(), bundle_id, exc)

    def dump_flows(self, timeout: float | None = None, raw: bool = False, slices: int = 1) -> list:
        """Every flow of every table (OFPFlowStats entries). With ``raw=True``: a list of
        ``(entry, raw)`` pairs, ``raw`` being the entry's bytes as the switch sent them (an
        ofp_flow_stats: ``ofcompare.entry_identity`` reads it), or None if they could not be told
        apart (never seen; callers then use the parsed entry).

        ``slices`` (a power of two) splits the dump into that many requests, each for the flows
        whose cookie's low bits are its number (every cookie is in exactly one slice). os-ken's
        receive thread reads nothing else from the switch until it has parsed a reply, so an
        echo request from the switch waits behind it, and OVS drops a controller that does not
        answer its inactivity probe within 5 s: with os-ken's own (eager) entry parser, ~0.1 ms
        a flow, a 50,000-flow reply takes longer than that, so the slices are then requested one
        after the other. With the lazy entries below (the default) parsing is cheap and they are
        requested back to back. The slices are not one snapshot: a flow that changes between two
        of them may be seen twice or not at all."""
        if slices < 1 or slices & (slices - 1):
            raise ValueError(f"slices must be a power of two, not {slices}")
        parser, ofp = self.parser, self.ofp
        back_to_back = lazy_flow_stats()
        requests: list[tuple[_Pending, int]] = []
        out: list = []
        try:
            for i in range(slices):
                pending = _Pending("flow dump" if slices == 1 else f"flow dump {i + 1}/{slices}", raw=raw)
                req = parser.OFPFlowStatsRequest(self.dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                                 i, slices - 1, parser.OFPMatch())
                requests.append((pending, self._send(req, pending)))
                if not back_to_back:
                    self._collect(requests[-1], out, raw, timeout)
            if back_to_back:
                for request in requests:
                    self._collect(request, out, raw, timeout)
        finally:
            self._forget([xid for _, xid in requests])
        return out

    def _collect(self, request: tuple[_Pending, int], out: list, raw: bool, timeout: float | None) -> None:
        pending, xid = request
        self._wait(pending, [xid], timeout)
        if pending.errors:
            raise LinkError(f"{self.what()}: {pending.what} refused: {pending.errors[0]}")
        if not raw:
            out += pending.body
        else:
            out += [pair for buf, body in pending.replies for pair in _split_entries(buf, body)]

    def port_desc(self, timeout: float | None = None) -> dict[str, int]:
        """Port name -> ofport for every port of the bridge (LOCAL included)."""
        pending = _Pending("port description")
        xid = self._send(self.parser.OFPPortDescStatsRequest(self.dp, 0), pending)
        self._wait(pending, [xid], timeout)
        return {p.name.decode() if isinstance(p.name, bytes) else p.name: p.port_no for p in pending.body}

    def dump_groups(self, timeout: float | None = None) -> list:
        """Every group of the bridge (``OFPGroupDescStats`` entries: group_id, type, buckets)."""
        pending = _Pending("group description")
        xid = self._send(self.parser.OFPGroupDescStatsRequest(self.dp, 0), pending)
        self._wait(pending, [xid], timeout)
        if pending.errors:
            raise LinkError(f"{self.what()}: {pending.what} refused: {pending.errors[0]}")
        return list(pending.body)

    def send(self, msg) -> None:
        """Fire and forget (no reply expected): an os-ken message or a complete message's bytes."""
        self._send(msg)

    def send_checked(self, messages: Iterable, timeout: float | None = None) -> list[list[tuple[int, int]]]:
        """Send ``messages`` (ones the switch answers only with an error, e.g. meter or group
        mods: os-ken messages or complete messages' bytes) one by one, then a barrier, and wait
        for its reply. Returns, per message, the errors ``(type, code)`` the switch sent for it
        (empty: done). The switch handles them in order and answers the barrier after them all,
        so every error has arrived by then. Raises LinkError if the barrier is not answered."""
        messages = list(messages)
        each = [_Pending(f"message {i + 1}/{len(messages)}") for i in range(len(messages))]
        barrier = _Pending(f"barrier after {len(messages)} messages")
        xids: list[int] = []
        try:
            for msg, pending in zip(messages, each):
                xids.append(self._send(msg, pending))
            xids.append(self._send(self.parser.OFPBarrierRequest(self.dp), barrier))
        except BaseException:
            self._forget(xids)
            raise
        self._wait(barrier, xids, timeout)
        return [list(p.codes) for p in each]

    # --- replies (called from os-ken's handler thread; must never block or raise) ------------
    def on_error(self, msg) -> bool:
        with self._lock:
            pending = self._pending.get(msg.xid)
        if pending is None:
            return False
        pending.errors.append(f"type={msg.type} code={msg.code}")
        pending.codes.append((msg.type, msg.code))
        return True

    def on_reply(self, msg, more: bool = False) -> bool:
        with self._lock:
            pending = self._pending.get(msg.xid)
        if pending is None:
            return False
        body = getattr(msg, "body", None)
        if isinstance(body, list):
            pending.body.extend(body)
            if pending.replies is not None:
                pending.replies.append((getattr(msg, "buf", None), body))
        if not more and pending.barrier_xid in (None, msg.xid):
            pending.done.set()
        return True

    def close(self) -> None:
        self.closed = True
        with self._lock:
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.done.set()


def _check_length(msg: bytes) -> int:
    """The length of a complete OpenFlow message (its header must say so)."""
    if len(msg) < 8 or _HEADER.unpack_from(msg, 0)[2] != len(msg):
        raise ValueError(f"not one complete OpenFlow message ({len(msg)} bytes)")
    return len(msg)


# --- flow-stats entries parsed on first use ---------------------------------------------------
# os-ken parses every entry of a flow-stats reply into OFPMatch/instruction/action objects in its
# receive thread (~0.1-0.2 ms a flow: 5-10 s of CPU for a 50,000-flow dump, during which it reads
# nothing else from that switch). An audit needs none of it: it reads the entries' bytes
# (``ofcompare.entry_identity``). So the reply's body class is replaced, once per process, by a
# subclass of os-ken's OFPFlowStats that unpacks only the fixed fields (table, priority, cookie,
# counters...) and keeps the entry's bytes (``raw``); ``match`` and ``instructions`` are parsed by
# os-ken's own OFPFlowStats.parser the first time anything reads them (str() and to_jsondict()
# included), so every other reader sees exactly what it saw before. VPCNET_EAGER_FLOW_STATS=1 in
# the environment keeps os-ken's eager parser.
_FLOW_STATS_FIXED = struct.Struct(_OFP13.OFP_FLOW_STATS_0_PACK_STR)


class OFPFlowStats(_PARSER13.OFPFlowStats):
    """os-ken's OFPFlowStats, with ``match`` and ``instructions`` parsed on first use."""

    @classmethod
    def parser(cls, buf, offset):
        e = object.__new__(cls)
        (e.length, e.table_id, e.duration_sec, e.duration_nsec, e.priority, e.idle_timeout,
         e.hard_timeout, e.flags, e.cookie, e.packet_count, e.byte_count) = _FLOW_STATS_FIXED.unpack_from(buf, offset)
        e.raw = bytes(buf[offset:offset + e.length])
        return e

    def _parse(self) -> None:
        d = self.__dict__
        if "instructions" not in d:
            full = _PARSER13.OFPFlowStats.parser(d["raw"], 0)
            d.setdefault("match", full.match)
            d.setdefault("instructions", full.instructions)

    def __getattr__(self, name):
        if name in ("match", "instructions") and "raw" in self.__dict__:
            self._parse()
            return self.__dict__[name]
        raise AttributeError(name)

    def stringify_attrs(self):
        self._parse()
        return (kv for kv in super().stringify_attrs() if kv[0] != "raw")


def lazy_flow_stats() -> bool:
    """Do os-ken's flow-stats replies carry the lazy ``OFPFlowStats`` above?"""
    return getattr(getattr(_PARSER13, "OFPFlowStatsReply", None), "cls_stats_body_cls", None) is OFPFlowStats


def use_lazy_flow_stats(enable: bool = True) -> bool:
    """Make os-ken's OpenFlow 1.3 flow-stats replies carry ``OFPFlowStats`` above (or, with
    ``enable=False``, os-ken's own class again). Returns whether the lazy class is in use."""
    reply = getattr(_PARSER13, "OFPFlowStatsReply", None)
    if reply is None or getattr(reply, "cls_stats_body_cls", None) not in (_PARSER13.OFPFlowStats, OFPFlowStats):
        return False    # not the os-ken this was written for: leave it alone
    reply.cls_stats_body_cls = OFPFlowStats if enable else _PARSER13.OFPFlowStats
    return enable


use_lazy_flow_stats(os.environ.get("VPCNET_EAGER_FLOW_STATS", "") in ("", "0"))


def _split_entries(buf, body: list) -> list[tuple]:
    """Pair each parsed entry of one flow-stats reply with its bytes in the reply."""
    if body and all("raw" in getattr(e, "__dict__", ()) for e in body):
        return [(e, e.raw) for e in body]
    if buf is None:
        return [(e, None) for e in body]
    out, off, end = [], _MULTIPART_REPLY_SIZE, len(buf)
    view = memoryview(buf)
    for e in body:
        length = int.from_bytes(view[off:off + 2], "big") if off + 2 <= end else 0
        if length < 48 or off + length > end or getattr(e, "length", length) != length:
            return out + [(x, None) for x in body[len(out):]]
        out.append((e, bytes(view[off:off + length])))
        off += length
    return out
