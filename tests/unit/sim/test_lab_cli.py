"""`vpcnet lab` argument handling (sim/cli.py) without building a lab."""
from __future__ import annotations

import argparse
import subprocess

import pytest

from vpcnet.sim import cli


def parse(argv):
    p = argparse.ArgumentParser(prog="vpcnet")
    cli.add_lab_commands(p.add_subparsers(dest="command", required=True))
    return p.parse_args(argv)


class FakeLab:
    def __init__(self):
        self.calls = []

    def exec(self, target, cmd, capture=True, timeout=60, check=False):
        self.calls.append((target, cmd))
        return subprocess.CompletedProcess(cmd, 0)


@pytest.mark.parametrize("argv", [
    ["lab", "exec", "trading/a", "--name", "zt", "--run-dir", "/r", "--", "ping", "-c1", "10.10.0.2"],
    ["lab", "exec", "--name", "zt", "--run-dir", "/r", "trading/a", "--", "ping", "-c1", "10.10.0.2"],
])
def test_exec_options_before_or_after_the_target(monkeypatch, argv):
    fake = FakeLab()
    seen = {}

    def load(args):
        seen.update(name=args.name, run_dir=args.run_dir)
        return fake
    monkeypatch.setattr(cli, "_load", load)
    args = parse(argv)
    assert args.func(args) == 0
    assert seen == {"name": "zt", "run_dir": "/r"}
    assert fake.calls == [("trading/a", ["ping", "-c1", "10.10.0.2"])]


def test_exec_without_command(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_load", lambda args: FakeLab())
    args = parse(["lab", "exec", "spine"])
    assert args.func(args) == 2


def test_up_defaults_and_errors(capsys, tmp_path):
    args = parse(["lab", "up", "--leaf-kind", "vtep", "--run-dir", str(tmp_path / "r")])
    assert (args.name, args.leaves, args.nodes_per_leaf, args.leaf_kind) == ("vl", 2, 2, "vtep")
    args = parse(["lab", "status", "--name", "nolab", "--run-dir", str(tmp_path / "none")])
    assert args.func(args) == 1
    assert "no lab 'nolab'" in capsys.readouterr().err
    args = parse(["lab", "up", "--name", "Bad_Name"])
    assert args.func(args) == 1
