"""A private Open vSwitch: its own ovsdb-server and ovs-vswitchd in one run directory.

Nothing here touches the machine's own OVS (if any): every socket, pidfile, database and log
lives under ``run_dir``, and ``stop()`` kills only the two PIDs this object started.

``dummy=True`` starts ``ovs-vswitchd --enable-dummy=override`` (no kernel needed, packets only
through ``netdev-dummy/receive`` and ``ofproto/trace``); ``dummy=False`` gives a userspace
(``netdev``) datapath that can carry real veth traffic between network namespaces. With
``netns=NAME`` ovs-vswitchd runs inside that (new) network namespace — needed for a second
netdev OVS on one machine, and the natural model of a node; its sockets stay reachable from here.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class OvsError(RuntimeError):
    pass


def _run(cmd: list[str], env: dict, timeout: float = 30.0) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise OvsError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


class PrivateOvs:
    def __init__(self, run_dir: Path | str, dummy: bool = True, netns: str | None = None):
        self.run_dir = Path(run_dir)
        self.dummy = dummy
        self.netns = netns
        self.db_sock = self.run_dir / "db.sock"
        self.db_file = self.run_dir / "conf.db"
        self.env = dict(os.environ, OVS_RUNDIR=str(self.run_dir), OVS_LOGDIR=str(self.run_dir),
                        OVS_DBDIR=str(self.run_dir), OVS_SYSCONFDIR=str(self.run_dir))
        self.pids: dict[str, int] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "PrivateOvs":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.db_file.exists():
            _run(["ovsdb-tool", "create", str(self.db_file), VSWITCH_SCHEMA], self.env)
        _run(["ovsdb-server", str(self.db_file), f"--remote=punix:{self.db_sock}",
              "--detach", "--no-chdir", f"--pidfile={self.run_dir / 'ovsdb-server.pid'}",
              f"--unixctl={self.run_dir / 'ovsdb-server.ctl'}",
              f"--log-file={self.run_dir / 'ovsdb-server.log'}"], self.env)
        self.pids["ovsdb-server"] = self._read_pid("ovsdb-server")
        self.vsctl("--no-wait", "init")
        cmd = ["ovs-vswitchd", f"unix:{self.db_sock}", "--detach", "--no-chdir",
               f"--pidfile={self.run_dir / 'ovs-vswitchd.pid'}",
               f"--unixctl={self.run_dir / 'ovs-vswitchd.ctl'}",
               f"--log-file={self.run_dir / 'ovs-vswitchd.log'}"]
        if self.dummy:
            cmd += ["--enable-dummy=override", "--disable-system"]
        if self.netns:
            # A netdev datapath creates kernel tap devices ("ovs-netdev", one per bridge): in a
            # namespace of its own, two nodes (or another user's OVS) never collide on names.
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            _run(["ip", "netns", "add", self.netns], self.env)
            _run(["ip", "-n", self.netns, "link", "set", "lo", "up"], self.env)
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        _run(cmd, self.env, timeout=60)
        self.pids["ovs-vswitchd"] = self._read_pid("ovs-vswitchd")
        return self

    def _read_pid(self, name: str) -> int:
        path = self.run_dir / f"{name}.pid"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                return int(path.read_text().strip())
            except (OSError, ValueError):
                time.sleep(0.02)
        raise OvsError(f"{name} wrote no pidfile in {self.run_dir}")

    def stop(self) -> None:
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    # --- tools -----------------------------------------------------------------------------
    def vsctl(self, *args: str, timeout: float = 30.0) -> str:
        return _run(["ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=20", *args], self.env, timeout)

    def ofctl(self, *args: str, timeout: float = 60.0) -> str:
        return _run(["ovs-ofctl", "-O", "OpenFlow13", *args], self.env, timeout)

    def appctl(self, *args: str, timeout: float = 30.0) -> str:
        return _run(["ovs-appctl", "-t", str(self.run_dir / "ovs-vswitchd.ctl"), *args], self.env, timeout)

    def mgmt(self, bridge: str) -> str:
        """The bridge's management socket, usable as an ovs-ofctl target."""
        return f"unix:{self.run_dir / (bridge + '.mgmt')}"

    def add_bridge(self, bridge: str, datapath_id: int, controller: str | None = None,
                   fail_mode: str = "secure") -> None:
        dp_type = "dummy" if self.dummy else "netdev"
        args = ["add-br", bridge, "--", "set", "Bridge", bridge, f"datapath_type={dp_type}",
                f"other-config:datapath-id={datapath_id:016x}", "protocols=OpenFlow13",
                f"fail_mode={fail_mode}"]
        if controller:
            args += ["--", "set-controller", bridge, controller]
        self.vsctl(*args)

    def add_port(self, bridge: str, port: str, ofport: int | None = None, type_: str | None = None) -> None:
        args = ["add-port", bridge, port]
        if ofport is not None or type_:
            args += ["--", "set", "Interface", port]
            if ofport is not None:
                args.append(f"ofport_request={ofport}")
            if type_:
                args.append(f"type={type_}")
        self.vsctl(*args)

    def dump_flows(self, bridge: str, *filters: str) -> list[str]:
        """Flow lines without statistics (duration, packets, bytes, idle_age), sorted."""
        out = self.ofctl("--no-stats", "--names", "dump-flows", bridge, *filters)
        return sorted(line.strip() for line in out.splitlines() if line.strip() and "reply" not in line)

    def trace(self, bridge: str, flow: str, ct_next: tuple[str, ...] = ("trk,new",)) -> str:
        """ofproto/trace; each ct() recirculation takes the next ``ct_next`` state."""
        args = [a for state in ct_next for a in ("--ct-next", state)]
        return self.appctl("ofproto/trace", *args, bridge, flow)
