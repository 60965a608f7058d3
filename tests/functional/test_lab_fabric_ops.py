"""Fabric operations on the lab, as an operator meets them: the controller configures the leaves
after an intent change by itself; a change made by hand on a leaf shows up in `vpcnet fabric
plan` and `vpcnet fabric sync` repairs it; a leaf that comes back from a restart with an empty
configuration is re-synced by the controller without anyone asking. Real FRR leaves, netconfd,
leaf agents and controller (2 leaves x 1 node). Needs root."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.functional.test_lab_lifecycle import assert_nothing_left
from vpcnet.app.intent.manifest import load_path
from vpcnet.fabric.netconf import LeafTarget, apply, read_running
from vpcnet.sim.lab import Lab

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NS = "urn:vpcnet:yang:leaf"
SUBTREE = f'<leaf xmlns="{NS}"/>'


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    run = tmp_path_factory.mktemp("fabops") / "run"
    # drift is reported, not repaired, so the test sees it; the controller checks every 2 s
    lab = Lab(f"o{os.getpid() % 100000}", run, leaves=2, nodes_per_leaf=1,
              controller_args=["--fabric-interval", "2", "--fabric-no-repair"])
    lab.up()
    try:
        yield lab
    finally:
        lab.down()
        assert_nothing_left(lab)


def vpcnet(lab: Lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vpcnet.app.cli", "--state-dir", str(lab.ctl_dir), *args],
                          capture_output=True, text=True, timeout=120)


def target(lab: Lab, leaf: str) -> LeafTarget:
    lf = next(lp for lp in lab.topo.leaf_plans if lp.name == leaf)
    return LeafTarget(leaf=leaf, host=lf.mgmt_ip, port=830,
                      key_file=str(lab.run_dir / "credentials" / "id_ed25519"), netns=lab.topo.mgmt_netns)


def mac_vrfs(lab: Lab, leaf: str) -> dict[str, str]:
    root = read_running(target(lab, leaf), SUBTREE)
    return {mv.findtext(f"{{{NS}}}name"): mv.findtext(f"{{{NS}}}rd") for mv in root.iter(f"{{{NS}}}mac-vrf")}


def wait(what, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_intent_change_reaches_the_leaves_without_a_sync(lab):
    docs = [d for f in ("00-vpcs.yaml", "10-namespaces.yaml", "20-subnets.yaml") for d in load_path(EXAMPLES / f)]
    status, payload = lab.client().request("POST", "/v1/apply", {"documents": docs})
    assert status == 200, payload
    want = {"vpcnet-L2-trading-a", "vpcnet-L2-payments-a", "vpcnet-L2-shop-a"}
    for leaf in ("leaf1", "leaf2"):
        wait(f"{leaf}'s MAC-VRFs", lambda: set(mac_vrfs(lab, leaf)) == want)
    plan = vpcnet(lab, "fabric", "plan", "--detailed-exitcode")
    assert plan.returncode == 0 and plan.stdout.count("in sync") == 2, plan.stdout + plan.stderr


def test_hand_change_shows_in_plan_and_sync_repairs_it(lab):
    good = mac_vrfs(lab, "leaf1")["vpcnet-L2-shop-a"]
    apply(target(lab, "leaf1"),
          f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><leaf xmlns="{NS}"><mac-vrf>'
          f"<name>vpcnet-L2-shop-a</name><rd>198.19.255.1:999</rd></mac-vrf></leaf></config>")
    assert mac_vrfs(lab, "leaf1")["vpcnet-L2-shop-a"] == "198.19.255.1:999"
    plan = vpcnet(lab, "fabric", "plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "leaf leaf1 (vpcnet-leaf): 1 change(s)" in plan.stdout and "vpcnet-L2-shop-a" in plan.stdout
    assert "leaf leaf2 (vpcnet-leaf): in sync" in plan.stdout
    time.sleep(3)   # a periodic check passes: --fabric-no-repair reports drift and leaves it
    assert mac_vrfs(lab, "leaf1")["vpcnet-L2-shop-a"] == "198.19.255.1:999"
    sync = vpcnet(lab, "fabric", "sync", "leaf1")
    assert sync.returncode == 0 and "1 change(s) applied" in sync.stdout, sync.stdout + sync.stderr
    assert mac_vrfs(lab, "leaf1")["vpcnet-L2-shop-a"] == good
    assert vpcnet(lab, "fabric", "plan", "--detailed-exitcode").returncode == 0


def test_leaf_back_from_restart_with_empty_config_is_resynced(lab):
    before = mac_vrfs(lab, "leaf2")
    assert before
    lab.restart_netconf("leaf2", factory_config=True)
    # the controller's periodic check finds it unreachable while it restarts (or, if the restart
    # was quicker than a check, the drift log names it): it must come back configured by itself
    wait("leaf2 re-synced by the controller", lambda: mac_vrfs(lab, "leaf2") == before, timeout=90)
    log = (lab.run_dir / "logs" / "controller.log").read_text()
    assert "re-syncing leaf2 (came back or reset)" in log, log[-3000:]
