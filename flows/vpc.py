"""Per-VPC flows (owner "vpc/<name>"), on every node where the VPC has an active pod.

* ct_zone: IPv4/IPv6 of this VPC -> ct(table=ct_state, zone=<vpc zone>, nat): the lookup also
  re-applies a connection's NAT (a Service's DNAT on the client's packets, its reverse on replies);
* ct_commit: new connections of this VPC are committed in its zone;
* svc_unsnat: replies to the Service hairpin address (service.py) are un-SNATed in the VPC's
  hairpin zone first.

The zone is the VPC id (fields.vpc_ct_zone), so overlapping CIDRs in different VPCs never
share conntrack state.
"""
from __future__ import annotations

from functools import lru_cache

from .base import P_NORMAL
from .fields import HAIRPIN_IP, HAIRPIN_IP6, SVC_HAIRPIN, VPC_ID, vpc_ct_zone, vpc_hairpin_zone
from .inputs import VpcIn
from .model import IP, IPV6, Ct, Flow, Goto, Load, Match, Nat
from .pipeline import PIPELINE


@lru_cache(maxsize=1 << 12)   # a pure function of the (frozen) VPC value
def vpc_flows(vpc: VpcIn) -> frozenset[Flow]:
    zone = vpc_ct_zone(vpc.vpc_id)
    in_vpc = VPC_ID.eq(vpc.vpc_id)
    flows = []
    # replies to the Service hairpin address: un-SNAT in the hairpin zone, then the VPC zone (service.py)
    for proto, dst in ((IP, {"nw_dst": HAIRPIN_IP}), (IPV6, {"ipv6_dst": HAIRPIN_IP6})):
        flows.append(PIPELINE.flow("svc_unsnat", P_NORMAL, Match(proto, in_vpc, **dst),
                                   (Load.mark(SVC_HAIRPIN), Ct(zone=vpc_hairpin_zone(vpc.vpc_id), nat=Nat(),
                                                                table="ct_zone")), owner=vpc.owner))
    for proto in (IP, IPV6):
        flows.append(PIPELINE.flow("ct_zone", P_NORMAL, Match(proto, in_vpc),
                                   (Ct(zone=zone, table="ct_state", nat=Nat()),), owner=vpc.owner))
        flows.append(PIPELINE.flow("ct_commit", P_NORMAL, Match(proto, in_vpc, ct_state="+new+trk"),
                                   (Ct(commit=True, zone=zone), Goto("output")), owner=vpc.owner))
    return frozenset(flows)
