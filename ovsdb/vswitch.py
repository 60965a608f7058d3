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

from vpcnet.ovsdb.connection import OwnConnection

ROUND_KEY = "vpcnet-round"


class VswitchApi(OwnConnection, impl_idl.OvsdbIdl):
    """ovsdbapp's Open_vSwitch API on a connection of its own."""


def connect(remote: str, timeout: float = 10.0, tables=("Open_vSwitch", "Bridge")) -> VswitchApi:
    helper = idlutils.get_schema_helper(remote, "Open_vSwitch")
    for table in tables:
        helper.register_table(table)
    idl = ovs_connection.OvsdbIdl(remote, helper)
    return VswitchApi(ovs_connection.Connection(idl, timeout=timeout))


OWNER_KEY = "vpcnet-owner"   # external_ids mark on every port the node daemon created


class NodeSwitch:
    """The node daemon's long-lived view of its Open vSwitch: br-int and the pod ports on it."""

    def __init__(self, remote: str, bridge: str = "br-int"):
        self.bridge = bridge
        self.api = connect(remote, timeout=20.0,
                           tables=("Open_vSwitch", "Bridge", "Port", "Interface", "Controller"))

    def stop(self) -> None:
        self.api.stop()

    def ensure_bridge(self, datapath_type: str, controllers: list[str], datapath_id: str | None = None,
                      uplink: str | None = None) -> None:
        """br-int as vpcnet needs it: fail_mode secure (no controller, no forwarding — never a
        learning switch), OpenFlow 1.3 (bundles are the ONF extension), our controllers, the uplink."""
        api = self.api
        with api.transaction(check_error=True) as txn:
            txn.add(api.add_br(self.bridge, may_exist=True, datapath_type=datapath_type))
            txn.add(api.db_set("Bridge", self.bridge, ("fail_mode", "secure"), ("protocols", ["OpenFlow13"])))
            if datapath_id:
                txn.add(api.db_set("Bridge", self.bridge, ("other_config", {"datapath-id": datapath_id})))
            if controllers:
                txn.add(api.set_controller(self.bridge, controllers))
            if uplink:
                txn.add(api.add_port(self.bridge, uplink, may_exist=True))

    def bridge_ready(self) -> tuple[bool, str]:
        rows = self.api.db_find("Bridge", ("name", "=", self.bridge), columns=["name", "controller"]) \
            .execute(check_error=True)
        if not rows:
            return False, f"bridge {self.bridge} does not exist"
        controllers = self.api.db_list("Controller", columns=["target", "is_connected"]).execute(check_error=True)
        if controllers and not any(c["is_connected"] for c in controllers):
            return False, f"bridge {self.bridge} is not connected to its controller"
        return True, "ok"

    def add_pod_port(self, port: str, external_ids: dict[str, str]) -> None:
        api = self.api
        ids = {OWNER_KEY: "pod", **external_ids}
        with api.transaction(check_error=True) as txn:
            txn.add(api.add_port(self.bridge, port, may_exist=True))
            txn.add(api.db_set("Interface", port, ("external_ids", ids)))
            txn.add(api.db_set("Port", port, ("external_ids", ids)))

    def del_port(self, port: str) -> None:
        self.api.del_port(port, bridge=self.bridge, if_exists=True).execute(check_error=True)

    def pod_ports(self) -> dict[str, dict[str, str]]:
        """port name -> external_ids, for every port this daemon created."""
        rows = self.api.db_list("Interface", columns=["name", "external_ids"]).execute(check_error=True)
        return {r["name"]: dict(r["external_ids"]) for r in rows if dict(r["external_ids"]).get(OWNER_KEY) == "pod"}

    def ofport(self, port: str) -> int | None:
        rows = self.api.db_find("Interface", ("name", "=", port), columns=["ofport"]).execute(check_error=True)
        if not rows or not rows[0]["ofport"]:
            return None
        value = rows[0]["ofport"]
        value = value[0] if isinstance(value, list) else value
        return value if isinstance(value, int) and value > 0 else None


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
