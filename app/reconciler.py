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

A lock serialises these per bridge. Everything here blocks on the switch, so it runs on the
flow engine's threads, never on os-ken's handler thread.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, defaultdict

from vpcnet.app import ofwire
from vpcnet.app.metrics import Metrics
from vpcnet.app.oflink import DatapathLink, LinkError
from vpcnet.flows import cookies
from vpcnet.flows.model import Flow

LOG = logging.getLogger(__name__)

OwnerFlows = dict[str, frozenset[Flow]]


def next_round(*seen: int | None) -> int:
    """The round after every round seen (1..65535; 0 is never used, so round 0 = not ours)."""
    rounds = [r for r in seen if r]
    return (max(rounds) % 0xFFFF) + 1 if rounds else 1


class Reconciler:
    def __init__(self, node: str, link: DatapathLink, metrics: Metrics, ovsdb: str | None = None,
                 bridge: str = "br-int"):
        self.node, self.link, self.metrics = node, link, metrics
        self.ovsdb, self.bridge = ovsdb, bridge
        self.wire = ofwire.Wire(link.dp)
        self.round = 0
        self.installed: dict[str, dict[tuple, Flow]] = {}   # owner -> key -> flow (with round cookie)
        self.owner_of: dict[tuple, str] = {}                # key -> owner
        self.lock = threading.Lock()
        self.synced = False
        self.cluster = None          # the compiler input this bridge was last brought to (engine's)
        self.failed: set[str] = set()  # owners whose last bundle the switch refused

    # --- helpers ---------------------------------------------------------------------------
    def _rounded(self, flows: frozenset[Flow]) -> dict[tuple, Flow]:
        return {f.key: dataclasses.replace(f, cookie=cookies.with_round(f.cookie, self.round)) for f in flows}

    def _commit(self, messages: list, counts: Counter) -> None:
        if not messages:
            return
        try:
            self.link.bundle(messages)
        except LinkError:
            self.metrics.bundle_failures.labels(node=self.node).inc()
            raise
        self.metrics.bundles.labels(node=self.node).inc()
        for op, n in counts.items():
            self.metrics.flow_mods.labels(node=self.node, op=op).inc(n)

    def _publish(self) -> None:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for owner, flows in self.installed.items():
            feature = cookies.feature_of_owner(owner).name.lower()
            for f in flows.values():
                counts[(f.table, feature)] += 1
        with self.metrics.snapshots.lock:
            self.metrics.snapshots.flows[self.node] = dict(counts)

    def flows(self) -> list[Flow]:
        with self.lock:
            return [f for flows in self.installed.values() for f in flows.values()]

    # --- full resync on connect --------------------------------------------------------------
    def resync(self, desired: OwnerFlows) -> None:
        t0 = time.monotonic()
        with self.lock:
            stats = self.link.dump_flows()
            present = {cookies.round_of(s.cookie) for s in stats}
            stored = None
            if self.ovsdb:
                try:
                    from vpcnet.ovsdb import vswitch
                    stored = vswitch.read_round(self.ovsdb, self.bridge)
                except Exception as exc:  # the OVSDB is optional for correctness: cookies tell too
                    LOG.warning("%s: cannot read the restart round from %s: %s", self.node, self.ovsdb, exc)
            self.round = next_round(stored, *present)
            wanted = {owner: self._rounded(flows) for owner, flows in desired.items() if flows}
            messages = [self.wire.flow_mod(f, "add") for flows in wanted.values() for f in flows.values()]
            stale = sorted(present - {self.round})
            messages += [self.wire.delete_by_cookie(r << cookies.ROUND_SHIFT, cookies.mask_round()) for r in stale]
            self._commit(messages, Counter(add=len(messages) - len(stale), delete_round=len(stale)))
            self.installed = wanted
            self.owner_of = {key: owner for owner, flows in wanted.items() for key in flows}
            self.synced = True
            self._publish()
        if self.ovsdb:
            try:
                from vpcnet.ovsdb import vswitch
                vswitch.write_round(self.ovsdb, self.bridge, self.round)
            except Exception as exc:
                LOG.warning("%s: cannot store the restart round in %s: %s", self.node, self.ovsdb, exc)
        self.metrics.reconcile_seconds.labels(node=self.node, kind="resync").observe(time.monotonic() - t0)
        LOG.info("%s: round %d installed (%d flows, old rounds %s removed) in %.3fs", self.node, self.round,
                 sum(len(f) for f in self.installed.values()), stale or "none", time.monotonic() - t0)

    # --- incremental ---------------------------------------------------------------------------
    def _plan(self, changes: OwnerFlows) -> tuple[list, Counter, dict[str, dict[tuple, Flow]]]:
        new = {owner: self._rounded(flows) for owner, flows in changes.items()}
        final_keys = dict(self.owner_of)
        for owner in changes:
            for key in self.installed.get(owner, {}):
                if final_keys.get(key) == owner:
                    del final_keys[key]
        for owner, flows in new.items():
            for key in flows:
                final_keys[key] = owner
        deletes, adds = [], []
        for owner in changes:
            old = self.installed.get(owner, {})
            for key, flow in old.items():
                if key not in final_keys:
                    deletes.append(self.wire.flow_mod(flow, "delete_strict"))
            for key, flow in new[owner].items():
                if old.get(key) != flow:
                    adds.append(self.wire.flow_mod(flow, "add"))
        return deletes + adds, Counter(delete=len(deletes), add=len(adds)), new

    def _adopt(self, new: dict[str, dict[tuple, Flow]]) -> None:
        for owner, flows in new.items():
            for key in self.installed.get(owner, {}):
                if self.owner_of.get(key) == owner:
                    del self.owner_of[key]
            if flows:
                self.installed[owner] = flows
            else:
                self.installed.pop(owner, None)
            for key in flows:
                self.owner_of[key] = owner

    def apply(self, changes: OwnerFlows) -> list[str]:
        """Bring ``changes`` (owner -> its complete flow set; empty = remove the owner) onto the
        switch. Returns the owners that failed (logged and counted)."""
        if not changes:
            return []
        t0 = time.monotonic()
        failed: list[str] = []
        with self.lock:
            changes = {o: f for o, f in changes.items() if self._differs(o, f)}
            if not changes:
                return []
            messages, counts, new = self._plan(changes)
            try:
                self._commit(messages, counts)
                self._adopt(new)
            except LinkError as exc:
                if len(changes) == 1 or self.link.closed:
                    failed = list(changes)
                    LOG.error("%s: flows of %s not installed: %s", self.node, ", ".join(sorted(changes)), exc)
                else:
                    for owner, flows in sorted(changes.items()):  # find the bad owner(s)
                        messages, counts, new = self._plan({owner: flows})
                        try:
                            self._commit(messages, counts)
                            self._adopt(new)
                        except LinkError as one:
                            failed.append(owner)
                            LOG.error("%s: flows of %s not installed: %s", self.node, owner, one)
            self._publish()
        self.metrics.reconcile_seconds.labels(node=self.node, kind="incremental").observe(time.monotonic() - t0)
        return failed

    def _differs(self, owner: str, flows: frozenset[Flow]) -> bool:
        return self.installed.get(owner, {}) != self._rounded(flows)

    # --- audit ---------------------------------------------------------------------------------
    def audit(self) -> Counter:
        """Repair whatever on the switch differs from the cache. Returns drift counts by kind."""
        t0 = time.monotonic()
        drift: Counter = Counter()
        with self.lock:
            stats = self.link.dump_flows()
            installed = {}
            tables: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            names = ofwire.table_names()
            for s in stats:
                installed[ofwire.stats_key(s)] = ofwire.stats_signature(s)
                t = tables[names.get(s.table_id, str(s.table_id))]
                t[0] += s.packet_count
                t[1] += s.byte_count
            with self.metrics.snapshots.lock:
                self.metrics.snapshots.tables[self.node] = {k: (v[0], v[1]) for k, v in tables.items()}
            messages = []
            wanted_keys = set()
            for flows in self.installed.values():
                for flow in flows.values():
                    key = ofwire.desired_key(flow)
                    wanted_keys.add(key)
                    have = installed.get(key)
                    if have is None:
                        drift["missing"] += 1
                        messages.append(self.wire.flow_mod(flow, "add"))
                    elif have != ofwire.desired_signature(flow):
                        drift["altered"] += 1
                        messages.append(self.wire.flow_mod(flow, "add"))
            for s in stats:
                if ofwire.stats_key(s) not in wanted_keys:
                    drift["extra"] += 1
                    messages.insert(0, self.wire.delete_stats_strict(s))
            if messages:
                self._commit(messages, Counter(repair=len(messages)))
                for kind, n in drift.items():
                    self.metrics.drift.labels(node=self.node, kind=kind).inc(n)
                LOG.warning("%s: audit repaired drift: %s", self.node, dict(drift))
        self.metrics.reconcile_seconds.labels(node=self.node, kind="audit").observe(time.monotonic() - t0)
        return drift
