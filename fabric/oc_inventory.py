"""OpenConfig XML -> the inventory of objects vpcnet owns on a leaf (for diff.py).

The same parser reads the running configuration (a ``<config>``, ``<data>`` or ``<rpc-reply>``
from ``get-config``) and vpcnet's own rendered document, so both sides are normalised alike.

An object is a subtree vpcnet manages as a unit, flattened into ``{relative path: value}``:

==============  ======================================================  ==========  ==========
kind            where                                                   owned when  deletable
==============  ======================================================  ==========  ==========
port            ``interfaces/interface`` with ``switched-vlan``: only   it carries  no: only
                ``interface-mode`` and the owned ``trunk-vlans``        an owned    its owned
                                                                        VLAN        VLANs go
irb             ``interfaces/interface[Vlan<N>]``                       N owned     yes
mac-vrf/ip-vrf  ``network-instance[name]`` of type L2VSI / L3VRF        name has    yes
                                                                        the prefix
vni             default NI ``.../local-endpoint-vni[vni]``              vni owned   yes
vtep            default NI ``connection-point[vxlan]`` (minus the VNIs) always      no
bgp             default NI BGP: AS, router id, the L2VPN_EVPN family    always      no
bgp-neighbor    default NI ``bgp/neighbors/neighbor[address]``          tagged      yes
                                                                        description
==============  ======================================================  ==========  ==========

Everything else (foreign interfaces, VLANs and VNIs outside the owned ranges, other network
instances, untagged neighbours, other protocols) is invisible to the diff and never touched.
Objects named in ``claim`` are taken even when not owned (vpcnet wants them: a desired neighbour
that already exists with a foreign description is adopted, not duplicated).

Paths are tuples of steps ``(clark tag, ((clark key tag, value), ...))``; identity values are
canonicalised to the prefixes of :data:`render_openconfig.IDENTITY_PREFIXES`, route targets lose
their ``route-target:`` marker, VLAN ranges (``100..199``) are expanded. Leaf-lists keep the raw
text of each canonical value (what a delete must name).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from .inputs import Ownership
from .render_openconfig import (
    DEFAULT_NI, IDENTITY_PREFIXES, NS, VTEP_CONNECTION_POINT, VTEP_ENDPOINT,
)
from .xmlutil import parse

__all__ = ["Obj", "Step", "Path", "inventory", "step", "LIST_KEYS", "LEAF_LISTS", "expand",
           "KIND_ORDER"]

Step = tuple[str, tuple[tuple[str, str], ...]]
Path = tuple[Step, ...]


def _q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


LIST_KEYS: dict[str, tuple[str, ...]] = {
    _q("if", "interface"): (_q("if", "name"),),
    _q("if", "subinterface"): (_q("if", "index"),),
    _q("ip", "address"): (_q("ip", "ip"),),
    _q("ni", "network-instance"): (_q("ni", "name"),),
    _q("ni", "vlan"): (_q("ni", "vlan-id"),),
    _q("ni", "evpn-instance"): (_q("ni", "evi"),),
    _q("ni", "connection-point"): (_q("ni", "connection-point-id"),),
    _q("ni", "endpoint"): (_q("ni", "endpoint-id"),),
    _q("ni", "local-endpoint-vni"): (_q("ni", "vni"),),
    _q("ni", "protocol"): (_q("ni", "identifier"), _q("ni", "name")),
    _q("ni", "afi-safi"): (_q("ni", "afi-safi-name"),),
    _q("ni", "neighbor"): (_q("ni", "neighbor-address"),),
    _q("ni", "interface"): (_q("ni", "id"),),
}
LEAF_LISTS = frozenset({_q("vlan", "trunk-vlans"), _q("ni", "export-route-target"),
                        _q("ni", "import-route-target"), _q("ni", "vni-list")})
KIND_ORDER = ("bgp", "vtep", "bgp-neighbor", "ip-vrf", "mac-vrf", "vni", "irb", "port")
_PREFIX_OF_NS = {ns: p for p, ns in IDENTITY_PREFIXES.items()}
_IDENTITY_RE = re.compile(r"([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)")
_IRB_RE = re.compile(r"Vlan([0-9]+)")
_BGP_KEY = ((_q("ni", "identifier"), "oc-pol-types:BGP"), (_q("ni", "name"), "BGP"))
_EVPN_AFI = ((_q("ni", "afi-safi-name"), "oc-bgp-types:L2VPN_EVPN"),)


def step(tag: str, *keys: tuple[str, str]) -> Step:
    return (tag, tuple(keys))


@dataclass
class Obj:
    """One owned object: its root path and its flattened contents (paths relative to root)."""
    kind: str
    name: str
    root: Path
    deletable: bool
    leaves: dict[Path, str] = field(default_factory=dict)
    lists: dict[Path, dict[str, str]] = field(default_factory=dict)   # canonical -> raw
    entries: set[Path] = field(default_factory=set)                     # nested list entries

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


def _canon(elem: etree._Element, text: str) -> str:
    text = (text or "").strip()
    m = _IDENTITY_RE.fullmatch(text)
    if m and m.group(1) in (elem.nsmap or {}):
        ns = elem.nsmap[m.group(1)]
        return f"{_PREFIX_OF_NS.get(ns, '{' + ns + '}')}:{m.group(2)}"
    if etree.QName(elem).localname.endswith("route-target") and text.startswith("route-target:"):
        return text[len("route-target:"):]
    return text


def expand(tag: str, raw: str) -> list[str]:
    """Canonical members of one leaf-list item: ``100..102`` -> ``['100', '101', '102']``."""
    if tag == _q("vlan", "trunk-vlans") and ".." in raw:
        lo, _, hi = raw.partition("..")
        if lo.strip().isdigit() and hi.strip().isdigit():
            return [str(v) for v in range(int(lo), int(hi) + 1)]
    return [raw]


def _flatten(elem: etree._Element, prefix: Path, obj: Obj) -> None:
    keys = LIST_KEYS.get(elem.tag, ()) if len(elem) else ()
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        if len(child):
            ktags = LIST_KEYS.get(child.tag)
            if ktags:
                kv = tuple((k, _canon(child.find(k), child.findtext(k))) for k in ktags
                           if child.find(k) is not None)
                path = prefix + ((child.tag, kv),)
                obj.entries.add(path)
            else:
                path = prefix + ((child.tag, ()),)
            _flatten(child, path, obj)
        elif child.tag in keys or not (child.text or "").strip():
            continue    # keys live in the step; a childless, textless node is an empty container
        else:
            path = prefix + ((child.tag, ()),)
            raw = (child.text or "").strip()
            if child.tag in LEAF_LISTS:
                for canon in expand(child.tag, raw):
                    obj.lists.setdefault(path, {})[_canon(child, canon)] = raw
            else:
                obj.leaves[path] = _canon(child, raw)


def _entry_step(elem: etree._Element) -> Step:
    kv = tuple((k, _canon(elem.find(k), elem.findtext(k))) for k in LIST_KEYS[elem.tag]
               if elem.find(k) is not None)
    return (elem.tag, kv)


def _split(obj: Obj, prefix: Path, kind: str, name: str, deletable: bool,
           keep=lambda rel: True) -> Obj:
    """The part of ``obj`` under ``prefix`` (relative to obj.root) as a new object."""
    out = Obj(kind, name, obj.root + prefix, deletable)
    n = len(prefix)
    for path, value in obj.leaves.items():
        if path[:n] == prefix and keep(path[n:]):
            out.leaves[path[n:]] = value
    for path, values in obj.lists.items():
        if path[:n] == prefix and keep(path[n:]):
            out.lists[path[n:]] = dict(values)
    out.entries = {p[n:] for p in obj.entries if p[:n] == prefix and len(p) > n and keep(p[n:])}
    return out


def _interfaces(root: etree._Element, own: Ownership, claim, out: dict) -> None:
    top = step(_q("if", "interfaces"))
    for itf in root.iterfind(_q("if", "interface")):
        name = (itf.findtext(_q("if", "name")) or "").strip()
        whole = Obj("", name, (top, _entry_step(itf)), True)
        _flatten(itf, (), whole)
        m = _IRB_RE.fullmatch(name)
        if (m and own.owns_vlan(int(m.group(1)))) or ("irb", name) in claim:
            whole.kind = "irb"
            out[whole.key] = whole
            continue
        cfg = (step(_q("eth", "ethernet")), step(_q("vlan", "switched-vlan")),
               step(_q("vlan", "config")))
        port = _split(whole, (), "port", name, False,
                      keep=lambda rel: rel[:3] == cfg and len(rel) == 4 and rel[3][0] in (
                          _q("vlan", "interface-mode"), _q("vlan", "trunk-vlans")))
        port.entries = set()
        tv = cfg + (step(_q("vlan", "trunk-vlans")),)
        if tv in port.lists:
            port.lists[tv] = {c: r for c, r in port.lists[tv].items()
                              if c.isdigit() and own.owns_vlan(int(c))}
            if not port.lists[tv]:
                del port.lists[tv]
        if port.lists or ("port", name) in claim:
            out[port.key] = port


def _default_ni(ni: etree._Element, root: Path, own: Ownership, claim, out: dict) -> None:
    whole = Obj("", DEFAULT_NI, root, False)
    _flatten(ni, (), whole)
    cp = (step(_q("ni", "connection-points")),
          step(_q("ni", "connection-point"), (_q("ni", "connection-point-id"), VTEP_CONNECTION_POINT)))
    ep = cp + (step(_q("ni", "endpoints")),
               step(_q("ni", "endpoint"), (_q("ni", "endpoint-id"), VTEP_ENDPOINT)),
               step(_q("ni", "vxlan")), step(_q("ni", "local-endpoint-vnis")))
    vnis = {p[len(ep)] for p in list(whole.leaves) + list(whole.lists)
            if len(p) > len(ep) and p[:len(ep)] == ep}
    for vstep in vnis:
        vni = dict(vstep[1]).get(_q("ni", "vni"), "")
        if (vni.isdigit() and own.owns_vni(int(vni))) or ("vni", vni) in claim:
            obj = _split(whole, ep + (vstep,), "vni", vni, True)
            out[obj.key] = obj
    vtep = _split(whole, cp, "vtep", VTEP_ENDPOINT, False,
                  keep=lambda rel: rel[:len(ep) - len(cp)] != ep[len(cp):])
    if vtep.leaves:
        out[vtep.key] = vtep
    proto = (step(_q("ni", "protocols")), (_q("ni", "protocol"), _BGP_KEY))
    glob = (step(_q("ni", "bgp")), step(_q("ni", "global")))
    evpn_afi = glob + (step(_q("ni", "afi-safis")), (_q("ni", "afi-safi"), _EVPN_AFI))

    def bgp_keep(rel: Path) -> bool:
        if rel[:1] == (step(_q("ni", "config")),):
            return True
        if rel[:3] == glob + (step(_q("ni", "config")),):
            return rel[3][0] in (_q("ni", "as"), _q("ni", "router-id"))
        return rel[:len(evpn_afi)] == evpn_afi

    bgp = _split(whole, proto, "bgp", "global", False, keep=bgp_keep)
    if bgp.leaves:
        out[bgp.key] = bgp
    nbrs = proto + (step(_q("ni", "bgp")), step(_q("ni", "neighbors")))
    steps = {p[len(nbrs)] for p in list(whole.leaves) + list(whole.lists)
             if len(p) > len(nbrs) and p[:len(nbrs)] == nbrs}
    for nstep in steps:
        addr = dict(nstep[1]).get(_q("ni", "neighbor-address"), "")
        obj = _split(whole, nbrs + (nstep,), "bgp-neighbor", addr, True)
        desc = obj.leaves.get((step(_q("ni", "config")), step(_q("ni", "description"))))
        if own.owns_description(desc) or ("bgp-neighbor", addr) in claim:
            out[obj.key] = obj


def _network_instances(root: etree._Element, own: Ownership, claim, out: dict) -> None:
    top = step(_q("ni", "network-instances"))
    type_path = (step(_q("ni", "config")), step(_q("ni", "type")))
    for ni in root.iterfind(_q("ni", "network-instance")):
        name = (ni.findtext(_q("ni", "name")) or "").strip()
        path = (top, _entry_step(ni))
        if name == DEFAULT_NI:
            _default_ni(ni, path, own, claim, out)
            continue
        obj = Obj("", name, path, True)
        _flatten(ni, (), obj)
        kind = {"oc-ni-types:L2VSI": "mac-vrf", "oc-ni-types:L3VRF": "ip-vrf"}.get(
            obj.leaves.get(type_path, ""), "network-instance")
        obj.kind = kind
        if own.owns_name(name) or (kind, name) in claim:
            out[obj.key] = obj


def _find(doc: etree._Element, tag: str) -> etree._Element | None:
    if doc.tag == tag:
        return doc
    return next(doc.iter(tag), None)


def inventory(doc: str | bytes | etree._Element, own: Ownership,
              claim: frozenset = frozenset()) -> dict[tuple[str, str], Obj]:
    """The owned objects in an OpenConfig document, keyed ``(kind, name)``."""
    if not isinstance(doc, etree._Element):
        doc = parse(doc)
    out: dict[tuple[str, str], Obj] = {}
    itfs = _find(doc, _q("if", "interfaces"))
    if itfs is not None:
        _interfaces(itfs, own, claim, out)
    nis = _find(doc, _q("ni", "network-instances"))
    if nis is not None:
        _network_instances(nis, own, claim, out)
    return out
