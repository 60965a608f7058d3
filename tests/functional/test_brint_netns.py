"""Real packets: pods are network namespaces with veths on netdev br-int bridges of two nodes, the
nodes' uplinks are the two ends of one veth pair (a trunk standing in for the EVPN fabric), and
only controller-installed flows carry traffic (fail_mode=secure: no flows, no forwarding).
Needs root (netns, veth), as on the CI machine.
"""
from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from tests.functional.brint import VPCS, Fabric
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
