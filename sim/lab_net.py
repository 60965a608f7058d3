"""Low-level lab plumbing: Mininet namespaces pinned by name, veth links, the root-netns route
guard, and detached processes that a later `lab down` (another process) can stop safely.

Namespaces. Mininet's ``Node`` keeps a network namespace alive only as long as its shell runs,
and nothing but Mininet can reach it. The lab needs namespaces that ``ip netns exec``, ``setns``
(the node daemon's ``--netns``), FRR's ``frrinit.sh`` and a later ``lab exec`` can enter, and that
outlive the ``lab up`` process. So every lab namespace has a name under /var/run/netns:

* ``NsNode(name)`` — Mininet creates the namespace (``mnexec -n``), then ``ip netns attach NAME
  PID`` bind-mounts it to /var/run/netns/NAME ("pinning") — used for L-mgmt, L-spine and hosts;
* ``NsNode(name, attach=True)`` — the named namespace already exists (PrivateOvs(netns=...)
  creates it and starts ovs-vswitchd inside), and Mininet's shell is started in it through
  ``nsenter --net=/var/run/netns/NAME`` — used for leaves and nodes.

Links are Mininet ``Link``s (a veth pair created from node1's shell with the peer end put into
node2's namespace). When the topology is built the Mininet shells are terminated: the pinned
namespaces stay, and everything afterwards uses plain ``ip -n NAME`` / ``ip netns exec NAME``.

Route guard. Lab traffic must never leave the machine (/work/shared/platform.md): before anything
else, ``up`` installs ``unreachable`` routes in the ROOT namespace for every lab prefix. Each lab
uses its own metric (derived from its name) and protocol number 233, so two labs on one machine
can hold the same prefix side by side and ``down`` deletes exactly its own routes.

Processes. Everything is started detached (own session) with its PID and kernel start time
recorded; stopping checks the start time first, so a recycled PID is never signalled.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
import zlib
from pathlib import Path

from vpcnet.sim.proc import wait_until

ROUTE_PROTO = "233"
NETNS_DIR = Path("/var/run/netns")


class LabError(RuntimeError):
    pass


def run(*cmd: str, check: bool = True, timeout: float = 30, input: str | None = None) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def ns_run(netns: str, *cmd: str, check: bool = True, timeout: float = 30) -> str:
    return run("ip", "netns", "exec", netns, *cmd, check=check, timeout=timeout)


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def list_netns() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except OSError:
        return []


def delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


# --- Mininet nodes -----------------------------------------------------------------------------
def _mininet():
    from mininet.link import Link
    from mininet.node import Node
    return Node, Link


def make_node(name: str, attach: bool = False):
    """A Mininet node whose namespace is the named netns ``name`` (see module docstring)."""
    Node, _ = _mininet()

    class NsNode(Node):
        def _popen(self, cmd, **params):
            # Only the shell start is redirected; node.popen() attaches by PID (mnexec -a).
            if attach and self.shell is None and cmd[:1] == ["mnexec"]:
                cmd = ["nsenter", f"--net={NETNS_DIR / name}", "mnexec", cmd[1].replace("n", ""), *cmd[2:]]
            return super()._popen(cmd, **params)

    if attach and not netns_exists(name):
        raise LabError(f"namespace {name} does not exist")
    node = NsNode(name, inNamespace=True)
    if not attach:
        if netns_exists(name):
            node.terminate()
            raise LabError(f"namespace {name} already exists (another lab with this name? `lab down` first)")
        run("ip", "netns", "attach", name, str(node.pid))
    return node


def link(node1, node2, if1: str, if2: str, mtu: int | None = None):
    """A veth pair ``node1:if1 <-> node2:if2`` (Mininet Link), both ends up."""
    _, Link = _mininet()
    for n in (if1, if2):
        if len(n) > 15:
            raise LabError(f"interface name {n!r} is longer than 15 characters")
    lk = Link(node1, node2, intfName1=if1, intfName2=if2)
    if mtu:
        run("ip", "-n", node1.name, "link", "set", if1, "mtu", str(mtu))
        run("ip", "-n", node2.name, "link", "set", if2, "mtu", str(mtu))
    return lk


def release(nodes) -> None:
    """Stop the Mininet shells; pinned namespaces stay."""
    for node in nodes:
        try:
            node.terminate()
        except Exception:   # noqa: BLE001 - best effort, the namespace is what matters
            pass


def sysctl(netns: str, **values: str | int) -> None:
    args = [f"{k.replace('__', '.')}={v}" for k, v in values.items()]
    ns_run(netns, "sysctl", "-qw", *args)


# --- route guard ---------------------------------------------------------------------------------
def lab_metric(lab: str) -> int:
    return 3000 + zlib.crc32(lab.encode()) % 30000


def _routes(family: str) -> list[dict]:
    out = run("ip", "-j", family, "route", "show", "table", "main", check=False)
    try:
        return json.loads(out) if out.strip() else []
    except ValueError:
        return []


def check_prefix_clear(prefixes: list[str], metric: int) -> None:
    """Refuse prefixes that would shadow part of a route the machine really uses (e.g. a LAN
    10.10.0.0/16 on eth0 while the lab guards 10.10.0.0/24). Equal or more specific machine routes
    are fine: they win over ours (lower metric / longer prefix)."""
    for p in prefixes:
        net = ipaddress.ip_network(p)
        fam = "-6" if net.version == 6 else "-4"
        for r in _routes(fam):
            dst = r.get("dst", "")
            if dst == "default" or r.get("type") in ("unreachable", "blackhole", "prohibit"):
                continue
            try:
                other = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{net.max_prefixlen}", strict=False)
            except ValueError:
                continue
            if other.version == net.version and other != net and net.subnet_of(other):
                raise LabError(f"lab prefix {p} lies inside this machine's route {dst} "
                               f"({r.get('dev', '?')}): guarding it would cut off part of that network; "
                               f"pick other pod prefixes")


def add_guard(prefix: str, metric: int) -> dict:
    net = ipaddress.ip_network(prefix)
    fam = "-6" if net.version == 6 else "-4"
    r = subprocess.run(["ip", fam, "route", "add", "unreachable", str(net), "metric", str(metric),
                        "proto", ROUTE_PROTO], capture_output=True, text=True, timeout=10)
    if r.returncode != 0 and "File exists" not in r.stderr:
        raise LabError(f"cannot add unreachable route {net}: {r.stderr.strip()}")
    return {"prefix": str(net), "metric": metric}


def guard_present(prefix: str, metric: int) -> bool:
    net = ipaddress.ip_network(prefix)
    fam = "-6" if net.version == 6 else "-4"
    out = run("ip", fam, "route", "show", "table", "main", "exact", str(net), "proto", ROUTE_PROTO, check=False)
    return any(line.startswith("unreachable") and f"metric {metric}" in line for line in out.splitlines())


def del_guard(prefix: str, metric: int) -> None:
    net = ipaddress.ip_network(prefix)
    fam = "-6" if net.version == 6 else "-4"
    for _ in range(4):   # idempotent: gone -> "No such process"
        r = subprocess.run(["ip", fam, "route", "del", "unreachable", str(net), "metric", str(metric),
                            "proto", ROUTE_PROTO], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return


# --- detached processes ----------------------------------------------------------------------------
def proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def start_detached(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Start ``cmd`` in its own session, output appended to ``log``; returns a process record."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True, env=env, close_fds=True)
    return {"pid": p.pid, "start": proc_start_time(p.pid), "cmd": cmd[:8], "log": str(log), "_popen": p}


def record(rec: dict) -> dict:
    """The JSON-safe part of a process record."""
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def proc_alive(rec: dict | None) -> bool:
    if not rec or not rec.get("pid"):
        return False
    start = proc_start_time(rec["pid"])
    return start is not None and (rec.get("start") is None or start == rec["start"])


def pid_record(pid: int) -> dict:
    return {"pid": pid, "start": proc_start_time(pid)}


def stop_procs(recs: list[dict], timeout: float = 10) -> list[str]:
    """SIGTERM every live recorded process, SIGKILL after ``timeout``; returns problems."""
    problems: list[str] = []
    live = [r for r in recs if proc_alive(r)]
    for r in live:
        try:
            os.kill(r["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in live:
            popen = r.get("_popen")
            if popen is not None:
                popen.poll()
        live = [r for r in live if proc_alive(r)]
        if not live:
            return problems
        time.sleep(0.05)
    for r in live:
        problems.append(f"pid {r['pid']} ({' '.join(map(str, r.get('cmd', [])))[:80]}) ignored SIGTERM, killed")
        try:
            os.kill(r["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    return problems


def wait_for(what: str, predicate, timeout: float, interval: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; LabError after ``timeout`` seconds."""
    return wait_until(what, predicate, timeout, interval, error=LabError)
