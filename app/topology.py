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
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import netaddr

from vpcnet.app.ipam.plan import SubnetPlan
from vpcnet.flows import ClusterIn, InputError, NodeIn, PodIn, SubnetIn, VpcIn

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
          ports: dict[str, dict[str, int]]) -> Topology:
    """``ports``: node name -> {port name: ofport} for every connected bridge."""
    problems: list[str] = []
    vpcs: dict[str, VpcIn] = {}
    for row in vpc_rows:
        if not row.zone:
            problems.append(f"Vpc/{row.name}: has no VPC id yet (re-apply it); left out")
            continue
        try:
            vpcs[row.name] = VpcIn(row.name, row.zone[0], row.vni or 1)
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

    nodes: dict[str, NodeIn] = {}
    node_by_dpid: dict[int, str] = {}
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
        node_by_dpid[dpid] = row.name
        node_ports = ports.get(row.name)
        if node_ports is None:
            continue  # not connected: nothing to compile for it
        uplink = node_ports.get(spec.get("uplinkPort", ""))
        if uplink is None:
            problems.append(f"Node/{row.name}: uplink port {spec.get('uplinkPort')!r} is not on its bridge")
            continue
        try:
            nodes[row.name] = NodeIn(row.name, dpid, uplink, spec.get("bridge", "br-int"))
        except InputError as exc:
            problems.append(f"Node/{row.name}: {exc}")

    pods: list[PodIn] = []
    seen: dict[tuple, tuple[str, str]] = {}
    for row in sorted(pod_rows, key=lambda r: (r.created_ms, r.namespace, r.name)):
        status = _json(row.status)
        ips = status.get("ips") or []
        subnet = subnets.get(status.get("subnet", ""))
        if not ips or not status.get("mac"):
            continue  # not allocated yet
        if subnet is None:
            problems.append(f"Pod/{row.namespace}/{row.name}: subnet {status.get('subnet')!r} is unknown or left out")
            continue
        node = status.get("node") or row.node
        if not node:
            continue  # not scheduled
        port = status.get("port") or pod_port_name(row.namespace, row.name)
        ofport = ports.get(node, {}).get(port)
        try:
            pod = PodIn(row.namespace, row.name, subnet.vpc, subnet.name, tuple(ips), status["mac"],
                        node, ofport, port)
        except InputError as exc:
            problems.append(f"Pod/{row.namespace}/{row.name}: {exc}")
            continue
        claims = [("ip", (pod.vpc, ip)) for ip in pod.ips] + [("mac", (pod.subnet, pod.mac))]
        if pod.ofport is not None:
            claims.append(("ofport", (pod.node, pod.ofport)))
        clash = next(((what, seen[key]) for what, key in claims if seen.get(key, pod.key) != pod.key), None)
        if clash is not None:
            problems.append(f"Pod/{row.namespace}/{row.name}: its {clash[0]} is also used by pod "
                            f"{'/'.join(clash[1])}; left out")
            continue
        for _, key in claims:
            seen[key] = pod.key
        pods.append(pod)

    cluster = ClusterIn(tuple(vpcs.values()), tuple(subnets.values()), tuple(pods), tuple(nodes.values()))
    return Topology(cluster, problems, node_by_dpid, node_specs)
