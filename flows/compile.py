"""Entry points: the whole flow set of a node, one owner's flows, and which owners a change touches.

Which owners exist on node N (everything else compiles to the empty set there):
* ``base`` and ``node/N`` always;
* for every VPC V with an *active* pod on N (port wired, ``ofport`` set): ``vpc/V``, every
  ``subnet/S`` of V, and ``pod/ns/name`` for every active pod of V, wherever it runs.
  Remote pods contribute only their ARP answer and their L3 neighbour entry (pod.py); the
  packets themselves leave through the uplink tagged with the destination subnet's VLAN.

What a pod add/delete/update recomputes (``owners_affected``), per node:
* the pod's own owner on every node where its VPC is present (before or after);
* its subnet's owner on its own node (the flood flow lists the local pod ports);
* and, only when the change makes the VPC appear on or vanish from a node (first/last active
  pod of that VPC there), every owner of that VPC on that node.
A subnet or VPC change recomputes every owner of that VPC on every node where the VPC is
present; a node change recomputes everything on that node. ``compile_owner`` returns the empty
set for an owner that is no longer present, which tells the reconciler to delete its flows.

Cookies carry round 0; the reconciler ORs in its round (``cookies.with_round``).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .base import base_flows, node_flows
from .cookies import owner_kind
from .inputs import ClusterIn, PodIn
from .model import Flow
from .pod import pod_flows
from .subnet import subnet_flows
from .vpc import vpc_flows

EMPTY: frozenset[Flow] = frozenset()


def _vpc_owners(cluster: ClusterIn, vpc: str) -> set[str]:
    if cluster.find_vpc(vpc) is None:
        return set()
    return ({f"vpc/{vpc}"} | {s.owner for s in cluster.subnets_of(vpc)}
            | {p.owner for p in cluster.active_pods_of_vpc(vpc)})


def owners_on_node(cluster: ClusterIn, node: str) -> frozenset[str]:
    """Every owner with flows on ``node``."""
    if cluster.find_node(node) is None:
        return frozenset()
    out = {"base", f"node/{node}"}
    for vpc in cluster.vpcs_on_node(node):
        out |= _vpc_owners(cluster, vpc)
    return frozenset(out)


def compile_owner(cluster: ClusterIn, node: str, owner: str) -> frozenset[Flow]:
    """The flows ``owner`` has on ``node`` (empty if it has none there, or the node is unknown)."""
    nd = cluster.find_node(node)
    if nd is None:
        return EMPTY
    kind = owner_kind(owner)
    name = owner.split("/", 1)[-1]
    present = cluster.vpcs_on_node(node)
    if kind == "base":
        return base_flows()
    if kind == "node":
        return node_flows(nd) if name == node else EMPTY
    if kind == "vpc":
        vpc = cluster.find_vpc(name)
        return vpc_flows(vpc) if vpc is not None and vpc.name in present else EMPTY
    if kind == "subnet":
        subnet = cluster.find_subnet(name)
        return subnet_flows(cluster, subnet, nd) if subnet is not None and subnet.vpc in present else EMPTY
    if kind == "pod":
        ns, _, pname = name.partition("/")
        pod = cluster.find_pod(ns, pname)
        if pod is None or not cluster.is_active(pod) or pod.vpc not in present:
            return EMPTY
        return pod_flows(cluster, pod, nd)
    return EMPTY  # features compiled elsewhere (policy, svc) own nothing here


def compile_node(cluster: ClusterIn, node: str) -> dict[str, frozenset[Flow]]:
    """Every flow of ``node``, grouped by owner. Raises KeyError for an unknown node."""
    cluster.node(node)
    return {owner: compile_owner(cluster, node, owner) for owner in sorted(owners_on_node(cluster, node))}


@dataclass(frozen=True)
class Change:
    """One object changed between two cluster states; ``owner`` names it ("pod/ns/name", ...)."""

    before: ClusterIn
    after: ClusterIn
    owner: str


def _pod_states(change: Change) -> list[tuple[ClusterIn, PodIn]]:
    ns, _, name = change.owner.split("/", 1)[1].partition("/")
    out = []
    for cluster in (change.before, change.after):
        pod = cluster.find_pod(ns, name)
        if pod is not None and cluster.is_active(pod):
            out.append((cluster, pod))
    return out


def owners_affected(change: Change) -> dict[str, frozenset[str]]:
    """node -> owners to recompute there with ``compile_owner(change.after, node, owner)``."""
    before, after = change.before, change.after
    kind = owner_kind(change.owner)
    nodes = sorted({n.name for n in before.nodes} | {n.name for n in after.nodes})
    out: dict[str, set[str]] = defaultdict(set)
    if kind == "base":
        for n in nodes:
            out[n].add("base")
    elif kind == "node":
        n = change.owner.split("/", 1)[1]
        out[n] = set(owners_on_node(before, n) | owners_on_node(after, n))
    elif kind in ("vpc", "subnet"):
        name = change.owner.split("/", 1)[1]
        if kind == "vpc":
            vpcs = {name}
        else:
            vpcs = {c.find_subnet(name).vpc for c in (before, after) if c.find_subnet(name) is not None}
        for vpc in vpcs:
            for n in before.nodes_with_vpc(vpc) | after.nodes_with_vpc(vpc):
                out[n] |= _vpc_owners(before, vpc) | _vpc_owners(after, vpc)
    elif kind == "pod":
        vpcs = set()
        for cluster, pod in _pod_states(change):
            vpcs.add(pod.vpc)
            for n in cluster.nodes_with_vpc(pod.vpc):
                out[n].add(pod.owner)
            out[pod.node].add(f"subnet/{pod.subnet}")
        for vpc in vpcs:
            for n in before.nodes_with_vpc(vpc) ^ after.nodes_with_vpc(vpc):
                out[n] |= _vpc_owners(before, vpc) | _vpc_owners(after, vpc)
    return {n: frozenset(o) for n, o in sorted(out.items()) if o}
