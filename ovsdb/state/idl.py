"""IDL for the vpcnet state database: monitor only what this process needs.

Measured here: the Python IDL needs 14-48 s to sync 150,000 rows. So the big tables (Pod, Ip, Mac,
IpEvent) start with the monitor condition `false` and are loaded *by slice* when a caller needs
them: Pod rows per namespace, Ip/Mac rows per subnet. The first allocation after a restart waits
only for the one subnet it allocates from.

`AddressIndex` mirrors the loaded Ip/Mac rows keyed by (vpc, address). It is updated from
`notify()`, i.e. inside the IDL's own update processing in the connection thread, so it is always
exactly as fresh as the IDL rows the allocation command runs against.
"""
from __future__ import annotations

import collections
import threading
import time

import netaddr
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils

# table -> column the slices are keyed by. Everything else is monitored in full.
SLICED_TABLES = {"Pod": "namespace", "Ip": "subnet", "Mac": "subnet", "IpEvent": "ip"}


def ip_key(text: str) -> tuple[int, int]:
    addr = netaddr.IPAddress(text)
    return addr.version, int(addr)


class AddressIndex:
    """(vpc, (version, int)) -> Ip row; (vpc, mac) -> Mac row; owner -> rows. Connection thread only."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.ips: dict[str, dict[tuple[int, int], object]] = collections.defaultdict(dict)
        self.macs: dict[str, dict[str, object]] = collections.defaultdict(dict)
        self.ips_by_owner: dict[str, set] = collections.defaultdict(set)
        self.macs_by_owner: dict[str, set] = collections.defaultdict(set)

    def add(self, table: str, row) -> None:
        if table == "Ip":
            self.ips[row.vpc][ip_key(row.ip)] = row
            self.ips_by_owner[row.owner].add(row)
        else:
            self.macs[row.vpc][row.mac] = row
            self.macs_by_owner[row.owner].add(row)

    def remove(self, table: str, row) -> None:
        if table == "Ip":
            by_key = self.ips.get(row.vpc, {})
            key = ip_key(row.ip)
            if by_key.get(key) is row or (key in by_key and by_key[key].uuid == row.uuid):
                del by_key[key]
            self.ips_by_owner.get(row.owner, set()).discard(row)
        else:
            by_mac = self.macs.get(row.vpc, {})
            if row.mac in by_mac and by_mac[row.mac].uuid == row.uuid:
                del by_mac[row.mac]
            self.macs_by_owner.get(row.owner, set()).discard(row)


class StateIdl(ovs_connection.OvsdbIdl):
    """OvsdbIdl with sliced (conditional) monitoring and an address index."""

    def __init__(self, remote, schema_helper, **kwargs):
        super().__init__(remote, schema_helper, **kwargs)
        self.slices: dict[str, set[str]] = {t: set() for t in SLICED_TABLES if t in self.tables}
        self.everything: set[str] = set()  # sliced tables loaded in full
        self.addresses = AddressIndex()
        self.addresses_freed = 0  # bumped whenever an address row disappears or is quarantined
        self.cond_acked = threading.Condition()
        self.listeners: list = []   # callables (table, event) run in the connection thread: keep them O(1)
        for table in self.slices:
            self.cond_change(table, [False])

    # -- slices -----------------------------------------------------------
    def request_slices(self, table: str, keys) -> int | None:
        """Add slices to a table's monitor condition (connection thread). Returns the seqno to wait
        for, or None when everything asked for is already monitored."""
        if table in self.everything:
            return None
        have = self.slices[table]
        new = set(keys) - have
        if not new:
            return None
        have |= new
        column = SLICED_TABLES[table]
        cond = [[column, "==", k] for k in sorted(have)]
        return self.cond_change(table, cond)

    def request_everything(self, table: str) -> int | None:
        if table in self.everything:
            return None
        self.everything.add(table)
        return self.cond_change(table, [True])

    def run(self):
        before = self.cond_seqno
        changed = super().run()
        if self.cond_seqno != before:
            with self.cond_acked:
                self.cond_acked.notify_all()
        return changed

    # -- index upkeep -----------------------------------------------------
    def notify(self, event, row, updates=None):
        table = row._table.name
        if table in ("Ip", "Mac"):
            if event == "create":
                self.addresses.add(table, row)
            elif event == "delete":
                self.addresses.remove(table, row)
                self.addresses_freed += 1
            elif event == "update":
                old_owner = getattr(updates, "owner", None) if updates is not None else None
                # Rows are updated in place (state/owner/changed_ms); re-key the owner map.
                if old_owner is not None and old_owner != row.owner:
                    if table == "Ip":
                        self.addresses.ips_by_owner[old_owner].discard(row)
                    else:
                        self.addresses.macs_by_owner[old_owner].discard(row)
                self.addresses.add(table, row)
                self.addresses_freed += 1
        for listener in self.listeners:
            listener(table, event)
        super().notify(event, row, updates)

    def _Idl__clear(self):  # name-mangled override of ovs.db.idl.Idl.__clear (reconnect resync)
        self.addresses.clear()
        self.addresses_freed += 1
        super()._Idl__clear()


def slices_acked(idl: StateIdl, table: str, keys) -> bool:
    """True once the server has acknowledged a monitor condition covering `keys` (None = all).

    (We do not trust `cond_change()`'s returned seqno: python-ovs 3.1 over-counts it.)"""
    acked = idl.tables[table].condition_state.acked
    if acked == [True]:
        return True
    if keys is None:
        return False
    have = {clause[2] for clause in acked if isinstance(clause, list)}
    return set(keys) <= have


def wait_for_slices(idl: StateIdl, table: str, keys, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with idl.cond_acked:
        while not slices_acked(idl, table, keys):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"state database did not send {table} rows for {sorted(keys or ['*'])} "
                                   f"within {timeout}s")
            idl.cond_acked.wait(min(left, 0.05))


def schema_helper(remote: str):
    helper = idlutils.get_schema_helper(remote, "vpcnet")
    helper.register_all()
    return helper
