"""Service cluster IPs and node ports, allocated by the store on a real state database: unique
cluster-wide, kept across re-applies, spec values honoured, clashes refused naming the field."""
from __future__ import annotations

import json
import time

import pytest

from vpcnet.app import intent
from vpcnet.app.store import StoreError


def service(name, cluster_ip=None, node_ports=None, ports=(("http", 80),), kind="NodePort"):
    spec = {"type": kind, "ports": [{"name": n, "port": p, **({"nodePort": node_ports[n]} if node_ports and n in
                                                                node_ports else {})} for n, p in ports]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "web"}, "spec": spec}


def status(store, name) -> dict:
    row = store.row("Service", "web", name)
    return json.loads(row.status)


def test_cluster_ips_and_node_ports_are_allocated_once_and_unique(store):
    store.apply(intent.validate_all([service("a"), service("b", ports=(("http", 80), ("admin", 81)))]))
    a, b = status(store, "a"), status(store, "b")
    assert a["clusterIP"] == "10.96.0.2" and b["clusterIP"] == "10.96.0.3"   # .1 is left out, like the gateway
    assert a["nodePorts"] == {"http": [30000, "TCP"]}
    assert b["nodePorts"] == {"http": [30001, "TCP"], "admin": [30002, "TCP"]}   # in spec order
    store.apply(intent.validate_all([service("a")]))
    assert status(store, "a") == a, "re-apply keeps what was allocated"
    store.apply(intent.validate_all([service("c", cluster_ip="10.96.0.50", node_ports={"http": 31000})]))
    assert status(store, "c") == {"clusterIP": "10.96.0.50", "nodePorts": {"http": [31000, "TCP"]}}
    store.apply(intent.validate_all([service("headless", cluster_ip="None", kind="ClusterIP")]))
    assert status(store, "headless") == {"clusterIP": "None", "nodePorts": {}}


@pytest.mark.parametrize("doc,words", [
    (service("d", cluster_ip="10.96.0.2"), "clusterIP 10.96.0.2 is already"),
    (service("d", node_ports={"http": 30000}), "nodePort 30000/TCP is already in use"),
])
def test_a_taken_cluster_ip_or_node_port_is_refused_and_nothing_is_stored(store, doc, words):
    store.apply(intent.validate_all([service("a")]))
    with pytest.raises(StoreError, match=words):
        store.apply(intent.validate_all([doc]))
    assert store.row("Service", "web", "d") is None


def test_a_change_slower_than_the_connection_timeout_reports_its_real_outcome(state_db):
    """An apply or delete waits for its transaction's outcome (Store.write_timeout), not for the
    connection's timeout meant for small commands: before, a large apply was reported as a
    timeout although it went on to commit every object."""
    from vpcnet.app.ipam.allocator import Allocator
    from vpcnet.app.store import Store
    from vpcnet.ovsdb.state.impl_idl import connect
    api = connect(state_db, timeout=0.3)
    try:
        store = Store(api, Allocator(api))
        objs = intent.validate_all([service(f"s{i}", kind="ClusterIP") for i in range(3000)])
        t0 = time.monotonic()
        results = store.apply(objs)
        took = time.monotonic() - t0
        assert took > 0.3, f"the apply took {took:.2f} s: too fast to show anything, make it bigger"
        assert [r["result"] for r in results] == ["created"] * 3000
        assert len(store.rows("Service", "web")) == 3000
        t0 = time.monotonic()
        deleted = store.delete([("Service", "web", f"s{i}") for i in range(3000)])
        assert time.monotonic() - t0 > 0.3 and [r["result"] for r in deleted] == ["deleted"] * 3000
        assert store.rows("Service", "web") == []
    finally:
        api.stop()
