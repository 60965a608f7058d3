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
present; a node change recomputes everything on that node (its uplink port and its datapath
id, hence its node router MAC, the source MAC of its routes, are in its subnets' flows; no
other node's flows depend on them).

Security policy (policy.py): when the cluster has a SecurityGroup or NetworkPolicy, every VPC
present on a node has the owner ``policy/<vpc>`` there. A pod change also recomputes it on
every node of the pod's VPC (labels, IPs and ports are peers and targets); a change of a policy
object (``Change`` with owner ``policy/...``, e.g. ``policy/np/<ns>/<name>``,
``policy/sg/<name>``, ``policy/ns/<name>``) recomputes every policy owner everywhere. ``compile_owner`` returns the empty
set for an owner that is no longer present, which tells the reconciler to delete its flows.

Cookies carry round 0; the reconciler ORs in its round (``cookies.with_round``).

Cost (what keeps 5,000 nodes / 150,000 pods compilable, see bench/compile_bench.py). Flows
are immutable values, so identical ones are built once and shared:
* a pod's flows on the nodes where it is remote are the same everywhere (pod.py caches them
  by pod value); every subnet flow but the flood one and the routes (whose source MAC is the
  node router MAC) is the same on every node with the same uplink port (subnet.py caches them,
  and the routes per node router MAC); vpc and base flows likewise;
* per VPC, the sorted (owner, flows) table of its VPC owner and its remote pods is kept in
  ``ClusterIn.vpc_memo`` (dropped by ClusterIn when the VPC changes), and the merge of the
  tables of a set of VPCs is kept per cluster value (nodes running the same VPCs share it), so
  ``compile_node`` builds only what is node-specific: its own flow, its subnets' flood flows
  and its local pods' flows;
* ``compile_owner`` memoises, per cluster value, what it learned about an owner (the pod, its
  shared flows, the nodes of its VPC), so a pod change recompiled on every node of its VPC
  costs one set lookup per node.
Every cache is keyed by the input values it was computed from: a result never depends on
which path (compile_node, compile_owner, derived or rebuilt ClusterIn) computed it first.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

from . import pod as _pod_module, subnet as _subnet_module
from .base import base_flows, node_flows
from .cookies import owner_kind
from .inputs import ClusterIn, PodIn
from .model import Flow
from .pod import local_pod_flows, shared_pod_flows
from .policy import node_independent, pod_matters, policy_flows
from .service import service_flows
from .subnet import subnet_flows
from .vpc import vpc_flows

EMPTY: frozenset[Flow] = frozenset()


def clear_caches() -> None:
    """Drop every value-keyed flow cache (tests and benchmarks; results never depend on them)."""
    _pod_module.clear_cache()
    _subnet_module.clear_cache()
    vpc_flows.cache_clear()


_by_owner = itemgetter(0)


# --- per-VPC memo (ClusterIn.vpc_memo: dropped by ClusterIn when the VPC's slice changes) ---
def _vpc_table(cluster: ClusterIn, vpc: str) -> tuple[tuple[str, frozenset[Flow]], ...]:
    """(owner, flows) of ``vpc/<vpc>`` and of every active pod of the VPC *as seen from a node
    where it is not local*, sorted by owner: identical on every node where the VPC is present."""
    memo = cluster.vpc_memo(vpc)
    table = memo.get("table")
    if table is None:
        v = cluster.vpc(vpc)
        items = [(v.owner, vpc_flows(v))]
        subnet = cluster.subnet
        items += [(p.owner, shared_pod_flows(p, subnet(p.subnet), v)) for p in cluster.active_pods_of_vpc(vpc)]
        items.sort(key=_by_owner)
        table = memo["table"] = tuple(items)
    return table


MERGED_MAX = 256   # sets of VPCs whose merged table a cluster value keeps (~0.3 MB each at 3x1500 pods)


def _merged_tables(cluster: ClusterIn, vpcs: frozenset[str]) -> dict[str, frozenset[Flow]]:
    """owner -> flows for every owner of ``vpcs`` (subnet owners with a placeholder), in owner
    order: what every node running exactly these VPCs shares. Kept per cluster value."""
    memo = cluster.value_memo()
    merged = memo.get(vpcs)
    if merged is None:
        items = []
        for vpc in vpcs:
            items += _vpc_table(cluster, vpc)
            items += [(s.owner, EMPTY) for s in cluster.subnets_of(vpc)]
        items.sort(key=_by_owner)
        merged = dict(items)
        n = memo.get(_MERGED_COUNT, 0)
        if n < MERGED_MAX:
            memo[vpcs] = merged
            memo[_MERGED_COUNT] = n + 1
    return merged


_MERGED_COUNT = ("merged tables",)


def _vpc_owners(cluster: ClusterIn, vpc: str) -> frozenset[str]:
    if cluster.find_vpc(vpc) is None:
        return frozenset()
    memo = cluster.vpc_memo(vpc)
    owners = memo.get("owners")
    if owners is None:
        owners = memo["owners"] = frozenset(
            {f"vpc/{vpc}"} | {s.owner for s in cluster.subnets_of(vpc)}
            | {p.owner for p in cluster.active_pods_of_vpc(vpc)})
    return owners


def _svc_owners(cluster: ClusterIn, vpc: str) -> frozenset[str]:
    """``svc/<ns>/<name>`` of the VPC's services that have a cluster IP (flows where it is present)."""
    if not cluster.services:
        return frozenset()
    memo = cluster.value_memo()
    hit = memo.get(("svc owners", vpc))
    if hit is None:
        hit = memo[("svc owners", vpc)] = frozenset(
            s.owner for s in cluster.services if s.vpc == vpc and s.cluster_ip is not None)
    return hit


def _svc_owners_of_pod(cluster: ClusterIn, key: tuple[str, str]) -> frozenset[str]:
    """Services with an endpoint on pod ``key`` (a named target port resolves on the pod)."""
    if not cluster.services:
        return frozenset()
    memo = cluster.value_memo()
    index = memo.get("svc owners by pod")
    if index is None:
        index = {}
        for s in cluster.services:
            for e in s.endpoints:
                if e.pod is not None:
                    index.setdefault(e.pod, set()).add(s.owner)
        memo["svc owners by pod"] = index
    return frozenset(index.get(key, ()))


def owners_on_node(cluster: ClusterIn, node: str) -> frozenset[str]:
    """Every owner with flows on ``node``."""
    if cluster.find_node(node) is None:
        return frozenset()
    out = {"base", f"node/{node}"}
    for vpc in cluster.vpcs_on_node(node):
        out |= _vpc_owners(cluster, vpc)
        if has_policy_owner(cluster, vpc):
            out.add(f"policy/{vpc}")
        out |= _svc_owners(cluster, vpc)
    return frozenset(out)


def has_policy_owner(cluster: ClusterIn, vpc: str) -> bool:
    """Whether ``vpc`` has the owner ``policy/<vpc>`` where it is present: the cluster has
    security policy, or the VPC is peered (cross-VPC traffic is denied unless allowed)."""
    return cluster.has_policy or bool(cluster.peers_of(vpc))


def _policy_owners(cluster: ClusterIn, vpc: str) -> frozenset[str]:
    """``policy/<vpc>`` where the cluster has security policy (one owner per VPC, see policy.py)."""
    return (frozenset((f"policy/{vpc}",)) if cluster.find_vpc(vpc) is not None and has_policy_owner(cluster, vpc)
            else frozenset())


@lru_cache(maxsize=1 << 16)
def _parse_owner(owner: str) -> tuple[str, str, tuple[str, str]]:
    """(kind, name, (namespace, pod name)); raises ValueError for a malformed owner."""
    kind = owner_kind(owner)
    name = owner.split("/", 1)[-1]
    ns, _, pname = name.partition("/")
    return kind, name, (ns, pname)


def _owner_facts(cluster: ClusterIn, owner: str) -> tuple:
    """What compile_owner needs about ``owner`` whatever the node: (kind, the pod if it is an
    active pod, its shared flows, the nodes where its VPC is present). Memoised per cluster
    value (ClusterIn.value_memo)."""
    kind, _, key = _parse_owner(owner)
    if kind != "pod":
        return kind, None, EMPTY, EMPTY
    pod = cluster.find_pod(*key)
    if pod is None or not cluster.is_active(pod):
        return kind, None, EMPTY, EMPTY
    return (kind, pod, shared_pod_flows(pod, cluster.subnet(pod.subnet), cluster.vpc(pod.vpc), key),
            cluster.nodes_with_vpc(pod.vpc))


def compile_owner(cluster: ClusterIn, node: str, owner: str) -> frozenset[Flow]:
    """The flows ``owner`` has on ``node`` (empty if it has none there, or the node is unknown)."""
    # The hot path of a pod change (one call per node of the pod's VPC) touches as little
    # per-node state as it can: one lookup in the set of nodes where the pod's VPC is present
    # (such a node is a known node), which stays in the CPU cache across the calls.
    memo = cluster.__dict__.get("_value_memo") or cluster.value_memo()
    hit = memo.get(owner)
    if hit is None:
        if cluster.find_node(node) is None:
            return EMPTY
        hit = memo[owner] = _owner_facts(cluster, owner)
    kind, pod, shared, vpc_nodes = hit
    if kind == "pod":
        if node not in vpc_nodes:   # also: pod inactive (empty set)
            return EMPTY
        if pod.node == node:
            return local_pod_flows(pod, cluster.subnet(pod.subnet), cluster.vpc(pod.vpc)) | shared
        return shared
    return _compile_other(cluster, node, owner)


def _compile_other(cluster: ClusterIn, node: str, owner: str) -> frozenset[Flow]:
    """compile_owner for the owners that are not pods (base, node, vpc, subnet, ...)."""
    nd = cluster.find_node(node)
    if nd is None:
        return EMPTY
    kind, name, _ = _parse_owner(owner)
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
    if kind == "policy":
        return policy_flows(cluster, node, name) if cluster.find_vpc(name) is not None else EMPTY
    if kind == "svc":
        svc = cluster.find_service(*name.split("/", 1))
        return service_flows(cluster, node, svc) if svc is not None else EMPTY
    return EMPTY


def compile_node(cluster: ClusterIn, node: str) -> dict[str, frozenset[Flow]]:
    """Every flow of ``node``, grouped by owner (sorted). Raises KeyError for an unknown node.

    Same result as ``compile_owner`` for every owner of ``owners_on_node``, assembled from the
    per-VPC tables (shared by every node where the VPC is present) plus what is specific to this
    node: its own flows, its subnets' flows (uplink, local ports) and its local pods.
    """
    nd = cluster.node(node)
    present = cluster.vpcs_on_node(node)
    # "base" < "node/..." < "pod/..." < "subnet/..." < "vpc/...": base and node first, then the
    # sorted owners of the node's VPCs (merged once per set of VPCs), then node-specific values
    # replace the placeholders in place (dict order is kept).
    out = {"base": base_flows(), nd.owner: node_flows(nd)}
    out.update(_merged_tables(cluster, present))
    for vpc_name in present:
        vpc = cluster.vpc(vpc_name)
        for s in cluster.subnets_of(vpc_name):
            out[s.owner] = subnet_flows(cluster, s, nd)
            for p in cluster.local_pods(node, s.name):
                out[p.owner] = local_pod_flows(p, s, vpc) | shared_pod_flows(p, s, vpc)
    policy = [v for v in present if has_policy_owner(cluster, v)]
    for vpc_name in policy:
        out[f"policy/{vpc_name}"] = policy_flows(cluster, node, vpc_name)
    services = [s for s in cluster.services if s.vpc in present and s.cluster_ip is not None]
    for s in services:
        flows = service_flows(cluster, node, s)
        if flows:
            out[s.owner] = flows
    if policy or services:
        out = dict(sorted(out.items(), key=_by_owner))
    return out


@dataclass(frozen=True)
class Change:
    """One object changed between two cluster states; ``owner`` names it ("pod/ns/name", ...)."""

    before: ClusterIn
    after: ClusterIn
    owner: str


# frozenset of node names (ClusterIn.nodes_with_vpc, shared by every value derived while the
# VPC stays on the same nodes) -> the names sorted. Keyed by identity; holds the set alive.
_sorted_cache: dict[int, tuple[frozenset, tuple[str, ...]]] = {}


def _sorted_nodes(nodes: frozenset[str]) -> tuple[str, ...]:
    hit = _sorted_cache.get(id(nodes))
    if hit is not None and hit[0] is nodes:
        return hit[1]
    if len(_sorted_cache) >= 4096:
        _sorted_cache.clear()
    out = tuple(sorted(nodes))
    _sorted_cache[id(nodes)] = (nodes, out)
    return out


def _pod_states(change: Change) -> list[tuple[ClusterIn, PodIn]]:
    ns, _, name = change.owner.split("/", 1)[1].partition("/")
    out = []
    for cluster in (change.before, change.after):
        pod = cluster.find_pod(ns, name)
        if pod is not None and cluster.is_active(pod):
            out.append((cluster, pod))
    return out


def _external_of(node) -> tuple | None:
    return None if node is None or node.external_ofport is None else (node.node_ip, node.router_mac)


def owners_affected(change: Change) -> dict[str, frozenset[str]]:
    """node -> owners to recompute there with ``compile_owner(change.after, node, owner)``."""
    before, after = change.before, change.after
    kind = owner_kind(change.owner)
    out: dict[str, set[str]] = defaultdict(set)
    if kind == "base":
        for n in sorted({n.name for n in before.nodes} | {n.name for n in after.nodes}):
            out[n].add("base")
    elif kind == "node":
        n = change.owner.split("/", 1)[1]
        out[n] = set(owners_on_node(before, n) | owners_on_node(after, n))
        old, new = before.find_node(n), after.find_node(n)
        if _external_of(old) != _external_of(new):
            # its node IP is routed from every other node's subnets (subnet.py _node_ip_routes)
            for c in (before, after):
                for other in c.nodes:
                    for vpc in c.vpcs_on_node(other.name):
                        out[other.name] |= {s.owner for s in c.subnets_of(vpc)}
    elif kind in ("vpc", "subnet"):
        name = change.owner.split("/", 1)[1]
        if kind == "vpc":
            vpcs = {name}
        else:
            vpcs = {c.find_subnet(name).vpc for c in (before, after) if c.find_subnet(name) is not None}
        # peers: their presence follows this VPC's, their routes and policy name its CIDRs
        vpcs |= {p for v in vpcs for c in (before, after) for p in c.peers_of(v)}
        for vpc in vpcs:
            owners = (_vpc_owners(before, vpc) | _vpc_owners(after, vpc) | _policy_owners(before, vpc)
                      | _policy_owners(after, vpc) | _svc_owners(before, vpc) | _svc_owners(after, vpc))
            for n in before.nodes_with_vpc(vpc) | after.nodes_with_vpc(vpc):
                out[n] |= owners
    elif kind == "svc":
        ns, name = change.owner.split("/", 2)[1:]
        for c in (before, after):
            svc = c.find_service(ns, name)
            if svc is not None:
                for n in before.nodes_with_vpc(svc.vpc) | after.nodes_with_vpc(svc.vpc):
                    out[n].add(change.owner)
    elif kind == "policy":
        # a SecurityGroup, NetworkPolicy or Namespace changed: every policy owner everywhere
        for cluster in (before, after):
            for v in cluster.vpcs:
                owners = _policy_owners(before, v.name) | _policy_owners(after, v.name)
                for n in before.nodes_with_vpc(v.name) | after.nodes_with_vpc(v.name):
                    out[n] |= owners
    elif kind == "pod":
        # Usually just the pod's own owner on every node of its VPC: all those nodes share one
        # frozenset, and sets are built only for the few nodes that need more.
        only = frozenset((change.owner,))
        res: dict[str, frozenset[str]] = {}
        key = tuple(change.owner.split("/", 2)[1:])
        # every state of the pod, wired or not: policy selects pods by what they are (an
        # unwired pod's address is already a peer), the data path only wired pods
        states = [(c, p) for c in (before, after) if (p := c.find_pod(*key)) is not None]
        vpcs = {p.vpc for _, p in states}
        for cluster, pod in _pod_states(change):
            res.update(dict.fromkeys(cluster.nodes_with_vpc(pod.vpc), only))
            out[pod.node].add(f"subnet/{pod.subnet}")
        for vpc in vpcs:
            nodes_before, nodes_after = before.nodes_with_vpc(vpc), after.nodes_with_vpc(vpc)
            policy = _policy_owners(before, vpc) | _policy_owners(after, vpc)
            if nodes_before is not nodes_after and nodes_before != nodes_after:
                owners = (_vpc_owners(before, vpc) | _vpc_owners(after, vpc) | policy | _svc_owners(before, vpc)
                          | _svc_owners(after, vpc))
                for n in nodes_before ^ nodes_after:
                    out[n] |= owners
            svcs = _svc_owners_of_pod(before, key) | _svc_owners_of_pod(after, key)
            if svcs:      # a named target port resolved on this pod
                for n in nodes_before | nodes_after:
                    out[n] |= svcs
            # A pod that no selector, group or named-port rule sees, in any state, changes no
            # policy flow anywhere (pod_matters judges each state with vpc_policy's selectors).
            if policy and any(pod_matters(c, p) for c, p in states if p.vpc == vpc):
                # The pod's node(s): its targets. Every node of the VPC only if the pod changed
                # what every node sees: a peer address, a named port, a rule's pieces.
                if (before.find_vpc(vpc) is not None and after.find_vpc(vpc) is not None
                        and node_independent(before, vpc) == node_independent(after, vpc)):
                    for _, pod in _pod_states(change):
                        out[pod.node] |= policy
                else:
                    for n in nodes_before | nodes_after:
                        out[n] |= policy
            for peer in set(before.peers_of(vpc)) | set(after.peers_of(vpc)):
                # a peer is present wherever this VPC is: it comes and goes with it
                p_before, p_after = before.nodes_with_vpc(peer), after.nodes_with_vpc(peer)
                if p_before is not p_after and p_before != p_after:
                    owners = (_vpc_owners(before, peer) | _vpc_owners(after, peer) | _policy_owners(before, peer)
                              | _policy_owners(after, peer) | _svc_owners(before, peer) | _svc_owners(after, peer))
                    for n in p_before ^ p_after:
                        out[n] |= owners
        for n, extra in out.items():
            res[n] = res.get(n, frozenset()) | extra
        if len(vpcs) == 1:
            vpc = next(iter(vpcs))
            nodes = after.nodes_with_vpc(vpc) or before.nodes_with_vpc(vpc)
            if res.keys() == nodes:   # the usual case: no need to sort the nodes again
                return {n: res[n] for n in _sorted_nodes(nodes)}
        return {n: res[n] for n in sorted(res) if res[n]}
    return {n: frozenset(o) for n, o in sorted(out.items()) if o}
