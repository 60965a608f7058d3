"""Shared fixtures: every test gets its own real ovsdb-server in a private temporary directory."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpcnet.app.ipam.allocator import Allocator
from vpcnet.app.store import Store
from vpcnet.ovsdb.server import EmbeddedOvsdbServer
from vpcnet.ovsdb.state.impl_idl import connect

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def state_db(tmp_path):
    server = EmbeddedOvsdbServer(tmp_path / "state")
    remote = server.start()
    yield remote
    server.stop()


@pytest.fixture
def state_api(state_db):
    api = connect(state_db)
    yield api
    api.stop()


def make_store(api, quarantine_s=60.0):
    return Store(api, Allocator(api, quarantine_s=quarantine_s))


@pytest.fixture
def store(state_api):
    return make_store(state_api)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControllerProcess:
    """A real `vpcnet controller` process on a private state dir."""

    def __init__(self, state_dir: Path, *extra: str):
        self.state_dir = state_dir
        if "--of-listen" not in extra:
            self.of_port = free_port()
            extra = (*extra, "--of-listen", f"127.0.0.1:{self.of_port}")
        self.sock = state_dir / "api.sock"
        self.log = open(state_dir.parent / f"controller-{time.time_ns()}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "vpcnet.app.cli", "controller",
                                      "--state-dir", str(state_dir), *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=60.0):
        from vpcnet.app.api import Client
        deadline = time.monotonic() + timeout
        while True:  # a SIGKILLed controller leaves its socket file: ask the API, not the file system
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited: {open(self.log.name).read()}")
            if time.monotonic() > deadline:
                raise TimeoutError(open(self.log.name).read())
            try:
                if Client(f"unix:{self.sock}", timeout=2).request("GET", "/v1/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def controller(tmp_path):
    state = tmp_path / "ctl"
    state.mkdir()
    ctl = ControllerProcess(state, "--ip-quarantine", "60").wait_ready()
    yield ctl
    ctl.stop()


def vpcnet_cli(ctl: ControllerProcess, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "vpcnet.app.cli", "--state-dir", str(ctl.state_dir), *args],
                          capture_output=True, text=True, input=input, env=env, timeout=120)
