"""FRR per network namespace: configuration rendering, start/stop, vtysh.

One FRR instance per spine/leaf, pathspace = the namespace name (see /work/shared/lab-recipes.md
section 1.4, all tested on FRR 8.4):

* ``ip netns exec NS frrinit.sh start NS`` — ``-N NS`` alone does NOT move a daemon into a
  namespace, the namespace comes only from ``ip netns exec``; config in ``/etc/frr/NS``, pid/vty/
  zserv sockets in ``/var/run/frr/NS``. Each instance also gets its own UTS namespace so the BGP
  hostname capability names the router instead of the machine (cosmetic).
* Stopping kills exactly the PIDs in that pathspace's pidfiles (checking each one's command line
  names ``-N NS``, against PID reuse) — never pkill: other FRR instances on a shared machine
  belong to someone else. SIGINT is what frrinit.sh sends; we do it ourselves, all instances in
  parallel, because frrinit.sh's sequential stop takes ~5 s per instance.
* The VTY TCP listeners are disabled (``-P 0``): vtysh uses the unix sockets, and nothing
  listens on a TCP port that could collide with someone else's.
* ``frr defaults datacenter`` + ``frr_profile="datacenter"``: eBGP without mandatory policy, fast
  timers; the route-maps below still restrict the underlay session to the VTEP loopbacks.

The spine is a plain eBGP transit for both address families. For l2vpn evpn it must keep the
originating leaf's VTEP as next hop (its own address would black-hole VXLAN):
``neighbor X attribute-unchanged next-hop`` in the EVPN address family does exactly that on FRR
8.4 (measured: without it leaf2 installs leaf1's MACs behind 198.19.2.0, the spine; with it behind
198.19.255.1, leaf1's VTEP — tests/functional/test_lab_fabric.py asserts the latter). Note that
FRR 8.4's ``show running-config`` does not display this line for l2vpn evpn, although it is in
effect. The spine has no ``advertise-all-vni`` (no VNIs of its own) and keeps every EVPN route it
receives regardless of route targets, like a route server; the leaves' different ASNs make the
auto-derived route targets differ (65001:X vs 65002:X), which FRR still imports (auto RTs match on
the VNI).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from vpcnet.sim import topo

FRR_ETC = Path("/etc/frr")
FRR_RUN = Path("/var/run/frr")
FRRINIT = "/usr/lib/frr/frrinit.sh"
LOOPBACKS = "198.19.255.0/24"


class FrrError(RuntimeError):
    pass


DAEMONS = """\
bgpd=yes
vtysh_enable=yes
frr_profile="datacenter"
zebra_options="  -A 127.0.0.1 -P 0 -s 90000000"
bgpd_options="   -A 127.0.0.1 -P 0"
staticd_options="-A 127.0.0.1 -P 0"
"""


def _header(pathspace: str) -> list[str]:
    return ["frr defaults datacenter", f"hostname {pathspace}",
            f"log file {FRR_RUN / pathspace / 'frr.log'} informational", "!",
            f"ip prefix-list LOOPBACKS seq 10 permit {LOOPBACKS} ge 32", "!",
            "route-map UNDERLAY permit 10", " match ip address prefix-list LOOPBACKS", "exit", "!"]


def leaf_config(t: topo.Topology, leaf: topo.LeafPlan) -> str:
    """A leaf: eBGP to the spine, own loopback (= VTEP) announced, all local VNIs advertised."""
    peer = leaf.spine_ip
    lines = _header(leaf.netns) + [
        f"router bgp {leaf.asn}",
        f" bgp router-id {leaf.vtep}",
        " no bgp default ipv4-unicast",
        f" neighbor {peer} remote-as {topo.SPINE_ASN}",
        f" neighbor {peer} description vpcnet spine",
        " !",
        " address-family ipv4 unicast",
        f"  network {leaf.vtep}/32",
        f"  neighbor {peer} activate",
        f"  neighbor {peer} route-map UNDERLAY in",
        f"  neighbor {peer} route-map UNDERLAY out",
        " exit-address-family",
        " !",
        " address-family l2vpn evpn",
        f"  neighbor {peer} activate",
        "  advertise-all-vni",
        " exit-address-family",
        "exit", "!"]
    return "\n".join(lines) + "\n"


def spine_config(t: topo.Topology) -> str:
    lines = _header(t.spine_netns) + [
        f"router bgp {topo.SPINE_ASN}",
        f" bgp router-id {topo.SPINE_ROUTER_ID}",
        " no bgp default ipv4-unicast"]
    for leaf in t.leaf_plans:
        lines += [f" neighbor {leaf.underlay_ip} remote-as {leaf.asn}",
                  f" neighbor {leaf.underlay_ip} description {leaf.name}"]
    lines += [" !", " address-family ipv4 unicast"]
    for leaf in t.leaf_plans:
        lines += [f"  neighbor {leaf.underlay_ip} activate",
                  f"  neighbor {leaf.underlay_ip} route-map UNDERLAY in",
                  f"  neighbor {leaf.underlay_ip} route-map UNDERLAY out"]
    lines += [" exit-address-family", " !", " address-family l2vpn evpn"]
    for leaf in t.leaf_plans:
        lines += [f"  neighbor {leaf.underlay_ip} activate",
                  f"  neighbor {leaf.underlay_ip} attribute-unchanged next-hop"]
    lines += [" exit-address-family", "exit", "!"]
    return "\n".join(lines) + "\n"


def _proc_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class FrrInstance:
    def __init__(self, pathspace: str, netns: str):
        self.pathspace, self.netns = pathspace, netns
        self.etc = FRR_ETC / pathspace
        self.run = FRR_RUN / pathspace

    def write_config(self, frr_conf: str) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        files = {"daemons": DAEMONS, "vtysh.conf": "service integrated-vtysh-config\n", "frr.conf": frr_conf}
        for name, text in files.items():
            (self.etc / name).write_text(text)
        shutil.chown(self.etc, "frr", "frr")
        self.etc.chmod(0o750)
        for name in files:
            shutil.chown(self.etc / name, "frr", "frr")
            (self.etc / name).chmod(0o640)

    def start(self, timeout: float = 60) -> None:
        script = f"hostname {self.pathspace}; exec {FRRINIT} start {self.pathspace}"
        r = subprocess.run(["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c", script],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or not self.pids():
            raise FrrError(f"FRR {self.pathspace}: frrinit.sh start failed (exit {r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[-2000:]}")

    def pids(self) -> dict[str, int]:
        """daemon -> PID for every pidfile whose process really is this pathspace's daemon."""
        out: dict[str, int] = {}
        if not self.run.is_dir():
            return out
        for pidfile in self.run.glob("*.pid"):
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            cmd = _proc_cmdline(pid)
            if any(a == "-N" and b == self.pathspace for a, b in zip(cmd, cmd[1:])) or \
                    f"--pathspace={self.pathspace}" in cmd:
                out[pidfile.stem] = pid
        return out

    def signal_stop(self) -> list[int]:
        """SIGINT to watchfrr first (so it restarts nothing), then the daemons; returns the PIDs."""
        pids = self.pids()
        order = sorted(pids, key=lambda d: d != "watchfrr")
        for daemon in order:
            try:
                os.kill(pids[daemon], signal.SIGINT)
            except ProcessLookupError:
                pass
        return [pids[d] for d in order]

    def remove_files(self) -> None:
        shutil.rmtree(self.etc, ignore_errors=True)
        shutil.rmtree(self.run, ignore_errors=True)

    def vtysh(self, *commands: str, timeout: float = 30) -> str:
        args = ["vtysh", "-N", self.pathspace]
        for c in commands:
            args += ["-c", c]
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise FrrError(f"vtysh -N {self.pathspace} {commands}: {(r.stderr or r.stdout).strip()}")
        return r.stdout

    def vtysh_json(self, command: str, timeout: float = 30):
        out = self.vtysh(command, timeout=timeout)
        return json.loads(out) if out.strip() else {}

    def bgp_states(self) -> dict[str, str]:
        """neighbour address -> bgpState (empty if bgpd does not answer)."""
        try:
            data = self.vtysh_json("show bgp neighbors json", timeout=10)
        except (FrrError, ValueError, subprocess.TimeoutExpired):
            return {}
        return {peer: info.get("bgpState", "?") for peer, info in data.items() if isinstance(info, dict)}


def stop_all(instances: list[FrrInstance], timeout: float = 15) -> list[str]:
    """Stop several instances in parallel; SIGKILL stragglers. Returns problems (never raises)."""
    problems: list[str] = []
    waiting = {pid: inst for inst in instances for pid in inst.signal_stop()}
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                waiting.pop(pid)
        time.sleep(0.05)
    for pid, inst in waiting.items():
        problems.append(f"FRR {inst.pathspace}: pid {pid} ignored SIGINT, killed")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for inst in instances:
        inst.remove_files()
    return problems


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
