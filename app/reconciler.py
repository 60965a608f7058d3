"""One bridge: desired flows vs installed flows, per owner, kept exact.

* ``resync(desired)`` — on (re)connect: install everything under the *next* round in one atomic
  bundle, and in the same bundle delete every flow of any other round by cookie mask. An ADD with
  the match and priority of an existing flow replaces it in place (counters kept, OF1.3 §6.4),
  so packets never see a gap: never wipe first. The round is then written to the bridge's
  ``external_ids:vpcnet-round`` (when the node's OVSDB is known).
* ``apply(changes)`` — incremental: the changed owners' adds, modifies and deletes go out as one
  bundle; the cache (``installed``) changes only once the switch committed it. If a bundle is
  refused, each owner is retried alone, so one bad owner cannot block the others; the bad
  owner's error is logged with its name and counted.
* ``audit()`` — dump the switch's flows, compare with the cache by normalized signature, repair
  what differs (missing, altered, extra) and count it as drift.
* ``ensure_meters()`` — make the switch hold every meter of ``meters`` (a constructor argument)
  with exactly those settings: an add each, and a modify for each the switch already had
  (OFPMMFC_METER_EXISTS). Meters nobody listed are left alone. ``resync`` calls it first, before
  any flow (e.g. ``controller(meter_id=..)``) can refer to them; a meter the switch refuses is
  logged and counted (``errors{where="meter"}``) and the flows go in anyway (OVS takes a
  controller action naming a missing meter). Meter mods cannot go into an ONF bundle on OVS, so
  they are separate messages, checked with a barrier (``DatapathLink.send_checked``).
* Groups: an owner's set may hold ``Group`` values next to its flows (``reconcile_groups`` has
  the rules). The group id is its identity; one owner per id (``GroupConflict`` otherwise, raised
  before anything is sent). They go in the same atomic bundle as the flows (OVS 3.1 takes group
  mods in ONF bundles and rolls them back with the rest: tests/functional/test_groups_ovs.py):
  adds and modifies before the flow-mods, deletes after them. ``resync`` dumps the groups too and
  deletes, at the end of its bundle, every group no owner has (groups carry no cookie: all
  groups on the bridge are taken to be vpcnet's) except the *borrowed* ones a desired flow
  names; ``audit`` re-adds, modifies or deletes groups the same way (``drift{kind="group"}``).
  ``installed`` keeps flows only (an owner with groups alone has an empty entry); ``groups``,
  ``group_owner`` and ``unowned_groups`` (borrowed, on the switch) are the group cache.

The cache: ``installed`` maps owner -> flow key -> Flow *as compiled* (cookie round 0); on the
switch every one of them carries ``self.round`` in its cookie (``cookies.with_round``), set while
encoding (``ofencode.encode_flow_mod(flow, cookie=...)``), so no per-flow copies are made.
``_rounded(flows)`` gives an owner's flows in the cache's form (compare it with
``installed[owner]``); ``flows()`` gives the flows as installed, round cookie included. Next to
the cache: the bytes sent for each flow (until an audit turns them into the flow's normalized
key and signature, ``ofcompare.flow_mod_identity``, kept from then on) and, from the last audit,
the identity of each raw entry the switch reported; so an audit needs no os-ken objects and, in
the steady state, no normalisation at all.

A lock serialises changes per bridge. Everything here blocks on the switch, so it runs on the
flow engine's threads, never on os-ken's handler thread. ``audit`` dumps and identifies the
switch's flows without the lock (it dumps again under the lock if a bundle was committed
meanwhile); ``resync`` reads and writes the OVSDB round outside it. Big dumps go in slices of
about ``DUMP_SLICE_FLOWS`` flows (see ``DatapathLink.dump_flows``: one huge reply keeps os-ken
from answering the switch's inactivity probe, and OVS then drops the connection).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, defaultdict

from os_ken.ofproto import ofproto_v1_3 as _OFP13

from vpcnet.app import ofcompare, ofencode, ofwire
from vpcnet.app import reconcile_groups as groups_
from vpcnet.app.metrics import Metrics
from vpcnet.app.oflink import DatapathLink, LinkError
from vpcnet.flows import cookies
from vpcnet.flows.model import Flow, Group, Meter
from vpcnet.flows.pipeline import LEARNED_TABLES, PIPELINE

LOG = logging.getLogger(__name__)
# Why an owner's flows may not go in: the switch refused them, or they cannot be expressed
# (an action os-ken cannot encode, a group id another owner holds). One owner's such error
# never keeps the others out (Reconciler.apply).
UNINSTALLABLE = (LinkError, ofwire.UnsupportedFlow, groups_.GroupConflict)

OwnerFlows = dict[str, frozenset[Flow | Group]]
_NOT_ROUND = ~cookies.mask_round() & 0xFFFFFFFFFFFFFFFF
# Tables whose flows the switch learns (learn actions, e.g. sessionAffinity). Learned flows carry
# round 0 in their cookie (the compiler's round; the reconciler's flows have 1..65535): the audit
# never compares, deletes or counts them as drift, and a resync keeps them.
_LEARNED_TABLE_IDS = frozenset(PIPELINE.id(t) for t in LEARNED_TABLES)
DUMP_SLICE_FLOWS = 4096   # about this many flows per flow-stats request (DatapathLink.dump_flows)
_METER_EXISTS = (_OFP13.OFPET_METER_MOD_FAILED, _OFP13.OFPMMFC_METER_EXISTS)   # add of a meter it has


def dump_slices(flows: int) -> int:
    """Requests (a power of two, at most 256) for dumping about ``flows`` flows."""
    n = 1
    while n < 256 and flows > n * DUMP_SLICE_FLOWS:
        n *= 2
    return n


def next_round(*seen: int | None) -> int:
    """The round after every round seen (1..65535; 0 is never used, so round 0 = not ours)."""
    rounds = [r for r in seen if r]
    return (max(rounds) % 0xFFFF) + 1 if rounds else 1


def _entry_memo_key(raw: bytes) -> bytes:
    """A raw ofp_flow_stats entry without what changes by itself (durations, counters, length):
    table, priority, cookie, match and instructions. Its identity depends on nothing else."""
    return raw[2:3] + raw[12:14] + raw[24:32] + raw[48:]


class Reconciler:
    def __init__(self, node: str, link: DatapathLink, metrics: Metrics, ovsdb: str | None = None,
                 bridge: str = "br-int", *, meters: tuple[Meter, ...] = ()):
        self.node, self.link, self.metrics = node, link, metrics
        self.ovsdb, self.bridge = ovsdb, bridge
        self.meters: tuple[Meter, ...] = tuple(meters)   # the meters this bridge must have
        ids = [m.meter_id for m in self.meters]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{node}: meter ids listed twice: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
        self.meters_installed: dict[int, Meter] = {}     # meter id -> Meter the switch took (last ensure)
        self.failed_meters: dict[int, str] = {}          # meter id -> the switch's errors (last ensure)
        # Counting by label (the policy audit): flow key -> label, set by the caller before an
        # audit; the audit leaves key -> (label, packets, bytes) of those it found in ``counted``.
        self.accounting: dict[tuple, object] = {}
        self.counted: dict[tuple, tuple] = {}
        self.wire = ofwire.Wire(link.dp)
        self.round = 0
        self.installed: dict[str, dict[tuple, Flow]] = {}   # owner -> key -> flow (as compiled)
        self.owner_of: dict[tuple, str] = {}                # key -> owner
        self.groups: dict[str, dict[int, Group]] = {}       # owner -> group id -> group (owners with groups)
        self.group_owner: dict[int, str] = {}               # group id -> owner
        self.unowned_groups: set[int] = set()   # on the switch, no owner's, a flow refers to them (borrowed)
        self._group_sig = groups_.Signatures()
        self.lock = threading.Lock()
        self.synced = False
        self.cluster = None          # the compiler input this bridge was last brought to (engine's)
        self.failed: set[str] = set()  # owners whose last bundle the switch refused
        self._sent: dict[Flow, bytes] = {}      # installed flow -> the add sent for it (not audited yet)
        self._ident: dict[Flow, tuple] = {}     # installed flow -> (key, signature) on the switch
        self._seen: dict[bytes, tuple] = {}     # raw entry (_entry_memo_key) -> (key, signature), last audit
        self._generation = 0                    # bumped by every committed bundle
        self._counts: dict[tuple[str, str], int] = defaultdict(int)   # (table, feature) -> installed flows
        # per-table packet/byte counters, monotonic: the counts each flow had at the last audit,
        # and what the tables have accumulated (a flow deleted keeps what it counted)
        self._flow_counts: dict[tuple, tuple[int, int]] = {}
        self._table_totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    # --- helpers ---------------------------------------------------------------------------
    def _rounded(self, flows: frozenset) -> dict[tuple, Flow]:
        """``flows`` in the form ``installed`` keeps them: key -> flow (as compiled; the round
        is added to the cookie when encoding). Group values are left out (``groups`` has them)."""
        return groups_.split(flows)[0]

    def _cookie(self, flow: Flow) -> int:
        """The cookie ``flow`` carries on the switch: its own, in this round."""
        return (flow.cookie & _NOT_ROUND) | (self.round << cookies.ROUND_SHIFT)

    def _add(self, flow: Flow) -> bytes:
        return ofencode.encode_flow_mod(flow, "add", self._cookie(flow))

    def _commit(self, messages, counts: Counter, meanwhile=None) -> None:
        """One bundle; ``messages`` may be a generator (encoding while earlier chunks are sent);
        ``meanwhile`` runs while the switch works on it (``DatapathLink.bundle``)."""
        if isinstance(messages, list) and not messages:
            if meanwhile is not None:
                meanwhile()
            return
        try:
            if meanwhile is None:
                self.link.bundle(messages)
            else:
                self.link.bundle(messages, meanwhile=meanwhile)
        except LinkError:
            self.metrics.bundle_failures.labels(node=self.node).inc()
            raise
        self._generation += 1
        self.metrics.bundles.labels(node=self.node).inc()
        for op, n in counts.items():
            self.metrics.flow_mods.labels(node=self.node, op=op).inc(n)

    def _count(self, owner: str, flows: dict[tuple, Flow], sign: int, counts=None) -> None:
        """Add (sign 1) or remove (-1) an owner's flows in the per (table, feature) counts."""
        feature = cookies.feature_of_owner(owner).name.lower()
        if counts is None:
            counts = self._counts
        for f in flows.values():
            counts[(f.table, feature)] += sign

    def _publish(self) -> None:
        counts = {k: n for k, n in self._counts.items() if n}
        n_groups = sum(len(g) for g in self.groups.values())
        with self.metrics.snapshots.lock:
            self.metrics.snapshots.flows[self.node] = counts
            self.metrics.snapshots.groups[self.node] = n_groups

    def flows(self) -> list[Flow]:
        """Every installed flow as it is on the switch (round cookie included)."""
        with self.lock:
            flows = [f for flows in self.installed.values() for f in flows.values()]
            rnd = self.round
        shift, out = rnd << cookies.ROUND_SHIFT, []
        for f in flows:
            c = (f.cookie & _NOT_ROUND) | shift
            out.append(f if c == f.cookie else dataclasses.replace(f, cookie=c))
        return out

    # --- meters ---------------------------------------------------------------------------------
    def ensure_meters(self) -> list[int]:
        """Bring every meter of ``self.meters`` onto the switch with exactly its settings (add;
        modify those the switch already has). Returns the ids the switch refused (logged,
        counted). Raises LinkError if the switch does not answer."""
        with self.lock:
            return self._ensure_meters()

    def _ensure_meters(self) -> list[int]:
        if not self.meters:
            return []
        wire = self.wire
        results = self.link.send_checked([wire.meter_mod(m, "add") for m in self.meters])
        exists = [m for m, errs in zip(self.meters, results) if errs and all(e == _METER_EXISTS for e in errs)]
        done = {m.meter_id: m for m, errs in zip(self.meters, results) if not errs}
        failed = {m.meter_id: errs for m, errs in zip(self.meters, results) if errs and m not in exists}
        if exists:
            for m, errs in zip(exists, self.link.send_checked([wire.meter_mod(m, "modify") for m in exists])):
                if errs:
                    failed[m.meter_id] = errs
                else:
                    done[m.meter_id] = m
        self.meters_installed = done
        self.failed_meters = {i: ", ".join(f"type={t} code={c}" for t, c in errs) for i, errs in failed.items()}
        for meter_id, text in sorted(self.failed_meters.items()):
            LOG.error("%s: meter %d not installed: %s", self.node, meter_id, text)
            self.metrics.errors.labels(where="meter").inc()
        return sorted(failed)

    # --- full resync on connect --------------------------------------------------------------
    def uninstallable(self, desired: OwnerFlows) -> dict[str, Exception]:
        """The owners of ``desired`` that no bundle can carry, and why: a flow or group os-ken
        cannot encode, a group given twice, or a group id another owner holds too (both named).
        For ``resync``, which takes a node's whole desired state at once."""
        out: dict[str, Exception] = {}
        claims: dict[int, list[str]] = defaultdict(list)
        for owner, items in sorted(desired.items()):
            try:
                flows, groups = groups_.split(items)
                for f in flows.values():
                    self._add(f)
                for g in groups.values():
                    groups_.add(g)
            except (ofwire.UnsupportedFlow, groups_.GroupConflict) as exc:
                out[owner] = exc
                continue
            for gid in groups:
                claims[gid].append(owner)
        for gid, owners in claims.items():
            if len(owners) > 1:
                for owner in owners:
                    out.setdefault(owner, groups_.GroupConflict(f"group {gid} is held by {', '.join(owners)}"))
        return out

    def resync(self, desired: OwnerFlows) -> None:
        t0 = time.monotonic()
        stored = None
        if self.ovsdb:
            try:
                from vpcnet.ovsdb import vswitch
                stored = vswitch.read_round(self.ovsdb, self.bridge)
            except Exception as exc:  # the OVSDB is optional for correctness: cookies tell too
                LOG.warning("%s: cannot read the restart round from %s: %s", self.node, self.ovsdb, exc)
        with self.lock:   # the switch likely holds about as many flows as we want (a restart)
            self._ensure_meters()   # before any flow that may name them
            on_switch = {e.group_id: e for e in self.link.dump_groups()}
            stats = self.link.dump_flows(slices=dump_slices(max(len(self.owner_of),
                                                                sum(len(f) for f in desired.values()))))
            present = {cookies.round_of(s.cookie) for s in stats
                       if s.table_id not in _LEARNED_TABLE_IDS or cookies.round_of(s.cookie)}
            wanted, wanted_groups = {}, {}
            for owner, items in desired.items():
                flows, groups = groups_.split(items)
                if flows or groups:
                    wanted[owner] = flows
                if groups:
                    wanted_groups[owner] = groups
            group_owner = groups_.owners_of(wanted_groups)
            # groups around the flows, in the same bundle: adds/modifies first, stale deletes last
            gplan = groups_.plan_resync(on_switch, wanted_groups, group_owner, wanted.values(), self._group_sig)
            previous, self.round = self.round, next_round(stored, *present)
            stale = sorted(present - {self.round})
            sent: dict[Flow, bytes] = {}
            n_adds = sum(len(flows) for flows in wanted.values())

            def messages():
                yield from gplan.first
                encode, keep, rnd = ofencode.encode_flow_mod, _NOT_ROUND, self.round << cookies.ROUND_SHIFT
                for flows in wanted.values():
                    for f in flows.values():
                        sent[f] = msg = encode(f, "add", (f.cookie & keep) | rnd)
                        yield msg
                for r in stale:
                    yield self.wire.delete_by_cookie(r << cookies.ROUND_SHIFT, cookies.mask_round())
                yield from gplan.last

            ready: dict = {}

            def prepare():   # the new caches, built while the switch commits; adopted after
                ready["owner_of"] = {key: owner for owner, flows in wanted.items() for key in flows}
                ready["counts"] = counts = defaultdict(int)
                for owner, flows in wanted.items():
                    self._count(owner, flows, 1, counts)

            busy = n_adds or stale or gplan.first or gplan.last
            counts = Counter(add=n_adds, delete_round=len(stale))
            counts.update(gplan.counts)
            try:
                self._commit(messages() if busy else [], counts, prepare)
            except BaseException:
                self.round = previous   # the cache still holds the previous round's flows
                raise
            self.installed = wanted
            self.groups, self.group_owner, self.unowned_groups = wanted_groups, group_owner, gplan.kept
            self._group_sig.keep(group_owner)
            self.owner_of, self._counts = ready["owner_of"], ready["counts"]
            self._sent, self._ident, self._seen = sent, {}, {}
            self.synced = True
            self._publish()
        if self.ovsdb:
            try:
                from vpcnet.ovsdb import vswitch
                vswitch.write_round(self.ovsdb, self.bridge, self.round)
            except Exception as exc:
                LOG.warning("%s: cannot store the restart round in %s: %s", self.node, self.ovsdb, exc)
        self.metrics.reconcile_seconds.labels(node=self.node, kind="resync").observe(time.monotonic() - t0)
        LOG.info("%s: round %d installed (%d flows, %d groups; old rounds %s, %d stale groups removed) in %.3fs",
                 self.node, self.round, n_adds, len(group_owner), stale or "none", len(gplan.deleted),
                 time.monotonic() - t0)
        if gplan.kept:
            LOG.info("%s: groups %s are no owner's but flows refer to them: left alone", self.node,
                     sorted(gplan.kept))

    # --- incremental ---------------------------------------------------------------------------
    def _plan(self, changes: dict[str, tuple[dict, dict]]) -> tuple[list, Counter, dict, dict[Flow, bytes]]:
        """Messages for ``changes`` (owner -> (flows by key, groups by id), as ``groups_.split``
        gives): group adds/modifies, flow deletes, flow adds, group deletes. Also the flow-mod
        counts, what to adopt once committed (``_adopt``) and the bytes sent per flow."""
        new = {owner: flows for owner, (flows, _) in changes.items()}
        new_groups = {owner: groups for owner, (_, groups) in changes.items()}
        final_keys = dict(self.owner_of)
        for owner in changes:
            for key in self.installed.get(owner, {}):
                if final_keys.get(key) == owner:
                    del final_keys[key]
        for owner, flows in new.items():
            for key in flows:
                final_keys[key] = owner
        deletes, adds, sent = [], [], {}
        for owner in changes:
            old = self.installed.get(owner, {})
            for key, flow in old.items():
                if key not in final_keys:
                    deletes.append(ofencode.encode_flow_mod(flow, "delete_strict", self._cookie(flow)))
            for key, flow in new[owner].items():
                if old.get(key) != flow:
                    sent[flow] = msg = self._add(flow)
                    adds.append(msg)
        counts = Counter(delete=len(deletes), add=len(adds))
        if not any(new_groups.values()) and not any(owner in self.groups for owner in changes):
            return deletes + adds, counts, (new, {}, None), sent

        def remaining():   # the flows installed once this change is in
            yield from new.values()
            yield from (flows for owner, flows in self.installed.items() if owner not in new)

        gplan = groups_.plan_apply(self.node, self.groups, self.group_owner, self.unowned_groups, new_groups, remaining)
        counts.update(gplan.counts)
        return gplan.first + deletes + adds + gplan.last, counts, (new, new_groups, gplan), sent

    def _forget_flow(self, flow: Flow) -> None:
        self._sent.pop(flow, None)
        self._ident.pop(flow, None)

    def _adopt(self, adopt: tuple, sent: dict[Flow, bytes]) -> None:
        new, new_groups, gplan = adopt
        if gplan is not None:
            self._adopt_groups(new_groups, gplan)
        for owner, flows in new.items():
            old = self.installed.get(owner, {})
            self._count(owner, old, -1)
            self._count(owner, flows, 1)
            for key, flow in old.items():
                if self.owner_of.get(key) == owner:
                    del self.owner_of[key]
                if flows.get(key) != flow:
                    self._forget_flow(flow)
            if flows or self.groups.get(owner):
                self.installed[owner] = flows
            else:
                self.installed.pop(owner, None)
            for key in flows:
                self.owner_of[key] = owner
        for flow, msg in sent.items():
            self._ident.pop(flow, None)
            self._sent[flow] = msg

    def _adopt_groups(self, new_groups: dict[str, dict[int, Group]], gplan: groups_.Plan) -> None:
        for owner, groups in new_groups.items():
            for gid in self.groups.get(owner, ()):
                if self.group_owner.get(gid) == owner:
                    del self.group_owner[gid]
            if groups:
                self.groups[owner] = groups
            else:
                self.groups.pop(owner, None)
        for owner, groups in new_groups.items():
            for gid in groups:
                self.group_owner[gid] = owner
        unowned = self.unowned_groups
        unowned.difference_update(self.group_owner)
        unowned.difference_update(gplan.deleted)
        unowned.update(gplan.kept)
        self._group_sig.keep(self.group_owner)

    def apply(self, changes: OwnerFlows) -> list[str]:
        """Bring ``changes`` (owner -> its complete set of flows and groups; empty = remove the
        owner) onto the switch. Returns the owners that failed (logged with the owner and
        counted): refused by the switch, or not expressible at all (``ofwire.UnsupportedFlow``,
        ``reconcile_groups.GroupConflict``); the other owners go in all the same."""
        if not changes:
            return []
        t0 = time.monotonic()
        failed: list[str] = []
        with self.lock:
            changes = {o: groups_.split(f) for o, f in changes.items()}
            changes = {o: fg for o, fg in changes.items() if self._differs_split(o, fg)}
            if not changes:
                return []
            try:
                messages, counts, new, sent = self._plan(changes)
                self._commit(messages, counts)
                self._adopt(new, sent)
            except UNINSTALLABLE as exc:
                if self.link.closed or (len(changes) == 1 and isinstance(exc, LinkError)):
                    failed = list(changes)
                    LOG.error("%s: flows of %s not installed: %s", self.node, ", ".join(sorted(changes)), exc)
                else:
                    for owner, flows in sorted(changes.items()):  # find the bad owner(s)
                        try:   # alone, an owner may take a group id another one has not let go yet
                            messages, counts, new, sent = self._plan({owner: flows})
                            self._commit(messages, counts)
                            self._adopt(new, sent)
                        except UNINSTALLABLE as one:
                            failed.append(owner)
                            LOG.error("%s: flows of %s not installed: %s", self.node, owner, one)
                            if not isinstance(one, LinkError):   # the switch's refusals are counted as such
                                self.metrics.errors.labels(where="plan").inc()
            self._publish()
        self.metrics.reconcile_seconds.labels(node=self.node, kind="incremental").observe(time.monotonic() - t0)
        return failed

    def _differs(self, owner: str, items: frozenset) -> bool:
        return self._differs_split(owner, groups_.split(items))

    def _differs_split(self, owner: str, flows_groups: tuple[dict, dict]) -> bool:
        flows, groups = flows_groups
        return self.installed.get(owner, {}) != flows or self.groups.get(owner, {}) != groups

    # --- audit ---------------------------------------------------------------------------------
    def _identity(self, flow: Flow) -> tuple:
        """(key, signature) the switch should report for an installed flow (call with the lock)."""
        ident = self._ident.get(flow)
        if ident is None:
            msg = self._sent.pop(flow, None)
            ident = ofcompare.flow_mod_identity(msg if msg is not None else self._add(flow))
            self._ident[flow] = ident
        return ident

    def _identify_sent(self) -> None:
        """Turn the bytes sent since the last audit into identities, mostly without the lock."""
        with self.lock:
            todo = list(self._sent.items())
        if not todo:
            return
        done = [(flow, msg, ofcompare.flow_mod_identity(msg)) for flow, msg in todo]
        with self.lock:
            for flow, msg, ident in done:
                if self._sent.get(flow) is msg:
                    del self._sent[flow]
                    self._ident[flow] = ident

    def _read(self, entries: list) -> list:
        """[(key, signature, memo key, entry)] of a raw dump. Identities come from the last
        audit's memo when the entry's bytes are the same."""
        memo, fresh = self._seen, {}
        out = []
        for s, raw in entries:
            if s.table_id in _LEARNED_TABLE_IDS and not s.cookie >> cookies.ROUND_SHIFT:
                continue   # learned by the switch (round 0): not ours to audit
            if raw is None:
                key, sig, mkey = ofcompare.stats_key(s), ofcompare.stats_signature(s), None
            else:
                mkey = _entry_memo_key(raw)
                ident = memo.get(mkey)
                if ident is None:
                    ident = ofcompare.entry_identity(raw)
                fresh[mkey] = ident
                key, sig = ident
            out.append((key, sig, mkey, s))
        self._seen = fresh
        return out

    def _accumulate_tables(self, seen: list) -> dict[str, tuple[int, int]]:
        """Add what every dumped flow counted since the last audit to its table's totals (a new
        flow, or one whose counts went down, i.e. re-added: all it has); table -> (packets, bytes).
        Summing the dump itself would go down whenever flows are deleted, which Prometheus reads
        as a counter reset."""
        names = ofcompare.table_names()
        last, now, totals = self._flow_counts, {}, self._table_totals
        for key, _, _, s in seen:
            packets, octets = s.packet_count, s.byte_count
            prev = last.get(key)
            if prev is not None and packets >= prev[0] and octets >= prev[1]:
                dp, db = packets - prev[0], octets - prev[1]
            else:
                dp, db = packets, octets
            t = totals[names.get(s.table_id, str(s.table_id))]
            t[0] += dp
            t[1] += db
            now[key] = (packets, octets)
        self._flow_counts = now
        return {k: (v[0], v[1]) for k, v in totals.items()}

    def read_back(self) -> tuple[list[Flow], list]:
        """Read back from the switch: (the installed flows found there exactly as desired, as
        installed, round cookie included; the dumped entries that are not one of them). What
        ``FlowEngine.installed`` computes with ``desired_signature``/``stats_signature`` per
        flow, from the cached signatures and the raw dump instead. Changes nothing."""
        entries = self.link.dump_flows(raw=True, slices=dump_slices(len(self.owner_of)))
        seen = self._read(entries)
        self._identify_sent()
        with self.lock:
            wanted = {self._identity(f)[1]: f for flows in self.installed.values() for f in flows.values()}
            shift = self.round << cookies.ROUND_SHIFT
        ours, other = [], []
        for _, sig, _, s in seen:
            flow = wanted.get(sig)
            if flow is None:
                other.append(s)
            else:
                c = (flow.cookie & _NOT_ROUND) | shift
                ours.append(flow if c == flow.cookie else dataclasses.replace(flow, cookie=c))
        return ours, other

    def audit(self) -> Counter:
        """Repair whatever on the switch differs from the cache. Returns drift counts by kind."""
        t0 = time.monotonic()
        drift: Counter = Counter()
        generation = self._generation
        slices = dump_slices(len(self.owner_of))
        on_switch = {e.group_id: e for e in self.link.dump_groups()}
        seen = self._read(self.link.dump_flows(raw=True, slices=slices))
        index = {key: (sig, mkey) for key, sig, mkey, _ in seen}
        self._identify_sent()
        with self.lock:
            if self._generation != generation:   # a bundle went in meanwhile: look again, now locked
                on_switch = {e.group_id: e for e in self.link.dump_groups()}
                seen = self._read(self.link.dump_flows(raw=True, slices=slices))
                index = {key: (sig, mkey) for key, sig, mkey, _ in seen}
            totals = self._accumulate_tables(seen)
            with self.metrics.snapshots.lock:
                self.metrics.snapshots.tables[self.node] = totals
            accounting = self.accounting
            self.counted = {key: (accounting[key], s.packet_count, s.byte_count)
                            for key, _, _, s in seen if key in accounting} if accounting else {}
            adds = []
            memo = self._seen
            taken: list = []          # (key, entry) each installed flow found, in order
            taken_index: dict = {}    # the same as a dict, filled only when a lookup misses
            for flows in self.installed.values():
                for flow in flows.values():
                    ident = self._identity(flow)
                    key = ident[0]
                    have = index.pop(key, None)
                    if have is not None:
                        taken.append((key, have))
                    else:   # missing, or its key was taken by another installed flow already
                        for k, v in taken[len(taken_index):]:
                            taken_index[k] = v
                        have = taken_index.get(key)
                    if have is None:
                        drift["missing"] += 1
                        adds.append(self._add(flow))
                    elif have[0] is not ident[1] and have[0] != ident[1]:
                        drift["altered"] += 1
                        adds.append(self._add(flow))
                    elif have[1] is not None:
                        memo[have[1]] = ident   # share the cache's tuples: next compare is by identity
            deletes = []
            if index:   # keys no installed flow has: every entry with one of them is extra
                for key, _, _, s in seen:
                    if key in index:
                        drift["extra"] += 1
                        deletes.append(self.wire.delete_stats_strict(s))
            deletes.reverse()
            gplan, n_groups = groups_.plan_audit(on_switch, self.groups, self.installed.values(), self._group_sig)
            if n_groups:
                drift["group"] += n_groups
            messages = gplan.first + deletes + adds + gplan.last   # groups before the flows naming them
            if messages:
                self._commit(messages, Counter(repair=len(messages)))
                for kind, n in drift.items():
                    self.metrics.drift.labels(node=self.node, kind=kind).inc(n)
                LOG.warning("%s: audit repaired drift: %s", self.node, dict(drift))
            self.unowned_groups = gplan.kept
        self.metrics.reconcile_seconds.labels(node=self.node, kind="audit").observe(time.monotonic() - t0)
        return drift
