"""ovsdbapp commands for the vpcnet state schema (run in the connection thread, inside one txn)."""
from __future__ import annotations

import time
import uuid as uuidlib

from ovsdbapp.backend.ovs_idl import command as cmd
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.backend.ovs_idl import rowview

NAMESPACED = {"Pod", "NetworkPolicy", "Service", "Endpoints"}


def now_ms() -> int:
    return int(time.time() * 1000)


def find_row(api, table: str, namespace: str, name: str):
    """Find an intent row through the IDL's index on `name` (created for every intent table)."""
    tbl = api.tables[table]
    for row in idlutils.index_lookup_all(tbl, name=name):
        if table not in NAMESPACED or row.namespace == namespace:
            return row
    return None


class UpsertObjectCommand(cmd.BaseCommand):
    def __init__(self, api, table, namespace, name, columns):
        super().__init__(api)
        self.table, self.namespace, self.name = table, namespace, name
        self.columns = columns

    def run_idl(self, txn):
        row = find_row(self.api, self.table, self.namespace, self.name)
        if row is None:
            row = txn.insert(self.api.tables[self.table])
            row.name = self.name
            if self.table in NAMESPACED:
                row.namespace = self.namespace
            row.uid = str(uuidlib.uuid4())
            row.generation = 1
            row.created_ms = now_ms()
            row.status = self.columns.get("status", "{}")
            for column, value in self.columns.items():
                setattr(row, column, value)
            self.result = "created"
            return
        changed = False
        for column, value in self.columns.items():
            if getattr(row, column) != value:
                if column == "spec":
                    row.generation = row.generation + 1
                setattr(row, column, value)
                changed = True
        self.result = "configured" if changed else "unchanged"


class DeleteObjectCommand(cmd.BaseCommand):
    def __init__(self, api, table, namespace, name, if_exists=True):
        super().__init__(api)
        self.table, self.namespace, self.name, self.if_exists = table, namespace, name, if_exists

    def run_idl(self, txn):
        row = find_row(self.api, self.table, self.namespace, self.name)
        if row is None:
            if not self.if_exists:
                raise LookupError(f"{self.table} {self.namespace + '/' if self.namespace else ''}{self.name} not found")
            self.result = False
            return
        row.delete()
        self.result = True


class GetObjectCommand(cmd.ReadOnlyCommand):
    def __init__(self, api, table, namespace, name):
        super().__init__(api)
        self.table, self.namespace, self.name = table, namespace, name

    def run_idl(self, txn):
        row = find_row(self.api, self.table, self.namespace, self.name)
        self.result = rowview.RowView(row) if row is not None else None


class ListObjectsCommand(cmd.ReadOnlyCommand):
    def __init__(self, api, table, namespace=None):
        super().__init__(api)
        self.table, self.namespace = table, namespace

    def run_idl(self, txn):
        rows = self.api.tables[self.table].rows.values()
        if self.namespace is not None:
            rows = [r for r in rows if r.namespace == self.namespace]
        key = (lambda r: (r.namespace, r.name)) if self.table in NAMESPACED else (lambda r: r.name)
        self.result = [rowview.RowView(r) for r in sorted(rows, key=key)]


class RequestSlicesCommand(cmd.BaseCommand):
    """Add slices to a sliced table's monitor condition. It runs in the connection thread,
    inside a transaction that changes nothing (it commits without a round trip): the IDL is only
    ever changed from its own thread, and the thread's wake-up is consumed by that transaction.
    (It used to be a read-only command that woke the connection thread through the transaction
    queue's alert pipe; nothing consumed that byte, so the thread spun at 30-80 % of a core from
    the first slice a process loaded.)"""

    def __init__(self, api, table, keys):
        super().__init__(api)
        self.table, self.keys = table, keys

    def run_idl(self, txn):
        idl = self.api.idl
        if self.keys is None:
            self.result = idl.request_everything(self.table)
        else:
            self.result = idl.request_slices(self.table, self.keys)

