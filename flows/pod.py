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

The second group (``shared_pod_flows``) does not depend on the node, so it is compiled once
per pod value and shared by every node; the first (``local_pod_flows``) is compiled on demand.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

from .base import P_HIGH, P_NORMAL
from .fields import (
    CT_SERVICE, FROM_POD, HAIRPIN_IP, HAIRPIN_IP6, OUTPUT_TO_TARGET, SUBNET_ID, SVC_HAIRPIN, TARGET_OFPORT, VPC_ID,
    vpc_hairpin_zone,
)
from .inputs import ClusterIn, NodeIn, PodIn, SubnetIn, VpcIn
from .model import ARP, DROP, ICMP6, IP, IPV6, Ct, Flow, Goto, Load, Match, Nat, SetField, arp_reply, ip_proto
from .pipeline import PIPELINE

P_ND_TARGET = 210
P_ND_SPOOF = 205
P_ND_SOLICIT = 190
LINK_LOCAL = "fe80::/10"


def pod_flows(cluster: ClusterIn, pod: PodIn, node: NodeIn) -> frozenset[Flow]:
    subnet = cluster.subnet(pod.subnet)
    vpc = cluster.vpc(pod.vpc)
    shared = shared_pod_flows(pod, subnet, vpc)
    if pod.node == node.name and pod.ofport is not None:
        return local_pod_flows(pod, subnet, vpc) | shared
    return shared


# The flows of a pod are a pure function of the (frozen) pod, subnet and VPC values, and a
# remote pod's flows are the same on every node: compile them once and share the frozenset.
# (namespace, name) -> (pod, subnet, vpc, flows); a hit must match all three values (identity
# first, equality second). Bounded: when full, the oldest half is dropped (a miss only costs a
# recompile).
SHARED_CACHE_MAX = 1 << 19
_shared_cache: dict[tuple[str, str], tuple[PodIn, SubnetIn, VpcIn, frozenset[Flow]]] = {}


def shared_pod_flows(pod: PodIn, subnet: SubnetIn, vpc: VpcIn, key: tuple[str, str] | None = None) -> frozenset[Flow]:
    """The pod's flows on every node where its VPC is present (ARP answer, L3 neighbour).
    ``key`` is ``pod.key`` if the caller has it at hand."""
    if key is None:
        key = (pod.namespace, pod.name)
    hit = _shared_cache.get(key)
    if (hit is not None and (hit[0] is pod or hit[0] == pod) and (hit[1] is subnet or hit[1] == subnet)
            and (hit[2] is vpc or hit[2] == vpc)):
        return hit[3]
    flows = _shared_pod_flows(pod, subnet, vpc)
    if len(_shared_cache) >= SHARED_CACHE_MAX:
        for k in list(itertools.islice(_shared_cache, SHARED_CACHE_MAX // 2)):
            _shared_cache.pop(k, None)
    _shared_cache[key] = (pod, subnet, vpc, flows)
    return flows


def clear_cache() -> None:
    _shared_cache.clear()


def _shared_pod_flows(pod: PodIn, subnet: SubnetIn, vpc: VpcIn) -> frozenset[Flow]:
    owner = pod.owner
    fl = PIPELINE.flow
    flows = []
    for ip in pod.ips:
        if ":" not in ip:
            flows.append(fl("arp_responder", P_NORMAL, _arp_answer_match(subnet.subnet_id).with_values(arp_tpa=ip),
                            arp_reply(pod.mac, ip), owner=owner))
    for ip in pod.ips if vpc.l3_mode == "distributed" else ():
        v6 = ":" in ip or ip_proto(ip) is not IP
        match = _neigh_match(vpc.vpc_id, v6)
        match = match.with_values(ipv6_dst=ip) if v6 else match.with_values(nw_dst=ip)
        flows.append(fl("l3_neigh", P_NORMAL, match, (SetField("eth_dst", pod.mac), _TO_L2_FWD), owner=owner))
    return frozenset(flows)


def local_pod_flows(pod: PodIn, subnet: SubnetIn, vpc: VpcIn) -> frozenset[Flow]:
    """The pod's extra flows on its own node (port security, classifier, local delivery)."""
    owner = pod.owner
    mac = pod.mac
    v4 = [ip for ip in pod.ips if ":" not in ip]
    v6 = [ip for ip in pod.ips if ":" in ip]
    fl = PIPELINE.flow
    port = pod.ofport
    ok = _OK
    # Matches are stamped from prototypes (Match.with_values: same result as Match(...)).
    flows = [fl("classifier", P_NORMAL, _M_CLASSIFIER.with_values(in_port=port),
                (_LOAD_FROM_POD, _load(VPC_ID, vpc.vpc_id), _load(SUBNET_ID, subnet.subnet_id), _TO_PORT_SEC),
                owner=owner)]
    for ip in v4:
        flows += [
            fl("port_sec", P_NORMAL, _M_PS_IP.with_values(nw_src=ip, in_port=port, dl_src=mac), ok, owner=owner),
            fl("port_sec", P_NORMAL, _M_PS_ARP.with_values(arp_spa=ip, arp_sha=mac, in_port=port, dl_src=mac), ok,
               owner=owner),
            fl("arp_responder", P_HIGH, _M_OWN_ARP.with_values(in_port=port, arp_tpa=ip), (_TO_L2_FWD,),
               owner=owner),
        ]
    for ip in v6:
        flows += [
            fl("port_sec", P_NORMAL, _M_PS_IP6.with_values(ipv6_src=ip, in_port=port, dl_src=mac), ok, owner=owner),
            fl("port_sec", P_ND_TARGET, _M_NA_TARGET.with_values(nd_target=ip, in_port=port, dl_src=mac), ok,
               owner=owner),
        ]
    if v6:
        flows += [
            fl("port_sec", P_ND_TARGET, _M_NA_TARGET.with_values(nd_target=LINK_LOCAL, in_port=port, dl_src=mac), ok,
               owner=owner),
            fl("port_sec", P_ND_SPOOF, _M_NA.with_values(in_port=port, dl_src=mac), DROP, owner=owner),
            fl("port_sec", P_ND_SOLICIT, _M_NS.with_values(in_port=port, dl_src=mac), ok, owner=owner),
        ]
    # Hairpin: a Service connection this pod makes to itself (Service DNATed it to its own
    # address, l2_fwd chose its own port): SNAT it to the hairpin address in the VPC's hairpin
    # zone, so the pod does not see its own address as the source, and send it back out of
    # its port (output table, SVC_HAIRPIN). Its replies come back through svc_unsnat.
    for family, on in ((4, v4), (6, v6)):
        if on:
            flows.append(fl("ct_commit", P_HAIRPIN,
                            _M_HAIRPIN[family].with_values(in_port=port, reg3=port, reg1=vpc.vpc_id),
                            _hairpin_actions(vpc.vpc_id, family), owner=owner))
    flows.append(fl("l2_fwd", P_NORMAL, _l2_match(subnet.subnet_id).with_values(dl_dst=mac),
                    (_load(TARGET_OFPORT, port), _LOAD_OUTPUT_TO_TARGET, _TO_INGRESS), owner=owner))
    return frozenset(flows)


# Match prototypes: every pod's matches have these fields; only the values change.
_ANY_MAC = "02:00:00:00:00:00"
_M_CLASSIFIER = Match(in_port=1, vlan_tci=(0, 0x1FFF))
_M_PS_IP = Match(IP, nw_src="0.0.0.0", in_port=1, dl_src=_ANY_MAC)
_M_PS_ARP = Match(ARP, arp_spa="0.0.0.0", arp_sha=_ANY_MAC, in_port=1, dl_src=_ANY_MAC)
_M_OWN_ARP = Match(ARP, in_port=1, arp_tpa="0.0.0.0")
_M_PS_IP6 = Match(IPV6, ipv6_src="::", in_port=1, dl_src=_ANY_MAC)
_M_NA_TARGET = Match(ICMP6, icmp_type=136, nd_target="::", in_port=1, dl_src=_ANY_MAC)
_M_NA = Match(ICMP6, icmp_type=136, in_port=1, dl_src=_ANY_MAC)
_M_NS = Match(ICMP6, icmp_type=135, in_port=1, dl_src=_ANY_MAC)


@lru_cache(maxsize=1 << 14)
def _arp_answer_match(subnet_id: int) -> Match:
    return Match(ARP, FROM_POD, SUBNET_ID.eq(subnet_id), arp_op=1, arp_tpa="0.0.0.0")


@lru_cache(maxsize=1 << 14)
def _neigh_match(vpc_id: int, v6: bool) -> Match:
    if v6:
        return Match(IPV6, VPC_ID.eq(vpc_id), ipv6_dst="::")
    return Match(IP, VPC_ID.eq(vpc_id), nw_dst="0.0.0.0")


@lru_cache(maxsize=1 << 14)
def _l2_match(subnet_id: int) -> Match:
    return Match(SUBNET_ID.eq(subnet_id), dl_dst=_ANY_MAC)


@lru_cache(maxsize=1 << 16)
def _load(field, value: int) -> Load:
    return Load(field, value)


# Actions every pod uses, built once (actions are immutable values; sharing them keeps the
# number of objects the garbage collector has to walk down).
_TO_L2_FWD = Goto("l2_fwd")
_TO_PORT_SEC = Goto("port_sec")
_TO_INGRESS = Goto("ingress_policy")
_OK = (Goto("svc_unsnat"),)
P_HAIRPIN = 400
_M_HAIRPIN = {family: Match(proto, CT_SERVICE, ("reg1", 1), ("reg3", 1), in_port=1, ct_state="-rpl+trk")
              for family, proto in ((4, IP), (6, IPV6))}


@lru_cache(maxsize=1 << 12)
def _hairpin_actions(vpc_id: int, family: int) -> tuple:
    return (Ct(commit=True, zone=vpc_hairpin_zone(vpc_id), nat=Nat("src", HAIRPIN_IP if family == 4 else HAIRPIN_IP6)),
            Load.mark(SVC_HAIRPIN), Goto("output"))
_LOAD_FROM_POD = Load.mark(FROM_POD)
_LOAD_OUTPUT_TO_TARGET = Load.mark(OUTPUT_TO_TARGET)
