"""A lab EVPN leaf's NETCONF server: Debian's netconfd (yuma123 2.13) behind a private OpenSSH
sshd on port 830, both inside the leaf's network namespace, all state in one run directory.

    ns.create("lf1-x"); ns.create("mgmt-x")
    ns.veth("mgmt-x", "lf1", "172.30.0.0/31", "lf1-x", "mgmt0", "172.30.0.1/31")
    with NetconfLeafServer(run_dir, "lf1-x", "172.30.0.1") as server:
        target = server.client_target("lf1", from_netns="mgmt-x")   # vpcnet.fabric.netconf
        apply(target, render(state))

netconfd runs with ``HOME=<run_dir>/home`` (its ``~/.yuma``), ``--ncxserver-sockname=<run_dir>/
ncxserver.sock``, ``--target=candidate``, ``--with-startup`` (``<run_dir>/startup.xml``, seeded
with an empty ``<config/>`` or ``startup=``), ``--superuser=<username>`` (NACM would deny writes
otherwise), the YANG modules *by path* (no SIL code: netconfd is a validating datastore that
never touches the kernel) and its log in the run directory. sshd gets a private config
(``-f``): ``Port``, ``ListenAddress`` for every address plus 127.0.0.1, its own ed25519 host key,
``PidFile``, ``AuthorizedKeysFile`` (an ed25519 client key generated next to it), ``UsePAM no``,
``StrictModes no`` and ``Subsystem netconf /usr/sbin/netconf-subsystem
--ncxserver-sockname=<port>@<socket>``. sshd runs in the foreground (``-D``), so the PIDs this
object holds are the daemons themselves.

``start()`` returns once sshd answers with its SSH banner on ``address:port`` inside the
namespace (bounded by ``timeout``); a failure raises :class:`LabError` with the daemons' logs.
``stop()`` signals only the processes this object started and their children (per-connection
sshd and netconf-subsystem processes), then removes the netconfd socket. Several servers run
at once: each has its own run directory, socket, keys and namespace.

Pitfalls handled (shared/lab-recipes.md 2.5): a stale socket of a killed netconfd blocks the
next start (removed first); sshd needs ``/run/sshd`` (created if missing, never removed: the
system's sshd uses it too); the startup file must exist. Missing tools raise :class:`LabError`
(tests must fail, not skip, without them).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Sequence

from vpcnet.sim.proc import pid_alive, process_tree

__all__ = ["NetconfLeafServer", "LabError", "DEFAULT_MODULES", "create_netns", "delete_netns",
           "veth"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODULES = (REPO / "fabric" / "yang" / "vpcnet-leaf@2026-11-22.yang",)
NETCONFD = "/usr/sbin/netconfd"
SUBSYSTEM = "/usr/sbin/netconf-subsystem"
SSHD = "/usr/sbin/sshd"
_EMPTY_STARTUP = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                  '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>\n')
_SUN_PATH_MAX = 107


class LabError(RuntimeError):
    """The lab server could not be started; the message names the step and carries logs."""


def _run(cmd: Sequence[str], timeout: float = 30.0) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {proc.returncode}: "
                       f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


# ---------------------------------------------------------------------------- namespaces
def create_netns(name: str) -> None:
    """A new network namespace with ``lo`` up (refuses an existing one: it may be someone's)."""
    if os.path.exists(f"/var/run/netns/{name}"):
        raise LabError(f"netns {name} already exists; lab namespaces need a unique name")
    _run(["ip", "netns", "add", name])
    _run(["ip", "-n", name, "link", "set", "lo", "up"])


def delete_netns(name: str) -> None:
    """Delete a namespace this lab created (its veths go with it); missing is fine."""
    if os.path.exists(f"/var/run/netns/{name}"):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def veth(ns_a: str, dev_a: str, cidr_a: str, ns_b: str, dev_b: str, cidr_b: str) -> None:
    """A veth pair created directly inside two namespaces (names only need to be unique there),
    addressed and up. No routes are added: a namespace without a default route cannot leak."""
    _run(["ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
          "netns", ns_b])
    for ns, dev, cidr in ((ns_a, dev_a, cidr_a), (ns_b, dev_b, cidr_b)):
        _run(["ip", "-n", ns, "addr", "add", cidr, "dev", dev])
        _run(["ip", "-n", ns, "link", "set", dev, "up"])


# ---------------------------------------------------------------------------- the server
class NetconfLeafServer:
    def __init__(self, run_dir: Path | str, netns: str, address: str | Sequence[str],
                 port: int = 830, modules: Sequence[Path | str] = DEFAULT_MODULES,
                 startup: str | None = None, username: str = "root", name: str | None = None):
        self.run_dir = Path(run_dir).resolve()
        self.netns = netns
        self.addresses = [address] if isinstance(address, str) else list(address)
        if not self.addresses:
            raise LabError("NetconfLeafServer needs at least one listen address")
        self.port = port
        self.modules = [Path(m).resolve() for m in modules]
        self.startup_text = startup
        self.username = username
        self.name = name or netns
        self.home = self.run_dir / "home"
        self.sock = self.run_dir / "ncxserver.sock"
        self.startup = self.run_dir / "startup.xml"
        self.sshd_config = self.run_dir / "sshd_config"
        self.host_key_file = self.run_dir / "ssh_host_ed25519_key"
        self.client_key = self.run_dir / "id_ed25519"
        self.authorized_keys = self.run_dir / "authorized_keys"
        self.netconfd_log = self.run_dir / "netconfd.log"
        self.sshd_log = self.run_dir / "sshd.log"
        self.procs: dict[str, subprocess.Popen] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "NetconfLeafServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def start(self, timeout: float = 20.0) -> "NetconfLeafServer":
        if self.procs:
            raise LabError(f"server in netns {self.netns} is already running ({self.pids})")
        t0 = time.monotonic()
        self._preflight()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        self._keys()
        if not self.startup.exists():
            self.startup.write_text(self.startup_text or _EMPTY_STARTUP)
        self.sshd_config.write_text(self._sshd_config())
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        try:
            self.sock.unlink()          # a killed netconfd leaves it and then blocks the start
        except FileNotFoundError:
            pass
        try:
            self._start_netconfd(t0 + timeout)
            self._start_sshd(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_s = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop the daemons this object started (and their children); idempotent."""
        procs, self.procs = self.procs, {}
        pids = process_tree(p.pid for p in procs.values() if p.poll() is None)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for p in procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid in pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.sock.unlink()
        except FileNotFoundError:
            pass

    # --- clients -----------------------------------------------------------------------------
    @property
    def host_key(self) -> str:
        """The server's public host key, ``"ssh-ed25519 AAAA..."`` (for ``LeafTarget.host_key``)."""
        return " ".join(Path(f"{self.host_key_file}.pub").read_text().split()[:2])

    def client_target(self, leaf: str | None = None, *, host: str | None = None,
                      from_netns: str | None = None, **kwargs):
        """A :class:`vpcnet.fabric.netconf.LeafTarget` for this server: the first listen
        address (or ``host``), the generated client key and the pinned host key. With
        ``from_netns`` the client connects from that namespace; without it, pass
        ``host="127.0.0.1"`` and ``from_netns=self.netns`` to come in over the leaf's loopback."""
        from vpcnet.fabric.netconf import LeafTarget
        return LeafTarget(leaf=leaf or self.name, host=host or self.addresses[0], port=self.port,
                          username=self.username, key_file=str(self.client_key),
                          host_key=self.host_key, netns=from_netns, **kwargs)

    # --- internals ------------------------------------------------------------------------
    def _preflight(self) -> None:
        missing = [t for t in (NETCONFD, SUBSYSTEM, SSHD) if not os.access(t, os.X_OK)]
        missing += [t for t in ("ssh-keygen", "ip") if shutil.which(t) is None]
        if missing:
            raise LabError(f"missing lab tools: {', '.join(missing)} (install.sh installs "
                           "netconfd and openssh-server)")
        if not os.path.exists(f"/var/run/netns/{self.netns}"):
            raise LabError(f"netns {self.netns} does not exist (create it and its addresses first)")
        for m in self.modules:
            if not m.is_file():
                raise LabError(f"YANG module {m} does not exist")
        if len(str(self.sock)) > _SUN_PATH_MAX:
            raise LabError(f"run_dir {self.run_dir} is too long for a unix socket path "
                           f"({len(str(self.sock))} > {_SUN_PATH_MAX} characters)")

    def _keys(self) -> None:
        for key, comment in ((self.host_key_file, "vpcnet-lab-host"),
                             (self.client_key, "vpcnet-lab-client")):
            if not key.exists():
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        self.authorized_keys.write_text(Path(f"{self.client_key}.pub").read_text())

    def _sshd_config(self) -> str:
        listen = list(dict.fromkeys(self.addresses + ["127.0.0.1"]))
        lines = [f"Port {self.port}"] + [f"ListenAddress {a}" for a in listen] + [
            f"HostKey {self.host_key_file}",
            f"PidFile {self.run_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"AllowUsers {self.username}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "PrintMotd no",
            "LogLevel INFO",
            f"Subsystem netconf {SUBSYSTEM} --ncxserver-sockname={self.port}@{self.sock}",
        ]
        return "\n".join(lines) + "\n"

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        # `ip netns exec` and `env` exec the daemon: the Popen PID is the daemon's own PID
        out = open(self.run_dir / f"{name}.out", "ab")
        try:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.run_dir)
        finally:
            out.close()
        self.procs[name] = proc
        return proc

    def _start_netconfd(self, deadline: float) -> None:
        argv = ["env", f"HOME={self.home}", NETCONFD]
        argv += [f"--module={m}" for m in self.modules]
        argv += [f"--ncxserver-sockname={self.sock}", f"--port={self.port}",
                 "--target=candidate", "--with-startup=true", f"--startup={self.startup}",
                 f"--superuser={self.username}", f"--log={self.netconfd_log}",
                 "--log-level=info"]
        proc = self._spawn("netconfd", argv)
        while not self.sock.is_socket():
            if proc.poll() is not None:
                raise LabError(f"netconfd in netns {self.netns} exited with {proc.returncode}:\n"
                               + self._logs())
            if time.monotonic() > deadline:
                raise LabError(f"netconfd in netns {self.netns} did not create {self.sock}:\n"
                               + self._logs())
            time.sleep(0.02)

    def _start_sshd(self, deadline: float) -> None:
        proc = self._spawn("sshd", [SSHD, "-D", "-f", str(self.sshd_config),
                                    "-E", str(self.sshd_log)])
        from vpcnet.fabric.netconf import netns_socket
        last = ""
        while True:
            if proc.poll() is not None:
                raise LabError(f"sshd in netns {self.netns} exited with {proc.returncode}:\n"
                               + self._logs())
            try:
                with netns_socket(self.netns, self.addresses[0], self.port, 1.0) as s:
                    s.settimeout(2.0)
                    banner = s.recv(64)
                if banner.startswith(b"SSH-"):
                    return
                last = f"unexpected banner {banner!r}"
            except (OSError, socket.timeout) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise LabError(f"sshd in netns {self.netns} does not answer on "
                               f"{self.addresses[0]}:{self.port} ({last}):\n" + self._logs())
            time.sleep(0.02)

    def _logs(self, lines: int = 20) -> str:
        out = []
        for f in (self.netconfd_log, self.run_dir / "netconfd.out", self.sshd_log,
                  self.run_dir / "sshd.out"):
            if f.exists():
                tail = f.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {f.name}\n" + "\n".join(tail))
        return "\n".join(out) or "(no logs)"
