"""Where do packets go? Behaviour of compiled flows, walked with the fake switch (see flow_scenarios)."""
from __future__ import annotations

from flow_invariants import compile_checked, all_flows
from flow_scenarios import NODE_MAC, POD, ROUTER_FINANCE, ROUTER_LAB, ROUTER_RETAIL, UPLINK, mac, two_vpcs
from walker import Walker, arp_request, ip_packet, neighbour_solicitation, reply_of

A, B, C, X, R, D, E, P = (POD[n] for n in "abcxrdep")


def ping(src, dst_mac, dst_ip, **kw):
    return ip_packet(src.ofport, src.mac, dst_mac, src.ips[0], dst_ip, **kw)


# --- L2 inside a subnet ---------------------------------------------------------------------
def test_same_subnet_same_node_reaches_only_b(walkers):
    res = walkers["node-1"].trace(ping(A, B.mac, B.ips[0]))
    assert res.ports == [B.ofport]
    out = res.to(B.ofport)
    assert (out["dl_src"], out["dl_dst"], out["nw_ttl"], out["vlans"]) == (A.mac, B.mac, 64, [])


def test_same_subnet_other_node_leaves_uplink_tagged_then_reaches_pod(walkers):
    res = walkers["node-1"].trace(ping(A, R.mac, R.ips[0]))
    assert res.ports == [UPLINK]
    wire = res.to(UPLINK)
    assert wire["vlans"] == [100] and wire["dl_dst"] == R.mac
    # the same frame arriving at node-2 from the fabric
    wire["in_port"] = UPLINK
    res2 = walkers["node-2"].trace(wire)
    assert res2.ports == [R.ofport]
    assert res2.to(R.ofport)["vlans"] == []


def test_uplink_vlan_100_reaches_local_pod_untagged(walkers):
    pkt = ip_packet(UPLINK, R.mac, A.mac, R.ips[0], A.ips[0], vlan=100)
    res = walkers["node-1"].trace(pkt)
    assert res.ports == [A.ofport]
    assert res.to(A.ofport)["vlans"] == []


def test_unknown_vlan_and_untagged_uplink_traffic_dropped(walkers):
    for vlan in (999, 110 + 1000, None):
        res = walkers["node-1"].trace(ip_packet(UPLINK, R.mac, A.mac, R.ips[0], A.ips[0], vlan=vlan))
        assert res.dropped, vlan
        assert res.path[0] == ("classifier", 100)


def test_vlan_tagged_frame_from_pod_dropped(walkers):
    assert walkers["node-1"].trace(ping(A, B.mac, B.ips[0], vlan=100)).dropped


# --- anti-spoofing --------------------------------------------------------------------------
def test_spoofed_source_ip_dropped(walkers):
    pkt = ip_packet(A.ofport, A.mac, B.mac, "10.0.1.99", B.ips[0])
    res = walkers["node-1"].trace(pkt)
    assert res.dropped and res.path[-1] == ("port_sec", 0)


def test_spoofed_source_mac_and_neighbour_ip_dropped(walkers):
    w = walkers["node-1"]
    assert w.trace(ip_packet(A.ofport, mac(99), B.mac, A.ips[0], B.ips[0])).dropped
    assert w.trace(ip_packet(A.ofport, A.mac, B.mac, B.ips[0], B.ips[0])).dropped  # b's IP from a's port


def test_arp_spoofing_dropped(walkers):
    w = walkers["node-1"]
    assert w.trace(arp_request(A.ofport, A.mac, B.ips[0], "10.0.1.200")).dropped   # spa not own
    spoof = arp_request(A.ofport, A.mac, A.ips[0], "10.0.1.200")
    spoof["arp_sha"] = mac(99)
    assert w.trace(spoof).dropped                                                    # sha not own


def test_unwired_pod_has_no_flows(walkers):
    w = walkers["node-1"]
    assert not any(P.mac in repr(f.match) or P.ips[0] in repr(f.match) for fl in w.tables.values() for f in fl)
    res = w.trace(arp_request(A.ofport, A.mac, A.ips[0], P.ips[0]))
    assert UPLINK in res.ports  # not answered: flooded like any unknown address


# --- ARP -----------------------------------------------------------------------------------
def test_arp_for_gateway_answered_to_in_port_with_router_mac(walkers):
    res = walkers["node-1"].trace(arp_request(A.ofport, A.mac, A.ips[0], "10.0.1.1"))
    assert res.ports == [A.ofport]
    reply = res.to(A.ofport)
    assert reply["arp_op"] == 2
    assert (reply["arp_sha"], reply["arp_spa"]) == (ROUTER_FINANCE, "10.0.1.1")
    assert (reply["arp_tha"], reply["arp_tpa"]) == (A.mac, A.ips[0])
    assert (reply["dl_src"], reply["dl_dst"]) == (ROUTER_FINANCE, A.mac)


def test_arp_for_known_pods_answered_locally_never_flooded(walkers):
    w = walkers["node-1"]
    for target in (B, R):  # local and remote pod of the same subnet
        res = w.trace(arp_request(A.ofport, A.mac, A.ips[0], target.ips[0]))
        assert res.ports == [A.ofport], target.name
        assert (res.to(A.ofport)["arp_sha"], res.to(A.ofport)["arp_spa"]) == (target.mac, target.ips[0])


def test_arp_for_unknown_ip_flooded_to_subnet_and_uplink(walkers):
    res = walkers["node-1"].trace(arp_request(A.ofport, A.mac, A.ips[0], "10.0.1.200"))
    assert res.ports == sorted([B.ofport, UPLINK])
    assert res.to(UPLINK)["vlans"] == [100]
    assert res.to(B.ofport)["vlans"] == []


def test_own_arp_probe_is_flooded_not_answered(walkers):
    res = walkers["node-1"].trace(arp_request(A.ofport, A.mac, A.ips[0], A.ips[0]))
    assert A.ofport not in res.ports and UPLINK in res.ports


def test_arp_from_uplink_not_answered_but_delivered(walkers):
    res = walkers["node-1"].trace(arp_request(UPLINK, R.mac, R.ips[0], "10.0.1.1", vlan=100))
    assert res.ports == [A.ofport, B.ofport]


def test_overlapping_ip_in_other_vpc_never_answers(walkers):
    # retail/x has a's IP; x asking for b's IP (a finance address) is flooded inside shop only
    res = walkers["node-1"].trace(arp_request(X.ofport, X.mac, X.ips[0], B.ips[0]))
    assert res.ports == [UPLINK] and res.to(UPLINK)["vlans"] == [110]


# --- L3 inside a VPC ------------------------------------------------------------------------
def test_other_subnet_same_vpc_routed_with_mac_rewrite_and_ttl(walkers):
    res = walkers["node-1"].trace(ping(A, ROUTER_FINANCE, C.ips[0]))
    assert res.ports == [C.ofport]
    out = res.to(C.ofport)
    # routed: the source is node-1's node router MAC, not the VPC router MAC
    assert (out["dl_src"], out["dl_dst"], out["nw_ttl"]) == (NODE_MAC["node-1"], C.mac, 63)
    assert out["nw_src"] == A.ips[0] and out["nw_dst"] == C.ips[0]


def test_routed_to_remote_pod_tagged_with_destination_subnet_vlan(walkers):
    res = walkers["node-1"].trace(ping(A, ROUTER_FINANCE, D.ips[0]))  # db is private but allows web
    assert res.ports == [UPLINK]
    wire = res.to(UPLINK)
    assert wire["vlans"] == [200] and wire["dl_dst"] == D.mac and wire["nw_ttl"] == 63
    wire["in_port"] = UPLINK
    assert walkers["node-2"].trace(wire).ports == [D.ofport]


def test_routed_packets_leave_each_node_with_its_own_node_router_mac(walkers):
    # what the leaves learn: node-1's MAC behind node-1, node-2's behind node-2, never one MAC
    # (the VPC router MAC) behind both
    there = walkers["node-1"].trace(ping(A, ROUTER_FINANCE, D.ips[0])).to(UPLINK)
    assert there["dl_src"] == NODE_MAC["node-1"] != ROUTER_FINANCE
    there["in_port"] = UPLINK
    at_d = walkers["node-2"].trace(there).to(D.ofport)
    assert (at_d["dl_src"], at_d["dl_dst"]) == (NODE_MAC["node-1"], D.mac)
    # d answers through its gateway (the VPC router MAC it resolved by ARP), routed by node-2
    back = walkers["node-2"].trace(ping(D, ROUTER_FINANCE, A.ips[0], icmp_type=0)).to(UPLINK)
    assert back["vlans"] == [100] and back["dl_dst"] == A.mac
    assert back["dl_src"] == NODE_MAC["node-2"] != NODE_MAC["node-1"]
    back["in_port"] = UPLINK
    assert walkers["node-1"].trace(back).to(A.ofport)["dl_src"] == NODE_MAC["node-2"]
    # d's gateway is still the VPC router MAC on node-2: ARP and ping answered with it
    arp = walkers["node-2"].trace(arp_request(D.ofport, D.mac, D.ips[0], "10.0.2.1")).to(D.ofport)
    assert (arp["arp_op"], arp["arp_sha"], arp["dl_src"]) == (2, ROUTER_FINANCE, ROUTER_FINANCE)
    echo = walkers["node-2"].trace(ping(D, ROUTER_FINANCE, "10.0.2.1")).to(D.ofport)
    assert (echo["dl_src"], echo["icmp_type"]) == (ROUTER_FINANCE, 0)


def test_private_subnet_rejects_subnets_not_allowed(walkers):
    res = walkers["node-1"].trace(ping(C, ROUTER_FINANCE, D.ips[0]))  # app -> db
    assert res.dropped


def test_ttl_expiry_drops_routed_packet(walkers):
    assert walkers["node-1"].trace(ping(A, ROUTER_FINANCE, C.ips[0], ttl=1)).dropped


def test_route_to_unknown_destination_dropped(walkers):
    res = walkers["node-1"].trace(ping(A, ROUTER_FINANCE, "10.0.3.77"))
    assert res.dropped and res.path[-1] == ("l3_neigh", 0)


def test_finance_to_retail_dropped(walkers):
    w = walkers["node-1"]
    # by routing: retail's cart subnet is not a route of finance
    res = w.trace(ping(A, ROUTER_FINANCE, "10.8.0.9"))
    assert res.dropped and res.path[-1] == ("l3_fwd", 100)
    # at L2, straight to x's MAC: never reaches x (leaves tagged with finance's VLAN only)
    res = w.trace(ping(A, X.mac, X.ips[0]))
    assert X.ofport not in res.ports and res.to(UPLINK)["vlans"] == [100]
    # to the retail router MAC
    assert w.trace(ping(A, "0e:76:70:ff:00:08", "10.8.0.9")).dropped


def test_overlapping_ip_routes_stay_inside_vpc(walkers):
    # c (finance/app) routes to 10.0.1.5: finance/a, never retail/x which has the same IP
    res = walkers["node-1"].trace(ping(C, ROUTER_FINANCE, "10.0.1.5"))
    assert res.ports == [A.ofport]


def test_router_mac_from_uplink_is_not_routed(walkers):
    pkt = ip_packet(UPLINK, R.mac, ROUTER_FINANCE, R.ips[0], C.ips[0], vlan=100)
    assert walkers["node-1"].trace(pkt).dropped


def test_vpc_without_l3_does_not_route_but_answers_gateway_arp_and_ping():
    cluster = two_vpcs()
    w = Walker(all_flows(compile_checked(cluster, "node-1")))
    l2 = POD["l2"]
    assert w.trace(ip_packet(l2.ofport, l2.mac, ROUTER_LAB, l2.ips[0], "10.9.1.5")).dropped
    res = w.trace(arp_request(l2.ofport, l2.mac, l2.ips[0], "10.9.2.1"))
    assert res.to(l2.ofport)["arp_sha"] == ROUTER_LAB
    res = w.trace(ip_packet(l2.ofport, l2.mac, ROUTER_LAB, l2.ips[0], "10.9.2.1"))
    assert res.ports == [l2.ofport] and res.to(l2.ofport)["icmp_type"] == 0
    # the other subnet's gateway is not this pod's gateway, and nothing routes there
    assert w.trace(ip_packet(l2.ofport, l2.mac, ROUTER_LAB, l2.ips[0], "10.9.1.1")).dropped


# --- the gateway answers ping (and IPv6 neighbour discovery) -------------------------------
def test_ping_gateway_answered_to_in_port_by_the_router():
    for node, pod, gw in (("node-1", A, "10.0.1.1"), ("node-1", C, "10.0.3.1"), ("node-2", D, "10.0.2.1")):
        w = Walker(all_flows(compile_checked(two_vpcs(), node)))
        res = w.trace(ping(pod, ROUTER_FINANCE, gw, ttl=9))
        assert res.ports == [pod.ofport], (pod.name, res.path)
        reply = res.to(pod.ofport)
        assert (reply["dl_src"], reply["dl_dst"]) == (ROUTER_FINANCE, pod.mac)
        assert (reply["nw_src"], reply["nw_dst"]) == (gw, pod.ips[0])
        assert (reply["icmp_type"], reply["icmp_code"], reply["nw_ttl"], reply["vlans"]) == (0, 0, 9, [])
        assert res.tables()[-1] == "l3_fwd"       # answered by the router, before any switching
        assert w.ct.conns == []                   # and never committed to conntrack


def test_ping_gateway_same_address_in_two_vpcs_answered_by_each_router(walkers):
    w = walkers["node-1"]   # finance/web and retail/shop are both 10.0.1.0/24, gateway 10.0.1.1
    fin = w.trace(ping(A, ROUTER_FINANCE, "10.0.1.1")).to(A.ofport)
    ret = w.trace(ping(X, ROUTER_RETAIL, "10.0.1.1")).to(X.ofport)
    assert fin["dl_src"] == ROUTER_FINANCE and ret["dl_src"] == ROUTER_RETAIL
    assert fin["nw_src"] == ret["nw_src"] == "10.0.1.1"


def test_ping_gateway_of_another_subnet_or_vpc_not_answered(walkers):
    w = walkers["node-1"]
    # app's gateway from web: routed into app like any address there, and nobody has it
    res = w.trace(ping(A, ROUTER_FINANCE, "10.0.3.1"))
    assert res.dropped and res.tables()[-1] == "l3_neigh"
    # another VPC's gateway: no route to it (finance), or not our router's MAC (retail)
    for dst_mac, gw in ((ROUTER_FINANCE, "10.8.0.1"), (ROUTER_RETAIL, "10.8.0.1"), (ROUTER_RETAIL, "10.0.1.1")):
        res = w.trace(ping(A, dst_mac, gw))
        assert res.dropped, (dst_mac, gw, res.path)
    # the gateway address at a pod's MAC is not the router: plain switching (A's own port never)
    assert w.trace(ping(A, B.mac, "10.0.1.1")).ports == [B.ofport]


def test_ping_gateway_only_echo_requests_from_pods(walkers):
    w = walkers["node-1"]
    # echo replies, other codes, TCP to the gateway: not answered (routed to nobody: dropped)
    for pkt in (ping(A, ROUTER_FINANCE, "10.0.1.1", icmp_type=0), ping(A, ROUTER_FINANCE, "10.0.1.1", icmp_code=1),
                ping(A, ROUTER_FINANCE, "10.0.1.1", proto="tcp")):
        res = w.trace(pkt)
        assert res.dropped and ("l3_fwd", 300) not in res.path, pkt
    # from the fabric (another node's pod): never answered here, the pod's own node answers
    res = w.trace(ip_packet(UPLINK, R.mac, ROUTER_FINANCE, R.ips[0], "10.0.1.1", vlan=100))
    assert res.dropped and ("l3_fwd", 300) not in res.path
    # a spoofed source is dropped before the router sees it
    assert w.trace(ip_packet(A.ofport, A.mac, ROUTER_FINANCE, "10.0.1.99", "10.0.1.1")).path[-1] == ("port_sec", 0)


def test_ping6_gateway_answered(walkers):
    res = walkers["node-2"].trace(ip_packet(D.ofport, D.mac, ROUTER_FINANCE, "fd00:2::6", "fd00:2::1", ttl=7))
    assert res.ports == [D.ofport]
    reply = res.to(D.ofport)
    assert (reply["dl_src"], reply["dl_dst"]) == (ROUTER_FINANCE, D.mac)
    assert (reply["ipv6_src"], reply["ipv6_dst"]) == ("fd00:2::1", "fd00:2::6")
    assert (reply["icmp_type"], reply["icmp_code"], reply["nw_ttl"]) == (129, 0, 7)


def test_neighbour_solicitation_for_gateway_answered_like_arp(walkers):
    w = walkers["node-2"]
    for ns in (neighbour_solicitation(D.ofport, D.mac, "fd00:2::6", "fd00:2::1", sll=D.mac),
               # reachability probe: unicast to the router, from the link-local address
               neighbour_solicitation(D.ofport, D.mac, "fe80::c76:70ff:fe00:206", "fd00:2::1", sll=D.mac,
                                      dl_dst=ROUTER_FINANCE, dst="fd00:2::1")):
        res = w.trace(ns)
        assert res.ports == [D.ofport], res.path
        assert res.tables()[-2:] == ["l3_fwd", "arp_responder"]
        na = res.to(D.ofport)
        assert (na["dl_src"], na["dl_dst"]) == (ROUTER_FINANCE, D.mac)
        assert (na["ipv6_src"], na["ipv6_dst"], na["nw_ttl"]) == ("fd00:2::1", ns["ipv6_src"], 255)
        assert (na["icmp_type"], na["icmp_code"], na["nd_target"]) == (136, 0, "fd00:2::1")
        assert na["nd_reserved"] == 0xE0000000          # router, solicited, override
        assert na["nd_tll"] == ROUTER_FINANCE and "nd_sll" not in na


def test_neighbour_solicitation_for_gateway_without_source_option_dropped(walkers):
    w = walkers["node-2"]
    for ns in (neighbour_solicitation(D.ofport, D.mac, "::", "fd00:2::1"),          # DAD
               neighbour_solicitation(D.ofport, D.mac, "fd00:2::6", "fd00:2::1")):   # no option
        res = w.trace(ns)
        assert res.dropped and res.path[-1] == ("l3_fwd", 310), res.path


def test_neighbour_solicitation_for_pods_and_from_fabric_not_answered_by_router(walkers):
    w = walkers["node-2"]
    res = w.trace(neighbour_solicitation(D.ofport, D.mac, "fd00:2::6", "fd00:2::7", sll=D.mac))
    assert res.ports == sorted([E.ofport, UPLINK]) and res.to(E.ofport)["icmp_type"] == 135
    from_fabric = neighbour_solicitation(UPLINK, mac(0x208), "fd00:2::8", "fd00:2::1", sll=mac(0x208))
    res = w.trace(from_fabric | {"vlans": [200]})
    assert sorted(res.ports) == [D.ofport, E.ofport] and res.to(D.ofport)["icmp_type"] == 135


# --- conntrack ------------------------------------------------------------------------------
def test_connection_committed_and_reply_established(walkers):
    w = walkers["node-1"]
    first = w.trace(ping(A, B.mac, B.ips[0], proto="tcp"))
    assert first.to(B.ofport)["ct_state"] == {"trk", "new"}
    assert len(w.ct.conns) == 1 and w.ct.conns[0].zone == 7
    reply = reply_of(ping(A, B.mac, B.ips[0], proto="tcp"), B.ofport)
    res = w.trace(reply)
    assert res.ports == [A.ofport]
    assert res.to(A.ofport)["ct_state"] == {"trk", "est", "rpl"}
    assert len(w.ct.conns) == 1  # established connections are not committed again


def test_invalid_connection_dropped(walkers):
    res = walkers["node-1"].trace(ping(A, B.mac, B.ips[0], proto="tcp", ct_invalid=True))
    assert res.dropped and ("ct_state", 200) in res.path


def test_zones_are_per_vpc(walkers):
    w = walkers["node-1"]
    w.trace(ping(A, B.mac, B.ips[0], proto="tcp"))
    w.trace(ip_packet(X.ofport, X.mac, mac(0x106), X.ips[0], "10.0.1.6", proto="tcp"))
    assert sorted(c.zone for c in w.ct.conns) == [7, 8]


# --- IPv6 -----------------------------------------------------------------------------------
def test_ipv6_same_subnet_and_spoofing(walkers):
    w = walkers["node-2"]
    ok = ip_packet(D.ofport, D.mac, E.mac, "fd00:2::6", "fd00:2::7")
    assert w.trace(ok).ports == [E.ofport]
    assert w.trace(ip_packet(D.ofport, D.mac, E.mac, "fd00:2::99", "fd00:2::7")).dropped


def test_ipv6_neighbour_discovery(walkers):
    w = walkers["node-2"]
    ns = ip_packet(D.ofport, D.mac, "33:33:ff:00:00:07", "fd00:2::6", "ff02::1:ff00:7",
                   icmp_type=135, nd_target="fd00:2::7")
    res = w.trace(ns)
    assert res.ports == sorted([E.ofport, UPLINK])
    assert ("ct_zone", 300) in res.path  # ND bypasses conntrack
    na_own = ip_packet(D.ofport, D.mac, E.mac, "fd00:2::6", "fd00:2::7", icmp_type=136, nd_target="fd00:2::6")
    assert w.trace(na_own).ports == [E.ofport]
    na_spoof = ip_packet(D.ofport, D.mac, E.mac, "fd00:2::6", "fd00:2::7", icmp_type=136, nd_target="fd00:2::7")
    assert w.trace(na_spoof).dropped


def test_host_stack_traffic_dropped(walkers):
    res = walkers["node-1"].trace(ip_packet("LOCAL", mac(200), A.mac, "192.168.0.1", A.ips[0]))
    assert res.dropped and res.path == [("classifier", 100)]
