"""Real packets: pods are network namespaces with veths on netdev br-int bridges of two nodes, the
nodes' uplinks are the two ends of one veth pair (a trunk standing in for the EVPN fabric), and
only controller-installed flows carry traffic (fail_mode=secure: no flows, no forwarding).
Needs root (netns, veth), as on the CI machine.
"""
from __future__ import annotations

import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from tests.functional.brint import VPCS, Fabric
from vpcnet.flows.inputs import node_router_mac, router_mac
from vpcnet.sim.prometheus import PrivatePrometheus


@pytest.fixture
def fabric(tmp_path):
    fab = Fabric(tmp_path, dummy=False, audit_interval=2.0)
    try:
        fab.apply(VPCS + [fab.node_doc("node-1", 1), fab.node_doc("node-2", 2)])
        fab.add_bridges()
        fab.add_uplinks()
        fab.add_pod("trading", "a", "node-1", "10.10.0.11", 11)
        fab.add_pod("trading", "b", "node-1", "10.10.0.12", 12)
        fab.add_pod("trading", "c", "node-2", "10.10.0.13", 13)
        fab.add_pod("payments", "p", "node-2", "10.20.0.21", 21)
        fab.add_pod("shop", "x", "node-1", "10.30.0.31", 31)
        fab.add_pod("shop", "y", "node-2", "10.30.0.32", 32)
        fab.settle()
        yield fab
    finally:
        fab.stop()


def test_pods_talk_through_controller_flows_only_within_their_vpc(fabric):
    a = ("trading", "a")
    assert fabric.ping(a, "10.10.0.12"), "same bridge, same subnet"
    assert fabric.ping(a, "10.10.0.13"), "other bridge over the trunk, same subnet"
    assert fabric.ping(a, "10.20.0.21"), "other subnet of the same VPC, other bridge (routed)"
    assert fabric.ping(("shop", "x"), "10.30.0.32"), "retail pods talk across the trunk too"
    assert not fabric.ping(a, "10.30.0.31", count=2, wait=0.5), "another VPC on the same bridge"
    assert not fabric.ping(a, "10.30.0.32", count=2, wait=0.5), "another VPC on the other bridge"
    assert not fabric.ping(("shop", "x"), "10.10.0.11", count=2, wait=0.5)
    # TCP through userspace conntrack both ways
    server = subprocess.Popen(["ip", "netns", "exec", fabric.pods[("trading", "c")]["netns"],
                               "iperf3", "-s", "-1", "-B", "10.10.0.13", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        r = fabric.in_pod(*a, "iperf3", "-c", "10.10.0.13", "-p", "5201", "-n", "1M", timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        server.kill()
        server.wait()


_ICMP_LINE = re.compile(r"([0-9a-f:]{17}) > ([0-9a-f:]{17}),.*?vlan (\d+),.*?(\S+) > (\S+): ICMP echo (request|reply)")


def _trunk_icmp(fabric, node: str, count: int, action) -> list[tuple[str, str, int, str, str, str]]:
    """(src MAC, dst MAC, VLAN, src IP, dst IP, request|reply) of the first ``count`` tagged ICMP
    echo frames on ``node``'s uplink (the trunk) while ``action()`` runs."""
    cap = subprocess.Popen(["ip", "netns", "exec", fabric.nodes[node].netns, "tcpdump", "-l", "-n", "-e", "-c",
                            str(count), "-i", fabric.uplink[node], "vlan and icmp"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while "listening on" not in (line := cap.stderr.readline()):
            assert line and time.monotonic() < deadline, "tcpdump did not start"
        action()
        out, _ = cap.communicate(timeout=15)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    return [(m[1], m[2], int(m[3]), m[4], m[5], m[6]) for m in map(_ICMP_LINE.search, out.splitlines()) if m]


def test_routed_ping_across_nodes_leaves_each_node_with_its_own_mac(fabric):
    """Routed both ways between two subnets across the trunk: each node routes what its pod sends
    and puts its node router MAC (from its datapath id) as source, never the VPC router MAC."""
    a, p = fabric.pods[("trading", "a")], fabric.pods[("payments", "p")]
    mac1, mac2 = node_router_mac(1), node_router_mac(2)    # node-1, node-2 (datapath ids 1, 2)
    vpc_mac = _router_mac(fabric, "finance")
    for src, dst_ip in ((("trading", "a"), p["ip"]), (("payments", "p"), a["ip"])):
        frames = _trunk_icmp(fabric, "node-2", 4, lambda: fabric.ping(src, dst_ip, count=2))
        assert len(frames) == 4, frames
        for smac, dmac, vlan, sip, dip, kind in frames:
            assert vpc_mac not in (smac, dmac), frames
            if sip == a["ip"]:       # a (node-1) -> p: routed by node-1
                assert (smac, dmac, dip) == (mac1, p["mac"], p["ip"]), frames
            else:                    # p (node-2) -> a: routed by node-2
                assert (smac, dmac, sip, dip) == (mac2, a["mac"], p["ip"], a["ip"]), frames
        assert {f[5] for f in frames} == {"request", "reply"}


def test_no_controller_flows_no_forwarding(fabric):
    """The flows are what carries traffic: without them a secure bridge forwards nothing."""
    fabric.ctl.stop()
    fabric.nodes["node-1"].ofctl("del-flows", "br-int")
    assert not fabric.ping(("trading", "a"), "10.10.0.12", count=2, wait=0.5)


def test_controller_sigkill_and_restart_loses_no_packet(fabric):
    strip = lambda flows: sorted(re.sub(r"cookie=0x[0-9a-f]+, ?", "", f) for f in flows)  # noqa: E731
    before = {n: fabric.flows(n) for n in fabric.nodes}
    a = fabric.pods[("trading", "a")]
    ping = subprocess.Popen(["ip", "netns", "exec", a["netns"], "ping", "-i", "0.01", "-c", "600", "-W", "1",
                             "10.10.0.13"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        fabric.restart_controller(kill=True)
        deadline = time.monotonic() + 30
        while any(strip(fabric.flows(n)) != strip(before[n]) or
                  any(f in before[n] for f in fabric.flows(n)) for n in fabric.nodes):
            assert time.monotonic() < deadline, "the new round never replaced the old one"
            time.sleep(0.1)
        out, _ = ping.communicate(timeout=60)
    finally:
        if ping.poll() is None:
            ping.send_signal(signal.SIGINT)
            ping.wait()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    sent, received = int(m.group(1)), int(m.group(2))
    assert sent == 600 and received == sent, out
    for node in fabric.nodes:
        after = fabric.flows(node)
        assert strip(after) == strip(before[node])
        rounds = {int(c, 16) >> 48 for c in re.findall(r"cookie=(0x[0-9a-f]+)", " ".join(after))}
        assert len(rounds) == 1 and rounds != {int(c, 16) >> 48 for c in
                                               re.findall(r"cookie=(0x[0-9a-f]+)", " ".join(before[node]))}


def test_real_prometheus_scrapes_the_controller(fabric, tmp_path):
    with PrivatePrometheus(tmp_path / "prom", [f"127.0.0.1:{fabric.metrics_port}"]) as prom:
        result = prom.wait_for('vpcnet_datapaths_connected{known="true"}', lambda r: float(r[0]["value"][1]) == 2)
        assert float(result[0]["value"][1]) == 2
        flows = prom.wait_for('sum(vpcnet_flows{node="node-1"})')
        assert float(flows[0]["value"][1]) == len(fabric.flows("node-1"))
        assert prom.wait_for('sum(vpcnet_flow_mods_total{node="node-1"})')
        fabric.ping(("trading", "a"), "10.10.0.12")
        packets = prom.wait_for('sum(vpcnet_table_packets_total{node="node-1",table="classifier"})',
                                lambda r: float(r[0]["value"][1]) > 0, timeout=30)
        assert float(packets[0]["value"][1]) > 0


# --- the gateway answers ping ----------------------------------------------------------------
def _snmp(fabric, pod) -> dict[str, int]:
    """The pod's kernel ICMP/ICMPv6 counters (its own netns' /proc/net/snmp and snmp6)."""
    out: dict[str, int] = {}
    lines = fabric.in_pod(*pod, "cat", "/proc/net/snmp").stdout.splitlines()
    for head, values in zip(lines[::2], lines[1::2]):
        proto, *names = head.split()
        out.update({proto[:-1] + n: int(v) for n, v in zip(names, values.split()[1:])})
    for line in fabric.in_pod(*pod, "cat", "/proc/net/snmp6").stdout.splitlines():
        name, value = line.split()
        out[name] = int(value)
    return out


def _csum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _inject_echo_reply(fabric, pod: dict, src_mac: str, src_ip: str, good: bool) -> None:
    """Send an ICMP echo reply to ``pod`` from the bridge side of its veth, its ICMP checksum
    right or wrong: the control showing that the pod's kernel does check it on this path."""
    icmp = struct.pack("!BBHHH", 0, 0, 0, 0x7777, 1) + b"vpcnet" * 8
    csum = _csum(icmp) ^ (0 if good else 0x5A5A)
    icmp = icmp[:2] + struct.pack("!H", csum) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 7, 0x4000, 64, 1, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(pod["ip"]))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    frame = bytes.fromhex(pod["mac"].replace(":", "") + src_mac.replace(":", "")) + b"\x08\x00" + ip + icmp
    send = ("import socket,sys; s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW); s.bind((sys.argv[1],0)); "
            "s.send(bytes.fromhex(sys.argv[2]))")
    subprocess.run(["ip", "netns", "exec", fabric.nodes[pod["node"]].netns, sys.executable, "-c", send, pod["port"],
                    frame.hex()], check=True, capture_output=True, timeout=30)


def _responder_packets(fabric, node: str, gw: str) -> int:
    """n_packets of the echo responder flows for gateway ``gw`` on ``node`` (stats synced first)."""
    fabric.nodes[node].appctl("revalidator/wait")
    out = fabric.nodes[node].ofctl("dump-flows", "br-int", f"table=40,icmp,nw_dst={gw},icmp_type=8")
    return sum(int(n) for n in re.findall(r"n_packets=(\d+)", out))


def _router_mac(fabric, vpc: str) -> str:
    return router_mac(fabric.api("GET", f"/v1/objects/vpcs/{vpc}")["status"]["id"])


def test_pods_ping_their_own_gateway_only(fabric):
    a, c, x = ("trading", "a"), ("trading", "c"), ("shop", "x")
    fin = _router_mac(fabric, "finance")
    # the control: this kernel drops an echo reply with a bad ICMP checksum (and counts it), so a
    # reply it counts as received had a right checksum
    before = _snmp(fabric, a)
    _inject_echo_reply(fabric, fabric.pods[a], fin, "10.10.0.1", good=False)
    _inject_echo_reply(fabric, fabric.pods[a], fin, "10.10.0.1", good=True)
    time.sleep(0.3)
    after = _snmp(fabric, a)
    assert after["IcmpInCsumErrors"] - before["IcmpInCsumErrors"] == 1
    assert after["IcmpInEchoReps"] - before["IcmpInEchoReps"] == 1
    # a real ping of the gateway: answered by br-int, with right checksums
    before = _snmp(fabric, a)
    r = fabric.in_pod(*a, "ping", "-c", "2", "-W", "1", "10.10.0.1")
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    after = _snmp(fabric, a)
    assert after["IcmpInEchoReps"] - before["IcmpInEchoReps"] == 2
    assert after["IcmpInCsumErrors"] == before["IcmpInCsumErrors"]   # (a bad IP header never gets this far)
    assert f"lladdr {fin} " in fabric.in_pod(*a, "ip", "neigh", "show", "10.10.0.1").stdout
    assert _responder_packets(fabric, "node-1", "10.10.0.1") == 2
    # the gateway on the other node (c's own br-int answers), and in the other VPC
    assert fabric.ping(c, "10.10.0.1", count=2)
    assert fabric.ping(x, "10.30.0.1", count=2)
    # the gateway of another subnet of the VPC, or of another VPC: no answer, from any responder
    seen = {gw: _responder_packets(fabric, "node-1", gw) for gw in ("10.20.0.1", "10.30.0.1")}
    assert not fabric.ping(a, "10.20.0.1", count=2, wait=0.5), "payments-a's gateway answered trading-a"
    assert not fabric.ping(a, "10.30.0.1", count=2, wait=0.5), "retail's gateway answered finance"
    assert {gw: _responder_packets(fabric, "node-1", gw) for gw in seen} == seen == {"10.20.0.1": 0, "10.30.0.1": 2}


def test_ipv6_pod_resolves_and_pings_its_gateway(fabric):
    fabric.apply([
        {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "ops"}, "spec": {"namespaces": ["ops"]}},
        {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "ops-a"},
         "spec": {"vpc": "ops", "cidrBlock": "10.40.0.0/24,fd00:40::/64", "namespaces": ["ops"]}},
    ])
    pods = [("ops", "z1"), ("ops", "z2")]
    for (ns, name), node, ip, port in zip(pods, ("node-1", "node-2"), ("10.40.0.41", "10.40.0.42"), (41, 42)):
        fabric.add_pod(ns, name, node, ip, port)
    fabric.settle()
    rmac = _router_mac(fabric, "ops")
    for pod in pods:
        status = fabric.api("GET", f"/v1/objects/pods/{pod[1]}?namespace=ops")["status"]
        cidr6 = next(c for c in status["cidrs"] if ":" in c)
        gw6 = next(g for g in status["gateway"].split(",") if ":" in g)
        assert fabric.in_pod(*pod, "ip", "-6", "addr", "add", cidr6, "dev", "eth0", "nodad").returncode == 0
        before = _snmp(fabric, pod)
        r = fabric.in_pod(*pod, "ping", "-c", "2", "-W", "1", gw6)
        assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
        after = _snmp(fabric, pod)
        # the neighbour advertisement was accepted: the gateway is the router MAC, a router
        neigh = fabric.in_pod(*pod, "ip", "-6", "neigh", "show", gw6).stdout
        assert f"lladdr {rmac} router" in neigh, neigh
        assert after["Icmp6InNeighborAdvertisements"] > before["Icmp6InNeighborAdvertisements"]
        assert after["Icmp6InEchoReplies"] - before["Icmp6InEchoReplies"] == 2
        assert after["Icmp6InCsumErrors"] == before["Icmp6InCsumErrors"]
        assert fabric.ping(pod, "10.40.0.1", count=2)
