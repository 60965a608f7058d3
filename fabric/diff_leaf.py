"""Drift diff for the ``vpcnet-leaf`` model: desired LeafState vs the leaf's running config.

Same contract as :func:`vpcnet.fabric.diff.diff_openconfig`: ``diff_leaf(state, running)``
returns a :class:`~vpcnet.fabric.diff.LeafPlan` whose ``text()`` lists ``+``/``-``/``~`` changes
and whose ``edit_config()`` is the ``<config>`` that turns the running configuration into the
desired one. The comparison is diff.py's (:func:`~vpcnet.fabric.diff.diff_inventories`); this
module only reads vpcnet-leaf documents into owned-object inventories.

Objects (``kind name``) and when vpcnet owns them — nothing else is ever compared or touched:

============  ==============================================  ====================  =========
kind          where (under ``/vl:leaf``)                      owned when            deletable
============  ==============================================  ====================  =========
vtep          ``vtep/*`` and ``anycast-gateway-mac``          always                no
bgp           ``bgp/asn``, ``bgp/router-id``                  always                no
bgp-neighbor  ``bgp/neighbor[address]``                       description tagged    yes
mac-vrf       ``mac-vrf[name]``                               name has the prefix   yes
                                                              AND vlan, vni owned
ip-vrf        ``ip-vrf[name]`` with its gateways              name has the prefix   yes
                                                              AND l3vni owned
port          ``interface[name]``: only its owned             carries an owned      no: only
              ``allowed-vlan``\\ s                             VLAN (*)              those go
============  ==============================================  ====================  =========

(*) a VLAN in the owned range that is not the VLAN of a foreign (not owned) MAC-VRF.

A MAC-VRF needs *every* marker (prefix and both ranges) to be vpcnet's: a hand-made MAC-VRF
outside the ranges is never deleted, even with a vpcnet-like name, and neither is one without
the prefix inside the ranges (its VLAN on a port is then foreign too). Objects vpcnet wants are
always taken ("claimed"), whatever their markers say, so a desired object is adopted and
repaired, never duplicated.

**Edits use ``replace`` for changed list entries.** netconfd 2.13 (yuma123) has a bug, found
while building this: a commit in which one list entry under ``/vl:leaf`` gets a leaf-list value
deleted *and* another leaf-list value created (``import-rt`` 65001:1 -> 65000:1, or
``allowed-vlan`` 100 -> 101) succeeds, but leaves that entry broken: every later ``<commit>``
that does not replace the entry fails with ``data-exists /commit: duplicate entry`` (also after
reconnecting; a restart or a ``replace`` of the entry heals it; see the functional test
``test_commit_failure_is_cleaned_up``). ``replace`` of the whole entry does not trigger it, so
a ``~`` on a mac-vrf, ip-vrf, bgp-neighbor or port is sent as ``operation="replace"`` of that
entry with its complete desired content; a leaf an operator broke that way is healed by the
next plan that touches the entry. For a port (shared with the operator) the content is the
running entry with vpcnet's VLANs swapped for the desired ones, so a port description and
foreign VLANs survive; plan under the lock (``netconf.apply(target, lambda running: ...)``) so
that no operator edit can slip in between the read and the commit. ``vtep`` and ``bgp`` have
no leaf-lists and keep merge/delete of single leaves.
"""
from __future__ import annotations

import ipaddress

from lxml import etree

from .diff import Change, LeafPlan, diff_inventories
from .inputs import Ownership
from .model import LeafState
from .oc_inventory import Obj, Path, step
from .render_leaf import NS, render
from .xmlutil import parse

__all__ = ["diff_leaf", "inventory", "KIND_ORDER", "HEADLINES", "LIST_KEYS", "LEAF_LISTS",
           "MODEL"]

MODEL = "vpcnet-leaf"


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


LIST_KEYS: dict[str, tuple[str, ...]] = {
    _q("interface"): (_q("name"),),
    _q("mac-vrf"): (_q("name"),),
    _q("ip-vrf"): (_q("name"),),
    _q("gateway"): (_q("vlan"),),
    _q("neighbor"): (_q("address"),),
}
LEAF_LISTS = frozenset(_q(t) for t in ("allowed-vlan", "import-rt", "export-rt",
                                       "address-family", "address"))
KIND_ORDER = ("bgp", "vtep", "bgp-neighbor", "ip-vrf", "mac-vrf", "port")
HEADLINES = {
    "vtep": ("source-address", "source-interface", "anycast-gateway-mac"),
    "bgp": ("asn", "router-id"),
    "bgp-neighbor": ("remote-as", "description"),
    "ip-vrf": ("l3vni", "rd", "export-rt", "address-family", "address"),
    "mac-vrf": ("vlan", "vni", "rd", "export-rt", "ip-vrf"),
    "port": ("allowed-vlan",),
}
REPLACE_KINDS = frozenset({"bgp-neighbor", "ip-vrf", "mac-vrf", "port"})
_TOP = step(_q("leaf"))
_ALLOWED = (step(_q("allowed-vlan")),)
_MAC_LEAVES = frozenset({_q("anycast-gateway-mac")})
_IP_LEAVES = frozenset({_q("source-address"), _q("router-id"), _q("address")})


# ---------------------------------------------------------------------------- reading
def _canon(tag: str, text: str) -> str:
    """Equal values compare equal: MACs in lower case, IP addresses (and ``addr/len``)
    compressed. Anything unparsable stays as it is (the leaf validated it)."""
    text = (text or "").strip()
    if tag in _MAC_LEAVES:
        return text.lower()
    if tag in _IP_LEAVES:
        addr, slash, plen = text.partition("/")
        try:
            return ipaddress.ip_address(addr).compressed + slash + plen
        except ValueError:
            return text
    return text


def _entry_step(elem: etree._Element) -> tuple:
    """List entry step; key values stay raw (they must name the entry as the leaf stores it)."""
    return (elem.tag, tuple((k, (elem.findtext(k) or "").strip()) for k in LIST_KEYS[elem.tag]
                            if elem.find(k) is not None))


def _flatten(children, prefix: Path, obj: Obj, keys: tuple[str, ...] = ()) -> None:
    """Add ``children`` (elements under ``prefix``) to ``obj``: leaves, leaf-list values and
    nested list entries; ``keys`` (of the list entry holding them) are skipped."""
    for child in children:
        if not isinstance(child.tag, str):
            continue
        if len(child):
            if child.tag in LIST_KEYS:
                path = prefix + (_entry_step(child),)
                obj.entries.add(path)
            else:
                path = prefix + (step(child.tag),)
            _flatten(child, path, obj, LIST_KEYS.get(child.tag, ()))
        elif child.tag in keys or not (child.text or "").strip():
            continue    # keys live in the step; an empty node is an empty container
        else:
            path = prefix + (step(child.tag),)
            raw = (child.text or "").strip()
            if child.tag in LEAF_LISTS:
                obj.lists.setdefault(path, {})[_canon(child.tag, raw)] = raw
            else:
                obj.leaves[path] = _canon(child.tag, raw)


def _entry(kind: str, elem: etree._Element, parent: Path, deletable: bool) -> Obj:
    name = (elem.findtext(LIST_KEYS[elem.tag][0]) or "").strip()
    obj = Obj(kind, name, parent + (_entry_step(elem),), deletable)
    _flatten(elem, (), obj, LIST_KEYS[elem.tag])
    return obj


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def _owned_mac_vrf(obj: Obj, own: Ownership) -> bool:
    vlan = _int(obj.leaves.get((step(_q("vlan")),)))
    vni = _int(obj.leaves.get((step(_q("vni")),)))
    return (own.owns_name(obj.name) and vlan is not None and own.owns_vlan(vlan)
            and vni is not None and own.owns_vni(vni))


def _owned_ip_vrf(obj: Obj, own: Ownership) -> bool:
    vni = _int(obj.leaves.get((step(_q("l3vni")),)))
    return own.owns_name(obj.name) and vni is not None and own.owns_vni(vni)


def _find(doc: etree._Element, tag: str) -> etree._Element | None:
    if doc.tag == tag:
        return doc
    return next(doc.iter(tag), None)


def _read(doc, own: Ownership, claim: frozenset, take_all: bool) -> tuple[dict, set[str]]:
    """(owned objects, VLANs of foreign MAC-VRFs)."""
    if not isinstance(doc, etree._Element):
        doc = parse(doc)
    out: dict[tuple[str, str], Obj] = {}
    foreign_vlans: set[str] = set()
    top = _find(doc, _q("leaf"))
    if top is None:
        return out, foreign_vlans

    def take(obj: Obj, owned: bool) -> bool:
        if take_all or owned or obj.key in claim:
            out[obj.key] = obj
            return True
        return False

    for e in top.iterfind(_q("mac-vrf")):
        obj = _entry("mac-vrf", e, (_TOP,), True)
        if not take(obj, _owned_mac_vrf(obj, own)):
            foreign_vlans.add((e.findtext(_q("vlan")) or "").strip())
    for e in top.iterfind(_q("ip-vrf")):
        obj = _entry("ip-vrf", e, (_TOP,), True)
        take(obj, _owned_ip_vrf(obj, own))

    vtep = Obj("vtep", "leaf", (_TOP,), False)
    _flatten([e for e in top if e.tag in (_q("vtep"), _q("anycast-gateway-mac"))], (), vtep)
    if vtep.leaves:
        out[vtep.key] = vtep

    bgp_el = top.find(_q("bgp"))
    if bgp_el is not None:
        bgp_path = (_TOP, step(_q("bgp")))
        bgp = Obj("bgp", "global", bgp_path, False)
        for e in bgp_el:
            if isinstance(e.tag, str) and not len(e) and (e.text or "").strip():
                bgp.leaves[(step(e.tag),)] = _canon(e.tag, e.text)
        if bgp.leaves:
            out[bgp.key] = bgp
        for e in bgp_el.iterfind(_q("neighbor")):
            obj = _entry("bgp-neighbor", e, bgp_path, True)
            take(obj, own.owns_description(obj.leaves.get((step(_q("description")),))))

    for e in top.iterfind(_q("interface")):
        obj = _entry("port", e, (_TOP,), False)
        vlans = obj.lists.get(_ALLOWED, {})
        mine = [v for v in vlans if _port_vlan_owned(v, own, foreign_vlans)]
        take(obj, bool(mine))
    return out, foreign_vlans


def _port_vlan_owned(vlan: str, own: Ownership, foreign_vlans: set[str]) -> bool:
    return vlan.isdigit() and own.owns_vlan(int(vlan)) and vlan not in foreign_vlans


def inventory(doc, own: Ownership, claim: frozenset = frozenset()) -> dict[tuple[str, str], Obj]:
    """The owned objects of a vpcnet-leaf document (a ``<config>``, ``<data>`` or
    ``<rpc-reply>``, text or element), keyed ``(kind, name)``. Ports hold their whole entry
    (foreign VLANs and description included; :func:`diff_leaf` compares only vpcnet's part)."""
    return _read(doc, own, claim, take_all=False)[0]


# ---------------------------------------------------------------------------- ports
def _port_target(have: Obj, desired: Obj | None, own: Ownership, foreign_vlans: set[str]) -> Obj:
    """What a port must become: the running entry with vpcnet's VLANs replaced by the desired
    ones (none when vpcnet no longer wants the port). Description and foreign VLANs stay."""
    want_vlans = dict(desired.lists.get(_ALLOWED, {})) if desired is not None else {}
    out = Obj("port", have.name, have.root, False, dict(have.leaves),
              {p: dict(v) for p, v in have.lists.items()}, set(have.entries))
    kept = {c: r for c, r in out.lists.pop(_ALLOWED, {}).items()
            if c not in want_vlans and not _port_vlan_owned(c, own, foreign_vlans)}
    kept.update(want_vlans)
    if kept:
        out.lists[_ALLOWED] = kept
    return out


# ---------------------------------------------------------------------------- the plan
def diff_leaf(state: LeafState, running) -> LeafPlan:
    """Plan for one vpcnet-leaf leaf: ``running`` is its get-config reply (XML text or element;
    ``<data>``, ``<config>`` or ``<rpc-reply>``; other top-level modules are ignored)."""
    own = state.ownership
    want, _ = _read(render(state), own, frozenset(), take_all=True)
    have, foreign_vlans = _read(running, own, frozenset(want), take_all=False)
    for key, h in have.items():
        if h.kind == "port":
            want[key] = _port_target(h, want.get(key), own, foreign_vlans)
    changes: tuple[Change, ...] = diff_inventories(want, have, headlines=HEADLINES,
                                                   kind_order=KIND_ORDER,
                                                   replace_kinds=REPLACE_KINDS)
    return LeafPlan(state.leaf, MODEL, changes, prefixes=())
