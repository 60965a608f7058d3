"""Service flows (flows/service.py) walked packet by packet: a client's connection to a cluster IP
reaches an endpoint DNATed, its replies come back from the cluster IP, an endpoint removed takes
no new connections while established ones continue, and slots move minimally."""
from __future__ import annotations

import dataclasses
from collections import Counter

from flow_invariants import all_flows, all_groups, compile_checked
from flow_scenarios import mac
from vpcnet.flows.compile import Change, compile_node, compile_owner, owners_affected
from vpcnet.flows.inputs import ClusterIn, NodeIn, PodIn, SubnetIn, VpcIn
from vpcnet.flows.service import gone_udp_endpoints, slots
from vpcnet.flows.service_inputs import EndpointIn, ServiceIn, ServicePortIn
from walker import Walker, arp_request, ip_packet, reply_of

UPLINK = 1
VPC = VpcIn("v", 3, 103)
SUBNETS = (SubnetIn("s1", "v", ("10.1.0.0/24",), ("10.1.0.1",), 11, 11),
           SubnetIn("s2", "v", ("10.2.0.0/24",), ("10.2.0.1",), 12, 12))
NODES = (NodeIn("n1", 1, UPLINK), NodeIn("n2", 2, UPLINK))
CLIENT = PodIn("ns", "client", "v", "s1", ("10.1.0.2",), mac(0x101), "n1", 10)
EPS = (PodIn("ns", "web-0", "v", "s1", ("10.1.0.10",), mac(0x110), "n1", 11, named_ports=(("http", "TCP", 8080),)),
       PodIn("ns", "web-1", "v", "s2", ("10.2.0.11",), mac(0x111), "n2", 12, named_ports=(("http", "TCP", 8080),)),
       PodIn("ns", "web-2", "v", "s2", ("10.2.0.12",), mac(0x112), "n2", 13, named_ports=(("http", "TCP", 8080),)))
VIP = "10.96.0.10"


def web(endpoints=EPS, **kw) -> ServiceIn:
    return ServiceIn("ns", "web", "v", VIP, (ServicePortIn("http", "TCP", 80, "http"),),
                     tuple(EndpointIn(p.ips[0], p.node, p.key, ports=(("http", "TCP", 8080),)) for p in endpoints), **kw)


def cluster(svc=None) -> ClusterIn:
    return ClusterIn((VPC,), SUBNETS, (CLIENT,) + EPS, NODES, services=(svc or web(),))


class Nodes:
    def __init__(self, c: ClusterIn):
        self.walkers = {}
        for n in c.nodes:
            owners = compile_checked(c, n.name)
            self.walkers[n.name] = Walker(all_flows(owners), all_groups(owners))
        self.by_ip = {p.ips[0]: p for p in c.pods}

    def send(self, src: PodIn, pkt: dict) -> tuple[PodIn | None, dict | None]:
        """Where the packet lands (the pod whose port it leaves on) and how it looks there."""
        res = self.walkers[src.node].trace(pkt)
        if res.ports == [UPLINK]:
            wire = res.to(UPLINK)
            wire["in_port"] = UPLINK
            for node, w in self.walkers.items():
                if node != src.node:
                    res = w.trace(wire)
                    if res.ports and res.ports != [UPLINK]:
                        break
        for p in self.by_ip.values():
            if res.ports == [p.ofport] and p.node in self.walkers:
                got = res.to(p.ofport)
                if got["nw_dst"] == p.ips[0]:
                    return p, got
        return None, None

    def connect(self, client: PodIn, sport: int) -> tuple[PodIn | None, dict | None]:
        """A SYN to VIP:80 and the endpoint's reply: (endpoint, the reply as the client sees it)."""
        pkt = ip_packet(client.ofport, client.mac, VPC.router_mac, client.ips[0], VIP, proto="tcp", tp_dst=80)
        pkt["tp_src"] = sport
        ep, got = self.send(client, pkt)
        if ep is None:
            return None, None
        assert got["tp_dst"] == 8080, got
        reply = reply_of(got, ep.ofport)
        reply["dl_src"], reply["dl_dst"] = ep.mac, (client.mac if ep.subnet == client.subnet else VPC.router_mac)
        back_to, back = self.send(ep, reply)
        return ep, back if back_to == client else None


def test_connections_to_the_cluster_ip_reach_every_endpoint_and_replies_come_from_it():
    nodes = Nodes(cluster())
    seen = set()
    for sport in range(40000, 40064):
        ep, reply = nodes.connect(CLIENT, sport)
        assert ep in EPS, sport
        assert reply is not None and (reply["nw_src"], reply["tp_src"]) == (VIP, 80), reply
        seen.add(ep.name)
    assert seen == {"web-0", "web-1", "web-2"}


def test_an_endpoint_removed_takes_no_new_connections_and_established_ones_continue():
    before = Nodes(cluster())
    pinned = {}
    for sport in range(41000, 41030):
        pinned[sport] = before.connect(CLIENT, sport)[0]
    gone = EPS[1]
    after = Nodes(cluster(web(tuple(p for p in EPS if p is not gone))))
    for n, w in after.walkers.items():
        w.ct = before.walkers[n].ct            # the same switches: conntrack stays
    for sport, ep in pinned.items():
        assert after.connect(CLIENT, sport)[0] == ep, "an established connection keeps its endpoint"
    for sport in range(42000, 42040):
        assert after.connect(CLIENT, sport)[0] not in (None, gone)


def _eps(n: int, base: int = 0) -> tuple:
    return tuple((f"10.{(base + i) // 250}.{(base + i) % 250}.7", 8080) for i in range(n))


def test_slots_are_shared_equally():
    for n in (1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 100, 256):
        got = slots(_eps(n))
        assert len(got) == (64 if n <= 32 else 256)
        shares = Counter(got)
        assert set(shares) == set(_eps(n)) and max(shares.values()) - min(shares.values()) <= 1, (n, shares)


def test_slots_move_little_when_endpoints_change():
    """Slots an endpoint keeps when another goes or comes: all but a few that the new shares
    re-balance (at most one slot in seven; plain per-endpoint buckets move ~3/4 of them)."""
    for n in (3, 4, 8, 16, 30, 100):
        eps = _eps(n)
        before = slots(eps)
        size = len(before)
        after = slots(eps[:1] + eps[2:])                              # the second one goes
        needless = [i for i in range(size) if before[i] != after[i] and before[i] != eps[1]]
        assert len(needless) <= size // 7, (n, len(needless))
        new = _eps(1, base=900)[0]
        grown = slots(eps + (new,))                                   # one comes
        needless = [i for i in range(size) if grown[i] != before[i] and grown[i] != new]
        assert len(needless) <= size // 7, (n, len(needless))


def test_internal_traffic_policy_local_keeps_the_clients_node():
    nodes = Nodes(cluster(web(internal_local=True)))
    for sport in range(43000, 43020):
        assert nodes.connect(CLIENT, sport)[0] == EPS[0]


def test_incremental_service_change_matches_a_full_compile():
    c = cluster()
    after = c.with_services((web(EPS[:2]),))
    affected = owners_affected(Change(c, after, "svc/ns/web"))
    assert set(affected) == {"n1", "n2"}
    for n in ("n1", "n2"):
        got = dict(compile_node(c, n))
        for o in affected[n]:
            got[o] = compile_owner(after, n, o)
        assert got == compile_node(after, n)
    moved = dataclasses.replace(EPS[0], named_ports=(("http", "TCP", 9090),))
    svc_named = web(endpoints=EPS)
    svc_named = dataclasses.replace(svc_named, endpoints=tuple(dataclasses.replace(e, ports=()) for e in svc_named.endpoints))
    c2 = ClusterIn((VPC,), SUBNETS, (CLIENT,) + EPS, NODES, services=(svc_named,))
    after2 = c2.with_pod(moved)
    affected = owners_affected(Change(c2, after2, moved.owner))
    assert all("svc/ns/web" in o for o in affected.values()), "a named target port resolved on the pod"


def test_hairpin_a_pod_reaches_itself_through_its_service():
    me = EPS[0]
    nodes = Nodes(cluster(web(endpoints=(me,))))
    pkt = ip_packet(me.ofport, me.mac, VPC.router_mac, me.ips[0], VIP, proto="tcp", tp_dst=80)
    pkt["tp_src"] = 45000
    res = nodes.walkers[me.node].trace(pkt)
    assert res.ports == [me.ofport], res
    got = res.to(me.ofport)
    assert (got["nw_src"], got["nw_dst"], got["tp_dst"]) == ("169.254.0.253", me.ips[0], 8080), got
    reply = reply_of(got, me.ofport)
    reply["dl_src"], reply["dl_dst"] = me.mac, VPC.router_mac
    back = nodes.walkers[me.node].trace(reply)
    assert back.ports == [me.ofport], back
    seen = back.to(me.ofport)
    assert (seen["nw_src"], seen["tp_src"], seen["nw_dst"], seen["tp_dst"]) == (VIP, 80, me.ips[0], 45000), seen


def test_session_affinity_keeps_a_client_on_its_endpoint_until_it_leaves():
    nodes = Nodes(cluster(web(affinity_timeout=600)))
    first, _ = nodes.connect(CLIENT, 44000)
    assert first in EPS
    for sport in range(44001, 44040):       # distinct connections, one client: always the same endpoint
        ep, reply = nodes.connect(CLIENT, sport)
        assert ep == first and reply is not None and (reply["nw_src"], reply["tp_src"]) == (VIP, 80), sport
    learned = nodes.walkers["n1"].learned
    assert learned and all(f.table == "svc_affinity" and f.match["nw_src"] == CLIENT.ips[0] for f in learned)
    # its endpoint leaves: the client's next connection goes to a remaining one, and sticks there
    rest = tuple(p for p in EPS if p is not first)
    after = Nodes(cluster(web(rest, affinity_timeout=600)))
    for n, w in after.walkers.items():
        w.ct = nodes.walkers[n].ct
        w.tables["svc_affinity"] = nodes.walkers[n].tables.get("svc_affinity", [])   # the switch keeps learned flows
    moved = {after.connect(CLIENT, sport)[0] for sport in range(44100, 44120)}
    assert len(moved) == 1 and moved <= set(rest), moved


def test_without_affinity_one_client_spreads():
    nodes = Nodes(cluster())
    assert len({nodes.connect(CLIENT, sport)[0] for sport in range(45000, 45040)}) > 1
    assert not nodes.walkers["n1"].learned


EXT, NODE_IP, NODE_MAC = 20, "192.0.2.10", "02:00:00:00:0a:01"
OUTSIDE, OUTSIDE_MAC = "198.51.100.7", "02:00:00:00:99:07"


def node_port_nodes(**kw) -> Nodes:
    svc = dataclasses.replace(web(**kw), type="NodePort", ports=(ServicePortIn("http", "TCP", 80, "http", 30080),))
    nodes = (NodeIn("n1", 1, UPLINK, external_ofport=EXT, node_ip=NODE_IP),) + NODES[1:]
    return Nodes(ClusterIn((VPC,), SUBNETS, (CLIENT,) + EPS, nodes, services=(svc,)))


def test_node_port_from_the_external_port_reaches_a_local_endpoint_and_replies_go_back_out():
    for local, seen_src in ((True, OUTSIDE), (False, NODE_IP)):
        w = node_port_nodes(endpoints=EPS[:1], external_local=local).walkers["n1"]
        syn = ip_packet(EXT, OUTSIDE_MAC, NODE_MAC, OUTSIDE, NODE_IP, proto="tcp", tp_src=51000, tp_dst=30080)
        res = w.trace(syn)
        assert res.ports == [EPS[0].ofport], (local, res.path)      # n1's only endpoint
        got = res.to(EPS[0].ofport)
        assert (got["nw_src"], got["nw_dst"], got["tp_dst"], got["dl_dst"]) == (seen_src, "10.1.0.10", 8080,
                                                                               EPS[0].mac), got
        reply = reply_of(got, EPS[0].ofport)
        reply["dl_src"], reply["dl_dst"] = EPS[0].mac, VPC.router_mac   # off-subnet: to the gateway
        back = w.trace(reply)
        assert back.ports == [EXT], back.path
        out = back.to(EXT)
        assert (out["nw_src"], out["tp_src"], out["nw_dst"], out["tp_dst"]) == (NODE_IP, 30080, OUTSIDE, 51000)
        assert (out["dl_src"], out["dl_dst"]) == (NODE_MAC, OUTSIDE_MAC), "learned from the client's packet"


def test_the_external_port_still_carries_the_hosts_traffic():
    w = node_port_nodes().walkers["n1"]
    ssh = ip_packet(EXT, OUTSIDE_MAC, NODE_MAC, OUTSIDE, NODE_IP, proto="tcp", tp_src=51000, tp_dst=22)
    assert w.trace(ssh).ports == ["LOCAL"]
    assert w.trace(arp_request(EXT, OUTSIDE_MAC, OUTSIDE, NODE_IP)).ports == ["LOCAL"]
    assert w.trace(reply_of(ssh, "LOCAL")).ports == [EXT]
    # a node without an external port has no NodePort path: the host port stays closed
    plain = Nodes(cluster()).walkers["n1"]
    assert plain.trace(reply_of(ssh, "LOCAL")).dropped


def test_node_port_cluster_reaches_an_endpoint_on_another_node_and_its_replies_come_back():
    nodes = node_port_nodes(endpoints=EPS[1:2])                     # web-1, on n2 (another subnet)
    syn = ip_packet(EXT, OUTSIDE_MAC, NODE_MAC, OUTSIDE, NODE_IP, proto="tcp", tp_src=51000, tp_dst=30080)
    res = nodes.walkers["n1"].trace(syn)
    assert res.ports == [UPLINK], res.path
    wire = res.to(UPLINK)
    assert (wire["nw_src"], wire["nw_dst"], wire["tp_dst"]) == (NODE_IP, "10.2.0.11", 8080)
    wire["in_port"] = UPLINK
    got = nodes.walkers["n2"].trace(wire).to(EPS[1].ofport)
    reply = reply_of(got, EPS[1].ofport)
    reply["dl_src"], reply["dl_dst"] = EPS[1].mac, VPC.router_mac
    back = nodes.walkers["n2"].trace(reply)
    assert back.ports == [UPLINK], back.path
    wire = back.to(UPLINK)
    assert wire["dl_dst"] == NODES[0].router_mac and wire["nw_dst"] == NODE_IP, "to the node that SNATed"
    wire["in_port"] = UPLINK
    out = nodes.walkers["n1"].trace(wire).to(EXT)
    assert (out["nw_src"], out["tp_src"], out["nw_dst"], out["tp_dst"]) == (NODE_IP, 30080, OUTSIDE, 51000)
    assert (out["dl_src"], out["dl_dst"]) == (NODE_MAC, OUTSIDE_MAC)


def test_node_port_local_without_a_local_endpoint_drops_and_without_any_refuses():
    w = node_port_nodes(endpoints=EPS[1:], external_local=True).walkers["n1"]   # endpoints on n2 only
    syn = ip_packet(EXT, OUTSIDE_MAC, NODE_MAC, OUTSIDE, NODE_IP, proto="tcp", tp_src=51000, tp_dst=30080)
    res = w.trace(syn)
    assert res.dropped and not res.ports, res.path
    w = node_port_nodes(endpoints=()).walkers["n1"]
    assert w.trace(syn).ports == ["CONTROLLER"]


def test_node_port_session_affinity_sticks_too():
    nodes = node_port_nodes(endpoints=EPS, affinity_timeout=600)
    got = set()
    for sport in range(52000, 52020):
        syn = ip_packet(EXT, OUTSIDE_MAC, NODE_MAC, OUTSIDE, NODE_IP, proto="tcp", tp_src=sport, tp_dst=30080)
        res = nodes.walkers["n1"].trace(syn)
        assert len(res.ports) == 1, res.path
        wire = res.to(res.ports[0])
        got.add(wire["nw_dst"])
    assert len(got) == 1, got


def test_udp_datagrams_of_one_client_spread_by_port():
    udp = dataclasses.replace(web(), ports=(ServicePortIn("dns", "UDP", 53, 5353),))
    nodes = Nodes(ClusterIn((VPC,), SUBNETS, (CLIENT,) + EPS, NODES, services=(udp,)))
    seen = set()
    for sport in range(46000, 46040):
        pkt = ip_packet(CLIENT.ofport, CLIENT.mac, VPC.router_mac, CLIENT.ips[0], VIP, proto="udp", tp_src=sport,
                        tp_dst=53)
        ep, got = nodes.send(CLIENT, pkt)
        assert ep in EPS and got["tp_dst"] == 5353, sport
        seen.add(ep.name)
    assert seen == {"web-0", "web-1", "web-2"}


def test_gone_udp_endpoints_name_what_to_flush_and_only_that():
    udp = dataclasses.replace(web(), ports=(ServicePortIn("dns", "UDP", 53, 5353),
                                             ServicePortIn("http", "TCP", 80, 8080)))
    before = ClusterIn((VPC,), SUBNETS, (CLIENT,) + EPS, NODES, services=(udp,))
    after = before.with_services((dataclasses.replace(udp, endpoints=udp.endpoints[:2]),))
    assert gone_udp_endpoints(before, after, "n1") == [(VPC.vpc_id, VIP, 53, EPS[2].ips[0])]
    assert gone_udp_endpoints(before, before, "n1") == []
    assert gone_udp_endpoints(before, before.with_services(()), "n2") == [
        (VPC.vpc_id, VIP, 53, p.ips[0]) for p in EPS]                 # the Service deleted
    tcp_only = dataclasses.replace(udp, ports=udp.ports[1:])
    assert gone_udp_endpoints(before.with_services((tcp_only,)), before.with_services(()), "n1") == []


def test_hairpin_over_ipv6():
    s6 = SubnetIn("s6", "v", ("10.6.0.0/24", "fd00:6::/64"), ("10.6.0.1", "fd00:6::1"), 16, 16)
    me = PodIn("ns", "web-6", "v", "s6", ("10.6.0.10", "fd00:6::10"), mac(0x160), "n1", 16)
    svc = ServiceIn("ns", "web6", "v", "fd00:96::10", (ServicePortIn("http", "TCP", 80, 8080),),
                    (EndpointIn("fd00:6::10", "n1", me.key),))
    nodes = Nodes(ClusterIn((VPC,), SUBNETS + (s6,), (CLIENT, me) + EPS, NODES, services=(svc,)))
    w = nodes.walkers["n1"]
    pkt = ip_packet(me.ofport, me.mac, VPC.router_mac, "fd00:6::10", "fd00:96::10", proto="tcp", tp_src=45000,
                    tp_dst=80)
    res = w.trace(pkt)
    assert res.ports == [me.ofport], res.path
    got = res.to(me.ofport)
    assert (got["ipv6_src"], got["ipv6_dst"], got["tp_dst"]) == ("fdff:ffff:ffff:ffff::fd", "fd00:6::10", 8080)
    reply = reply_of(got, me.ofport)
    reply["dl_src"], reply["dl_dst"] = me.mac, VPC.router_mac
    seen = w.trace(reply).to(me.ofport)
    assert (seen["ipv6_src"], seen["tp_src"], seen["ipv6_dst"], seen["tp_dst"]) == ("fd00:96::10", 80, "fd00:6::10",
                                                                                  45000)


def test_a_node_gaining_an_external_port_is_routed_to_from_values_derived_earlier():
    """nodes_with_external is kept with the nodes it was read from: a pod add reuses it, a node
    change does not (n1's subnets then route replies to n2's node IP)."""
    before = cluster()
    assert before.nodes_with_external() == ()
    added = before.with_pod(dataclasses.replace(CLIENT, name="client-2", ips=("10.1.0.3",), mac=mac(0x103),
                                                ofport=14))
    assert added.nodes_with_external() is before.nodes_with_external()
    n2 = NodeIn("n2", 2, UPLINK, external_ofport=EXT, node_ip=NODE_IP)
    after = added.with_node(n2)
    assert [n.name for n in after.nodes_with_external()] == ["n2"] and added.nodes_with_external() == ()
    routes = [f for f in compile_owner(after, "n1", "subnet/s1") if f.match.get("nw_dst") == NODE_IP]
    assert routes and routes[0].table == "l3_fwd"
    assert compile_owner(after, "n1", "subnet/s1") == compile_node(after, "n1")["subnet/s1"]
