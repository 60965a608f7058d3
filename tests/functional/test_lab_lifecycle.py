"""Lab lifecycle edge cases: a failing `up` tears itself down; `down` without a state file (a
crashed `up`) still removes everything by naming scheme and run-dir pidfiles; `up` refuses a lab
that exists. Needs root."""
from __future__ import annotations

import os
import time

import pytest

from tests.functional.test_lab_fabric import _lab_processes
from vpcnet.sim import frr as frrmod
from vpcnet.sim import lab_net
from vpcnet.sim.lab import Lab
from vpcnet.sim.lab_net import LabError


def assert_nothing_left(lab: Lab) -> None:
    assert [ns for ns in lab_net.list_netns() if lab.topo.owns_netns(ns)] == []
    deadline = time.monotonic() + 10
    while _lab_processes(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _lab_processes(lab) == []
    metric = lab_net.lab_metric(lab.name)
    for fam in ("-4", "-6"):
        assert f"metric {metric}" not in lab_net.run("ip", fam, "route", "show", "proto", lab_net.ROUTE_PROTO)
    for ps in lab.topo.frr_pathspaces():
        assert not (frrmod.FRR_ETC / ps).exists() and not (frrmod.FRR_RUN / ps).exists()
    assert not lab.run_dir.exists()


class Injected(RuntimeError):
    pass


def _fail_at_bgp(monkeypatch):
    def boom(self):
        raise Injected("injected failure while waiting for BGP")
    monkeypatch.setattr(Lab, "_wait_bgp", boom)


def test_failed_up_tears_itself_down(tmp_path, monkeypatch):
    _fail_at_bgp(monkeypatch)
    lab = Lab(f"f{os.getpid() % 100000}", tmp_path / "run", leaves=1, nodes_per_leaf=1)
    with pytest.raises(Injected):
        lab.up()
    assert_nothing_left(lab)


def test_down_without_state_file(tmp_path, monkeypatch):
    _fail_at_bgp(monkeypatch)
    name = f"s{os.getpid() % 100000}"
    lab = Lab(name, tmp_path / "run", leaves=1, nodes_per_leaf=1)
    with pytest.raises(Injected):
        lab.up(keep_on_failure=True)
    assert Lab.load(name, tmp_path / "run").state["phase"] == "failed"
    with pytest.raises(LabError, match="already"):
        Lab(name, tmp_path / "run", leaves=1, nodes_per_leaf=1).up()
    assert _lab_processes(lab)
    (lab.run_dir / "lab.json").unlink()            # as if `up` had crashed before saving
    fresh = Lab(name, tmp_path / "run")             # default sizes: down must not depend on them
    assert fresh.down() == []
    assert_nothing_left(fresh)
    assert fresh.down() == []


def test_down_after_the_run_dir_vanished(tmp_path):
    """pytest prunes old temporary directories, and people delete /run/vpcnet-lab/NAME: the state
    file and every pidfile go with it while the lab runs. `down` still finds the lab's processes
    (inside its namespaces, or naming its run directory) and leaves nothing behind."""
    import shutil
    name = f"g{os.getpid() % 100000}"
    lab = Lab(name, tmp_path / "run", leaves=1, nodes_per_leaf=1)
    lab.up()
    shutil.rmtree(lab.run_dir)
    assert _lab_processes(lab)                      # the lab runs on without its records
    assert Lab(name, tmp_path / "run", leaves=1, nodes_per_leaf=1).down() == []
    assert_nothing_left(lab)
