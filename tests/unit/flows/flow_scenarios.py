"""Cluster intents used by the flow tests (plain values, no fixtures, so any test can build one).

``two_vpcs()`` (the golden/behaviour scenario):

  node-1 (uplink 1)                               node-2 (uplink 1)
  finance/a  web  10.0.1.5        port 3          finance/r  web  10.0.1.7          port 3
  finance/b  web  10.0.1.6        port 4          finance/d  db   10.0.2.6 fd00:2::6 port 4
  finance/c  app  10.0.3.8        port 5          finance/e  db   10.0.2.7 fd00:2::7 port 5
  retail/x   shop 10.0.1.5 (same IP as a!) port 6 lab/l1     lab-a 10.9.1.5       port 6
  finance/p  web  10.0.1.9        not wired (ofport None)
  lab/l2     lab-b 10.9.2.5       port 7

  vpc finance (id 7): web 10.0.1.0/24 vlan 100 | app 10.0.3.0/24 vlan 300 |
                      db 10.0.2.0/24 + fd00:2::/64 vlan 200, private, allows web
  vpc retail  (id 8): shop 10.0.1.0/24 vlan 110 (overlaps finance/web) | cart 10.8.0.0/24 vlan 120
  vpc lab     (id 9, l3_mode none): lab-a 10.9.1.0/24 vlan 901 | lab-b 10.9.2.0/24 vlan 902

  node-1 has datapath id 1 (node router MAC 02:00:00:00:00:01), node-2 datapath id 2
  (02:00:00:00:00:02): the source MAC of the packets each routes.
"""
from __future__ import annotations

from vpcnet.flows.inputs import ClusterIn, NodeIn, PodIn, SubnetIn, VpcIn

UPLINK = 1
ROUTER_FINANCE = "0e:76:70:ff:00:07"
ROUTER_RETAIL = "0e:76:70:ff:00:08"
ROUTER_LAB = "0e:76:70:ff:00:09"
NODE_MAC = {"node-1": "02:00:00:00:00:01", "node-2": "02:00:00:00:00:02"}   # node router MACs (dpid 1, 2)


def mac(n: int) -> str:
    return f"0e:76:70:00:{n >> 8:02x}:{n & 0xFF:02x}"


VPCS = (
    VpcIn("finance", 7, 1007),
    VpcIn("retail", 8, 1008),
    VpcIn("lab", 9, 1009, l3_mode="none"),
)
SUBNETS = (
    SubnetIn("web", "finance", ("10.0.1.0/24",), ("10.0.1.1",), 100, 5),
    SubnetIn("app", "finance", ("10.0.3.0/24",), ("10.0.3.1",), 300, 7),
    SubnetIn("db", "finance", ("10.0.2.0/24", "fd00:2::/64"), ("10.0.2.1", "fd00:2::1"), 200, 6,
             private=True, allow_subnets=("web",)),
    SubnetIn("shop", "retail", ("10.0.1.0/24",), ("10.0.1.1",), 110, 15),
    SubnetIn("cart", "retail", ("10.8.0.0/24",), ("10.8.0.1",), 120, 16),
    SubnetIn("lab-a", "lab", ("10.9.1.0/24",), ("10.9.1.1",), 901, 21),
    SubnetIn("lab-b", "lab", ("10.9.2.0/24",), ("10.9.2.1",), 902, 22),
)
NODES = (NodeIn("node-1", 1, UPLINK), NodeIn("node-2", 2, UPLINK))


def pod(ns, name, subnet, ips, n, node, port):
    vpc = {s.name: s.vpc for s in SUBNETS}[subnet]
    return PodIn(ns, name, vpc, subnet, tuple(ips), mac(n), node, port, f"veth{n}")


PODS = (
    pod("finance", "a", "web", ["10.0.1.5"], 5, "node-1", 3),
    pod("finance", "b", "web", ["10.0.1.6"], 6, "node-1", 4),
    pod("finance", "c", "app", ["10.0.3.8"], 8, "node-1", 5),
    pod("retail", "x", "shop", ["10.0.1.5"], 0x105, "node-1", 6),
    pod("finance", "p", "web", ["10.0.1.9"], 9, "node-1", None),
    pod("lab", "l2", "lab-b", ["10.9.2.5"], 0x902, "node-1", 7),
    pod("finance", "r", "web", ["10.0.1.7"], 7, "node-2", 3),
    pod("finance", "d", "db", ["10.0.2.6", "fd00:2::6"], 0x206, "node-2", 4),
    pod("finance", "e", "db", ["10.0.2.7", "fd00:2::7"], 0x207, "node-2", 5),
    pod("lab", "l1", "lab-a", ["10.9.1.5"], 0x901, "node-2", 6),
)

POD = {p.name: p for p in PODS}


def two_vpcs(**changes) -> ClusterIn:
    return ClusterIn(VPCS, SUBNETS, PODS, NODES, **changes)


def scale(n_pods: int = 50, n_nodes: int = 5) -> ClusterIn:
    """``n_pods`` pods spread over ``n_nodes`` nodes, two VPCs with two subnets each."""
    vpcs = (VpcIn("v1", 1, 101), VpcIn("v2", 2, 102))
    subnets = (
        SubnetIn("v1-a", "v1", ("10.1.0.0/16",), ("10.1.0.1",), 11, 11),
        SubnetIn("v1-b", "v1", ("10.2.0.0/16", "fd01:2::/64"), ("10.2.0.1",), 12, 12),
        SubnetIn("v2-a", "v2", ("10.1.0.0/16",), ("10.1.0.1",), 21, 21),
        SubnetIn("v2-b", "v2", ("10.3.0.0/16",), ("10.3.0.1",), 22, 22, private=True),
    )
    nodes = tuple(NodeIn(f"n{i}", i + 1, 1) for i in range(n_nodes))
    pods = []
    for i in range(n_pods):
        s = subnets[i % len(subnets)]
        base = s.cidrs[0].split(".")
        ips = [f"{base[0]}.{base[1]}.{i // 250 + 1}.{i % 250 + 2}"]
        if len(s.cidrs) > 1:
            ips.append(f"fd01:2::{i + 2:x}")
        pods.append(PodIn(f"ns{i % 3}", f"p{i}", s.vpc, s.name, tuple(ips), mac(0x1000 + i),
                          f"n{i % n_nodes}", 10 + i))
    return ClusterIn(vpcs, subnets, tuple(pods), nodes)
