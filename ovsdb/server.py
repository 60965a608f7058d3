"""The embedded state database: a private, standalone ovsdb-server in a state directory.

`vpcnet controller --state-dir DIR` uses this when no `--db` is given. Everything lives in DIR
(database file, unix socket, pid file, log, unixctl socket), so several controllers or a developer's
own Open vSwitch never clash. The schema is created on first start and upgraded online with
`ovsdb-client convert` when the packaged schema changes.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

LOG = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "vpcnet.ovsschema"
DB_NAME = "vpcnet"


class OvsdbServerError(RuntimeError):
    pass


def _run(*args: str, timeout: float = 30) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise OvsdbServerError(f"{' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def pid_alive(pid: int) -> bool:
    """False once ``pid`` has exited, including as a not yet reaped zombie (a --detach'ed
    daemon's parent is init, which may reap late)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


class EmbeddedOvsdbServer:
    """Owns one ovsdb-server process serving the vpcnet schema from `state_dir`."""

    def __init__(self, state_dir: str | os.PathLike, schema_path: Path = SCHEMA_PATH):
        self.state_dir = Path(state_dir).resolve()
        self.schema_path = Path(schema_path)
        self.db_path = self.state_dir / "state.db"
        self.sock_path = self.state_dir / "db.sock"
        self.pid_path = self.state_dir / "ovsdb-server.pid"
        self.ctl_path = self.state_dir / "ovsdb-server.ctl"
        self.log_path = self.state_dir / "ovsdb-server.log"
        self.proc: subprocess.Popen | None = None
        self.adopted_pid: int | None = None

    @property
    def remote(self) -> str:
        return f"unix:{self.sock_path}"

    def start(self, timeout: float = 300.0) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        stale = self._stale_server()
        if stale is not None and self.sock_path.exists():
            # A controller that was SIGKILLed leaves its ovsdb-server serving this very file: adopt
            # it rather than make a fresh server re-read (and the clients re-sync) the database.
            LOG.warning("adopting ovsdb-server pid %d left running by an earlier controller", stale)
            self.adopted_pid = stale
            self.upgrade_schema()
            return self.remote
        if stale is not None:
            self._kill(stale)
        if not self.db_path.exists():
            _run("ovsdb-tool", "create", str(self.db_path), str(self.schema_path))
            LOG.info("created state database %s", self.db_path)
        for stale in (self.sock_path, self.ctl_path):
            if stale.exists():
                stale.unlink()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["ovsdb-server", str(self.db_path), f"--remote=punix:{self.sock_path}",
             f"--pidfile={self.pid_path}", f"--unixctl={self.ctl_path}",
             f"--log-file={self.log_path}", "--no-chdir", "-vconsole:off"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.sock_path.exists():
            if self.proc.poll() is not None:
                raise OvsdbServerError(f"ovsdb-server exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise OvsdbServerError(f"ovsdb-server did not create {self.sock_path} within {timeout}s")
            time.sleep(0.02)
        self.upgrade_schema()
        return self.remote

    def upgrade_schema(self) -> bool:
        """Convert the live database to the packaged schema if they differ. Returns True if converted."""
        deadline = time.monotonic() + 10
        while True:   # the socket file appears at bind(); the first connect may still be refused
            try:
                need = _run("ovsdb-client", "needs-conversion", self.remote, str(self.schema_path))
                break
            except OvsdbServerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if need.strip() == "yes":
            old = _run("ovsdb-client", "get-schema-version", self.remote, DB_NAME)
            _run("ovsdb-client", "convert", self.remote, str(self.schema_path), timeout=300)
            LOG.info("state database schema converted from %s to the packaged schema", old)
            return True
        return False

    def _stale_server(self) -> int | None:
        """The pid of an ovsdb-server still serving our database file (per our pid file), if any."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if not cmdline or not cmdline[0].endswith(b"ovsdb-server") or str(self.db_path).encode() not in cmdline:
            return None
        return pid

    @staticmethod
    def _kill(pid: int) -> None:
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not pid_alive(pid):
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.adopted_pid is not None:
            self._kill(self.adopted_pid)
            self.adopted_pid = None
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> "EmbeddedOvsdbServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
