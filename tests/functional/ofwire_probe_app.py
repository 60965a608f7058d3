"""A real os-ken app for tests/functional/test_ofwire_ovs.py (run in its own process, since
os-ken's cfg.CONF can be parsed once per process):

    python -m tests.functional.ofwire_probe_app PORT

Listens on 127.0.0.1:PORT. When the switch connects it installs, through ``vpcnet.app.ofwire``,
the groups and meters of ``ofwire_cases`` and then every flow of ``ofwire_cases.switch_flows()``
in one atomic ONF bundle, then dumps the flows (OFPFlowStatsRequest, multipart) and prints one
line ``RESULT {json}``: per desired flow whether its key is installed and whether the read-back
signature equals ``desired_signature``, plus the installed flows nobody asked for and every
OpenFlow error. Each further stdin line ``dump`` prints another RESULT; ``quit`` (or EOF) exits.
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

from tests.unit.app.ofwire_cases import ovs_groups, ovs_meters, switch_flows
from vpcnet.app import ofwire
from vpcnet.flows.render import render_flow_for_ofctl

TIMEOUT = 15.0
BUNDLE_ID = 7
BOTH = [CONFIG_DISPATCHER, MAIN_DISPATCHER]


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
        self.started = False

    # --- os-ken handlers (run on os-ken's threads) ---
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        if not self.started:
            self.started = True
            threading.Thread(target=self._main, args=(ev.msg.datapath,), daemon=True).start()

    @set_ev_cls(ofp_event.EventOFPErrorMsg, BOTH)
    def _error(self, ev):
        m = ev.msg
        self.errors.append(f"type={m.type} code={m.code} data={bytes(m.data)[:64].hex()}")
        self.replies.put(("error", m.xid))

    @set_ev_cls(ofp_event.EventONFBundleCtrlMsg, BOTH)
    def _bundle(self, ev):
        self.replies.put(("bundle", ev.msg.type))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, BOTH)
    def _barrier(self, ev):
        self.replies.put(("barrier", ev.msg.xid))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, BOTH)
    def _flow_stats(self, ev):
        self.entries.extend(ev.msg.body)
        if not ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE:
            self.replies.put(("stats", None))

    # --- the probe (its own thread) ---
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
        self.entries = []
        dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0,
                                               parser.OFPMatch()))
        self._wait("stats")
        return list(self.entries)

    def _report(self, dp, flows) -> None:
        installed = {ofwire.stats_key(e): ofwire.stats_signature(e) for e in self._dump(dp)}
        results, wanted = [], set()
        for f in flows:
            key, sig = ofwire.desired_key(f), ofwire.desired_signature(f)
            wanted.add(key)
            got = installed.get(key)
            item = {"flow": render_flow_for_ofctl(f), "present": got is not None, "equal": got == sig}
            if got is not None and got != sig:
                item["desired"], item["installed"] = repr(sig), repr(got)
            results.append(item)
        extra = [repr(installed[k]) for k in installed if k not in wanted]
        emit({"flows": results, "extra": extra, "errors": self.errors, "n_installed": len(installed)})

    def _main(self, dp) -> None:
        try:
            flows = switch_flows()
            self._install(dp, ofwire.Wire(dp), flows)
            self._report(dp, flows)
            for line in sys.stdin:
                if line.strip() == "dump":
                    self._report(dp, flows)
                elif line.strip() == "quit":
                    break
        except Exception:  # noqa: BLE001 - report anything to the test, then exit
            emit({"crash": traceback.format_exc(), "errors": self.errors})
        finally:
            sys.stdout.flush()
            os._exit(0)


def main() -> None:
    from os_ken import cfg
    port = sys.argv[1]
    cfg.CONF(args=["--ofp-tcp-listen-port", port, "--ofp-listen-host", "127.0.0.1"], project="os_ken")
    app_manager.AppManager.run_apps(["tests.functional.ofwire_probe_app"])


if __name__ == "__main__":
    main()
