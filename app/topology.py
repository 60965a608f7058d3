"""State database rows + what the switches report -> the flow compiler's input (flows.ClusterIn).

Two sources meet here:
* intent and allocations from the state database (Vpc, Subnet, Pod status, Node);
* the OpenFlow port numbers each connected br-int reports (port name -> ofport). A pod is
  *wired* when its host-side port (``Pod.status.port``, else ``pod_port_name()``) exists on its
  node's bridge; the uplink is ``Node.spec.uplinkPort``. Nothing in the database stores an
  ofport: OVS assigns it, and the switch is the only authority on it.

Rows that cannot be compiled (a pod whose subnet is gone, a VPC without an id yet, a node
whose uplink port is missing) are left out and reported as *problems* — one bad object must
never take the flows of every other object down with it.

Two ways to a Topology, with the same result (tests/unit/app/test_topology.py checks it):
* ``build`` reads every row (start, reconnect, and any Vpc/Subnet/Node change);
* ``update`` derives the next value from the last one for what a CNI ADD/DEL changes: some Pod
  rows and some pod ports. It costs O(changed pods) (``ClusterIn.with_pods``/``without_pods``
  share everything else), where ``build`` costs O(all pods) — per flow-engine pass. It returns
  None when it cannot be sure to match ``build`` (pods clashing over an address or port: who
  wins depends on creation order; a change the compiler input refuses), and the caller builds.
"""
from __future__ import annotations

import hashlib
import json
import dataclasses
from dataclasses import dataclass, field

import netaddr

from vpcnet.app.ipam.plan import SubnetPlan
from vpcnet.app.intent.workload import ANN_SECURITY_GROUPS
from vpcnet.flows.inputs import peering_overlap
from vpcnet.flows.service_inputs import ServiceIn
from vpcnet.flows import (
    ClusterIn, InputError, NamespaceIn, NetworkPolicyIn, NodeIn, PodIn, SecurityGroupIn, SubnetIn, VpcIn,
    node_router_mac,
)

PORT_PREFIX = "vp"


def pod_port_name(namespace: str, name: str) -> str:
    """The host-side interface name of a pod's veth: 'vp' + 12 hex digits (fits IFNAMSIZ 15)."""
    digest = hashlib.blake2b(f"{namespace}/{name}".encode(), digest_size=6).hexdigest()
    return f"{PORT_PREFIX}{digest}"


def _json(text) -> dict:
    return json.loads(text) if text else {}


@dataclass
class Topology:
    cluster: ClusterIn
    problems: list[str] = field(default_factory=list)
    node_by_dpid: dict[int, str] = field(default_factory=dict)
    node_specs: dict[str, dict] = field(default_factory=dict)
    # What ``update`` needs (not part of the value): see _Pods. Handed on to the next value.
    pods_index: "_Pods | None" = field(default=None, compare=False, repr=False)
    # Set by ``update``: the pods whose compiler input differs from the value it started from
    # (None after ``build``: compare everything).
    changed_pods: frozenset | None = field(default=None, compare=False, repr=False)
    # Set by ``with_security``: the policy objects changed (and nothing else).
    changed_policy: bool = field(default=False, compare=False, repr=False)
    # Set by ``with_services``: the Services changed (and nothing else).
    changed_services: bool = field(default=False, compare=False, repr=False)


class _Pods:
    """What ``update`` needs besides the cluster: (node, port name) -> the keys of the pods in
    the cluster wired through that port; the pods left out with a problem, key ->
    (creation order, text, clash?); and the problems that are not about pods.

    Owned by one Topology value at a time: ``update`` moves it to the value it returns."""

    def __init__(self, network_problems: list[str], security_problems=(), service_problems=()):
        # the problems of the rows other than pods: network rows, policy objects, services
        self.network_problems = list(network_problems)
        self.security_problems = list(security_problems)
        self.service_problems = list(service_problems)
        self.by_port: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.problems: dict[tuple[str, str], tuple[tuple, str, bool]] = {}
        self.clashes = 0
        self.owner: Topology | None = None

    @property
    def base_problems(self) -> list[str]:
        return self.network_problems + self.security_problems + self.service_problems

    def wire(self, key, where: tuple[str, str] | None, add: bool) -> None:
        if where is None:
            return
        if add:
            self.by_port.setdefault(where, set()).add(key)
            return
        users = self.by_port.get(where)
        if users is not None:
            users.discard(key)
            if not users:
                del self.by_port[where]

    def set_problem(self, key, problem: tuple[tuple, str, bool] | None) -> None:
        old = self.problems.pop(key, None)
        if old is not None and old[2]:
            self.clashes -= 1
        if problem is not None:
            self.problems[key] = problem
            if problem[2]:
                self.clashes += 1

    def problem_list(self) -> list[str]:
        if not self.problems:
            return list(self.base_problems)
        return self.base_problems + [text for _, text, _ in sorted(self.problems.values())]


@dataclass(frozen=True)
class Security:
    """The policy objects as compiler input (for ``ClusterIn.with_security``) and their problems."""
    namespaces: tuple = ()
    security_groups: tuple = ()
    network_policies: tuple = ()
    problems: tuple = ()


def security(ns_rows=(), sg_rows=(), np_rows=()) -> Security:
    """Namespace, SecurityGroup and NetworkPolicy rows -> compiler input. A row that cannot be
    converted is left out with a problem, so one bad object never takes the others down. (The
    intent validator refuses such specs before they reach the database; a NetworkPolicy left
    out opens what it would have isolated, so the problem is logged and counted.)"""
    problems: list[str] = []
    namespaces, groups, policies = [], [], []
    for row in sorted(ns_rows, key=lambda r: r.name):
        try:
            namespaces.append(NamespaceIn(row.name, dict(row.labels)))
        except InputError as exc:
            problems.append(f"Namespace/{row.name}: {exc}")
    for row in sorted(sg_rows, key=lambda r: r.name):
        try:
            groups.append(SecurityGroupIn.from_spec(row.name, _json(row.spec)))
        except (InputError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"SecurityGroup/{row.name}: {exc}")
    for row in sorted(np_rows, key=lambda r: (r.namespace, r.name)):
        try:
            policies.append(NetworkPolicyIn.from_spec(row.namespace, row.name, _json(row.spec)))
        except (InputError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"NetworkPolicy/{row.namespace}/{row.name}: {exc}")
    return Security(tuple(namespaces), tuple(groups), tuple(policies), tuple(problems))


def with_security(topo: Topology, sec: Security) -> Topology:
    """``topo`` with other policy objects (a Namespace, SecurityGroup or NetworkPolicy changed):
    network values and the pod index are shared, no other row is read again. The state behind
    ``topo`` moves to the returned value, as with ``update``."""
    index = topo.pods_index
    if index is None or index.owner is not topo:
        raise ValueError("with_security needs the latest topology value")
    cluster = topo.cluster.with_security(namespaces=sec.namespaces, security_groups=sec.security_groups,
                                         network_policies=sec.network_policies)
    index.security_problems = list(sec.problems)
    new = Topology(cluster, index.problem_list(), topo.node_by_dpid, topo.node_specs, index)
    new.changed_pods = frozenset()
    new.changed_policy = True
    index.owner = new
    return new


def with_services(topo: Topology, svc: Services) -> Topology:
    """``topo`` with other Services (a Service or Endpoints row changed), sharing the rest;
    the state behind ``topo`` moves to the returned value, as with ``update``."""
    index = topo.pods_index
    if index is None or index.owner is not topo:
        raise ValueError("with_services needs the latest topology value")
    kept, left_out = [], []
    for x in svc.services:     # one pass (membership tests on the kept tuple were O(N^2))
        (kept if topo.cluster.find_vpc(x.vpc) is not None else left_out).append(x)
    cluster = topo.cluster.with_services(tuple(kept))
    index.service_problems = list(svc.problems) + [
        f"Service/{x.namespace}/{x.name}: vpc {x.vpc!r} is unknown or left out" for x in left_out]
    new = Topology(cluster, index.problem_list(), topo.node_by_dpid, topo.node_specs, index)
    new.changed_pods = frozenset()
    new.changed_services = True
    index.owner = new
    return new


@dataclass(frozen=True)
class Services:
    """The Services as compiler input (``ClusterIn.with_services``) and their problems."""
    services: tuple = ()
    problems: tuple = ()


def namespace_vpcs(vpc_rows, ns_rows) -> dict[str, str]:
    """namespace -> VPC, as the store resolves it: a Vpc listing it in spec.namespaces (first by
    name), else the Namespace's spec.vpc; other namespaces belong to the VPC "default"."""
    out: dict[str, str] = {}
    for row in sorted(ns_rows, key=lambda r: r.name):
        vpc = _json(row.spec).get("vpc")
        if vpc:
            out[row.name] = vpc
    for row in sorted(vpc_rows, key=lambda r: r.name, reverse=True):
        for ns in _json(row.spec).get("namespaces") or ():
            out[ns] = row.name
    return out


def services(vpc_rows, ns_rows, svc_rows, ep_rows, cache: dict | None = None) -> Services:
    """Service rows (spec + the cluster IP the store allocated) with their Endpoints rows ->
    compiler input. A Service that cannot be converted, or whose cluster IP or node port another
    one holds, is left out with a problem (older one wins).

    ``cache`` (a dict the caller keeps between calls): each Service's conversion, kept with the
    texts it came from (its VPC, spec, status and Endpoints spec), so a pass after one Service or
    Endpoints changed converts that one again, not all of them (Endpoints change whenever a pod's
    readiness does: the most frequent change there is)."""
    vpc_of = namespace_vpcs(vpc_rows, ns_rows)
    known_vpcs = {r.name for r in vpc_rows}
    endpoints = {(r.namespace, r.name): r.spec for r in ep_rows}
    fresh: dict = {}
    out, problems, ips, node_ports = [], [], {}, {}
    for row in sorted(svc_rows, key=lambda r: (r.created_ms, r.namespace, r.name)):
        who = f"Service/{row.namespace}/{row.name}"
        vpc = vpc_of.get(row.namespace, "default")
        if vpc not in known_vpcs:
            problems.append(f"{who}: namespace {row.namespace!r} belongs to no known VPC ({vpc!r}); left out")
            continue
        key = (row.namespace, row.name)
        texts = (vpc, row.spec, row.status, endpoints.get(key))
        hit = cache.get(key) if cache is not None else None
        svc = hit[1] if hit is not None and hit[0] == texts else _service_in(row.namespace, row.name, *texts)
        fresh[key] = (texts, svc)
        if isinstance(svc, str):
            problems.append(f"{who}: {svc}")
            continue
        clash = ips.get(svc.cluster_ip) if svc.cluster_ip else None
        clash = clash or next((node_ports[(p.node_port, p.protocol)] for p in svc.ports
                               if p.node_port and (p.node_port, p.protocol) in node_ports), None)
        if clash is not None:
            problems.append(f"{who}: its cluster IP or a node port is also {clash}'s; left out")
            continue
        if svc.cluster_ip:
            ips[svc.cluster_ip] = who
        for p in svc.ports:
            if p.node_port:
                node_ports[(p.node_port, p.protocol)] = who
        out.append(svc)
    if cache is not None:     # what is gone goes from the cache too
        cache.clear()
        cache.update(fresh)
    return Services(tuple(out), tuple(problems))


def _service_in(namespace: str, name: str, vpc: str, spec_text, status_text, endpoints_text):
    """One Service row's compiler input, or why it cannot be converted (a string)."""
    spec, status = _json(spec_text), _json(status_text)
    spec = {**spec, "ports": [dict(p, nodePort=p.get("nodePort") or (status.get("nodePorts") or {}).get(
        p.get("name", ""), [None])[0]) for p in spec.get("ports") or ()]}
    spec["ports"] = [{k: v for k, v in p.items() if v is not None} for p in spec["ports"]]
    try:
        return ServiceIn.from_spec(namespace, name, vpc, spec, status.get("clusterIP"),
                                   _json(endpoints_text) if endpoints_text is not None else None)
    except (InputError, KeyError, TypeError, ValueError) as exc:
        return str(exc)


def _named_ports(spec: dict) -> tuple:
    """(name, protocol, port) of every named container port (NetworkPolicy resolves them)."""
    out: dict = {}
    for c in spec.get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("name"):
                out.setdefault((p["name"], p.get("protocol", "TCP")), p["containerPort"])
    return tuple((n, proto, port) for (n, proto), port in sorted(out.items()))


def _security_groups(annotations) -> tuple:
    text = dict(annotations).get(ANN_SECURITY_GROUPS, "")
    return tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))


def node_datapaths(node_rows) -> dict[int, str]:
    """datapath id -> node name (first node wins a duplicate; build() reports it)."""
    out: dict[int, str] = {}
    for row in sorted(node_rows, key=lambda r: r.name):
        try:
            out.setdefault(int(_json(row.spec)["datapathId"], 16), row.name)
        except (KeyError, TypeError, ValueError):
            pass
    return out


def _allowed_subnets(spec: dict, name: str, vpc: str, plans: dict[str, tuple[str, SubnetPlan]]) -> tuple[str, ...]:
    """A private subnet's allowSubnets are CIDRs; the compiler wants subnet names of the same VPC."""
    allow = [netaddr.IPNetwork(c) for c in spec.get("allowSubnets", ())]
    out = []
    for other, (other_vpc, plan) in plans.items():
        if other == name or other_vpc != vpc:
            continue
        if any(c.network.first <= a.last and a.first <= c.network.last for a in allow for c in plan.cidrs):
            out.append(other)
    return tuple(sorted(out))


def build(vpc_rows, subnet_rows, pod_rows, node_rows,
          ports: dict[str, dict[str, int]], sec: Security = Security(), svc: Services | None = None) -> Topology:
    """``ports``: node name -> {port name: ofport} for every connected bridge; ``sec``: the
    policy objects (``security()``)."""
    problems: list[str] = []
    vpcs: dict[str, VpcIn] = {}
    for row in vpc_rows:
        if not row.zone:
            problems.append(f"Vpc/{row.name}: has no VPC id yet (re-apply it); left out")
            continue
        try:
            spec = _json(row.spec)
            vpcs[row.name] = VpcIn(row.name, row.zone[0], row.vni or 1, peers=tuple(spec.get("peers") or ()),
                                   strict_revocation=spec.get("strictRevocation", True) is not False)
        except InputError as exc:
            problems.append(f"Vpc/{row.name}: {exc}")

    plans: dict[str, tuple[str, SubnetPlan]] = {}
    specs: dict[str, dict] = {}
    for row in subnet_rows:
        spec = _json(row.spec)
        if row.vpc not in vpcs:
            problems.append(f"Subnet/{row.name}: vpc {row.vpc!r} is unknown or left out")
            continue
        try:
            plans[row.name] = (row.vpc, SubnetPlan.from_spec(row.name, spec, row.vlan))
            specs[row.name] = spec
        except (KeyError, ValueError, netaddr.AddrFormatError) as exc:
            problems.append(f"Subnet/{row.name}: bad spec: {exc}")
    subnets: dict[str, SubnetIn] = {}
    for row in subnet_rows:
        if row.name not in plans:
            continue
        vpc, plan = plans[row.name]
        spec = specs[row.name]
        try:
            subnets[row.name] = SubnetIn(
                row.name, vpc, tuple(str(c.network) for c in plan.cidrs),
                tuple(str(c.gateway) for c in plan.cidrs), row.vlan, row.vlan,
                private=bool(spec.get("private")),
                allow_subnets=_allowed_subnets(spec, row.name, vpc, plans) if spec.get("private") else ())
        except InputError as exc:
            problems.append(f"Subnet/{row.name}: {exc}")

    problems += _peering_problems(vpcs, subnets)
    nodes: dict[str, NodeIn] = {}
    node_by_dpid: dict[int, str] = {}
    node_by_mac: dict[str, str] = {}     # routed packets' source MAC must be unique per node
    node_specs: dict[str, dict] = {}
    for row in sorted(node_rows, key=lambda r: r.name):
        spec = _json(row.spec)
        node_specs[row.name] = spec
        try:
            dpid = int(spec["datapathId"], 16)
        except (KeyError, TypeError, ValueError):
            problems.append(f"Node/{row.name}: spec.datapathId missing or bad")
            continue
        if dpid in node_by_dpid:
            problems.append(f"Node/{row.name}: datapathId {dpid:016x} is also node {node_by_dpid[dpid]}")
            continue
        mac = node_router_mac(dpid)
        if mac in node_by_mac:
            problems.append(f"Node/{row.name}: datapathId {dpid:016x} gives node router MAC {mac}, the same as "
                            f"node {node_by_mac[mac]}'s (give one bridge another other_config:datapath-id)")
            continue
        node_by_mac[mac] = row.name
        node_by_dpid[dpid] = row.name
        node_ports = ports.get(row.name)
        if node_ports is None:
            continue  # not connected: nothing to compile for it
        uplink = node_ports.get(spec.get("uplinkPort", ""))
        if uplink is None:
            problems.append(f"Node/{row.name}: uplink port {spec.get('uplinkPort')!r} is not on its bridge")
            continue
        external, node_ip = None, None
        if spec.get("externalPort"):
            external = node_ports.get(spec["externalPort"])
            if external is None:
                problems.append(f"Node/{row.name}: external port {spec['externalPort']!r} is not on its bridge "
                                f"(no NodePorts on this node until it is)")
            else:
                node_ip = spec.get("nodeIP")
        try:
            nodes[row.name] = NodeIn(row.name, dpid, uplink, spec.get("bridge", "br-int"), external, node_ip)
        except InputError as exc:
            problems.append(f"Node/{row.name}: {exc}")

    svc = svc or Services()
    svc_kept = tuple(x for x in svc.services if x.vpc in vpcs)
    svc_problems = list(svc.problems) + [f"Service/{x.namespace}/{x.name}: vpc {x.vpc!r} is unknown or left out"
                                         for x in svc.services if x.vpc not in vpcs]
    index = _Pods(problems, sec.problems, svc_problems)
    pods: list[PodIn] = []
    seen: dict[tuple, tuple[str, str]] = {}
    for row in sorted(pod_rows, key=lambda r: (r.created_ms, r.namespace, r.name)):
        pod, problem = _pod_of_row(row, subnets.get, lambda node, port: ports.get(node, {}).get(port))
        if pod is None:
            if problem is not None:
                index.set_problem((row.namespace, row.name), problem)
            continue
        claims = [("ip", (pod.vpc, ip)) for ip in pod.ips] + [("mac", (pod.subnet, pod.mac))]
        if pod.ofport is not None:
            claims.append(("ofport", (pod.node, pod.ofport)))
        clash = next(((what, seen[key]) for what, key in claims if seen.get(key, pod.key) != pod.key), None)
        if clash is not None:
            index.set_problem(pod.key, (problem[0], f"Pod/{row.namespace}/{row.name}: its {clash[0]} is also "
                                                    f"used by pod {'/'.join(clash[1])}; left out", True))
            continue
        for _, key in claims:
            seen[key] = pod.key
        index.wire(pod.key, (pod.node, pod.port_name), True)
        pods.append(pod)

    cluster = ClusterIn(tuple(vpcs.values()), tuple(subnets.values()), tuple(pods), tuple(nodes.values()),
                        sec.namespaces, sec.security_groups, sec.network_policies, svc_kept)
    topo = Topology(cluster, index.problem_list(), node_by_dpid, node_specs, index)
    index.owner = topo
    return topo


def _peering_problems(vpcs: dict[str, VpcIn], subnets: dict[str, SubnetIn]) -> list[str]:
    """Peerings asked for but not established (ClusterIn.peers_of leaves them out)."""
    by_vpc: dict[str, list[SubnetIn]] = {}
    for s in subnets.values():
        by_vpc.setdefault(s.vpc, []).append(s)
    out = []
    for v in sorted(vpcs.values(), key=lambda v: v.name):
        for name in v.peers:
            peer = vpcs.get(name)
            if peer is None:
                out.append(f"Vpc/{v.name}: peer {name!r} is unknown or left out; not peered")
            elif v.name not in peer.peers:
                out.append(f"Vpc/{v.name}: peer {name!r} does not list {v.name!r} in spec.peers; not peered yet")
            elif v.name < name and (clash := peering_overlap(v.name, name, by_vpc)) is not None:
                out.append(f"Vpc/{v.name}: cannot peer with {name!r}: {clash[0]} overlaps {clash[1]}")
    return out


def _pod_of_row(row, subnet_of, ofport_of) -> tuple[PodIn | None, tuple | None]:
    """A Pod row -> (its compiler input, None) or (None, its problem or None when it plays no
    part yet). A problem is (creation order, text, False); with a PodIn the second item is
    (creation order, None, False), for a clash found later. ``subnet_of(name)``: the SubnetIn
    (None if unknown or left out); ``ofport_of(node, port name)``: the port's ofport or None."""
    status = _json(row.status)
    ips = status.get("ips") or []
    if not ips or not status.get("mac"):
        return None, None  # not allocated yet
    order = (row.created_ms, row.namespace, row.name)
    subnet = subnet_of(status.get("subnet", ""))
    if subnet is None:
        return None, (order, f"Pod/{row.namespace}/{row.name}: subnet {status.get('subnet')!r} is unknown or "
                             f"left out", False)
    node = status.get("node") or row.node
    if not node:
        return None, None  # not scheduled
    port = status.get("port") or pod_port_name(row.namespace, row.name)
    try:
        pod = PodIn(row.namespace, row.name, subnet.vpc, subnet.name, tuple(ips), status["mac"],
                    node, ofport_of(node, port), port, dict(row.labels), _named_ports(_json(row.spec)),
                    _security_groups(row.annotations))
    except (InputError, KeyError, TypeError, ValueError) as exc:
        return None, (order, f"Pod/{row.namespace}/{row.name}: {exc}", False)
    return pod, (order, None, False)


def update(topo: Topology, pod_rows: dict, changed_ports, ofport_of) -> Topology | None:
    """``topo`` after some Pod rows and pod ports changed, or None: then ``build`` from all rows.

    ``pod_rows``: (namespace, name) -> the Pod row as it is now (None: gone), for every pod whose
    row changed; ``changed_ports``: (node, port name) of every port added, renumbered or removed
    on a connected bridge (never an uplink port: that is a Node change, a ``build``);
    ``ofport_of(node, port name)``: its ofport now, or None (what ``build`` reads in ``ports``).
    The state behind ``topo`` moves to the returned value: ``topo`` cannot be updated again."""
    index = topo.pods_index
    if index is None or index.owner is not topo or index.clashes:
        return None
    cluster = topo.cluster
    changed: dict[tuple[str, str], PodIn] = {}
    gone: list[tuple[str, str]] = []
    problems: dict[tuple[str, str], tuple | None] = {}
    for key, row in pod_rows.items():
        pod, problem = (None, None) if row is None else _pod_of_row(row, cluster.find_subnet, ofport_of)
        problems[key] = problem if pod is None else None
        old = cluster.find_pod(*key)
        if pod is None:
            if old is not None:
                gone.append(key)
        elif old != pod:
            changed[key] = pod
    for where in changed_ports:
        for key in index.by_port.get(where, ()):
            if key in pod_rows:
                continue
            pod = cluster.find_pod(*key)
            ofport = ofport_of(*where)
            if pod is not None and pod.ofport != ofport:
                try:
                    changed[key] = dataclasses.replace(pod, ofport=ofport)
                except InputError:
                    return None
    try:
        after = cluster.without_pods(gone) if gone else cluster
        if changed:
            after = after.with_pods(changed.values())
    except (InputError, KeyError):
        return None   # e.g. a clash: build() decides who keeps the address, by creation order
    for key in gone:
        old = cluster.find_pod(*key)
        index.wire(key, (old.node, old.port_name), False)
    for key, pod in changed.items():
        old = cluster.find_pod(*key)
        if old is not None:
            index.wire(key, (old.node, old.port_name), False)
        index.wire(key, (pod.node, pod.port_name), True)
    for key, problem in problems.items():
        index.set_problem(key, problem)
    new = Topology(after, index.problem_list(), topo.node_by_dpid, topo.node_specs, index)
    new.changed_pods = frozenset(gone).union(changed)
    index.owner = new
    return new
