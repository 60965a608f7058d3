"""Derived cluster values (with_pod, without_pod, with_node, ...) equal values built from scratch.

"Equal" means: ``==``, the same lookups, the same internal indexes (which later validations
rely on), and the same compiled flows on every node; incremental recompilation
(owners_affected + compile_owner) on derived values still equals a full recompile. Invalid
changes raise InputError exactly when the constructor would, and leave the old value intact.
"""
from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flow_scenarios import NODES, POD, PODS, SUBNETS, VPCS, mac, two_vpcs
from vpcnet.flows.compile import Change, compile_node, compile_owner, owners_affected, owners_on_node
from vpcnet.flows.inputs import ClusterIn, InputError, NodeIn, PodIn, SubnetIn, VpcIn
from vpcnet.flows.pmap import PMap

SUBNET = {s.name: s for s in SUBNETS}


def rebuild(c: ClusterIn) -> ClusterIn:
    return ClusterIn(c.vpcs, c.subnets, c.pods, c.nodes)


def indexes(c: ClusterIn) -> dict:
    """Every internal index, as plain comparable values."""
    return {
        "pods": dict(c._pods.items()),
        "claims": dict(c._claims.items()),
        "local": dict(c._local.items()),
        "active": {v: c.active_pods_of_vpc(v) for v in c._vpcs},
        "vpcs_by_node": dict(c._vpcs_by_node),
        "nodes_by_vpc": dict(c._nodes_by_vpc),
        "nodes": dict(c._nodes),
        "subnets": dict(c._subnets),
        "vpcs": dict(c._vpcs),
    }


def assert_same(derived: ClusterIn, expected: ClusterIn, compile_too: bool = True) -> None:
    assert derived == expected and expected == derived
    assert derived.pods == expected.pods and derived.nodes == expected.nodes
    assert hash(derived) == hash(expected)
    assert indexes(derived) == indexes(expected)
    node_names = [n.name for n in expected.nodes] + ["node-9"]
    for n in node_names:
        assert derived.vpcs_on_node(n) == expected.vpcs_on_node(n)
        assert owners_on_node(derived, n) == owners_on_node(expected, n)
        for s in SUBNET:
            assert derived.local_pods(n, s) == expected.local_pods(n, s)
    for v in [v.name for v in expected.vpcs] + ["nowhere"]:
        assert derived.active_pods_of_vpc(v) == expected.active_pods_of_vpc(v)
        assert derived.nodes_with_vpc(v) == expected.nodes_with_vpc(v)
        assert derived.subnets_of(v) == expected.subnets_of(v)
    for p in expected.pods:
        assert derived.find_pod(*p.key) == p and derived.is_active(p) == expected.is_active(p)
    if compile_too:
        for n in expected.nodes:
            assert compile_node(derived, n.name) == compile_node(expected, n.name)
            assert list(compile_node(derived, n.name)) == list(compile_node(expected, n.name))


def new_pod(name="n", subnet="web", ip="10.0.1.50", n=50, node="node-2", port=9, ns="finance"):
    vpc = SUBNET[subnet].vpc if subnet in SUBNET else "finance"
    return PodIn(ns, name, vpc, subnet, (ip,), mac(n), node, port, f"veth{n}")


# --- pods ----------------------------------------------------------------------------------------
def test_with_pod_adds_like_the_constructor():
    c = two_vpcs()
    p = new_pod()
    d = c.with_pod(p)
    assert_same(d, ClusterIn(VPCS, SUBNETS, PODS + (p,), NODES))
    assert c == two_vpcs() and c.find_pod("finance", "n") is None   # the old value is untouched


def test_with_pod_replaces_moves_rewires_and_readdresses():
    c = two_vpcs()
    for changed in (dataclasses.replace(POD["a"], node="node-2", ofport=12),       # moved
                    dataclasses.replace(POD["p"], ofport=11),                       # wired
                    dataclasses.replace(POD["a"], ofport=None),                     # unwired
                    dataclasses.replace(POD["b"], ips=("10.0.1.60",), mac=mac(60)),
                    dataclasses.replace(POD["x"], node="node-2", ofport=20)):       # retail appears on node-2
        pods = tuple(changed if p.key == changed.key else p for p in PODS)
        assert_same(c.with_pod(changed), ClusterIn(VPCS, SUBNETS, pods, NODES))


def test_with_pod_of_an_identical_pod_is_the_same_value():
    c = two_vpcs()
    assert c.with_pod(POD["a"]) is c
    assert c.with_pods([]) is c


def test_without_pod_removes_like_the_constructor():
    c = two_vpcs()
    for p in PODS:
        d = c.without_pod(p.namespace, p.name)
        assert_same(d, ClusterIn(VPCS, SUBNETS, tuple(q for q in PODS if q.key != p.key), NODES))
    with pytest.raises(KeyError):
        c.without_pod("finance", "ghost")
    assert c.without_pod("finance", "ghost", missing_ok=True) is c
    empty = c.without_pods([p.key for p in PODS])
    assert_same(empty, ClusterIn(VPCS, SUBNETS, (), NODES))
    assert empty.vpcs_on_node("node-1") == frozenset() and empty.nodes_with_vpc("finance") == frozenset()


def test_batches_equal_one_by_one():
    c = two_vpcs()
    adds = [new_pod("n1", ip="10.0.1.51", n=51, port=9), new_pod("n2", "db", "10.0.2.52", 52, "node-1", 9),
            dataclasses.replace(POD["r"], node="node-1", ofport=10)]
    one_by_one = c
    for p in adds:
        one_by_one = one_by_one.with_pod(p)
    assert_same(c.with_pods(adds), one_by_one)
    assert_same(one_by_one.without_pods([p.key for p in adds[:2]]),
                c.with_pod(adds[2]))


def test_a_value_built_from_derived_values_only_grows_from_empty():
    c = ClusterIn(VPCS, SUBNETS, (), NODES)
    for p in PODS:
        c = c.with_pod(p)
    assert_same(c, two_vpcs())


@pytest.mark.parametrize("pod,msg", [
    (new_pod(subnet="nope"), "unknown subnet"),
    (dataclasses.replace(new_pod(), vpc="retail"), "belongs to vpc"),
    (new_pod(ip="10.0.2.9"), "outside subnet"),
    (new_pod(ip="10.0.1.1"), "gateway"),
    (new_pod(ip="10.0.1.5"), "ip 10.0.1.5 already used by pod finance/a"),
    (new_pod(n=5), "mac .* already used by pod finance/a"),
    (new_pod(node="node-1", port=3), "ofport 3 on node node-1"),
    (new_pod(node="node-1", port=1), "ofport 1 on node node-1"),      # the uplink
    (dataclasses.replace(POD["b"], ips=("10.0.1.5",)), "already used by pod finance/a"),   # replacement
])
def test_invalid_pods_are_rejected_and_the_old_value_stays(pod, msg):
    c = two_vpcs()
    before = {n.name: compile_node(c, n.name) for n in c.nodes}
    with pytest.raises(InputError, match=f"pod {pod.namespace}/{pod.name}: .*{msg}"):
        c.with_pod(pod)
    with pytest.raises(InputError):   # the constructor agrees
        ClusterIn(VPCS, SUBNETS, tuple(p for p in PODS if p.key != pod.key) + (pod,), NODES)
    assert_same(c, two_vpcs(), compile_too=False)
    assert {n.name: compile_node(c, n.name) for n in c.nodes} == before


def test_invalid_batches_are_rejected_whole():
    c = two_vpcs()
    with pytest.raises(InputError, match="duplicate pod"):
        c.with_pods([new_pod(), new_pod(ip="10.0.1.51")])
    with pytest.raises(InputError, match="pod finance/m: ip 10.0.1.50 already used by pod finance/n"):
        c.with_pods([new_pod(), new_pod("m", n=51, port=10)])
    with pytest.raises(InputError, match="not a PodIn"):
        c.with_pod(("finance", "n"))
    assert_same(c, two_vpcs(), compile_too=False)


def test_freed_addresses_can_be_reused():
    c = two_vpcs().without_pod("finance", "a")
    reuse = new_pod(ip="10.0.1.5", n=5, node="node-1", port=3)   # a's IP, MAC and port
    assert_same(c.with_pod(reuse), ClusterIn(VPCS, SUBNETS, tuple(p for p in PODS if p.name != "a") + (reuse,),
                                             NODES))
    moved = dataclasses.replace(POD["a"], node="node-2", ofport=3)  # port 3 is r's on node-2
    with pytest.raises(InputError, match="ofport 3 on node node-2"):
        two_vpcs().with_pod(moved)


# --- nodes, subnets, vpcs ------------------------------------------------------------------------
def test_with_node_and_without_node():
    c = two_vpcs()
    late = new_pod("late", node="node-3", port=3)   # scheduled on a node the cluster does not know yet
    c1 = c.with_pod(late)
    assert not c1.is_active(c1.pod("finance", "late"))
    node3 = NodeIn("node-3", 3, 1)
    c2 = c1.with_node(node3)
    assert_same(c2, ClusterIn(VPCS, SUBNETS, PODS + (late,), NODES + (node3,)))
    assert c2.is_active(late) and "finance" in c2.vpcs_on_node("node-3")
    c3 = c2.with_node(NodeIn("node-1", 1, 2))       # uplink moved to port 2 (free on node-1)
    assert_same(c3, ClusterIn(VPCS, SUBNETS, PODS + (late,), (NodeIn("node-1", 1, 2), NODES[1], node3)))
    with pytest.raises(InputError, match="ofport 3 on node node-1"):
        c2.with_node(NodeIn("node-1", 1, 3))         # port 3 is finance/a's
    with pytest.raises(InputError, match="pod finance/late: ofport 3 on node node-3"):
        c1.with_node(NodeIn("node-3", 3, 3))
    c4 = c2.without_node("node-1")
    assert_same(c4, ClusterIn(VPCS, SUBNETS, PODS + (late,), (NODES[1], node3)))
    assert c4.vpcs_on_node("node-1") == frozenset() and "retail" not in c4._nodes_by_vpc
    assert c2.with_node(node3) is c2
    with pytest.raises(KeyError):
        c.without_node("node-9")


def test_with_subnet_without_subnet_with_vpc_without_vpc():
    c = two_vpcs()
    ops = SubnetIn("ops", "finance", ("10.0.9.0/24",), ("10.0.9.1",), 909, 99)
    assert_same(c.with_subnet(ops), ClusterIn(VPCS, SUBNETS + (ops,), PODS, NODES))
    public_db = dataclasses.replace(SUBNET["db"], private=False)
    subnets = tuple(public_db if s.name == "db" else s for s in SUBNETS)
    assert_same(c.with_subnet(public_db), ClusterIn(VPCS, subnets, PODS, NODES))
    assert_same(c.with_subnet(ops).without_subnet("ops"), c)
    with pytest.raises(InputError, match="unknown subnet"):
        c.without_subnet("app")   # finance/c still uses it
    flat = dataclasses.replace(VPCS[0], l3_mode="none")
    assert_same(c.with_vpc(flat), ClusterIn((flat,) + VPCS[1:], SUBNETS, PODS, NODES))
    spare = VpcIn("spare", 10, 1010)
    assert_same(c.with_vpc(spare).without_vpc("spare"), c)
    with pytest.raises(InputError, match="overlap"):
        c.with_subnet(SubnetIn("web2", "finance", ("10.0.1.128/25",), (), 555, 555))


def test_values_pickle_and_hash_like_rebuilt_ones():
    d = two_vpcs().with_pod(new_pod())
    again = pickle.loads(pickle.dumps(d))
    assert_same(again, d)
    flows = compile_node(d, "node-1")
    assert pickle.loads(pickle.dumps(flows)) == flows


# --- random sequences ----------------------------------------------------------------------------
NAMES = [("finance", f"q{i}") for i in range(6)] + [(p.namespace, p.name) for p in PODS[:4]]
NODE_CHOICES = ["node-1", "node-2", "node-3"]           # node-3 is unknown: its pods stay inactive


def candidate(name: int, subnet: int, host: int, mac_n: int, node: int, port: int | None) -> PodIn:
    s = SUBNETS[subnet]
    prefix = s.cidrs[0].rsplit(".", 1)[0]
    ns, pname = NAMES[name]
    return PodIn(ns, pname, s.vpc, s.name, (f"{prefix}.{host}",), mac(0x700 + mac_n), NODE_CHOICES[node], port)


ops = st.one_of(
    st.tuples(st.just("add"), st.integers(0, len(NAMES) - 1), st.integers(0, len(SUBNETS) - 1),
              st.integers(1, 8), st.integers(0, 5), st.integers(0, 2), st.none() | st.integers(1, 8)),
    st.tuples(st.just("remove"), st.integers(0, len(NAMES) - 1)),
)


def apply_change(state: dict, change: Change) -> dict:
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


def full(c: ClusterIn) -> dict:
    return {n.name: {o: f for o, f in compile_node(c, n.name).items() if f} for n in c.nodes}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=14))
def test_random_adds_and_removes_equal_rebuilds(steps):
    cur = two_vpcs()
    state = full(cur)
    for op in steps:
        if op[0] == "remove":
            key = NAMES[op[1]]
            if cur.find_pod(*key) is None:
                with pytest.raises(KeyError):
                    cur.without_pod(*key)
                continue
            nxt = cur.without_pod(*key)
            expected = ClusterIn(VPCS, SUBNETS, tuple(p for p in cur.pods if p.key != key), NODES)
            owner = f"pod/{key[0]}/{key[1]}"
        else:
            pod = candidate(*op[1:])
            pods = tuple(p for p in cur.pods if p.key != pod.key) + (pod,)
            try:
                expected = ClusterIn(VPCS, SUBNETS, pods, NODES)
            except InputError:
                event("invalid add rejected")
                with pytest.raises(InputError):
                    cur.with_pod(pod)
                continue
            nxt = cur.with_pod(pod)
            owner = pod.owner
        event(f"{op[0]} applied")
        assert_same(nxt, expected, compile_too=False)
        state = apply_change(state, Change(cur, nxt, owner))
        assert state == {n: o for n, o in full(expected).items() if o} == {n: o for n, o in full(nxt).items() if o}
        cur = nxt
    assert_same(cur, rebuild(cur))


# --- the persistent map --------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.none() | st.integers()), max_size=200),
       st.integers(0, 400))
def test_pmap_behaves_like_a_dict(changes, initial):
    base = {(i, str(i)): i for i in range(initial)}
    m = PMap(base)
    assert dict(m.items()) == base and len(m) == len(base)
    expected = dict(base)
    for k, v in changes:
        key = (k, str(k))
        old = m
        if v is None:
            m = m.delete(key)
            expected.pop(key, None)
        else:
            m = m.set(key, v)
            expected[key] = v
        assert dict(old.items()) != expected or old == m
    assert dict(m.items()) == expected and len(m) == len(expected) and sorted(m) == sorted(expected)
    assert all(m[k] == v and k in m and m.get(k) == v for k, v in expected.items())
    assert (-1, "-1") not in m and m.get((-1, "-1"), 7) == 7
    assert m == PMap(expected) and m == expected
    assert dict(PMap(base).items()) == base   # the first value never changed


# --- caches never leak between values ------------------------------------------------------------
def variants() -> list[ClusterIn]:
    """Values that reuse names with different contents (the caches are keyed by value)."""
    c = two_vpcs()
    public_db = dataclasses.replace(SUBNET["db"], private=False, gateways=("10.0.2.1",))
    renumbered = dataclasses.replace(SUBNET["web"], subnet_id=55, vlan=155)
    flat = dataclasses.replace(VPCS[0], l3_mode="none")
    return [
        c,
        c.with_subnet(public_db),
        c.with_subnet(renumbered),
        c.with_vpc(flat),
        c.with_vpc(dataclasses.replace(VPCS[0], vpc_id=70)),
        c.with_node(NodeIn("node-1", 1, 2)),
        c.with_pod(dataclasses.replace(POD["a"], mac=mac(0x55), ips=("10.0.1.55",))),
        c.with_pod(dataclasses.replace(POD["d"], ips=("10.0.2.6",))),
    ]


def test_compiled_flows_do_not_depend_on_cache_state():
    from vpcnet.flows.compile import clear_caches
    warm = []
    for c in variants():          # each compiled after the others warmed the caches
        warm.append({n.name: compile_node(c, n.name) for n in c.nodes})
    for c, expected in zip(variants(), warm):
        clear_caches()
        fresh = rebuild(c)
        assert {n.name: compile_node(fresh, n.name) for n in fresh.nodes} == expected
        for n in fresh.nodes:
            for owner in expected[n.name]:
                assert compile_owner(c, n.name, owner) == expected[n.name][owner]


def test_compile_bench_smoke(capsys):
    from vpcnet.bench import compile_bench
    assert compile_bench.main(["--nodes", "8", "--pods", "120", "--subnets", "6", "--vpcs", "2",
                               "--nodes-per-vpc", "5", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert "compile_node on all 8 nodes" in out and "one pod add" in out and "peer" in out


def test_pmap_grows_and_shares():
    m, expected, history = PMap(), {}, []
    for i in range(3000):                       # crosses the depth 1 -> 2 -> 3 rebuilds
        m = m.set(("k", i), i) if i % 7 else m.evolve({("k", i): i, ("k", i - 1): PMap.DELETE})
        expected[("k", i)] = i
        if not i % 7:
            expected.pop(("k", i - 1), None)
        if i % 500 == 0:
            history.append((m, dict(expected)))
    for old, snapshot in history:               # earlier values never change
        assert dict(old.items()) == snapshot and len(old) == len(snapshot)
    assert m == PMap(expected) and m._depth == 2 and PMap(expected)._depth == 3   # equal across layouts
    big = PMap({i: i for i in range(20_000)})
    assert big._depth == 3 and big.delete(5) != big and big.delete(5) == PMap({i: i for i in range(20_000) if i != 5})
    assert pickle.loads(pickle.dumps(big.set(-1, "x"))) == big.set(-1, "x")
