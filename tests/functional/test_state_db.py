"""The embedded state database: created on first start, upgraded online when the schema changes."""
from __future__ import annotations

import json
import subprocess

from vpcnet.ovsdb.server import SCHEMA_PATH, EmbeddedOvsdbServer
from vpcnet.ovsdb.state.impl_idl import connect


def test_old_schema_is_converted_and_data_kept(tmp_path):
    old = json.loads(SCHEMA_PATH.read_text())
    old["version"] = "0.9.0"
    del old["tables"]["IpEvent"]
    del old["tables"]["Vpc"]["columns"]["labels"]
    old_path = tmp_path / "old.ovsschema"
    old_path.write_text(json.dumps(old))
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["ovsdb-tool", "create", str(state / "state.db"), str(old_path)], check=True)
    subprocess.run(["ovsdb-tool", "transact", str(state / "state.db"), json.dumps(
        ["vpcnet", {"op": "insert", "table": "Vpc", "row": {"name": "kept", "vni": 50001}}])], check=True)
    server = EmbeddedOvsdbServer(state)
    try:
        remote = server.start()
        version = subprocess.run(["ovsdb-client", "get-schema-version", remote, "vpcnet"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        assert version == json.loads(SCHEMA_PATH.read_text())["version"]
        api = connect(remote)
        try:
            assert api.get_object("Vpc", "", "kept").execute(check_error=True).vni == 50001
            assert "IpEvent" in api.tables
        finally:
            api.stop()
    finally:
        server.stop()
    server.stop()
