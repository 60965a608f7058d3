"""LeafState -> NETCONF ``<config>`` in vpcnet's own model ``vpcnet-leaf`` (fabric/yang).

The lab's leaves (netconfd + vpcnet's leaf agent) speak this model; it says exactly what vpcnet
configures and nothing else, one container ``/vl:leaf``:

* ``vtep``: ``source-address`` = the VTEP IP, ``source-interface`` = ``vtep_interface`` or
  :data:`DEFAULT_VTEP_INTERFACE` (``lo``: the lab kernel has no dummy devices, the VTEP address
  lives on the loopback). ``udp-port`` is left to its YANG default (4789).
* ``anycast-gateway-mac``: the fabric-wide gateway MAC. Always rendered (one constant per
  fabric, harmless in ``l3Mode: distributed``) so that the value never flaps with the mode.
* ``interface``: every node-facing trunk with its ``allowed-vlan``\\ s. Port descriptions are
  left to the operator, as in the OpenConfig renderer.
* ``mac-vrf``: per subnet: VLAN, L2VNI, RD, RTs and the ``ip-vrf`` of its VPC (a leafref: only
  rendered when this leaf carries that IP-VRF).
* ``ip-vrf``: per VPC: L3VNI, RD, RTs, address families and, in ``l3Mode: fabric``, one
  ``gateway`` per subnet with the gateway addresses *with* their prefix length
  (``10.10.0.1/24``).
* ``bgp``: ASN, router id and the EVPN neighbours (remote AS, description with the ownership
  tag, eBGP multihop TTL for loopback-to-loopback eBGP).

The model has one gateway MAC for the whole leaf, so a Gateway whose ``mac`` differs from
``LeafState.anycast_mac`` cannot be expressed: :class:`InputError` names the leaf, the subnet
and both MACs. Every list is sorted by key, so equal LeafStates render byte-identical documents.
"""
from __future__ import annotations

from lxml import etree

from .inputs import InputError
from .model import IpVrf, LeafState, MacVrf
from .xmlutil import leaf, nc_config, sub

__all__ = ["render", "NS", "MODULE", "DEFAULT_VTEP_INTERFACE", "AF_NAMES", "leaf_element"]

NS = "urn:vpcnet:yang:leaf"
MODULE = "vpcnet-leaf"
DEFAULT_VTEP_INTERFACE = "lo"
AF_NAMES = {4: "ipv4", 6: "ipv6"}


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _vtep(root: etree._Element, state: LeafState) -> None:
    vtep = sub(root, "vtep")
    leaf(vtep, "source-address", state.vtep_ip)
    leaf(vtep, "source-interface", state.vtep_interface or DEFAULT_VTEP_INTERFACE)


def _interfaces(root: etree._Element, state: LeafState) -> None:
    for port in sorted(state.ports, key=lambda p: p.name):
        itf = sub(root, "interface")
        leaf(itf, "name", port.name)
        for vlan in sorted(port.vlans):
            leaf(itf, "allowed-vlan", vlan)


def _rts(parent: etree._Element, imports, exports) -> None:
    for rt in sorted(imports):
        leaf(parent, "import-rt", rt)
    for rt in sorted(exports):
        leaf(parent, "export-rt", rt)


def _mac_vrf(root: etree._Element, mv: MacVrf, vrf_of_vpc: dict[str, str]) -> None:
    e = sub(root, "mac-vrf")
    leaf(e, "name", mv.name)
    leaf(e, "description", mv.description)
    leaf(e, "vlan", mv.vlan)
    leaf(e, "vni", mv.vni)
    leaf(e, "rd", mv.rd)
    _rts(e, mv.import_rts, mv.export_rts)
    if mv.vpc in vrf_of_vpc:
        leaf(e, "ip-vrf", vrf_of_vpc[mv.vpc])


def _ip_vrf(root: etree._Element, vrf: IpVrf, state: LeafState) -> None:
    e = sub(root, "ip-vrf")
    leaf(e, "name", vrf.name)
    leaf(e, "description", vrf.description)
    leaf(e, "l3vni", vrf.l3vni)
    leaf(e, "rd", vrf.rd)
    _rts(e, vrf.import_rts, vrf.export_rts)
    for version in sorted(vrf.address_families):
        leaf(e, "address-family", AF_NAMES[version])
    for gw in sorted(vrf.gateways, key=lambda g: g.vlan):
        if gw.mac.lower() != state.anycast_mac.lower():
            raise InputError(f"leaf {state.leaf}: subnet {gw.subnet}: gateway mac={gw.mac} differs "
                             f"from the leaf's anycast-gateway-mac={state.anycast_mac}; the "
                             f"{MODULE} model has one gateway MAC per leaf")
        g = sub(e, "gateway")
        leaf(g, "vlan", gw.vlan)
        leaf(g, "description", gw.description)
        for addr in sorted(gw.addresses):
            leaf(g, "address", addr)


def _bgp(root: etree._Element, state: LeafState) -> None:
    bgp = sub(root, "bgp")
    leaf(bgp, "asn", state.bgp.asn)
    leaf(bgp, "router-id", state.bgp.router_id)
    for n in state.bgp.neighbors:           # already sorted by address (compile.py)
        nb = sub(bgp, "neighbor")
        leaf(nb, "address", n.address)
        leaf(nb, "remote-as", n.asn)
        leaf(nb, "description", n.description)
        if n.ebgp_multihop is not None:
            leaf(nb, "ebgp-multihop", n.ebgp_multihop)


def leaf_element(state: LeafState) -> etree._Element:
    """The ``<leaf xmlns="urn:vpcnet:yang:leaf">`` container alone."""
    root = etree.Element(_q("leaf"), nsmap={None: NS})
    _vtep(root, state)
    leaf(root, "anycast-gateway-mac", state.anycast_mac.lower())
    _interfaces(root, state)
    vrf_of_vpc = {v.vpc: v.name for v in state.ip_vrfs}
    for mv in sorted(state.mac_vrfs, key=lambda m: m.name):
        _mac_vrf(root, mv, vrf_of_vpc)
    for vrf in sorted(state.ip_vrfs, key=lambda v: v.name):
        _ip_vrf(root, vrf, state)
    _bgp(root, state)
    return root


def render(state: LeafState) -> etree._Element:
    """The leaf's ``<config>`` in the vpcnet-leaf model (one child: ``/vl:leaf``)."""
    config = nc_config()
    config.append(leaf_element(state))
    return config
