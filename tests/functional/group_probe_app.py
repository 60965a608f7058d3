"""A real os-ken app for tests/functional/test_groups_ovs.py (its own process: os-ken's cfg.CONF is
parsed once per process):

    python -m tests.functional.group_probe_app PORT

``meter_probe_app.MeterProbe`` (the connection, its ``DatapathLink``, the reply routing and the
record of switch errors no request claimed) plus the routing of group-description replies,
driven by other stdin commands; each prints one ``RESULT {json}``:

* ``resync STATE``: a new Reconciler on the link (what a reconnect does) resyncs to ``STATES[STATE]``;
* ``apply STATE``: the current Reconciler applies ``STATES[STATE]`` (every owner it has or
  the state has: the owners the state lacks are removed);
* ``audit``: the current Reconciler audits (and repairs);
* ``atomic``: straight through the link, bundles adding group ``ATOMIC_GROUP`` and a flow naming
  it, then failing (``GroupProbe._atomic``); RESULT: each one's error, and the groups and table-0
  flows on the switch after it.

RESULTs of the first three carry the round, the drift, the groups by owner, the borrowed ones,
the failed owners, the flow-mods sent by op during the command, and the unclaimed switch errors.
"""
from __future__ import annotations

from os_ken.controller import ofp_event
from os_ken.controller.handler import set_ev_cls

from tests.functional.meter_probe_app import BOTH, MeterProbe, emit
from tests.functional.ofwire_probe_app import command_loop, run
from vpcnet.app.oflink import LinkError
from vpcnet.flows import cookies
from vpcnet.flows.model import (
    TCP, Bucket, Ct, Flow, Group, GroupAction, Match, Nat, Output, PushVlan, set_vlan_vid,
)

SERVICE = "svc/default/web"
PLAIN = "pod/default/client"
OTHER = "svc/default/fanout"      # groups of the other types, no flow naming them
GROUP_ID = 100
VIP = "10.96.0.10"
ATOMIC_GROUP = 900
OPS = ("add", "delete", "delete_round", "group_add", "group_modify", "group_delete", "repair")


def backend(ip: str, weight: int | None = None) -> Bucket:
    """A service endpoint: commit the connection in zone 5, DNAT to ip:8080, go on in l3_fwd."""
    return Bucket((Ct(commit=True, zone=5, nat=Nat("dst", ip, 8080), table="l3_fwd"),), weight)


def service(buckets) -> frozenset:
    svc = cookies.cookie(0, cookies.Feature.SERVICE, SERVICE)
    return frozenset({
        Group(GROUP_ID, "select", tuple(buckets)),
        Flow("ct_state", 100, Match(TCP, nw_dst=VIP, tp_dst=80), (GroupAction(GROUP_ID),), svc),
    })


PLAIN_FLOWS = frozenset({Flow("l2_fwd", 200, Match(reg2=7, dl_dst="0e:00:00:00:00:07"), (Output(7),),
                              cookies.cookie(0, cookies.Feature.POD, PLAIN))})
OTHER_GROUPS = frozenset({
    Group(101, "all", (Bucket((Output(3),)), Bucket((PushVlan(), set_vlan_vid(7), Output(4))))),
    Group(102, "indirect", (Bucket((Ct(commit=True, zone=6, nat=Nat("src", "192.0.2.1"), table="l3_fwd"),)),)),
})
TWO = (backend("10.0.0.5"), backend("10.0.0.6"))
THREE = (backend("10.0.0.5", 2), backend("10.0.0.6"), backend("10.0.0.7", 3))
STATES = {
    "two": {SERVICE: service(TWO), PLAIN: PLAIN_FLOWS, OTHER: OTHER_GROUPS},
    "three": {SERVICE: service(THREE), PLAIN: PLAIN_FLOWS, OTHER: OTHER_GROUPS},
    "gone": {PLAIN: PLAIN_FLOWS, OTHER: OTHER_GROUPS},
}


class GroupProbe(MeterProbe):
    rec = None

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, BOTH)
    def _group_desc(self, ev):
        if self._ours(ev):
            self.link.on_reply(ev.msg, bool(ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    def _ops(self) -> dict:
        get = self.rec.metrics.registry.get_sample_value
        return {op: get("vpcnet_flow_mods_total", {"node": "probe", "op": op}) or 0 for op in OPS}

    def _run(self, cmd: str, arg: str) -> None:
        from vpcnet.app.metrics import Metrics
        from vpcnet.app.reconciler import Reconciler
        if cmd == "resync":
            self.rec = Reconciler("probe", self.link, Metrics())
        before = self._ops()
        failed, drift = [], {}
        if cmd == "resync":
            self.rec.resync(STATES[arg])
        elif cmd == "apply":
            state = STATES[arg]
            failed = self.rec.apply({o: state.get(o, frozenset()) for o in set(self.rec.installed) | set(state)})
        elif cmd == "audit":
            drift = dict(self.rec.audit())
        after = self._ops()
        emit({"kind": cmd, "round": self.rec.round, "drift": drift, "failed": failed, "errors": self.errors,
              "groups": {o: sorted(g) for o, g in self.rec.groups.items()},
              "unowned": sorted(self.rec.unowned_groups),
              "ops": {op: after[op] - before[op] for op in OPS if after[op] != before[op]}})

    def _atomic(self) -> None:
        """Two bundles that add group ATOMIC_GROUP and a flow naming it, and then fail: on a flow
        naming a missing group (OFPBAC_BAD_OUT_GROUP), and on an add of group GROUP_ID, which the
        switch has (OFPGMFC_GROUP_EXISTS). The flow naming ATOMIC_GROUP passes in both, so OVS
        checks a flow's group against the bundle's own earlier group adds, at commit."""
        from vpcnet.app import ofencode, ofwire
        group = ofwire.osken_group_mod(Group(ATOMIC_GROUP, "select", TWO), "add")
        uses = ofencode.encode_flow_mod(Flow("classifier", 77, Match(TCP, tp_dst=7777), (GroupAction(ATOMIC_GROUP),)))
        missing = ofencode.encode_flow_mod(Flow("classifier", 78, Match(TCP, tp_dst=7778),
                                                (GroupAction(ATOMIC_GROUP + 1),)))
        exists = ofwire.osken_group_mod(Group(GROUP_ID, "indirect", (Bucket((Output(1),)),)), "add")
        out = {"kind": "atomic"}
        for name, bundle in (("missing", [group, uses, missing]), ("exists", [group, uses, exists])):
            try:
                self.link.bundle(bundle)
                out[name] = None
            except LinkError as exc:
                out[name] = str(exc)
            out[f"{name}_groups"] = sorted(e.group_id for e in self.link.dump_groups())
            out[f"{name}_flows"] = sorted(s.priority for s in self.link.dump_flows() if s.table_id == 0)
        out["errors"] = self.errors
        emit(out)

    def _commands(self) -> None:
        command_loop({"resync": lambda arg: self._run("resync", arg), "apply": lambda arg: self._run("apply", arg),
                      "audit": lambda arg: self._run("audit", arg), "atomic": lambda _: self._atomic()},
                     self.errors)


def main() -> None:
    run("tests.functional.group_probe_app")


if __name__ == "__main__":
    main()
