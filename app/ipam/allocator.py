"""Transactional IPAM: one OVSDB transaction per allocation, guarded by the unique indexes
(vpc, ip) on Ip and (vpc, mac) on Mac. Two allocators racing can never both commit an address:
the loser's transaction fails with "constraint violation", its IDL has by then received the
winner's row, and it simply tries again.

Addresses of a deleted pod go into quarantine (state=quarantined) and are reused by another
pod only after `quarantine_ms`; the same pod (same namespace/name, e.g. a StatefulSet replica)
gets its own quarantined address back at once.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import time

import netaddr
from ovsdbapp.backend.ovs_idl import command as cmd

from vpcnet.app.ipam.plan import Conflict, Exhausted, IpamError, SubnetPlan, derived_mac, ordinal, random_mac

LOG = logging.getLogger(__name__)
MAX_ATTEMPTS = 25
CURSOR_TTL = 5.0  # seconds before a subnet's scan cursor is rebuilt (quarantines expire by time)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass
class AllocationRequest:
    owner: str                      # "namespace/name"
    vpc: str
    subnets: list[SubnetPlan]       # candidates, in preference order
    fixed_ips: list[str] = dataclasses.field(default_factory=list)
    fixed_mac: str | None = None
    pool: list[str] = dataclasses.field(default_factory=list)
    node: str = ""

    @property
    def pod_name(self) -> str:
        return self.owner.rsplit("/", 1)[-1]


@dataclasses.dataclass
class Lease:
    vpc: str
    subnet: str
    ips: list[str]
    mac: str
    gateways: list[str]
    prefixes: list[int]
    vlan: int | None = None

    def as_status(self) -> dict:
        return {"ip": ",".join(self.ips), "ips": list(self.ips), "mac": self.mac, "vpc": self.vpc,
                "subnet": self.subnet, "vlan": self.vlan, "gateway": ",".join(self.gateways),
                "cidrs": [f"{ip}/{p}" for ip, p in zip(self.ips, self.prefixes)]}


class _Cursors:
    """Per-process scan cursors: the lowest address of each CIDR not known to be taken."""

    def __init__(self):
        self.by_subnet: dict[str, tuple[float, int, dict]] = {}

    def get(self, subnet: str, freed: int) -> dict:
        stamp, seen_freed, cursors = self.by_subnet.get(subnet, (0.0, -1, {}))
        if seen_freed != freed or time.monotonic() - stamp > CURSOR_TTL:
            cursors = {}
            self.by_subnet[subnet] = (time.monotonic(), freed, cursors)
        return cursors


class AllocateCommand(cmd.BaseCommand):
    def __init__(self, api, request: AllocationRequest, quarantine_ms: int, attempt: int,
                 cursors: _Cursors, rng: random.Random, pending: set | None = None):
        super().__init__(api)
        self.request, self.quarantine_ms, self.attempt = request, quarantine_ms, attempt
        self.cursors, self.rng = cursors, rng
        # Addresses/MACs taken by earlier allocations of the same transaction (not yet in the IDL).
        self.pending = pending if pending is not None else set()

    # -- helpers ----------------------------------------------------------
    def _expired(self, row, now: int) -> bool:
        return row.state == "quarantined" and row.changed_ms + self.quarantine_ms <= now

    def _holder_error(self, what: str, row) -> Conflict:
        if row.state == "quarantined":
            left = max(1, -(-(row.changed_ms + self.quarantine_ms - now_ms()) // 1000))
            return Conflict(f"{what} was released by {row.owner} and is quarantined for another {left}s",
                            "ip_address")
        return Conflict(f"{what} is held by {row.owner}", "ip_address")

    def run_idl(self, txn):
        req = self.request
        idx = self.api.idl.addresses
        now = now_ms()
        vpc_ips = idx.ips.get(req.vpc, {})
        own = [r for r in idx.ips_by_owner.get(req.owner, ()) if r.vpc == req.vpc]
        active = [r for r in own if r.state == "allocated"]
        if active:
            self.result = self._existing_lease(active)
            return
        errors = []
        for plan in req.subnets:
            try:
                picks = self._pick_addresses(plan, vpc_ips, own, now)
            except Exhausted as exc:
                errors.append(str(exc))
                continue
            self._commit_picks(txn, plan, picks, own, now)
            return
        raise Exhausted("; ".join(errors) or "no subnet to allocate from", "subnet")

    def _existing_lease(self, rows) -> Lease:
        plans = {p.name: p for p in self.request.subnets}
        rows = sorted(rows, key=lambda r: netaddr.IPAddress(r.ip).version)
        subnet = rows[0].subnet
        plan = plans.get(subnet)
        ips = [r.ip for r in rows]
        if self.request.fixed_ips and sorted(map(str, map(netaddr.IPAddress, self.request.fixed_ips))) != sorted(ips):
            raise Conflict(f"pod {self.request.owner} already holds {','.join(ips)}; "
                           f"an address cannot change while the pod exists", "ip_address")
        gws, prefixes = [], []
        for ip in ips:
            gw, plen = plan.gateway_for(netaddr.IPAddress(ip)) if plan else ("", 0)
            gws.append(gw)
            prefixes.append(plen)
        mac = rows[0].mac
        return Lease(self.request.vpc, subnet, ips, mac, gws, prefixes, plan.vlan if plan else None)

    def _pick_addresses(self, plan: SubnetPlan, vpc_ips: dict, own: list, now: int):
        """Returns [(IPAddress, existing_row_or_None)] — one per address family of the subnet."""
        req = self.request
        fixed = [netaddr.IPAddress(i) for i in req.fixed_ips]
        pool = [netaddr.IPAddress(i) for i in req.pool]
        picks = []
        for version in plan.versions:
            want = next((f for f in fixed if f.version == version), None)
            if want is not None:
                reason = plan.why_not_assignable(want)
                if reason:
                    raise Conflict(reason, "ip_address")
                row = vpc_ips.get((version, int(want)))
                if row is not None and row.owner != req.owner and not self._expired(row, now):
                    raise self._holder_error(str(want), row)
                if (req.vpc, version, int(want)) in self.pending:
                    raise Conflict(f"{want} is requested twice in this change", "ip_address")
                picks.append((want, row))
                continue
            mine = next((r for r in own if r.state == "quarantined" and r.subnet == plan.name
                         and netaddr.IPAddress(r.ip).version == version), None)
            family_pool = [p for p in pool if p.version == version]
            if mine is not None and (not family_pool or netaddr.IPAddress(mine.ip) in family_pool):
                picks.append((netaddr.IPAddress(mine.ip), mine))
                continue
            if family_pool:
                picks.append(self._pick_from_pool(plan, family_pool, vpc_ips, now))
                continue
            picks.append(self._pick_dynamic(plan, version, vpc_ips, now))
        return picks

    def _free(self, row, now) -> bool:
        return row is None or row.owner == self.request.owner or self._expired(row, now)

    def _pick_from_pool(self, plan, pool, vpc_ips, now):
        order = list(pool)
        n = ordinal(self.request.pod_name)
        if n is not None and n < len(order):
            order.insert(0, order.pop(n))
        for ip in order:
            if plan.why_not_assignable(ip):
                raise Conflict(plan.why_not_assignable(ip), "ip_pool")
            row = vpc_ips.get((ip.version, int(ip)))
            if self._free(row, now) and (self.request.vpc, ip.version, int(ip)) not in self.pending:
                return ip, row
        raise Exhausted(f"every address of ip_pool {','.join(map(str, pool))} is in use", "ip_pool")

    def _pick_dynamic(self, plan, version, vpc_ips, now):
        def used(v, value):
            if (self.request.vpc, v, value) in self.pending:
                return True
            row = vpc_ips.get((v, value))
            return row is not None and not self._expired(row, now)

        start = self.cursors.get(plan.name, self.api.idl.addresses_freed)
        # First attempt: the lowest free address (predictable). After losing a race, spread out.
        limit = 1 if self.attempt == 0 else 32
        free = list(plan.candidates(version, used, start, limit))
        if not free:
            raise Exhausted(f"{plan.describe()} has no free IPv{version} address", "subnet")
        ip = free[0] if self.attempt == 0 else self.rng.choice(free)
        return ip, vpc_ips.get((ip.version, int(ip)))

    def _pick_mac(self, first_ip, own_macs, vpc_macs, now):
        req = self.request
        if req.fixed_mac:
            if (req.vpc, "mac", req.fixed_mac) in self.pending:
                raise Conflict(f"mac {req.fixed_mac} is requested twice in this change", "mac_address")
            row = vpc_macs.get(req.fixed_mac)
            if row is not None and row.owner != req.owner and not self._expired(row, now):
                if row.state == "quarantined":
                    raise Conflict(f"mac {req.fixed_mac} was released by {row.owner} and is still quarantined",
                                   "mac_address")
                raise Conflict(f"mac {req.fixed_mac} is held by {row.owner}", "mac_address")
            return req.fixed_mac, row
        mine = next(iter(own_macs), None)
        if mine is not None:
            return mine.mac, mine
        for attempt in range(16):
            mac = derived_mac(first_ip) if (self.attempt == 0 and attempt == 0) else random_mac(self.rng)
            row = vpc_macs.get(mac)
            if (req.vpc, "mac", mac) not in self.pending and (row is None or self._expired(row, now)):
                return mac, row
        raise Conflict("could not find a free MAC address", "mac_address")

    def _commit_picks(self, txn, plan: SubnetPlan, picks, own, now):
        req = self.request
        tables = self.api.tables
        idx = self.api.idl.addresses
        vpc_macs = idx.macs.get(req.vpc, {})
        own_macs = [r for r in idx.macs_by_owner.get(req.owner, ()) if r.vpc == req.vpc]
        mac, mac_row = self._pick_mac(picks[0][0], own_macs, vpc_macs, now)
        self.pending.add((req.vpc, "mac", mac))
        self.pending.update((req.vpc, ip.version, int(ip)) for ip, _ in picks)
        for stale in own_macs:
            if stale is not mac_row:
                stale.delete()
        if mac_row is not None and mac_row.owner != req.owner:
            mac_row.delete()
            mac_row = None
        if mac_row is None:
            mac_row = txn.insert(tables["Mac"])
            mac_row.vpc, mac_row.mac = req.vpc, mac
        mac_row.subnet, mac_row.owner, mac_row.state, mac_row.changed_ms = plan.name, req.owner, "allocated", now
        chosen = {id(row) for _, row in picks if row is not None}
        for row in own:  # own quarantined addresses not taken back are released for good
            if id(row) not in chosen:
                row.delete()
        ips, gws, prefixes = [], [], []
        for ip, row in picks:
            if row is not None and row.owner != req.owner:
                row.delete()  # an expired quarantine of another pod
                row = None
            if row is None:
                row = txn.insert(tables["Ip"])
                row.vpc, row.ip = req.vpc, str(ip)
            row.subnet, row.mac, row.owner, row.state, row.changed_ms = plan.name, mac, req.owner, "allocated", now
            row.pool = ",".join(req.pool)
            event = txn.insert(tables["IpEvent"])
            event.vpc, event.ip, event.mac, event.owner = req.vpc, str(ip), mac, req.owner
            event.subnet, event.node, event.event, event.at_ms = plan.name, req.node, "allocated", now
            gw, plen = plan.gateway_for(ip)
            ips.append(str(ip))
            gws.append(gw)
            prefixes.append(plen)
        self.result = Lease(req.vpc, plan.name, ips, mac, gws, prefixes, plan.vlan)


class ReleaseCommand(cmd.BaseCommand):
    """Quarantine (or, with quarantine 0, delete) every address and MAC held by `owner` in `vpc`."""

    def __init__(self, api, vpc: str, owner: str, quarantine_ms: int, node: str = ""):
        super().__init__(api)
        self.vpc, self.owner, self.quarantine_ms, self.node = vpc, owner, quarantine_ms, node

    def run_idl(self, txn):
        idx = self.api.idl.addresses
        now = now_ms()
        released = []
        for row in list(idx.ips_by_owner.get(self.owner, ())):
            if row.vpc != self.vpc or row.state != "allocated":
                continue
            event = txn.insert(self.api.tables["IpEvent"])
            event.vpc, event.ip, event.mac, event.owner = row.vpc, row.ip, row.mac, row.owner
            event.subnet, event.node, event.event, event.at_ms = row.subnet, self.node, "released", now
            released.append(row.ip)
            if self.quarantine_ms <= 0:
                row.delete()
            else:
                row.state, row.changed_ms = "quarantined", now
        for row in list(idx.macs_by_owner.get(self.owner, ())):
            if row.vpc != self.vpc or row.state != "allocated":
                continue
            if self.quarantine_ms <= 0:
                row.delete()
            else:
                row.state, row.changed_ms = "quarantined", now
        self.result = released


class ReapCommand(cmd.BaseCommand):
    """Delete quarantined rows whose quarantine has expired (in the loaded slices)."""

    def __init__(self, api, quarantine_ms: int):
        super().__init__(api)
        self.quarantine_ms = quarantine_ms

    def run_idl(self, txn):
        now = now_ms()
        count = 0
        for table in ("Ip", "Mac"):
            for row in list(self.api.tables[table].rows.values()):
                if row.state == "quarantined" and row.changed_ms + self.quarantine_ms <= now:
                    row.delete()
                    count += 1
        self.result = count


def is_constraint_violation(exc: Exception) -> bool:
    return isinstance(exc, RuntimeError) and "constraint violation" in str(exc)


class Allocator:
    """Allocates and releases addresses through the state database. Thread-safe."""

    def __init__(self, api, quarantine_s: float = 60.0, seed: int | None = None):
        self.api = api
        self.quarantine_ms = int(quarantine_s * 1000)
        self.cursors = _Cursors()
        self.rng = random.Random(seed)
        self.conflicts = 0  # lost races, for metrics

    def load(self, subnets) -> None:
        names = [s if isinstance(s, str) else s.name for s in subnets]
        self.api.ensure_loaded("Ip", names)
        self.api.ensure_loaded("Mac", names)

    def allocate(self, request: AllocationRequest, extra=None) -> Lease:
        """Allocate for `request` in one transaction. `extra(alloc_cmd)` may return more commands
        to run in the same transaction (e.g. writing the Pod row with its status)."""
        if not request.subnets:
            raise IpamError(f"no subnet to allocate from for {request.owner}", "subnet")

        def build(new_allocation):
            alloc = new_allocation(request)
            return [alloc, *(extra(alloc) if extra else ())]

        return self.transact(build, request.subnets)[0].result

    def command(self, request: AllocationRequest, attempt: int, pending: set) -> AllocateCommand:
        return AllocateCommand(self.api, request, self.quarantine_ms, attempt, self.cursors, self.rng, pending)

    def transact(self, build, subnets=(), timeout: float | None = None):
        """Run `build(new_allocation) -> [commands]` as one transaction, retrying when the unique
        indexes report a lost race. `new_allocation(request)` makes an AllocateCommand that knows
        about the other allocations of the same transaction. Returns the commands. `timeout`:
        how long to wait for the transaction's outcome (default: the connection's)."""
        self.load(subnets)
        last = None
        for attempt in range(MAX_ATTEMPTS):
            pending: set = set()
            commands = build(lambda request: self.command(request, attempt, pending))
            try:
                with self.api.transaction(check_error=True, log_errors=False, timeout=timeout) as txn:
                    for command in commands:
                        txn.add(command)
                return commands
            except RuntimeError as exc:
                if not is_constraint_violation(exc):
                    raise
                last = exc
                self.conflicts += 1
                LOG.debug("transaction lost a race on a unique index (attempt %d), retrying", attempt)
        raise IpamError(f"gave up after {MAX_ATTEMPTS} attempts: {last}")

    def release(self, vpc: str, owner: str, subnets, extra=(), node: str = "") -> list[str]:
        self.load(subnets)
        with self.api.transaction(check_error=True, log_errors=False) as txn:
            rel = txn.add(ReleaseCommand(self.api, vpc, owner, self.quarantine_ms, node))
            for command in extra:
                txn.add(command)
        return rel.result

    def release_command(self, vpc: str, owner: str, node: str = "") -> ReleaseCommand:
        return ReleaseCommand(self.api, vpc, owner, self.quarantine_ms, node)

    def reap(self) -> int:
        return ReapCommand(self.api, self.quarantine_ms).execute(check_error=True)
