"""Per-VPC flows (owner "vpc/<name>"), on every node where the VPC has an active pod.

* ct_zone: IPv4/IPv6 of this VPC -> ct(table=ct_state, zone=<vpc zone>, nat): the lookup also
  re-applies a connection's NAT (a Service's DNAT on the client's packets, its reverse on replies);
* ct_commit: new connections of this VPC are committed in its zone;
* svc_unsnat / ct_commit: the hairpin and NodePort SNATs of service.py, in the VPC's hairpin zone.

The zone is the VPC id (fields.vpc_ct_zone), so overlapping CIDRs in different VPCs never
share conntrack state.
"""
from __future__ import annotations

from functools import lru_cache

from .base import P_NORMAL
from .fields import (CT_LABEL_EGRESS_RULE, CT_LABEL_RULE, CT_SVC_SNAT, HAIRPIN_IP, NODEPORT_SNAT_IP, POLICY_EGRESS_RULE,
                     POLICY_INGRESS_RULE, SVC_HAIRPIN, VPC_ID, vpc_ct_zone, vpc_hairpin_zone)
from .inputs import VpcIn
from .model import IP, IPV6, Ct, Flow, Goto, Load, Match, Move, Nat
from .pipeline import PIPELINE

P_SNAT = 330   # ct_commit: above the VPC's (200), policy's (300, 310) and peering's (320) commits
# the rule ids that admitted a new connection (policy.py), written into its conntrack entry
COMMIT_LABELS = (Move(POLICY_INGRESS_RULE, CT_LABEL_RULE), Move(POLICY_EGRESS_RULE, CT_LABEL_EGRESS_RULE))


@lru_cache(maxsize=1 << 12)   # a pure function of the (frozen) VPC value
def vpc_flows(vpc: VpcIn) -> frozenset[Flow]:
    zone = vpc_ct_zone(vpc.vpc_id)
    in_vpc = VPC_ID.eq(vpc.vpc_id)
    flows = []
    # replies to the Service hairpin address: un-SNAT in the hairpin zone, then the VPC zone (service.py)
    flows.append(PIPELINE.flow("svc_unsnat", P_NORMAL, Match(IP, in_vpc, nw_dst=HAIRPIN_IP),
                               (Load.mark(SVC_HAIRPIN), Ct(zone=vpc_hairpin_zone(vpc.vpc_id), nat=Nat(),
                                                            table="ct_zone")), owner=vpc.owner))
    # NodePort clients under externalTrafficPolicy Cluster: SNATed to NODEPORT_SNAT_IP in the hairpin
    # zone after everything else (ct_commit), their endpoint's replies un-SNATed first (svc_unsnat)
    hairpin = vpc_hairpin_zone(vpc.vpc_id)
    flows += [
        PIPELINE.flow("svc_unsnat", P_NORMAL, Match(IP, in_vpc, nw_dst=NODEPORT_SNAT_IP),
                      (Ct(zone=hairpin, nat=Nat(), table="ct_zone"),), owner=vpc.owner),
        PIPELINE.flow("ct_commit", P_SNAT, Match(IP, in_vpc, CT_SVC_SNAT, ct_state="+new+trk"),
                      (Ct(commit=True, zone=zone, exec_=COMMIT_LABELS),
                       Ct(commit=True, zone=hairpin, nat=Nat("src", NODEPORT_SNAT_IP), table="output")),
                      owner=vpc.owner),
        PIPELINE.flow("ct_commit", P_SNAT, Match(IP, in_vpc, CT_SVC_SNAT, ct_state="-new-rpl+trk"),
                      (Ct(zone=hairpin, nat=Nat(), table="output"),), owner=vpc.owner),
    ]
    for proto in (IP, IPV6):
        flows.append(PIPELINE.flow("ct_zone", P_NORMAL, Match(proto, in_vpc),
                                   (Ct(zone=zone, table="ct_state", nat=Nat()),), owner=vpc.owner))
        flows.append(PIPELINE.flow("ct_commit", P_NORMAL, Match(proto, in_vpc, ct_state="+new+trk"),
                                   (Ct(commit=True, zone=zone), Goto("output")), owner=vpc.owner))
    return frozenset(flows)
