"""The lab's EVPN fabric end to end: `Lab.up()` (2 leaves x 1 node, unique name, tmp run dir),
a vpcnet-leaf configuration pushed to both leaves, test hosts on the leaves' fabric bridges,
L2 across leaves over VNI 10100 through the spine, EVPN type-2 routes, VLAN isolation, the leaf
agent tearing a VNI down again, and `down()` leaving nothing behind. Needs root.

Timings (bring-up, BGP Established, first L2 ping) are printed; run with -s to see them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpcnet.flows.inputs import node_router_mac, router_mac
from vpcnet.sim import frr as frrmod
from vpcnet.sim import lab_net, leafagent
from vpcnet.sim.lab import Lab

NS = "urn:vpcnet:yang:leaf"
VLAN, VNI = 100, 10100
TIMINGS: dict[str, float] = {}


def leaf_config(lf, vlans=((VLAN, VNI),)) -> str:
    mvs = "".join(f"<mac-vrf><name>s{v}</name><vlan>{v}</vlan><vni>{x}</vni></mac-vrf>" for v, x in vlans)
    allowed = "".join(f"<allowed-vlan>{v}</allowed-vlan>" for v, _ in vlans)
    itfs = "".join(f"<interface><name>{p}</name>{allowed}</interface>" for p in lf.ports)
    return (f'<leaf xmlns="{NS}"><vtep><source-address>{lf.vtep}</source-address></vtep>{itfs}{mvs}'
            f"<bgp><asn>{lf.asn}</asn><neighbor><address>{lf.spine_ip}</address><remote-as>65000</remote-as>"
            f"</neighbor></bgp></leaf>")


PUSH = r"""
import sys
from ncclient import manager
host, key, body = sys.argv[1], sys.argv[2], sys.stdin.read()
cfg = '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">'
with manager.connect(host=host, port=830, username="root", key_filename=key, allow_agent=False,
                     look_for_keys=False, hostkey_verify=False, timeout=20) as m:
    target = "candidate" if ":candidate" in " ".join(m.server_capabilities) else "running"
    if body.strip():
        m.edit_config(target=target, config=cfg + body.replace('<leaf xmlns', '<leaf nc:operation="replace" xmlns', 1)
                      + '</config>')
    else:   # no body: remove the whole container
        m.edit_config(target=target, config=cfg + '<leaf xmlns="urn:vpcnet:yang:leaf" nc:operation="remove"/></config>')
    if target == "candidate":
        m.commit()
"""


def push(lab: Lab, lf, body: str) -> str:
    """Configure a leaf like the controller would: NETCONF from the management namespace when the
    lab has NETCONF servers, else the leaf agent's apply function directly. Returns the method."""
    rec = lab.state["netconf"].get(lf.name, {})
    if rec.get("key") and f"agent:{lf.name}" in lab.state["procs"]:
        before = _agent_generation(lab, lf)
        r = subprocess.run(["ip", "netns", "exec", lab.topo.mgmt_netns, sys.executable, "-c", PUSH, lf.mgmt_ip,
                            rec["key"]], input=body, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        lab_net.wait_for(f"{lf.name}'s agent to apply", lambda: _agent_generation(lab, lf) > before, timeout=30)
        status = _agent_status(lab, lf)
        assert status["state"] == "ok", status
        return "netconf"
    ex = leafagent.Executor(lf.netns, f"unix:{lab.leaf_dir(lf) / 'ovs' / 'db.sock'}", lf.netns)
    leafagent.apply_config(ex, body)
    return "apply_config"


def _agent_status(lab, lf) -> dict:
    try:
        return json.loads((lab.leaf_dir(lf) / "agent" / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _agent_generation(lab, lf) -> int:
    return _agent_status(lab, lf).get("generation", 0)


def ping(lab: Lab, src: str, dst_ip: str, count: int = 1) -> bool:
    return lab.exec(src, ["ping", "-c", str(count), "-W", "1", "-i", "0.2", dst_ip], timeout=20).returncode == 0


def macip_routes(lab: Lab, leaf: str) -> dict[str, set[str]]:
    """MAC -> next hops of the type-2 routes in a leaf's BGP EVPN table."""
    data = lab.frr(leaf).vtysh_json("show bgp l2vpn evpn route type macip json")
    out: dict[str, set[str]] = {}
    for rd, routes in data.items():
        if not isinstance(routes, dict):
            continue
        for prefix, info in routes.items():
            if not prefix.startswith("[2]") or not isinstance(info, dict):
                continue
            for path in info.get("paths", []):
                for p in path if isinstance(path, list) else [path]:
                    mac = p.get("mac") or prefix.split("]:[")[3].strip("[]")   # [2]:[0]:[48]:[MAC]...
                    for nh in p.get("nexthops", []):
                        out.setdefault(mac, set()).add(nh.get("ip"))
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    name = f"t{os.getpid() % 100000}"
    lab = Lab(name, tmp_path_factory.mktemp("lab") / "run", leaves=2, nodes_per_leaf=1)
    t0 = time.monotonic()
    lab.up()
    TIMINGS["bring_up_s"] = time.monotonic() - t0
    TIMINGS["bgp_established_after_frr_start_s"] = lab.state["timings"]["bgp_established_after_frr_start"]
    try:
        yield lab
    finally:
        lab.down()
        print("\nlab timings:", json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}), file=sys.stderr)


def test_guard_routes_and_bgp_first(lab):
    for r in lab.state["routes"]:
        assert lab_net.guard_present(r["prefix"], r["metric"]), r
    # root namespace: a lab address is unreachable, never sent to the default route
    probe = subprocess.run(["ip", "route", "get", "198.18.1.1"], capture_output=True, text=True)
    assert probe.returncode != 0 and "no route to host" in probe.stderr.lower()
    spine = lab.frr("spine").bgp_states()
    assert spine == {lf.underlay_ip: "Established" for lf in lab.topo.leaf_plans}
    assert "vpcnet-leaf" in lab.leaf_doc(lab.topo.leaf(1))["spec"]["model"]
    st = lab.status()
    assert all(st["netns"].values()) and all(p["alive"] for p in st["processes"].values())


def test_l2vni_between_leaves(lab):
    l1, l2 = lab.topo.leaf(1), lab.topo.leaf(2)
    t0 = time.monotonic()
    methods = {push(lab, lf, leaf_config(lf)) for lf in (l1, l2)}
    TIMINGS["config_applied_s"] = time.monotonic() - t0
    ha = lab.add_host("ha", 1, VLAN, "10.10.0.201/24")
    hb = lab.add_host("hb", 2, VLAN, "10.10.0.202/24")
    t1 = time.monotonic()
    lab_net.wait_for("first L2 ping leaf1 -> leaf2", lambda: ping(lab, "ha", "10.10.0.202"), timeout=30, interval=0.05)
    TIMINGS["first_l2_ping_after_hosts_s"] = time.monotonic() - t1
    TIMINGS["first_l2_ping_after_config_s"] = time.monotonic() - t0
    assert ping(lab, "hb", "10.10.0.201", count=3)
    # full-size frames: the underlay MTU (9000) absorbs VXLAN's 50 bytes
    assert lab.exec("ha", ["ping", "-c1", "-W2", "-M", "do", "-s", "1472", "10.10.0.202"]).returncode == 0
    # EVPN: both leaves have type-2 routes for both MACs, remote ones with the other leaf's VTEP
    # as next hop (the spine keeps next hops unchanged)
    def both_macs():
        r1, r2 = macip_routes(lab, "leaf1"), macip_routes(lab, "leaf2")
        return r1.get(hb["mac"]) == {l2.vtep} and r2.get(ha["mac"]) == {l1.vtep} and \
            ha["mac"] in r1 and hb["mac"] in r2 and (r1, r2)
    r1, r2 = lab_net.wait_for("type-2 routes for both MACs", both_macs, timeout=20)
    vni = lab.frr("leaf1").vtysh_json(f"show evpn vni {VNI} json")
    assert vni["vni"] == VNI and l2.vtep in vni["numRemoteVteps"], vni   # FRR 8.4: a list
    print(f"\nconfigured via {methods}; type-2 on leaf1: {r1}", file=sys.stderr)


def test_unmapped_vlan_does_not_pass(lab):
    lab.add_host("hc", 1, 200, "10.10.0.211/24")
    lab.add_host("hd", 2, 200, "10.10.0.212/24")
    assert not ping(lab, "hc", "10.10.0.212", count=2)
    assert not ping(lab, "hc", "10.10.0.202", count=1)   # nor does it leak into VLAN 100
    # the node trunks carry only the allowed VLANs: OVS drops VLAN 200 from swp1, forwards 100
    ovs = lab.ovs(lab.topo.leaf(1).netns)
    dropped = ovs.appctl("ofproto/trace", "fabric", "in_port=swp1,dl_vlan=200,dl_dst=ff:ff:ff:ff:ff:ff")
    passed = ovs.appctl("ofproto/trace", "fabric", "in_port=swp1,dl_vlan=100,dl_dst=ff:ff:ff:ff:ff:ff")
    assert "Datapath actions: drop" in dropped, dropped
    actions = passed.split("Datapath actions:")[-1].strip()
    assert "pop_vlan" in actions and actions.count(",") >= 2, passed   # to v100 and h-ha, untagged
    assert not actions.startswith("1,"), passed   # nor to the bridge's own internal port (trunks 4095)


def test_agent_removes_a_vni(lab):
    l1 = lab.topo.leaf(1)
    push(lab, l1, leaf_config(l1, vlans=()))
    links = lab_net.run("ip", "-n", l1.netns, "-o", "link")
    assert f"vx{VNI}" not in links and f"br{VLAN}" not in links and f"v{VLAN}b" not in links
    trunks = lab.ovs(l1.netns).vsctl("get", "Port", "swp1", "trunks").strip()
    assert trunks == "[4095]"
    assert not ping(lab, "ha", "10.10.0.202", count=2)
    lab_net.wait_for("leaf2 to withdraw leaf1's MAC",
                     lambda: lab.topo.leaf(1).vtep not in {nh for s in macip_routes(lab, "leaf2").values() for nh in s},
                     timeout=20)
    t0 = time.monotonic()
    push(lab, l1, leaf_config(l1))
    lab_net.wait_for("L2 again", lambda: ping(lab, "ha", "10.10.0.202"), timeout=30, interval=0.05)
    TIMINGS["l2_restored_after_reconfig_s"] = time.monotonic() - t0


INTENT = [
    {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "finance"},
     "spec": {"namespaces": ["trading", "payments"]}},
    {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "trading-a"},
     "spec": {"vpc": "finance", "cidrBlock": "10.10.0.0/24", "namespaces": ["trading"]}},
    {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "payments-a"},
     "spec": {"vpc": "finance", "cidrBlock": "10.20.0.0/24", "namespaces": ["payments"]}},
]


def test_pods_across_leaves_through_the_controller(lab):
    """Intent -> controller -> `vpcnet fabric sync` over NETCONF -> leaf agents -> EVPN; pods made
    through the nodes' installed vpcnet-cni (as containerd does) talk across leaves, bridged in
    one subnet and routed by br-int between two subnets of the VPC."""
    for lf in lab.topo.leaf_plans:   # the earlier tests' hand-made configuration goes first
        push(lab, lf, "")
    status, payload = lab.client().request("POST", "/v1/apply", {"documents": INTENT})
    assert status == 200, payload
    subnets = {s["metadata"]["name"]: s["status"] for s in lab.client().request("GET", "/v1/objects/subnets")[1]["items"]}
    vlans = {subnets[n]["vlan"]: subnets[n]["vni"] for n in ("trading-a", "payments-a")}
    sync = subprocess.run([sys.executable, "-m", "vpcnet.app.cli", "--api", lab.api, "fabric", "sync"],
                          capture_output=True, text=True, timeout=120)
    assert sync.returncode == 0, sync.stdout + sync.stderr

    def agents_have_vlans():
        for lf in lab.topo.leaf_plans:
            applied = _agent_status(lab, lf).get("applied") or {}
            have = {m["vlan"]: m["vni"] for m in applied.get("mac_vrfs", [])}
            if any(have.get(v) != x for v, x in vlans.items()):
                return False
        return True
    lab_net.wait_for("the leaf agents to apply the controller's configuration", agents_have_vlans, timeout=30)
    n1, n2 = lab.topo.node_plans
    a = lab.add_pod("trading", "a", n1.name)
    b = lab.add_pod("trading", "b", n2.name)
    c = lab.add_pod("payments", "c", n2.name)
    ip = {k: p["result"]["ips"][0]["address"].split("/")[0] for k, p in (("a", a), ("b", b), ("c", c))}
    t0 = time.monotonic()
    lab_net.wait_for("pod a -> pod b across leaves", lambda: ping(lab, "trading/a", ip["b"]), timeout=30, interval=0.05)
    TIMINGS["first_pod_ping_s"] = time.monotonic() - t0
    routed = lab.exec("trading/a", ["ping", "-c2", "-W1", "-i", "0.2", ip["c"]])
    assert routed.returncode == 0 and "ttl=63" in routed.stdout, routed.stdout   # br-int routed once
    back = lab.exec("payments/c", ["ping", "-c2", "-W1", "-i", "0.2", ip["a"]])
    assert back.returncode == 0 and "ttl=63" in back.stdout, back.stdout
    _routed_macs_stay_put(lab, n1, n2, {n: subnets[n]["vni"] for n in ("trading-a", "payments-a")})
    kubelet = lab.kubelet(n1)
    from vpcnet.sim.kubelet import Sandbox
    kubelet.check(Sandbox.from_dict({k: v for k, v in a.items() if k != "node"}))
    lab.del_pod("trading", "a")
    assert not lab_net.netns_exists(a["netns"])
    assert "trading/a" not in lab.status()["pods"]


def _macs_in(data) -> set[str]:
    """Every MAC that is a key anywhere in an FRR JSON answer."""
    found: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(k, str) and len(k) == 17 and k.count(":") == 5:
                found.add(k.lower())
            found |= _macs_in(v)
    elif isinstance(data, list):
        for v in data:
            found |= _macs_in(v)
    return found


def _evpn_macs(lab: Lab, leaf: str, vni: int) -> dict:
    """MAC -> FRR's entry ("type" local/remote, ...) in a leaf's L2VNI ``vni``."""
    return lab.frr(leaf).vtysh_json(f"show evpn mac vni {vni} json").get("macs") or {}


def _routed_macs_stay_put(lab: Lab, n1, n2, vni: dict[str, int]) -> None:
    """After routed pings both ways (a on n1 in trading-a <-> c on n2 in payments-a): each node's
    routed frames carry its own node router MAC, so each leaf learns its node's MAC locally (in
    the destination subnet's L2VNI) and FRR's MAC mobility never sees a MAC move: no duplicate
    MAC on either leaf. (With the VPC router MAC as source of every routed frame, that one MAC
    moved between the leaves on every ping and FRR flagged it duplicate.)"""
    mac1, mac2 = (node_router_mac(int(n.datapath_id, 16)) for n in (n1, n2))
    assert mac1 != mac2
    status, vpc = lab.client().request("GET", "/v1/objects/vpcs/finance")
    assert status == 200, vpc
    vpc_mac = router_mac(vpc["status"]["id"])
    # the source MAC of the routed frames a leaf received from its node: the sender's node MAC
    want = {(n1.leaf_name, vni["payments-a"], mac1), (n2.leaf_name, vni["trading-a"], mac2)}

    def learned():
        return all((_evpn_macs(lab, leaf, v).get(mac) or {}).get("type") == "local" for leaf, v, mac in want)
    lab_net.wait_for("each leaf to learn its node's router MAC from routed frames", learned, timeout=20)
    for leaf in {n1.leaf_name, n2.leaf_name}:
        dup = lab.frr(leaf).vtysh_json("show evpn mac vni all duplicate json")
        assert not _macs_in(dup), (leaf, dup)
        for v in vni.values():
            macs = _evpn_macs(lab, leaf, v)
            assert vpc_mac not in macs, (leaf, v, macs)          # the shared VPC router MAC never leaves a node
            assert not any(e.get("isDuplicate") for e in macs.values() if isinstance(e, dict)), (leaf, v, macs)


def _lab_processes(lab: Lab) -> list[str]:
    """Processes whose command line names this lab's run dir or FRR pathspaces (inspection only)."""
    marks = [str(lab.run_dir), *(f"-N\0{ps}\0" for ps in lab.topo.frr_pathspaces())]
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd + "\0" for m in marks) and int(p.name) != os.getpid():
            found.append(f"{p.name}: {cmd.replace(chr(0), ' ')[:120]}")
    return found


def test_down_leaves_nothing(lab):
    assert _lab_processes(lab)      # sanity: the check sees the running lab
    metric = lab_net.lab_metric(lab.name)
    t0 = time.monotonic()
    assert lab.down() == []
    TIMINGS["down_s"] = time.monotonic() - t0
    assert [ns for ns in lab_net.list_netns() if lab.topo.owns_netns(ns)] == []
    deadline = time.monotonic() + 10   # SIGTERMed processes may take a moment to be reaped
    while _lab_processes(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _lab_processes(lab) == []
    for fam in ("-4", "-6"):
        routes = lab_net.run("ip", fam, "route", "show", "proto", lab_net.ROUTE_PROTO)
        assert f"metric {metric}" not in routes
    for ps in lab.topo.frr_pathspaces():
        assert not (frrmod.FRR_ETC / ps).exists() and not (frrmod.FRR_RUN / ps).exists()
    assert not lab.run_dir.exists()
    assert lab.down() == []          # idempotent
