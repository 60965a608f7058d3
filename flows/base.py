"""Flows every node has (owner "base") and the per-node flows (owner "node/<name>").

base:
* one table-miss (priority 0) per table, from the table's declared miss policy; the miss of
  ``canary`` is the canary flow (if it is gone, OVS lost our flows and the app re-provisions);
* classifier: packets from LOCAL (the host stack) are dropped, unless the node has an external port;
* ct_zone: IPv6 neighbour discovery bypasses conntrack (it is not trackable, as in OVN);
* ct_state: +trk+inv is dropped;
* l3_fwd: anything else addressed to any router MAC (no route: other VPC, outside world,
  uplink) is dropped, so router traffic never leaks to the fabric;
* output: OUTPUT_TO_TARGET -> output to the port in reg3.

node/<name>: classifier: uplink traffic whose VLAN is not a subnet present here is dropped
(explicitly, below the per-subnet VLAN flows, so dumps show why). With an external port (the
node's NIC on br-int, its address on LOCAL): the host's traffic passes between the two, except
<node IP>:<nodePort> (svc_external, service.py); replies to NodePort clients leave by it (l3_fwd);
for externalTrafficPolicy Cluster their connections are SNATed to the node IP (ct_commit) and
the replies un-SNATed (svc_unsnat).
"""
from __future__ import annotations

from functools import lru_cache

from .fields import (
    CT_LABEL_EGRESS_RULE, CT_LABEL_RULE, CT_SVC_EXTERNAL, CT_SVC_SNAT, FROM_EXTERNAL, HAIRPIN_ZONE_BIT, OUTPUT_TO_TARGET,
    POLICY_EGRESS_RULE, POLICY_INGRESS_RULE, SVC_HAIRPIN, SVC_SNAT_ZONE, SVC_SNAT_ZONE_LOW15, SVC_VPC_ZONE,
    TARGET_OFPORT, VPC_ID_LOW15,
)
from .inputs import ROUTER_MAC_PREFIX, NodeIn
from .model import (
    DROP, ICMP, ICMP6, IP, ND_NA, ND_NS, UDP, UDP6, Ct, DecTtl, Flow, Goto, Load, Match, Move, Nat, Output, Resubmit,
)
from .pipeline import PIPELINE

P_LOW = 100
P_NORMAL = 200
P_HIGH = 300
P_HAIRPIN_OUT = 150
P_SERVER_ROLE = 1000   # port_sec: above every per-pod allow

# What a pod may not send whatever its addresses (port_sec, before the per-pod allows): the
# answers of network infrastructure, which a rogue pod could use to take over its neighbours'
# traffic. (match, why) -- the why is for people reading `vpcnet flows`.
SERVER_ROLE_DROPS = (
    (Match(UDP, tp_src=67, tp_dst=68), "DHCPv4 server -> client (offer/ack)"),
    (Match(UDP6, tp_src=547, tp_dst=546), "DHCPv6 server/relay -> client (advertise/reply)"),
    (Match(ICMP6, icmp_type=134), "ICMPv6 router advertisement"),
    (Match(ICMP6, icmp_type=137), "ICMPv6 redirect"),
    (Match(ICMP, icmp_type=5), "ICMP redirect"),
)


@lru_cache(maxsize=1)
def base_flows() -> frozenset[Flow]:
    owner = "base"
    fl = PIPELINE.flow
    flows = [PIPELINE.miss_flow(name, owner) for name in PIPELINE.names()]
    flows += [
        fl("classifier", P_LOW, Match(in_port="LOCAL"), DROP, owner=owner),
        *(fl("port_sec", P_SERVER_ROLE, m, DROP, owner=owner) for m, _ in SERVER_ROLE_DROPS),
        *(fl("ct_zone", P_HIGH, Match(ICMP6, icmp_type=t), (Goto("ct_state"),), owner=owner)
          for t in (ND_NS, ND_NA)),
        fl("ct_state", P_NORMAL, Match(ct_state="+inv+trk"), DROP, owner=owner),
        fl("l3_fwd", P_LOW, Match(dl_dst=(f"{ROUTER_MAC_PREFIX}:00:00", "ff:ff:ff:ff:00:00")), DROP,
           owner=owner),
        fl("output", P_LOW, Match(OUTPUT_TO_TARGET), (Output(TARGET_OFPORT),), owner=owner),
        # a Service connection from a pod to itself goes back out of the port it came in on
        fl("output", P_HAIRPIN_OUT, Match(OUTPUT_TO_TARGET, SVC_HAIRPIN), (Output("IN_PORT"),), owner=owner),
    ]
    return frozenset(flows)


P_EXTERNAL_REPLY = 250   # l3_fwd: above the routes and the router-MAC drop
P_SNAT = 330             # ct_commit: above the VPC's (200), policy's (300, 310) and peering's (320) commits
# the rule ids that admitted a new connection (policy.py), written into its conntrack entry
COMMIT_LABELS = (Move(POLICY_INGRESS_RULE, CT_LABEL_RULE), Move(POLICY_EGRESS_RULE, CT_LABEL_EGRESS_RULE))


def node_flows(node: NodeIn) -> frozenset[Flow]:
    fl, owner = PIPELINE.flow, node.owner
    flows = [fl("classifier", P_LOW, Match(in_port=node.uplink_ofport), DROP, owner=owner)]
    ext = node.external_ofport
    if ext is not None:    # the node's NIC on br-int: NodePorts stolen, the rest is the host's
        flows += [
            fl("classifier", P_NORMAL, Match(in_port=ext), (Goto("svc_external"),), owner=owner),
            fl("classifier", P_NORMAL, Match(in_port="LOCAL"), (Output(ext),), owner=owner),
            fl("svc_external", P_LOW, Match(in_port=ext), (Output("LOCAL"),), owner=owner),
            # replies to NodePort clients (un-NATed already): back to the client's MAC, out of the NIC
            fl("l3_fwd", P_EXTERNAL_REPLY, Match(IP, CT_SVC_EXTERNAL, ct_state="+rpl+trk"),
               (DecTtl(), Resubmit("svc_ext_neigh"), Load(TARGET_OFPORT, ext), Load.mark(OUTPUT_TO_TARGET),
                Goto("output")), owner=owner),
            # externalTrafficPolicy Cluster: the endpoint (here or on another node) sees the node IP;
            # the SNAT is in the VPC's hairpin zone (svc_external loaded both zones), after policy
            fl("ct_commit", P_SNAT, Match(IP, FROM_EXTERNAL, CT_SVC_SNAT, ct_state="+new+trk"),
               (Ct(commit=True, zone=SVC_VPC_ZONE, exec_=COMMIT_LABELS),
                Ct(commit=True, zone=SVC_SNAT_ZONE, nat=Nat("src", node.node_ip), table="output")), owner=owner),
            fl("ct_commit", P_SNAT, Match(IP, FROM_EXTERNAL, CT_SVC_SNAT, ct_state="-new-rpl+trk"),
               (Ct(zone=SVC_SNAT_ZONE, nat=Nat(), table="output"),), owner=owner),
            # ... and its replies to the node IP (from a local pod or the uplink) are un-SNATed first
            fl("svc_unsnat", P_NORMAL, Match(IP, nw_dst=node.node_ip),
               (Load(SVC_SNAT_ZONE, HAIRPIN_ZONE_BIT), Move(VPC_ID_LOW15, SVC_SNAT_ZONE_LOW15),
                Ct(zone=SVC_SNAT_ZONE, nat=Nat(), table="ct_zone")), owner=owner),
        ]
    return frozenset(flows)
