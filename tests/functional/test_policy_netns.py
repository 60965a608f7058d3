"""Security policy on real packets: pods are network namespaces on netdev br-int bridges of two
nodes joined by a veth trunk (tests/functional/brint.py), running small TCP/UDP echo servers
(netprobe.py); NetworkPolicy and SecurityGroup objects go through the controller's API, and only
its flows decide. Needs root (netns, veth), as on the CI machine.

Pods (VPC finance: namespaces trading 10.10.0.0/24 and payments 10.20.0.0/24; VPC retail: shop):
  trading/web     node-1  10.10.0.11  app=web     serves tcp 8080
  trading/db      node-2  10.10.0.12  app=db      serves tcp 5432 (named "pg"), 5433, udp 5353
  trading/client  node-1  10.10.0.13  app=client
  trading/rogue   node-1  10.10.0.14  app=rogue   (sends spoofed frames)
  trading/victim  node-2  10.10.0.15  app=victim  (listens for them)
  payments/pay    node-2  10.20.0.21  app=pay
  shop/x          node-1  10.30.0.31  app=x
"""
from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.functional.brint import VPCS, Fabric, final_action
from vpcnet.app.service_reject import _csum
from vpcnet.sim.prometheus import PrivatePrometheus

NETPROBE = str(Path(__file__).with_name("netprobe.py"))

PODS = [  # namespace, name, node, ip, ofport, labels, container ports
    ("trading", "web", "node-1", "10.10.0.11", 11, {"app": "web"}, [("http", 8080)]),
    ("trading", "db", "node-2", "10.10.0.12", 12, {"app": "db"}, [("pg", 5432)]),
    ("trading", "client", "node-1", "10.10.0.13", 13, {"app": "client"}, []),
    ("trading", "rogue", "node-1", "10.10.0.14", 14, {"app": "rogue"}, []),
    ("trading", "victim", "node-2", "10.10.0.15", 15, {"app": "victim"}, []),
    ("payments", "pay", "node-2", "10.20.0.21", 21, {"app": "pay"}, []),
    ("shop", "x", "node-1", "10.30.0.31", 31, {"app": "x"}, []),
]
DENY_LOG_RATE = 20      # packet-ins per second the deny log's meter lets through (burst: as many)
SERVERS = {("trading", "web"): ("8080", ""), ("trading", "db"): ("5432,5433", "5353")}


def pod_doc(ns, name, node, ip, labels, ports) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                         "annotations": {"vpcnet.io/ip_address": ip}},
            "spec": {"nodeName": node, "containers": [
                {"name": "main", "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports]}]}}


def namespace_doc(name, labels) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}, "spec": {}}


def netpol(name, selector, ingress=None, egress=None, types=None) -> dict:
    spec = {"podSelector": {"matchLabels": selector}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if types is not None:
        spec["policyTypes"] = types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "trading"}, "spec": spec}


def security_group(name, rules, namespaces=("trading",)) -> dict:
    return {"apiVersion": "vpcnet.io/v1", "kind": "SecurityGroup", "metadata": {"name": name},
            "spec": {"namespaces": list(namespaces), "rules": rules}}


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    fab = Fabric(tmp_path_factory.mktemp("policy"), dummy=False, audit_interval=5.0,
                 extra_args=("--deny-log-rate", str(DENY_LOG_RATE)))
    servers = []
    try:
        fab.apply(VPCS + [fab.node_doc("node-1", 1), fab.node_doc("node-2", 2),
                          namespace_doc("trading", {"team": "trading"}),
                          namespace_doc("payments", {"team": "payments"})])
        fab.add_bridges()
        fab.add_uplinks()
        fab.apply([pod_doc(ns, n, node, ip, labels, ports) for ns, n, node, ip, _, labels, ports in PODS])
        for ns, n, node, ip, ofport, _, _ in PODS:
            fab.add_pod(ns, n, node, ip, ofport, applied=True)
        fab.settle()
        for key, (tcp, udp) in SERVERS.items():
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", fab.pods[key]["netns"], sys.executable, NETPROBE, "serve", "--tcp", tcp,
                 "--udp", udp], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        for proc in servers:
            assert proc.stdout.readline().strip() == "serving"
        yield fab
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        fab.stop()


def probe(fab, src, *args, timeout=1.0) -> bool:
    """netprobe tcp|udp in pod ``src``: True if the echo came back."""
    r = fab.in_pod(*src, sys.executable, NETPROBE, *args, "--timeout", str(timeout), timeout=timeout + 10)
    return r.returncode == 0


def tcp(fab, src, ip, port, timeout=1.0) -> bool:
    return probe(fab, src, "tcp", ip, str(port), timeout=timeout)


def udp(fab, src, ip, port, timeout=1.0) -> bool:
    return probe(fab, src, "udp", ip, str(port), timeout=timeout)


def apply_and_settle(fab, docs):
    fab.apply(docs)
    fab.settle()


def delete_and_settle(fab, refs):
    fab.api("POST", "/v1/delete", {"refs": refs})
    fab.settle()


WEB, DB, CLIENT = ("trading", "web"), ("trading", "db"), ("trading", "client")
PAY, SHOP = ("payments", "pay"), ("shop", "x")
DB_INGRESS = netpol("db-ingress", {"app": "db"}, ingress=[
    {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"protocol": "TCP", "port": "pg"}]},
    {"from": [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}],
     "ports": [{"protocol": "UDP", "port": 5353}]},
])


def test_network_policy_allows_and_refuses_tcp_udp_icmp(fab):
    # no policy yet: everything inside the VPC is open, the other VPC is not
    assert tcp(fab, CLIENT, "10.10.0.12", 5432)
    assert fab.ping(CLIENT, "10.10.0.12")
    assert not tcp(fab, SHOP, "10.10.0.12", 5432), "another VPC never reaches finance"

    apply_and_settle(fab, [DB_INGRESS])
    try:
        assert tcp(fab, WEB, "10.10.0.12", 5432), "web -> db on the named port pg (5432), reply back"
        assert not tcp(fab, WEB, "10.10.0.12", 5433), "a port the policy does not list"
        assert not tcp(fab, CLIENT, "10.10.0.12", 5432), "a pod the policy does not select as peer"
        assert udp(fab, PAY, "10.10.0.12", 5353), "namespaceSelector team=payments, UDP, routed"
        assert not udp(fab, WEB, "10.10.0.12", 5353), "UDP from a pod outside the selected namespace"
        assert not fab.ping(WEB, "10.10.0.12", count=2, wait=0.5), "ICMP is not in any rule: isolated"
        assert fab.ping(DB, "10.10.0.11"), "db's own egress and its replies are not isolated"
        assert tcp(fab, CLIENT, "10.10.0.11", 8080), "pods no policy selects stay open"
        assert not tcp(fab, SHOP, "10.10.0.12", 5432)

        # egress isolation of the client: only web:8080
        apply_and_settle(fab, [netpol("client-egress", {"app": "client"}, types=["Egress"], egress=[
            {"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 8080}]}])])
        assert tcp(fab, CLIENT, "10.10.0.11", 8080)
        assert not fab.ping(CLIENT, "10.10.0.11", count=2, wait=0.5), "egress: ICMP not listed"
        assert not udp(fab, CLIENT, "10.20.0.21", 9), "egress: nothing else"

        # a security group above NetworkPolicy: ICMP from the client's address to trading pods
        apply_and_settle(fab, [security_group("ops", [
            {"name": "ping-in", "direction": "ingress", "protocol": "icmp", "remoteCidr": "10.10.0.13/32",
             "priority": 10},
            {"name": "ping-out", "direction": "egress", "protocol": "icmp", "remoteCidr": "10.10.0.0/24",
             "priority": 10}])])
        assert fab.ping(CLIENT, "10.10.0.12"), "SG allow is final: NetworkPolicy isolation of db not consulted"
        assert not fab.ping(WEB, "10.10.0.12", count=2, wait=0.5), "the SG rule names the client only"
    finally:
        delete_and_settle(fab, [{"kind": "NetworkPolicy", "namespace": "trading", "name": n}
                                for n in ("db-ingress", "client-egress")]
                          + [{"kind": "SecurityGroup", "name": "ops"}])
    assert tcp(fab, CLIENT, "10.10.0.12", 5432), "policies deleted: open again"


def _stream(fab, src, ip, port, seconds):
    ns = fab.pods[src]["netns"]
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, NETPROBE, "stream", ip, str(port),
                             "--every", "0.05", "--for", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _echo_times(proc) -> list[float]:
    out, err = proc.communicate(timeout=30)
    assert "connected" in out, out + err
    return [float(line.split()[0]) for line in out.splitlines() if line.endswith(" ok")]


@pytest.mark.parametrize("how", ["rule removed", "deny added"])
def test_revocation_cuts_an_open_connection_within_a_second(fab, how):
    apply_and_settle(fab, [DB_INGRESS])
    try:
        stream = _stream(fab, WEB, "10.10.0.12", 5432, 6)
        time.sleep(1.5)
        changed_at = time.time()
        if how == "rule removed":    # the web rule now lists 5433 only
            narrowed = netpol("db-ingress", {"app": "db"}, ingress=[
                {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5433}]}])
            fab.apply([narrowed])
        else:
            fab.apply([security_group("lockdown", [
                {"name": "no-pg", "direction": "ingress", "protocol": "tcp", "ports": "5432", "action": "deny",
                 "priority": 5}])])
        echoes = _echo_times(stream)
        before = [t for t in echoes if t < changed_at]
        after = [t for t in echoes if t >= changed_at]
        assert len(before) >= 3, "the connection carried traffic before the change"
        assert after == [] or after[-1] - changed_at < 1.0, (
            f"echoes kept coming {after[-1] - changed_at:.2f}s after the change")
        fab.settle()
        assert not tcp(fab, WEB, "10.10.0.12", 5432), "and new connections are refused"
    finally:
        delete_and_settle(fab, [{"kind": "NetworkPolicy", "namespace": "trading", "name": "db-ingress"},
                                {"kind": "SecurityGroup", "name": "lockdown"}])


def _denied_events(fab) -> list[dict]:
    with open(fab.ctl.log.name) as f:
        return [json.loads(line.split("vpcnet.audit: ", 1)[1]) for line in f if "vpcnet.audit: " in line]


def test_rule_counters_in_prometheus_and_denied_connections_logged(fab, tmp_path):
    apply_and_settle(fab, [DB_INGRESS])
    try:
        allow = 'vpcnet_policy_rule_packets_total{rule="np/trading/db-ingress/ingress/0",action="allow"}'
        deny = 'vpcnet_policy_rule_packets_total{rule="np/trading/default-deny/ingress",action="deny"}'
        with PrivatePrometheus(tmp_path / "prom", [f"127.0.0.1:{fab.metrics_port}"]) as prom:
            def value(query) -> float:
                r = prom.query(query)
                return float(r[0]["value"][1]) if r else 0.0
            prom.wait_for("vpcnet_policy_denied_logged_total")     # scraped at least once
            udp_rule = 'vpcnet_policy_rule_packets_total{rule="np/trading/db-ingress/ingress/1"}'
            allowed_before, denied_before, udp_before = value(allow), value(deny), value(udp_rule)
            for _ in range(3):
                assert tcp(fab, WEB, "10.10.0.12", 5432)
            assert not tcp(fab, CLIENT, "10.10.0.12", 5432, timeout=1.5)
            got = prom.wait_for(allow, lambda r: float(r[0]["value"][1]) >= allowed_before + 3, timeout=40)
            assert float(got[0]["value"][1]) >= allowed_before + 3, "3 connections of >= 1 judged packet each"
            got = prom.wait_for(deny, lambda r: float(r[0]["value"][1]) > denied_before, timeout=40)
            assert float(got[0]["value"][1]) > denied_before
            assert value(udp_rule) == udp_before, "the UDP rule saw no traffic"
        events = [e for e in _denied_events(fab) if e.get("src") == "10.10.0.13" and e.get("dport") == 5432]
        assert events, "the refused connection is in the audit log"
        assert events[-1] | {"sport": 0} == {
            "event": "denied", "node": "node-2", "vpc": "finance", "pod": "trading/db", "direction": "ingress",
            "rule": "np/trading/default-deny/ingress", "proto": "tcp", "src": "10.10.0.13", "dst": "10.10.0.12",
            "sport": 0, "dport": 5432}
    finally:
        delete_and_settle(fab, [{"kind": "NetworkPolicy", "namespace": "trading", "name": "db-ingress"}])


def test_deny_log_is_rate_limited_in_the_datapath(fab):
    """A flood of denied packets: the controller hears at most the meter's rate (plus burst)."""
    apply_and_settle(fab, [DB_INGRESS])
    try:
        before = len(_denied_events(fab))
        client = fab.pods[CLIENT]
        db = fab.pods[DB]
        frames = [udp_frame(client["mac"], db["mac"], client["ip"], db["ip"], 20000 + i, 9999).hex()
                  for i in range(600)]
        t0 = time.monotonic()
        r = fab.in_pod(*CLIENT, sys.executable, "-c", _FLOOD, *frames, timeout=60)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        time.sleep(1.0)
        logged = len(_denied_events(fab)) - before
        assert logged > 0, "denied packets are logged"
        limit = DENY_LOG_RATE * (elapsed + 1.0) + DENY_LOG_RATE
        assert logged <= limit, f"{logged} log lines for 600 denied packets in {elapsed:.2f}s (limit {limit:.0f})"
    finally:
        delete_and_settle(fab, [{"kind": "NetworkPolicy", "namespace": "trading", "name": "db-ingress"}])


_FLOOD = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for h in sys.argv[1:]:
    s.send(bytes.fromhex(h))
"""


def _vpcs(peered: bool) -> list[dict]:
    docs = [dict(d, spec=dict(d["spec"])) for d in VPCS if d["kind"] == "Vpc"]
    for d in docs:
        d["spec"]["peers"] = ([v["metadata"]["name"] for v in docs if v is not d]) if peered else []
    return docs


def test_vpc_peering_needs_an_allow_rule_in_both_vpcs(fab):
    assert not tcp(fab, SHOP, "10.10.0.11", 8080), "not peered: isolated"
    apply_and_settle(fab, _vpcs(True))
    try:
        assert not tcp(fab, SHOP, "10.10.0.11", 8080), "peered, no rule: still refused"
        apply_and_settle(fab, [security_group("shop-out", [
            {"name": "to-web", "direction": "egress", "protocol": "tcp", "ports": "8080",
             "remoteCidr": "10.10.0.0/24"}], namespaces=("shop",))])
        assert not tcp(fab, SHOP, "10.10.0.11", 8080), "only retail allows"
        apply_and_settle(fab, [netpol("web-from-shop", {"app": "web"}, ingress=[
            {"from": [{"ipBlock": {"cidr": "10.30.0.0/24"}}], "ports": [{"port": 8080}]}])])
        assert tcp(fab, SHOP, "10.10.0.11", 8080), "both allow: routed across VPCs, reply back"
        assert not tcp(fab, SHOP, "10.10.0.12", 5432), "db is not allowed by finance"
        assert not fab.ping(SHOP, "10.10.0.11", count=2, wait=0.5), "ICMP allowed by neither"
        assert not tcp(fab, WEB, "10.30.0.31", 8080), "the other direction is not allowed"
        assert tcp(fab, CLIENT, "10.10.0.12", 5432), "inside finance: db is selected by no policy, still open"
        assert not tcp(fab, CLIENT, "10.10.0.11", 8080), "web is isolated by web-from-shop: client is not in it"
    finally:
        delete_and_settle(fab, [{"kind": "NetworkPolicy", "namespace": "trading", "name": "web-from-shop"},
                                {"kind": "SecurityGroup", "name": "shop-out"}])
        apply_and_settle(fab, _vpcs(False))
    assert not tcp(fab, SHOP, "10.10.0.11", 8080), "peering removed: isolated again"


# --- anti-spoofing -------------------------------------------------------------------------------
def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def udp_frame(src_mac, dst_mac, src_ip, dst_ip, sport, dport, payload=b"spoof") -> bytes:
    udp_len = 8 + len(payload)
    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    head = struct.pack("!HHHH", sport, dport, udp_len, 0)
    head = struct.pack("!HHHH", sport, dport, udp_len, _csum(pseudo + head + payload) or 0xFFFF)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + ip + head + payload


def arp_reply_frame(src_mac, dst_mac, claimed_ip, claimed_mac, target_ip) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, _mac(claimed_mac), socket.inet_aton(claimed_ip),
                       _mac(dst_mac), socket.inet_aton(target_ip))
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x06" + body


def _received(fab, frames: dict[str, bytes], port: int) -> set[str]:
    """Send each frame from the rogue pod while the victim listens on UDP ``port``; the names of
    the frames whose payload arrived."""
    victim = fab.pods[("trading", "victim")]
    listener = subprocess.Popen(["ip", "netns", "exec", victim["netns"], sys.executable, NETPROBE, "listen-udp",
                                 str(port), "--for", "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "listening"
        for name, frame in frames.items():
            r = fab.in_pod("trading", "rogue", sys.executable, NETPROBE, "frame", "eth0", frame.hex())
            assert r.returncode == 0, r.stderr
        out, _ = listener.communicate(timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
    payloads = {line.split()[2] for line in out.splitlines()}
    return {name for name, frame in frames.items() if frame[-len(name):].hex() in payloads}


def test_spoofed_frames_are_dropped(fab):
    rogue, victim = fab.pods[("trading", "rogue")], fab.pods[("trading", "victim")]
    me, mine = rogue["mac"], rogue["ip"]
    vm, vip = victim["mac"], victim["ip"]
    frames = {
        "control": udp_frame(me, vm, mine, vip, 6000, 7000, b"control"),
        "other-ip": udp_frame(me, vm, "10.10.0.99", vip, 6000, 7000, b"other-ip"),
        "victim-ip": udp_frame(me, vm, "10.10.0.11", vip, 6000, 7000, b"victim-ip"),
        "other-mac": udp_frame("02:00:00:aa:bb:cc", vm, mine, vip, 6000, 7000, b"other-mac"),
    }
    assert _received(fab, frames, 7000) == {"control"}
    dhcp = {
        "control68": udp_frame(me, vm, mine, vip, 6700, 68, b"control68"),
        "dhcp-offer": udp_frame(me, vm, mine, vip, 67, 68, b"dhcp-offer"),
    }
    assert _received(fab, dhcp, 68) == {"control68"}, "a pod never answers as a DHCP server"


def test_arp_for_another_ip_is_dropped(fab):
    rogue, victim = fab.pods[("trading", "rogue")], fab.pods[("trading", "victim")]
    vns = victim["netns"]
    subprocess.run(["ip", "netns", "exec", vns, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_accept=1"], check=True)
    subprocess.run(["ip", "-n", vns, "neigh", "flush", "dev", "eth0"], check=True)

    def neigh(ip) -> str:
        return subprocess.run(["ip", "-n", vns, "neigh", "show", ip], capture_output=True, text=True).stdout

    def send(frame):
        r = fab.in_pod("trading", "rogue", sys.executable, NETPROBE, "frame", "eth0", frame.hex())
        assert r.returncode == 0, r.stderr

    send(arp_reply_frame(rogue["mac"], victim["mac"], rogue["ip"], rogue["mac"], victim["ip"]))
    deadline = time.monotonic() + 3
    while rogue["mac"] not in neigh(rogue["ip"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rogue["mac"] in neigh(rogue["ip"]), "control: an honest ARP reply is learnt"
    send(arp_reply_frame(rogue["mac"], victim["mac"], "10.10.0.11", rogue["mac"], victim["ip"]))
    send(arp_reply_frame(rogue["mac"], victim["mac"], "10.10.0.1", rogue["mac"], victim["ip"]))
    time.sleep(1.0)
    assert rogue["mac"] not in neigh("10.10.0.11"), "ARP claiming web's IP reached the victim"
    assert rogue["mac"] not in neigh("10.10.0.1"), "ARP claiming the gateway reached the victim"


@pytest.mark.parametrize("what,flow", [
    ("router advertisement", "icmp6,ipv6_src=fe80::1,ipv6_dst=ff02::1,icmpv6_type=134,icmpv6_code=0"),
    ("DHCPv6 reply", "udp6,ipv6_src=fe80::1,ipv6_dst=fe80::2,udp_src=547,udp_dst=546"),
    ("ICMP redirect", "icmp,nw_src={ip},nw_dst=10.10.0.15,icmp_type=5,icmp_code=1"),
])
def test_server_and_router_messages_from_a_pod_are_dropped_on_the_real_bridge(fab, what, flow):
    rogue = fab.pods[("trading", "rogue")]
    proto, rest = flow.format(ip=rogue["ip"]).split(",", 1)
    trace = fab.trace("node-1", f"{proto},in_port={rogue['ofport']},dl_src={rogue['mac']},dl_dst=33:33:00:00:00:01,{rest}")
    assert final_action(trace) == "drop", trace
    assert "priority 1000" in trace, f"{what} must be dropped by the server-role rule:\n{trace}"
    victim_mac = fab.pods[("trading", "victim")]["mac"]
    control = fab.trace("node-1", f"icmp,in_port={rogue['ofport']},dl_src={rogue['mac']},dl_dst={victim_mac},"
                                  f"nw_src={rogue['ip']},nw_dst=10.10.0.15,icmp_type=8,icmp_code=0")
    assert final_action(control) != "drop", control
