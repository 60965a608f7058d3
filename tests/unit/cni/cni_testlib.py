"""Helpers for the CNI unit tests: request builders, an exec'd plugin driver, and tiny stand-in
daemons on unix sockets.

The stand-in daemons exist ONLY to exercise the plugin's transport (HTTP/1.1 over a unix socket,
time-outs, malformed answers). They implement no CNI behaviour; the real node daemon
(``vpcnet.cni.daemon``) is tested elsewhere.
"""
from __future__ import annotations

import http.server
import json
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

from vpcnet.cni import spec

VENV_SCRIPT = Path(sys.executable).parent / "vpcnet-cni"
COMMANDS = ["ADD", "DEL", "CHECK", "STATUS", "GC"]
VERSIONS = list(spec.SUPPORTED_VERSIONS)
CID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
NETNS = "/var/run/netns/cni-test-0000"
ARGS = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=trading;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID={CID}"

PREV_RESULT = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "vpcabc", "mac": "02:00:00:00:00:01"},
                   {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": NETNS}],
    "ips": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.10.0.1"}],
}


def plugin_cmd() -> list[str]:
    if VENV_SCRIPT.exists():
        return [str(VENV_SCRIPT)]
    return [sys.executable, "-m", "vpcnet.cni.plugin"]


def allowed(command: str, version: str) -> bool:
    need = spec.MIN_VERSION.get(command)
    return need is None or tuple(map(int, version.split("."))) >= tuple(map(int, need.split(".")))


def make_env(command: str, **override) -> dict:
    """The environment containerd gives a plugin for ``command`` (CNI_* only)."""
    env = {"CNI_COMMAND": command, "CNI_PATH": "/opt/cni/bin"}
    if command in ("ADD", "DEL", "CHECK"):
        env.update(CNI_CONTAINERID=CID, CNI_NETNS=NETNS, CNI_IFNAME="eth0", CNI_ARGS=ARGS)
    env.update(override)
    return {k: v for k, v in env.items() if v is not None}


def make_config(command: str, version: str = "1.1.0", **extra) -> dict:
    """The network configuration the runtime streams on stdin for ``command``."""
    config = {"cniVersion": version, "name": "vpcnet", "type": "vpcnet-cni"}
    prev_version = version if version in spec.SUPPORTED_VERSIONS else "1.1.0"
    if command == "CHECK" or (command == "DEL" and version not in ("0.3.0", "0.3.1")):
        config["prevResult"] = spec.format_result(PREV_RESULT, prev_version)
    if command == "GC":
        config["cni.dev/valid-attachments"] = [{"containerID": CID, "ifname": "eth0"}]
    config.update(extra)
    return {k: v for k, v in config.items() if v is not None}


def exec_plugin(env: dict, stdin, timeout: float = 30) -> tuple[int, str, str, float]:
    """Exec the real console script like containerd does; returns (rc, stdout, stderr, seconds)."""
    full = {"PATH": "/usr/bin:/bin", **env}
    data = stdin if isinstance(stdin, (bytes, str)) else json.dumps(stdin)
    if isinstance(data, str):
        data = data.encode()
    t0 = time.monotonic()
    done = subprocess.run(plugin_cmd(), input=data, capture_output=True, env=full, timeout=timeout)
    return done.returncode, done.stdout.decode(), done.stderr.decode(), time.monotonic() - t0


def one_json(stdout: str):
    """stdout must hold exactly one JSON document; return it."""
    decoder = json.JSONDecoder()
    text = stdout.strip()
    obj, end = decoder.raw_decode(text)
    assert text[end:].strip() == "", f"more than one JSON document on stdout: {stdout!r}"
    return obj


# ---------------------------------------------------------------------------------------------
# stand-in daemons (transport only)
class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeHttpDaemon:
    """A minimal stdlib ``http.server`` on a unix socket that records each request and answers
    with a canned (status, body). Transport stand-in only; no CNI logic."""

    def __init__(self, path: Path, status: int = 200, body=None, raw: bytes | None = None):
        self.path = Path(path)
        self.status, self.body, self.raw = status, body, raw
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                payload = self.rfile.read(length)
                outer.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(payload)})
                if outer.raw is not None:
                    self.wfile.write(outer.raw)
                    self.close_connection = True
                    return
                data = b"" if outer.body is None else (
                    outer.body if isinstance(outer.body, bytes) else json.dumps(outer.body).encode())
                self.send_response(outer.status)
                if outer.status != 204:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if outer.status != 204:
                    self.wfile.write(data)

            def address_string(self):
                return "unix"

            def log_message(self, *args):
                pass

        self.server = _UnixHTTPServer(str(self.path), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def answer(self, status: int = 200, body=None, raw: bytes | None = None) -> None:
        self.status, self.body, self.raw = status, body, raw

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class SilentDaemon:
    """Accepts connections and then does ``mode``: "mute" (reads, never answers), "partial"
    (sends half a status line, then nothing) or "trickle" (one header byte every 0.1 s, forever).
    Transport stand-in only."""

    def __init__(self, path: Path, mode: str = "mute"):
        self.path, self.mode = Path(path), mode
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(16)
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        try:
            if self.mode == "partial":
                conn.sendall(b"HTTP/1.1 20")
            while not self.stop.is_set():
                if self.mode == "trickle":
                    conn.sendall(b"X")
                try:
                    if conn.recv(65536) == b"":
                        return                      # the plugin hung up
                except TimeoutError:
                    continue
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class RawDaemon:
    """Accepts, reads one request (headers + Content-Length body), writes ``self.response`` bytes
    and closes. For fuzzing the plugin against arbitrary daemon answers. Transport stand-in only."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.response = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(64)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.settimeout(5)
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(rest) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        rest += chunk
                    conn.sendall(self.response)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def short_tmp(prefix: str = "vpcnet-cni-") -> Path:
    """A private, short directory (sun_path is limited to 107 bytes; pytest's tmp_path can be long)."""
    import tempfile
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

