"""Under load: ovsdbapp's threads (state DB events), os-ken's threads (switch replies) and the
flow engine's worker and audit threads all run at once. Many pods arrive and leave while the
audit dumps both bridges every 0.2 s; the bridges must end exactly as compiled, and the audit
must never mistake an in-flight change for drift (which would show as repairs)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.functional.brint import VPCS, Fabric

N_PODS = 80


@pytest.fixture
def fabric(tmp_path):
    fab = Fabric(tmp_path, dummy=True, audit_interval=0.2)
    try:
        yield fab
    finally:
        fab.stop()


def flows_cli(fab: Fabric, node: str, *args: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "vpcnet.app.cli", "--state-dir", str(fab.state), "flows", node, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [re.sub(r"cookie=0x[0-9a-f]+, ?", "", line) for line in r.stdout.splitlines()]


def test_many_pods_converge_exactly_with_no_false_drift(fabric):
    fabric.apply(VPCS + [fabric.node_doc("node-1", 1), fabric.node_doc("node-2", 2)])
    fabric.add_bridges()
    fabric.add_uplinks()
    specs = []
    for i in range(N_PODS):
        ns, subnet_prefix = (("trading", "10.10.0") if i % 3 else ("payments", "10.20.0"))
        if i % 7 == 0:
            ns, subnet_prefix = "shop", "10.30.0"
        specs.append((ns, f"p{i}", f"node-{1 + i % 2}", f"{subnet_prefix}.{20 + i}", 20 + i))
    for start in range(0, N_PODS, 20):            # four changes, each wired while the next is applied
        fabric.add_pods(specs[start:start + 20])
    fabric.settle(timeout=60)
    for node in fabric.nodes:
        compiled = flows_cli(fabric, node)
        installed = flows_cli(fabric, node, "--installed")
        assert compiled == installed
        assert len(compiled) == len(fabric.flows(node))
    # half of them leave
    fabric.delete_pods([(ns, name) for ns, name, *_ in specs[::2]])
    fabric.settle(timeout=60)
    for node in fabric.nodes:
        flows = fabric.flows(node)
        for ns, name, *_ in specs[::2]:
            port = fabric.pods[(ns, name)]["port"]
            assert not any(port in f for f in flows), (ns, name, node, [f for f in flows if port in f])
        assert flows_cli(fabric, node) == flows_cli(fabric, node, "--installed")
    assert fabric.metric("vpcnet_drift_repaired_total") == 0
    assert fabric.metric("vpcnet_handler_errors_total") == 0
    assert fabric.metric("vpcnet_bundle_failures_total") == 0
