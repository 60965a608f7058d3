"""LeafState -> NETCONF ``<config>`` in the Cisco NX-OS device model (``Cisco-NX-OS-device``).

One ``<System xmlns="http://cisco.com/ns/yang/cisco-nx-os-device">`` tree. Every path below was
taken from public material, not invented (see the report / module tests for the list):

* features ``fm-items/{bgp,evpn,ifvlan,nvo,vnsegment}-items/adminSt`` (``feature bgp``,
  ``nv overlay evpn``, ``feature interface-vlan``, ``feature nv overlay``,
  ``feature vn-segment-vlan-based``);
* L2VNI: ``bd-items/bd-items/BD-list[fabEncap=vlan-N]`` with ``accEncap=vxlan-VNI``
  (``vlan N / vn-segment VNI``);
* NVE: ``eps-items/epId-items/Ep-list[epId=1]`` (``interface nve1``: ``hostReach=bgp``,
  ``sourceInterface``) with ``nws-items/vni-items/Nw-list[vni]``: L2 VNIs with
  ``IngRepl-items/proto=bgp``, L3 VNIs with ``associateVrfFlag=true``;
* EVPN EVI: ``evpn-items/bdevi-items/BDEvi-list[encap=vxlan-VNI]`` with ``rd`` and
  ``rttp-items/RttP-list[type]/ent-items/RttEntry-list[rtt]``; typed values ``rd:ipv4-nn2:...``,
  ``route-target:as2-nn2:...`` (``as2-nn4``/``as4-nn2`` by field size);
* IP-VRF: ``inst-items/Inst-list[name]`` with ``encap=vxlan-L3VNI`` and ``l3vni=true`` (the
  VLAN-less L3VNI, ``vrf context X / vni N l3``, so no per-VPC infra VLAN is needed), RD in
  ``dom-items/Dom-list[name]/rd``, RTs in ``af-items/DomAf-list[type]/ctrl-items/
  AfCtrl-list[type=l2vpn-evpn]/rttp-items``;
* trunks: ``intf-items/phys-items/PhysIf-list[id]`` ``layer=Layer2``, ``mode=trunk``,
  ``trunkVlans``. NX-OS models trunkVlans as one string: merging it REPLACES the port's allowed
  list (VLANs outside vpcnet's ranges on that port would be removed);
* anycast gateway: SVI ``intf-items/svi-items/If-list[id=vlanN]`` bound to the VRF through
  ``rtvrfMbr-items/tDn``, its address in ``ipv4-items``/``ipv6-items``
  ``inst-items/dom-items/Dom-list[name=VRF]/if-items/If-list[id]/addr-items/Addr-list[addr]``,
  ``hmm-items/fwdinst-items`` (``amac`` = fabric-wide anycast MAC in dotted form,
  ``if-items/FwdIf-list[id]/mode=anycastGW``);
* BGP: ``bgp-items/inst-items`` ``asn``, ``dom-items/Dom-list[name=default]`` ``rtrId``,
  ``af-items/DomAf-list[type=l2vpn-evpn]``, ``peer-items/Peer-list[addr]`` (``asn``, ``name`` =
  description, ``srcIf``) with ``af-items/PeerAf-list[type=l2vpn-evpn]`` sending extended
  communities, and per VRF a ``Dom-list[name=VRF]`` with the unicast families
  (``advertL2vpnEvpn``). eBGP multihop is not written: no public sample of its DME property was
  found, so loopback-to-loopback eBGP needs it set on the switch (or a peer template) for now.

NX-OS maps a VLAN to a VNI switch-wide (VLAN = bridge domain), so this renderer needs one VLAN
per VNI per leaf (``LeafState.vlan_of_vni``).
"""
from __future__ import annotations

from lxml import etree

from .model import LeafState, MacVrf
from .xmlutil import leaf, nc_config, sub

__all__ = ["render", "NS", "DEFAULT_VTEP_INTERFACE", "rd_value", "rt_value", "dotted_mac"]

NS = "http://cisco.com/ns/yang/cisco-nx-os-device"
DEFAULT_VTEP_INTERFACE = "lo1"
_AF = {4: "ipv4-ucast", 6: "ipv6-ucast"}


def _ext(admin: str, number: int) -> str:
    if "." in admin:
        return f"ipv4-nn2:{admin}:{number}"
    asn = int(admin)
    if asn > 0xFFFF:
        return f"as4-nn2:{asn}:{number}"
    return f"as2-nn2:{asn}:{number}" if number <= 0xFFFF else f"as2-nn4:{asn}:{number}"


def rd_value(rd: str) -> str:
    admin, _, number = rd.rpartition(":")
    return "rd:" + _ext(admin, int(number))


def rt_value(rt: str) -> str:
    admin, _, number = rt.rpartition(":")
    return "route-target:" + _ext(admin, int(number))


def dotted_mac(mac: str) -> str:
    digits = mac.replace(":", "").lower()
    return ".".join(digits[i:i + 4] for i in range(0, 12, 4))


def _list(parent: etree._Element, container: str, entry: str, key_items) -> etree._Element:
    """``parent/container/entry`` with the key leaves first; reuses an existing container."""
    box = parent.find(f"{{{NS}}}{container}")
    if box is None:
        box = sub(parent, container)
    e = sub(box, entry)
    for tag, value in key_items:
        leaf(e, tag, value)
    return e


def _rttp(parent: etree._Element, imports, exports) -> None:
    for kind, rts in (("export", exports), ("import", imports)):
        p = _list(parent, "rttp-items", "RttP-list", [("type", kind)])
        for rt in sorted(rts):
            _list(p, "ent-items", "RttEntry-list", [("rtt", rt_value(rt))])


def _features(system: etree._Element, with_svi: bool) -> None:
    fm = sub(system, "fm-items")
    for name in sorted(["bgp", "evpn", "nvo", "vnsegment"] + (["ifvlan"] if with_svi else [])):
        leaf(sub(fm, f"{name}-items"), "adminSt", "enabled")


def _bds(system: etree._Element, mac_vrfs: list[MacVrf]) -> None:
    if not mac_vrfs:
        return
    box = sub(sub(system, "bd-items"), "bd-items")
    for mv in sorted(mac_vrfs, key=lambda m: m.vlan):
        bd = sub(box, "BD-list")
        leaf(bd, "fabEncap", f"vlan-{mv.vlan}")
        leaf(bd, "name", mv.name)
        leaf(bd, "accEncap", f"vxlan-{mv.vni}")
        leaf(bd, "adminSt", "active")
        leaf(bd, "BdState", "active")


def _nve(system: etree._Element, state: LeafState) -> None:
    ep = _list(sub(system, "eps-items"), "epId-items", "Ep-list", [("epId", 1)])
    leaf(ep, "adminSt", "enabled")
    leaf(ep, "hostReach", "bgp")
    leaf(ep, "sourceInterface", state.vtep_interface or DEFAULT_VTEP_INTERFACE)
    vnis = [(mv.vni, False) for mv in state.mac_vrfs] + [(v.l3vni, True) for v in state.ip_vrfs]
    if not vnis:
        return
    nws = sub(ep, "nws-items")
    for vni, l3 in sorted(vnis):
        nw = _list(nws, "vni-items", "Nw-list", [("vni", vni)])
        if l3:
            leaf(nw, "associateVrfFlag", True)
        else:
            leaf(sub(nw, "IngRepl-items"), "proto", "bgp")


def _evpn(system: etree._Element, mac_vrfs: list[MacVrf]) -> None:
    evpn = sub(system, "evpn-items")
    leaf(evpn, "adminSt", "enabled")
    for mv in sorted(mac_vrfs, key=lambda m: m.vni):
        evi = _list(evpn, "bdevi-items", "BDEvi-list", [("encap", f"vxlan-{mv.vni}")])
        leaf(evi, "rd", rd_value(mv.rd))
        _rttp(evi, mv.import_rts, mv.export_rts)


def _vrfs(system: etree._Element, state: LeafState) -> None:
    if not state.ip_vrfs:
        return
    box = sub(system, "inst-items")
    for vrf in state.ip_vrfs:
        inst = sub(box, "Inst-list")
        leaf(inst, "name", vrf.name)
        leaf(inst, "descr", vrf.description)
        leaf(inst, "encap", f"vxlan-{vrf.l3vni}")
        leaf(inst, "l3vni", True)
        dom = _list(inst, "dom-items", "Dom-list", [("name", vrf.name)])
        leaf(dom, "rd", rd_value(vrf.rd))
        for version in vrf.address_families:
            af = _list(dom, "af-items", "DomAf-list", [("type", _AF[version])])
            ctrl = _list(af, "ctrl-items", "AfCtrl-list", [("type", "l2vpn-evpn")])
            _rttp(ctrl, vrf.import_rts, vrf.export_rts)


def _interfaces(system: etree._Element, state: LeafState) -> None:
    if not state.ports and not state.gateways:
        return
    intf = sub(system, "intf-items")
    for port in state.ports:
        p = _list(intf, "phys-items", "PhysIf-list", [("id", port.name)])
        leaf(p, "layer", "Layer2")
        leaf(p, "mode", "trunk")
        leaf(p, "trunkVlans", ",".join(str(v) for v in port.vlans))
    for vrf in state.ip_vrfs:
        for gw in vrf.gateways:
            svi = _list(intf, "svi-items", "If-list", [("id", f"vlan{gw.vlan}")])
            leaf(svi, "adminSt", "up")
            leaf(svi, "descr", gw.description)
            leaf(svi, "vlanId", gw.vlan)
            leaf(sub(svi, "rtvrfMbr-items"), "tDn", f"/System/inst-items/Inst-list[name='{vrf.name}']")


def _addresses(system: etree._Element, state: LeafState) -> None:
    for version in (4, 6):
        doms = [(vrf.name, gw) for vrf in state.ip_vrfs for gw in vrf.gateways
                if any((":" in a) == (version == 6) for a in gw.addresses)]
        if not doms:
            continue
        box = sub(sub(system, f"ipv{version}-items"), "inst-items")
        by_vrf: dict[str, etree._Element] = {}
        for name, gw in doms:
            if name not in by_vrf:
                by_vrf[name] = _list(box, "dom-items", "Dom-list", [("name", name)])
            itf = _list(by_vrf[name], "if-items", "If-list", [("id", f"vlan{gw.vlan}")])
            for a in sorted(a for a in gw.addresses if (":" in a) == (version == 6)):
                _list(itf, "addr-items", "Addr-list", [("addr", a)])


def _anycast(system: etree._Element, state: LeafState) -> None:
    gws = state.gateways
    if not gws:
        return
    hmm = sub(system, "hmm-items")
    leaf(hmm, "adminSt", "enabled")
    fwd = sub(hmm, "fwdinst-items")
    leaf(fwd, "adminSt", "enabled")
    leaf(fwd, "amac", dotted_mac(state.anycast_mac))
    for gw in gws:
        f = _list(fwd, "if-items", "FwdIf-list", [("id", f"vlan{gw.vlan}")])
        leaf(f, "adminSt", "enabled")
        leaf(f, "mode", "anycastGW")


def _bgp(system: etree._Element, state: LeafState) -> None:
    inst = sub(sub(system, "bgp-items"), "inst-items")
    leaf(inst, "adminSt", "enabled")
    leaf(inst, "asn", state.bgp.asn)
    dom = _list(inst, "dom-items", "Dom-list", [("name", "default")])
    leaf(dom, "rtrId", state.bgp.router_id)
    _list(dom, "af-items", "DomAf-list", [("type", "l2vpn-evpn")])
    for n in state.bgp.neighbors:
        peer = _list(dom, "peer-items", "Peer-list", [("addr", n.address)])
        leaf(peer, "asn", n.asn)
        leaf(peer, "name", n.description)
        leaf(peer, "srcIf", state.vtep_interface or DEFAULT_VTEP_INTERFACE)
        af = _list(peer, "af-items", "PeerAf-list", [("type", "l2vpn-evpn")])
        leaf(af, "sendComExt", "enabled")
        leaf(af, "sendComStd", "enabled")
    for vrf in state.ip_vrfs:
        vdom = _list(inst, "dom-items", "Dom-list", [("name", vrf.name)])
        for version in vrf.address_families:
            af = _list(vdom, "af-items", "DomAf-list", [("type", _AF[version])])
            leaf(af, "advertL2vpnEvpn", "enabled")


def render(state: LeafState) -> etree._Element:
    """The leaf's NX-OS ``<config>`` (one ``System`` child)."""
    state.vlan_of_vni()   # one VLAN per VNI on this leaf, or InputError
    config = nc_config()
    system = sub(config, "System", NS)
    _features(system, bool(state.gateways))
    _bds(system, list(state.mac_vrfs))
    _nve(system, state)
    _evpn(system, list(state.mac_vrfs))
    _vrfs(system, state)
    _interfaces(system, state)
    _addresses(system, state)
    _anycast(system, state)
    _bgp(system, state)
    return config
