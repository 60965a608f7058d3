"""VPC peering (flows/subnet.py peering routes, flows/policy.py peering deny and double commit),
walked packet by packet on both nodes: no packet crosses VPCs unless both VPCs allow it, and
then the connection and its replies work, on one node and across the fabric."""
from __future__ import annotations

import pytest

from flow_invariants import all_flows
from flow_scenarios import mac
from vpcnet.flows import policy
from vpcnet.flows.compile import Change, compile_node, compile_owner, owners_affected
from vpcnet.flows.inputs import ClusterIn, NodeIn, PodIn, SubnetIn, VpcIn
from vpcnet.flows.policy_inputs import IpBlockIn, NetworkPolicyIn, NpPeerIn, NpRuleIn, SecurityGroupIn, SelectorIn, SgRuleIn
from nodes_walk import NodesWalk
from walker import Walker, ip_packet, reply_of

UPLINK = 1
A = VpcIn("a", 3, 103, peers=("b",))
B = VpcIn("b", 4, 104, peers=("a",))
C = VpcIn("c", 5, 105)                                     # not peered
SUBNETS = (SubnetIn("a1", "a", ("10.1.0.0/24",), ("10.1.0.1",), 11, 11),
           SubnetIn("b1", "b", ("10.2.0.0/24",), ("10.2.0.1",), 12, 12),
           SubnetIn("c1", "c", ("10.3.0.0/24",), ("10.3.0.1",), 13, 13))
NODES = (NodeIn("n1", 1, UPLINK), NodeIn("n2", 2, UPLINK))
PA = PodIn("ns-a", "pa", "a", "a1", ("10.1.0.2",), mac(0x101), "n1", 10)
PB_LOCAL = PodIn("ns-b", "pb", "b", "b1", ("10.2.0.2",), mac(0x102), "n1", 11)
PB_REMOTE = PodIn("ns-b", "qb", "b", "b1", ("10.2.0.3",), mac(0x103), "n2", 12)
PC = PodIn("ns-c", "pc", "c", "c1", ("10.3.0.2",), mac(0x104), "n2", 13)
PODS = (PA, PB_LOCAL, PB_REMOTE, PC)

ALLOW_A_OUT = SecurityGroupIn("a-out", (SgRuleIn("to-b", "egress", "tcp", ((5432, 5432),), remote_cidr="10.2.0.0/24"),),
                              False, ("ns-a",))
ALLOW_B_IN = NetworkPolicyIn("ns-b", "from-a", SelectorIn(), ("Ingress",), ingress=(
    NpRuleIn((NpPeerIn(ip_block=IpBlockIn("10.1.0.0/24")),)),))


def cluster(vpcs=(A, B, C), **kw) -> ClusterIn:
    return ClusterIn(vpcs, SUBNETS, PODS, NODES, **kw)


class Fabric(NodesWalk):
    def __init__(self, c: ClusterIn):
        super().__init__(c, UPLINK)

    def send(self, src: PodIn, dst: PodIn, pkt: dict) -> bool:
        got = self.deliver(src, dst, pkt)
        return got is not None and got["dl_dst"] == dst.mac and got["nw_dst"] == dst.ips[0]

    def connect(self, src: PodIn, dst: PodIn, port: int = 5432, packets: int = 2) -> tuple[bool, bool]:
        """(every original-direction packet delivered, every reply delivered)."""
        rmac = {v.name: v.router_mac for v in self.cluster.vpcs}
        fwd = back = True
        for _ in range(packets):
            pkt = ip_packet(src.ofport, src.mac, rmac[src.vpc], src.ips[0], dst.ips[0], proto="tcp", tp_dst=port)
            if not self.send(src, dst, pkt):
                return False, False
            reply = reply_of(pkt, dst.ofport)
            reply["dl_src"], reply["dl_dst"] = dst.mac, rmac[dst.vpc]
            back &= self.send(dst, src, reply)
        return fwd, back


def test_peered_vpcs_are_present_where_a_peer_runs_and_unpeered_ones_are_not():
    c = cluster()
    assert c.peers_of("a") == ("b",) and c.peers_of("b") == ("a",) and c.peers_of("c") == ()
    assert c.vpcs_on_node("n1") == {"a", "b"}
    assert c.vpcs_on_node("n2") == {"a", "b", "c"}      # qb (b) is on n2, so its peer a is too
    one_sided = cluster((A, VpcIn("b", 4, 104), C))
    assert one_sided.peers_of("a") == () and one_sided.vpcs_on_node("n1") == {"a", "b"}
    assert one_sided.vpcs_on_node("n2") == {"b", "c"}


def test_overlapping_address_spaces_never_peer():
    overlap = SUBNETS[:1] + (SubnetIn("b1", "b", ("10.1.0.128/25",), ("10.1.0.129",), 12, 12),) + SUBNETS[2:]
    c = ClusterIn((A, B, C), overlap, (PA, PC), NODES)
    assert c.peers_of("a") == ()


@pytest.mark.parametrize("dst", [PB_LOCAL, PB_REMOTE], ids=["same node", "across the fabric"])
def test_no_packet_crosses_unless_both_vpcs_allow(dst):
    assert Fabric(cluster()).connect(PA, dst) == (False, False), "peered, no rule: denied"
    assert Fabric(cluster(security_groups=(ALLOW_A_OUT,))).connect(PA, dst) == (False, False), "only a allows"
    assert Fabric(cluster(network_policies=(ALLOW_B_IN,))).connect(PA, dst) == (False, False), "only b allows"
    both = Fabric(cluster(security_groups=(ALLOW_A_OUT,), network_policies=(ALLOW_B_IN,)))
    assert both.connect(PA, dst) == (True, True), "both allow: the connection and its replies"
    both.reset()
    assert both.connect(PA, dst, port=22) == (False, False), "a allows 5432 only"
    both.reset()
    assert both.connect(dst, PA) == (False, False), "b -> a is another direction: a has no ingress rule"


def test_unpeered_vpcs_stay_apart_whatever_the_rules():
    allow_all = SecurityGroupIn("all", (SgRuleIn("out", "egress", "any"), SgRuleIn("in", "ingress", "any")), False,
                                ("ns-a", "ns-b", "ns-c"))
    f = Fabric(cluster((A, B, C), security_groups=(allow_all,)))
    assert f.connect(PA, PC) == (False, False), "c is not peered: no route"
    f = Fabric(cluster((VpcIn("a", 3, 103), VpcIn("b", 4, 104), C), security_groups=(allow_all,)))
    assert f.connect(PA, PB_LOCAL) == (False, False), "no peering: no route"
    f = Fabric(cluster((A, B, C), security_groups=(allow_all,)))
    assert f.connect(PA, PB_LOCAL) == (True, True) and f.connect(PA, PB_REMOTE) == (True, True)


def test_revoking_the_peer_side_rule_stops_an_open_connection():
    before = cluster(security_groups=(ALLOW_A_OUT,), network_policies=(ALLOW_B_IN,))
    after = cluster(security_groups=(ALLOW_A_OUT,))
    f = Fabric(before)
    assert f.connect(PA, PB_REMOTE) == (True, True)
    # the same switches, the new flows, the old conntrack state
    for n in ("n1", "n2"):
        ct = f.walkers[n].ct
        f.walkers[n] = Walker(all_flows(compile_node(after, n)))
        f.walkers[n].ct = ct
    f.cluster = after
    assert f.connect(PA, PB_REMOTE) == (False, False)


def test_incremental_owners_cover_a_peer_coming_to_a_node():
    """A pod of a arriving on a node brings b there too: owners_affected must say so."""
    base = cluster(security_groups=(ALLOW_A_OUT,), network_policies=(ALLOW_B_IN,))
    newcomer = PodIn("ns-a", "pa2", "a", "a1", ("10.1.0.9",), mac(0x109), "n2", 20)
    node3 = NodeIn("n3", 3, UPLINK)
    base = ClusterIn(base.vpcs, base.subnets, base.pods, base.nodes + (node3,), security_groups=base.security_groups,
                     network_policies=base.network_policies)
    moved = PodIn("ns-a", "pa3", "a", "a1", ("10.1.0.10",), mac(0x10A), "n3", 21)
    for pod in (newcomer, moved):
        after = base.with_pod(pod)
        affected = owners_affected(Change(base, after, pod.owner))
        for node in ("n1", "n2", "n3"):
            want = compile_node(after, node)
            have = compile_node(base, node)
            got = dict(have)
            for owner in affected.get(node, ()):
                flows = compile_owner(after, node, owner)
                if flows:
                    got[owner] = flows
                else:
                    got.pop(owner, None)
            assert got == want, (pod.name, node, sorted(set(got) ^ set(want)))


def test_every_peering_deny_flow_is_named_for_the_counters():
    c = cluster()
    rules = policy.verdict_rules(c, "n1", "a")
    names = {label[0] for label in rules.values()}
    assert {"peering/a/b/egress", "peering/a/b/ingress"} <= names
