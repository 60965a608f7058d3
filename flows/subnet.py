"""Per-subnet flows (owner "subnet/<name>") on every node where the subnet's VPC has an active pod.

* classifier: uplink traffic tagged with the subnet's VLAN -> pop the tag, FROM_UPLINK, VPC_ID,
  SUBNET_ID -> ct_zone (uplink traffic skips port_sec: it was checked on the sender's node);
* l3_fwd (priority 300): ARP requests from pods of this subnet for an IPv4 gateway are answered
  in the switch with the VPC router MAC (sent back out IN_PORT);
* l3_fwd (priority 200, only when the VPC's l3_mode is "distributed"): the *route into* this
  subnet: a pod packet of the same VPC (VPC_ID) addressed to the router MAC with a destination
  in one of this subnet's CIDRs -> dec_ttl, src MAC = router MAC, SUBNET_ID = this subnet ->
  l3_neigh (which rewrites the dst MAC, or drops unknown destinations). Every route matches
  VPC_ID, so there is no route between VPCs by construction. A *private* subnet only accepts
  routed traffic from itself and its ``allow_subnets`` (one route per allowed source subnet);
* l2_fwd (100): broadcast/multicast -> every local pod port of the subnet (in ofport order) and
  the uplink tagged with the subnet VLAN (OVS never outputs to the in_port, so nothing hairpins);
* l2_fwd (50): any other unicast is for a pod on another node (or outside): reg3 = uplink;
* output (200): packets of this subnet for the uplink are tagged with its VLAN.

Only the flood flow depends on which pods are local, which is why a pod add/delete on a node
also recomputes its subnet's owner on that node.

IPv6 gateways get routes but no neighbour-discovery answers yet (ND needs a packet-in
responder; a later feature).
"""
from __future__ import annotations

from .base import P_HIGH, P_LOW, P_NORMAL
from .fields import FROM_POD, FROM_UPLINK, OUTPUT_TO_TARGET, SUBNET_ID, TARGET_OFPORT, VPC_ID
from .inputs import ClusterIn, NodeIn, SubnetIn
from .model import (
    ARP, MULTICAST_BIT, DecTtl, Flow, Goto, Load, Match, Output, PopVlan, PushVlan, SetField,
    arp_reply, ip_proto, set_vlan_vid,
)
from .pipeline import PIPELINE

P_UNKNOWN_UNICAST = 50


def subnet_flows(cluster: ClusterIn, subnet: SubnetIn, node: NodeIn) -> frozenset[Flow]:
    vpc = cluster.vpc(subnet.vpc)
    owner = subnet.owner
    rmac = vpc.router_mac
    in_vpc = VPC_ID.eq(vpc.vpc_id)
    in_subnet = SUBNET_ID.eq(subnet.subnet_id)
    uplink = node.uplink_ofport
    fl = PIPELINE.flow
    flows = [
        fl("classifier", P_NORMAL, Match(in_port=uplink, dl_vlan=subnet.vlan),
           (PopVlan(), Load.mark(FROM_UPLINK), Load(VPC_ID, vpc.vpc_id),
            Load(SUBNET_ID, subnet.subnet_id), Goto("ct_zone")), owner=owner),
    ]
    for gw in subnet.gateways:
        if ":" in gw:
            continue
        flows.append(fl("l3_fwd", P_HIGH, Match(ARP, FROM_POD, in_vpc, in_subnet, arp_op=1, arp_tpa=gw),
                        arp_reply(rmac, gw), owner=owner))
    if vpc.l3_mode == "distributed":
        if subnet.private:
            sources = [SUBNET_ID.eq(cluster.subnet(n).subnet_id)
                       for n in sorted({subnet.name, *subnet.allow_subnets})]
        else:
            sources = [None]
        route = (DecTtl(), SetField("eth_src", rmac), Load(SUBNET_ID, subnet.subnet_id), Goto("l3_neigh"))
        for cidr in subnet.cidrs:
            proto = ip_proto(cidr)
            dst = "nw_dst" if proto.dl_type == 0x0800 else "ipv6_dst"
            for src in sources:
                parts = (proto, FROM_POD, in_vpc) + ((src,) if src is not None else ())
                flows.append(fl("l3_fwd", P_NORMAL, Match(*parts, dl_dst=rmac, **{dst: cidr}), route,
                                owner=owner))
    local_ports = sorted(p.ofport for p in cluster.local_pods(node.name, subnet.name))
    tag = (PushVlan(), set_vlan_vid(subnet.vlan), Output(uplink))
    flows += [
        fl("l2_fwd", P_LOW, Match(in_subnet, dl_dst=MULTICAST_BIT),
           tuple(Output(p) for p in local_ports) + tag, owner=owner),
        fl("l2_fwd", P_UNKNOWN_UNICAST, Match(in_subnet),
           (Load(TARGET_OFPORT, uplink), Load.mark(OUTPUT_TO_TARGET), Goto("ingress_policy")), owner=owner),
        fl("output", P_NORMAL, Match(OUTPUT_TO_TARGET, in_subnet, TARGET_OFPORT.eq(uplink)), tag,
           owner=owner),
    ]
    return frozenset(flows)
