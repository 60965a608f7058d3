"""Intent -> per-leaf desired state. Pure: values in (:class:`FabricIn`), values out.

``compile_fabric(fabric)`` returns ``{leaf name: LeafState}`` for every NETCONF leaf (leaves with
``driver: vtep`` are OVSDB hardware_vtep switches without an EVPN control plane; they are not
configured here). See model.py for the derivation rules (RD, RT, anycast MAC, names).

What goes on which leaf:

* A leaf with at least one node-facing port (a Node whose ``spec.leaf``/``spec.leafPort`` points
  at it) gets every subnet of every VPC: a MAC-VRF + L2VNI per subnet, the subnet's VLAN on each
  node-facing trunk, and an IP-VRF + L3VNI per VPC (with the anycast gateways when the VPC's
  ``l3Mode`` is ``fabric``). Pods are not part of the input, so nothing is pruned per leaf yet.
* A leaf without node-facing ports gets the BGP EVPN session configuration only.
* BGP EVPN neighbours: the leaf's ``peers`` when given (spines/route servers), else a full mesh
  with every other NETCONF leaf, loopback to loopback (``vtepIp``), with eBGP multihop
  (:data:`EBGP_MULTIHOP_TTL`) when the ASNs differ.
"""
from __future__ import annotations

import netaddr

from .inputs import FabricIn, InputError, LeafIn, SubnetIn
from .model import (
    ANYCAST_GATEWAY_MAC, Bgp, BgpNeighbor, Gateway, IpVrf, LeafPort, LeafState, MacVrf,
    PortBinding, mac_vrf_name, route_distinguisher, route_target, vrf_name,
)

__all__ = ["compile_fabric", "compile_leaf", "route_target_asn", "leaf_vlan", "EBGP_MULTIHOP_TTL"]

EBGP_MULTIHOP_TTL = 3   # loopback-to-loopback overlay sessions cross a spine (AVD's default is 3)


def route_target_asn(fabric: FabricIn) -> int:
    """The ASN of every route target: explicit, else the lowest NETCONF leaf ASN."""
    if fabric.route_target_asn is not None:
        return fabric.route_target_asn
    asns = [lf.asn for lf in fabric.leaves if lf.driver == "netconf"]
    if not asns:
        raise InputError("fabric: route_target_asn is not set and there is no NETCONF leaf to "
                         "take it from")
    return min(asns)


def leaf_vlan(subnet: SubnetIn, leaf: LeafIn) -> int:
    """The VLAN ``leaf`` uses for ``subnet``. Cluster-wide today; the one place to make it local."""
    del leaf
    return subnet.vlan


def _versions(subnet: SubnetIn) -> set[int]:
    return {netaddr.IPNetwork(c).version for c in subnet.cidrs}


def _neighbors(fabric: FabricIn, leaf: LeafIn) -> tuple[BgpNeighbor, ...]:
    tag = fabric.ownership.tag
    if leaf.peers is not None:
        out = [BgpNeighbor(p.address, p.asn,
                           f"{tag}: {p.description}" if p.description else f"{tag}: peer",
                           EBGP_MULTIHOP_TTL if p.asn != leaf.asn else None)
               for p in leaf.peers]
    else:
        out = [BgpNeighbor(o.vtep_ip, o.asn, f"{tag}: leaf {o.name}",
                           EBGP_MULTIHOP_TTL if o.asn != leaf.asn else None)
               for o in fabric.leaves if o.driver == "netconf" and o.name != leaf.name]
    seen: dict[str, BgpNeighbor] = {}
    for n in out:
        if n.address in (leaf.vtep_ip, leaf.router_id):
            raise InputError(f"leaf {leaf.name}: peers has the leaf's own address {n.address}")
        if n.address in seen:
            raise InputError(f"leaf {leaf.name}: peers lists {n.address} more than once")
        seen[n.address] = n
    return tuple(sorted(out, key=lambda n: netaddr.IPAddress(n.address)))


def compile_leaf(fabric: FabricIn, leaf: LeafIn, rt_asn: int | None = None) -> LeafState:
    """Desired state of one NETCONF leaf."""
    if leaf.driver != "netconf":
        raise InputError(f"leaf {leaf.name}: driver={leaf.driver!r} is not configured over NETCONF")
    own = fabric.ownership
    rt_asn = route_target_asn(fabric) if rt_asn is None else rt_asn
    attached: dict[str, list[str]] = {}
    for n in fabric.nodes:
        if n.leaf == leaf.name:
            attached.setdefault(n.leaf_port, []).append(n.name)
    subnets = fabric.subnets if attached else ()
    vlans = {s.name: leaf_vlan(s, leaf) for s in subnets}

    ports, bindings = [], []
    for port in sorted(attached):
        for s in subnets:
            bindings.append(PortBinding(port, vlans[s.name], s.vni, s.name))
        ports.append(LeafPort(port, tuple(sorted(attached[port])),
                              tuple(sorted({vlans[s.name] for s in subnets}))))
    seen_vlan: dict[tuple[str, int], int] = {}
    for b in bindings:
        if seen_vlan.setdefault((b.port, b.vlan), b.vni) != b.vni:
            raise InputError(f"leaf {leaf.name}: port {b.port} VLAN {b.vlan} would map to VNI "
                             f"{seen_vlan[(b.port, b.vlan)]} and {b.vni}")

    mac_vrfs = []
    for s in subnets:
        who = f"subnet {s.name}"
        rt = route_target(rt_asn, s.vni, who)
        mac_vrfs.append(MacVrf(
            vni=s.vni, name=mac_vrf_name(own, s.name), subnet=s.name, vpc=s.vpc,
            vlan=vlans[s.name], evi=s.vni, rd=route_distinguisher(leaf.router_id, s.vni, who),
            import_rts=(rt,), export_rts=(rt,),
            description=f"{own.tag}: subnet {s.name} (vpc {s.vpc})"))

    ip_vrfs = []
    if subnets:
        for vpc in fabric.vpcs:
            mine = [s for s in subnets if s.vpc == vpc.name]
            who = f"vpc {vpc.name}"
            rt = route_target(rt_asn, vpc.vni, who)
            gateways = ()
            if vpc.l3_mode == "fabric":
                gateways = tuple(sorted(
                    Gateway(vlan=vlans[s.name], subnet=s.name, vni=s.vni,
                            addresses=s.gateway_interfaces(), mac=ANYCAST_GATEWAY_MAC,
                            description=f"{own.tag}: gateway of subnet {s.name} (vpc {vpc.name})")
                    for s in mine if s.gateways))
            families = sorted(set().union(*(_versions(s) for s in mine))) if mine else [4]
            ip_vrfs.append(IpVrf(
                name=vrf_name(own, vpc.name), vpc=vpc.name, l3vni=vpc.vni,
                rd=route_distinguisher(leaf.router_id, vpc.vni, who),
                import_rts=(rt,), export_rts=(rt,), gateways=gateways,
                address_families=tuple(families),
                description=f"{own.tag}: vpc {vpc.name} (l3Mode {vpc.l3_mode})"))

    names: dict[str, str] = {}
    for obj, what in [(m, f"subnet {m.subnet}") for m in mac_vrfs] + \
                     [(v, f"vpc {v.vpc}") for v in ip_vrfs]:
        other = names.setdefault(obj.name, what)
        if other != what:
            raise InputError(f"{what}: its VRF name {obj.name!r} collides with {other}'s; "
                             "shorten one of the names")

    return LeafState(
        leaf=leaf.name, model=leaf.model, vtep_ip=leaf.vtep_ip, router_id=leaf.router_id,
        vtep_interface=leaf.vtep_interface, ports=tuple(ports), bindings=tuple(sorted(bindings)),
        mac_vrfs=tuple(sorted(mac_vrfs)), ip_vrfs=tuple(sorted(ip_vrfs)),
        bgp=Bgp(leaf.asn, leaf.router_id, _neighbors(fabric, leaf)), ownership=own)


def compile_fabric(fabric: FabricIn) -> dict[str, LeafState]:
    """``{leaf name: LeafState}`` for every NETCONF leaf, in name order."""
    netconf = [lf for lf in fabric.leaves if lf.driver == "netconf"]
    if not netconf:
        return {}
    rt_asn = route_target_asn(fabric)
    return {lf.name: compile_leaf(fabric, lf, rt_asn) for lf in netconf}
