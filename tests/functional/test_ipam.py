"""IPAM behaviour against a real ovsdb-server: what a pod gets, what is refused, what is kept."""
from __future__ import annotations

import time

import netaddr
import pytest

from vpcnet.app import intent
from vpcnet.app.store import StoreError
from tests.conftest import make_store


def objs(*docs):
    return intent.validate_all(list(docs))


def vpc(name, namespaces, vni=None):
    spec = {"namespaces": namespaces}
    if vni:
        spec["vni"] = vni
    return {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": name}, "spec": spec}


def subnet(name, vpc_name, cidr, namespaces, **extra):
    return {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": name},
            "spec": {"vpc": vpc_name, "cidrBlock": cidr, "namespaces": namespaces, **extra}}


def pod(ns, name, **annotations):
    return {"apiVersion": "vpcnet.io/v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations}, "spec": {"nodeName": "node-1"}}


def status(store, ns, name):
    return store.get("Pod", ns, name)["status"]


@pytest.fixture
def cluster(store):
    store.apply(objs(vpc("fin", ["trading", "pay"]), vpc("retail", ["shop"]),
                     subnet("trading-a", "fin", "10.10.0.0/28", ["trading"], excludeIps=["10.10.0.2..10.10.0.5"]),
                     subnet("shop-a", "retail", "10.10.0.0/28,fd00:30::/64", ["shop"])))
    return store


def test_pod_gets_lowest_free_address_never_gateway_or_excluded(cluster):
    cluster.apply(objs(pod("trading", "a")))
    st = status(cluster, "trading", "a")
    assert st["ip"] == "10.10.0.6" and st["gateway"] == "10.10.0.1" and st["vlan"] == 100
    assert st["mac"].startswith("0e:76:70:")
    got = {st["ip"]}
    for i in range(20):
        try:
            cluster.apply(objs(pod("trading", f"p{i}")))
        except StoreError as exc:
            assert "subnet trading-a (10.10.0.0/28, 9 usable addresses) has no free IPv4 address" in str(exc)
            break
        got.add(status(cluster, "trading", f"p{i}")["ip"])
    expected = {str(ip) for ip in netaddr.IPNetwork("10.10.0.0/28")[6:15]}
    assert got == expected  # .0 network, .1 gateway, .2-.5 excluded, .15 broadcast never handed out


def test_same_cidr_in_two_vpcs_is_isolated_and_dual_stack(cluster):
    cluster.apply(objs(pod("trading", "a"), pod("shop", "b")))
    a, b = status(cluster, "trading", "a"), status(cluster, "shop", "b")
    assert a["ip"] == "10.10.0.6"
    assert b["ips"] == ["10.10.0.2", "fd00:30::2"] and b["vpc"] == "retail"


def test_fixed_ip_and_mac_conflicts_are_refused_and_nothing_is_stored(cluster):
    cluster.apply(objs(pod("trading", "a", **{"vpcnet.io/ip_address": "10.10.0.9",
                                              "vpcnet.io/mac_address": "02:00:00:00:00:09"})))
    assert status(cluster, "trading", "a")["mac"] == "02:00:00:00:00:09"
    with pytest.raises(StoreError, match=r"10\.10\.0\.9 is held by trading/a"):
        cluster.apply(objs(pod("trading", "b", **{"vpcnet.io/ip_address": "10.10.0.9"})))
    with pytest.raises(StoreError, match=r"mac 02:00:00:00:00:09 is held by trading/a"):
        cluster.apply(objs(pod("trading", "c", **{"vpcnet.io/mac_address": "02:00:00:00:00:09"})))
    with pytest.raises(StoreError, match=r"10\.10\.0\.3 is in excludeIps"):
        cluster.apply(objs(pod("trading", "d", **{"vpcnet.io/ip_address": "10.10.0.3"})))
    with pytest.raises(StoreError, match=r"is in no subnet of VPC 'fin'"):
        cluster.apply(objs(pod("trading", "e", **{"vpcnet.io/ip_address": "10.99.0.3"})))
    names = [p["metadata"]["name"] for p in cluster.list("Pod", "trading")]
    assert names == ["a"]


def test_multi_document_apply_is_all_or_nothing(cluster):
    with pytest.raises(StoreError):
        cluster.apply(objs(pod("trading", "ok1"), subnet("extra", "fin", "10.20.0.0/24", ["pay"]),
                           pod("trading", "bad", **{"vpcnet.io/ip_address": "10.10.0.1"})))
    assert cluster.list("Pod", "trading") == []
    assert [s["metadata"]["name"] for s in cluster.list("Subnet")] == ["shop-a", "trading-a"]


def test_quarantine_then_reuse_and_same_pod_gets_its_address_back(state_api):
    store = make_store(state_api, quarantine_s=1.0)
    store.apply(objs(vpc("fin", ["t"]), subnet("s", "fin", "10.1.0.0/29", ["t"])))
    store.apply(objs(pod("t", "a"), pod("t", "b")))
    a_ip = status(store, "t", "a")["ip"]
    store.delete([("Pod", "t", "a")])
    store.apply(objs(pod("t", "c")))
    assert status(store, "t", "c")["ip"] != a_ip          # quarantined: not handed to another pod
    store.apply(objs(pod("t", "a")))
    assert status(store, "t", "a")["ip"] == a_ip          # the same pod gets it back at once
    store.delete([("Pod", "t", "a")])
    time.sleep(1.1)
    store.apply(objs(pod("t", "d")))
    assert status(store, "t", "d")["ip"] == a_ip          # after the quarantine it is lowest-free again
    history = store.ip_history(a_ip)
    assert [h["owner"] for h in history] == ["t/a", "t/a", "t/d"]
    assert history[0]["to_ms"] is not None and history[-1]["to_ms"] is None


def test_ip_pool_gives_statefulset_pods_their_ordinal_address(cluster):
    pool = "10.10.0.10,10.10.0.11,10.10.0.12"
    cluster.apply(objs(pod("trading", "db-1", **{"vpcnet.io/ip_pool": pool}),
                       pod("trading", "db-0", **{"vpcnet.io/ip_pool": pool})))
    assert status(cluster, "trading", "db-0")["ip"] == "10.10.0.10"
    assert status(cluster, "trading", "db-1")["ip"] == "10.10.0.11"
    cluster.delete([("Pod", "trading", "db-1")])
    cluster.apply(objs(pod("trading", "db-1", **{"vpcnet.io/ip_pool": pool})))
    assert status(cluster, "trading", "db-1")["ip"] == "10.10.0.11"


def test_online_growth_and_subnet_guards(cluster):
    cluster.apply(objs(*[pod("trading", f"p{i}") for i in range(9)]))
    with pytest.raises(StoreError, match="no free IPv4 address"):
        cluster.apply(objs(pod("trading", "full")))
    before = {p["metadata"]["name"]: p["status"]["ip"] for p in cluster.list("Pod", "trading")}
    cluster.apply(objs(subnet("trading-a", "fin", "10.10.0.0/28,10.10.1.0/28", ["trading"],
                              excludeIps=["10.10.0.2..10.10.0.5"])))
    cluster.apply(objs(pod("trading", "full")))
    st = status(cluster, "trading", "full")
    assert st["ip"] == "10.10.1.2" and st["gateway"] == "10.10.1.1"
    after = {p["metadata"]["name"]: p["status"]["ip"] for p in cluster.list("Pod", "trading") if p["metadata"]["name"] != "full"}
    assert after == before
    with pytest.raises(StoreError, match=r"overlaps 10\.10\.1\.0/28 of Subnet/trading-a"):
        cluster.apply(objs(subnet("other", "fin", "10.10.1.0/24", ["pay"])))
    with pytest.raises(StoreError, match=r"cannot remove 10\.10\.1\.0/28: 1 addresses in use"):
        cluster.apply(objs(subnet("trading-a", "fin", "10.10.0.0/28", ["trading"],
                                  excludeIps=["10.10.0.2..10.10.0.5"])))
    with pytest.raises(StoreError, match=r"cannot delete: 10 pods still hold addresses"):
        cluster.delete([("Subnet", "", "trading-a")])
    with pytest.raises(StoreError, match=r"cannot change from None to '10.10.0.7'"):
        cluster.apply(objs(pod("trading", "p0", **{"vpcnet.io/ip_address": "10.10.0.7"})))


def test_subnet_vlan_and_vni_are_allocated_and_unique(cluster):
    subnets = {s["metadata"]["name"]: s["status"] for s in cluster.list("Subnet")}
    assert {s["vlan"] for s in subnets.values()} == {100, 101}
    with pytest.raises(StoreError, match=r"spec.vlan: 100 is already used by Subnet/"):
        cluster.apply(objs(subnet("x", "fin", "10.50.0.0/24", ["pay"], vlan=100)))
    with pytest.raises(StoreError, match=r"'trading' already belongs to Vpc/fin"):
        cluster.apply(objs(vpc("thief", ["trading"])))


def test_cni_path_creates_unknown_pod_in_namespace_default_subnet(cluster):
    st = cluster.ensure_pod("trading", "sandbox-1", "node-7")
    assert st["subnet"] == "trading-a" and st["node"] == "node-7" and st["ip"] == "10.10.0.6"
    assert cluster.ensure_pod("trading", "sandbox-1", "node-7")["ip"] == "10.10.0.6"  # idempotent
    with pytest.raises(StoreError, match="belongs to no VPC"):
        cluster.ensure_pod("nowhere", "x", "node-7")
