"""ovsdbapp binding of the vpcnet state API, with a per-instance connection.

ovsdbapp keeps one connection per Backend *class*; a controller, a benchmark or a test may want
several independent clients in one process, so `StateApi` keeps its connection per instance.
"""
from __future__ import annotations

from ovsdbapp.backend import ovs_idl
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import transaction as ovs_transaction

from vpcnet.ovsdb.state import api as state_api
from vpcnet.ovsdb.state import commands as cmd
from vpcnet.ovsdb.state import idl as state_idl

INTENT_TABLES = ("Vpc", "Namespace", "Subnet", "Node", "Leaf", "SecurityGroup",
                 "Pod", "NetworkPolicy", "Service", "Endpoints")


class StateApi(ovs_idl.Backend, state_api.API):
    schema = "vpcnet"
    ovsdb_connection = None  # per instance (shadows ovsdbapp's class-level property)

    def __init__(self, connection, start=True):
        super().__init__(connection, start=False, auto_index=False)
        for table in INTENT_TABLES:
            self.create_index(table, "name")
        if start:
            self.start_connection(connection)

    def create_transaction(self, check_error=False, log_errors=True, timeout: float | None = None, **kwargs):
        """ovsdbapp's transaction, with ``timeout`` (seconds to wait for its outcome) if given:
        a large change must report the outcome it had, not a timeout while it still commits."""
        return ovs_transaction.Transaction(self, self.ovsdb_connection, timeout or self.ovsdb_connection.timeout,
                                           check_error, log_errors)

    @property
    def idl(self) -> state_idl.StateIdl:
        return self.ovsdb_connection.idl

    def upsert_object(self, table, namespace, name, columns):
        return cmd.UpsertObjectCommand(self, table, namespace, name, columns)

    def delete_object(self, table, namespace, name, if_exists=True):
        return cmd.DeleteObjectCommand(self, table, namespace, name, if_exists)

    def get_object(self, table, namespace, name):
        return cmd.GetObjectCommand(self, table, namespace, name)

    def list_objects(self, table, namespace=None):
        return cmd.ListObjectsCommand(self, table, namespace)

    def request_slices(self, table, keys):
        return cmd.RequestSlicesCommand(self, table, keys)

    def ensure_loaded(self, table: str, keys=None, timeout: float | None = None) -> None:
        """Monitor the slices `keys` of a sliced table (None = the whole table) and wait until
        the server has sent them."""
        keys = None if keys is None else sorted(set(keys))
        if state_idl.slices_acked(self.idl, table, keys):
            return
        self.request_slices(table, keys).execute(check_error=True)
        state_idl.wait_for_slices(self.idl, table, keys, timeout or self.ovsdb_connection.timeout)

    def stop(self) -> None:
        self.ovsdb_connection.stop(timeout=5)


def connect(remote: str, timeout: float = 30.0) -> StateApi:
    """Connect to the state database at `remote` (unix:PATH, tcp:HOST:PORT, or a comma-separated
    list of cluster members). Returns a started StateApi; the big tables are loaded on demand."""
    helper = state_idl.schema_helper(remote.split(",")[0])
    idl = state_idl.StateIdl(remote, helper, leader_only=True)
    conn = ovs_connection.Connection(idl, timeout=timeout)
    return StateApi(conn)
