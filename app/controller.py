"""`vpcnet controller`: the state database (embedded or remote), IPAM, the API, and the OpenFlow
controller of every node's br-int (os-ken app + flow engine), with Prometheus metrics.

Embedded default: `--state-dir DIR` starts a private ovsdb-server in DIR and stops it on exit.
Production: `--db tcp:A:6641,tcp:B:6641,tcp:C:6641` against a raft cluster run by the operator.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path

import netaddr

from vpcnet.app import api as api_mod
from vpcnet.app import ofapp
from vpcnet.app.fabric import FabricEngine
from vpcnet.app.flowengine import FlowEngine
from vpcnet.app.gc_tuning import tune_gc
from vpcnet.app.metrics import Metrics
from vpcnet.app.ipam.allocator import Allocator
from vpcnet.app.store import DEFAULT_SERVICE_CIDR, Store
from vpcnet.ovsdb.server import EmbeddedOvsdbServer
from vpcnet.ovsdb.state.impl_idl import connect

LOG = logging.getLogger("vpcnet.controller")
DEFAULT_STATE_DIR = os.environ.get("VPCNET_STATE_DIR", "/var/lib/vpcnet")
QUARANTINE_KEY = "ip_quarantine_seconds"


def _per_second(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _service_cidr(text: str) -> str:
    """A network for Service cluster IPs: a CIDR with host bits zero and room for a few IPs."""
    try:
        net = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a CIDR (e.g. 10.96.0.0/16)") from None
    if net.ip != net.network:
        raise argparse.ArgumentTypeError(f"{text!r} has host bits set (did you mean {net.cidr}?)")
    if net.size < 8:
        raise argparse.ArgumentTypeError(f"{text!r} is too small for Services (at least 8 addresses)")
    return str(net.cidr)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help="private directory for the embedded state database and the API socket (default %(default)s)")
    p.add_argument("--db", help="remote state database instead of the embedded one, e.g. "
                                "tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,tcp:10.0.0.3:6641")
    p.add_argument("--api", help="API listen address: unix:PATH or HOST:PORT (default unix:STATE_DIR/api.sock)")
    p.add_argument("--api-token", default=os.environ.get("VPCNET_API_TOKEN"),
                   help="bearer token required on a TCP API (env VPCNET_API_TOKEN)")
    p.add_argument("--api-cert", help="TLS certificate for a TCP API")
    p.add_argument("--api-key", help="TLS key for a TCP API")
    p.add_argument("--ip-quarantine", type=float, default=None, metavar="SECONDS",
                   help="how long a released address waits before another pod may get it (default 60, "
                        "stored in the database so every allocator agrees)")
    p.add_argument("--of-listen", default=os.environ.get("VPCNET_OF_LISTEN", "0.0.0.0:6653"),
                   help="OpenFlow listener the br-int bridges connect to: HOST:PORT, unix:PATH, or 'none' "
                        "(default %(default)s)")
    p.add_argument("--of-cert", help="TLS certificate for OpenFlow (then switches use ssl:HOST:PORT)")
    p.add_argument("--of-key", help="TLS private key for OpenFlow")
    p.add_argument("--of-ca", help="CA certificates that switch certificates must chain to")
    p.add_argument("--audit-interval", type=float, default=30.0, metavar="SECONDS",
                   help="how often every bridge's flows are dumped and drift repaired; the per-rule policy "
                        "counters are refreshed then too (default %(default)s)")
    p.add_argument("--deny-log-rate", type=_per_second, default=100, metavar="PER_SECOND",
                   help="denied connections logged per second and bridge at most: a datapath meter drops the "
                        "rest before they reach the controller (burst: as many; default %(default)s)")
    p.add_argument("--service-cidr", type=_service_cidr, default=DEFAULT_SERVICE_CIDR, metavar="CIDR",
                   help="where Services get their cluster IPs (the first host address is kept back, as in "
                        "Kubernetes; allocated IPs stay when it changes; default %(default)s)")
    p.add_argument("--fabric-credentials", metavar="DIR",
                   help="directory of <credentialsRef>.json files ({\"username\", \"keyFile\"}) for NETCONF leaves; "
                        "without it the controller does not configure leaves")
    p.add_argument("--fabric-interval", type=float, default=60.0, metavar="SECONDS",
                   help="how often every leaf's running configuration is read back and compared (default 60)")
    p.add_argument("--fabric-no-repair", action="store_true",
                   help="report drift found on leaves (metrics, log, `vpcnet fabric plan`) without repairing it")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics on http://HOST:PORT/metrics")
    p.add_argument("--log-level", default="INFO")


class Controller:
    def __init__(self, args):
        self.args = args
        self.state_dir = Path(args.state_dir)
        self.server: EmbeddedOvsdbServer | None = None
        self.api = None
        self.http = None
        self.flows: FlowEngine | None = None
        self.fabric: FabricEngine | None = None
        self.metrics_server = None
        self.stopping = threading.Event()

    @property
    def api_address(self) -> str:
        return self.args.api or f"unix:{self.state_dir / 'api.sock'}"

    def start(self) -> None:
        t0 = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.args.db:
            remote = self.args.db
        else:
            self.server = EmbeddedOvsdbServer(self.state_dir)
            remote = self.server.start()
        self.api = connect(remote)
        quarantine = self._quarantine_seconds(self.args.ip_quarantine)
        self.allocator = Allocator(self.api, quarantine_s=quarantine)
        self.store = Store(self.api, self.allocator, self.args.service_cidr)
        self.metrics = Metrics()
        if self.args.metrics:
            self.metrics_server = self.metrics.serve(self.args.metrics)
        if str(self.args.of_listen).lower() != "none":
            if bool(self.args.of_cert) != bool(self.args.of_key):
                raise SystemExit("--of-cert and --of-key go together")
            self.flows = FlowEngine(remote, self.metrics, audit_interval=self.args.audit_interval,
                                    deny_log_rate=self.args.deny_log_rate).start()
            ofapp.run(self.flows, self.args.of_listen, self.args.of_cert, self.args.of_key, self.args.of_ca)
        if self.args.fabric_credentials:
            self.fabric = FabricEngine(self.api, self.metrics, self.args.fabric_credentials,
                                       interval=self.args.fabric_interval,
                                       repair=not self.args.fabric_no_repair).start()
        else:
            self.fabric = FabricEngine(self.api, self.metrics)   # plan/sync answer with a clear error
        self.http = api_mod.serve(api_mod.Api(self.store, self.flows, self.fabric), self.api_address, self.args.api_token,
                                  self.args.api_cert, self.args.api_key)
        threading.Thread(target=self._reaper, name="ip-quarantine-reaper", daemon=True).start()
        LOG.info("vpcnet controller ready in %.2fs: api %s, state database %s, ip quarantine %ss, "
                 "openflow %s, metrics %s", time.monotonic() - t0, self.api_address, remote, quarantine,
                 self.args.of_listen, self.args.metrics or "off")

    def _quarantine_seconds(self, wanted: float | None) -> float:
        rows = self.api.db_list_rows("Global").execute(check_error=True)
        options = dict(rows[0].options) if rows else {}
        if wanted is None:
            return float(options.get(QUARANTINE_KEY, 60))
        with self.api.transaction(check_error=True) as txn:
            if rows:
                txn.add(self.api.db_set("Global", rows[0].uuid, ("options", {QUARANTINE_KEY: str(wanted)})))
            else:
                txn.add(self.api.db_create("Global", options={QUARANTINE_KEY: str(wanted)}))
        return wanted

    def _reaper(self) -> None:
        while not self.stopping.wait(5.0):
            try:
                reaped = self.allocator.reap()
                if reaped:
                    LOG.info("released %d addresses/MACs whose quarantine expired", reaped)
            except Exception:  # keep reaping; log once per failure
                LOG.exception("quarantine reaper failed")

    def stop(self) -> None:
        self.stopping.set()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        if self.flows is not None:
            self.flows.stop()
        if self.fabric is not None:
            self.fabric.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        if self.api is not None:
            self.api.stop()
        if self.server is not None:
            self.server.stop()
        kind, where = api_mod.parse_address(self.api_address)
        if kind == "unix" and os.path.exists(where):
            os.unlink(where)


def run(args) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_gc()
    ctl = Controller(args)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    ctl.start()
    try:
        done.wait()
    finally:
        ctl.stop()
    if ctl.flows is not None:
        # os-ken's hub threads are not daemons and cannot be joined from outside: leave now.
        logging.shutdown()
        os._exit(0)
    return 0
