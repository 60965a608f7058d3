"""Service benchmark (printed figures, not a test): short TCP connections per second through one
Service cluster IP while 10 and while 10,000 Services exist, for vpcnet's br-int flows and, in
the same run, for kube-proxy-style iptables NAT rules on this machine.

What is measured: a client in its own network namespace loops "connect to VIP:80, read 1 byte,
close with SO_LINGER {1,0} (RST: no TIME_WAIT, 4-tuples can be reused)" for ``--seconds`` and
prints connections/s and the p50/p99 of connect+read. Servers (``serve``) accept, send one byte
(the last octet of the address the connection reached, so the client counts how the connections
spread over the endpoints) and close. Every figure is the median of ``--reps`` runs; the VIP run
and a *direct* run (the client to one endpoint address, no Service) alternate, as a reference of
what the same path costs without the Service.

vpcnet: the real controller and two nodes, each a private ovs-vswitchd (netdev datapath, in its
own network namespace; tests/functional/brint.py's Fabric), linked by a veth uplink. Pods are
network namespaces on veths (tx offload off). Node-1 runs VPC ``svcbench``: a client, three
servers and the measured Service ``bench/web`` (80 -> 8080, the three servers as endpoints), then
"filler" Services (same shape, three endpoints each at addresses in the subnet where no pod is)
applied through the API in batches of ``--batch`` until the large size exists. Node-2 runs VPC
``svcsmall`` the same way with the small size. A VPC's Services are compiled only where the VPC
runs, so each bridge holds one size; both are measured once all flows are on the bridges (the
last filler's cluster IP among the flows, the flow count steady), their runs alternating, so the
(large) noise of a shared machine hits both sizes alike. Applying stops at ``--apply-budget`` seconds (0: no limit) or at the first
failed apply call; a size not reached is then measured at the count reached and printed as such,
with the apply time per batch, its growth with the Services already stored (least squares) and
what the rest would take at that growth. Controller CPU seconds (from /proc) are printed for the
apply, the flow installation and the measurement.

iptables peer: three namespaces per backend, client (10.100.0.2) -- veth -- router (ip_forward,
rules of bench/kube_iptables.py loaded with ``iptables-legacy-restore`` / ``iptables-nft-restore``
inside the router namespace) -- veth -- server (10.200.0.2-4, the three endpoints). The measured
VIP is the last Service of KUBE-SERVICES, the others point at addresses nobody has. Only network
namespaces created here are touched (never the root namespace's iptables); no default routes.

Run as root: ``python -m vpcnet.bench.service_bench [--smoke]``. The traffic tools run inside the
namespaces as ``python -m vpcnet.bench.service_bench serve PORT`` / ``cps HOST PORT SECONDS``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vpcnet.bench.kube_iptables import KubeService, filler_services, restore_text, rule_count

SERVER_PORT = 8080
VIP_PORT = 80


# --- traffic tools (run inside network namespaces) -------------------------------------------------
def serve(port: int) -> None:
    """Accept, send the last octet of the local address, close; forever."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    print("serving", flush=True)
    while True:
        conn, _ = s.accept()
        try:
            conn.send(bytes([int(conn.getsockname()[0].rsplit(".", 1)[1])]))
        except OSError:
            pass
        conn.close()


def connect_loop(host: str, port: int, seconds: float) -> dict:
    """Short connections for ``seconds``: conn/s, p50/p99 ms of connect+read, errors, and how many
    connections each server octet answered."""
    linger_rst = struct.pack("ii", 1, 0)
    latencies, errors, answered = [], 0, Counter()
    start = time.perf_counter()
    end = start + seconds
    while (t0 := time.perf_counter()) < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2.0)
        try:
            s.connect((host, port))
            got = s.recv(1)
            latencies.append(time.perf_counter() - t0)
            answered[got[0] if got else -1] += 1
        except OSError:
            errors += 1
        finally:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_rst)
            s.close()
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q):
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3, 3) if latencies else None
    return {"conns": len(latencies), "cps": len(latencies) / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "errors": errors, "answered": {str(k): v for k, v in sorted(answered.items())}}


def tool_main(argv: list[str]) -> int:
    if argv[0] == "serve":
        serve(int(argv[1]))
        return 0
    print(json.dumps(connect_loop(argv[1], int(argv[2]), float(argv[3]))), flush=True)
    return 0


# --- measurement from outside ----------------------------------------------------------------------
def _child_env() -> dict:
    """This process's import path for the tools started in namespaces (``-m vpcnet.bench...``)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def start_server(netns: str, port: int = SERVER_PORT) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-m", "vpcnet.bench.service_bench",
                             "serve", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=_child_env())
    if proc.stdout.readline().strip() != "serving":
        proc.kill()
        raise RuntimeError(f"server in {netns} did not start")
    return proc


def stop_processes(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    procs.clear()


def run_cps(netns: str, host: str, port: int, seconds: float) -> dict:
    r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m", "vpcnet.bench.service_bench", "cps",
                        host, str(port), str(seconds)], capture_output=True, text=True, timeout=seconds + 60,
                       env=_child_env())
    if r.returncode != 0:
        raise RuntimeError(f"cps in {netns} to {host}:{port}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


@dataclass
class Figure:
    """The median of several runs of one target."""
    cps: float
    p50_ms: float
    p99_ms: float
    errors: int
    answered: dict
    runs: list[float]

    def text(self) -> str:
        spread = "/".join(f"{v}" for v in self.answered.values())
        return (f"{self.cps:,.0f} conn/s (runs {' '.join(f'{c:,.0f}' for c in self.runs)}; p50 {self.p50_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms; errors {self.errors}; answered by .{'/.'.join(self.answered)} "
                f"{spread})")


def measure(netns: str, targets: dict[str, tuple[str, int]], reps: int, seconds: float) -> dict[str, Figure]:
    """``reps`` runs per target, targets alternating; a short unrecorded warm-up run first."""
    return measure_from({name: (netns, host, port) for name, (host, port) in targets.items()}, reps, seconds)


def measure_from(targets: dict[str, tuple[str, str, int]], reps: int, seconds: float) -> dict[str, Figure]:
    """``measure`` with a client namespace per target: (netns, host, port)."""
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for netns, host, port in targets.values():
        run_cps(netns, host, port, min(0.3, seconds))
    for _ in range(reps):
        for name, (netns, host, port) in targets.items():
            runs[name].append(run_cps(netns, host, port, seconds))
    out = {}
    for name, rs in runs.items():
        answered: Counter = Counter()
        for r in rs:
            answered.update(r["answered"])
        out[name] = Figure(cps=statistics.median(r["cps"] for r in rs),
                           p50_ms=statistics.median(r["p50_ms"] or 0 for r in rs),
                           p99_ms=statistics.median(r["p99_ms"] or 0 for r in rs),
                           errors=sum(r["errors"] for r in rs), answered=dict(sorted(answered.items())),
                           runs=[r["cps"] for r in rs])
    return out


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def _netns_exec(netns: str, *cmd: str, stdin: str | None = None, timeout: float = 300) -> str:
    r = subprocess.run(["ip", "netns", "exec", netns, *cmd], input=stdin, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {netns}: {r.stderr.strip()[:2000]}")
    return r.stdout


# --- the iptables peer -----------------------------------------------------------------------------
class IptablesRig:
    """client -- router (kube-proxy-style rules) -- server, three private namespaces."""
    CLIENT, ROUTER_C, ROUTER_S = "10.100.0.2", "10.100.0.1", "10.200.0.1"
    ENDPOINTS = ("10.200.0.2", "10.200.0.3", "10.200.0.4")
    CLUSTER_CIDR = "10.100.0.0/16"
    MEASURED_VIP = "10.96.0.10"

    def __init__(self, backend: str):
        self.backend = backend          # "legacy" | "nft"
        prefix = f"vsb{os.getpid()}-{backend[0]}"
        self.client, self.router, self.server = f"{prefix}c", f"{prefix}r", f"{prefix}s"
        self.servers: list[subprocess.Popen] = []
        self.created: list[str] = []

    def start(self) -> "IptablesRig":
        for ns in (self.client, self.router, self.server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        for ns, peer in ((self.client, "toclient"), (self.server, "toserver")):
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", self.router)
        for ns, dev, addrs in ((self.client, "eth0", [self.CLIENT]), (self.router, "toclient", [self.ROUTER_C]),
                               (self.router, "toserver", [self.ROUTER_S]), (self.server, "eth0", list(self.ENDPOINTS))):
            for addr in addrs:
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        for net in ("10.96.0.0/16", "10.200.0.0/24"):        # no default routes: only the lab's prefixes
            _ip("-n", self.client, "route", "add", net, "via", self.ROUTER_C)
        _ip("-n", self.server, "route", "add", "10.100.0.0/16", "via", self.ROUTER_S)
        _netns_exec(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.servers.append(start_server(self.server))
        return self

    def load(self, services: int) -> tuple[float, int]:
        """Replace the router's nat and filter tables by ``services`` Services (the measured one
        last): (seconds iptables-restore took, rules)."""
        measured = KubeService("bench", "web", self.MEASURED_VIP, VIP_PORT, self.ENDPOINTS, SERVER_PORT)
        text = restore_text(filler_services(services - 1, len(self.ENDPOINTS)) + [measured], self.CLUSTER_CIDR)
        t0 = time.perf_counter()
        _netns_exec(self.router, f"iptables-{self.backend}-restore", stdin=text)
        return time.perf_counter() - t0, rule_count(text)

    def stop(self) -> None:
        stop_processes(self.servers)
        for ns in self.created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()


def run_iptables(backend: str, sizes: list[int], reps: int, seconds: float) -> dict[int, dict[str, Figure]]:
    tool = f"iptables-{backend}-restore"
    if shutil.which(tool) is None:
        print(f"iptables-{backend}: {tool} not found, skipped")
        return {}
    rig = IptablesRig(backend)
    results = {}
    try:
        rig.start()
        for n in sizes:
            t0 = time.perf_counter()
            took, rules = rig.load(n)
            figs = measure(rig.client, {"VIP": (rig.MEASURED_VIP, VIP_PORT), "direct": (rig.ENDPOINTS[0], SERVER_PORT)},
                           reps, seconds)
            results[n] = figs
            print(f"iptables-{backend} @ {n} Services: {rules:,} rules loaded in {took:.2f} s "
                  f"(measured VIP last of {n} in KUBE-SERVICES); phase {time.perf_counter() - t0:.1f} s, "
                  f"load average {os.getloadavg()[0]:.2f}")
            for name, fig in figs.items():
                print(f"  {name:<6} {fig.text()}")
    finally:
        rig.stop()
    return results


# --- vpcnet ----------------------------------------------------------------------------------------
def _service_docs(name: str, endpoints: list[str], node: str, namespace: str = "bench") -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
             "spec": {"ports": [{"name": "http", "port": VIP_PORT, "targetPort": SERVER_PORT, "protocol": "TCP"}]}},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
             "subsets": [{"addresses": [{"ip": ip, "nodeName": node} for ip in endpoints],
                          "ports": [{"name": "http", "port": SERVER_PORT, "protocol": "TCP"}]}]}]


class VpcnetRig:
    """Two nodes (real controller + a private netdev ovs-vswitchd each), each with a client and
    three server pods of its own VPC: node-1 runs VPC ``svcbench`` (namespace ``bench``, the
    many-Services side), node-2 VPC ``svcsmall`` (namespace ``small``, the few-Services side).
    A VPC's Services have flows only where the VPC runs, so the two sizes are measured at the
    same time, their runs alternating, and the noise of a shared machine hits both alike."""
    NODE = "node-1"
    NODE_SMALL = "node-2"
    SUBNET = "10.60.0.0/16"
    CLIENT = ("bench", "client", "10.60.0.11", 11)
    SERVERS = [("bench", f"web-{i}", f"10.60.0.{12 + i}", 12 + i) for i in range(3)]
    CLIENT_SMALL = ("small", "client", "10.61.0.11", 11)
    SERVERS_SMALL = [("small", f"web-{i}", f"10.61.0.{12 + i}", 12 + i) for i in range(3)]
    FILLER_ENDPOINT_BASE = (10 << 24) | (60 << 16) | (128 << 8)     # 10.60.128.0 on: no pod there
    SMALL_FILLER_BASE = (10 << 24) | (61 << 16) | (128 << 8)

    def __init__(self, tmp: Path, batch: int):
        self.tmp, self.batch = tmp, batch
        self.fab = None
        self.servers: list[subprocess.Popen] = []
        self.services = 0                  # Services applied (the measured one included)
        self.vip = ""
        self.batches: list[tuple[int, int, float]] = []   # (Services stored before, batch size, seconds)
        self.apply_error = ""

    def start(self) -> "VpcnetRig":
        root = Path(__file__).resolve().parent.parent      # the checkout, for tests.functional.brint
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        from tests.functional.brint import Fabric          # noqa: E402 (the functional-test harness)
        from vpcnet.app.api import Client

        self.fab = Fabric(self.tmp, nodes=(self.NODE, self.NODE_SMALL), dummy=False, audit_interval=3600.0)
        self.fab.client = Client(f"unix:{self.fab.state / 'api.sock'}", timeout=1800)   # big batches are slow
        docs = []
        for vpc, ns, cidr in (("svcbench", "bench", self.SUBNET), ("svcsmall", "small", "10.61.0.0/16")):
            docs += [{"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": vpc}, "spec": {"namespaces": [ns]}},
                     {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": f"{ns}-a"},
                      "spec": {"vpc": vpc, "cidrBlock": cidr, "namespaces": [ns]}}]
        self.fab.apply(docs + [self.fab.node_doc(self.NODE, 1), self.fab.node_doc(self.NODE_SMALL, 2)])
        self.fab.add_bridges()
        self.fab.add_uplinks()
        pods = [(ns, name, self.NODE, ip, ofport) for ns, name, ip, ofport in [self.CLIENT, *self.SERVERS]]
        pods += [(ns, name, self.NODE_SMALL, ip, ofport)
                 for ns, name, ip, ofport in [self.CLIENT_SMALL, *self.SERVERS_SMALL]]
        self.fab.add_pods(pods)
        self.fab.settle()
        for ns, name, _, _ in self.SERVERS + self.SERVERS_SMALL:
            self.servers.append(start_server(self.fab.pods[(ns, name)]["netns"]))
        self.fab.apply(_service_docs("web", [ip for _, _, ip, _ in self.SERVERS], self.NODE)
                       + _service_docs("web", [ip for _, _, ip, _ in self.SERVERS_SMALL], self.NODE_SMALL, "small"))
        self.services = 1
        self.vip = self.fab.api("GET", "/v1/objects/services/web?namespace=bench")["status"]["clusterIP"]
        self.vip_small = self.fab.api("GET", "/v1/objects/services/web?namespace=small")["status"]["clusterIP"]
        self.wait_installed(self.vip, timeout=60)
        self.wait_installed(self.vip_small, timeout=60, node=self.NODE_SMALL)
        return self

    def small_side(self, count: int) -> float:
        """Filler Services in ``small`` until it has ``count`` (one apply): the seconds until the
        last one's flow is on node-2."""
        docs = []
        for i in range(count - 1):
            base = self.SMALL_FILLER_BASE + 3 * i
            docs += _service_docs(f"filler-{i}", [socket.inet_ntoa(struct.pack("!I", base + k)) for k in range(3)],
                                  self.NODE_SMALL, "small")
        t0 = time.perf_counter()
        if docs:
            self.fab.apply(docs)
            last = self.fab.api("GET", f"/v1/objects/services/filler-{count - 2}?namespace=small")["status"]["clusterIP"]
            self.wait_installed(last, timeout=120, node=self.NODE_SMALL)
        return time.perf_counter() - t0

    @property
    def client_netns(self) -> str:
        return self.fab.pods[self.CLIENT[:2]]["netns"]

    @property
    def small_client_netns(self) -> str:
        return self.fab.pods[self.CLIENT_SMALL[:2]]["netns"]

    def filler_vip(self, i: int) -> str:
        return self.fab.api("GET", f"/v1/objects/services/filler-{i}?namespace=bench")["status"]["clusterIP"]

    def grow_to(self, target: int, deadline: float | None) -> None:
        """Apply filler Services in batches until ``target`` Services exist, ``deadline``
        (perf_counter) passed or an apply failed (``apply_error``); each batch's time is kept
        in ``batches``."""
        while self.services < target and not self.apply_error and (deadline is None or time.perf_counter() < deadline):
            first = self.services - 1
            count = min(self.batch, target - self.services)
            docs = []
            for i in range(first, first + count):
                base = self.FILLER_ENDPOINT_BASE + 3 * i
                eps = [socket.inet_ntoa(struct.pack("!I", base + k)) for k in range(3)]
                docs += _service_docs(f"filler-{i}", eps, self.NODE)
            t0 = time.perf_counter()
            try:
                self.fab.apply(docs)
            except (AssertionError, OSError) as exc:     # brint's api() asserts HTTP 200
                text = re.sub(r"\[UpsertIntentCommand.*\)\]", "[...the batch's commands...]", str(exc), flags=re.S)
                self.apply_error = (f"apply of {count} Services with {self.services:,} stored FAILED after "
                                    f"{time.perf_counter() - t0:.1f} s: {text[:400]}")
                self.services = self.stored_services()   # a timed-out transaction may still commit
                return
            self.batches.append((self.services, count, time.perf_counter() - t0))
            self.services += count

    def stored_services(self, quiet: float = 3.0, timeout: float = 120.0) -> int:
        """The Services in the API once their number stayed the same for ``quiet`` s."""
        last, since, t0 = None, time.perf_counter(), time.perf_counter()
        while True:
            count = len(self.fab.api("GET", "/v1/objects/services?namespace=bench")["items"])
            now = time.perf_counter()
            if count != last:
                last, since = count, now
            elif now - since >= quiet or now - t0 > timeout:
                return count
            time.sleep(1.0)

    def flow_count(self, node: str = NODE) -> int:
        out = self.fab.nodes[node].ofctl("dump-aggregate", "br-int")
        return int(out.split("flow_count=")[1].split()[0])

    def wait_installed(self, vip: str, timeout: float, quiet: float = 1.5, node: str = NODE) -> float:
        """Wait until ``vip`` has a flow on ``node``'s bridge and the flow count stayed the same
        for ``quiet`` s: the seconds that took."""
        t0 = time.perf_counter()
        ovs = self.fab.nodes[node]
        last, since = None, t0
        while True:
            now = time.perf_counter()
            count = self.flow_count(node)
            if count != last:
                last, since = count, now
            elif now - since >= quiet and ovs.ofctl("dump-flows", "br-int", f"tcp,nw_dst={vip}").count("group:"):
                return since - t0
            if now - t0 > timeout:
                raise AssertionError(f"flows for {vip} not installed after {timeout:.0f} s ({count} flows); "
                                     f"controller log (tail):\n{self.fab.controller_log_tail()}")
            time.sleep(0.5)

    def bucket_split(self) -> str:
        """How the measured Service's select group shares its buckets among the endpoints."""
        ovs = self.fab.nodes[self.NODE]
        gid = re.search(r"group:(\d+)", ovs.ofctl("dump-flows", "br-int", f"tcp,nw_dst={self.vip}")).group(1)
        per = Counter(re.findall(r"nat\(dst=([\d.]+)", ovs.ofctl("dump-groups", "br-int", gid)))
        return f"{sum(per.values())} buckets: " + ", ".join(f"{ip} x{n}" for ip, n in sorted(per.items()))

    def controller_cpu(self) -> float:
        """CPU seconds the controller process used so far (user + system)."""
        fields = Path(f"/proc/{self.fab.ctl.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop_processes(self.servers)
        if self.fab is None:
            return
        try:
            self.fab.stop()
        finally:
            self._stop_state_db()

    def _stop_state_db(self) -> None:
        """The controller's state ovsdb-server runs in a session of its own (it outlives a killed
        controller, by design): when the controller had to be killed, stop it here."""
        try:
            pid = int((self.fab.state / "ovsdb-server.pid").read_text())
            if str(self.fab.state) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not Path(f"/proc/{pid}").exists():
                        return
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _apply_report(rig: VpcnetRig, target: int) -> list[str]:
    """Lines on how the apply time grew with the Services already stored, and what reaching
    ``target`` would take at that growth (a least-squares line through the per-Service times)."""
    rows = rig.batches
    if not rows:
        return []
    per = [(stored, secs / n) for stored, n, secs in rows]
    sample = rows[::max(1, len(rows) // 8)]
    if sample[-1] is not rows[-1]:
        sample.append(rows[-1])
    lines = [f"  apply time per batch of {rig.batch} (Services stored before -> seconds): "
             + ", ".join(f"{stored:,}->{secs:.1f}" for stored, _, secs in sample)]
    if len(per) >= 3:
        xs, ys = [s for s, _ in per], [y for _, y in per]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
        icpt = my - slope * mx
        lines.append(f"  per Service applied: {icpt * 1e3:.1f} ms + {slope * 1e6:.2f} ms per 1,000 Services already "
                     f"stored (least squares over {len(per)} batches)")
        if rig.services < target:
            rest = sum(icpt + slope * s for s in range(rig.services, target))
            lines.append(f"  at that rate the remaining {target - rig.services:,} Services would take another "
                         f"{rest:,.0f} s (all {target:,}: {sum(secs for *_, secs in rows) + rest:,.0f} s)")
    return lines


def run_vpcnet(sizes: list[int], reps: int, seconds: float, batch: int, budget: float,
               keep: bool) -> tuple[dict[int, tuple[int, dict[str, Figure]]], str]:
    """({size: (Services actually present, figures)}, why a size was not reached or "")."""
    tmp = Path(tempfile.mkdtemp(prefix=f"vsb{os.getpid()}-"))
    rig = VpcnetRig(tmp, batch)
    results = {}
    short = ""
    try:
        t0 = time.perf_counter()
        rig.start()
        print(f"vpcnet setup (controller, ovs-vswitchd netdev, 4 pods, Service bench/web {rig.vip}): "
              f"{time.perf_counter() - t0:.1f} s; {rig.flow_count()} flows; its group: {rig.bucket_split()}")
        lo, hi = sizes
        deadline = time.perf_counter() + budget if budget else None
        t0 = time.perf_counter()
        secs = rig.small_side(lo)
        print(f"vpcnet @ {lo:,} Services: {lo - 1:,} applied in {secs:.1f} s (VPC svcsmall, node-2, one API call), "
              f"all flows on the bridge; {rig.flow_count(rig.NODE_SMALL):,} flows on node-2")
        t0 = time.perf_counter()
        cpu0 = rig.controller_cpu()
        rig.grow_to(hi, deadline)
        applied = time.perf_counter() - t0
        cpu1 = rig.controller_cpu()
        last_vip = rig.filler_vip(rig.services - 2) if rig.services > 1 else rig.vip
        installed = rig.wait_installed(last_vip, timeout=max(120.0, 0.1 * rig.services))
        cpu2 = rig.controller_cpu()
        if rig.services < hi:
            short = "an apply failed" if rig.apply_error else f"the {budget:.0f} s apply budget ran out"
        reached = f" (TARGET {hi:,} NOT REACHED: {short})" if short else ""
        print(f"vpcnet @ {rig.services:,} Services{reached}: {rig.services - 1:,} applied in {applied:.1f} s "
              f"(VPC svcbench, node-1, {len(rig.batches)} API calls, controller CPU {cpu1 - cpu0:.1f} s), all flows on "
              f"the bridge {installed:.1f} s later (controller CPU {cpu2 - cpu1:.1f} s); {rig.flow_count():,} flows on "
              f"node-1; load average {os.getloadavg()[0]:.2f}")
        if short and rig.apply_error:
            print(f"  {rig.apply_error}")
        for line in _apply_report(rig, hi):
            print(line)
        figs = measure_from({"VIP lo": (rig.small_client_netns, rig.vip_small, VIP_PORT),
                             "VIP hi": (rig.client_netns, rig.vip, VIP_PORT),
                             "direct lo": (rig.small_client_netns, VpcnetRig.SERVERS_SMALL[0][2], SERVER_PORT),
                             "direct hi": (rig.client_netns, VpcnetRig.SERVERS[0][2], SERVER_PORT)},
                            reps, seconds)
        print(f"vpcnet measured with both sizes present, runs alternating (node-2 @ {lo:,}, node-1 @ "
              f"{rig.services:,}); controller CPU while measuring {rig.controller_cpu() - cpu2:.2f} s")
        for n, key, got in ((lo, "lo", lo), (hi, "hi", rig.services)):
            results[n] = (got, {"VIP": figs[f"VIP {key}"], "direct": figs[f"direct {key}"]})
            for name in ("VIP", "direct"):
                print(f"  @{got:<7,} {name:<6} {results[n][1][name].text()}")
        try:
            groups = rig.fab.nodes[rig.NODE].ofctl("dump-group-stats", "br-int", timeout=120).count("group_id=")
            print(f"vpcnet groups on the bridge at the end: {groups:,}")
        except Exception as exc:       # a figure, not a check: say why it is missing
            print(f"vpcnet groups on the bridge at the end: unknown ({exc})")
    finally:
        rig.stop()
        if keep:
            print(f"run directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return results, short


# --- the report ------------------------------------------------------------------------------------
def print_table(title: str, rows: dict[str, dict[int, tuple[int, Figure]]], sizes: list[int]) -> None:
    lo, hi = sizes
    print(f"{title}:")
    print(f"  {'':<16} {f'@{lo:,}':>14} {f'@{hi:,}':>14} {'ratio':>7}")
    for name, by_size in rows.items():
        if lo not in by_size or hi not in by_size:
            continue
        (_, a), (got, b) = by_size[lo], by_size[hi]
        note = "" if got == hi else f"   (only {got:,} Services present, see above)"
        print(f"  {name:<16} {a.cps:>14,.0f} {b.cps:>14,.0f} {b.cps / a.cps:>7.2f}{note}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["serve"], ["cps"]):
        return tool_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes and short runs (explicit values still win)")
    ap.add_argument("--sizes", help="the two Service counts, e.g. 10,10000")
    ap.add_argument("--reps", type=int, help="runs per figure (median)")
    ap.add_argument("--seconds", type=float, help="seconds per run")
    ap.add_argument("--batch", type=int, default=50, help="Services per API apply call (small enough that one "
                    "call stays under the state database's 30 s transaction timeout up to ~10,000 stored Services)")
    ap.add_argument("--apply-budget", type=float, help="seconds for applying vpcnet's Services (0: no limit)")
    ap.add_argument("--backends", default="vpcnet,legacy,nft", help="which of vpcnet, legacy, nft to run")
    ap.add_argument("--keep", action="store_true", help="keep the vpcnet run directory (controller log)")
    args = ap.parse_args(argv)
    defaults = dict(sizes="10,10000", reps=3, seconds=3.0, apply_budget=360.0)
    smoke = dict(sizes="10,200", reps=2, seconds=0.4, apply_budget=60.0)
    for k, v in (smoke if args.smoke else defaults).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    sizes = [int(x) for x in args.sizes.split(",")]
    backends = args.backends.split(",")
    if len(sizes) != 2 or min(sizes) < 1:
        raise SystemExit("--sizes takes two Service counts")
    if os.geteuid() != 0:
        raise SystemExit("service_bench needs root (network namespaces)")
    t_start = time.perf_counter()
    print(f"service_bench: short TCP connections/s through one Service VIP (connect, read 1 byte, RST close), "
          f"median of {args.reps} runs of {args.seconds:g} s, VIP and direct alternating; Services {sizes[0]:,} and "
          f"{sizes[1]:,}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    vip_rows: dict[str, dict[int, tuple[int, Figure]]] = {}
    direct_rows: dict[str, dict[int, tuple[int, Figure]]] = {}
    phases = []
    for backend in ("legacy", "nft"):
        if backend in backends:
            t0 = time.perf_counter()
            got = run_iptables(backend, sizes, args.reps, args.seconds)
            phases.append(f"iptables-{backend} {time.perf_counter() - t0:.0f} s")
            vip_rows[f"iptables-{backend}"] = {n: (n, f["VIP"]) for n, f in got.items()}
            direct_rows[f"iptables-{backend}"] = {n: (n, f["direct"]) for n, f in got.items()}
    vpc, short = {}, ""
    if "vpcnet" in backends:
        t0 = time.perf_counter()
        vpc, short = run_vpcnet(sizes, args.reps, args.seconds, args.batch, args.apply_budget, args.keep)
        phases.append(f"vpcnet {time.perf_counter() - t0:.0f} s")
        vip_rows = {"vpcnet": {n: (got, f["VIP"]) for n, (got, f) in vpc.items()}, **vip_rows}
        direct_rows = {"vpcnet": {n: (got, f["direct"]) for n, (got, f) in vpc.items()}, **direct_rows}
    print_table("conn/s through the Service VIP (median)", vip_rows, sizes)
    print_table("direct reference: conn/s to an endpoint address, no VIP (median)", direct_rows, sizes)
    rc = 0
    for rows, want in ((vip_rows, 3), (direct_rows, 1)):
        for name, by_size in rows.items():
            for n, (got, fig) in by_size.items():
                if len([k for k in fig.answered if k != "-1"]) != want:
                    print(f"CHECK FAILED: {name} @ {got:,}: answered by {fig.answered}, expected {want} endpoint(s)")
                    rc = 1
    lo, hi = sizes
    if lo in vpc and hi in vpc and vpc[hi][0] == hi:
        ratio = vpc[hi][1]["VIP"].cps / vpc[lo][1]["VIP"].cps
        print(f"goal vpcnet@{hi} >= 0.9 x vpcnet@{lo}: {'met' if ratio >= 0.9 else 'missed'} (ratio {ratio:.2f})")
    elif lo in vpc and hi in vpc:
        got = vpc[hi][0]
        ratio = vpc[hi][1]["VIP"].cps / vpc[lo][1]["VIP"].cps
        print(f"goal vpcnet@{hi} >= 0.9 x vpcnet@{lo}: not measured (only {got:,} Services applied: {short}; "
              f"ratio at {got:,}: {ratio:.2f})")
    print(f"phases: {', '.join(phases)}; total {time.perf_counter() - t_start:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
