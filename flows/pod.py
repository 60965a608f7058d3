"""Per-pod flows (owner "pod/<namespace>/<name>").

On the pod's own node (the pod is *local*):
* classifier: untagged frames from the pod's port -> FROM_POD, VPC_ID, SUBNET_ID -> port_sec
  (VLAN-tagged frames from a pod miss and are dropped);
* port_sec: only the pod's MAC with its own IPs passes: IPv4 ``ip,nw_src=<ip>``, ARP with
  ``arp_spa=<ip>,arp_sha=<mac>``, IPv6 ``ipv6_src=<ip>``; for IPv6 pods also neighbour
  solicitations (any source, for DAD) and advertisements only for their own targets or
  link-local ones. Everything else misses and is dropped;
* arp_responder (300): the pod's own ARP probes/gratuitous ARPs are flooded, never answered;
* l2_fwd (200): (subnet, pod MAC) -> reg3 = pod port.

On every node where the pod's VPC has an active pod (including its own):
* arp_responder (200): ARP requests from pods of the same subnet for the pod's IPv4 addresses are
  answered in the switch (no broadcast to the fabric);
* l3_neigh (200, only if the VPC routes): routed packets of the VPC for the pod's IPs get
  dst MAC = pod MAC -> l2_fwd (which sends them to the local port, or to the uplink tagged
  with the pod subnet's VLAN).
"""
from __future__ import annotations

from .base import P_HIGH, P_NORMAL
from .fields import FROM_POD, OUTPUT_TO_TARGET, SUBNET_ID, TARGET_OFPORT, VPC_ID
from .inputs import ClusterIn, NodeIn, PodIn
from .model import ARP, DROP, ICMP6, IP, IPV6, Flow, Goto, Load, Match, SetField, arp_reply, ip_proto
from .pipeline import PIPELINE

P_ND_TARGET = 210
P_ND_SPOOF = 205
P_ND_SOLICIT = 190
LINK_LOCAL = "fe80::/10"


def pod_flows(cluster: ClusterIn, pod: PodIn, node: NodeIn) -> frozenset[Flow]:
    subnet = cluster.subnet(pod.subnet)
    vpc = cluster.vpc(pod.vpc)
    owner = pod.owner
    in_vpc = VPC_ID.eq(vpc.vpc_id)
    in_subnet = SUBNET_ID.eq(subnet.subnet_id)
    v4 = [ip for ip in pod.ips if ":" not in ip]
    v6 = [ip for ip in pod.ips if ":" in ip]
    fl = PIPELINE.flow
    flows = []
    if pod.node == node.name and pod.ofport is not None:
        port = pod.ofport
        me = dict(in_port=port, dl_src=pod.mac)
        ok = (Goto("ct_zone"),)
        flows.append(fl("classifier", P_NORMAL, Match(in_port=port, vlan_tci=(0, 0x1FFF)),
                        (Load.mark(FROM_POD), Load(VPC_ID, vpc.vpc_id), Load(SUBNET_ID, subnet.subnet_id),
                         Goto("port_sec")), owner=owner))
        for ip in v4:
            flows += [
                fl("port_sec", P_NORMAL, Match(IP, nw_src=ip, **me), ok, owner=owner),
                fl("port_sec", P_NORMAL, Match(ARP, arp_spa=ip, arp_sha=pod.mac, **me), ok, owner=owner),
                fl("arp_responder", P_HIGH, Match(ARP, in_port=port, arp_tpa=ip), (Goto("l2_fwd"),),
                   owner=owner),
            ]
        for ip in v6:
            flows += [
                fl("port_sec", P_NORMAL, Match(IPV6, ipv6_src=ip, **me), ok, owner=owner),
                fl("port_sec", P_ND_TARGET, Match(ICMP6, icmp_type=136, nd_target=ip, **me), ok, owner=owner),
            ]
        if v6:
            flows += [
                fl("port_sec", P_ND_TARGET, Match(ICMP6, icmp_type=136, nd_target=LINK_LOCAL, **me), ok,
                   owner=owner),
                fl("port_sec", P_ND_SPOOF, Match(ICMP6, icmp_type=136, **me), DROP, owner=owner),
                fl("port_sec", P_ND_SOLICIT, Match(ICMP6, icmp_type=135, **me), ok, owner=owner),
            ]
        flows.append(fl("l2_fwd", P_NORMAL, Match(in_subnet, dl_dst=pod.mac),
                        (Load(TARGET_OFPORT, port), Load.mark(OUTPUT_TO_TARGET), Goto("ingress_policy")),
                        owner=owner))
    for ip in v4:
        flows.append(fl("arp_responder", P_NORMAL, Match(ARP, FROM_POD, in_subnet, arp_op=1, arp_tpa=ip),
                        arp_reply(pod.mac, ip), owner=owner))
    for ip in pod.ips if vpc.l3_mode == "distributed" else ():
        proto = ip_proto(ip)
        dst = "nw_dst" if proto is IP else "ipv6_dst"
        flows.append(fl("l3_neigh", P_NORMAL, Match(proto, in_vpc, **{dst: ip}),
                        (SetField("eth_dst", pod.mac), Goto("l2_fwd")), owner=owner))
    return frozenset(flows)
