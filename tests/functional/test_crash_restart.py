"""SIGKILL and restart: committed addresses are never handed out again; a controller on a
150,000-pod database serves its first allocation without syncing everything."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.conftest import ControllerProcess, ROOT
from vpcnet.app import intent
from vpcnet.app.api import Client

STREAM = r"""
import sys
from vpcnet.ovsdb.state.impl_idl import connect
from vpcnet.app.ipam.allocator import Allocator, AllocationRequest
from vpcnet.app.ipam.plan import SubnetPlan
remote, tag = sys.argv[1], sys.argv[2]
api = connect(remote)
allocator = Allocator(api, quarantine_s=60)
plan = SubnetPlan("s", "fin", "10.7.0.0/20")
i = 0
while True:
    lease = allocator.allocate(AllocationRequest(f"ns/{tag}-{i}", "fin", [plan]))
    print(lease.ips[0], flush=True)   # printed only after the transaction committed
    i += 1
"""


def test_sigkill_mid_stream_then_restart_never_reissues(state_db, store):
    store.apply(intent.validate_all([
        {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "fin"}, "spec": {"namespaces": ["ns"]}},
        {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "s"},
         "spec": {"vpc": "fin", "cidrBlock": "10.7.0.0/20", "namespaces": ["ns"]}}]))
    first = subprocess.Popen([sys.executable, "-c", STREAM, state_db, "a"], stdout=subprocess.PIPE, text=True)
    committed = []
    while len(committed) < 300:
        committed.append(first.stdout.readline().strip())
    first.send_signal(signal.SIGKILL)
    rest, _ = first.communicate()
    committed += [line for line in rest.split() if line]
    second = subprocess.Popen([sys.executable, "-c", STREAM, state_db, "b"], stdout=subprocess.PIPE, text=True)
    after = [second.stdout.readline().strip() for _ in range(300)]
    second.kill()
    second.communicate()
    assert not set(committed) & set(after)
    store.allocator.load(["s"])
    rows = [r.ip for r in store.api.tables["Ip"].rows.values() if r.subnet == "s"]
    assert len(rows) == len(set(rows)) and set(committed) <= set(rows)


def test_controller_restart_on_150k_pod_database_serves_first_allocation(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.populate import populate
    state = tmp_path / "ctl"
    state.mkdir()
    ctl = ControllerProcess(state, "--ip-quarantine", "60").wait_ready()
    try:
        populate(f"unix:{state / 'db.sock'}", pods=150_000, subnets=1000, vpcs=100)
    finally:
        ctl.proc.send_signal(signal.SIGKILL)   # crash, leaving its ovsdb-server behind
        ctl.proc.wait()
        ctl.log.close()
    t0 = time.monotonic()
    ctl = ControllerProcess(state).wait_ready()
    try:
        client = Client(f"unix:{ctl.sock}")
        status, body = client.request("POST", "/v1/pods/ensure", {"namespace": "ns-7", "name": "new-pod",
                                                                  "node": "node-1"})
        first_allocation = time.monotonic() - t0
        assert status == 200, body
        # ns-7's subnet sn-7 holds pod-0..pod-149 at .2-.151: the next free address is .152
        assert body["status"]["ip"] == "10.0.7.152" and body["status"]["subnet"] == "sn-7"
        status, body = client.request("GET", "/v1/objects/pods/pod-3?namespace=ns-7")
        assert status == 200 and body["status"]["ip"] == "10.0.7.5"
        print(f"first allocation {first_allocation:.2f}s after controller start on 150k pods")
    finally:
        ctl.stop()
