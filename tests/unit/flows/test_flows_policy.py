"""Security policy flows (flows/policy.py) against the reference model (policy_model.py).

The property tests generate pods (labels, namespaces, named ports, security group annotations),
namespaces, NetworkPolicies and SecurityGroups, compile both nodes, and compare the verdict of
the packet walker (first packet of a connection, then its reply) with the model for every
(source, destination, protocol, port) probe.
"""
from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flow_scenarios import mac
from policy_model import allowed
from vpcnet.flows import policy
from vpcnet.flows.model import Conjunction
from vpcnet.flows.compile import Change, compile_node, compile_owner, owners_affected
from vpcnet.flows.inputs import ClusterIn, InputError, NodeIn, PodIn, SubnetIn, VpcIn
from vpcnet.flows.policy_inputs import (
    IpBlockIn, NamespaceIn, NetworkPolicyIn, NpPeerIn, NpPortIn, NpRuleIn, SecurityGroupIn, SelectorIn,
    SgRuleIn,
)
from nodes_walk import NodesWalk
from walker import ip_packet, reply_of

UPLINK = 1
VPC = VpcIn("v", 3, 103)
OTHER = VpcIn("w", 4, 104)
ROUTER = VPC.router_mac
SUBNETS = (SubnetIn("s1", "v", ("10.1.0.0/24",), ("10.1.0.1",), 11, 11),
           SubnetIn("s2", "v", ("10.2.0.0/24",), ("10.2.0.1",), 12, 12),
           SubnetIn("o1", "w", ("10.1.0.0/24",), ("10.1.0.1",), 21, 21))   # overlaps s1
NODES = (NodeIn("n1", 1, UPLINK), NodeIn("n2", 2, UPLINK))
NAMESPACES = ("ns1", "ns2", "ns3")
PROBES = (("tcp", 80), ("tcp", 8080), ("tcp", 443), ("udp", 53), ("icmp", None))


# --- strategies -------------------------------------------------------------------------------
labels_st = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b"]), max_size=2)
selector_st = st.one_of(
    st.builds(lambda l: SelectorIn(tuple(l.items())), labels_st),
    st.builds(lambda k, op, vals: SelectorIn((), ((k, op, tuple(vals) if op in ("In", "NotIn") else ()),)),
              st.sampled_from(["app", "tier"]), st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
              st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2)),
)
ns_selector_st = st.one_of(
    st.builds(lambda l: SelectorIn(tuple(l.items())),
              st.dictionaries(st.just("team"), st.sampled_from(["red", "blue"]), max_size=1)),
    st.sampled_from([SelectorIn((("kubernetes.io/metadata.name", n),)) for n in NAMESPACES]),
)
peer_st = st.one_of(
    st.builds(lambda s: NpPeerIn(pod_selector=s), selector_st),
    st.builds(lambda s: NpPeerIn(namespace_selector=s), ns_selector_st),
    st.builds(lambda p, n: NpPeerIn(pod_selector=p, namespace_selector=n), selector_st, ns_selector_st),
    st.sampled_from([NpPeerIn(ip_block=IpBlockIn("10.1.0.0/16", ("10.1.0.4/30",))),
                     NpPeerIn(ip_block=IpBlockIn("10.2.0.0/24")),
                     NpPeerIn(ip_block=IpBlockIn("10.0.0.0/8", ("10.1.0.0/24", "10.2.0.6/31")))]),
)
np_port_st = st.sampled_from([NpPortIn("TCP", 80), NpPortIn("TCP", 8000, 8100), NpPortIn("TCP", "http"),
                              NpPortIn("UDP", 53), NpPortIn("UDP"), NpPortIn("TCP"), NpPortIn("TCP", 443, 443),
                              NpPortIn("UDP", "dns"), NpPortIn("SCTP", 80)])
np_rule_st = st.builds(lambda peers, ports: NpRuleIn(tuple(peers), tuple(ports)),
                       st.lists(peer_st, max_size=2), st.lists(np_port_st, max_size=2))


@st.composite
def network_policy_st(draw, i):
    types = draw(st.sampled_from([("Ingress",), ("Egress",), ("Ingress", "Egress")]))
    return NetworkPolicyIn(draw(st.sampled_from(NAMESPACES)), f"np{i}", draw(selector_st), types,
                           tuple(draw(st.lists(np_rule_st, max_size=2))), tuple(draw(st.lists(np_rule_st, max_size=2))))


@st.composite
def sg_rule_st(draw, i):
    proto = draw(st.sampled_from(["tcp", "udp", "icmp", "any"]))
    ports = draw(st.sampled_from([(), ((80, 80),), ((8000, 8100), (443, 443))])) if proto in ("tcp", "udp") else ()
    remote = draw(st.sampled_from([{}, {"remote_cidr": "10.2.0.0/24"}, {"remote_cidr": "10.1.0.0/29"},
                                   {"remote_sg": "g1"}, {"remote_sg": "g2"}, {"remote_sg": "nope"},
                                   {"remote_namespace": "ns1"}, {"remote_namespace": "ns2"}]))
    return SgRuleIn(f"r{i}", draw(st.sampled_from(["ingress", "egress"])), proto, ports,
                    action=draw(st.sampled_from(["allow", "deny"])), priority=draw(st.sampled_from([10, 50, 100])),
                    **remote)


@st.composite
def sg_st(draw, name):
    rules = tuple(draw(sg_rule_st(i)) for i in range(draw(st.integers(0, 3))))
    return SecurityGroupIn(name, rules, draw(st.booleans()),
                           tuple(draw(st.lists(st.sampled_from(NAMESPACES), max_size=1, unique=True))))


@st.composite
def cluster_st(draw):
    n = draw(st.integers(2, 5))
    pods = []
    for i in range(n):
        s = SUBNETS[draw(st.integers(0, 1))]
        ip = f"{s.cidrs[0].rsplit('.', 1)[0]}.{i + 2}"
        named = []
        if draw(st.booleans()):
            named.append(("http", "TCP", draw(st.sampled_from([80, 8080, 443]))))
        if draw(st.booleans()):
            named.append(("dns", "UDP", 53))
        pods.append(PodIn(draw(st.sampled_from(NAMESPACES)), f"p{i}", "v", s.name, (ip,), mac(0x100 + i),
                          draw(st.sampled_from(["n1", "n2"])), 10 + i, labels=draw(labels_st),
                          named_ports=tuple(named),
                          security_groups=tuple(draw(st.lists(st.sampled_from(["g1", "g2"]), max_size=2,
                                                              unique=True)))))
    # a pod of another VPC with the same IP as p0 (isolation, overlapping addresses)
    pods.append(PodIn("ns1", "other", "w", "o1", ("10.1.0.2",), mac(0x200), "n1", 99, labels={"app": "a"}))
    namespaces = tuple(NamespaceIn(ns, (("team", draw(st.sampled_from(["red", "blue"]))),)) for ns in NAMESPACES[:2])
    nps = tuple(draw(network_policy_st(i)) for i in range(draw(st.integers(0, 3))))
    sgs = tuple(draw(sg_st(g)) for g in draw(st.lists(st.sampled_from(["g1", "g2"]), max_size=2, unique=True)))
    return ClusterIn((VPC, OTHER), SUBNETS, tuple(pods), NODES, namespaces, sgs, nps)


# --- walking ----------------------------------------------------------------------------------
class Fabric(NodesWalk):
    """Both nodes' walkers (nodes_walk.NodesWalk) and the connection probe of these tests."""

    def __init__(self, cluster: ClusterIn, check: bool = True):
        super().__init__(cluster, UPLINK, check)

    def send(self, src: PodIn, dst: PodIn, pkt: dict) -> bool:
        return self.deliver(src, dst, pkt) is not None

    def connect(self, src: PodIn, dst: PodIn, proto: str, port: int | None) -> tuple[bool, bool | None]:
        """(first packet delivered, its reply delivered or None)."""
        same = src.subnet == dst.subnet
        pkt = ip_packet(src.ofport, src.mac, dst.mac if same else ROUTER, src.ips[0], dst.ips[0], proto=proto,
                        tp_dst=port)
        if not self.send(src, dst, pkt):
            return False, None
        reply = reply_of(pkt, dst.ofport)
        reply["dl_src"], reply["dl_dst"] = dst.mac, (src.mac if same else ROUTER)
        return True, self.send(dst, src, reply)


def verdicts(cluster: ClusterIn, fabric: Fabric):
    pods = [p for p in cluster.pods if p.vpc == "v"]
    for src in pods:
        for dst in pods:
            if src is dst:
                continue
            for proto, port in PROBES:
                fabric.reset()
                yield src, dst, proto, port, fabric.connect(src, dst, proto, port)


COUNTS = {"examples": 0, "verdicts": 0, "allowed": 0}
EXAMPLES = int(os.environ.get("VPCNET_POLICY_EXAMPLES", "150"))   # ~0.1 s each


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st())
def test_compiled_flows_agree_with_the_model(cluster):
    fabric = Fabric(cluster)
    COUNTS["examples"] += 1
    for src, dst, proto, port, (fwd, reply) in verdicts(cluster, fabric):
        want = allowed(cluster, src, dst, proto, port)
        assert fwd == want, (f"{src.namespace}/{src.name} -> {dst.namespace}/{dst.name} {proto}/{port}: "
                             f"walker {fwd}, model {want}")
        if fwd:
            assert reply, f"reply of an allowed connection dropped: {src.name} -> {dst.name} {proto}/{port}"
        COUNTS["verdicts"] += 1
        COUNTS["allowed"] += fwd


def test_zz_report_counts():
    """Not a check: prints how many model-vs-walker verdicts the property test compared."""
    print(f"\npolicy property test: {COUNTS}")


# --- targeted cases ---------------------------------------------------------------------------
def _pod(i, ns, subnet, node, labels=(), **kw):
    s = {x.name: x for x in SUBNETS}[subnet]
    ip = f"{s.cidrs[0].rsplit('.', 1)[0]}.{i + 2}"
    return PodIn(ns, f"p{i}", s.vpc, subnet, (ip,), mac(0x100 + i), node, 10 + i, labels=dict(labels), **kw)


PODS = (_pod(0, "ns1", "s1", "n1", {"app": "web"}), _pod(1, "ns1", "s1", "n2", {"app": "db"}),
        _pod(2, "ns2", "s2", "n2", {"app": "db"}, named_ports=(("pg", "TCP", 5432),)),
        _pod(3, "ns2", "s2", "n1", {"app": "web"}))
DB_IN = NetworkPolicyIn("ns2", "db-in", SelectorIn((("app", "db"),)), ("Ingress",), ingress=(
    NpRuleIn((NpPeerIn(pod_selector=SelectorIn((("app", "web"),)), namespace_selector=SelectorIn()),),
             (NpPortIn("TCP", "pg"),)),))


def base(**kw) -> ClusterIn:
    return ClusterIn((VPC, OTHER), SUBNETS, PODS, NODES, **kw)


def test_no_policy_means_no_policy_flows_and_everything_flows():
    c = base()
    assert all(not k.startswith("policy/") for k in compile_node(c, "n1"))
    f = Fabric(c)
    assert f.connect(PODS[0], PODS[2], "tcp", 5432) == (True, True)


def test_named_port_default_deny_and_reply():
    c = base(network_policies=(DB_IN,))
    f = Fabric(c)
    assert f.connect(PODS[0], PODS[2], "tcp", 5432) == (True, True)      # web (ns1) -> db: pg
    f.reset()
    assert f.connect(PODS[0], PODS[2], "tcp", 80) == (False, None)       # other port: default deny
    f.reset()
    assert f.connect(PODS[1], PODS[2], "tcp", 5432) == (False, None)     # not web
    f.reset()
    assert f.connect(PODS[2], PODS[0], "tcp", 80) == (True, True)        # db's egress is not isolated


def test_removing_the_rule_cuts_the_open_connection_and_its_replies():
    c = base(network_policies=(DB_IN,))
    f = Fabric(c)
    web, db = PODS[3], PODS[2]
    pkt = ip_packet(web.ofport, web.mac, ROUTER, web.ips[0], db.ips[0], proto="tcp", tp_dst=5432)
    assert f.send(web, db, pkt)
    # the policy loses its rule: same conntrack, new flows
    revoked = Fabric(c.with_security(network_policies=(dataclasses.replace(DB_IN, ingress=()),)))
    for n, w in revoked.walkers.items():
        w.ct = f.walkers[n].ct
    assert not revoked.send(web, db, pkt)                                   # next packet: dropped
    conn = revoked.walkers["n2"].ct.conns[0]
    assert conn.mark & 0xF == 1                                             # and the connection revoked
    reply = reply_of(pkt, db.ofport)
    reply["dl_src"], reply["dl_dst"] = db.mac, ROUTER
    assert not revoked.send(db, web, reply)                                 # replies stop too
    # allowed again: the next packet passes and un-revokes the connection
    for n, w in f.walkers.items():
        w.ct = revoked.walkers[n].ct
    assert f.send(web, db, pkt) and conn.mark & 0xF == 0
    assert f.send(db, web, reply)


def test_a_vpc_without_strict_revocation_keeps_open_connections_and_refuses_new_ones():
    lax = dataclasses.replace(VPC, strict_revocation=False)
    c = ClusterIn((lax, OTHER), SUBNETS, PODS, NODES, network_policies=(DB_IN,))
    f = Fabric(c)
    web, db = PODS[3], PODS[2]
    pkt = ip_packet(web.ofport, web.mac, ROUTER, web.ips[0], db.ips[0], proto="tcp", tp_dst=5432)
    reply = reply_of(pkt, db.ofport)
    reply["dl_src"], reply["dl_dst"] = db.mac, ROUTER
    assert f.send(web, db, pkt) and f.send(db, web, reply)
    after = Fabric(c.with_security(network_policies=(dataclasses.replace(DB_IN, ingress=()),)))
    for n, w in after.walkers.items():
        w.ct = f.walkers[n].ct
    assert after.send(web, db, pkt) and after.send(db, web, reply)         # the open connection goes on
    other = dict(pkt, tp_src=pkt["tp_src"] + 1)
    assert not after.send(web, db, other)                                   # a new one is refused


def test_rule_ids_are_committed_in_ct_label():
    c = base(network_policies=(DB_IN,))
    f = Fabric(c)
    assert f.connect(PODS[3], PODS[2], "tcp", 5432)[0]
    conn = f.walkers["n2"].ct.conns[0]
    assert conn.label & 0xFFFFFFFF == policy.rule_id("np/ns2/db-in/ingress/0")
    assert conn.label >> 32 == 0                                            # no egress policy on web


def test_security_group_band_is_above_network_policy():
    sg = SecurityGroupIn("g", (SgRuleIn("ssh", "ingress", "tcp", ((22, 22),), priority=10),
                               SgRuleIn("pg-ns1", "ingress", "tcp", ((5432, 5432),), remote_namespace="ns1",
                                        action="deny", priority=10),
                               SgRuleIn("all", "ingress", action="deny", priority=1000)), namespaces=("ns2",))
    c = base(network_policies=(DB_IN,), security_groups=(sg,))
    f = Fabric(c)
    assert f.connect(PODS[0], PODS[2], "tcp", 22)[0]          # SG allow is final (NP would deny)
    f.reset()
    assert not f.connect(PODS[0], PODS[2], "tcp", 5432)[0]    # SG deny is final (NP would allow)
    f.reset()
    assert not f.connect(PODS[3], PODS[2], "tcp", 5432)[0]    # SG catch-all deny, before NP
    f.reset()
    assert not f.connect(PODS[0], PODS[3], "icmp", None)[0]   # the namespace's pods are members


def test_other_vpc_with_the_same_ip_never_matches_a_peer_clause():
    pods = PODS + (PodIn("ns1", "twin", "w", "o1", (PODS[0].ips[0],), mac(0x300), "n2", 50, labels={"app": "web"}),)
    c = ClusterIn((VPC, OTHER), SUBNETS, pods, NODES, network_policies=(DB_IN,))
    for node in ("n1", "n2"):
        for f in compile_node(c, node).get("policy/w", ()):
            assert "conjunction" not in repr(f.actions)
        assert all(f.match.get("reg1") == VPC.vpc_id for f in compile_node(c, node)["policy/v"]
                   if "conj_id" not in f.match)


def test_conjunction_keeps_flows_linear():
    # 40 pods, 20 policies each selecting every pod with a peer set and two ports
    pods = tuple(_pod(i, "ns1", "s1" if i % 2 else "s2", "n1", {"app": "a", "i": str(i % 5)}) for i in range(40))
    nps = tuple(NetworkPolicyIn("ns1", f"np{k}", SelectorIn(), ("Ingress", "Egress"),
                                ingress=(NpRuleIn((NpPeerIn(pod_selector=SelectorIn((("i", str(k % 5)),))),),
                                                  (NpPortIn("TCP", 1000 + k), NpPortIn("UDP", 2000 + k))),),
                                egress=(NpRuleIn((NpPeerIn(pod_selector=SelectorIn((("i", str(k % 5)),))),),
                                                 (NpPortIn("TCP", 1000 + k),)),))
                for k in range(20))
    c = ClusterIn((VPC,), SUBNETS[:2], pods, NODES, network_policies=nps)
    real = len(compile_node(c, "n1")["policy/v"])
    naive = policy.naive_flow_count(c, "n1", "v")
    assert naive > 10 * real, (real, naive)


def test_incremental_owner_matches_full_compile():
    c = base(network_policies=(DB_IN,))
    relabelled = c.with_pod(dataclasses.replace(PODS[0], labels={"app": "db"}))
    aff = owners_affected(Change(c, relabelled, PODS[0].owner))
    assert all("policy/v" in owners for owners in aff.values()) and set(aff) == {"n1", "n2"}
    for n in ("n1", "n2"):
        assert compile_owner(relabelled, n, "policy/v") == compile_node(relabelled, n)["policy/v"]
    aff = owners_affected(Change(c, base(), "policy/np/ns2/db-in"))
    assert aff == {"n1": frozenset({"policy/v"}), "n2": frozenset({"policy/v"})}
    assert compile_owner(base(), "n1", "policy/v") == frozenset()


EGRESS_NAMED = NetworkPolicyIn("ns1", "to-pg", SelectorIn((("app", "web"),)), ("Egress",), egress=(
    NpRuleIn((), (NpPortIn("TCP", "pg"),)),))
GUARD = SecurityGroupIn("guard", (SgRuleIn("r1", "ingress", "tcp", ((22, 22),), remote_namespace="ns3"),),
                        namespaces=("ns4",))


def _added(c: ClusterIn, pod: PodIn) -> tuple[ClusterIn, dict]:
    after = c.with_pod(pod)
    return after, owners_affected(Change(c, after, pod.owner))


@pytest.mark.parametrize("pod, why", [
    (_pod(7, "ns2", "s2", "n1", {"app": "db"}), "a target of db-in"),
    (_pod(7, "ns1", "s1", "n1", {"app": "web"}), "a peer of db-in (any namespace, app=web)"),
    (_pod(7, "ns3", "s1", "n1", {"app": "x"}, named_ports=(("pg", "TCP", 5433),)),
     "named ports while an egress rule resolves them on any peer"),
    (_pod(7, "ns4", "s1", "n1"), "a member of guard by namespace"),
    (_pod(7, "ns5", "s1", "n1", security_groups=("guard",)), "a member of guard by annotation"),
    (_pod(7, "ns3", "s1", "n1"), "in the namespace a guard rule names"),
])
def test_a_pod_that_policy_sees_recompiles_the_policy_owner(pod, why):
    c = base(network_policies=(DB_IN, EGRESS_NAMED), security_groups=(GUARD,))
    for n in ("n1", "n2"):
        compile_node(c, n)
    assert policy.pod_matters(c.with_pod(pod), pod), why
    after, affected = _added(c, pod)
    assert any("policy/v" in owners for owners in affected.values()), why


def test_a_pod_no_policy_sees_recompiles_no_policy_owner_and_everything_still_agrees():
    c = base(network_policies=(DB_IN, EGRESS_NAMED), security_groups=(GUARD,))
    before = {n: compile_node(c, n) for n in ("n1", "n2")}
    stranger = _pod(7, "ns5", "s1", "n1", {"app": "x"})
    assert not policy.pod_matters(c.with_pod(stranger), stranger)
    after, affected = _added(c, stranger)
    assert affected == {"n1": frozenset({stranger.owner, "subnet/s1"}), "n2": frozenset({stranger.owner})}
    fresh = ClusterIn(after.vpcs, after.subnets, after.pods, after.nodes, after.namespaces, after.security_groups,
                      after.network_policies)
    for n in ("n1", "n2"):
        assert compile_owner(after, n, "policy/v") == before[n]["policy/v"] == compile_node(fresh, n)["policy/v"]
    # and the same policy judges it: nothing isolates it (p1 reaches it, web pods of ns1 may only
    # send to named port pg), db-in does not admit it
    f = Fabric(after)
    assert f.connect(PODS[1], stranger, "tcp", 80) == (True, True)
    assert f.connect(PODS[0], stranger, "tcp", 80)[0] is False
    assert f.connect(stranger, PODS[2], "tcp", 5432)[0] is False


def test_an_unseen_pod_and_a_seen_one_changing_in_one_pass_still_agree_with_a_full_compile():
    """The flow engine asks owners_affected once per changed pod between the same two values: the
    unseen pod must not make the seen one's policy change look like no change."""
    c = base(network_policies=(DB_IN,))
    before = {n: compile_node(c, n) for n in ("n1", "n2")}
    stranger = _pod(7, "ns5", "s1", "n1", {"app": "x"})
    web = _pod(8, "ns1", "s1", "n1", {"app": "web"})           # a peer of db-in: its address is allowed
    after = c.with_pods([stranger, web])
    affected: dict = {}
    for owner in (stranger.owner, web.owner):                     # the unseen one first
        for n, owners in owners_affected(Change(c, after, owner)).items():
            affected.setdefault(n, set()).update(owners)
    assert all("policy/v" in affected[n] for n in ("n1", "n2")), affected
    fresh = ClusterIn(after.vpcs, after.subnets, after.pods, after.nodes, after.namespaces, after.security_groups,
                      after.network_policies)
    for n in ("n1", "n2"):
        got = dict(before[n])
        got.update({o: compile_owner(after, n, o) for o in affected[n]})
        assert {o: f for o, f in got.items() if f} == compile_node(fresh, n)


def test_port_range_prefixes_cover_exactly_the_range():
    for lo, hi in ((1, 65535), (80, 80), (8000, 8100), (1024, 2047), (3, 17)):
        got = set()
        for v in policy._port_masks(lo, hi):
            val, mask = (v, 0xFFFF) if isinstance(v, int) else v
            got |= {p for p in range(val, val + (0xFFFF & ~mask) + 1)}
        assert got == set(range(lo, hi + 1)), (lo, hi)


@pytest.mark.parametrize("bad", [
    lambda: SgRuleIn("r", "sideways"),
    lambda: SgRuleIn("r", "ingress", "icmp", ((1, 2),)),
    lambda: SgRuleIn("r", "ingress", remote_cidr="10.0.0.1/24"),
    lambda: SgRuleIn("r", "ingress", remote_cidr="10.0.0.0/24", remote_sg="g"),
    lambda: SgRuleIn("r", "ingress", priority=0),
    lambda: NpPortIn("TCP", "http", 90),
    lambda: NpPortIn("ICMP", 1),
    lambda: NpPeerIn(),
    lambda: IpBlockIn("10.0.0.0/16", ("10.1.0.0/24",)),
    lambda: SelectorIn((), (("app", "In", ()),)),
    lambda: NetworkPolicyIn("ns", "x", policy_types=("Sideways",)),
    lambda: PodIn("ns", "p", "v", "s1", ("10.1.0.9",), mac(1), "n1", 3, labels={"a": 1}),
    lambda: SecurityGroupIn("g", (SgRuleIn("r", "ingress"), SgRuleIn("r", "egress"))),
    lambda: base(security_groups=(SecurityGroupIn("g"), SecurityGroupIn("g"))),
])
def test_bad_policy_inputs_are_named(bad):
    with pytest.raises(InputError):
        bad()


def test_from_spec_reads_the_validated_intent_shapes():
    np_ = NetworkPolicyIn.from_spec("payments", "db-ingress", {
        "podSelector": {"matchLabels": {"app": "db"}, "matchExpressions": []}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"tier": "front-office"}, "matchExpressions": []},
                               "podSelector": {"matchLabels": {"app": "trader"}, "matchExpressions": []}},
                              {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                     "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6000, "endPort": 6010}]}],
        "egress": []})
    assert np_.ingress[0].peers[1].ip_block.excepts == ("10.1.0.0/16",)
    assert np_.ingress[0].ports[1] == NpPortIn("TCP", 6000, 6010)
    sg = SecurityGroupIn.from_spec("payments-db", {"allowSameGroup": True, "namespaces": [], "rules": [
        {"id": "postgres-from-trading", "name": "postgres-from-trading", "direction": "ingress", "protocol": "tcp",
         "ports": [[5432, 5432]], "remoteNamespace": "trading", "action": "allow", "priority": 10},
        {"id": "1", "direction": "ingress", "protocol": "any", "ports": [], "action": "deny", "priority": 1000}]})
    assert sg.rules[0].ports == ((5432, 5432),) and sg.rules[1].action == "deny" and sg.allow_same_group


def test_every_deciding_flow_has_its_rule_for_the_audit_counters():
    sg = SecurityGroupIn("g1", (SgRuleIn("no-ssh", "ingress", "tcp", ((22, 22),), action="deny", priority=5),),
                         False, ("ns2",))
    c = base(network_policies=(DB_IN,), security_groups=(sg,))
    flows = policy.policy_flows(c, "n2", "v")
    rules = policy.verdict_rules(c, "n2", "v")
    assert set(rules) <= flows
    for f in flows:
        deciding = (f.table in ("egress_policy", "ingress_policy") and f.priority < policy.P_PASS
                    and not any(isinstance(a, Conjunction) for a in f.actions) and f.priority)
        assert bool(deciding) == (f in rules and not rules[f][0].startswith("revoked/")), f
    labels = set(rules.values())
    assert ("np/ns2/db-in/ingress/0", "allow", "ingress") in labels
    assert ("np/ns2/default-deny/ingress", "deny", "ingress") in labels
    assert ("sg/g1/no-ssh", "deny", "ingress") in labels
    assert ("revoked/egress", "deny", "egress") in labels
    names = policy.rule_names(c, "v")
    assert names[policy.rule_id("np/ns2/db-in/ingress/0")] == "np/ns2/db-in/ingress/0"


@settings(max_examples=max(20, EXAMPLES // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_st(), st.data())
def test_incremental_policy_owners_after_a_pod_change_match_a_full_compile(cluster, data):
    """owners_affected recompiles a policy owner on the changed pod's node only when nothing
    every node sees changed; whatever the change, the result must equal compiling everything."""
    pods = [p for p in cluster.pods if p.vpc == "v"]
    pod = data.draw(st.sampled_from(pods))
    how = data.draw(st.sampled_from(["relabel", "delete", "add", "add stranger", "named port", "move", "unwire",
                                     "relabel unwired", "delete unwired"]))
    if how in ("relabel unwired", "delete unwired"):
        # a pod with its address but no port yet (or any more): every selector still sees it
        pod = dataclasses.replace(pod, ofport=None)
        cluster = cluster.with_pod(pod)
    if how in ("relabel", "relabel unwired"):
        after = cluster.with_pod(dataclasses.replace(pod, labels=data.draw(labels_st)))
        owner = pod.owner
    elif how in ("delete", "delete unwired"):
        after, owner = cluster.without_pod(pod.namespace, pod.name), pod.owner
    elif how == "unwire":
        after, owner = cluster.with_pod(dataclasses.replace(pod, ofport=None)), pod.owner
    elif how == "add":
        new = dataclasses.replace(pod, name="newcomer", ips=("10.1.0.77",), mac=mac(0x177), ofport=77,
                                  subnet="s1", node=data.draw(st.sampled_from(["n1", "n2"])),
                                  labels=data.draw(labels_st))
        after, owner = cluster.with_pod(new), new.owner
    elif how == "add stranger":
        # a namespace no policy names, labels no selector asks for: usually nothing sees it
        # (compile.owners_affected then reuses the VPC's policy), unless e.g. a namespaceSelector {}
        new = PodIn("ns9", "stranger", "v", "s1", ("10.1.0.78",), mac(0x178), data.draw(st.sampled_from(["n1", "n2"])),
                    78, labels={"zz": "q"})
        after, owner = cluster.with_pod(new), new.owner
    elif how == "named port":
        after = cluster.with_pod(dataclasses.replace(pod, named_ports=(("http", "TCP", 8080),)))
        owner = pod.owner
    else:
        after = cluster.with_pod(dataclasses.replace(pod, node="n2" if pod.node == "n1" else "n1", ofport=88))
        owner = pod.owner
    affected = owners_affected(Change(cluster, after, owner))
    # the expected flows from the same intent built afresh: nothing remembered from ``cluster``
    fresh = ClusterIn(after.vpcs, after.subnets, after.pods, after.nodes, after.namespaces, after.security_groups,
                      after.network_policies, after.services)
    for n in ("n1", "n2"):
        got = dict(compile_node(cluster, n))
        for o in affected.get(n, ()):
            flows = compile_owner(after, n, o)
            if flows:
                got[o] = flows
            else:
                got.pop(o, None)
        want = compile_node(fresh, n)
        assert got == want, (how, n, sorted(o for o in set(got) | set(want) if got.get(o) != want.get(o)))
