"""`vpcnet lab demo` as a user runs it (the README's first command, on a private lab name and run
directory): a real lab, the examples applied, the leaves synced over NETCONF, pods created through
vpcnet-cni, and the connectivity matrix judged against the intent; `vpcnet lab down` leaves
nothing behind. Needs root."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.functional.test_lab_lifecycle import assert_nothing_left
from vpcnet.sim.lab import Lab


def vpcnet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vpcnet.app.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_lab_demo_prints_an_all_intended_matrix_and_down_cleans_up(tmp_path):
    name, run = f"d{os.getpid() % 100000}", str(tmp_path / "run")
    try:
        demo = vpcnet("lab", "demo", "--name", name, "--run-dir", run)
        out = demo.stdout + demo.stderr
        assert demo.returncode == 0, out[-4000:]
        # the leaves got their MAC-VRFs over NETCONF, then the pods on both leaves reached each
        # other within their VPC and never across VPCs
        assert "+ mac-vrf vpcnet-L2-trading-a" in out and "leaves in sync" in out
        assert "30/30 pairs as intended" in out, out[-4000:]
        assert "trading/trader-0: 10.10.0.100 (02:00:0a:0a:00:64)" in out   # the fixed IP + MAC pod
        plan = vpcnet("--state-dir", f"{run}/ctl", "fabric", "plan", "--detailed-exitcode", timeout=120)
        assert plan.returncode == 0 and plan.stdout.count("in sync") == 2, plan.stdout + plan.stderr
        status = vpcnet("lab", "status", "--name", name, "--run-dir", run, timeout=120)
        assert status.returncode == 0, status.stderr
    finally:
        down = vpcnet("lab", "down", "--name", name, "--run-dir", run, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert_nothing_left(Lab(name, run))
