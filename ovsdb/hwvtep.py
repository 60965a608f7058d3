"""The hardware VTEP driver: make a switch's OVSDB ``hardware_vtep`` database match a VtepState.

``VtepDriver(remote)`` keeps one ovsdbapp IDL connection to the switch's database (``tcp:`` /
``ssl:`` / ``unix:``; the switch's ``Manager`` table may point at us instead, which ovsdbapp's
passive mode does not cover). The desired state comes from :func:`vpcnet.fabric.vtep.compile_vtep`.

* ``read()``: what vpcnet owns in the database: Logical_Switches whose name starts with the
  ownership prefix AND whose description carries the ownership tag, the vlan_bindings (any
  Physical_Port of any Physical_Switch) that point at them, and the Ucast/Mcast_Macs_Remote rows
  in them. Nothing else is ever changed, with one exception forced by referential integrity:
  deleting an owned Logical_Switch also deletes the switch's Ucast/Mcast_Macs_Local rows in it.
* ``plan(desired)``: the changes, in the order ``sync`` applies them (``str(change)`` reads like
  ``+ Logical_Switch vpcnet-ls-web: tunnel_key=10100 ...``). Conflicts with objects vpcnet does not
  own (a foreign Logical_Switch of the same name or tunnel_key, a foreign binding on the same
  port and VLAN) raise :class:`VtepError` before anything is written.
* ``sync(desired)``: every change in ONE OVSDB transaction, so the database holds either all of
  them or none (an error in any step or a constraint the server rejects aborts everything). The
  HwVtep API of ovsdbapp does the Logical_Switch and binding steps; this module's commands do
  Physical_Locator / Physical_Locator_Set / Ucast_Macs_Remote / Mcast_Macs_Remote: non-root
  locators are garbage-collected when unreferenced, so they are inserted in the same transaction
  as the rows referencing them, and an existing locator (unique index encapsulation_type, dst_ip,
  tunnel_key) is always reused. Locator sets are immutable: a changed BUM set gets a new one.
* ``local_macs()``: Ucast_Macs_Local rows (MACs the switch learnt on its ports) in vpcnet's
  switches, so the controller learns where bare-metal hosts live.

Errors (:class:`VtepError`) name the VTEP and the row/field. One VtepDriver per database: two
vpcnet leaves must not share a hardware_vtep database (each would remove the other's bindings).
A sync that times out may still commit later: ``read()`` again before trusting the outcome.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import netaddr
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend.ovs_idl import command as cmd
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.schema.hardware_vtep import commands as hw_commands
from ovsdbapp.schema.hardware_vtep import impl_idl

from vpcnet.fabric.inputs import Ownership
from vpcnet.ovsdb.connection import OwnConnection
from vpcnet.fabric.vtep import (
    ENCAPSULATION, LogicalSwitch, RemoteMac, RemoteMcast, VlanBinding, VtepState,
)

__all__ = ["VtepError", "Change", "LocalMac", "HwVtepApi", "VtepDriver", "connect"]

LOG = logging.getLogger(__name__)
SCHEMA = "hardware_vtep"


class VtepError(RuntimeError):
    """A hardware VTEP operation failed; the message names the VTEP and the row/field."""


@dataclass(frozen=True)
class Change:
    """One planned change. ``op``: ``+`` create, ``-`` delete, ``~`` modify."""
    op: str
    table: str
    key: str
    detail: str = ""
    action: tuple = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.op} {self.table} {self.key}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True, order=True)
class LocalMac:
    """A Ucast_Macs_Local row: the switch learnt ``mac`` on one of its ports in this switch."""
    logical_switch: str
    tunnel_key: int | None        # the Logical_Switch's VNI (vpcnet: the subnet's L2VNI)
    mac: str
    ipaddr: str
    locator: str                  # the locator's dst_ip: the VTEP's own tunnel IP


# --------------------------------------------------------------------------------------------
# ovsdbapp commands (run in the connection thread, inside one IDL transaction)

class _TxnIndex:
    """Lookups shared by the commands of one IDL transaction, built on first use.

    A retried transaction (TRY_AGAIN) is a new IDL transaction and gets a fresh index."""

    def __init__(self, api):
        t = api.tables
        self.ucast: dict[tuple, list] = defaultdict(list)
        for row in t["Ucast_Macs_Remote"].rows.values():
            self.ucast[(_ref(row.logical_switch), row.MAC.lower())].append(row)
        self.mcast: dict[tuple, list] = defaultdict(list)
        for row in t["Mcast_Macs_Remote"].rows.values():
            self.mcast[(_ref(row.logical_switch), row.MAC.lower())].append(row)
        self.locators = {row.dst_ip: row for row in t["Physical_Locator"].rows.values()
                         if row.encapsulation_type == ENCAPSULATION and not row.tunnel_key}
        self.sets = {frozenset(loc.uuid for loc in row.locators): row
                     for row in t["Physical_Locator_Set"].rows.values()}

    @classmethod
    def of(cls, api, txn) -> "_TxnIndex":
        idx = getattr(txn, "_vpcnet_index", None)
        if idx is None:
            idx = cls(api)
            txn._vpcnet_index = idx
        return idx


def _ref(value):
    """The UUID behind a reference column value (Row, or [] / [Row] for optional columns)."""
    if isinstance(value, list):
        value = value[0] if value else None
    return getattr(value, "uuid", value)


def _ip_order(text: str):
    try:
        return (0, netaddr.IPAddress(text))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return (1, text)      # not an address (written by someone else): after the addresses


def _first(value, default=None):
    if isinstance(value, list):
        return value[0] if value else default
    return value


class EnsureLocatorCommand(cmd.BaseCommand):
    """The vxlan_over_ipv4 Physical_Locator to ``dst_ip`` (no per-locator key): reused or new."""

    def __init__(self, api, dst_ip: str):
        super().__init__(api)
        self.dst_ip = dst_ip

    def run_idl(self, txn):
        idx = _TxnIndex.of(self.api, txn)
        row = idx.locators.get(self.dst_ip)
        if row is None:
            row = txn.insert(self.api.tables["Physical_Locator"])
            row.encapsulation_type = ENCAPSULATION
            row.dst_ip = self.dst_ip
            idx.locators[self.dst_ip] = row
        self.result = row


class EnsureLocatorSetCommand(cmd.BaseCommand):
    """A Physical_Locator_Set of exactly these locators (commands run earlier in the txn)."""

    def __init__(self, api, locators: list[EnsureLocatorCommand]):
        super().__init__(api)
        self.locators = locators

    def run_idl(self, txn):
        idx = _TxnIndex.of(self.api, txn)
        rows = [c.result for c in self.locators]
        key = frozenset(r.uuid for r in rows)
        row = idx.sets.get(key)
        if row is None:
            row = txn.insert(self.api.tables["Physical_Locator_Set"])
            row.locators = rows
            idx.sets[key] = row
        self.result = row


class _MacCommand(cmd.BaseCommand):
    table = ""
    kind = ""

    def __init__(self, api, switch: str, mac: str):
        super().__init__(api)
        self.switch, self.mac = switch, mac

    def _rows(self, txn):
        ls = self.api.lookup("Logical_Switch", self.switch)
        rows = getattr(_TxnIndex.of(self.api, txn), self.kind)
        return ls, rows, (ls.uuid, self.mac)


class SetUcastRemoteCommand(_MacCommand):
    """Ucast_Macs_Remote ``mac`` in ``switch`` -> ``locator`` (+ ipaddr); duplicates removed."""
    kind = "ucast"

    def __init__(self, api, switch: str, mac: str, ipaddr: str, locator: EnsureLocatorCommand):
        super().__init__(api, switch, mac)
        self.ipaddr, self.locator = ipaddr, locator

    def run_idl(self, txn):
        ls, index, key = self._rows(txn)
        rows = index[key]
        for extra in rows[1:]:
            extra.delete()
        loc = self.locator.result
        if rows:       # read a column only of an existing row: a new one has none yet
            row = rows[0]
            if _ref(row.locator) != loc.uuid:
                row.locator = loc
            if row.MAC != self.mac:
                row.MAC = self.mac
            if row.ipaddr != self.ipaddr:
                row.ipaddr = self.ipaddr
        else:
            row = txn.insert(self.api.tables["Ucast_Macs_Remote"])
            row.MAC, row.logical_switch, row.locator, row.ipaddr = self.mac, ls, loc, self.ipaddr
        rows[:] = [row]
        self.result = row


class SetMcastRemoteCommand(_MacCommand):
    """Mcast_Macs_Remote ``mac`` (e.g. ``unknown-dst``) in ``switch`` -> ``locator_set``."""
    kind = "mcast"

    def __init__(self, api, switch: str, mac: str, locator_set: EnsureLocatorSetCommand):
        super().__init__(api, switch, mac)
        self.locator_set = locator_set

    def run_idl(self, txn):
        ls, index, key = self._rows(txn)
        rows = index[key]
        for extra in rows[1:]:
            extra.delete()
        target = self.locator_set.result
        if rows:
            row = rows[0]
            if _ref(row.locator_set) != target.uuid:
                row.locator_set = target
        else:
            row = txn.insert(self.api.tables["Mcast_Macs_Remote"])
            row.MAC, row.logical_switch, row.locator_set = self.mac, ls, target
        rows[:] = [row]
        self.result = row


class DelMacRemoteCommand(_MacCommand):
    """Delete every Ucast (``kind="ucast"``) or Mcast_Macs_Remote row of ``mac`` in ``switch``."""

    def __init__(self, api, switch: str, mac: str, kind: str):
        super().__init__(api, switch, mac)
        self.kind = kind

    def run_idl(self, txn):
        _, index, key = self._rows(txn)
        rows = index.pop(key, [])
        for row in rows:
            row.delete()
        self.result = len(rows)


def _owned(own: Ownership, ls) -> bool:
    return own.owns_name(ls.name) and own.owns_description(ls.description)


def _port_row(api, pswitch: str, port: str):
    ps = api.lookup("Physical_Switch", pswitch)
    row = next((p for p in ps.ports if p.name == port), None)
    if row is None:
        raise idlutils.RowNotFound(table="Physical_Port", col="name", match=port)
    return row


class GuardedBindLsCommand(hw_commands.BindLsCommand):
    """ovsdbapp's bind_ls, guarded for a shared database: the port's vlan_bindings are verified
    (if another writer changes them first, the transaction is retried on fresh data) and a VLAN
    bound to a switch vpcnet does not own is never taken over."""

    def __init__(self, api, pswitch, port, vlan, switch, ownership: Ownership):
        super().__init__(api, pswitch, port, vlan, switch)
        self.ownership = ownership

    def run_idl(self, txn):
        row = _port_row(self.api, self.pswitch, self.port)
        row.verify("vlan_bindings")
        current = row.vlan_bindings.get(self.vlan)
        if current is not None and not _owned(self.ownership, current):
            raise VtepError(f"vlan_bindings {self.vlan} is bound to {current.name}, which is not "
                            "vpcnet's")
        super().run_idl(txn)


class GuardedUnbindLsCommand(hw_commands.UnbindLsCommand):
    """ovsdbapp's unbind_ls, removing the binding only while it still points at a vpcnet switch."""

    def __init__(self, api, pswitch, port, vlan, ownership: Ownership):
        super().__init__(api, pswitch, port, vlan)
        self.ownership = ownership

    def run_idl(self, txn):
        try:
            row = _port_row(self.api, self.pswitch, self.port)
        except idlutils.RowNotFound:     # the port is gone, and its bindings with it
            self.result = False
            return
        row.verify("vlan_bindings")
        current = row.vlan_bindings.get(self.vlan)
        self.result = current is not None and _owned(self.ownership, current)
        if self.result:
            super().run_idl(txn)


class ClearRemoteMacsCommand(cmd.BaseCommand):
    """Delete every Ucast/Mcast_Macs_Remote row in ``switch``.

    ovsdbapp's ``clear_remote_macs`` does the same with a table scan per switch, which costs
    seconds when many switches with thousands of MACs go in one transaction; this one uses the
    transaction's index."""

    def __init__(self, api, switch: str):
        super().__init__(api)
        self.switch = switch

    def run_idl(self, txn):
        ls = self.api.lookup("Logical_Switch", self.switch)
        idx = _TxnIndex.of(self.api, txn)
        count = 0
        for index in (idx.ucast, idx.mcast):
            for key in [k for k in index if k[0] == ls.uuid]:
                for row in index.pop(key):
                    row.delete()
                    count += 1
        self.result = count


class _Step(cmd.BaseCommand):
    """Runs ``inner``; any failure becomes a VtepError naming the VTEP and the change."""

    def __init__(self, api, vtep: str, change: str, inner: cmd.BaseCommand):
        super().__init__(api)
        self.vtep, self.change, self.inner = vtep, change, inner

    def run_idl(self, txn):
        try:
            self.inner.run_idl(txn)
        except Exception as e:
            raise VtepError(f"vtep {self.vtep}: {self.change}: {_reason(e)}; "
                            "the transaction was aborted, nothing was changed") from e
        self.result = self.inner.result

    def post_commit(self, txn):
        self.inner.post_commit(txn)
        self.result = self.inner.result

    def __str__(self):
        return f"{self.change} [{self.inner.__class__.__name__}]"


class _CommentCommand(cmd.BaseCommand):
    """Labels the transaction in the database log (``ovsdb-tool show-log``)."""

    def __init__(self, api, comment: str):
        super().__init__(api)
        self.comment = comment

    def run_idl(self, txn):
        txn.add_comment(self.comment)


def _reason(e: Exception) -> str:
    if isinstance(e, (idlutils.RowNotFound, VtepError)):
        return str(e)
    return f"{type(e).__name__}: {e}"


@dataclass
class _Snapshot:
    owned: VtepState
    foreign_ls: dict          # name -> (tunnel_key, description)
    foreign_bindings: dict    # (ps, port, vlan) -> logical switch name
    local_counts: dict        # owned LS name -> number of Ucast/Mcast_Macs_Local rows
    remote_counts: dict       # owned LS name -> number of Ucast/Mcast_Macs_Remote rows


class _SnapshotCommand(cmd.ReadOnlyCommand):
    def __init__(self, api, vtep: str, own: Ownership):
        super().__init__(api)
        self.vtep, self.own = vtep, own

    def run_idl(self, txn):
        t, own = self.api.tables, self.own
        owned, foreign = {}, {}
        for ls in t["Logical_Switch"].rows.values():
            key = _first(ls.tunnel_key)
            if _owned(own, ls):
                owned[ls.uuid] = LogicalSwitch(ls.name, key, ls.description,
                                               _first(ls.replication_mode, ""))
            else:
                foreign[ls.name] = (key, ls.description)
        bindings, foreign_bindings = [], {}
        switches = sorted(t["Physical_Switch"].rows.values(), key=lambda r: r.name)
        for ps in switches:
            for port in ps.ports:
                for vlan, ls in port.vlan_bindings.items():
                    if ls.uuid in owned:
                        bindings.append(VlanBinding(ps.name, port.name, vlan, ls.name))
                    else:
                        foreign_bindings[(ps.name, port.name, vlan)] = ls.name
        macs, mcasts = [], []
        remote_counts: dict = defaultdict(int)
        local_counts: dict = defaultdict(int)
        for row in t["Ucast_Macs_Remote"].rows.values():
            ls = owned.get(_ref(row.logical_switch))
            if ls is not None:
                loc = row.locator
                dst = loc.dst_ip
                if loc.encapsulation_type != ENCAPSULATION or loc.tunnel_key:
                    dst = f"{dst} ({loc.encapsulation_type}, tunnel_key {_first(loc.tunnel_key)})"
                macs.append(RemoteMac(ls.name, row.MAC.lower(), row.ipaddr, dst))
                remote_counts[ls.name] += 1
        for row in t["Mcast_Macs_Remote"].rows.values():
            ls = owned.get(_ref(row.logical_switch))
            if ls is not None:
                ips = sorted((loc.dst_ip for loc in row.locator_set.locators), key=_ip_order)
                mcasts.append(RemoteMcast(ls.name, row.MAC.lower(), tuple(ips)))
                remote_counts[ls.name] += 1
        for table in ("Ucast_Macs_Local", "Mcast_Macs_Local"):
            for row in t[table].rows.values():
                ls = owned.get(_ref(row.logical_switch))
                if ls is not None:
                    local_counts[ls.name] += 1
        one = switches[0] if len(switches) == 1 else None
        state = VtepState(
            leaf=self.vtep, physical_switch=one.name if one else "",
            vtep_ip=(_first(one.tunnel_ips, "") if one else ""),
            logical_switches=tuple(sorted(owned.values())), bindings=tuple(sorted(bindings)),
            remote_macs=tuple(sorted(macs)), remote_mcasts=tuple(sorted(mcasts)), ownership=own)
        self.result = _Snapshot(state, foreign, foreign_bindings, dict(local_counts),
                                dict(remote_counts))


class _LocalMacsCommand(cmd.ReadOnlyCommand):
    def __init__(self, api, own: Ownership | None):
        super().__init__(api)
        self.own = own

    def run_idl(self, txn):
        out = []
        for row in self.api.tables["Ucast_Macs_Local"].rows.values():
            ls = row.logical_switch
            if self.own is not None and not _owned(self.own, ls):
                continue
            out.append(LocalMac(ls.name, _first(ls.tunnel_key), row.MAC.lower(), row.ipaddr,
                                row.locator.dst_ip))
        self.result = tuple(sorted(out))


# --------------------------------------------------------------------------------------------
# the API object and the driver

class HwVtepApi(OwnConnection, impl_idl.HwVtepApiIdlImpl):
    """ovsdbapp's hardware_vtep API + vpcnet's commands, on a connection of its own."""

    def ensure_locator(self, dst_ip: str) -> EnsureLocatorCommand:
        return EnsureLocatorCommand(self, dst_ip)

    def ensure_locator_set(self, locators: list[EnsureLocatorCommand]) -> EnsureLocatorSetCommand:
        return EnsureLocatorSetCommand(self, locators)

    def set_ucast_remote(self, switch, mac, ipaddr, locator) -> SetUcastRemoteCommand:
        return SetUcastRemoteCommand(self, switch, mac, ipaddr, locator)

    def set_mcast_remote(self, switch, mac, locator_set) -> SetMcastRemoteCommand:
        return SetMcastRemoteCommand(self, switch, mac, locator_set)

    def del_ucast_remote(self, switch, mac) -> DelMacRemoteCommand:
        return DelMacRemoteCommand(self, switch, mac, "ucast")

    def del_mcast_remote(self, switch, mac) -> DelMacRemoteCommand:
        return DelMacRemoteCommand(self, switch, mac, "mcast")


class _Idl(ovs_connection.OvsdbIdl):
    """ovsdbapp's IDL yields the CPU (``time.sleep(0)``) after every row of an update, which
    for a 10000-row sync costs seconds on a loaded machine; yielding every 64 rows still lets
    cooperative (eventlet) callers run."""

    _rows_since_yield = 0

    def cooperative_yield(self):
        self._rows_since_yield += 1
        if self._rows_since_yield >= 64:
            self._rows_since_yield = 0
            time.sleep(0)


def connect(remote: str, timeout: float = 30.0) -> HwVtepApi:
    helper = idlutils.get_schema_helper(remote, SCHEMA)
    helper.register_all()
    idl = _Idl(remote, helper)
    return HwVtepApi(ovs_connection.Connection(idl, timeout=timeout))


def _ls_cols(ls: LogicalSwitch) -> dict:
    return {"tunnel_key": [] if ls.tunnel_key is None else ls.tunnel_key,
            "description": ls.description, "replication_mode": ls.replication_mode}


def _group(items, key) -> dict:
    out: dict = defaultdict(list)
    for it in items:
        out[key(it)].append(it)
    return out


class VtepDriver:
    """One hardware VTEP's database. ``name`` (default: the remote) appears in every error."""

    def __init__(self, remote: str, name: str | None = None, ownership: Ownership | None = None,
                 timeout: float = 30.0):
        self.remote = remote
        self.name = name or remote
        self.ownership = ownership or Ownership()
        self.timeout = timeout
        try:
            self.api = connect(remote, timeout=timeout)
        except Exception as e:
            raise VtepError(f"vtep {self.name}: cannot open the {SCHEMA} database at {remote}: "
                            f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        self.api.stop()

    def __enter__(self) -> "VtepDriver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------------
    def _snapshot(self, own: Ownership) -> _Snapshot:
        return _SnapshotCommand(self.api, self.name, own).execute(check_error=True,
                                                                  log_errors=False)

    def read(self, ownership: Ownership | None = None) -> VtepState:
        """vpcnet's objects in the database. ``physical_switch``/``vtep_ip`` are filled in only
        when the database has exactly one Physical_Switch (its name and first tunnel IP)."""
        return self._snapshot(ownership or self.ownership).owned

    def local_macs(self, all_switches: bool = False) -> tuple[LocalMac, ...]:
        """Ucast_Macs_Local rows in vpcnet's Logical_Switches (every switch if ``all_switches``)."""
        own = None if all_switches else self.ownership
        return _LocalMacsCommand(self.api, own).execute(check_error=True, log_errors=False)

    # --- planning -----------------------------------------------------------------------------
    def plan(self, desired: VtepState) -> list[Change]:
        return self._plan(desired, self._snapshot(desired.ownership))

    def _plan(self, d: VtepState, snap: _Snapshot) -> list[Change]:
        me, cur = f"vtep {self.name}", snap.owned
        errors = []
        if d.ownership != self.ownership:
            LOG.debug("%s: desired ownership %s differs from the driver's %s", me, d.ownership,
                      self.ownership)
        foreign_keys = {k: n for n, (k, _) in snap.foreign_ls.items() if k is not None}
        for ls in d.logical_switches:
            if ls.name in snap.foreign_ls:
                errors.append(f"Logical_Switch {ls.name} exists but is not vpcnet's (description="
                              f"{snap.foreign_ls[ls.name][1]!r}); refusing to take it over")
            if ls.tunnel_key in foreign_keys:
                errors.append(f"Logical_Switch {ls.name}: tunnel_key={ls.tunnel_key} is already "
                              f"used by Logical_Switch {foreign_keys[ls.tunnel_key]} "
                              "(not vpcnet's)")
        for b in d.bindings:
            other = snap.foreign_bindings.get((b.physical_switch, b.port, b.vlan))
            if other is not None:
                errors.append(f"Physical_Port {b.physical_switch}/{b.port}: vlan_bindings {b.vlan} "
                              f"-> {other} is not vpcnet's; refusing to rebind it to "
                              f"{b.logical_switch}")
        if errors:
            raise VtepError(f"{me}: " + "; ".join(errors))

        changes: list[Change] = []
        want_ls = {ls.name: ls for ls in d.logical_switches}
        have_ls = {ls.name: ls for ls in cur.logical_switches}
        for name, ls in want_ls.items():
            old = have_ls.get(name)
            if old is None:
                changes.append(Change("+", "Logical_Switch", name,
                                      f"tunnel_key={ls.tunnel_key} replication_mode="
                                      f"{ls.replication_mode} description={ls.description!r}",
                                      ("add_ls", name, _ls_cols(ls))))
            elif old != ls:
                diffs = [f"{f} {getattr(old, f)!r} -> {getattr(ls, f)!r}"
                         for f in ("tunnel_key", "replication_mode", "description")
                         if getattr(old, f) != getattr(ls, f)]
                changes.append(Change("~", "Logical_Switch", name, ", ".join(diffs),
                                      ("set_ls", name, _ls_cols(ls))))

        want_b = {(b.physical_switch, b.port, b.vlan): b for b in d.bindings}
        have_b = {(b.physical_switch, b.port, b.vlan): b for b in cur.bindings}
        for key, b in have_b.items():
            if key not in want_b:
                changes.append(Change("-", "Physical_Port", f"{key[0]}/{key[1]}",
                                      f"vlan_bindings {key[2]} -> {b.logical_switch}",
                                      ("unbind", *key)))
        for key, b in want_b.items():
            old = have_b.get(key)
            if old is None or old.logical_switch != b.logical_switch:
                what = f"vlan_bindings {key[2]} -> {b.logical_switch}"
                if old is not None:
                    what += f" (was {old.logical_switch})"
                changes.append(Change("+" if old is None else "~", "Physical_Port",
                                      f"{key[0]}/{key[1]}", what,
                                      ("bind", *key, b.logical_switch)))

        gone = set(have_ls) - set(want_ls)
        for kind, table, want_rows, have_rows in (
                ("ucast", "Ucast_Macs_Remote", d.remote_macs, cur.remote_macs),
                ("mcast", "Mcast_Macs_Remote", d.remote_mcasts, cur.remote_mcasts)):
            want = {r.key: r for r in want_rows}
            have = _group(have_rows, lambda r: r.key)
            for key, rows in sorted(have.items()):
                if key not in want and key[0] not in gone:
                    changes.append(Change("-", table, f"{key[0]} {key[1]}", _target(rows[0]),
                                          (f"del_{kind}", *key)))
            for key, row in want.items():
                rows = have.get(key, [])
                if len(rows) == 1 and rows[0] == row:
                    continue
                detail = _target(row)
                if len(rows) > 1:
                    detail += f" (replacing {len(rows)} duplicate rows)"
                elif rows:
                    detail += f" (was {_target(rows[0])})"
                changes.append(Change("~" if rows else "+", table, f"{key[0]} {key[1]}", detail,
                                      (f"set_{kind}", row)))

        for name in sorted(gone):
            n_remote, n_local = snap.remote_counts.get(name, 0), snap.local_counts.get(name, 0)
            changes.append(Change("-", "Logical_Switch", name,
                                  f"with its {n_remote} remote and {n_local} local MAC rows",
                                  ("del_ls", name)))
        return changes

    # --- applying -----------------------------------------------------------------------------
    def sync(self, desired: VtepState) -> list[Change]:
        """Apply ``plan(desired)`` in one transaction; returns the applied changes ([]: no-op)."""
        changes = self.plan(desired)
        if not changes:
            return []
        api, me = self.api, self.name
        started = time.monotonic()
        locators: dict[str, EnsureLocatorCommand] = {}

        def locator(ip: str) -> EnsureLocatorCommand:
            if ip not in locators:
                locators[ip] = api.ensure_locator(ip)
                txn.add(_Step(api, me, f"Physical_Locator {ENCAPSULATION}/{ip}", locators[ip]))
            return locators[ip]

        try:
            with api.transaction(check_error=True, log_errors=False) as txn:
                txn.add(_CommentCommand(api, f"vpcnet: sync of vtep {me}: {len(changes)} changes"))
                for ch in changes:
                    text, (verb, *args) = str(ch), ch.action
                    if verb == "add_ls":
                        inner = api.add_ls(args[0], **args[1])
                    elif verb == "set_ls":
                        inner = api.db_set("Logical_Switch", args[0], *args[1].items())
                    elif verb == "unbind":
                        inner = GuardedUnbindLsCommand(api, *args, desired.ownership)
                    elif verb == "bind":
                        inner = GuardedBindLsCommand(api, *args, desired.ownership)
                    elif verb == "set_ucast":
                        r = args[0]
                        inner = api.set_ucast_remote(r.logical_switch, r.mac, r.ipaddr,
                                                     locator(r.dst_ip))
                    elif verb == "set_mcast":
                        r = args[0]
                        sets = api.ensure_locator_set([locator(ip) for ip in r.dst_ips])
                        txn.add(_Step(api, me, f"Physical_Locator_Set {list(r.dst_ips)}", sets))
                        inner = api.set_mcast_remote(r.logical_switch, r.mac, sets)
                    elif verb == "del_ucast":
                        inner = api.del_ucast_remote(*args)
                    elif verb == "del_mcast":
                        inner = api.del_mcast_remote(*args)
                    elif verb == "del_ls":
                        for clear in (ClearRemoteMacsCommand(api, args[0]),
                                      api.clear_local_macs(args[0])):
                            txn.add(_Step(api, me, text, clear))
                        inner = api.del_ls(args[0])
                    else:   # pragma: no cover - _plan only emits the verbs above
                        raise AssertionError(verb)
                    txn.add(_Step(api, me, text, inner))
        except VtepError:
            raise
        except ovsdbapp_exceptions.TimeoutException as e:
            raise VtepError(f"vtep {me}: the transaction of {len(changes)} changes did not finish "
                            f"within {self.timeout}s; it may still commit, read() again") from e
        except RuntimeError as e:
            raise VtepError(f"vtep {me}: the server rejected the transaction of {len(changes)} "
                            f"changes, nothing was changed: {e}") from e
        LOG.info("vtep %s: %d changes applied in one transaction in %.3fs", me, len(changes),
                 time.monotonic() - started)
        return changes


def _target(row) -> str:
    if isinstance(row, RemoteMac):
        ip = f" ipaddr={row.ipaddr}" if row.ipaddr else ""
        return f"{ENCAPSULATION}/{row.dst_ip}{ip}"
    return f"[{', '.join(f'{ENCAPSULATION}/{ip}' for ip in row.dst_ips)}]"
