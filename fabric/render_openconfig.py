"""LeafState -> NETCONF ``<config>`` in OpenConfig (openconfig/public 94f58962, see shared/yang).

Per leaf (the shape of shared/yang/examples/mac-vrf-l2vni.xml and ip-vrf-l3vni.xml):

* ``/interfaces``: each node-facing port as an 802.1Q trunk (``ethernet/switched-vlan``,
  ``TRUNK`` + ``trunk-vlans``), and per anycast gateway an IRB interface ``Vlan<vlan>``
  (``l3ipvlan``, ``routed-vlan`` with the gateway addresses). Port descriptions, MTU etc. are left
  to the operator; physical ports are expected to exist.
* ``/network-instances``:
  - ``default``: the VTEP (connection-point ``vxlan``, endpoint ``nve1``, source interface =
    the leaf's loopback), its VNI map (``local-endpoint-vnis``: L2 VNI -> bridge-domain = VLAN,
    L3 VNI -> ``l3-vrf-name``, openconfig-evpn 0.11.0) and BGP (AS, router id, ``L2VPN_EVPN``,
    the EVPN neighbours, loopback to loopback);
  - per subnet an ``L2VSI`` (MAC-VRF): the VLAN, EVI = L2VNI (``VXLAN``, ``VLAN_BASED``, BGP
    replication), RD/RTs, ``anycast-gateway-mac`` when the subnet has a fabric gateway;
  - per VPC an ``L3VRF`` (IP-VRF): RD/RTs (``inter-instance-policies`` and the EVPN instance of
    the L3VNI), its IRB interfaces (``DISTRIBUTED_SYMETRIC``), BGP with the unicast families.

Everything is sorted by key, so equal LeafStates render byte-identical documents.
"""
from __future__ import annotations

from lxml import etree

from .model import Gateway, IpVrf, LeafState, MacVrf
from .xmlutil import leaf, nc_config, sub

__all__ = ["render", "NS", "IDENTITY_PREFIXES", "VTEP_CONNECTION_POINT", "VTEP_ENDPOINT",
           "DEFAULT_VTEP_INTERFACE", "DEFAULT_NI", "irb_name"]

NS = {
    "if": "http://openconfig.net/yang/interfaces",
    "vlan": "http://openconfig.net/yang/vlan",
    "eth": "http://openconfig.net/yang/interfaces/ethernet",
    "ip": "http://openconfig.net/yang/interfaces/ip",
    "ni": "http://openconfig.net/yang/network-instance",
}
# identity prefixes used in values, declared on the top-level containers
IDENTITY_PREFIXES = {
    "ianaift": "urn:ietf:params:xml:ns:yang:iana-if-type",
    "oc-ni-types": "http://openconfig.net/yang/network-instance-types",
    "oc-evpn-types": "http://openconfig.net/yang/evpn-types",
    "oc-pol-types": "http://openconfig.net/yang/policy-types",
    "oc-bgp-types": "http://openconfig.net/yang/bgp-types",
}
DEFAULT_NI = "default"
VTEP_CONNECTION_POINT = "vxlan"
VTEP_ENDPOINT = "nve1"
DEFAULT_VTEP_INTERFACE = "Loopback1"
_IF_PREFIXES = {"ianaift": IDENTITY_PREFIXES["ianaift"]}
_NI_PREFIXES = {k: v for k, v in IDENTITY_PREFIXES.items() if k != "ianaift"}
_AFI = {4: "oc-bgp-types:IPV4_UNICAST", 6: "oc-bgp-types:IPV6_UNICAST"}


def irb_name(vlan: int) -> str:
    return f"Vlan{vlan}"


def oc_rt(rt: str) -> str:
    return f"route-target:{rt}"


def _config_leaves(parent: etree._Element, items) -> etree._Element:
    cfg = sub(parent, "config")
    for tag, value in items:
        if value is not None:
            leaf(cfg, tag, value)
    return cfg


# ---------------------------------------------------------------------------- /interfaces
def _irb(parent: etree._Element, gw: Gateway) -> None:
    itf = sub(parent, "interface")
    leaf(itf, "name", irb_name(gw.vlan))
    _config_leaves(itf, [("name", irb_name(gw.vlan)), ("type", "ianaift:l3ipvlan"),
                         ("description", gw.description), ("enabled", True)])
    rv = sub(itf, "routed-vlan", NS["vlan"])
    _config_leaves(rv, [("vlan", gw.vlan)])
    for version in (4, 6):
        addrs = [a for a in gw.addresses if (":" in a) == (version == 6)]
        if not addrs:
            continue
        fam = sub(rv, f"ipv{version}", NS["ip"])
        lst = sub(fam, "addresses")
        for text in sorted(addrs):
            ip, plen = text.split("/")
            a = sub(lst, "address")
            leaf(a, "ip", ip)
            _config_leaves(a, [("ip", ip), ("prefix-length", plen)])


def _port(parent: etree._Element, name: str, vlans) -> None:
    itf = sub(parent, "interface")
    leaf(itf, "name", name)
    _config_leaves(itf, [("name", name), ("type", "ianaift:ethernetCsmacd")])
    eth = sub(itf, "ethernet", NS["eth"])
    sw = sub(eth, "switched-vlan", NS["vlan"])
    cfg = _config_leaves(sw, [("interface-mode", "TRUNK")])
    for v in sorted(vlans):
        leaf(cfg, "trunk-vlans", v)


def interfaces(state: LeafState) -> etree._Element:
    root = etree.Element(f"{{{NS['if']}}}interfaces", nsmap={None: NS["if"], **_IF_PREFIXES})
    items = [(irb_name(g.vlan), "irb", g) for g in state.gateways]
    items += [(p.name, "port", p) for p in state.ports]
    for name, kind, obj in sorted(items, key=lambda t: t[0]):
        if kind == "irb":
            _irb(root, obj)
        else:
            _port(root, obj.name, obj.vlans)
    return root


# ---------------------------------------------------------------------------- /network-instances
def _ni(parent: etree._Element, name: str, kind: str, description: str | None = None,
        rd: str | None = None) -> etree._Element:
    ni = sub(parent, "network-instance")
    leaf(ni, "name", name)
    _config_leaves(ni, [("name", name), ("type", f"oc-ni-types:{kind}"),
                        ("description", description), ("route-distinguisher", rd)])
    return ni


def _rts(parent: etree._Element, imports, exports) -> None:
    cfg = sub(sub(parent, "import-export-policy"), "config")
    for rt in sorted(exports):
        leaf(cfg, "export-route-target", oc_rt(rt))
    for rt in sorted(imports):
        leaf(cfg, "import-route-target", oc_rt(rt))


def _evpn_instance(ni: etree._Element, evi: int, rd: str, imports, exports,
                   vni: int | None) -> None:
    inst = sub(sub(sub(ni, "evpn"), "evpn-instances"), "evpn-instance")
    leaf(inst, "evi", evi)
    cfg = [("evi", evi), ("encapsulation-type", "oc-ni-types:VXLAN")]
    if vni is not None:   # MAC-VRF: VLAN-based service with its L2VNI
        cfg += [("service-type", "oc-evpn-types:VLAN_BASED"), ("replication-mode", "BGP")]
    cfg.append(("route-distinguisher", rd))
    _config_leaves(inst, cfg)
    _rts(inst, imports, exports)
    _config_leaves(sub(inst, "vxlan"), [
        ("vni", vni), ("overlay-endpoint-network-instance", DEFAULT_NI),
        ("overlay-endpoint", VTEP_ENDPOINT), ("host-reachability-bgp", True)])


def _mac_vrf(parent: etree._Element, mv: MacVrf, gateway_vlans: set[int], mac: str) -> None:
    ni = _ni(parent, mv.name, "L2VSI", mv.description, mv.rd)
    _config_leaves(sub(ni, "fdb"), [
        ("mac-learning", True),
        ("anycast-gateway-mac", mac if mv.vlan in gateway_vlans else None)])
    vlan = sub(sub(ni, "vlans"), "vlan")
    leaf(vlan, "vlan-id", mv.vlan)
    _config_leaves(vlan, [("vlan-id", mv.vlan), ("name", mv.name), ("status", "ACTIVE")])
    _evpn_instance(ni, mv.evi, mv.rd, mv.import_rts, mv.export_rts, mv.vni)


def _bgp(protocols: etree._Element, asn: int, router_id: str | None, families) -> etree._Element:
    proto = sub(protocols, "protocol")
    leaf(proto, "identifier", "oc-pol-types:BGP")
    leaf(proto, "name", "BGP")
    _config_leaves(proto, [("identifier", "oc-pol-types:BGP"), ("name", "BGP"), ("enabled", True)])
    bgp = sub(proto, "bgp")
    glob = sub(bgp, "global")
    _config_leaves(glob, [("as", asn), ("router-id", router_id)])
    _afi_safis(glob, families)
    return bgp


def _afi_safis(parent: etree._Element, families) -> None:
    lst = sub(parent, "afi-safis")
    for name in sorted(families):
        afs = sub(lst, "afi-safi")
        leaf(afs, "afi-safi-name", name)
        _config_leaves(afs, [("afi-safi-name", name), ("enabled", True)])


def _ip_vrf(parent: etree._Element, vrf: IpVrf, asn: int) -> None:
    ni = _ni(parent, vrf.name, "L3VRF", vrf.description, vrf.rd)
    if vrf.gateways:
        lst = sub(ni, "interfaces")
        for gw in sorted(vrf.gateways, key=lambda g: irb_name(g.vlan)):
            itf = sub(lst, "interface")
            leaf(itf, "id", irb_name(gw.vlan))
            _config_leaves(itf, [("id", irb_name(gw.vlan)), ("interface", irb_name(gw.vlan)),
                                 ("irb-anycast-gateway", "DISTRIBUTED_SYMETRIC")])
    _rts(sub(ni, "inter-instance-policies"), vrf.import_rts, vrf.export_rts)
    _evpn_instance(ni, vrf.l3vni, vrf.rd, vrf.import_rts, vrf.export_rts, None)
    _bgp(sub(ni, "protocols"), asn, None, [_AFI[v] for v in vrf.address_families])


def _default_ni(parent: etree._Element, state: LeafState) -> None:
    ni = _ni(parent, DEFAULT_NI, "DEFAULT_INSTANCE")
    cp = sub(sub(ni, "connection-points"), "connection-point")
    leaf(cp, "connection-point-id", VTEP_CONNECTION_POINT)
    _config_leaves(cp, [("connection-point-id", VTEP_CONNECTION_POINT)])
    ep = sub(sub(cp, "endpoints"), "endpoint")
    leaf(ep, "endpoint-id", VTEP_ENDPOINT)
    _config_leaves(ep, [("endpoint-id", VTEP_ENDPOINT)])
    vx = sub(ep, "vxlan")
    _config_leaves(vx, [("enabled", True),
                        ("source-interface", state.vtep_interface or DEFAULT_VTEP_INTERFACE)])
    vnis = [(mv.vni, [("vni-type", "L2"), ("bridge-domain", mv.vlan)]) for mv in state.mac_vrfs]
    vnis += [(v.l3vni, [("vni-type", "L3"), ("l3-vrf-name", v.name)]) for v in state.ip_vrfs]
    if vnis:
        lst = sub(vx, "local-endpoint-vnis")
        for vni, items in sorted(vnis, key=lambda t: t[0]):
            e = sub(lst, "local-endpoint-vni")
            leaf(e, "vni", vni)
            _config_leaves(e, [("vni", vni)] + items)
    bgp = _bgp(sub(ni, "protocols"), state.bgp.asn, state.bgp.router_id,
               ["oc-bgp-types:L2VPN_EVPN"])
    if state.bgp.neighbors:
        lst = sub(bgp, "neighbors")
        for n in state.bgp.neighbors:
            nb = sub(lst, "neighbor")
            leaf(nb, "neighbor-address", n.address)
            _config_leaves(nb, [("neighbor-address", n.address), ("peer-as", n.asn),
                                ("description", n.description)])
            _config_leaves(sub(nb, "transport"), [("local-address", state.vtep_ip)])
            if n.ebgp_multihop is not None:
                _config_leaves(sub(nb, "ebgp-multihop"), [("enabled", True),
                                                          ("multihop-ttl", n.ebgp_multihop)])
            _afi_safis(nb, ["oc-bgp-types:L2VPN_EVPN"])


def network_instances(state: LeafState) -> etree._Element:
    root = etree.Element(f"{{{NS['ni']}}}network-instances", nsmap={None: NS["ni"], **_NI_PREFIXES})
    gateway_vlans = {g.vlan for g in state.gateways}
    items = [(DEFAULT_NI, None)] + [(mv.name, mv) for mv in state.mac_vrfs] + \
            [(v.name, v) for v in state.ip_vrfs]
    for name, obj in sorted(items, key=lambda t: (t[0] != DEFAULT_NI, t[0])):
        if obj is None:
            _default_ni(root, state)
        elif isinstance(obj, MacVrf):
            _mac_vrf(root, obj, gateway_vlans, state.anycast_mac)
        else:
            _ip_vrf(root, obj, state.bgp.asn)
    return root


def render(state: LeafState) -> etree._Element:
    """The leaf's OpenConfig ``<config>`` (children: ``interfaces``, ``network-instances``)."""
    config = nc_config()
    config.append(interfaces(state))
    config.append(network_instances(state))
    return config
