"""Store.ensure_pods (the CNI ADD's pods/ensure, batched) against a real embedded state database:
one transaction for a burst, per-pod errors kept per pod, and loading slices without leaving the
connection thread spinning."""
from __future__ import annotations

import os
import select

import pytest

from vpcnet.app import intent
from vpcnet.app.ipam.allocator import Allocator
from vpcnet.app.store import Store, StoreError
from vpcnet.ovsdb.server import EmbeddedOvsdbServer
from vpcnet.ovsdb.state.impl_idl import connect
from tests.functional.brint import VPCS


@pytest.fixture
def store(tmp_path):
    server = EmbeddedOvsdbServer(tmp_path / "state")
    api = connect(server.start())
    try:
        st = Store(api, Allocator(api, quarantine_s=60))
        st.apply(intent.validate_all(VPCS, "test"))
        yield st
    finally:
        api.stop()
        server.stop()


def count_transactions(store):
    calls = []
    real = store.allocator.transact

    def transact(build, subnets=()):
        calls.append(subnets)
        return real(build, subnets)
    store.allocator.transact = transact
    return calls


def test_a_burst_is_one_transaction_with_distinct_addresses(store):
    txns = count_transactions(store)
    out = store.ensure_pods([("trading", f"p{i}", "node-1", (), None) for i in range(8)])
    assert len(txns) == 1
    assert all(isinstance(s, dict) for s in out)
    assert len({s["ip"] for s in out}) == 8 and len({s["mac"] for s in out}) == 8
    # what a later ensure (the same pod, e.g. a new sandbox) answers: the same address
    again = store.ensure_pods([("trading", "p3", "node-1", (), None)])[0]
    assert again["ip"] == out[3]["ip"] and len(txns) == 1
    row = store.row("Pod", "trading", "p3")
    assert row is not None and row.node == "node-1"


def test_one_bad_pod_does_not_fail_the_others(store):
    held = store.ensure_pod("trading", "holder", "node-1", ("10.10.0.50",))
    assert held["ip"] == "10.10.0.50"
    txns = count_transactions(store)
    out = store.ensure_pods([
        ("trading", "ok-1", "node-1", (), None),
        ("trading", "thief", "node-1", ("10.10.0.50",), None),      # held by another pod
        ("nowhere", "lost", "node-1", (), None),                     # namespace in no VPC
        ("trading", "ok-2", "node-1", (), None),
        ("trading", "ok-1", "node-1", (), None),                     # the same pod twice
    ])
    assert isinstance(out[0], dict) and isinstance(out[3], dict) and out[4] == out[0]
    assert isinstance(out[1], StoreError) and "10.10.0.50" in str(out[1]) and "Pod/trading/thief" in str(out[1])
    assert isinstance(out[2], StoreError) and "belongs to no VPC" in str(out[2])
    assert len(txns) >= 2                                             # the batch, then one by one
    assert store.row("Pod", "trading", "thief") is None               # nothing half-written
    with pytest.raises(StoreError):
        store.ensure_pod("trading", "thief", "node-1", ("10.10.0.50",))


def test_loading_slices_leaves_the_connection_thread_idle(store):
    store.ensure_pods([("payments", "x", "node-1", (), None), ("shop", "y", "node-1", (), None)])
    conn = store.api.ovsdb_connection
    # a wake-up byte nobody consumes would keep the connection thread's poll loop spinning
    assert select.select([conn.txns.alert_fileno], [], [], 0.2)[0] == []
    before = os.times()
    import time
    time.sleep(0.5)
    after = os.times()
    assert (after.user + after.system) - (before.user + before.system) < 0.2
