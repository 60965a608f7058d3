"""Invariants every compiled flow set must satisfy; ``compile_checked`` is used by all flow tests.

* every flow obeys the pipeline declaration (tables, match fields, forward gotos);
* cookies: round 0, feature = owner's feature, owner hash = owner's hash;
* no two flows share (table, priority, match), across all owners;
* no two flows of one table and priority can match the same packet (OVS would pick either);
* exactly one priority-0 flow (the miss, matching nothing) per table;
* a table not reachable from the classifier (e.g. l3_neigh when no VPC routes) holds only its miss;
* every register bit a flow matches is written by a flow in an earlier table;
* compiling twice gives identical sets, and re-applying the set to a table keyed by
  (table, priority, match) is idempotent.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import netaddr

from vpcnet.flows import cookies
from vpcnet.flows.compile import compile_node
from vpcnet.flows.fields import BitField
from vpcnet.flows.learn import Learn
from vpcnet.flows.model import MATCH_FIELDS, Conjunction, Flow, Group, GroupAction, Load, Match, Move, Multipath, parse_ct_state
from vpcnet.flows.pipeline import PIPELINE, Pipeline


def all_flows(owner_flows: Mapping[str, frozenset[Flow]]) -> frozenset[Flow]:
    """Every flow of every owner (an owner's set may also hold its groups: see all_groups)."""
    return frozenset(x for fs in owner_flows.values() for x in fs if isinstance(x, Flow))


def all_groups(owner_flows: Mapping[str, frozenset]) -> frozenset[Group]:
    groups = [x for fs in owner_flows.values() for x in fs if isinstance(x, Group)]
    assert len({g.group_id for g in groups}) == len(groups), "a group id is used twice on one node"
    return frozenset(groups)


def _vlan_tci(match: Match):
    if "dl_vlan" in match:
        return (0x1000 | match["dl_vlan"], 0x1FFF)
    if "vlan_tci" in match:
        v = match["vlan_tci"]
        return v if isinstance(v, tuple) else (v, 0xFFFF)
    return None


def _compatible(name: str, a, b) -> bool:
    spec = MATCH_FIELDS[name]
    if name == "ct_state":
        fa, fb = parse_ct_state(a), parse_ct_state(b)
        return all(fa[k] == fb[k] for k in fa.keys() & fb.keys())
    if spec.kind in ("ipv4", "ipv6"):
        na, nb = netaddr.IPNetwork(a), netaddr.IPNetwork(b)
        return na.first <= nb.last and nb.first <= na.last
    if spec.kind == "port":
        return a == b
    if spec.kind == "mac":
        to = lambda v: (int(netaddr.EUI(v[0])), int(netaddr.EUI(v[1]))) if isinstance(v, tuple) \
            else (int(netaddr.EUI(v)), (1 << 48) - 1)  # noqa: E731
        (va, ma), (vb, mb) = to(a), to(b)
        return (va ^ vb) & ma & mb == 0
    full = (1 << spec.bits) - 1
    (va, ma), (vb, mb) = (a if isinstance(a, tuple) else (a, full)), (b if isinstance(b, tuple) else (b, full))
    return (va ^ vb) & ma & mb == 0


def may_overlap(a: Match, b: Match) -> bool:
    """Could one packet match both? (conservative: True unless some field proves disjointness)"""
    for name in a.keys() & b.keys():
        if name in ("dl_vlan", "vlan_tci"):
            continue
        if not _compatible(name, a[name], b[name]):
            return False
    ta, tb = _vlan_tci(a), _vlan_tci(b)
    if ta and tb and (ta[0] ^ tb[0]) & ta[1] & tb[1]:
        return False
    return True


def _conjunctive(flow: Flow) -> bool:
    return bool(flow.actions) and all(isinstance(a, Conjunction) for a in flow.actions)


def _written_bits(actions, groups: Mapping[int, Group] = {}) -> dict[str, int]:
    """Register bits ``actions`` write (including the buckets of the groups they send to)."""
    out: dict[str, int] = defaultdict(int)
    for a in actions:
        if isinstance(a, Load):
            out[a.field.space] |= a.field.mask
        elif isinstance(a, Move) and isinstance(a.dst, BitField):
            out[a.dst.space] |= a.dst.mask
        elif isinstance(a, Multipath):
            out[a.dst.space] |= a.dst.mask
        elif isinstance(a, GroupAction) and a.group_id in groups:
            for b in groups[a.group_id].buckets:
                for space, mask in _written_bits(b.actions).items():
                    out[space] |= mask
    return out


def _learned_bits(flow: Flow) -> dict[str, dict[str, int]]:
    """table -> register bits the flows learned by ``flow`` write there."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in flow.actions:
        if isinstance(a, Learn):
            targets = [ld[1] if isinstance(ld, tuple) else ld for ld in a.loads] + [f for f, _ in a.load_values]
            for f in targets:
                if isinstance(f, BitField):
                    out[a.table][f.space] |= f.mask
    return out


def check_flowset(owner_flows: Mapping[str, frozenset[Flow]], pipeline: Pipeline = PIPELINE,
                  complete: bool = True) -> None:
    flows = all_flows(owner_flows)
    # pipeline declaration + cookies
    for owner, fs in owner_flows.items():
        for f in fs:
            if isinstance(f, Group):
                assert all(g.group_id for g in [f]), f"{owner}: group id 0"
                continue
            pipeline.check(f)
            assert cookies.round_of(f.cookie) == 0, f"{owner}: round must be 0: {f}"
            assert cookies.feature_of(f.cookie) == cookies.feature_of_owner(owner), f"{owner}: feature {f}"
            assert cookies.owner_hash_of(f.cookie) == cookies.owner_hash(owner), f"{owner}: owner hash {f}"
    # every group a flow sends to exists on the node, and every group is used
    groups = {g.group_id for g in all_groups(owner_flows)}
    used = {a.group_id for f in flows for a in f.actions if isinstance(a, GroupAction)}
    assert used == groups, f"groups used {sorted(used)} != groups installed {sorted(groups)}"
    # unique keys across owners, idempotent re-apply
    table: dict[tuple, Flow] = {}
    for _ in range(2):
        for f in sorted(flows, key=lambda f: (f.table, f.priority, repr(f.match))):
            table[f.key] = f
    assert len(table) == len(flows), "two flows share (table, priority, match): " + repr(
        [k for k in table if sum(1 for f in flows if f.key == k) > 1][:3])
    # ambiguity at equal priority
    buckets: dict[tuple, list[Flow]] = defaultdict(list)
    for f in flows:
        buckets[(f.table, f.priority)].append(f)
    for (t, p), fs in buckets.items():
        # Conjunctive clause flows may overlap anything at their priority (OVS collects them all;
        # a plain flow wins a tie), and conj_id flows only match once a conjunction completed.
        for group in ([f for f in fs if not _conjunctive(f) and "conj_id" not in f.match],
                      [f for f in fs if "conj_id" in f.match]):
            for i, x in enumerate(group):
                for y in group[i + 1:]:
                    assert not may_overlap(x.match, y.match), f"{t}/{p}: overlapping flows\n  {x}\n  {y}"
    if not complete:
        return
    # one miss per table
    for t in pipeline.tables:
        misses = [f for f in flows if f.table == t.name and f.priority == 0]
        assert len(misses) == 1, f"table {t.name}: {len(misses)} priority-0 flows"
        assert len(misses[0].match) == 0
    # reachability
    edges: dict[str, set[str]] = defaultdict(set)
    for f in flows:
        edges[f.table].update(pipeline.jumps(f))
    seen, todo = set(), ["classifier"]
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo.extend(edges[t])
    for t in set(pipeline.names()) - seen - {"canary"}:
        dead = [f for f in flows if f.table == t and f.priority > 0]
        assert not dead, f"table {t} is unreachable from classifier but has flows: {dead[:2]}"
    # consumed register bits are provided upstream
    written: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_id = {g.group_id: g for g in all_groups(owner_flows)}
    for f in flows:
        for space, mask in _written_bits(f.actions, by_id).items():
            written[f.table][space] |= mask
        for table, bits in _learned_bits(f).items():
            for space, mask in bits.items():
                written[table][space] |= mask
    for f in flows:
        tid = pipeline.id(f.table)
        for name, value in f.match.items():
            if not name.startswith("reg"):
                continue
            mask = value[1] if isinstance(value, tuple) else 0xFFFFFFFF
            upstream = 0
            for t in pipeline.tables:
                if t.id < tid:
                    upstream |= written[t.name].get(name, 0)
            assert mask & ~upstream == 0, f"{f.table}: matches {name} bits {mask & ~upstream:#x} nobody writes upstream"


def compile_checked(cluster, node: str) -> dict[str, frozenset[Flow]]:
    """compile_node twice (must be identical), check every invariant, return the result."""
    first = compile_node(cluster, node)
    second = compile_node(cluster, node)
    assert first == second, "compilation is not deterministic"
    check_flowset(first)
    return first
