"""Per-subnet flows (owner "subnet/<name>") on every node where the subnet's VPC has an active pod.

* classifier: uplink traffic tagged with the subnet's VLAN -> pop the tag, FROM_UPLINK, VPC_ID,
  SUBNET_ID -> ct_zone (uplink traffic skips port_sec: it was checked on the sender's node);
* l3_fwd (priority 300): the gateway answers the pods of this subnet in the switch, as the VPC
  router (router MAC), back out IN_PORT, for each of the subnet's gateway addresses:
  - IPv4: ARP requests for the gateway -> ARP reply; ICMP echo requests to the gateway (sent to
    the router MAC) -> echo reply (type 8 -> 0, addresses swapped);
  - IPv6: ICMPv6 echo requests -> echo reply (128 -> 129); neighbour solicitations for the
    gateway -> neighbour advertisement (R|S|O flags, target link-layer option = router MAC), in
    two steps (see ``model.nd_solicit_to_advert``): l3_fwd makes the solicitation an
    advertisement and continues to arp_responder (300), which addresses it and sends it back.
    Solicitations without a source link-layer option (DAD from ``::``; OVS cannot add an option)
    are dropped at priority 310 instead of answered.
  Only pods of *this* subnet are answered: the gateway of another subnet of the VPC is routed
  (and dropped in l3_neigh, no pod has its address), another VPC's gateway hits no route;
* l3_fwd (priority 200, only when the VPC's l3_mode is "distributed"): the *route into* this
  subnet: a pod packet of the same VPC (VPC_ID) addressed to the router MAC with a destination
  in one of this subnet's CIDRs -> dec_ttl, src MAC = the *node router MAC* (``NodeIn.router_mac``,
  one per node, see inputs.py: never the VPC router MAC, which every node shares and the EVPN
  leaves would see move between nodes), SUBNET_ID = this subnet -> l3_neigh (which rewrites the
  dst MAC, or drops unknown destinations). Every route matches
  VPC_ID, so there is no route between VPCs by construction. A *private* subnet only accepts
  routed traffic from itself and its ``allow_subnets`` (one route per allowed source subnet);
* l3_fwd (priority 200): *peering routes* into this subnet from every VPC peered with its VPC
  (``ClusterIn.peers_of``; not into private subnets): a pod packet of the peer VPC addressed to
  the peer's router MAC with a destination here -> dec_ttl, node router MAC, VPC_ID = this VPC,
  SUBNET_ID = this subnet, PEER_SRC_VPC = the peer -> l3_neigh. From then on the packet is this
  VPC's: its ingress policy judges it and ct_commit commits it in both zones (policy.py). A VPC
  is present wherever a peer has a pod, so these routes and the pods' l3_neigh entries are there;
* l2_fwd (100): broadcast/multicast -> every local pod port of the subnet (in ofport order) and
  the uplink tagged with the subnet VLAN (OVS never outputs to the in_port, so nothing hairpins);
* l2_fwd (50): any other unicast is for a pod on another node (or outside): reg3 = uplink;
* output (200): packets of this subnet for the uplink are tagged with its VLAN.

Only the flood flow depends on which pods are local, which is why a pod add/delete on a node
also recomputes its subnet's owner on that node. The routes depend on the node's datapath id
(its node router MAC): a node change recomputes every owner on that node (compile.py).

The answers are owned by the subnet (feature SUBNET, like every flow here): a gateway change is a
subnet change and a router MAC change a VPC change, both of which recompile this owner.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

from .base import P_HIGH, P_LOW, P_NORMAL
from .fields import FROM_EXTERNAL, FROM_POD, FROM_UPLINK, OUTPUT_TO_TARGET, PEER_SRC_VPC, SUBNET_ID, TARGET_OFPORT, VPC_ID
from .inputs import ClusterIn, NodeIn, SubnetIn, VpcIn
from .model import (
    ARP, DROP, ICMP, IP, ICMP6, ICMP_ECHO_REQUEST, ICMPV6_ECHO_REQUEST, MULTICAST_BIT, ND_NA, ND_NS, DecTtl,
    Flow, Goto, Load, Match, Output, PopVlan, PushVlan, SetField, arp_reply, echo_reply, ip_proto,
    nd_advert_reply, nd_solicit_to_advert, set_vlan_vid,
)
from .pipeline import PIPELINE

P_UNKNOWN_UNICAST = 50
P_ND_NO_SLL = 310
NO_MAC = "00:00:00:00:00:00"


def subnet_flows(cluster: ClusterIn, subnet: SubnetIn, node: NodeIn) -> frozenset[Flow]:
    vpc = cluster.vpc(subnet.vpc)
    if vpc.l3_mode == "distributed" and subnet.private:
        sources = tuple(cluster.subnet(n).subnet_id for n in sorted({subnet.name, *subnet.allow_subnets}))
    else:
        sources = None
    peers = () if subnet.private else tuple(cluster.vpc(p) for p in cluster.peers_of(vpc.name))
    local_ports = sorted(p.ofport for p in cluster.local_pods(node.name, subnet.name))
    flows = (static_subnet_flows(subnet, vpc, node.uplink_ofport, sources, node.router_mac, peers)
             | {_flood(subnet, node.uplink_ofport, local_ports)})
    if sources is None and vpc.l3_mode == "distributed":
        if node.external_ofport is not None:
            flows |= _external_routes(subnet, vpc, node.router_mac)
        flows |= _node_ip_routes(cluster, subnet, vpc, node)
    return flows


P_NODE_IP_ROUTE = 210   # above the subnet routes (a node IP must not be in a VPC's CIDRs; if it is, it wins)


def _node_ip_routes(cluster: ClusterIn, subnet: SubnetIn, vpc: VpcIn, node: NodeIn) -> frozenset[Flow]:
    """An endpoint's replies to another node's IP (a NodePort client SNATed there, policy
    Cluster) go back to that node: from this subnet's pods, to the node's router MAC, out of the
    uplink in this subnet's VLAN (the way its request came: that node routed it into this subnet
    with its router MAC as source)."""
    out = []
    for other in cluster.nodes_with_external():
        if other.name != node.name:
            out.append(PIPELINE.flow(
                "l3_fwd", P_NODE_IP_ROUTE, Match(IP, FROM_POD, VPC_ID.eq(vpc.vpc_id), SUBNET_ID.eq(subnet.subnet_id),
                                                 dl_dst=vpc.router_mac, nw_dst=other.node_ip),
                (DecTtl(), SetField("eth_src", node.router_mac), SetField("eth_dst", other.router_mac),
                 Goto("l2_fwd")), owner=subnet.owner))
    return frozenset(out)


def _external_routes(subnet: SubnetIn, vpc: VpcIn, node_mac: str) -> frozenset[Flow]:
    """NodePort clients (FROM_EXTERNAL, DNATed to an endpoint by svc_lb) are routed into the
    VPC's public IPv4 subnets like a pod's packets."""
    route = (DecTtl(), SetField("eth_src", node_mac), Load(SUBNET_ID, subnet.subnet_id), Goto("l3_neigh"))
    return frozenset(PIPELINE.flow("l3_fwd", P_NORMAL, Match(IP, FROM_EXTERNAL, VPC_ID.eq(vpc.vpc_id),
                                                               dl_dst=vpc.router_mac, nw_dst=cidr), route,
                                   owner=subnet.owner)
                     for cidr in subnet.cidrs if ":" not in cidr)


# Everything but the flood flow depends only on the subnet and VPC values, the uplink port,
# (private subnets) the ids of the allowed source subnets and (routes) the node router MAC.
# Two value-keyed caches (a hit must match the values: identity first, equality second),
# bounded like pod.py's cache:
# * _shared_cache: (subnet name, uplink) -> (subnet, vpc, flows): the flows but the routes,
#   the same on every node with that uplink port (one set of Flow objects for all of them);
# * _static_cache: (subnet name, uplink, node router MAC) -> (subnet, vpc, sources, flows):
#   those plus the routes of that node (node router MACs are unique in a ClusterIn).
STATIC_CACHE_MAX = 1 << 16
SHARED_CACHE_MAX = 1 << 14
_shared_cache: dict[tuple[str, int], tuple[SubnetIn, VpcIn, frozenset[Flow]]] = {}
_static_cache: dict[tuple[str, int, str], tuple[SubnetIn, VpcIn, tuple | None, tuple, frozenset[Flow]]] = {}


def _same(a, b) -> bool:
    return a is b or a == b


def _bounded_put(cache: dict, limit: int, key, value) -> None:
    if len(cache) >= limit:
        for k in list(itertools.islice(cache, limit // 2)):
            cache.pop(k, None)
    cache[key] = value


def static_subnet_flows(subnet: SubnetIn, vpc: VpcIn, uplink: int, sources: tuple | None,
                        node_mac: str, peers: tuple = ()) -> frozenset[Flow]:
    """Every flow of the subnet's owner on a node but the flood flow (see ``subnet_flows``)."""
    key = (subnet.name, uplink, node_mac)
    hit = _static_cache.get(key)
    if (hit is not None and _same(hit[0], subnet) and _same(hit[1], vpc) and hit[2] == sources
            and hit[3] == peers):
        return hit[4]
    flows = (_shared_subnet_flows(subnet, vpc, uplink) | _route_flows(subnet, vpc, sources, node_mac)
             | _peering_routes(subnet, vpc, peers, node_mac))
    _bounded_put(_static_cache, STATIC_CACHE_MAX, key, (subnet, vpc, sources, peers, flows))
    return flows


def _shared_subnet_flows(subnet: SubnetIn, vpc: VpcIn, uplink: int) -> frozenset[Flow]:
    key = (subnet.name, uplink)
    hit = _shared_cache.get(key)
    if hit is not None and _same(hit[0], subnet) and _same(hit[1], vpc):
        return hit[2]
    flows = _static_subnet_flows(subnet, vpc, uplink)
    _bounded_put(_shared_cache, SHARED_CACHE_MAX, key, (subnet, vpc, flows))
    return flows


def clear_cache() -> None:
    _static_cache.clear()
    _shared_cache.clear()
    _route_cache.clear()


def _static_subnet_flows(subnet: SubnetIn, vpc: VpcIn, uplink: int) -> frozenset[Flow]:
    """The subnet's flows that are the same on every node with this uplink port."""
    owner = subnet.owner
    rmac = vpc.router_mac
    in_vpc = VPC_ID.eq(vpc.vpc_id)
    in_subnet = SUBNET_ID.eq(subnet.subnet_id)
    fl = PIPELINE.flow
    flows = [
        fl("classifier", P_NORMAL, Match(in_port=uplink, dl_vlan=subnet.vlan),
           (PopVlan(), Load.mark(FROM_UPLINK), Load(VPC_ID, vpc.vpc_id),
            Load(SUBNET_ID, subnet.subnet_id), Goto("svc_unsnat")), owner=owner),
    ]
    for gw in subnet.gateways:
        flows += _gateway_answers(gw, rmac, in_vpc, in_subnet, owner)
    tag = (PushVlan(), set_vlan_vid(subnet.vlan), Output(uplink))
    flows += [
        fl("l2_fwd", P_UNKNOWN_UNICAST, Match(in_subnet),
           (Load(TARGET_OFPORT, uplink), Load.mark(OUTPUT_TO_TARGET), Goto("ingress_policy")), owner=owner),
        fl("output", P_NORMAL, Match(OUTPUT_TO_TARGET, in_subnet, TARGET_OFPORT.eq(uplink)), tag,
           owner=owner),
    ]
    return frozenset(flows)


def _route_flows(subnet: SubnetIn, vpc: VpcIn, sources: tuple | None, node_mac: str) -> frozenset[Flow]:
    """The routes into the subnet (l3_fwd, distributed VPCs only): packets addressed to the VPC
    router MAC leave with the node router MAC ``node_mac`` as source."""
    return _stamp_routes(_route_templates(subnet, vpc, sources), node_mac, subnet.owner)


def _peering_routes(subnet: SubnetIn, vpc: VpcIn, peers: tuple, node_mac: str) -> frozenset[Flow]:
    """Routes into the subnet from the pods of each peered VPC (see the module doc)."""
    return _stamp_routes(_peering_templates(subnet, vpc, peers), node_mac, subnet.owner)


# A route differs from node to node only in its source MAC (the node router MAC): its match and
# the rest of its actions are built once per subnet value ("templates": (match, actions after
# dec_ttl and the MAC)) and stamped per node, which is most of a full compile's saving
# (a Match costs far more than a Flow). Keyed by subnet name; a hit must match the values.
ROUTE_CACHE_MAX = 1 << 14
_route_cache: dict[tuple[str, str], tuple] = {}


def _stamp_routes(templates: tuple, node_mac: str, owner: str) -> frozenset[Flow]:
    if not templates:
        return frozenset()
    fl = PIPELINE.flow
    head = _DEC_TTL + _node_src(node_mac)
    return frozenset(fl("l3_fwd", P_NORMAL, match, head + tail, owner=owner) for match, tail in templates)


@lru_cache(maxsize=1 << 13)
def _node_src(node_mac: str) -> tuple:
    return (SetField("eth_src", node_mac),)


_DEC_TTL = (DecTtl(),)


def _route_templates(subnet: SubnetIn, vpc: VpcIn, sources: tuple | None) -> tuple:
    if vpc.l3_mode != "distributed":
        return ()
    key = ("route", subnet.name)
    hit = _route_cache.get(key)
    if hit is not None and _same(hit[0], subnet) and _same(hit[1], vpc) and hit[2] == sources:
        return hit[3]
    rmac = vpc.router_mac
    in_vpc = VPC_ID.eq(vpc.vpc_id)
    srcs = [SUBNET_ID.eq(i) for i in sources] if sources is not None else [None]
    tail = (Load(SUBNET_ID, subnet.subnet_id), Goto("l3_neigh"))
    templates = []
    for cidr in subnet.cidrs:
        proto = ip_proto(cidr)
        dst = "nw_dst" if proto.dl_type == 0x0800 else "ipv6_dst"
        for src in srcs:
            parts = (proto, FROM_POD, in_vpc) + ((src,) if src is not None else ())
            templates.append((Match(*parts, dl_dst=rmac, **{dst: cidr}), tail))
    out = tuple(templates)
    _bounded_put(_route_cache, ROUTE_CACHE_MAX, key, (subnet, vpc, sources, out))
    return out


def _peering_templates(subnet: SubnetIn, vpc: VpcIn, peers: tuple) -> tuple:
    if not peers or vpc.l3_mode != "distributed":
        return ()
    key = ("peering", subnet.name)
    hit = _route_cache.get(key)
    if hit is not None and _same(hit[0], subnet) and _same(hit[1], vpc) and hit[2] == peers:
        return hit[3]
    templates = []
    for peer in peers:
        tail = (Load(VPC_ID, vpc.vpc_id), Load(SUBNET_ID, subnet.subnet_id), Load(PEER_SRC_VPC, peer.vpc_id),
                Goto("l3_neigh"))
        for cidr in subnet.cidrs:
            proto = ip_proto(cidr)
            dst = "nw_dst" if proto.dl_type == 0x0800 else "ipv6_dst"
            templates.append((Match(proto, FROM_POD, VPC_ID.eq(peer.vpc_id), dl_dst=peer.router_mac, **{dst: cidr}),
                              tail))
    out = tuple(templates)
    _bounded_put(_route_cache, ROUTE_CACHE_MAX, key, (subnet, vpc, peers, out))
    return out


def _gateway_answers(gw: str, rmac: str, in_vpc, in_subnet, owner: str) -> list[Flow]:
    """The flows by which gateway address ``gw`` answers the pods of its subnet (see the module
    doc): ARP + ICMP echo for IPv4, neighbour solicitation + ICMPv6 echo for IPv6."""
    fl = PIPELINE.flow
    from_pod = (FROM_POD, in_vpc, in_subnet)
    if ":" not in gw:
        return [
            fl("l3_fwd", P_HIGH, Match(ARP, *from_pod, arp_op=1, arp_tpa=gw), arp_reply(rmac, gw), owner=owner),
            fl("l3_fwd", P_HIGH, Match(ICMP, *from_pod, dl_dst=rmac, nw_dst=gw, icmp_type=ICMP_ECHO_REQUEST,
                                       icmp_code=0),
               echo_reply(rmac, gw), owner=owner),
        ]
    solicit = Match(ICMP6, *from_pod, icmp_type=ND_NS, icmp_code=0, nd_target=gw)
    return [
        fl("l3_fwd", P_HIGH, Match(ICMP6, *from_pod, dl_dst=rmac, ipv6_dst=gw, icmp_type=ICMPV6_ECHO_REQUEST,
                                   icmp_code=0),
           echo_reply(rmac, gw), owner=owner),
        fl("l3_fwd", P_ND_NO_SLL, solicit.with_(nd_sll=NO_MAC), DROP, owner=owner),
        fl("l3_fwd", P_HIGH, solicit, nd_solicit_to_advert() + (_TO_ARP_RESPONDER,), owner=owner),
        fl("arp_responder", P_HIGH, Match(ICMP6, FROM_POD, in_subnet, icmp_type=ND_NA, icmp_code=0, nd_target=gw),
           nd_advert_reply(rmac, gw), owner=owner),
    ]


_TO_ARP_RESPONDER = Goto("arp_responder")


def _flood(subnet: SubnetIn, uplink: int, local_ports: list[int]) -> Flow:
    """Broadcast/multicast: every local pod port of the subnet, then the uplink tagged."""
    return PIPELINE.flow("l2_fwd", P_LOW, _flood_match(subnet.subnet_id),
                         tuple(map(_output, local_ports)) + _uplink_tag(subnet.vlan, uplink), owner=subnet.owner)


# One flood flow per (node, subnet) is built on every compile: share its immutable actions.
@lru_cache(maxsize=1 << 12)
def _output(port: int) -> Output:
    return Output(port)


@lru_cache(maxsize=1 << 14)
def _flood_match(subnet_id: int) -> Match:
    return Match(SUBNET_ID.eq(subnet_id), dl_dst=MULTICAST_BIT)


@lru_cache(maxsize=1 << 14)
def _uplink_tag(vlan: int, uplink: int) -> tuple:
    return (PushVlan(), set_vlan_vid(vlan), Output(uplink))
