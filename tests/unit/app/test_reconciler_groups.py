"""Reconciler groups against the in-process fake switch (real DatapathLink, real bytes; the fake
answers group mods and group dumps as OVS does and, with ``check_group_refs``, refuses a flow
naming a missing group): group adds/modifies go before the flow-mods of the same bundle and
deletes after them, the cache changes only on commit, a resync removes stale groups and keeps
borrowed ones (a flow names them, no owner has them), the audit repairs group drift, and flow
counts skip groups."""
from __future__ import annotations

import struct

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from vpcnet.app import ofwire
from vpcnet.app.metrics import Metrics
from vpcnet.app.oflink import DatapathLink, LinkError
from vpcnet.app.reconcile_groups import GroupConflict, split
from vpcnet.app.reconciler import Reconciler
from vpcnet.flows import cookies
from vpcnet.flows.model import TCP, Bucket, Ct, Flow, Group, GroupAction, Match, Nat, Output
from vpcnet.flows.render import render

from .fakeswitch import FakeDatapath

SVC = "svc/default/web"
POD = "pod/default/client"


def setup():
    dp = FakeDatapath()
    dp.check_group_refs = True
    link = DatapathLink(dp, 5.0)
    dp.link = link
    metrics = Metrics()
    return dp, link, Reconciler("node-1", link, metrics), metrics


def backend(ip: str, weight: int | None = None) -> Bucket:
    return Bucket((Ct(commit=True, zone=5, nat=Nat("dst", ip, 8080), table="l3_fwd"),), weight)


def service(gid: int = 100, ips=("10.0.0.5", "10.0.0.6"), owner: str = SVC, port: int = 80) -> frozenset:
    c = cookies.cookie(0, cookies.Feature.SERVICE, owner)
    return frozenset({Group(gid, "select", tuple(backend(ip) for ip in ips)),
                      Flow("ct_state", 100, Match(TCP, nw_dst="10.96.0.10", tp_dst=port), (GroupAction(gid),), c)})


def plain(n: int = 1) -> frozenset:
    c = cookies.cookie(0, cookies.Feature.POD, POD)
    return frozenset(Flow("l2_fwd", 200, Match(reg2=i), (Output(i),), c) for i in range(1, n + 1))


def group_mod(group: Group, command: str) -> bytes:
    return ofwire.osken_group_mod(group, command)


def ops(metrics: Metrics) -> dict:
    out = {}
    for op in ("add", "delete", "delete_round", "group_add", "group_modify", "group_delete", "repair"):
        n = metrics.registry.get_sample_value("vpcnet_flow_mods_total", {"node": "node-1", "op": op})
        if n:
            out[op] = n
    return out


def bundled(dp: FakeDatapath, since: int) -> list[tuple]:
    """The messages bundled since ``since`` (an index into dp.messages): ("group", command, id) or
    ("flow", command, priority), in order."""
    out = []
    for m in dp.messages[since:]:
        if m[1] != ofp.OFPT_EXPERIMENTER or struct.unpack_from("!I", m, 12)[0] != ofp.ONF_ET_BUNDLE_ADD_MESSAGE:
            continue
        inner = m[24:]
        if inner[1] == ofp.OFPT_GROUP_MOD:
            command, _, gid = struct.unpack_from("!HBxI", inner, 8)
            out.append(("group", command, gid))
        else:
            out.append(("flow", inner[25], struct.unpack_from("!H", inner, 30)[0]))
    return out


def test_split_keeps_groups_apart_and_rounded_skips_them():
    flows, groups = split(service())
    assert list(groups) == [100] and len(flows) == 1 and all(isinstance(f, Flow) for f in flows.values())
    f2, g2 = split(plain(3))
    assert len(f2) == 3 and g2 == {}
    with pytest.raises(GroupConflict, match="given twice"):
        split(service() | {Group(100, "all", (Bucket((Output(1),)),))})
    dp, link, rec, _ = setup()
    assert rec._rounded(service()) == flows


def test_resync_adds_groups_before_the_flows_and_deletes_stale_ones_after():
    dp, link, rec, metrics = setup()
    link.bundle([group_mod(Group(555, "all", (Bucket((Output(1),)),)), "add")])            # stale
    link.bundle([group_mod(Group(100, "select", (Bucket((Output(9),)),)), "add")])         # outdated
    start = len(dp.messages)
    rec.resync({SVC: service(), POD: plain(2)})
    seq = bundled(dp, start)
    assert seq[0] == ("group", ofp.OFPGC_MODIFY, 100)
    assert seq[-1] == ("group", ofp.OFPGC_DELETE, 555)
    assert sorted(s for s in seq if s[0] == "flow") == [("flow", ofp.OFPFC_ADD, 100), ("flow", ofp.OFPFC_ADD, 200),
                                                        ("flow", ofp.OFPFC_ADD, 200)]
    assert seq[1:-1] == [s for s in seq if s[0] == "flow"]   # (the round delete is an os-ken object: a flow too)
    assert set(dp.groups) == {100} and len(dp.flows) == 3
    assert rec.groups == {SVC: split(service())[1]} and rec.group_owner == {100: SVC} and rec.unowned_groups == set()
    assert ops(metrics) == {"add": 3, "group_modify": 1, "group_delete": 1}
    assert metrics.snapshots.groups["node-1"] == 1
    assert sum(metrics.snapshots.flows["node-1"].values()) == 3        # groups are not flows
    assert rec.audit() == {}
    # a reconnect on a switch that has the same group: nothing to do for it
    start = len(dp.messages)
    rec2 = Reconciler("node-1", link, Metrics())
    rec2.resync({SVC: service(), POD: plain(2)})
    assert not [s for s in bundled(dp, start) if s[0] == "group"] and rec2.audit() == {}


def test_apply_orders_group_mods_around_the_flow_mods_and_changes_the_cache_on_commit():
    dp, link, rec, metrics = setup()
    rec.resync({POD: plain()})
    start = len(dp.messages)
    assert rec.apply({SVC: service()}) == []
    assert bundled(dp, start) == [("group", ofp.OFPGC_ADD, 100), ("flow", ofp.OFPFC_ADD, 100)]
    assert set(dp.groups) == {100} and rec.group_owner == {100: SVC}

    # new endpoints: the group alone is modified
    start = len(dp.messages)
    assert rec.apply({SVC: service(ips=("10.0.0.7",))}) == []
    assert bundled(dp, start) == [("group", ofp.OFPGC_MODIFY, 100)]
    assert rec.audit() == {}

    # a refused bundle changes neither the switch nor the cache
    dp.refuse = lambda m: m[1] == ofp.OFPT_GROUP_MOD
    before = dict(dp.groups), dict(rec.groups)
    assert rec.apply({SVC: service(ips=("10.0.0.8",))}) == [SVC]
    assert (dict(dp.groups), dict(rec.groups)) == before
    dp.refuse = lambda m: False
    assert rec.apply({SVC: service(ips=("10.0.0.8",))}) == [] and rec.audit() == {}

    # the owner goes: its flow first, then its group
    start = len(dp.messages)
    assert rec.apply({SVC: frozenset()}) == []
    assert bundled(dp, start) == [("flow", ofp.OFPFC_DELETE_STRICT, 100), ("group", ofp.OFPGC_DELETE, 100)]
    assert dp.groups == {} and rec.groups == {} and rec.group_owner == {} and SVC not in rec.installed
    assert ops(metrics)["group_add"] == 1 and ops(metrics)["group_modify"] == 2 and ops(metrics)["group_delete"] == 1
    assert metrics.snapshots.groups["node-1"] == 0
    assert rec.audit() == {}


def test_a_group_only_owner_is_installed_and_removed():
    dp, link, rec, _ = setup()
    g = Group(7, "indirect", (Bucket((Output(3),)),))
    rec.resync({POD: plain()})
    assert rec.apply({"svc/default/only": frozenset({g})}) == []
    assert "svc/default/only" in rec.installed and rec.installed["svc/default/only"] == {}
    start = len(dp.messages)
    assert rec.apply({"svc/default/only": frozenset({g})}) == [] and len(dp.messages) == start   # no change
    assert not rec._differs("svc/default/only", frozenset({g}))
    assert rec.apply({"svc/default/only": frozenset()}) == []
    assert dp.groups == {} and "svc/default/only" not in rec.installed


def test_a_group_moves_between_owners_in_one_apply_without_a_delete():
    dp, link, rec, _ = setup()
    rec.resync({SVC: service()})
    start = len(dp.messages)
    other = "svc/default/web2"
    assert rec.apply({SVC: frozenset(), other: service(owner=other)}) == []
    assert not any(s[0] == "group" and s[1] == ofp.OFPGC_DELETE for s in bundled(dp, start))
    assert rec.group_owner == {100: other} and set(dp.groups) == {100}
    assert rec.audit() == {}


def test_two_owners_holding_one_group_id_is_refused_before_anything_is_sent():
    dp, link, rec, metrics = setup()
    rec.resync({SVC: service()})
    start = len(dp.messages)
    assert rec.apply({"svc/default/web2": service(owner="svc/default/web2", port=81)}) == ["svc/default/web2"]
    assert len(dp.messages) == start and rec.group_owner == {100: SVC}
    assert metrics.registry.get_sample_value("vpcnet_handler_errors_total", {"where": "plan"}) == 1
    both = {SVC: service(), "svc/x/y": service(owner="svc/x/y", port=81)}
    fresh = Reconciler("node-1", link, Metrics())
    with pytest.raises(GroupConflict):
        fresh.resync(both)
    assert len(dp.messages) == start + 2     # the new reconciler's group and flow dumps only
    assert set(fresh.uninstallable(both)) == {SVC, "svc/x/y"}, "both holders are named"


def test_borrowed_groups_are_left_alone_and_an_unreferenced_extra_goes():
    dp, link, rec, metrics = setup()
    link.bundle([group_mod(Group(5, "all", (Bucket((Output(1),)),)), "add"),
                 group_mod(Group(6, "all", (Bucket((Output(2),)),)), "add")])
    uses5 = frozenset({Flow("l2_fwd", 9, Match(reg2=9), (GroupAction(5),), cookies.cookie(0, 5, POD))})
    rec.resync({POD: uses5})
    assert set(dp.groups) == {5} and rec.unowned_groups == {5} and rec.groups == {}
    assert rec.audit() == {}
    link.bundle([group_mod(Group(8, "all", (Bucket((Output(2),)),)), "add")])     # by hand
    assert rec.audit() == {"group": 1} and set(dp.groups) == {5}
    assert metrics.registry.get_sample_value("vpcnet_drift_repaired_total", {"node": "node-1", "kind": "group"}) == 1
    # an owner may take a borrowed group over: a modify (the switch has it), not an add
    start = len(dp.messages)
    assert rec.apply({SVC: frozenset({Group(5, "select", (backend("10.0.0.1"),))})}) == []
    assert bundled(dp, start) == [("group", ofp.OFPGC_MODIFY, 5)] and rec.unowned_groups == set()


def test_a_group_still_named_by_a_remaining_flow_is_kept_until_the_audit_finds_it_unused():
    dp, link, rec, _ = setup()
    c = cookies.cookie(0, 5, POD)
    uses = frozenset({Flow("l2_fwd", 9, Match(reg2=9), (GroupAction(100),), c)})
    rec.resync({SVC: service(), POD: uses})
    start = len(dp.messages)
    assert rec.apply({SVC: frozenset()}) == []                         # the pod's flow still names it
    assert ("group", ofp.OFPGC_DELETE, 100) not in bundled(dp, start)
    assert set(dp.groups) == {100} and rec.unowned_groups == {100} and len(dp.flows) == 1
    assert rec.audit() == {}
    assert rec.apply({POD: frozenset()}) == []
    assert rec.audit() == {"group": 1} and dp.groups == {} and rec.unowned_groups == set()


def test_audit_repairs_groups_deleted_changed_or_added_by_hand():
    dp, link, rec, metrics = setup()
    d = {SVC: service(), POD: plain(2)}
    rec.resync(d)
    assert rec.audit() == {}
    link.send(group_mod(Group(100, "select", (Bucket((Output(1),)),)), "delete"))   # takes the flow along
    assert len(dp.flows) == 2
    assert rec.audit() == {"group": 1, "missing": 1}
    assert set(dp.groups) == {100} and len(dp.flows) == 3 and rec.audit() == {}
    link.send(group_mod(Group(100, "select", (Bucket((Output(1),)),)), "modify"))
    link.send(group_mod(Group(42, "indirect", (Bucket((Output(1),)),)), "add"))
    start = len(dp.messages)
    assert rec.audit() == {"group": 2}
    assert bundled(dp, start) == [("group", ofp.OFPGC_MODIFY, 100), ("group", ofp.OFPGC_DELETE, 42)]
    assert rec.audit() == {}
    assert metrics.registry.get_sample_value("vpcnet_drift_repaired_total", {"node": "node-1", "kind": "group"}) == 3


def test_render_puts_groups_after_the_flows():
    text = render(service() | plain()).splitlines()
    assert len(text) == 3 and text[-1] == (
        "group_id=100,type=select,bucket=actions=ct(commit,table=l3_fwd,zone=5,nat(dst=10.0.0.5:8080)),"
        "bucket=actions=ct(commit,table=l3_fwd,zone=5,nat(dst=10.0.0.6:8080))")
    assert all(line.startswith("cookie=") for line in text[:-1])


def test_a_refused_resync_keeps_cache_and_groups():
    dp, link, rec, _ = setup()
    rec.resync({SVC: service()})
    dp.refuse = lambda m: True
    with pytest.raises(LinkError):
        Reconciler("node-1", link, Metrics()).resync({SVC: service(ips=("10.0.0.9",))})
    dp.refuse = lambda m: False
    assert rec.audit() == {}
