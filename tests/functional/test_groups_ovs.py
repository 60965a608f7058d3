"""Groups owned by the Reconciler on a real, private Open vSwitch 3.1 (dummy datapath), driven by a
real os-ken controller process (``tests/functional/group_probe_app.py``):

* a resync on a bridge holding a stale group and an outdated version of the service's group
  deletes the one and modifies the other, and installs the service's flow naming its select
  group (``ct(commit,zone,nat(dst=IP:PORT),table)`` buckets) and a plain owner's flow, all in one
  ONF bundle; the bridge then dumps exactly like one set up with ``ovs-ofctl add-groups`` from
  ``render_group`` (also an owner's ``all`` and ``indirect`` groups), and audits as zero drift;
* new buckets modify the group alone (no flow-mod); removing the owner deletes flow and group;
* the audit repairs a group deleted (OVS takes the flow naming it along), changed or added by hand;
* a fresh Reconciler (a reconnect) removes a stale group left on the bridge;
* OVS takes group mods inside an ONF bundle, atomically: a bundle whose flow is refused leaves no
  group it added behind.
"""
from __future__ import annotations

from tests.functional.group_probe_app import ATOMIC_GROUP, GROUP_ID, OTHER, OTHER_GROUPS, SERVICE, THREE, TWO
from tests.functional.test_ofwire_ovs import Probe, _dump, _free_port
from vpcnet.flows.model import Group
from vpcnet.flows.pipeline import PIPELINE
from vpcnet.flows.render import render_group
from vpcnet.sim.ovs import PrivateOvs

L3 = PIPELINE.id("l3_fwd")
CT_STATE = PIPELINE.id("ct_state")


def _ct(ip: str) -> str:
    return f"actions=ct(commit,table={L3},zone=5,nat(dst={ip}:8080))"


# what ovs-ofctl -O OpenFlow13 dump-groups prints (select buckets of weight 1 show no weight)
GROUPS_TWO = [f"group_id={GROUP_ID},type=select,bucket={_ct('10.0.0.5')},bucket={_ct('10.0.0.6')}"]
GROUPS_THREE = [f"group_id={GROUP_ID},type=select,bucket=weight:2,{_ct('10.0.0.5')},bucket={_ct('10.0.0.6')},"
                f"bucket=weight:3,{_ct('10.0.0.7')}"]
SERVICE_FLOW = f"table={CT_STATE}, priority=100,tcp,nw_dst=10.96.0.10,tp_dst=80 actions=group:{GROUP_ID}"


def _reference(ovs: PrivateOvs, tmp_path, bridge: str, groups, dpid: int) -> list[str]:
    """dump-groups of a bridge given ``groups`` by ``ovs-ofctl add-groups`` of their render_group text."""
    ovs.add_bridge(bridge, dpid)
    (tmp_path / f"{bridge}.txt").write_text("".join(render_group(g) + "\n" for g in groups))
    ovs.ofctl("add-groups", bridge, str(tmp_path / f"{bridge}.txt"))
    return _dump(ovs, "dump-groups", bridge)


def _flows(ovs: PrivateOvs, bridge: str) -> list[str]:
    """dump-flows without the cookies (they carry the round)."""
    return [line.split(", ", 1)[1] for line in _dump(ovs, "dump-flows", bridge)]


def test_reconciler_owns_groups_on_a_real_ovs(ovs, tmp_path):
    port = _free_port()
    probe = Probe(port, tmp_path / "probe.log", "tests.functional.group_probe_app")
    try:
        # what ovs-ofctl add-groups makes of the same groups: the service's (in both versions) and
        # the other owner's (all, indirect)
        other = _reference(ovs, tmp_path, "br-ref", OTHER_GROUPS, 0x1)
        ref_two = _reference(ovs, tmp_path, "br-ref2", [Group(GROUP_ID, "select", TWO), *OTHER_GROUPS], 0x2)
        ref_three = _reference(ovs, tmp_path, "br-ref3", [Group(GROUP_ID, "select", THREE), *OTHER_GROUPS], 0x3)
        assert len(other) == 2 and ref_two == GROUPS_TWO + other and ref_three == GROUPS_THREE + other

        # the controller comes with the bridge (OVS flushes flows and groups when it gets its first one)
        ovs.add_bridge("br-g", 0x7, controller=f"tcp:127.0.0.1:{port}")
        assert probe.result()["kind"] == "connected"
        ovs.ofctl("add-group", "br-g", "group_id=555,type=all,bucket=actions=output:1")         # stale
        ovs.ofctl("add-group", "br-g", f"group_id={GROUP_ID},type=select,bucket=actions=output:9")  # outdated

        # 1. resync: one bundle modifies group 100, deletes group 555, installs both owners' flows
        probe.send("resync two")
        got = probe.result()
        assert got["round"] == 1 and got["errors"] == [] and got["failed"] == []
        assert got["ops"] == {"add": 2, "group_add": 2, "group_modify": 1, "group_delete": 1}, got["ops"]
        assert got["groups"] == {SERVICE: [GROUP_ID], OTHER: [101, 102]} and got["unowned"] == []
        assert _dump(ovs, "dump-groups", "br-g") == ref_two
        flows = _flows(ovs, "br-g")
        assert len(flows) == 2 and SERVICE_FLOW in flows, flows
        probe.send("audit")
        assert probe.result()["drift"] == {}

        # 2. other endpoints: the group is modified, no flow-mod at all
        probe.send("apply three")
        got = probe.result()
        assert got["ops"] == {"group_modify": 1} and got["failed"] == [] and got["errors"] == []
        assert _dump(ovs, "dump-groups", "br-g") == ref_three and _flows(ovs, "br-g") == flows
        probe.send("audit")
        assert probe.result()["drift"] == {}

        # 3. the audit repairs groups changed by hand
        ovs.ofctl("del-groups", "br-g", f"group_id={GROUP_ID}")     # OVS deletes the flow naming it too
        assert SERVICE_FLOW not in _flows(ovs, "br-g")
        probe.send("audit")
        got = probe.result()
        assert got["drift"] == {"group": 1, "missing": 1} and got["errors"] == []
        assert _dump(ovs, "dump-groups", "br-g") == ref_three and _flows(ovs, "br-g") == flows
        ovs.ofctl("mod-group", "br-g", f"group_id={GROUP_ID},type=select,bucket=actions=output:9")
        ovs.ofctl("add-group", "br-g", "group_id=777,type=indirect,bucket=actions=output:2")
        probe.send("audit")
        got = probe.result()
        assert got["drift"] == {"group": 2} and got["errors"] == []
        assert _dump(ovs, "dump-groups", "br-g") == ref_three and _flows(ovs, "br-g") == flows
        probe.send("audit")
        assert probe.result()["drift"] == {}

        # 4. the service goes: its flow, then its group (the other owner stays)
        probe.send("apply gone")
        got = probe.result()
        assert got["ops"] == {"delete": 1, "group_delete": 1} and got["errors"] == []
        assert got["groups"] == {OTHER: [101, 102]}
        assert _dump(ovs, "dump-groups", "br-g") == other
        assert _flows(ovs, "br-g") == [f for f in flows if f != SERVICE_FLOW]

        # 5. a reconnect (fresh Reconciler) on a bridge with a stale group: gone, the service back
        ovs.ofctl("add-group", "br-g", "group_id=556,type=select,bucket=actions=output:1")
        probe.send("resync two")
        got = probe.result()
        assert got["round"] == 2 and got["errors"] == []
        assert got["ops"] == {"add": 2, "delete_round": 1, "group_add": 1, "group_delete": 1}, got["ops"]
        assert _dump(ovs, "dump-groups", "br-g") == ref_two and _flows(ovs, "br-g") == flows
        probe.send("audit")
        assert probe.result()["drift"] == {}

        # 6. group mods in an ONF bundle are atomic with the flow-mods: nothing of a refused one stays
        #    (a flow naming a missing group; an add of a group the switch has), though the group add
        #    and the flow naming it that came before in the bundle were taken
        probe.send("atomic")
        got = probe.result()
        assert "refused: type=2 code=9" in got["missing"], got          # OFPBAC_BAD_OUT_GROUP
        assert "refused: type=6 code=0" in got["exists"], got           # OFPGMFC_GROUP_EXISTS
        for case in ("missing", "exists"):
            assert got[f"{case}_groups"] == [GROUP_ID, 101, 102] and got[f"{case}_flows"] == [], got
        assert ATOMIC_GROUP != GROUP_ID and got["errors"] == []
        assert _dump(ovs, "dump-groups", "br-g") == ref_two and _flows(ovs, "br-g") == flows
    finally:
        probe.stop()
