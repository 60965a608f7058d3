"""A real os-ken app for tests/functional/test_meters_ovs.py (its own process: os-ken's cfg.CONF
is parsed once per process):

    python -m tests.functional.meter_probe_app PORT

Listens on 127.0.0.1:PORT. When a bridge connects it prints ``RESULT {"kind": "connected"}``
and waits for stdin (so a test can change the switch first; note that OVS flushes flows *and
meters* when a bridge gets its first controller configured, so it must be configured up front).
stdin:

* ``start``: ask for NXT_PACKET_IN2 packet-ins (``NXTSetPacketInFormatMsg``: the only format
  that carries a controller action's userdata; os-ken then raises ``EventNXTPacketIn2`` with
  ``userdata``), bring the bridge to ``FLOWS`` with a ``DatapathLink`` and
  ``Reconciler(meters=METERS)``, audit, and print ``RESULT {json}`` (round, meters
  installed/failed, drift, switch errors no request claimed);
* ``resync``: a new Reconciler on the same link resyncs again (what a reconnect does: the
  meters are there already), RESULT as above;
* ``packetins``: RESULT with every NXT_PACKET_IN2 received so far (reason, table, userdata);
* ``quit`` (or EOF): exit.
"""
from __future__ import annotations

import threading

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

from tests.functional.ofwire_probe_app import command_loop, emit, run
from vpcnet.app import oflink
from vpcnet.flows import cookies
from vpcnet.flows.model import IP, UDP, Controller, Flow, Match, Meter

TIMEOUT = 15.0
BOTH = [CONFIG_DISPATCHER, MAIN_DISPATCHER]
NXPIF_NXT_PACKET_IN2 = 2
USERDATA = b"deny:policy/web:rule-7"
METERS = (Meter(1, 1, "pktps", 1), Meter(2, 1000, "kbps", 100))
# what a denied connection does: a packet-in with the rule in its userdata, rate-limited in the
# datapath by meter 1 (port 1), or meter 2 (port 2, at most 128 bytes of the packet)
FLOWS = {"policy/deny": frozenset({
    Flow("classifier", 100, Match(IP, in_port=1), (Controller(userdata=USERDATA, meter_id=1),),
         cookies.cookie(0, 6, "policy/deny")),
    Flow("classifier", 100, Match(UDP, in_port=2), (Controller(max_len=128, userdata=b"\x00\x01", meter_id=2),),
         cookies.cookie(0, 6, "policy/deny")),
})}


class MeterProbe(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors: list[str] = []       # switch errors no request of the link claimed
        self.packet_ins: list[dict] = []
        self.link = None
        threading.Thread(target=self._commands, daemon=True).start()

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        if self.link is not None:
            return
        self.link = oflink.DatapathLink(ev.msg.datapath, TIMEOUT)
        emit({"kind": "connected", "dpid": ev.msg.datapath.id})

    def _ours(self, ev) -> bool:
        return self.link is not None and ev.msg.datapath is self.link.dp

    @set_ev_cls(ofp_event.EventOFPErrorMsg, BOTH)
    def _error(self, ev):
        m = ev.msg
        if not (self._ours(ev) and self.link.on_error(m)):
            self.errors.append(f"type={m.type} code={m.code} data={bytes(m.data)[:64].hex()}")

    @set_ev_cls(ofp_event.EventOFPBarrierReply, BOTH)
    def _barrier(self, ev):
        if self._ours(ev):
            self.link.on_reply(ev.msg)

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, BOTH)
    def _group_desc(self, ev):      # Reconciler.resync/audit dump the groups (DatapathLink.dump_groups)
        if self._ours(ev):
            self.link.on_reply(ev.msg, bool(ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, BOTH)
    def _flow_stats(self, ev):
        if self._ours(ev):
            self.link.on_reply(ev.msg, bool(ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPPacketIn, BOTH)
    def _packet_in(self, ev):     # a packet-in without userdata: the format request did not work
        self.packet_ins.append({"format": "OFPT_PACKET_IN", "reason": ev.msg.reason})

    @set_ev_cls(ofp_event.EventNXTPacketIn2, BOTH)
    def _packet_in2(self, ev):
        m = ev.msg
        self.packet_ins.append({"format": "NXT_PACKET_IN2", "reason": m.reason, "table_id": m.table_id,
                                "cookie": m.cookie, "userdata": bytes(m.userdata or b"").hex(),
                                "packet_len": len(m.data or b"")})

    def _resync(self, first: bool) -> None:
        from vpcnet.app.metrics import Metrics
        from vpcnet.app.reconciler import Reconciler
        if first:
            dp = self.link.dp
            self.link.send(dp.ofproto_parser.NXTSetPacketInFormatMsg(dp, NXPIF_NXT_PACKET_IN2))
        rec = Reconciler("probe", self.link, Metrics(), meters=METERS)
        rec.resync(FLOWS)
        drift = rec.audit()
        emit({"kind": "resync", "round": rec.round, "drift": dict(drift), "errors": self.errors,
              "installed": sorted(rec.meters_installed), "failed": {str(k): v for k, v in rec.failed_meters.items()}})

    def _commands(self) -> None:
        command_loop({"start": lambda _: self._resync(first=True), "resync": lambda _: self._resync(first=False),
                      "packetins": lambda _: emit({"kind": "packetins", "packet_ins": list(self.packet_ins),
                                                   "errors": self.errors})}, self.errors)


def main() -> None:
    run("tests.functional.meter_probe_app")


if __name__ == "__main__":
    main()
