"""A private Prometheus server: the real ``/usr/bin/prometheus`` (Debian package ``prometheus``)
with its own config, TSDB, console directories and log in one run directory.

Nothing here touches the machine's own Prometheus (if any) or its system paths: the config is
written to ``run_dir/prometheus.yml``, the TSDB lives in ``run_dir/data``, the console template
and library directories are empty private ones, the log is ``run_dir/prometheus.log`` and the
server listens on ``127.0.0.1`` only (a free loopback port unless one is given). Debian's service
scripts are never used; ``stop()`` kills only the one PID this object started, and the process
is also killed if the object is garbage-collected or the interpreter exits.

    with PrivatePrometheus(tmp_path / "prom", ["127.0.0.1:9100"]) as prom:
        prom.wait_for('up{job="vpcnet"} == 1')
        prom.query("vpcnet_ports_total")  # -> [{"metric": {...}, "value": [ts, "3"]}, ...]

Timing: Prometheus 2.42 hands new targets to its scrape loops on a fixed 5 s ticker, so the
first sample appears ~5-6 s after ``start()`` whatever ``scrape_interval`` is (no flag changes
that in 2.42); later samples follow ``scrape_interval``. Use ``wait_for`` rather than sleeps.

The HTTP client is stdlib ``urllib`` with an opener that ignores any ``*_proxy`` environment, so
a proxy configured for the machine never sees these loopback requests.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Callable

import yaml

PROMETHEUS_BIN = "/usr/bin/prometheus"
JOB = "vpcnet"

_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class PrometheusError(RuntimeError):
    """Prometheus failed to start, exited, or answered an API call with an error."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate, wait, kill: only this one child process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PrivatePrometheus:
    def __init__(self, run_dir: Path | str, targets: list[str], scrape_interval: str = "1s",
                 port: int | None = None, *, job: str = JOB, binary: str = PROMETHEUS_BIN,
                 retention: str = "2h"):
        self.run_dir = Path(run_dir)
        self.scrape_targets = list(targets)
        self.scrape_interval = scrape_interval
        self.job = job
        self.binary = binary
        self.retention = retention
        self._fixed_port = port
        self.port: int | None = port
        self.config_file = self.run_dir / "prometheus.yml"
        self.data_dir = self.run_dir / "data"
        self.log_file = self.run_dir / "prometheus.log"
        self.proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def write_config(self) -> Path:
        config = {
            "global": {"scrape_interval": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{"job_name": self.job,
                                "static_configs": [{"targets": self.scrape_targets}]}],
        }
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.config_file

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            "--storage.tsdb.retention.size=256MB",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # Private, empty console dirs: nothing under /etc/prometheus is read.
            f"--web.console.templates={self.run_dir / 'consoles'}",
            f"--web.console.libraries={self.run_dir / 'console_libraries'}",
            "--web.max-connections=64",
            "--query.max-concurrency=4",
            "--log.level=info",
        ]

    def start(self, timeout: float = 30.0) -> "PrivatePrometheus":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "consoles", "console_libraries"):
            (self.run_dir / sub).mkdir(exist_ok=True)
        self.write_config()
        attempts = 1 if self._fixed_port else 3  # a picked port can be taken before we bind it
        for attempt in range(attempts):
            if not self._fixed_port:
                self.port = free_loopback_port()
            try:
                self._spawn()
                self._wait_ready(timeout)
                return self
            except PrometheusError as exc:
                self.stop()
                if attempt + 1 < attempts and "address already in use" in str(exc):
                    continue
                raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _PROXY_ENV}
        env.setdefault("GOMAXPROCS", "2")  # keep it small on a shared machine
        with open(self.log_file, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), cwd=self.run_dir, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._finalizer = weakref.finalize(self, _kill, self.proc)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with self._opener.open(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise PrometheusError(f"prometheus not ready on {self.url} after {timeout}s:\n"
                                      f"{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            _kill(proc)

    def __enter__(self) -> "PrivatePrometheus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- HTTP API --------------------------------------------------------------------------
    def api(self, path: str, params: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise PrometheusError on an error status."""
        if self.proc is None:
            raise PrometheusError("prometheus is not running")
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with self._opener.open(url, timeout=timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # 400/422/503 carry a JSON error body
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise PrometheusError(f"GET {url}: HTTP {exc.code}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"GET {url}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query. Vector results as Prometheus returns them
        (``[{"metric": {...}, "value": [ts, "str"]}]``); a scalar or string is wrapped the same way."""
        data = self.api("query", {"query": expr})
        if data["resultType"] in ("vector", "matrix"):
            return data["result"]
        return [{"metric": {}, "value": data["result"]}]

    def wait_for(self, expr: str, predicate: Callable[[list[dict]], bool] | None = None,
                 timeout: float = 30.0, interval: float = 0.2) -> list[dict]:
        """Poll ``query(expr)`` until it returns a non-empty result (and ``predicate(result)``)."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise PrometheusError(f"prometheus is not running:\n{self.log_tail()}")
            result = self.query(expr)
            if result and (predicate is None or predicate(result)):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r}: no matching result after {timeout}s; last: {result!r}")
            time.sleep(interval)

    def targets(self) -> list[dict]:
        """The active scrape targets (``/api/v1/targets``), each with ``scrapeUrl``, ``health``, ``lastError``..."""
        return self.api("targets", {"state": "active"})["activeTargets"]
