"""Desired vs running leaf configuration -> a readable plan and the edit-config that applies it.

``diff_openconfig(state, running)`` renders ``state`` (render_openconfig), reads both documents
into owned-object inventories (oc_inventory) and compares them object by object:

* ``+`` an object vpcnet wants that the leaf lacks: ``merge`` of all its leaves;
* ``-`` an owned object vpcnet no longer wants: ``delete`` of the object (for ports, which
  are never deleted, ``delete`` of vpcnet's VLANs on them);
* ``~`` an object on both sides that differs: ``merge`` of new/changed leaves and leaf-list
  values, ``delete`` of removed ones and of removed nested list entries.

Nothing outside the owned ranges (oc_inventory) appears in the plan or the edit. A leaf-list
item written as a range (``trunk-vlans 1..200``) that holds a value to remove is deleted whole
and its other members are merged back one by one, so foreign VLANs in the range survive.

``LeafPlan.text()`` is what a future ``vpcnet fabric plan`` prints; ``LeafPlan.edit_config()``
is the ``<config>`` for ``<edit-config>`` (default-operation merge).

The comparison itself (:func:`diff_inventories`) is model-neutral: another model's differ
(diff_leaf.py) passes its own headlines and kind order, and may ask for ``replace_kinds``: a
``~`` on an object of such a kind becomes ``replace`` of the whole object with its desired
content instead of merge/delete of single leaves.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from . import render_openconfig
from .model import LeafState
from .oc_inventory import KIND_ORDER, Obj, Path, expand, inventory
from .render_openconfig import IDENTITY_PREFIXES
from .xmlutil import NC_NS, leaf, sub

__all__ = ["Change", "LeafPlan", "diff_openconfig", "diff_inventories", "plan_text"]

_OP = f"{{{NC_NS}}}operation"
# headline leaves shown on "+" lines, per kind (last path tag)
_HEADLINES = {
    "mac-vrf": ("vni", "vlan-id", "route-distinguisher", "export-route-target"),
    "ip-vrf": ("evi", "route-distinguisher", "export-route-target", "interface"),
    "vni": ("vni-type", "bridge-domain", "l3-vrf-name"),
    "irb": ("vlan", "ip", "prefix-length"),
    "port": ("trunk-vlans",),
    "bgp-neighbor": ("peer-as", "description"),
    "bgp": ("as", "router-id"),
    "vtep": ("source-interface",),
}


def _local(tag: str) -> str:
    return etree.QName(tag).localname


def label(rel: Path) -> str:
    """``evpn/evpn-instance[10100]/import-export-policy/export-route-target``: ``config`` and
    the plural container of a list (``evpn-instances``) are dropped."""
    parts = []
    for i, (tag, keys) in enumerate(rel):
        name = _local(tag)
        if name == "config" or (not keys and i + 1 < len(rel) and rel[i + 1][1]):
            continue
        parts.append(f"{name}[{','.join(v for _, v in keys)}]" if keys else name)
    return "/".join(parts) or "."


@dataclass(frozen=True)
class Change:
    """One line of the plan and the edit operations behind it."""
    op: str                      # "+", "-", "~"
    kind: str
    name: str
    details: tuple[str, ...]     # human-readable, already sorted
    merges: tuple[tuple[Path, str], ...] = ()        # absolute leaf path -> value
    deletes: tuple[tuple[Path, str | None], ...] = ()  # absolute path (+ leaf-list raw value)
    replaces: tuple[Path, ...] = ()                  # list entries sent with operation=replace

    def text(self) -> str:
        head = f"{self.op} {self.kind} {self.name}"
        if not self.details:
            return head
        sep = ": " if self.op == "~" else "  "
        return head + sep + ", ".join(self.details)


@dataclass(frozen=True)
class LeafPlan:
    leaf: str
    model: str
    changes: tuple[Change, ...]
    # prefixes declared on <config> for identity values (OpenConfig's by default)
    prefixes: tuple[tuple[str, str], ...] = tuple(IDENTITY_PREFIXES.items())

    @property
    def empty(self) -> bool:
        return not self.changes

    def text(self) -> str:
        lines = [f"leaf {self.leaf} ({self.model}): " +
                 (f"{len(self.changes)} change(s)" if self.changes else "in sync")]
        lines += [f"  {c.text()}" for c in self.changes]
        return "\n".join(lines) + "\n"

    def edit_config(self) -> etree._Element:
        """``<config>`` with ``nc:operation`` merge/delete/replace for every change
        (deterministic)."""
        config = etree.Element(f"{{{NC_NS}}}config",
                               nsmap={None: NC_NS, "nc": NC_NS, **dict(self.prefixes)})
        for ch in self.changes:
            for path, raw in ch.deletes:
                _delete(config, path, raw)
            for path in ch.replaces:
                _replace(config, path)
            for path, value in ch.merges:
                _merge(config, path, value)
        return config


# ---------------------------------------------------------------------------- building XML
def _child(parent: etree._Element, tag: str, keys) -> etree._Element:
    for c in parent:
        if c.tag == tag and c.get(_OP) != "delete" and \
                all(c.findtext(k) == v for k, v in keys):
            return c
    ns = etree.QName(tag).namespace
    e = sub(parent, etree.QName(tag).localname, ns)
    for k, v in keys:
        leaf(e, etree.QName(k).localname, v, etree.QName(k).namespace)
    return e


def _ensure(config: etree._Element, path: Path) -> etree._Element:
    node = config
    for tag, keys in path:
        node = _child(node, tag, keys)
    return node


def _merge(config: etree._Element, path: Path, value: str) -> None:
    parent = _ensure(config, path[:-1])
    tag = path[-1][0]
    e = sub(parent, etree.QName(tag).localname, etree.QName(tag).namespace)
    e.text = value


def _replace(config: etree._Element, path: Path) -> None:
    """The list entry at ``path`` (keys only) with ``operation="replace"``; the change's merges
    then fill it in (``_child`` finds it by its keys)."""
    parent = _ensure(config, path[:-1])
    tag, keys = path[-1]
    e = sub(parent, etree.QName(tag).localname, etree.QName(tag).namespace)
    for k, v in keys:
        leaf(e, etree.QName(k).localname, v, etree.QName(k).namespace)
    e.set(_OP, "replace")


def _delete(config: etree._Element, path: Path, raw: str | None) -> None:
    parent = _ensure(config, path[:-1])
    tag, keys = path[-1]
    e = sub(parent, etree.QName(tag).localname, etree.QName(tag).namespace)
    for k, v in keys:
        leaf(e, etree.QName(k).localname, v, etree.QName(k).namespace)
    if raw is not None:
        e.text = raw
    e.set(_OP, "delete")


# ---------------------------------------------------------------------------- comparing
def _value_for_xml(tag: str, canon: str) -> str:
    return f"route-target:{canon}" if _local(tag).endswith("route-target") else canon


def _headline(obj: Obj, headlines: dict | None = None) -> tuple[str, ...]:
    out = []
    for want in (_HEADLINES if headlines is None else headlines).get(obj.kind, ()):
        for path, value in sorted(obj.leaves.items()):
            if _local(path[-1][0]) == want:
                out.append(f"{want}={value}")
        for path, values in sorted(obj.lists.items()):
            if _local(path[-1][0]) == want:
                out.append(f"{want}={','.join(sorted(values, key=_natural))}")
    return tuple(dict.fromkeys(out))


def _natural(text: str):
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _all_merges(obj: Obj) -> list[tuple[Path, str]]:
    out = [(obj.root + p, v) for p, v in obj.leaves.items()]
    for p, values in obj.lists.items():
        out += [(obj.root + p, _value_for_xml(p[-1][0], c)) for c in values]
    return sorted(out, key=lambda t: (_path_key(t[0]), _natural(t[1])))


def _path_key(path: Path):
    return tuple((tag, keys) for tag, keys in path)


def _remove_values(obj: Obj, rel: Path, gone: set[str], details: list, merges: list,
                   deletes: list) -> None:
    """Delete leaf-list values ``gone``; a range item also holding kept values is re-split."""
    tag = rel[-1][0]
    raws = {obj.lists[rel][c] for c in gone}
    for raw in sorted(raws, key=_natural):
        deletes.append((obj.root + rel, raw))
        for member in expand(tag, raw):
            if member not in gone and member != raw:
                merges.append((obj.root + rel, member))
    details.extend(f"-{label(rel)} {c}" for c in sorted(gone, key=_natural))


def _outermost(paths) -> list[Path]:
    """The entries of ``paths`` not nested in another one, in path order."""
    out: list[Path] = []
    for p in sorted(paths, key=lambda p: (len(p), _path_key(p))):
        if not any(p[:len(o)] == o for o in out):
            out.append(p)
    return sorted(out, key=_path_key)


def _compare(want: Obj, have: Obj) -> Change | None:
    details: list[str] = []
    merges: list[tuple[Path, str]] = []
    deletes: list[tuple[Path, str | None]] = []
    dropped = _outermost(have.entries - want.entries)
    added = _outermost(want.entries - have.entries)
    for e in dropped:
        deletes.append((have.root + e, None))
        details.append(f"-{label(e)}")
    details.extend(f"+{label(e)}" for e in added)

    def under(p: Path, entries) -> bool:
        return any(p[:len(d)] == d for d in entries)

    for p in sorted(set(want.leaves) | set(have.leaves), key=_path_key):
        old, new = have.leaves.get(p), want.leaves.get(p)
        if old == new or (new is None and under(p, dropped)):
            continue
        tag = p[-1][0]
        if new is None:
            deletes.append((have.root + p, _value_for_xml(tag, old)))
            details.append(f"-{label(p)} {old}")
        else:
            merges.append((want.root + p, _value_for_xml(tag, new)))
            if not under(p, added):
                details.append(f"{label(p)} {old} -> {new}" if old is not None
                               else f"+{label(p)} {new}")
    for p in sorted(set(want.lists) | set(have.lists), key=_path_key):
        old, new = have.lists.get(p, {}), want.lists.get(p, {})
        for c in sorted(set(new) - set(old), key=_natural):
            merges.append((want.root + p, _value_for_xml(p[-1][0], c)))
            if not under(p, added):
                details.append(f"+{label(p)} {c}")
        gone = set(old) - set(new)
        if gone and not under(p, dropped):
            _remove_values(have, p, gone, details, merges, deletes)
    if not (merges or deletes):
        return None
    return Change("~", want.kind, want.name, tuple(details), tuple(merges), tuple(deletes))


def diff_inventories(want: dict, have: dict, *, headlines: dict | None = None,
                     kind_order: tuple[str, ...] = KIND_ORDER,
                     replace_kinds: frozenset = frozenset()) -> tuple[Change, ...]:
    """Changes turning inventory ``have`` into ``want`` (both ``{(kind, name): Obj}``, e.g. from
    :func:`inventory`). ``headlines``: per kind, the leaves shown on ``+`` lines (default:
    OpenConfig's); ``kind_order``: the order of the plan; ``replace_kinds``: kinds whose ``~``
    is sent as ``replace`` of the whole object (its root must be a list entry)."""
    changes = []
    for key in set(want) | set(have):
        w, h = want.get(key), have.get(key)
        if h is None:
            changes.append(Change("+", w.kind, w.name, _headline(w, headlines),
                                  tuple(_all_merges(w))))
        elif w is None:
            if h.deletable:
                changes.append(Change("-", h.kind, h.name, (), (), ((h.root, None),)))
            elif h.lists:   # a port: take back vpcnet's VLANs only
                details: list[str] = []
                merges: list = []
                deletes: list = []
                for p in sorted(h.lists, key=_path_key):
                    _remove_values(h, p, set(h.lists[p]), details, merges, deletes)
                changes.append(Change("~", h.kind, h.name, tuple(details), tuple(merges),
                                      tuple(deletes)))
        else:
            ch = _compare(w, h)
            if ch is not None and w.kind in replace_kinds:
                ch = Change("~", w.kind, w.name, ch.details, tuple(_all_merges(w)), (), (w.root,))
            if ch is not None:
                changes.append(ch)
    order = {k: i for i, k in enumerate(kind_order)}
    return tuple(sorted(changes, key=lambda c: (order.get(c.kind, 99), _natural(c.name), c.op)))


def diff_openconfig(state: LeafState, running) -> LeafPlan:
    """Plan for one OpenConfig leaf: ``running`` is its get-config reply (XML text or element)."""
    desired = inventory(render_openconfig.render(state), state.ownership)
    have = inventory(running, state.ownership, claim=frozenset(desired))
    return LeafPlan(state.leaf, "openconfig", diff_inventories(desired, have))


def plan_text(plans) -> str:
    """All leaves' plans, in leaf order."""
    return "".join(p.text() for p in sorted(plans, key=lambda p: p.leaf))
