"""The `vpcnet` CLI as a user runs it, against a real controller process."""
from __future__ import annotations

import json

from tests.conftest import ROOT, vpcnet_cli

EXAMPLES = str(ROOT / "examples")


def test_apply_is_idempotent_and_get_shows_allocations(controller):
    first = vpcnet_cli(controller, "apply", "-f", EXAMPLES)
    assert first.returncode == 0, first.stderr
    assert "pod/trading/trader-0 created" in first.stdout
    again = vpcnet_cli(controller, "apply", "-f", EXAMPLES)
    assert again.returncode == 0 and "created" not in again.stdout and "configured" not in again.stdout
    table = vpcnet_cli(controller, "get", "pods", "-A")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "IP", "MAC", "SUBNET", "NODE"]
    assert any(line.split()[:3] == ["trading", "trader-0", "10.10.0.100"] for line in lines)
    pod = json.loads(vpcnet_cli(controller, "get", "pod", "db-1", "-n", "payments", "-o", "json").stdout)
    assert pod["status"]["ip"] == "10.20.0.51" and pod["status"]["vlan"] == 101
    described = vpcnet_cli(controller, "describe", "subnet", "trading-a")
    assert "available:" in described.stdout and "vlan: 100" in described.stdout
    history = vpcnet_cli(controller, "get", "ip-history", "10.10.0.100")
    assert "trading/trader-0" in history.stdout and "(holds it)" in history.stdout


def test_bad_input_names_field_and_value_and_stores_nothing(controller, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""apiVersion: vpcnet.io/v1
kind: Vpc
metadata: {name: lab}
spec: {namespaces: [lab]}
---
apiVersion: vpcnet.io/v1
kind: Subnet
metadata: {name: lab-a}
spec: {vpc: lab, cidrBlock: 10.1.0.0/33}
""")
    checked = vpcnet_cli(controller, "check", "-f", str(bad))
    assert checked.returncode == 1 and "Subnet/lab-a" in checked.stderr and "10.1.0.0/33" in checked.stderr
    applied = vpcnet_cli(controller, "apply", "-f", str(bad))
    assert applied.returncode == 1 and "spec.cidrBlock" in applied.stderr
    assert "no vpcs found" in vpcnet_cli(controller, "get", "vpc").stdout


def test_delete_pod_then_subnet_guard(controller):
    assert vpcnet_cli(controller, "apply", "-f", EXAMPLES).returncode == 0
    refused = vpcnet_cli(controller, "delete", "subnet", "trading-a")
    assert refused.returncode == 1 and "pods still hold addresses" in refused.stderr
    gone = vpcnet_cli(controller, "delete", "pod", "trader-0", "trader-1", "-n", "trading")
    assert gone.returncode == 0 and "pod/trading/trader-0 deleted" in gone.stdout
    assert vpcnet_cli(controller, "delete", "subnet", "trading-a").returncode == 0
    history = vpcnet_cli(controller, "get", "ip-history", "10.10.0.100", "-o", "json")
    assert json.loads(history.stdout)[0]["to_ms"] is not None
    missing = vpcnet_cli(controller, "delete", "pod", "nope", "-n", "trading")
    assert missing.returncode == 1 and "not found" in missing.stdout


def test_check_needs_no_controller(tmp_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "vpcnet.app.cli", "--state-dir", str(tmp_path), "check", "-f",
                           EXAMPLES], capture_output=True, text=True)
    assert done.returncode == 0 and "objects valid" in done.stdout


def test_tcp_api_requires_the_bearer_token(tmp_path):
    import socket
    from tests.conftest import ControllerProcess
    from vpcnet.app.api import Client
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "tcp"
    state.mkdir()
    ctl = ControllerProcess(state, "--api", f"127.0.0.1:{port}", "--api-token", "s3cret")
    try:
        import time
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = Client(f"127.0.0.1:{port}", token="s3cret").request("GET", "/v1/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline and ctl.proc.poll() is None
                time.sleep(0.05)
        assert status == 200
        status, body = Client(f"127.0.0.1:{port}", token="wrong").request("GET", "/v1/objects/vpcs")
        assert status == 401 and "bearer token" in body["errors"][0]
        status, body = Client(f"127.0.0.1:{port}").request("GET", "/v1/objects/vpcs")
        assert status == 401
    finally:
        ctl.stop()


def test_a_write_without_an_answer_says_it_may_still_be_applied(tmp_path, monkeypatch, capsys):
    """A controller that accepts the request but does not answer in time (a real unix socket that
    never replies): the CLI must not claim the controller is unreachable or the change refused."""
    import socket

    import pytest

    from vpcnet.app import cli
    path = tmp_path / "api.sock"
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(path))
    silent.listen(4)
    monkeypatch.setattr(cli, "WRITE_TIMEOUT", 0.5)
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main(["--api", f"unix:{path}", "apply", "-f", str(ROOT / "examples" / "00-vpcs.yaml")])
    finally:
        silent.close()
    assert "gave no answer within 0.5 s" in str(exc.value) and "may still be applied" in str(exc.value), exc.value
