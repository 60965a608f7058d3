"""Install-rate benchmark (printed figures, not a test): the controller pushing a node's compiled
flows into a real bridge vs ``ovs-ofctl --bundle add-flows`` of the same flows, in the same run.

Setup (everything private, under a temporary directory, removed at the end):

* a synthetic cluster whose node ``node-000`` compiles to about ``--flows`` flows: ``--local-pods``
  pods (default 200) on that node in ``--vpcs`` VPCs (4 subnets each: one dual stack, one private),
  and as many *remote* pods of the same VPCs on 99 other nodes as it takes to reach the target
  (a local pod costs ~9 flows, a remote one ~2.25: its ARP answer and L3 neighbour entries).
  The count is calibrated on two small compiles, so the total lands within a few flows of it.
* one ``PrivateOvs`` (dummy datapath); the real os-ken app of the controller
  (``vpcnet.app.ofapp.BrIntApp`` via ``ofapp.run``) listening on 127.0.0.1, served by a tiny
  engine (``BenchEngine``) that only makes a ``DatapathLink`` when a bridge connects.
* per repetition, fresh bridges on that OVS, one per side, installed in an order rotated from
  one repetition to the next (so no side always goes first):
    - controller (``brcontN``, controller ``tcp:127.0.0.1:PORT``): timed
      ``Reconciler.resync(desired)`` on the main thread, exactly what the controller does when
      br-int connects (flow dump, round, ``ofencode.encode_flow_mod`` of every flow with the round
      put in the cookie while encoding, one atomic ONF bundle streamed by ``DatapathLink.bundle``
      in 256 KiB ``Datapath.send`` chunks, barrier, caches);
    - ofctl (``brofctN``, no controller, fail_mode=secure): timed
      ``ovs-ofctl -O OpenFlow13 --bundle add-flows brofctN FILE`` with the ``render_for_ofctl``
      text of the same flows carrying the same round cookies (the text is written before timing);
    - unless ``--no-experiments``, ``prechunk``: the same flow-mods encoded before timing and
      sent by ``DatapathLink.bundle`` (the controller's transport + the switch: the floor of the
      controller's path).
  Afterwards every bridge must hold the same number of flows and ``dump-flows --no-stats`` text
  identical to the ofctl bridge's; then they are deleted.
* the audit (unless ``--no-audit``): one more controller install, then timed
  ``Reconciler.audit()`` runs on it: the first one (zero drift; it turns the bytes sent into
  signatures), a steady-state one (zero drift), one after ``--alter`` flows were changed by hand
  with ``ovs-ofctl add-flows`` (same keys, other actions: found as altered and repaired in one
  bundle), and one after the repair (zero drift). For each: total, the flow dump
  (``DatapathLink.dump_flows``: the switch, os-ken's receive thread splitting the replies into
  entries, in slices of ~4096 flows), and how long the reconciler's lock was held.

Figures: flows, seconds and flows/s (best and median of ``--repeat``) per side, the ratio
controller rate / ofctl rate (goal >= 0.8; no assert, the machine's load shows in the spread),
the controller's time split (prepare = flow dump + round, send = encoding + queueing the chunks
(pipelined with os-ken's send thread and the switch), wait = after the last chunk until the
commit's barrier reply (the reconciler builds its new caches meanwhile), after = adopting them,
metrics), process and ovs-vswitchd CPU seconds per side,
and offline CPU costs of each step (the direct encoder on every flow; os-ken's encoding and
serialisation, the previous path, on a sample, checked byte for byte against the direct one).
``--profile`` adds one more controller install under cProfile (main thread only: it encodes and
queues; os-ken's send thread is separate) and prints the top entries.

Run:   .venv/bin/python -m vpcnet.bench.install_bench [--flows 50000] [--repeat 3] [--profile]
Smoke: .venv/bin/python -m vpcnet.bench.install_bench --flows 2000 --repeat 1
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gc
import io
import logging
import os
import pstats
import queue
import re
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

GOAL_RATIO = 0.8
LINK_TIMEOUT = 600.0      # a 50,000-flow bundle must not trip DatapathLink's 30 s default
CONNECT_TIMEOUT = 60.0
OFCTL_TIMEOUT = 600.0
NODE = "node-000"
N_NODES = 100
SUBNETS_PER_VPC = 4


# --- the synthetic cluster ---------------------------------------------------------------------
def build_cluster(local: int, remote: int, vpcs: int):
    """``local`` pods on NODE and ``remote`` pods on the other nodes, round-robin over VPCs and
    subnets (subnet 1 of each VPC is dual stack, the last one private and open to subnet 0)."""
    from vpcnet.flows import ClusterIn, NodeIn, PodIn, SubnetIn, VpcIn
    vpc_list = [VpcIn(f"vpc{v}", v + 1, 5000 + v) for v in range(vpcs)]
    subnets = []
    for v in range(vpcs):
        for j in range(SUBNETS_PER_VPC):
            cidrs, gws = [f"10.{j}.0.0/16"], [f"10.{j}.0.1"]
            if j == 1:
                cidrs.append(f"fd{v & 0xFF:02x}:{j}::/64")
            private = j == SUBNETS_PER_VPC - 1
            g = v * SUBNETS_PER_VPC + j
            subnets.append(SubnetIn(f"vpc{v}-s{j}", f"vpc{v}", tuple(cidrs), tuple(gws), 100 + g, 1 + g,
                                    private=private, allow_subnets=(f"vpc{v}-s0",) if private else ()))
    nodes = [NodeIn(f"node-{k:03d}", k + 1, 1) for k in range(N_NODES)]
    next_host: dict[tuple[int, int], int] = {}
    next_port = [2] * N_NODES
    pods = []
    for i in range(local + remote):
        v, j = i % vpcs, (i // vpcs) % SUBNETS_PER_VPC
        k = 0 if i < local else 1 + i % (N_NODES - 1)
        h = next_host.get((v, j), 2)
        next_host[(v, j)] = h + 1
        if h > 0xFFFE:
            raise SystemExit("too many pods per subnet for a /16: use more --vpcs")
        ips = [f"10.{j}.{h >> 8}.{h & 0xFF}"] + ([f"fd{v & 0xFF:02x}:{j}::{h:x}"] if j == 1 else [])
        s = subnets[v * SUBNETS_PER_VPC + j]
        mac = f"0a:00:{(i >> 24) & 0xFF:02x}:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"
        pods.append(PodIn(f"ns{v}", f"pod-{i:06d}", s.vpc, s.name, tuple(ips), mac, nodes[k].name,
                          next_port[k], f"veth{i}"))
        next_port[k] += 1
    return ClusterIn(vpc_list, subnets, pods, nodes)


def node_flows(local: int, remote: int, vpcs: int) -> dict:
    from vpcnet.flows import compile_node
    return compile_node(build_cluster(local, remote, vpcs), NODE)


def count(desired: dict) -> int:
    return sum(len(f) for f in desired.values())


def desired_flows(target: int, local: int, vpcs: int) -> tuple[dict, int, int]:
    """(owner -> flows of NODE, local pods, remote pods) with about ``target`` flows in all
    (fewer local pods than asked if those alone would exceed the target)."""
    probe = 1000
    base = count(node_flows(local, 0, vpcs))
    while base > target and local > 1:
        local //= 2
        base = count(node_flows(local, 0, vpcs))
    more = count(node_flows(local, probe, vpcs))
    per_remote = (more - base) / probe
    remote = max(0, round((target - base) / per_remote))
    desired = node_flows(local, remote, vpcs)
    while count(desired) > target and remote > 0:   # the slope is an average: step back if over
        remote -= max(1, int((count(desired) - target) / per_remote))
        desired = node_flows(local, remote, vpcs)
    return desired, local, remote


# --- the controller side -------------------------------------------------------------------------
class BenchEngine:
    """What ``ofapp.BrIntApp`` calls, and nothing more: a DatapathLink per connected bridge."""

    def __init__(self):
        from vpcnet.app.metrics import Metrics
        self.metrics = Metrics()
        self.lock = threading.Lock()
        self.links: dict = {}
        self.connected: queue.Queue = queue.Queue()

    def datapath_up(self, dp) -> None:
        from vpcnet.app.oflink import DatapathLink
        link = DatapathLink(dp, timeout=LINK_TIMEOUT)
        with self.lock:
            old, self.links[dp.id] = self.links.get(dp.id), link
        if old is not None:
            old.close()
        self.connected.put(dp.id)

    def datapath_down(self, dp) -> None:
        with self.lock:
            link = self.links.get(dp.id)
            if link is None or link.dp is not dp:
                return
            del self.links[dp.id]
        link.close()

    def port_changed(self, dp, name: str, ofport: int, deleted: bool) -> None:
        pass

    def link_of(self, dp):
        link = self.links.get(dp.id)
        return link if link is not None and link.dp is dp else None

    def wait_link(self, dpid: int, timeout: float = CONNECT_TIMEOUT):
        """The DatapathLink of ``dpid`` once os-ken finished the handshake (MAIN_DISPATCHER)."""
        from os_ken.controller.handler import MAIN_DISPATCHER
        deadline = time.monotonic() + timeout
        while True:
            link = self.links.get(dpid)
            if link is not None and link.dp.state == MAIN_DISPATCHER:
                return link
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"datapath {dpid:016x} did not connect within {timeout:.0f}s")
            try:
                self.connected.get(timeout=min(left, 0.05))
            except queue.Empty:
                pass


class Timed:
    """Instruments one DatapathLink (instance attributes only; nothing in app/ changes): when
    ``bundle`` starts and ends, and when the first and last buffer went to os-ken's send queue."""

    def __init__(self, link):
        self.bundle_start = self.bundle_end = self.first_send = self.last_send = None
        bundle, send = link.bundle, link.dp.send

        def timed_bundle(messages, timeout=None, **kwargs):
            self.bundle_start = time.perf_counter()
            try:
                return bundle(messages, timeout, **kwargs)
            finally:
                self.bundle_end = time.perf_counter()

        def timed_send(buf, *args, **kwargs):
            ok = send(buf, *args, **kwargs)
            now = time.perf_counter()
            if self.first_send is None and self.bundle_start is not None:
                self.first_send = now
            self.last_send = now
            return ok

        link.bundle = timed_bundle
        link.dp.send = timed_send


class TimedLock:
    """A Reconciler's lock that adds up how long it was held."""

    def __init__(self, lock):
        self.lock, self.held, self._t = lock, 0.0, 0.0

    def __enter__(self):
        self.lock.acquire()
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.held += time.perf_counter() - self._t
        self.lock.release()
        return False


def vswitchd_cpu(pid: int) -> float:
    """User + system CPU seconds ovs-vswitchd has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Is something listening on 127.0.0.1:port? (/proc: connecting would start an OpenFlow session)"""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as fh:
            return any(line.split()[1] == want and line.split()[3] == "0A" for line in fh.readlines()[1:])
    except OSError:
        return False


_COOKIE = re.compile(r"cookie=0x[0-9a-f]+,? ?")


class Bench:
    def __init__(self, ovs, engine, port: int, desired: dict, rounded: list, ofctl_file: Path, n_flows: int):
        self.ovs, self.engine, self.port = ovs, engine, port
        self.desired, self.rounded, self.ofctl_file, self.n = desired, rounded, ofctl_file, n_flows
        self.vswitchd = ovs.pids["ovs-vswitchd"]
        self.dpids = iter(range(0x100, 0x10000))
        self._encoded: list | None = None

    def install(self, bridge: str, profiler: cProfile.Profile | None = None):
        """(Reconciler, timings) of a timed ``Reconciler.resync`` on a fresh bridge."""
        from vpcnet.app.reconciler import Reconciler
        dpid = next(self.dpids)
        self.ovs.add_bridge(bridge, dpid, controller=f"tcp:127.0.0.1:{self.port}")
        link = self.engine.wait_link(dpid)
        timed = Timed(link)
        rec = Reconciler(NODE, link, self.engine.metrics)
        gc.collect()
        cpu0, sw0 = time.process_time(), vswitchd_cpu(self.vswitchd)
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        rec.resync(self.desired)
        if profiler is not None:
            profiler.disable()
        t1 = time.perf_counter()
        cpu1, sw1 = time.process_time(), vswitchd_cpu(self.vswitchd)
        if rec.round != 1:
            raise RuntimeError(f"{bridge}: expected round 1 on a fresh bridge, got {rec.round}")
        return rec, {"seconds": t1 - t0, "prepare": timed.bundle_start - t0,
                     "send": (timed.last_send or timed.bundle_start) - timed.bundle_start,
                     "wait": timed.bundle_end - (timed.last_send or timed.bundle_start),
                     "after": t1 - timed.bundle_end, "cpu_self": cpu1 - cpu0, "cpu_switch": sw1 - sw0}

    def controller(self, bridge: str, profiler: cProfile.Profile | None = None) -> dict:
        return self.install(bridge, profiler)[1]

    def ofctl(self, bridge: str) -> dict:
        self.ovs.add_bridge(bridge, next(self.dpids))
        gc.collect()
        ch0, sw0 = children_cpu(), vswitchd_cpu(self.vswitchd)
        t0 = time.perf_counter()
        self.ovs.ofctl("--bundle", "add-flows", bridge, str(self.ofctl_file), timeout=OFCTL_TIMEOUT)
        t1 = time.perf_counter()
        ch1, sw1 = children_cpu(), vswitchd_cpu(self.vswitchd)
        return {"seconds": t1 - t0, "cpu_self": ch1 - ch0, "cpu_switch": sw1 - sw0}

    def compare(self, bridge: str, ref: list[str], ref_bridge: str) -> str:
        """Same flow count and dump text as the ofctl bridge of the round (``ref``)?"""
        a = self.ovs.dump_flows(bridge)
        if len(a) != self.n or len(ref) != self.n:
            raise RuntimeError(f"flow counts differ from {self.n}: {bridge} has {len(a)}, {ref_bridge} has {len(ref)}")
        if a == ref:
            return "identical"
        sa, sb = sorted(_COOKIE.sub("", x) for x in a), sorted(_COOKIE.sub("", x) for x in ref)
        if sa == sb:
            return "identical without cookies (cookies differ)"
        other = set(sb)
        diff = [x for x in sa if x not in other][:3]
        raise RuntimeError(f"dumps of {bridge} and {ref_bridge} differ, e.g. {diff}")

    def experiment(self, bridge: str, kind: str) -> dict:
        """One install by a bench-only path (see EXPERIMENTS): ``prechunk`` = the flow-mods
        encoded (``ofencode.encode_flow_mod``, round cookie in) before timing, then
        ``DatapathLink.bundle`` of those bytes: the controller's transport and the switch alone."""
        if kind != "prechunk":
            raise ValueError(kind)
        from vpcnet.app import ofencode
        if self._encoded is None:
            self._encoded = [ofencode.encode_flow_mod(f) for f in self.rounded]
        dpid = next(self.dpids)
        self.ovs.add_bridge(bridge, dpid, controller=f"tcp:127.0.0.1:{self.port}")
        link = self.engine.wait_link(dpid)
        gc.collect()
        cpu0, sw0 = time.process_time(), vswitchd_cpu(self.vswitchd)
        t0 = time.perf_counter()
        link.bundle(self._encoded, LINK_TIMEOUT)
        t1 = time.perf_counter()
        cpu1, sw1 = time.process_time(), vswitchd_cpu(self.vswitchd)
        return {"seconds": t1 - t0, "cpu_self": cpu1 - cpu0, "cpu_switch": sw1 - sw0}

    def audit(self, bridge: str, n_alter: int) -> list[tuple[str, dict]]:
        """Timed ``Reconciler.audit()`` runs on a freshly installed bridge (see the docstring)."""
        rec, _ = self.install(bridge)
        link = rec.link
        lock = rec.lock = TimedLock(rec.lock)
        dump, dumped = link.dump_flows, []

        def timed_dump(*args, **kwargs):
            t = time.perf_counter()
            try:
                return dump(*args, **kwargs)
            finally:
                dumped.append(time.perf_counter() - t)

        link.dump_flows = timed_dump
        out = []

        def one(what: str) -> dict:
            dumped.clear()
            lock.held = 0.0
            gc.collect()
            cpu0, t0 = time.process_time(), time.perf_counter()
            drift = rec.audit()
            t1, cpu1 = time.perf_counter(), time.process_time()
            r = {"seconds": t1 - t0, "cpu": cpu1 - cpu0, "dump": sum(dumped), "dumps": len(dumped),
                 "lock": lock.held, "drift": dict(drift)}
            out.append((what, r))
            return r

        one("first audit after the install (zero drift)")
        one("steady state (zero drift)")
        from vpcnet.flows.model import Output
        from vpcnet.flows.render import render_for_ofctl
        candidates = [f for f in self.rounded if f.actions]
        victims = candidates[::max(1, len(candidates) // max(1, n_alter))][:n_alter]
        spec = Path(self.ofctl_file).with_name("alter.txt")   # an ADD of the same key replaces the flow
        spec.write_text(render_for_ofctl([dataclasses.replace(f, actions=(Output(4242),)) for f in victims]))
        self.ovs.ofctl("add-flows", bridge, str(spec), timeout=OFCTL_TIMEOUT)
        r = one(f"{len(victims)} flows altered by hand (ovs-ofctl add-flows)")
        if r["drift"] != {"altered": len(victims)}:
            raise RuntimeError(f"audit found {r['drift']}, expected {len(victims)} altered flows")
        r = one("after the repair (zero drift)")
        if r["drift"]:
            raise RuntimeError(f"audit after the repair still found {r['drift']}")
        if len(self.ovs.dump_flows(bridge)) != self.n:
            raise RuntimeError(f"{bridge}: flow count changed by the audit")
        return out

    def drop(self, *bridges: str) -> None:
        for br in bridges:
            self.ovs.vsctl("--if-exists", "del-br", br, timeout=120)


CHUNK_KIB = 256
EXPERIMENTS = {
    "prechunk": f"the flow-mods encoded before timing, then DatapathLink.bundle ({CHUNK_KIB} KiB "
                f"Datapath.send chunks): transport + switch, the floor of the controller's path",
}


# --- offline CPU costs -----------------------------------------------------------------------------
def offline_costs(flows: list, sample: int) -> dict:
    """CPU costs without a switch: the direct encoder (round cookie set while encoding) and the
    raw-bytes signature (``flow_mod_identity``, what an audit computes once per installed flow)
    on every flow; os-ken's encoding (Wire.flow_mod) and serialisation of the bundle-add
    messages, the previous path, on ``sample`` flows, checked byte for byte against the direct
    encoder's bundle-add bytes (the same bytes ``DatapathLink.bundle`` sends)."""
    from vpcnet.app import ofcompare, ofencode, oflink, ofwire
    from vpcnet.flows import cookies
    keep = ~cookies.mask_round() & ((1 << 64) - 1)
    base = [dataclasses.replace(f, cookie=f.cookie & keep) for f in flows]   # as compiled: round 0
    ofencode.ENCODER.clear()
    direct, fallbacks = ofencode.ENCODER.direct, ofencode.ENCODER.fallbacks
    gc.collect()
    t0 = time.process_time()
    encoded = [ofencode.encode_flow_mod(f, "add", (f.cookie & keep) | (1 << cookies.ROUND_SHIFT)) for f in base]
    t1 = time.process_time()
    for m in encoded:
        ofcompare.flow_mod_identity(m)
    t2 = time.process_time()
    dp = ofwire.standin_datapath()
    wire = ofwire.Wire(dp)
    ofp, parser = dp.ofproto, dp.ofproto_parser
    flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
    step = max(1, len(flows) // sample)
    picked = list(range(0, len(flows), step))[:sample]
    gc.collect()
    t3 = time.process_time()
    mods = [wire.flow_mod(flows[i], "add") for i in picked]
    t4 = time.process_time()
    bufs = []
    for i, m in zip(picked, mods):
        msg = parser.ONFBundleAddMsg(dp, 1, flags, m, [])
        msg.set_xid(0x80000000 | i)
        msg.serialize()
        bufs.append(bytes(msg.buf))
    t5 = time.process_time()
    same = 0
    for i, want in zip(picked, bufs):
        m = encoded[i]
        got = oflink._BUNDLE_ADD.pack(4, ofp.OFPT_EXPERIMENTER, 24 + len(m), 0x80000000 | i, 0x4F4E4600,
                                      ofp.ONF_ET_BUNDLE_ADD_MESSAGE, 1, flags) + m[:4] + (0x80000000 | i).to_bytes(4, "big") + m[8:]
        if got != want:
            raise RuntimeError(f"direct encoding differs from os-ken for {flows[i]}:\n  {got.hex()}\n  {want.hex()}")
        same += 1
    n = len(picked)
    return {"encode": t1 - t0, "identity": t2 - t1, "osken_encode": (t4 - t3) / n, "osken_serialize": (t5 - t4) / n,
            "sample": n, "same": same, "bytes": sum(24 + len(m) for m in encoded),
            "direct": ofencode.ENCODER.direct - direct, "fallbacks": ofencode.ENCODER.fallbacks - fallbacks}


def fmt_rate(n: int, s: float) -> str:
    return f"{n / s:10,.0f} flows/s"


def summary(name: str, n: int, runs: list[dict]) -> tuple[float, float]:
    secs = [r["seconds"] for r in runs]
    best, med = min(secs), statistics.median(secs)
    print(f"  {name:<34} best {best:7.3f} s {fmt_rate(n, best)}   median {med:7.3f} s {fmt_rate(n, med)}"
          f"   (runs: {', '.join(f'{s:.3f}' for s in secs)})")
    return best, med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=50000, help="target flows on the node (default 50000)")
    ap.add_argument("--repeat", type=int, default=3, help="installs per side (best and median reported)")
    ap.add_argument("--local-pods", type=int, default=200, help="pods on the benchmarked node")
    ap.add_argument("--vpcs", type=int, default=2, help="VPCs (all present on the node)")
    ap.add_argument("--profile", action="store_true",
                    help="one more controller install under cProfile; print the top entries")
    ap.add_argument("--profile-lines", type=int, default=25)
    ap.add_argument("--keep", action="store_true", help="keep the OVS run directory (logs)")
    ap.add_argument("--no-experiments", action="store_true",
                    help="skip the bench-only install path (prechunk)")
    ap.add_argument("--no-audit", action="store_true", help="skip the audit timings")
    ap.add_argument("--alter", type=int, default=100, help="flows changed by hand for the audit (default 100)")
    ap.add_argument("--osken-sample", type=int, default=5000,
                    help="flows for the offline os-ken cost and byte-equality check (default 5000)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from vpcnet.app import ofapp
    from vpcnet.flows import cookies
    from vpcnet.flows.render import render_for_ofctl
    from vpcnet.sim.ovs import PrivateOvs

    print(f"install_bench: target {args.flows:,} flows, {args.repeat} runs per side; python "
          f"{sys.version.split()[0]}", flush=True)
    t0 = time.perf_counter()
    desired, local, remote = desired_flows(args.flows, args.local_pods, args.vpcs)
    n = count(desired)
    # what the reconciler installs on a fresh bridge: round 1 in every cookie
    rounded = [dataclasses.replace(f, cookie=cookies.with_round(f.cookie, 1))
               for flows in desired.values() for f in flows]
    print(f"desired flows of {NODE}: {n:,} ({len(desired):,} owners; {local} local pods + "
          f"{remote:,} remote pods in {args.vpcs} VPCs) compiled in {time.perf_counter() - t0:.1f} s", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="vpcnet-install-bench-"))
    ofctl_file = tmp / "flows.txt"
    ofctl_file.write_text(render_for_ofctl(rounded))
    ovs = PrivateOvs(tmp / "ovs", dummy=True)
    status = 0
    try:
        ovs.start()
        version = ovs.vsctl("--version").splitlines()[0]
        port = free_port()
        engine = BenchEngine()
        ofapp.run(engine, f"127.0.0.1:{port}")
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not listening(port):
            if time.monotonic() > deadline:
                raise RuntimeError("os-ken did not start listening")
            time.sleep(0.05)
        print(f"switch: {version}, dummy datapath; controller: os-ken BrIntApp on 127.0.0.1:{port}; "
              f"ofctl input {ofctl_file.stat().st_size / 1e6:.1f} MB", flush=True)

        bench = Bench(ovs, engine, port, desired, rounded, ofctl_file, n)
        sides = ["controller", "ofctl"] + ([] if args.no_experiments else list(EXPERIMENTS))
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for i in range(args.repeat):
            order = sides[i % len(sides):] + sides[:i % len(sides)]   # rotate: no side always first
            bridges = {side: f"br{side[:4]}{i}" for side in sides}
            for side in order:
                if side == "controller":
                    runs[side].append(bench.controller(bridges[side]))
                elif side == "ofctl":
                    runs[side].append(bench.ofctl(bridges[side]))
                else:
                    runs[side].append(bench.experiment(bridges[side], side))
            ref = ovs.dump_flows(bridges["ofctl"])
            same = {side: bench.compare(bridges[side], ref, bridges["ofctl"]) for side in sides if side != "ofctl"}
            c, o = runs["controller"][-1], runs["ofctl"][-1]
            print(f"run {i + 1}: controller {c['seconds']:.3f} s (prepare {c['prepare']:.3f}, send {c['send']:.3f}, "
                  f"wait {c['wait']:.3f}, after {c['after']:.3f}); ofctl {o['seconds']:.3f} s"
                  + "".join(f"; {side} {runs[side][-1]['seconds']:.3f} s" for side in EXPERIMENTS if side in runs)
                  + f" | every bridge {n:,} flows, dumps identical to ofctl's: "
                  + ("yes" if all(v == "identical" for v in same.values()) else str(same)), flush=True)
            bench.drop(*bridges.values())
        ctrl_runs, ofctl_runs = runs["controller"], runs["ofctl"]

        print(f"\nresults ({n:,} flows, one atomic bundle each):")
        c_best, c_med = summary("controller (Reconciler.resync)", n, ctrl_runs)
        o_best, o_med = summary("ovs-ofctl --bundle add-flows", n, ofctl_runs)
        ratio_best, ratio_med = o_best / c_best, o_med / c_med
        verdict = "ok" if ratio_best >= GOAL_RATIO else "MISSED"
        print(f"  ratio controller rate / ofctl rate: best {ratio_best:.2f}, median {ratio_med:.2f}   "
              f"goal >= {GOAL_RATIO} [{verdict}]")

        med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
        print(f"\ncontroller time split (median of {len(ctrl_runs)}):")
        for what, key in (("prepare: flow dump + round", "prepare"),
                          ("send: encode + queue 256 KiB chunks (pipelined with the switch)", "send"),
                          ("wait: last chunk queued -> commit's barrier reply (caches built)", "wait"),
                          ("after: caches, metrics", "after")):
            print(f"  {what:<63} {med(ctrl_runs, key):7.3f} s")
        print(f"CPU seconds during the install (median): controller process {med(ctrl_runs, 'cpu_self'):.3f}, "
              f"ovs-vswitchd {med(ctrl_runs, 'cpu_switch'):.3f} | ovs-ofctl process "
              f"{med(ofctl_runs, 'cpu_self'):.3f}, ovs-vswitchd {med(ofctl_runs, 'cpu_switch'):.3f}")
        if not args.no_experiments:
            print("\nexperiment: a bench-only install path (fresh bridges on the same OVS, same flows, dumps "
                  "identical to ofctl's; ratio = its rate / ofctl's):")
            for side, what in EXPERIMENTS.items():
                best, median = summary(side, n, runs[side])
                print(f"  {'':<8}{what}")
                print(f"  {'':<8}ratio best {o_best / best:.2f}, median {o_med / median:.2f}; CPU median: "
                      f"bench process {med(runs[side], 'cpu_self'):.3f} s, ovs-vswitchd "
                      f"{med(runs[side], 'cpu_switch'):.3f} s")

        if not args.no_audit:
            audits = bench.audit("braudit", args.alter)
            bench.drop("braudit")
            print(f"\naudit of the {n:,}-flow bridge (Reconciler.audit(); dump = DatapathLink.dump_flows: the "
                  f"switch + os-ken's receive thread; lock = time rec.lock was held):")
            for what, r in audits:
                print(f"  {what:<50} {r['seconds']:7.3f} s  (dump {r['dump']:.3f} s x{r['dumps']}, lock held "
                      f"{r['lock']:.3f} s, CPU {r['cpu']:.3f} s)  drift {r['drift'] or 'none'}")

        off = offline_costs(rounded, args.osken_sample)
        print(f"\noffline, no switch: CPU seconds of this process ({n:,} flows):")
        print(f"  {'ofencode.encode_flow_mod (direct bytes, round cookie while encoding)':<70} {off['encode']:7.3f} s "
              f"{off['encode'] / n * 1e6:7.1f} us/flow  ({off['direct']:,} direct, {off['fallbacks']} via os-ken)")
        print(f"  {'ofcompare.flow_mod_identity (key + signature from those bytes)':<70} {off['identity']:7.3f} s "
              f"{off['identity'] / n * 1e6:7.1f} us/flow")
        print(f"  {'before: Wire.flow_mod (os-ken OFPFlowMod/OFPMatch)':<70} {off['osken_encode'] * n:7.3f} s "
              f"{off['osken_encode'] * 1e6:7.1f} us/flow  (measured on {off['sample']:,} flows)")
        print(f"  {'before: os-ken ONFBundleAddMsg(...).serialize()':<70} {off['osken_serialize'] * n:7.3f} s "
              f"{off['osken_serialize'] * 1e6:7.1f} us/flow  ({off['same']:,} of {off['sample']:,} byte-identical "
              f"to the direct encoder's)")
        print(f"  bundle-add messages on the wire: {off['bytes'] / 1e6:.1f} MB")

        if args.profile:
            prof = cProfile.Profile()
            c = bench.controller("brcprof", profiler=prof)
            bench.drop("brcprof")
            print(f"\ncProfile of one more controller install ({c['seconds']:.3f} s under the profiler; "
                  f"main thread only):")
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(args.profile_lines)
                text = out.getvalue()
                print(f"--- by {key} ---")
                print(text[text.find("   ncalls"):].rstrip())
    except Exception as exc:  # noqa: BLE001 - report, clean up, exit non-zero
        logging.getLogger("install_bench").exception("benchmark failed: %s", exc)
        status = 1
    finally:
        ovs.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)   # os-ken's threads never end on their own


if __name__ == "__main__":
    main()
