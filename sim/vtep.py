"""A private hardware VTEP: an ovsdb-server with the hardware_vtep schema, optionally ovs-vtep.

``PrivateVtep(run_dir)`` serves a fresh ``vtep.db`` (created with ``ovsdb-tool`` from the
openvswitch-vtep package's ``vtep.ovsschema``) on ``unix:<run_dir>/vtep.sock`` and creates the
Physical_Switch row (``tunnel_ips`` = one address) with its Physical_Ports: what a hardware
switch's HSC would publish. vpcnet's driver (``vpcnet.ovsdb.hwvtep``) talks to :attr:`remote`.

With ``emulator=True`` it also runs the ovs-vtep emulator (Debian's
``/usr/share/openvswitch/scripts/ovs-vtep``, python3-openvswitch) on an OVS bridge named like the
Physical_Switch, in a private Open vSwitch (:class:`vpcnet.sim.ovs.PrivateOvs` under
``<run_dir>/ovs``; ``netdev`` datapath with veth ports, or ``datapath="dummy"`` as OVN's CI does).
The netdev ovs-vswitchd runs in network namespace ``netns`` (default: a unique name), so its tap
devices never meet anybody else's. ovs-vtep calls plain ``vtep-ctl``/``ovs-vsctl``/``ovs-ofctl``
without ``--db``: ``<run_dir>/bin`` holds wrappers that pin vtep-ctl to the private VTEP database
and ovs-vsctl to the private Open_vSwitch database, and ``OVS_RUNDIR`` points ovs-ofctl at the
private bridges' ``.mgmt`` sockets (and ovs-vtep's own unixctl socket into the private run dir).

Every veth port ``pN`` has a peer ``pN-h`` in the same namespace (a "server" end: send frames
with :meth:`send_frame`). ``stop()`` ends only the PIDs this object started and removes what
ovs-vtep leaves behind (its per-Logical_Switch bridges ``<ps>_vtep_lsN`` and ``vtep_bfd``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .ovs import OvsError, PrivateOvs
from .proc import pid_alive, wait_until

VTEP_SCHEMA = "/usr/share/openvswitch/vtep.ovsschema"
OVS_VTEP = "/usr/share/openvswitch/scripts/ovs-vtep"
SYSTEM_PYTHON = "/usr/bin/python3"     # ovs-vtep needs Debian's python3-openvswitch
BFD_BRIDGE = "vtep_bfd"                # hard-coded in ovs-vtep


class VtepSimError(RuntimeError):
    pass


def _run(cmd: list[str], env: dict | None = None, timeout: float = 30.0) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise VtepSimError(f"{' '.join(cmd)}: exit {proc.returncode}: "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _kill(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_pid(path: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            time.sleep(0.02)
    raise VtepSimError(f"no pidfile {path} within {timeout}s")


class PrivateVtep:
    def __init__(self, run_dir: Path | str, netns: str | None = None, *, emulator: bool = False,
                 physical_switch: str = "vtep0", ports: tuple[str, ...] = ("p1", "p2"),
                 tunnel_ip: str = "192.0.2.1", datapath: str = "netdev",
                 ovs: PrivateOvs | None = None, make_ports: bool = True):
        if datapath not in ("netdev", "dummy"):
            raise ValueError(f"datapath={datapath!r} must be netdev or dummy")
        self.run_dir = Path(run_dir).resolve()
        self.emulator = emulator
        self.physical_switch = physical_switch
        self.ports = tuple(ports)
        self.tunnel_ip = tunnel_ip
        self.datapath = datapath
        self.netns = netns or (f"vtep-{os.getpid()}-{uuid.uuid4().hex[:6]}"
                               if emulator and datapath == "netdev" else None)
        self.db_file = self.run_dir / "vtep.db"
        self.sock = self.run_dir / "vtep.sock"
        self.bin_dir = self.run_dir / "bin"
        self.ovs: PrivateOvs | None = ovs
        self.own_ovs = ovs is None      # an OVS handed in (the lab's leaf OVS) is not ours to stop
        if ovs is not None:
            self.netns = ovs.netns
        self.make_ports = make_ports    # False: the ports exist already (the lab's node trunks)
        self.pids: dict[str, int] = {}

    @property
    def remote(self) -> str:
        return f"unix:{self.sock}"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "PrivateVtep":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_db()
            ps = self.physical_switch
            self.vtep_ctl("--may-exist", "add-ps", ps, "--", "set", "Physical_Switch", ps,
                          f"tunnel_ips={self.tunnel_ip}")
            for port in self.ports:
                self.vtep_ctl("--may-exist", "add-port", ps, port)
            if self.emulator:
                self._start_emulator()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_db(self) -> None:
        if not self.db_file.exists():
            _run(["ovsdb-tool", "create", str(self.db_file), VTEP_SCHEMA])
        if self.sock.exists():
            self.sock.unlink()
        pidfile = self.run_dir / "vtep-ovsdb-server.pid"
        _run(["ovsdb-server", str(self.db_file), f"--remote=punix:{self.sock}",
              "--remote=db:hardware_vtep,Global,managers", "--detach", "--no-chdir",
              f"--pidfile={pidfile}", f"--unixctl={self.run_dir / 'vtep-ovsdb-server.ctl'}",
              f"--log-file={self.run_dir / 'vtep-ovsdb-server.log'}"])
        self.pids["ovsdb-server"] = _read_pid(pidfile)

    def _wrappers(self) -> dict:
        self.bin_dir.mkdir(exist_ok=True)
        assert self.ovs is not None
        for name, db in (("vtep-ctl", self.sock), ("ovs-vsctl", self.ovs.db_sock)):
            path = self.bin_dir / name
            path.write_text(f'#!/bin/sh\nexec /usr/bin/{name} --db=unix:{db} "$@"\n')
            path.chmod(0o755)
        return dict(self.ovs.env, PATH=f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")

    def _start_emulator(self) -> None:
        if self.ovs is None:
            self.ovs = PrivateOvs(self.run_dir / "ovs", dummy=self.datapath == "dummy",
                                  netns=self.netns)
            self.ovs.start()
        ps = self.physical_switch
        self.ovs.vsctl("--may-exist", "add-br", ps, "--", "set", "Bridge", ps,
                       f"datapath_type={self.datapath}")
        for port in self.ports:
            if not self.make_ports:
                self.ovs.vsctl("--may-exist", "add-port", ps, port)
            elif self.datapath == "netdev":
                self._ip("link", "add", port, "type", "veth", "peer", "name", self.peer(port))
                for dev in (port, self.peer(port)):
                    self._ip("link", "set", dev, "up")
                self.ovs.vsctl("--may-exist", "add-port", ps, port)
            else:
                self.ovs.vsctl("--may-exist", "add-port", ps, port, "--", "set", "Interface",
                               port, "type=dummy")
        env = self._wrappers()
        pidfile = self.run_dir / "ovs-vtep.pid"
        _run([SYSTEM_PYTHON, OVS_VTEP, f"--log-file={self.run_dir / 'ovs-vtep.log'}",
              f"--pidfile={pidfile}", "--detach", "--no-chdir", ps], env=env, timeout=60)
        self.pids["ovs-vtep"] = _read_pid(pidfile)
        # setup() is done when ovs-vtep has (re)created its BFD bridge
        self.wait(lambda: BFD_BRIDGE in self.ovs_vsctl("list-br").split(), 30,
                  "ovs-vtep to create its vtep_bfd bridge")

    def stop(self) -> None:
        pid = self.pids.pop("ovs-vtep", None)
        if pid is not None:
            ctl = Path(self.ovs.run_dir if self.ovs else self.run_dir) / f"ovs-vtep.{pid}.ctl"
            if ctl.exists():
                subprocess.run(["ovs-appctl", "-t", str(ctl), "exit"], capture_output=True,
                               timeout=10)
            _kill(pid)
        if self.ovs is not None:
            if self.ovs.pids.get("ovs-vswitchd"):
                try:   # ovs-vtep leaves its bridges behind; ours too
                    for br in self.emulator_bridges() + [self.physical_switch]:
                        self.ovs.vsctl("--if-exists", "del-br", br)
                except OvsError:
                    pass
            if self.own_ovs:
                self.ovs.stop()      # also deletes its network namespace (and so the veths)
            self.ovs = None
        pid = self.pids.pop("ovsdb-server", None)
        if pid is not None:
            _kill(pid)

    def __enter__(self) -> "PrivateVtep":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- tools -----------------------------------------------------------------------------
    def vtep_ctl(self, *args: str, timeout: float = 30.0) -> str:
        return _run(["vtep-ctl", f"--db={self.remote}", "--timeout=20", *args], timeout=timeout)

    def _need_ovs(self) -> PrivateOvs:
        if self.ovs is None:
            raise VtepSimError("the ovs-vtep emulator is not running (PrivateVtep(emulator=True))")
        return self.ovs

    def ovs_vsctl(self, *args: str) -> str:
        return self._need_ovs().vsctl(*args)

    def ofctl(self, *args: str) -> str:
        """ovs-ofctl (OpenFlow 1.0, as ovs-vtep uses) against a private bridge."""
        ovs = self._need_ovs()
        return _run(["ovs-ofctl", *args], env=ovs.env, timeout=30)

    def dump_flows(self, bridge: str) -> list[str]:
        out = self.ofctl("--no-stats", "dump-flows", bridge)
        return sorted(ln.strip() for ln in out.splitlines() if ln.strip() and "reply" not in ln)

    def emulator_bridges(self) -> list[str]:
        """The bridges ovs-vtep created: per-Logical_Switch bridges and vtep_bfd."""
        return [br for br, ids in self._bridge_ids().items()
                if "vtep_logical_switch=true" in ids.split() or br == BFD_BRIDGE]

    def _bridge_ids(self) -> dict[str, str]:
        """bridge -> its external ids (``k=v`` lines). ovs-vtep creates and deletes bridges while
        we look: one that is gone between list-br and the lookup is skipped, not an error."""
        out = {}
        for br in self.ovs_vsctl("list-br").split():
            try:
                out[br] = self.ovs_vsctl("br-get-external-id", br)
            except OvsError:
                continue
        return out

    def ls_bridges(self) -> dict[str, str]:
        """Logical_Switch name -> the OVS bridge ovs-vtep made for it."""
        out = {}
        for br, text in self._bridge_ids().items():
            ids = dict(kv.split("=", 1) for kv in text.split())
            if br != BFD_BRIDGE and ids.get("vtep_logical_switch") == "true" and "logical_switch_name" in ids:
                out[ids["logical_switch_name"]] = br
        return out

    @staticmethod
    def peer(port: str) -> str:
        return f"{port}-h"

    def _ip(self, *args: str) -> str:
        cmd = ["ip", *args] if self.netns is None else ["ip", "-n", self.netns, *args]
        return _run(cmd)

    def send_frame(self, port: str, frame: bytes) -> None:
        """Send one raw Ethernet frame into ``port`` from its peer (netdev emulator only)."""
        if self.ovs is None or self.datapath != "netdev":
            raise VtepSimError("send_frame needs the netdev emulator (emulator=True)")
        code = ("import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); "
                "s.bind((sys.argv[1], 0)); s.send(bytes.fromhex(sys.argv[2]))")
        _run(["ip", "netns", "exec", self.netns, sys.executable, "-c", code, self.peer(port),
              frame.hex()])

    @staticmethod
    def wait(predicate, timeout: float, what: str, interval: float = 0.1):
        return wait_until(what, predicate, timeout, interval, error=VtepSimError)
