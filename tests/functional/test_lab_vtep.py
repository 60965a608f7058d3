"""Same connectivity with hardware-VTEP leaves (issue acceptance), as a user would run it.

``Lab(leaf_kind="vtep", leaves=2, nodes_per_leaf=1)``: each leaf is an ovs-vtep emulator on a
netdev bridge (physical ports = the node trunks), its hardware_vtep database served on a unix
socket the controller syncs (app/fabric_vtep.py); underlay by static routes through the spine.
The examples' VPCs, namespaces and subnets are applied through the API, pods are created through
vpcnet-cni on both leaves, and the test checks: same-subnet pods on different leaves ping (L2 over
VXLAN between the emulated VTEPs), same-VPC pods in other subnets ping (br-int routes), other
VPCs do not; the VTEP databases hold the Logical_Switches / bindings / remote MACs; a deleted
pod's remote MAC leaves the other VTEP; ``down`` leaves nothing. Needs root.

Timings (bring-up, first cross-leaf ping after ADD) are printed: run with -s to see them.
"""
from __future__ import annotations

import os
import time

from tests.functional.test_lab_lifecycle import assert_nothing_left
from vpcnet.app.intent.manifest import load_path
from vpcnet.sim import lab_net
from vpcnet.sim.demo import EXAMPLES, INTENT_FILES
from vpcnet.sim.lab import Lab

# (namespace, pod, leaf): trading-a on both leaves (L2 over VXLAN), payments-a (same VPC finance,
# other subnet) and shop-a (VPC retail) on leaf 2.
PODS = (("trading", "t1", 1), ("trading", "t2", 2), ("payments", "p2", 2), ("shop", "s2", 2))


def _ping(lab: Lab, src: str, ip: str, count: int = 2) -> bool:
    r = lab.exec(src, ["ping", "-c", str(count), "-i", "0.3", "-W", "1", "-q", ip], timeout=20)
    return r.returncode == 0


def _remote_macs(lab: Lab, leaf: str, ls: str) -> dict[str, str]:
    out = lab.vtep(leaf).vtep_ctl("list-remote-macs", ls)
    macs = {}
    for line in out.split("mcast-mac-remote")[0].splitlines():
        if "->" in line:
            mac, _, loc = line.strip().partition(" -> ")
            macs[mac] = loc
    return macs


def test_vtep_lab_same_connectivity(tmp_path):
    name = f"vt{os.getpid() % 100000}"
    lab = Lab(name, tmp_path / "run", leaves=2, nodes_per_leaf=1, leaf_kind="vtep", log=print)
    t0 = time.monotonic()
    try:
        timings = lab.up()
        up_s = time.monotonic() - t0
        print(f"\nVTEP lab up in {up_s:.2f} s: {timings}")
        client = lab.client()
        docs = [d for f in INTENT_FILES for d in load_path(EXAMPLES / f)]
        status, payload = client.request("POST", "/v1/apply", {"documents": docs})
        assert status == 200, payload

        # the controller syncs the VTEPs (intent change, debounced); the explicit sync is then a no-op
        # or applies what the background pass has not yet
        status, payload = client.request("POST", "/v1/fabric/sync", {})
        assert status == 200, payload
        reports = {r["leaf"]: r for r in payload["leaves"]}
        assert sorted(reports) == ["leaf1", "leaf2"]
        assert all(r["model"] == "hardware_vtep" and not r["error"] for r in reports.values()), reports

        lss = {"trading-a": "vpcnet-ls-trading-a", "payments-a": "vpcnet-ls-payments-a",
               "shop-a": "vpcnet-ls-shop-a"}
        for leaf in ("leaf1", "leaf2"):
            v = lab.vtep(leaf)
            assert sorted(v.vtep_ctl("list-ls").split()) == sorted(lss.values())
            bindings = v.vtep_ctl("list-bindings", leaf, "swp1")
            for ls in lss.values():
                assert ls in bindings, bindings
            assert v.vtep_ctl("get", "Logical_Switch", lss["trading-a"], "tunnel_key").strip() == "10100"

        ips: dict[str, str] = {}
        macs: dict[str, str] = {}
        first_ping = None
        for ns, pod, leaf in PODS:
            node = f"{name}-n{leaf}-1"
            status, payload = client.request("POST", "/v1/apply", {"documents": [
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns},
                 "spec": {"nodeName": node}}]})
            assert status == 200, payload
            t_add = time.monotonic()
            lab.add_pod(ns, pod, node)
            st = client.request("GET", f"/v1/objects/pods/{pod}?namespace={ns}")[1]["status"]
            ips[pod], macs[pod] = st["ips"][0].split("/")[0], st["mac"]
            if pod == "t2":   # first cross-leaf pair: t1 (leaf1) -> t2 (leaf2), same subnet
                lab_net.wait_for("t1 -> t2 across the VTEPs", lambda: _ping(lab, "trading/t1", ips["t2"], 1),
                                 timeout=60, interval=0.2)
                first_ping = time.monotonic() - t_add
                print(f"first cross-leaf ping {first_ping:.2f} s after the ADD of t2")

        # remote MACs: each VTEP knows the pods behind the other one
        lab_net.wait_for("t2's MAC on leaf1", lambda: _remote_macs(lab, "leaf1", lss["trading-a"]).get(macs["t2"])
                         == "vxlan_over_ipv4/198.19.255.2", timeout=30)
        # each pod's MAC reaches the other VTEP in its own (debounced) sync pass: wait for each
        lab_net.wait_for("t1's MAC on leaf2", lambda: _remote_macs(lab, "leaf2", lss["trading-a"]).get(macs["t1"])
                         == "vxlan_over_ipv4/198.19.255.1", timeout=30)
        lab_net.wait_for("p2's MAC on leaf1", lambda: macs["p2"] in _remote_macs(lab, "leaf1", lss["payments-a"]),
                         timeout=30)

        # same subnet across leaves (L2 over VXLAN), same VPC other subnet (br-int routes), other VPC: no
        assert _ping(lab, "trading/t1", ips["t2"]) and _ping(lab, "trading/t2", ips["t1"])
        assert _ping(lab, "trading/t1", ips["p2"]) and _ping(lab, "payments/p2", ips["t1"])
        assert not _ping(lab, "trading/t1", ips["s2"]) and not _ping(lab, "shop/s2", ips["t1"])
        local = lab.vtep("leaf1").vtep_ctl("list-local-macs", lss["trading-a"])
        assert macs["t1"] in local, local   # ovs-vtep learnt t1 on swp1 (Ucast_Macs_Local)

        # the controller reports the VTEPs in plan (in sync now)
        status, payload = client.request("GET", "/v1/fabric/plan")
        assert status == 200 and all(not r["changes"] and not r["error"] for r in payload["leaves"]), payload

        # a deleted pod's MAC leaves the other VTEP (Pod row change -> debounced VTEP sync)
        t_del = time.monotonic()
        lab.del_pod("trading", "t2")
        status, payload = client.request("POST", "/v1/delete", {"refs": [
            {"kind": "Pod", "namespace": "trading", "name": "t2"}]})
        assert status == 200, payload
        lab_net.wait_for("t2's MAC gone from leaf1", lambda: macs["t2"] not in _remote_macs(
            lab, "leaf1", lss["trading-a"]), timeout=30)
        print(f"remote MAC removed {time.monotonic() - t_del:.2f} s after the DEL")
        assert macs["t1"] in _remote_macs(lab, "leaf2", lss["trading-a"])
    finally:
        problems = lab.down()
    assert problems == []
    assert_nothing_left(lab)
