"""Services on real packets (work in progress for the issue): pods are network namespaces on
netdev br-int bridges of two nodes (tests/functional/brint.py) running TCP echo servers; a
Service and its Endpoints go through the controller's API and a client connects to the cluster
IP. Needs root (netns, veth), as on the CI machine."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.functional.brint import VPCS, Fabric

NETPROBE = str(Path(__file__).with_name("netprobe.py"))
PODS = [("trading", "client", "node-1", "10.10.0.11", 11), ("trading", "web-0", "node-1", "10.10.0.12", 12),
        ("trading", "web-1", "node-2", "10.10.0.13", 13), ("payments", "web-2", "node-2", "10.20.0.21", 21)]
SERVERS = [("trading", "web-0"), ("trading", "web-1"), ("payments", "web-2")]


def service_docs(endpoints) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "trading"},
             "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "trading"},
             "subsets": [{"addresses": [{"ip": ip, "nodeName": node} for ip, node in endpoints],
                          "ports": [{"name": "http", "port": 8080}]}]}]


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    fab = Fabric(tmp_path_factory.mktemp("svc"), dummy=False, audit_interval=5.0,
                 extra_args=("--service-cidr", "10.97.0.0/24"))
    servers = []
    try:
        fab.apply(VPCS + [fab.node_doc("node-1", 1), fab.node_doc("node-2", 2)])
        fab.add_bridges()
        fab.add_uplinks()
        for ns, name, node, ip, ofport in PODS:
            fab.add_pod(ns, name, node, ip, ofport)
        fab.settle()
        for key in SERVERS:
            servers.append(subprocess.Popen(["ip", "netns", "exec", fab.pods[key]["netns"], sys.executable, NETPROBE,
                                             "serve", "--tcp", "8080", "--udp", "5353", "--whoami", key[1]],
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        for proc in servers:
            assert proc.stdout.readline().strip() == "serving"
        yield fab
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        fab.stop()


def who(fab, vip: str, n: int) -> list[str]:
    """Connect ``n`` times from the client to vip:80; the name each server answered with."""
    r = fab.in_pod("trading", "client", sys.executable, NETPROBE, "whoami", vip, "80", "--count", str(n),
                   timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_connections_to_the_cluster_ip_spread_over_the_endpoints(fab):
    fab.apply(service_docs([("10.10.0.12", "node-1"), ("10.10.0.13", "node-2"), ("10.20.0.21", "node-2")]))
    vip = fab.api("GET", "/v1/objects/services/web?namespace=trading")["status"]["clusterIP"]
    assert vip.startswith("10.97.0."), f"{vip}: not from the controller's --service-cidr"
    fab.settle()
    got = who(fab, vip, 30)
    assert len(got) == 30 and set(got) == {"web-0", "web-1", "web-2"}, got
    # per-Service counters (refreshed by the audit, every 5 s here)
    deadline = time.monotonic() + 20
    while fab.metric("vpcnet_service_connections_total", service="trading/web") < 30 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert fab.metric("vpcnet_service_connections_total", service="trading/web") >= 30
    assert fab.metric("vpcnet_service_packets_total", service="trading/web") >= 30 * 3, "ACK, data, FIN... each way"
    assert fab.metric("vpcnet_service_bytes_total", service="trading/web") > 0
    # an endpoint removed: new connections avoid it
    fab.apply(service_docs([("10.10.0.12", "node-1"), ("10.20.0.21", "node-2")])[1:])
    fab.settle()
    got = who(fab, vip, 20)
    assert "web-1" not in got and set(got) == {"web-0", "web-2"}, got


ALL_ENDPOINTS = [("10.10.0.12", "node-1"), ("10.10.0.13", "node-2"), ("10.20.0.21", "node-2")]


def udp_service(fab, name: str, endpoints=ALL_ENDPOINTS) -> tuple[list[dict], str]:
    """A Service ``name`` with one UDP port (53 -> the servers' 5353), applied: (docs, cluster IP)."""
    docs = service_docs(endpoints)
    docs[0]["metadata"]["name"] = docs[1]["metadata"]["name"] = name
    docs[0]["spec"]["ports"] = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]
    docs[1]["subsets"][0]["ports"] = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    fab.apply(docs)
    vip = fab.api("GET", f"/v1/objects/services/{name}?namespace=trading")["status"]["clusterIP"]
    fab.settle()
    return docs, vip


def test_udp_datagrams_spread_over_the_endpoints(fab):
    _, vip = udp_service(fab, "dns")
    r = fab.in_pod("trading", "client", sys.executable, NETPROBE, "whoami", vip, "53", "--udp", "--count", "30",
                   timeout=60)
    got = r.stdout.split()
    assert len(got) == 30 and set(got) == {"web-0", "web-1", "web-2"}, r.stdout + r.stderr


def test_a_udp_client_keeping_its_socket_leaves_a_removed_endpoint(fab):
    """UDP has no end of connection: when the endpoint a client's datagrams go to leaves, the
    controller flushes its conntrack entries, so the next datagram of the same socket goes to
    another endpoint instead of the gone one until conntrack would expire the entry."""
    eps = ALL_ENDPOINTS
    docs, vip = udp_service(fab, "dns-keep", eps)
    ns = fab.pods[("trading", "client")]["netns"]
    stream = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, NETPROBE, "whoami", vip, "53", "--udp",
                               "--keep", "--count", "40", "--every", "0.15"], stdout=subprocess.PIPE, text=True)
    first = stream.stdout.readline().split()[1]
    assert first in ("web-0", "web-1", "web-2"), first
    gone_ip = {"web-0": "10.10.0.12", "web-1": "10.10.0.13", "web-2": "10.20.0.21"}[first]
    time.sleep(0.5)
    docs[1]["subsets"][0]["addresses"] = [{"ip": ip, "nodeName": n} for ip, n in eps if ip != gone_ip]
    changed_at = time.time()
    fab.apply(docs[1:])
    out, _ = stream.communicate(timeout=30)
    later = [line.split()[1] for line in out.splitlines() if float(line.split()[0]) > changed_at + 2]
    assert later and first not in later and len(set(later)) == 1, out


def test_a_service_without_endpoints_refuses_at_once(fab):
    docs = service_docs([])
    docs[0]["metadata"]["name"] = docs[1]["metadata"]["name"] = "empty"
    docs[0]["spec"]["ports"].append({"name": "dns", "port": 53, "protocol": "UDP"})
    docs[1]["subsets"] = []
    fab.apply(docs)
    vip = fab.api("GET", "/v1/objects/services/empty?namespace=trading")["status"]["clusterIP"]
    fab.settle()
    for proto, port in (("tcp", "80"), ("udp", "53")):
        t0 = time.monotonic()
        r = fab.in_pod("trading", "client", sys.executable, NETPROBE, proto, vip, port, "--timeout", "3")
        elapsed = time.monotonic() - t0
        assert r.returncode == 1 and "Connection refused" in r.stdout, (proto, r.stdout, r.stderr)
        assert elapsed < 1.5, f"{proto}: refused after {elapsed:.2f}s, not at once"


def test_endpoint_churn_keeps_established_connections(fab):
    """A connection open through the cluster IP keeps running when its endpoint leaves the
    Endpoints (it is not deleted, only no longer chosen), and when others come and go."""
    eps = [("10.10.0.12", "node-1"), ("10.10.0.13", "node-2"), ("10.20.0.21", "node-2")]
    docs = service_docs(eps)
    docs[0]["metadata"]["name"] = docs[1]["metadata"]["name"] = "echo"
    docs[0]["spec"]["ports"] = [{"name": "http", "port": 81, "targetPort": 9090}]
    docs[1]["subsets"][0]["ports"] = [{"name": "http", "port": 9090}]
    servers = [subprocess.Popen(["ip", "netns", "exec", fab.pods[key]["netns"], sys.executable, NETPROBE, "serve",
                                 "--tcp", "9090"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for key in SERVERS]
    try:
        for proc in servers:
            assert proc.stdout.readline().strip() == "serving"
        fab.apply(docs)
        vip = fab.api("GET", "/v1/objects/services/echo?namespace=trading")["status"]["clusterIP"]
        fab.settle()
        ns = fab.pods[("trading", "client")]["netns"]
        stream = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, NETPROBE, "stream", vip, "81",
                                   "--every", "0.05", "--for", "6"], stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        changed_at = time.time()
        docs[1]["subsets"][0]["addresses"] = []          # every endpoint gone from the Endpoints
        fab.apply(docs[1:])
        time.sleep(1.5)
        docs[1]["subsets"][0]["addresses"] = [{"ip": "10.10.0.12", "nodeName": "node-1"}]
        fab.apply(docs[1:])
        out, _ = stream.communicate(timeout=30)
        times = [float(line.split()[0]) for line in out.splitlines() if line.endswith(" ok")]
        assert [t for t in times if t < changed_at], out
        assert times and times[-1] > changed_at + 3.5, f"the open connection stopped:\n{out}"
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()


def test_hairpin_a_pod_reaches_itself_through_its_service(fab):
    docs = service_docs([("10.10.0.12", "node-1")])
    docs[0]["metadata"]["name"] = docs[1]["metadata"]["name"] = "self"
    fab.apply(docs)
    vip = fab.api("GET", "/v1/objects/services/self?namespace=trading")["status"]["clusterIP"]
    fab.settle()
    r = fab.in_pod("trading", "web-0", sys.executable, NETPROBE, "whoami", vip, "80", "--count", "3", timeout=30)
    assert r.stdout.split() == ["web-0"] * 3, r.stdout + r.stderr


def test_session_affinity_sticks_to_one_endpoint_and_survives_the_audit(fab):
    """sessionAffinity ClientIP: every connection of the client goes to the endpoint its first
    one got (a flow the switch learned), also after the controller's audit ran over the bridge;
    the same Service without affinity spreads the same client's connections."""
    docs = service_docs([("10.10.0.12", "node-1"), ("10.10.0.13", "node-2"), ("10.20.0.21", "node-2")])
    docs[0]["metadata"]["name"] = docs[1]["metadata"]["name"] = "sticky"
    docs[0]["spec"]["sessionAffinity"] = "ClientIP"
    docs[0]["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 300}}
    fab.apply(docs)
    vip = fab.api("GET", "/v1/objects/services/sticky?namespace=trading")["status"]["clusterIP"]
    fab.settle()
    got = who(fab, vip, 12)
    assert len(got) == 12 and len(set(got)) == 1, got
    learned = [line for line in fab.flows("node-1") if " table=23, " in line and "priority=200" in line]
    assert learned and "nw_src=10.10.0.11" in learned[0] and "idle_timeout=300" in learned[0], learned
    time.sleep(6)                                   # the audit (every 5 s here) leaves learned flows alone
    assert who(fab, vip, 8) == got[:1] * 8
    docs[0]["spec"].pop("sessionAffinity")
    docs[0]["spec"].pop("sessionAffinityConfig")
    fab.apply(docs[:1])
    fab.settle()
    assert len(set(who(fab, vip, 30))) > 1, "without affinity the same client spreads"


def _node_port_docs(name: str, node_port: int, local: bool) -> list[dict]:
    docs = service_docs([("10.10.0.12", "node-1"), ("10.10.0.13", "node-2")])
    docs[0]["metadata"]["name"] = docs[1]["metadata"]["name"] = name
    docs[0]["spec"].update(type="NodePort", externalTrafficPolicy="Local" if local else "Cluster")
    docs[0]["spec"]["ports"][0]["nodePort"] = node_port
    return docs


def test_node_port_is_reachable_from_outside_the_pod_network(fab):
    """node-1's external NIC is a port of its br-int and its address (192.168.77.1) lives on
    br-int's LOCAL interface; a client in another network namespace (192.168.77.2, no route into
    the pod network) reaches the Service at 192.168.77.1:<nodePort>. With externalTrafficPolicy
    Local only web-0 (node-1's endpoint) answers and sees the client's address; with Cluster
    web-1 on node-2 answers too, and both see node-1's address. The host keeps its traffic: the
    client pings the node address and reaches a server running on the node itself."""
    node_ns = fab.nodes["node-1"].netns
    outside = f"vpcnet-t{fab.tag}-x"
    servers = [subprocess.Popen(["ip", "netns", "exec", fab.pods[("trading", name)]["netns"], sys.executable,
                                 NETPROBE, "serve", "--tcp", "8088", "--whoami", name, "--peer"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for name in ("web-0", "web-1")]
    host = None
    try:
        for server in servers:
            assert server.stdout.readline().strip() == "serving"
        subprocess.run(["ip", "netns", "add", outside], check=True)
        subprocess.run(["ip", "link", "add", "vpcx-out", "netns", outside, "type", "veth", "peer", "name",
                        "vpcext1", "netns", node_ns], check=True)
        for ns, dev, addr in ((outside, "vpcx-out", "192.168.77.2/24"), (node_ns, "br-int", "192.168.77.1/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev], check=True)
        for ns, dev in ((outside, "vpcx-out"), (outside, "lo"), (node_ns, "vpcext1"), (node_ns, "br-int")):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
            subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"], capture_output=True)
        # The userspace datapath reads the NIC with AF_PACKET, so the node's kernel sees its frames
        # too: it must not answer them itself (a kernel datapath takes the NIC away from the stack)
        subprocess.run(["ip", "netns", "exec", node_ns, "sysctl", "-qw", "net.ipv4.conf.vpcext1.arp_ignore=8",
                        "net.ipv4.conf.vpcext1.rp_filter=1"], check=True)
        fab.nodes["node-1"].add_port("br-int", "vpcext1", ofport=200)
        doc = fab.node_doc("node-1", 1)
        doc["spec"].update(externalPort="vpcext1", nodeIP="192.168.77.1")
        for name, node_port, local in (("np-local", 30080, True), ("np-cluster", 30081, False)):
            docs = _node_port_docs(name, node_port, local)
            docs[0]["spec"]["ports"][0]["targetPort"] = 8088
            docs[1]["subsets"][0]["ports"][0]["port"] = 8088
            fab.apply(([doc] if local else []) + docs)
        fab.wait_flows("node-1", lambda fl: all(any(f"tp_dst={p}" in f and "group:" in f for f in fl)
                                                for p in (30080, 30081)))
        fab.settle()

        def from_outside(*cmd, timeout=30):
            return subprocess.run(["ip", "netns", "exec", outside, sys.executable, NETPROBE, *cmd],
                                  capture_output=True, text=True, timeout=timeout)
        r = from_outside("whoami", "192.168.77.1", "30080", "--count", "4")
        assert r.stdout.split() == ["web-0@192.168.77.2"] * 4, r.stdout + r.stderr + fab.controller_log_tail()
        r = from_outside("whoami", "192.168.77.1", "30081", "--count", "16")
        assert set(r.stdout.split()) == {"web-0@192.168.77.1", "web-1@192.168.77.1"}, r.stdout + r.stderr
        # the host's own traffic still passes through br-int
        ping = subprocess.run(["ip", "netns", "exec", outside, "ping", "-c", "2", "-W", "2", "192.168.77.1"],
                              capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0, ping.stdout
        host = subprocess.Popen(["ip", "netns", "exec", node_ns, sys.executable, NETPROBE, "serve", "--tcp", "2222",
                                 "--whoami", "host", "--peer"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        assert host.stdout.readline().strip() == "serving"
        r = from_outside("whoami", "192.168.77.1", "2222", "--count", "2")
        assert r.stdout.split() == ["host@192.168.77.2"] * 2, r.stdout
    finally:
        for proc in servers + [host]:
            if proc is not None:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", outside], capture_output=True)
