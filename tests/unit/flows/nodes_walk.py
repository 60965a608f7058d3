"""Walking packets through every node's compiled flows (walker.Walker per node): a packet that
leaves a node on the uplink continues on the destination pod's node, as over the fabric."""
from __future__ import annotations

from flow_invariants import all_flows, compile_checked
from vpcnet.flows.compile import compile_node
from vpcnet.flows.inputs import ClusterIn, PodIn
from walker import Conntrack, Walker


class NodesWalk:
    def __init__(self, cluster: ClusterIn, uplink: int, check: bool = True):
        # (a node without pods keeps base flows the reachability invariant calls dead)
        def comp(n: str):
            return compile_checked(cluster, n) if check and cluster.vpcs_on_node(n) else compile_node(cluster, n)
        self.walkers = {n.name: Walker(all_flows(comp(n.name))) for n in cluster.nodes}
        self.cluster = cluster
        self.uplink = uplink

    def reset(self) -> None:
        """Forget every connection (a fresh conntrack on every node)."""
        for w in self.walkers.values():
            w.ct = Conntrack()

    def deliver(self, src: PodIn, dst: PodIn, pkt: dict) -> dict | None:
        """``pkt`` sent by ``src``: the packet as it leaves on ``dst``'s port, or None if it does
        not reach exactly that port."""
        res = self.walkers[src.node].trace(pkt)
        if src.node != dst.node:
            if res.ports != [self.uplink]:
                return None
            wire = res.to(self.uplink)
            wire["in_port"] = self.uplink
            res = self.walkers[dst.node].trace(wire)
        return res.to(dst.ofport) if res.ports == [dst.ofport] else None
