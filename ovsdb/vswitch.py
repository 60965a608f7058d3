"""The node's Open_vSwitch database, through ovsdbapp: where br-int keeps vpcnet's restart round.

The round number of the flows vpcnet installed lives in ``Bridge.external_ids:vpcnet-round``, so
whoever looks at a bridge (an operator, a restarted controller) can tell which cookies are
current. Connections are short-lived and per call: the controller touches a node's OVSDB once
per OpenFlow connection, and a long-lived IDL of every node's database would cost far more.
"""
from __future__ import annotations

from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.schema.open_vswitch import impl_idl

ROUND_KEY = "vpcnet-round"


class VswitchApi(impl_idl.OvsdbIdl):
    ovsdb_connection = None  # per instance (ovsdbapp keeps one per class otherwise)

    def __init__(self, connection):
        super().__init__(connection, start=False)
        self.start_connection(connection)

    def stop(self) -> None:
        self.ovsdb_connection.stop(timeout=5)


def connect(remote: str, timeout: float = 10.0) -> VswitchApi:
    helper = idlutils.get_schema_helper(remote, "Open_vSwitch")
    helper.register_table("Open_vSwitch")
    helper.register_table("Bridge")
    idl = ovs_connection.OvsdbIdl(remote, helper)
    return VswitchApi(ovs_connection.Connection(idl, timeout=timeout))


def read_round(remote: str, bridge: str) -> int | None:
    api = connect(remote)
    try:
        ids = api.db_get("Bridge", bridge, "external_ids").execute(check_error=True)
        value = ids.get(ROUND_KEY)
        return int(value) if value and value.isdigit() else None
    finally:
        api.stop()


def write_round(remote: str, bridge: str, round_: int) -> None:
    api = connect(remote)
    try:
        api.db_set("Bridge", bridge, ("external_ids", {ROUND_KEY: str(round_)})).execute(check_error=True)
    finally:
        api.stop()
