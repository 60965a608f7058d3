"""vpcnet-cni end to end, exec'd exactly as containerd does, against a real node daemon, a real
controller and a real netdev br-int; pods are real network namespaces. Needs root."""
from __future__ import annotations

import concurrent.futures
import signal
import time

import netaddr
import pytest

from tests.functional.cni_env import CNI_VERSIONS, CniNode


@pytest.fixture
def node(tmp_path):
    n = CniNode(tmp_path)
    try:
        yield n
    finally:
        n.stop()


def result_ip(result: dict) -> str:
    return str(netaddr.IPNetwork(result["ips"][0]["address"]).ip)


def test_every_version_add_check_del_and_pods_talk(node):
    baseline = node.inventory()
    pods = []
    for i, version in enumerate(CNI_VERSIONS):
        netns = node.new_netns(f"p{i}")
        cid = f"c{i:02d}" + "a" * 20
        rc, out, err = node.cni("ADD", cid, netns, pod=("trading", f"web-{i}"), version=version)
        assert rc == 0, (out, err)
        assert out["cniVersion"] == version
        assert out["ips"][0]["address"].startswith("10.10.0.")
        if version.startswith("0.3"):
            assert out["ips"][0]["version"] == "4"
        pods.append((cid, netns, result_ip(out), version, out))
    first_ip = pods[0][2]
    for cid, netns, ip, version, out in pods[1:]:
        assert node.ping(netns, first_ip), f"{version}: pod {ip} cannot reach {first_ip}"
    for cid, netns, ip, version, out in pods:   # br-int answers for the gateway the result names
        gateway = out["ips"][0]["gateway"]
        assert gateway == "10.10.0.1", out
        assert node.ping(netns, gateway), f"{version}: pod {ip} cannot ping its gateway {gateway}"
    for i, (cid, netns, ip, version, out) in enumerate(pods):
        if version in ("0.4.0", "1.0.0", "1.1.0"):   # CHECK exists from 0.4.0 on
            rc, res, err = node.cni("CHECK", cid, netns, pod=("trading", f"web-{i}"), version=version,
                                    extra={"prevResult": out})
            assert rc == 0, (res, err)
    # a CHECK that must fail: the address was removed behind our back
    cid, netns, ip, version, out = pods[-1]
    node.in_ns(netns, "ip", "addr", "flush", "dev", "eth0")
    rc, res, _ = node.cni("CHECK", cid, netns, pod=("trading", f"web-{len(pods) - 1}"), version=version,
                          extra={"prevResult": out})
    assert rc != 0 and ip in res["msg"]
    for i, (cid, netns, ip, version, out) in enumerate(pods):
        rc, res, err = node.cni("DEL", cid, netns, pod=("trading", f"web-{i}"), version=version)
        assert rc == 0, (res, err)
    assert node.inventory() == baseline
    # DEL again, without CNI_NETNS, with the netns gone, with no record at all: all succeed
    cid, netns, *_ = pods[0]
    assert node.cni("DEL", cid, netns, pod=("trading", "web-0"))[0] == 0
    assert node.cni("DEL", cid, "", pod=("trading", "web-0"))[0] == 0
    assert node.cni("DEL", "never-added-0000", "/var/run/netns/does-not-exist", pod=("trading", "ghost"))[0] == 0
    assert node.inventory() == baseline


def test_fixed_ip_and_mac_from_runtime_config(node):
    netns = node.new_netns("fixed")
    rc, out, err = node.cni("ADD", "fixed0000000001", netns, pod=("payments", "ledger-0"),
                            extra={"runtimeConfig": {"ips": ["10.20.0.77/24"], "mac": "02:00:00:00:77:77"}})
    assert rc == 0, (out, err)
    assert out["ips"][0]["address"] == "10.20.0.77/24"
    assert out["interfaces"][1]["mac"] == "02:00:00:00:77:77"
    link = node.in_ns(netns, "ip", "-o", "link", "show", "eth0").stdout
    assert "02:00:00:00:77:77" in link


def test_duplicate_add_and_bad_input_leave_nothing_behind(node):
    baseline = node.inventory()
    netns = node.new_netns("dup")
    assert node.cni("ADD", "dup000000000001", netns, pod=("trading", "dup"))[0] == 0
    after_first = node.inventory()
    rc, out, _ = node.cni("ADD", "dup000000000001", netns, pod=("trading", "dup"))
    assert rc != 0 and "already" in out["msg"]
    assert node.inventory() == after_first
    cases = [
        ({"CNI_IFNAME": "x" * 16}, 4, "CNI_IFNAME"),
        ({"CNI_CONTAINERID": "-bad id"}, 4, "CNI_CONTAINERID"),
        ({"CNI_NETNS": None}, 4, "CNI_NETNS"),
        ({"CNI_ARGS": "K8S_POD_NAMESPACE=trading"}, 4, "K8S_POD_NAME"),
    ]
    for override, code, word in cases:
        rc, out, _ = node.cni("ADD", "bad000000000001", node.new_netns("bad"), pod=("trading", "bad"),
                              env_override=override)
        assert rc == 1 and out["code"] == code and word in out["msg"], (override, out)
    rc, out, _ = node.cni("ADD", "bad000000000002", netns, pod=("trading", "bad2"), stdin="{not json")
    assert rc == 1 and out["code"] == 6
    rc, out, _ = node.cni("ADD", "bad000000000003", netns, pod=("trading", "bad3"), version="9.9.9")
    assert rc == 1 and out["code"] == 1
    # a second interface name in the same netns collides with nothing, but eth0 does
    rc, out, _ = node.cni("ADD", "clash0000000001", netns, pod=("trading", "clash"))
    assert rc != 0 and "eth0" in out["msg"]
    assert node.inventory() == after_first
    assert node.cni("DEL", "dup000000000001", netns, pod=("trading", "dup"))[0] == 0
    assert node.inventory() == baseline


def test_status_and_gc(node):
    deadline = time.monotonic() + 20   # OVS reports the controller connection a moment after it is up
    while (status := node.cni("STATUS", ifname=""))[0] != 0:
        assert status[1]["code"] == 50 and time.monotonic() < deadline, status
        time.sleep(0.5)
    keep, drop = node.new_netns("keep"), node.new_netns("drop")
    assert node.cni("ADD", "keep00000000001", keep, pod=("trading", "keep"))[0] == 0
    assert node.cni("ADD", "drop00000000001", drop, pod=("trading", "drop"))[0] == 0
    rc, out, err = node.cni("GC", ifname="", extra={"cni.dev/valid-attachments": [
        {"containerID": "keep00000000001", "ifname": "eth0"}]})
    assert rc == 0, (out, err)
    inv = node.inventory()
    assert inv["pods"] == ["trading/keep"] and len(inv["ports"]) == 1 and len(inv["veths"]) == 1
    node.ctl.stop()
    rc, out, _ = node.cni("STATUS", ifname="")
    assert rc == 1 and out["code"] == 50


def test_fifty_parallel_adds_then_dels(node):
    baseline = node.inventory()
    jobs = [(f"par{i:04d}" + "b" * 16, node.new_netns(f"par{i}"), ("trading", f"par-{i}")) for i in range(50)]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        adds = list(pool.map(lambda j: node.cni("ADD", j[0], j[1], pod=j[2]), jobs))
    assert all(rc == 0 for rc, _, _ in adds), [a for a in adds if a[0] != 0][:3]
    ips = [result_ip(out) for _, out, _ in adds]
    assert len(set(ips)) == 50
    assert node.ping(jobs[0][1], ips[-1])
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        dels = list(pool.map(lambda j: node.cni("DEL", j[0], j[1], pod=j[2]), jobs))
    assert all(rc == 0 for rc, _, _ in dels)
    assert node.inventory() == baseline


def test_daemon_killed_mid_add_then_del_and_gc_clean_up(node):
    baseline = node.inventory()
    for command in ("DEL", "GC"):
        netns = node.new_netns(f"kill-{command}")
        cid = f"kill{command.lower()}" + "c" * 16
        records = node.tmp / "node" / "attachments"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(node.cni, "ADD", cid, netns, pod=("trading", f"kill-{command.lower()}"))
            deadline = time.monotonic() + 10
            while not any(records.glob(f"{cid}-*.json")):
                assert time.monotonic() < deadline
                time.sleep(0.001)
            node.daemon.send_signal(signal.SIGKILL)
            node.daemon.wait()
            rc, out, _ = fut.result()
        assert rc == 1 and out["code"] == 11
        node.start_daemon()
        if command == "DEL":
            rc, out, err = node.cni("DEL", cid, netns, pod=("trading", f"kill-{command.lower()}"))
        else:
            rc, out, err = node.cni("GC", ifname="", extra={"cni.dev/valid-attachments": []})
        assert rc == 0, (out, err)
        assert node.inventory() == baseline, command


def test_daemon_restart_keeps_attachments_and_never_reissues(node):
    baseline = node.inventory()
    pods = []
    for i in range(2):
        netns = node.new_netns(f"rs{i}")
        rc, out, err = node.cni("ADD", f"restart{i}" + "d" * 12, netns, pod=("trading", f"rs-{i}"))
        assert rc == 0, (out, err)
        pods.append((f"restart{i}" + "d" * 12, netns, out))
    node.kill_daemon()
    node.start_daemon()
    for i, (cid, netns, out) in enumerate(pods):
        rc, res, err = node.cni("CHECK", cid, netns, pod=("trading", f"rs-{i}"), extra={"prevResult": out})
        assert rc == 0, (res, err)
    netns = node.new_netns("rs-new")
    rc, out, err = node.cni("ADD", "restartnew" + "d" * 12, netns, pod=("trading", "rs-new"))
    assert rc == 0, (out, err)
    assert result_ip(out) not in {result_ip(p[2]) for p in pods}
    assert node.ping(netns, result_ip(pods[0][2]))
    for i, (cid, netns_i, _) in enumerate(pods):
        assert node.cni("DEL", cid, netns_i, pod=("trading", f"rs-{i}"))[0] == 0
    assert node.cni("DEL", "restartnew" + "d" * 12, netns, pod=("trading", "rs-new"))[0] == 0
    assert node.inventory() == baseline
