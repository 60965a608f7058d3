"""A real os-ken app for tests/functional/test_ofwire_ovs.py (run in its own process, since
os-ken's cfg.CONF can be parsed once per process):

    python -m tests.functional.ofwire_probe_app PORT

Listens on 127.0.0.1:PORT and serves two kinds of bridge:

* datapath id ``WIRE_DPID``: installs, through ``vpcnet.app.ofwire`` os-ken objects, the groups
  and meters of ``ofwire_cases`` and then every flow of ``ofwire_cases.switch_flows()`` in one
  atomic ONF bundle, then dumps the flows (OFPFlowStatsRequest, multipart) and prints one line
  ``RESULT {json}``: per desired flow whether its key is installed and whether the read-back
  signature equals ``desired_signature``, plus the installed flows nobody asked for, every
  OpenFlow error, and every dumped entry whose raw-bytes identity (``ofcompare.entry_identity``)
  differs from os-ken's parse of it (``stats_key``/``stats_signature``). Each stdin line
  ``dump`` prints another RESULT of this kind.
* datapath id ``RECONCILER_DPID``: the controller's own path: the same groups and meters, then a
  ``DatapathLink`` (bundles as byte chunks) and a ``Reconciler`` that resyncs ``switch_owner_flows()`` (round 1) and audits;
  RESULT ``{"kind": "reconciler", "drift": {...}}``. Each stdin line ``audit`` runs
  ``Reconciler.audit()`` again and prints its drift.

``quit`` (or EOF) exits.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback

from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.base import app_manager
from os_ken.ofproto import ofproto_v1_3

from tests.unit.app.ofwire_cases import ovs_groups, ovs_meters, switch_flows, switch_owner_flows
from vpcnet.app import ofcompare, oflink, ofwire
from vpcnet.flows.render import render_flow_for_ofctl

TIMEOUT = 15.0
BUNDLE_ID = 7
BOTH = [CONFIG_DISPATCHER, MAIN_DISPATCHER]
WIRE_DPID = 0x1
RECONCILER_DPID = 0x4


def emit(payload: dict) -> None:
    sys.stdout.write("RESULT " + json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


class OfwireProbe(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.replies: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.entries: list = []
        self.raw_replies: list = []
        self.started: set[int] = set()
        self.wire_dp = None
        self.link = None          # the reconciler bridge's DatapathLink
        self.rec = None
        self.ready = threading.Event()
        threading.Thread(target=self._commands, daemon=True).start()

    def _ours(self, ev) -> bool:
        """Is this event for the reconciler bridge's link (which then gets it)?"""
        return self.link is not None and ev.msg.datapath is self.link.dp

    # --- os-ken handlers (run on os-ken's threads) ---
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        if dp.id in self.started:
            return
        self.started.add(dp.id)
        if dp.id == RECONCILER_DPID:
            self.link = oflink.DatapathLink(dp, TIMEOUT)
            threading.Thread(target=self._reconciler_main, daemon=True).start()
        else:
            self.wire_dp = dp
            threading.Thread(target=self._main, args=(dp,), daemon=True).start()

    @set_ev_cls(ofp_event.EventOFPErrorMsg, BOTH)
    def _error(self, ev):
        m = ev.msg
        self.errors.append(f"type={m.type} code={m.code} data={bytes(m.data)[:64].hex()}")
        if self._ours(ev):
            self.link.on_error(m)
        else:
            self.replies.put(("error", m.xid))

    @set_ev_cls(ofp_event.EventONFBundleCtrlMsg, BOTH)
    def _bundle(self, ev):
        if not self._ours(ev):
            self.replies.put(("bundle", ev.msg.type))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, BOTH)
    def _barrier(self, ev):
        if self._ours(ev):
            self.link.on_reply(ev.msg)
        else:
            self.replies.put(("barrier", ev.msg.xid))

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, BOTH)
    def _group_desc(self, ev):      # Reconciler.resync/audit dump the groups (DatapathLink.dump_groups)
        if self._ours(ev):
            self.link.on_reply(ev.msg, bool(ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, BOTH)
    def _flow_stats(self, ev):
        more = bool(ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        if self._ours(ev):
            self.link.on_reply(ev.msg, more)
            return
        self.entries.extend(ev.msg.body)
        self.raw_replies.append((ev.msg.buf, ev.msg.body))
        if not more:
            self.replies.put(("stats", None))

    # --- the Wire probe (its own thread) ---
    def _wait(self, kind: str, value=None):
        while True:
            got, got_value = self.replies.get(timeout=TIMEOUT)
            if got == "error":
                raise RuntimeError(f"switch error while waiting for {kind}: {self.errors[-1]}")
            if got == kind and (value is None or got_value == value):
                return got_value

    def _barrier_sync(self, dp):
        req = dp.ofproto_parser.OFPBarrierRequest(dp)
        dp.set_xid(req)
        dp.send_msg(req)
        self._wait("barrier", req.xid)

    def _install(self, dp, wire: ofwire.Wire, flows) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        for g in ovs_groups():
            dp.send_msg(wire.group_mod(g, "add"))
        for m in ovs_meters():
            dp.send_msg(wire.meter_mod(m, "add"))
        self._barrier_sync(dp)
        dp.send_msg(parser.ONFBundleCtrlMsg(dp, BUNDLE_ID, ofp.ONF_BCT_OPEN_REQUEST, ofp.ONF_BF_ATOMIC, []))
        self._wait("bundle", ofp.ONF_BCT_OPEN_REPLY)
        for f in flows:
            dp.send_msg(parser.ONFBundleAddMsg(dp, BUNDLE_ID, ofp.ONF_BF_ATOMIC, wire.flow_mod(f, "add"), []))
        dp.send_msg(parser.ONFBundleCtrlMsg(dp, BUNDLE_ID, ofp.ONF_BCT_COMMIT_REQUEST, ofp.ONF_BF_ATOMIC, []))
        self._wait("bundle", ofp.ONF_BCT_COMMIT_REPLY)
        self._barrier_sync(dp)

    def _dump(self, dp) -> list:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.entries, self.raw_replies = [], []
        dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0,
                                               parser.OFPMatch()))
        self._wait("stats")
        return list(self.entries)

    def _report(self, dp, flows) -> None:
        entries = self._dump(dp)
        installed = {ofcompare.stats_key(e): ofcompare.stats_signature(e) for e in entries}
        raw_mismatch, n_raw = [], 0
        for buf, body in self.raw_replies:
            for e, raw in oflink._split_entries(buf, body):
                n_raw += raw is not None
                if raw is None or ofcompare.entry_identity(raw) != (ofcompare.stats_key(e), ofcompare.stats_signature(e)):
                    raw_mismatch.append(ofcompare.describe_stats(e))
        results, wanted = [], set()
        for f in flows:
            key, sig = ofcompare.desired_key(f), ofcompare.desired_signature(f)
            wanted.add(key)
            got = installed.get(key)
            item = {"flow": render_flow_for_ofctl(f), "present": got is not None, "equal": got == sig}
            if got is not None and got != sig:
                item["desired"], item["installed"] = repr(sig), repr(got)
            results.append(item)
        extra = [repr(installed[k]) for k in installed if k not in wanted]
        emit({"kind": "wire", "flows": results, "extra": extra, "errors": self.errors,
              "n_installed": len(installed), "n_raw": n_raw, "raw_mismatch": raw_mismatch})

    def _main(self, dp) -> None:
        try:
            flows = switch_flows()
            self._install(dp, ofwire.Wire(dp), flows)
            self._report(dp, flows)
            self.ready.set()
        except Exception:  # noqa: BLE001 - report anything to the test, then exit
            emit({"crash": traceback.format_exc(), "errors": self.errors})
            sys.stdout.flush()
            os._exit(0)

    # --- the reconciler bridge (its own thread) ---
    def _reconciler_main(self) -> None:
        try:
            from vpcnet.app.metrics import Metrics
            from vpcnet.app.reconciler import Reconciler
            wire = ofwire.Wire(self.link.dp)
            for g in ovs_groups():      # the extra flows point at these
                self.link.send(wire.group_mod(g, "add"))
            for m in ovs_meters():
                self.link.send(wire.meter_mod(m, "add"))
            self.link.barrier()
            self.rec = Reconciler("probe", self.link, Metrics())
            self.rec.resync(switch_owner_flows())
            self._audit()
        except Exception:  # noqa: BLE001
            emit({"crash": traceback.format_exc(), "errors": self.errors})
            sys.stdout.flush()
            os._exit(0)

    def _audit(self) -> None:
        drift = self.rec.audit()
        emit({"kind": "reconciler", "round": self.rec.round, "drift": dict(drift), "errors": self.errors})

    # --- stdin ---
    def _commands(self) -> None:
        command_loop({"dump": lambda _: self._report(self.wire_dp, switch_flows()),
                      "audit": lambda _: self._audit()}, self.errors)


def command_loop(handlers: dict, errors: list) -> None:
    """Serve the test's stdin commands ("<name> [arg]" per line; "quit" ends) with
    ``handlers[name](arg)`` until EOF; a crash is reported on stdout; the process then exits."""
    try:
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "quit":
                break
            handler = handlers.get(cmd)
            if handler is not None:
                handler(arg)
    except Exception:  # noqa: BLE001
        emit({"crash": traceback.format_exc(), "errors": errors})
    finally:
        sys.stdout.flush()
        os._exit(0)


def run(module: str) -> None:
    """Run the os-ken app ``module`` with the OpenFlow listener on 127.0.0.1:argv[1]."""
    from os_ken import cfg
    port = sys.argv[1]
    cfg.CONF(args=["--ofp-tcp-listen-port", port, "--ofp-listen-host", "127.0.0.1"], project="os_ken")
    app_manager.AppManager.run_apps([module])


def main() -> None:
    run("tests.functional.ofwire_probe_app")


if __name__ == "__main__":
    main()
