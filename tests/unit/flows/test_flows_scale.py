"""A small scale sanity check (not timed): 50 pods, 5 nodes, 2 VPCs with overlapping CIDRs."""
from __future__ import annotations

import random

from flow_invariants import all_flows, compile_checked
from flow_scenarios import scale
from vpcnet.flows.inputs import router_mac
from walker import Walker, ip_packet


def test_fifty_pods_compile_and_connect():
    cluster = scale(50, 5)
    walkers = {}
    for node in cluster.nodes:
        owners = compile_checked(cluster, node.name)
        walkers[node.name] = Walker(all_flows(owners))
        local = [p for p in cluster.pods if p.node == node.name]
        assert sum(1 for o in owners if o.startswith("pod/")) == len(cluster.pods)  # both VPCs present
        assert all(o.owner in owners for o in local)
    rng = random.Random(1)
    for src in cluster.pods:
        same_vpc = [p for p in cluster.pods if p.vpc == src.vpc and p is not src]
        for dst in rng.sample(same_vpc, 3):
            routed = dst.subnet != src.subnet
            dst_subnet = cluster.subnet(dst.subnet)
            pkt = ip_packet(src.ofport, src.mac, router_mac(cluster.vpc(src.vpc).vpc_id) if routed else dst.mac,
                            src.ips[0], dst.ips[0])
            res = walkers[src.node].trace(pkt)
            if routed and dst_subnet.private:
                assert res.dropped
                continue
            if dst.node == src.node:
                assert res.ports == [dst.ofport]
                out = res.to(dst.ofport)
            else:
                out = res.to(1)
                assert out["vlans"] == [dst_subnet.vlan]
                out["in_port"] = 1
                out = walkers[dst.node].trace(out).to(dst.ofport)
            assert out["dl_dst"] == dst.mac and out["nw_ttl"] == (63 if routed else 64)
