"""Incremental compilation: applying owners_affected + compile_owner equals a full recompile."""
from __future__ import annotations

import dataclasses
import random

import pytest

from flow_invariants import all_flows, check_flowset
from flow_scenarios import NODES, POD, PODS, SUBNETS, VPCS, mac, two_vpcs
from vpcnet.flows.compile import Change, compile_node, compile_owner, owners_affected, owners_on_node
from vpcnet.flows.inputs import ClusterIn, NodeIn, PodIn, SubnetIn, VpcIn, router_mac
from walker import Walker, ip_packet


def apply_change(state: dict, change: Change) -> dict:
    """What the reconciler does: recompute only the affected owners, drop empty ones."""
    state = {n: dict(o) for n, o in state.items()}
    for node, owners in owners_affected(change).items():
        per = state.setdefault(node, {})
        for owner in owners:
            flows = compile_owner(change.after, node, owner)
            if flows:
                per[owner] = flows
            else:
                per.pop(owner, None)
    return {n: o for n, o in state.items() if o}


def full(cluster: ClusterIn) -> dict:
    return {n.name: compile_node(cluster, n.name) for n in cluster.nodes}


def replace_pods(cluster, *pods, remove=()):
    keep = {p.key: p for p in cluster.pods if p.key not in remove}
    keep.update({p.key: p for p in pods})
    return ClusterIn(cluster.vpcs, cluster.subnets, tuple(keep.values()), cluster.nodes)


def step(before, after, owner):
    change = Change(before, after, owner)
    got = apply_change(full(before), change)
    assert got == full(after), f"incremental != full for {owner}"
    for node in got.values():
        check_flowset(node)
    return owners_affected(change)


def test_pod_add_where_vpc_already_present_touches_only_pod_and_its_subnet():
    before = two_vpcs()
    new = PodIn("finance", "n", "finance", "web", ("10.0.1.50",), mac(50), "node-2", 9)
    affected = step(before, replace_pods(before, new), "pod/finance/n")
    assert affected == {"node-1": frozenset({"pod/finance/n"}),
                        "node-2": frozenset({"pod/finance/n", "subnet/web"})}


def test_first_pod_of_a_vpc_on_a_node_brings_the_vpc():
    before = two_vpcs()
    new = PodIn("retail", "y", "retail", "cart", ("10.8.0.9",), mac(0x809), "node-2", 9)
    affected = step(before, replace_pods(before, new), "pod/retail/y")
    assert "vpc/retail" in affected["node-2"] and "pod/retail/x" in affected["node-2"]
    assert affected["node-1"] == frozenset({"pod/retail/y"})


def test_last_pod_of_a_vpc_leaving_a_node_removes_the_vpc():
    before = two_vpcs()
    after = replace_pods(before, remove=[("retail", "x")])
    step(before, after, "pod/retail/x")
    assert "vpc/retail" not in owners_on_node(after, "node-1")


def test_pod_wiring_moving_and_readdressing():
    c0 = two_vpcs()
    c1 = replace_pods(c0, dataclasses.replace(POD["p"], ofport=11))            # port wired
    step(c0, c1, "pod/finance/p")
    c2 = replace_pods(c1, dataclasses.replace(POD["a"], node="node-2", ofport=12))  # moved
    step(c1, c2, "pod/finance/a")
    c3 = replace_pods(c2, dataclasses.replace(POD["b"], ips=("10.0.1.60",), mac=mac(60)))
    step(c2, c3, "pod/finance/b")


def test_subnet_vpc_and_node_changes():
    c0 = two_vpcs()
    subnets = tuple(dataclasses.replace(s, private=False) if s.name == "db" else s for s in SUBNETS)
    c1 = ClusterIn(VPCS, subnets, PODS, NODES)
    step(c0, c1, "subnet/db")
    vpcs = tuple(dataclasses.replace(v, l3_mode="none") if v.name == "finance" else v for v in VPCS)
    c2 = ClusterIn(vpcs, subnets, PODS, NODES)
    step(c1, c2, "vpc/finance")
    nodes = (NodeIn("node-1", 1, 2), NODES[1])
    c3 = ClusterIn(vpcs, subnets, PODS, nodes)
    step(c2, c3, "node/node-1")
    c4 = ClusterIn(vpcs, subnets + (SubnetIn("ops", "finance", ("10.0.9.0/24",), ("10.0.9.1",), 909, 99),),
                   PODS, nodes)
    step(c3, c4, "subnet/ops")


def _gateway_reply(cluster: ClusterIn, pod: PodIn, gw: str, router: str):
    """The packet ``pod`` gets back for a ping to ``gw`` sent to ``router`` (None: no answer) on
    its node's flows (``step`` has checked that the incremental result equals them)."""
    res = Walker(all_flows(compile_node(cluster, pod.node))).trace(
        ip_packet(pod.ofport, pod.mac, router, pod.ips[0], gw))
    return res.to(pod.ofport) if res.ports == [pod.ofport] else None


def test_gateway_and_router_mac_changes_recompute_the_answers():
    a = POD["a"]
    c0 = two_vpcs()
    assert _gateway_reply(c0, a, "10.0.1.1", router_mac(7))["nw_src"] == "10.0.1.1"
    # web's gateway moves to .254: a subnet change, which recomputes the subnet's owner everywhere
    subnets = tuple(dataclasses.replace(s, gateways=("10.0.1.254",)) if s.name == "web" else s for s in SUBNETS)
    c1 = ClusterIn(VPCS, subnets, PODS, NODES)
    affected = step(c0, c1, "subnet/web")
    assert all("subnet/web" in owners for owners in affected.values()) and set(affected) == {"node-1", "node-2"}
    assert _gateway_reply(c1, a, "10.0.1.254", router_mac(7))["nw_src"] == "10.0.1.254"
    assert _gateway_reply(c1, a, "10.0.1.1", router_mac(7)) is None
    # finance gets another id, hence another router MAC: a VPC change
    vpcs = tuple(VpcIn("finance", 70, 1007) if v.name == "finance" else v for v in VPCS)
    c2 = ClusterIn(vpcs, subnets, PODS, NODES)
    affected = step(c1, c2, "vpc/finance")
    assert "subnet/web" in affected["node-1"]
    reply = _gateway_reply(c2, a, "10.0.1.254", router_mac(70))
    assert reply["dl_src"] == router_mac(70) != router_mac(7)
    assert _gateway_reply(c2, a, "10.0.1.254", router_mac(7)) is None


@pytest.mark.parametrize("seed", range(3))
def test_random_pod_churn(seed):
    rng = random.Random(seed)
    cluster = two_vpcs()
    names = [p.name for p in PODS]
    for i in range(12):
        victim = POD[rng.choice(names)]
        roll = rng.random()
        if roll < 0.3 and cluster.find_pod(*victim.key):
            after = replace_pods(cluster, remove=[victim.key])
        else:
            node = rng.choice(["node-1", "node-2"])
            used = {p.ofport for p in cluster.pods if p.node == node and p.key != victim.key}
            port = rng.choice([None] + [q for q in range(20, 40) if q not in used])
            after = replace_pods(cluster, dataclasses.replace(victim, node=node, ofport=port))
        step(cluster, after, f"pod/{victim.namespace}/{victim.name}")
        cluster = after


def test_compile_owner_unknown_things_are_empty():
    c = two_vpcs()
    assert compile_owner(c, "node-9", "base") == frozenset()
    assert compile_owner(c, "node-1", "pod/ns/ghost") == frozenset()
    assert compile_owner(c, "node-2", "node/node-1") == frozenset()
    assert compile_owner(c, "node-1", "svc/ns/x/80") == frozenset()
    with pytest.raises(KeyError):
        compile_node(c, "node-9")


def _routed_src(cluster: ClusterIn, node: str, flows: dict | None = None) -> str:
    """The source MAC of a web -> app packet routed on ``node`` (a local finance/a-like pod)."""
    src = next(p for p in cluster.pods if p.subnet == "web" and p.node == node and cluster.is_active(p))
    w = Walker(all_flows(flows if flows is not None else compile_node(cluster, node)))
    res = w.trace(ip_packet(src.ofport, src.mac, router_mac(7), src.ips[0], "10.0.3.8"))
    return res.to(res.ports[0])["dl_src"]


def test_datapath_id_change_recomputes_the_routes_of_that_node_only():
    c0 = two_vpcs()
    c1 = c0.with_node(NodeIn("node-1", 0x5254_00AB_CDEF, 1))
    affected = step(c0, c1, "node/node-1")
    assert set(affected) == {"node-1"}
    assert {"subnet/web", "subnet/app", "subnet/db"} <= affected["node-1"]
    got = apply_change(full(c0), Change(c0, c1, "node/node-1"))
    assert _routed_src(c1, "node-1", got["node-1"]) == "52:54:00:ab:cd:ef"
    assert _routed_src(c0, "node-1") == "02:00:00:00:00:01"
    assert got["node-2"] == full(c0)["node-2"]
    # owners recompiled one by one (compile_owner) after the change see the new MAC too
    assert compile_owner(c1, "node-1", "subnet/app") != compile_owner(c0, "node-1", "subnet/app")
    assert compile_owner(c1, "node-2", "subnet/app") == compile_owner(c0, "node-2", "subnet/app")


def test_static_subnet_cache_keeps_routes_per_node():
    # same subnet, same uplink port, two nodes: the cached static flows differ by node router MAC
    from vpcnet.flows.compile import clear_caches
    clear_caches()
    c = two_vpcs()
    web1, web2 = compile_owner(c, "node-1", "subnet/web"), compile_owner(c, "node-2", "subnet/web")
    routes = lambda fs: {f for f in fs if f.table == "l3_fwd" and f.priority == 200}  # noqa: E731
    r1, r2 = routes(web1), routes(web2)
    assert r1 and r2 and r1 != r2
    assert {"02:00:00:00:00:01"} == {a.value for f in r1 for a in f.actions if getattr(a, "field", "") == "eth_src"}
    assert {"02:00:00:00:00:02"} == {a.value for f in r2 for a in f.actions if getattr(a, "field", "") == "eth_src"}
    # everything but the routes and the flood flow is shared between the nodes (one Flow object)
    same = (web1 - r1) & (web2 - r2)
    assert same and all(any(g is f for g in web2) for f in same)
