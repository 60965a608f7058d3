"""Groups in the reconciler (``reconciler.Reconciler`` uses these; they touch no switch).

An owner's desired set may hold ``Group`` values next to its ``Flow`` values. The group id is
the group's identity on the bridge: at most one owner may hold a given id at any time
(``GroupConflict`` otherwise, raised before anything is sent, like ``ofwire.UnsupportedFlow``).

Ordering, in the one atomic ONF bundle of a change (OVS 3.1 takes group mods in ONF bundles,
tested by tests/functional/test_groups_ovs.py): new groups are added (OFPGC_ADD) and changed
ones modified (OFPGC_MODIFY) *before* the flow-mods, which may refer to them; removed groups are
deleted (OFPGC_DELETE) *after* them, once the flows referring to them are gone (OVS refuses a flow
naming a missing group, OFPBAC_BAD_OUT_GROUP, and deleting a group deletes every flow that
refers to it).

Which groups are vpcnet's: every group on the bridge (groups carry no cookie; br-int is
vpcnet's alone), with one exception: a group that an installed (or, on resync, desired) flow
refers to but no owner holds is *borrowed* and left alone: never deleted (the flows naming it
would go with it), never repaired. A group an owner drops while a flow that stays still refers
to it is kept (borrowed) the same way, with a warning; the audit deletes it once nothing refers
to it any more. Group chaining (a bucket naming a group) is not tracked.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from vpcnet.app import ofcompare, ofencode, ofwire
from vpcnet.flows.model import Flow, Group, GroupAction

LOG = logging.getLogger(__name__)

_NO_GROUPS: dict = {}   # shared, never written: the groups of an owner that has none


class GroupConflict(ValueError):
    """Two owners hold one group id (a compiler bug). The message names the id and both owners."""


def split(items: Iterable) -> tuple[dict[tuple, Flow], dict[int, Group]]:
    """An owner's desired set -> (its flows by key, its groups by id). Sets without groups (all
    but a few) take one pass and share an empty, read-only group dict."""
    try:
        return {f.key: f for f in items}, _NO_GROUPS
    except AttributeError:   # a Group (no .key) is in there
        pass
    flows: dict[tuple, Flow] = {}
    groups: dict[int, Group] = {}
    for x in items:
        if type(x) is Group:
            if groups.get(x.group_id, x) != x:
                raise GroupConflict(f"group {x.group_id} is given twice, with different buckets")
            groups[x.group_id] = x
        else:
            flows[x.key] = x
    return flows, groups


def referenced(flow_dicts: Iterable[dict], ids) -> set[int]:
    """Those of ``ids`` that a flow of ``flow_dicts`` (dicts key -> Flow) refers to."""
    ids = set(ids)
    out: set[int] = set()
    if not ids:
        return out
    for flows in flow_dicts:
        for f in flows.values():
            for a in f.actions:
                if type(a) is GroupAction and a.group_id in ids:
                    out.add(a.group_id)
        if out == ids:
            break
    return out


def owners_of(groups: dict[str, dict[int, Group]]) -> dict[int, str]:
    """group id -> owner of a complete desired state; GroupConflict if two owners hold one id."""
    out: dict[int, str] = {}
    for owner in sorted(groups):
        for gid in groups[owner]:
            other = out.setdefault(gid, owner)
            if other != owner:
                raise GroupConflict(f"group {gid} is held by both {other} and {owner}")
    return out


def add(group: Group) -> bytes:
    return ofencode.encode_group_mod(group, "add")


def modify(group: Group) -> bytes:
    return ofencode.encode_group_mod(group, "modify")


def delete(group_id: int) -> bytes:
    return ofwire.osken_group_delete(group_id)


class Signatures:
    """The signature OVS reports for each group (``ofcompare.desired_group_signature``), kept per
    group id while the group stays the same (building os-ken objects for every group at every
    audit would cost more than the compare)."""

    def __init__(self):
        self._sigs: dict[int, tuple[Group, tuple]] = {}

    def __call__(self, group: Group) -> tuple:
        hit = self._sigs.get(group.group_id)
        if hit is None or hit[0] is not group and hit[0] != group:
            hit = self._sigs[group.group_id] = (group, ofcompare.desired_group_signature(group))
        return hit[1]

    def keep(self, ids) -> None:
        """Forget every id but ``ids`` (the groups installed now)."""
        for gid in [g for g in self._sigs if g not in ids]:
            del self._sigs[gid]


class Plan:
    """What a change does to the groups: messages before the flow-mods (adds, modifies) and after
    them (deletes), the flow-mod counts by op, and the ids dropped but kept on the switch because
    a remaining flow still refers to them."""

    def __init__(self):
        self.first: list[bytes] = []
        self.last: list[bytes] = []
        self.counts: Counter = Counter()
        self.kept: set[int] = set()
        self.deleted: set[int] = set()


def plan_apply(node: str, installed: dict[str, dict[int, Group]], group_owner: dict[int, str], unowned: set[int],
               changes: dict[str, dict[int, Group]], remaining_flows) -> Plan:
    """Group messages for ``changes`` (owner -> its complete group set). ``installed`` /
    ``group_owner``: the cache; ``unowned``: ids on the switch no owner holds (borrowed);
    ``remaining_flows()``: the flow dicts installed once the change is in (for the deletes)."""
    plan = Plan()
    final = dict(group_owner)
    for owner in changes:
        for gid in installed.get(owner, _NO_GROUPS):
            if final.get(gid) == owner:
                del final[gid]
    for owner in sorted(changes):
        for gid in changes[owner]:
            other = final.setdefault(gid, owner)
            if other != owner:
                raise GroupConflict(f"{node}: group {gid} of {owner} is held by {other} already")
    for owner, groups in changes.items():
        for gid, group in groups.items():
            holder = group_owner.get(gid)
            have = installed[holder][gid] if holder is not None else None
            if have is None and gid not in unowned:
                plan.first.append(add(group))
                plan.counts["group_add"] += 1
            elif have != group:   # changed, or on the switch but no owner's until now
                plan.first.append(modify(group))
                plan.counts["group_modify"] += 1
    removed = sorted({gid for owner in changes for gid in installed.get(owner, _NO_GROUPS) if gid not in final})
    if removed:
        plan.kept = referenced(remaining_flows(), removed)
        for gid in removed:
            if gid in plan.kept:
                LOG.warning("%s: group %d is no owner's any more but a flow still refers to it: left on the "
                            "switch (the audit deletes it once nothing refers to it)", node, gid)
            else:
                plan.last.append(delete(gid))
                plan.deleted.add(gid)
        plan.counts["group_delete"] += len(plan.deleted)
    return plan


def plan_resync(on_switch: dict[int, object], wanted: dict[str, dict[int, Group]], group_owner: dict[int, str],
                flows, sig: Signatures) -> Plan:
    """Group messages that bring a bridge holding ``on_switch`` (id -> OFPGroupDescStats) to the
    desired groups ``wanted`` (owner -> id -> Group), around a bundle installing the desired
    flow dicts ``flows``: add the missing groups, modify the differing ones, delete the others
    unless a desired flow refers to them (``kept``: borrowed, left alone)."""
    plan = Plan()
    for gid, owner in sorted(group_owner.items()):
        group, entry = wanted[owner][gid], on_switch.get(gid)
        if entry is None:
            plan.first.append(add(group))
            plan.counts["group_add"] += 1
        elif ofcompare.group_stats_signature(entry) != sig(group):
            plan.first.append(modify(group))
            plan.counts["group_modify"] += 1
    extra = set(on_switch) - set(group_owner)
    plan.kept = referenced(flows, extra) if extra else set()
    plan.deleted = extra - plan.kept
    plan.last = [delete(gid) for gid in sorted(plan.deleted)]
    plan.counts["group_delete"] += len(plan.deleted)
    return plan


def plan_audit(on_switch: dict[int, object], installed: dict[str, dict[int, Group]], flows,
               sig: Signatures) -> tuple[Plan, int]:
    """Repairs of the groups: re-add the missing, modify the altered, delete the extra (those no
    installed flow refers to; the others are ``kept``, borrowed). Returns (plan, drift count)."""
    plan = Plan()
    on_switch = dict(on_switch)
    for groups in installed.values():
        for gid, group in groups.items():
            entry = on_switch.pop(gid, None)
            if entry is None:
                plan.first.append(add(group))
            elif ofcompare.group_stats_signature(entry) != sig(group):
                plan.first.append(modify(group))
    plan.kept = referenced(flows, on_switch) if on_switch else set()
    plan.deleted = set(on_switch) - plan.kept
    plan.last = [delete(gid) for gid in sorted(plan.deleted)]
    return plan, len(plan.first) + len(plan.last)


__all__ = ["GroupConflict", "split", "referenced", "owners_of", "Signatures", "Plan",
           "plan_apply", "plan_resync", "plan_audit"]
