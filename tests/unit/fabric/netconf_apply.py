"""A minimal NETCONF edit-config (merge/delete) applier on lxml trees, for round-trip tests.

Good enough for what diff.py emits: list entries match on their key leaves (oc_inventory's
LIST_KEYS), leaf-list entries on their text, containers and leaves on their tag.
"""
from __future__ import annotations

import copy

from lxml import etree

from vpcnet.fabric.oc_inventory import LEAF_LISTS, LIST_KEYS
from vpcnet.fabric.xmlutil import NC_NS

_OP = f"{{{NC_NS}}}operation"


def _match(target: etree._Element, edit: etree._Element) -> etree._Element | None:
    for c in target:
        if c.tag != edit.tag:
            continue
        if edit.tag in LEAF_LISTS and not len(edit):
            if (c.text or "").strip() == (edit.text or "").strip():
                return c
            continue
        keys = LIST_KEYS.get(edit.tag) if len(edit) else None
        if keys and not all(c.findtext(k) == edit.findtext(k) for k in keys):
            continue
        return c
    return None


def _apply(target: etree._Element, edit: etree._Element) -> None:
    for child in edit:
        op = child.get(_OP, "merge")
        found = _match(target, child)
        if op == "delete":
            if found is None:
                raise AssertionError(f"delete of missing {etree.QName(child).localname} "
                                     f"{child.findtext('*') or child.text}")
            target.remove(found)
            continue
        if found is None:
            new = copy.deepcopy(child)
            for e in new.iter():
                e.attrib.pop(_OP, None)
            target.append(new)
        elif len(child):
            _apply(found, child)
        else:
            found.text = child.text


def apply_edit(running: etree._Element, edit_config: etree._Element) -> etree._Element:
    """A copy of ``running`` (a ``<config>``/``<data>`` element) with the edit applied."""
    out = copy.deepcopy(running)
    for top in edit_config:
        found = _match(out, top)
        if found is None:
            out.append(copy.deepcopy(top))
        else:
            _apply(found, top)
    return out
