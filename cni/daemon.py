"""`vpcnet node`: the node daemon behind `vpcnet-cni`.

It owns this node's side of every pod attachment:
* br-int as vpcnet needs it (ovsdbapp): datapath type, fail_mode secure, OpenFlow13, the
  controller targets, the uplink port — ensured at start;
* per attachment: a persisted record (cni/records.py), the pod's address from the controller
  (``POST /v1/pods/ensure``), a veth pair (cni/plumbing.py), the host end on br-int with
  external_ids naming pod, namespace, container and ifname — and ADD answers only once the
  controller says the pod's flows are on this bridge (``GET /v1/pods/NS/NAME/flows?wait=``).

Requests come from the plugin as ``POST /v1/cni`` over a unix socket (see cni/spec.py for the
contract). Operations on one container are serialised; different containers run in parallel.
A failed ADD removes what it created (port, veth, and the address if the CNI path created the
pod), so nothing leaks even before the runtime's DEL.

An ADD does in parallel what does not depend on each other (its latency is the goal):

    | record "adding" (fsync), then             ||  veth pair + pod end (no address yet),
    | controller: POST /v1/pods/ensure (address)  ||  then the port on br-int (OVS: ofport)
    | controller: GET .../flows?wait=&ofport=&mac=&ips=   (long poll: flows for exactly this
    |                                                      port and address on the bridge)
    ||  Interface/Port external_ids:attached-mac  ||  pod end: MAC, addresses, up, routes,
    ||                                            ||  then record "ready" (fsync)
    answer once all three are done

Port adds (waiting for ovs-vswitchd, as ovs-vsctl does) and attached-mac updates (not
waiting) of concurrent ADDs share OVSDB transactions (GroupCommit): one transaction for ten
ports costs about what one for one port costs.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import signal
import socketserver
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from http import server as http_server
from pathlib import Path

import netaddr
from ovsdbapp.backend.ovs_idl import transaction as ovs_transaction

from vpcnet.app.api import Client, GroupCommit
from vpcnet.app.topology import PORT_PREFIX, pod_port_name
from vpcnet.cni import plumbing, spec
from vpcnet.cni.records import Record, Records
from vpcnet.ovsdb.vswitch import OWNER_KEY, NodeSwitch

LOG = logging.getLogger("vpcnet.node")
DEFAULT_SOCKET = "/run/vpcnet/cni.sock"
FLOWS_WAIT_S = 10.0


class ControllerUnreachable(Exception):
    pass


class NodeDaemon:
    def __init__(self, node: str, api: str, api_token: str | None, ovsdb: str, bridge: str = "br-int",
                 state_dir: str = "/var/lib/vpcnet/node", host_netns: str | None = None,
                 datapath_type: str = "netdev", controllers=(), datapath_id: str | None = None,
                 uplink: str | None = None, mtu: int = 1500, flows_wait: float = FLOWS_WAIT_S):
        self.node, self.bridge, self.host_netns = node, bridge, host_netns
        self.mtu, self.flows_wait = mtu, flows_wait
        self.client = Client(api, token=api_token, timeout=flows_wait + 20)
        self.records = Records(Path(state_dir) / "attachments")
        self.switch = NodeSwitch(ovsdb, bridge)
        self.switch.ensure_bridge(datapath_type, list(controllers), datapath_id, uplink)
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        # controller calls an ADD makes while it plumbs (threads are reused; a long poll holds one)
        self._pool = concurrent.futures.ThreadPoolExecutor(256, thread_name_prefix="vpcnet-add")
        self._port_adds = GroupCommit(self._add_ports)
        self._port_macs = GroupCommit(self._set_macs)

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.switch.stop()
        plumbing.close()   # the persistent host-netns rtnetlink socket(s)

    # --- br-int ports, batched ------------------------------------------------------------
    def _add_ports(self, items: list[tuple[str, dict]]) -> list:
        """One transaction (waiting for ovs-vswitchd, like ovs-vsctl) for every port queued;
        if it fails, each port alone, so the error is the failing port's own."""
        api = self.switch.api
        try:
            with api.transaction(check_error=True) as txn:
                for port, ids in items:
                    ids = {OWNER_KEY: "pod", **ids}
                    txn.add(api.add_port(self.bridge, port, may_exist=True))
                    txn.add(api.db_set("Interface", port, ("external_ids", ids)))
                    txn.add(api.db_set("Port", port, ("external_ids", ids)))
            return [None] * len(items)
        except Exception:  # noqa: BLE001
            if len(items) == 1:
                raise
        out: list = []
        for port, ids in items:
            try:
                self.switch.add_pod_port(port, ids)
                out.append(None)
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def _set_macs(self, items: list[tuple[str, str]]) -> list:
        """``external_ids:attached-mac`` of pod ports (known only once the address is): one
        transaction for all queued, not waiting for ovs-vswitchd (nothing there depends on it)."""
        api = self.switch.api
        txn = ovs_transaction.Transaction(api, api.ovsdb_connection, check_error=True, log_errors=False)
        for port, mac in items:
            for table in ("Interface", "Port"):
                txn.add(api.db_set(table, port, ("external_ids", {"attached-mac": mac}), if_exists=True))
        txn.commit()
        return [None] * len(items)

    # --- plumbing of requests -----------------------------------------------------------
    def lock(self, container_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[container_id]

    def controller(self, method: str, path: str, body=None) -> dict:
        try:
            status, payload = self.client.request(method, path, body)
        except OSError as exc:
            raise ControllerUnreachable(f"controller API unreachable: {exc}") from exc
        if status >= 500:
            raise ControllerUnreachable(f"controller API {method} {path}: HTTP {status}: {payload}")
        if status >= 400:
            raise spec.CniError(spec.ERR_IPAM, f"controller refused {method} {path}",
                                "; ".join(payload.get("errors", [str(payload)])))
        return payload

    def handle(self, body: dict) -> dict:
        """One plugin request -> the response body (``{"result": ...}`` or an error dict)."""
        try:
            req = spec.Request.from_wire(body)
        except spec.CniError as exc:
            return {"error": exc}
        try:
            op = getattr(self, f"cmd_{req.command.lower()}")
            result, timings = op(req)
            return {"result": None if result is None else spec.format_result(result, req.cni_version),
                    "timings": timings}
        except spec.CniError as exc:
            return {"error": exc}
        except plumbing.PlumbingError as exc:
            return {"error": spec.CniError(spec.ERR_PLUMBING, str(exc))}
        except ControllerUnreachable as exc:
            return {"error": spec.CniError(spec.ERR_TRY_AGAIN, str(exc), "the controller may be restarting; "
                                                                         "the runtime will retry")}
        except Exception as exc:  # never let one request take the daemon down
            LOG.exception("%s %s failed", req.command, req.container_id)
            return {"error": spec.CniError(spec.ERR_IO, f"{req.command} failed: {exc}")}

    @staticmethod
    def _pod_of(req) -> tuple[str, str]:
        ns, name = req.args.get("K8S_POD_NAMESPACE", ""), req.args.get("K8S_POD_NAME", "")
        if not ns or not name:
            raise spec.CniError(spec.ERR_INVALID_ENV, "CNI_ARGS: K8S_POD_NAMESPACE and K8S_POD_NAME are required",
                                f"CNI_ARGS={req.args!r}")
        return ns, name

    # --- ADD --------------------------------------------------------------------------------
    def cmd_add(self, req):
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        ns, name = self._pod_of(req)
        with self.lock(req.container_id):
            old = self.records.load(req.container_id, req.ifname)
            if old is not None and old.state == "ready":
                raise spec.CniError(spec.ERR_PLUMBING, f"CNI_CONTAINERID {req.container_id} CNI_IFNAME "
                                                       f"{req.ifname}: already attached (DEL it first)")
            if old is not None:
                self._teardown(old, release=False)   # leftovers of an ADD that crashed half-way
            port = pod_port_name(ns, name)
            rec = Record(req.container_id, req.ifname, req.netns, ns, name, port,
                         created_ms=int(time.time() * 1000))
            effects: list[concurrent.futures.Future] = []   # what runs in the pool and changes state
            pending = None
            try:
                fixed_ips = [str(netaddr.IPNetwork(i["address"] if isinstance(i, dict) else str(i)).ip)
                             for i in (req.runtime_config.get("ips") or [])]
                # the record is durable before the controller is asked for anything (see records.py)
                ensure = self._call("POST", "/v1/pods/ensure", {
                    "namespace": ns, "name": name, "node": self.node, "ips": fixed_ips,
                    "mac": req.runtime_config.get("mac")}, timings, "address", first=lambda: self.records.save(rec))
                effects.append(ensure)
                # meanwhile: the pair and the br-int port (neither needs the address)
                t1 = time.monotonic()
                pending = plumbing.create(self.host_netns, port, req.netns, req.ifname, self.mtu)
                if ensure.done():
                    ensure.result()   # refused already (no subnet, address taken...): no port for nothing
                self._port_adds.submit((port, {"vpcnet-pod": f"{ns}/{name}", "vpcnet-namespace": ns,
                                               "vpcnet-pod-name": name, "vpcnet-container-id": req.container_id,
                                               "vpcnet-ifname": req.ifname}))
                ofport = self.switch.ofport(port)
                timings["plumbing"] = time.monotonic() - t1
                status = ensure.result()["status"]
                t2 = time.monotonic()
                cidrs = list(status.get("cidrs") or [])
                gateways = [g for g in str(status.get("gateway", "")).split(",") if g]
                query = {"wait": self.flows_wait, "mac": status["mac"], "ips": ",".join(status.get("ips") or [])}
                if ofport is not None:
                    query["ofport"] = ofport
                flows = self._call("GET", f"/v1/pods/{ns}/{name}/flows?{urllib.parse.urlencode(query)}")
                # meanwhile: the port's attached-mac, the pod end, the record
                effects.append(self._pool.submit(self._port_macs.submit, (port, status["mac"])))
                t3 = time.monotonic()
                pending.configure(status["mac"], cidrs, gateways)
                timings["plumbing"] += time.monotonic() - t3
                result = self._result(req, port, status, cidrs, gateways)
                rec.state, rec.result = "ready", result
                self.records.save(rec)
                effects[-1].result()
                ready = flows.result()
                timings["flows"] = time.monotonic() - t2
                if not ready.get("ready"):
                    raise spec.CniError(spec.ERR_FLOWS_NOT_READY, f"pod {ns}/{name}: flows not installed within "
                                                                  f"{self.flows_wait}s", ready.get("reason", ""))
            except BaseException:
                # an ensure still running could create the pod after the release below: wait for it
                # (and for the attached-mac update); a flows long poll changes nothing: left to end
                concurrent.futures.wait(effects)
                if pending is not None:
                    pending.abandon()
                if rec.state == "ready":   # written while the flows were awaited: this ADD failed
                    rec.state = "adding"   # (if the teardown fails too, the next ADD cleans up)
                    try:
                        self.records.save(rec)
                    except OSError:
                        LOG.exception("%s: cannot mark the attachment record as not ready", req.container_id)
                self._teardown(rec, release=True)
                raise
        timings["total"] = time.monotonic() - t0
        LOG.info("ADD %s %s/%s -> %s in %.1f ms (%s)", req.container_id[:12], ns, name, status.get("ip"),
                 timings["total"] * 1000, ", ".join(f"{k} {v * 1000:.1f}" for k, v in timings.items() if k != "total"))
        return result, timings

    def _call(self, method: str, path: str, body=None, timings: dict | None = None,
              key: str = "", first=None) -> concurrent.futures.Future:
        """``controller(...)`` in a pool thread (after ``first()``, if given); the duration of
        the controller call goes to ``timings[key]``."""
        def call():
            if first is not None:
                first()
            t0 = time.monotonic()
            try:
                return self.controller(method, path, body)
            finally:
                if timings is not None:
                    timings[key] = time.monotonic() - t0
        return self._pool.submit(call)

    def _result(self, req, port, status, cidrs, gateways) -> dict:
        ips, routes = [], []
        for cidr in cidrs:
            version = netaddr.IPNetwork(cidr).version
            gw = next((g for g in gateways if netaddr.IPAddress(g).version == version), None)
            entry = {"address": cidr, "interface": 1}
            if gw:
                entry["gateway"] = gw
                routes.append({"dst": "0.0.0.0/0" if version == 4 else "::/0", "gw": gw})
            ips.append(entry)
        return {"interfaces": [{"name": port}, {"name": req.ifname, "mac": status["mac"], "mtu": self.mtu,
                                               "sandbox": req.netns}],
                "ips": ips, "routes": routes, "dns": {}}

    def _teardown(self, rec: Record, release: bool) -> None:
        """Remove everything an attachment may have created. Idempotent."""
        self.switch.del_port(rec.port)
        plumbing.detach(self.host_netns, rec.port)
        if release:
            self.controller("POST", "/v1/pods/release", {"namespace": rec.namespace, "name": rec.pod})
        self.records.delete(rec.container_id, rec.ifname)

    # --- DEL --------------------------------------------------------------------------------
    def cmd_del(self, req):
        t0 = time.monotonic()
        with self.lock(req.container_id):
            rec = self.records.load(req.container_id, req.ifname)
            if rec is None:
                ns = req.args.get("K8S_POD_NAMESPACE", "")
                name = req.args.get("K8S_POD_NAME", "")
                if not ns or not name:
                    return None, {"total": time.monotonic() - t0}   # nothing known, nothing to do
                port = pod_port_name(ns, name)
                owner = self.switch.pod_ports().get(port, {})
                if owner and owner.get("vpcnet-container-id") not in (None, req.container_id):
                    return None, {"total": time.monotonic() - t0}   # another sandbox of this pod owns it
                rec = Record(req.container_id, req.ifname, req.netns or "", ns, name, port)
            self._teardown(rec, release=True)
        return None, {"total": time.monotonic() - t0}

    # --- CHECK ------------------------------------------------------------------------------
    def cmd_check(self, req):
        t0 = time.monotonic()
        with self.lock(req.container_id):
            rec = self.records.load(req.container_id, req.ifname)
            if rec is None or rec.state != "ready":
                raise spec.CniError(spec.ERR_UNKNOWN_CONTAINER, f"CNI_CONTAINERID {req.container_id} CNI_IFNAME "
                                                                f"{req.ifname}: no such attachment on this node")
            want = req.prev_result or rec.result
            try:
                have = plumbing.inspect(req.netns, req.ifname)
            except plumbing.PlumbingError as exc:
                raise spec.CniError(spec.ERR_PLUMBING, str(exc)) from None
            pod_if = next((i for i in want.get("interfaces", []) if i.get("name") == req.ifname), {})
            if pod_if.get("mac") and pod_if["mac"].lower() != str(have["mac"]).lower():
                raise spec.CniError(spec.ERR_PLUMBING, f"{req.ifname}: mac is {have['mac']}, want {pod_if['mac']}")
            for ip in want.get("ips", []):
                if ip["address"] not in have["cidrs"]:
                    raise spec.CniError(spec.ERR_PLUMBING, f"{req.ifname}: address {ip['address']} missing "
                                                           f"(has {', '.join(have['cidrs']) or 'none'})")
                if ip.get("gateway") and ip["gateway"] not in have["gateways"]:
                    raise spec.CniError(spec.ERR_PLUMBING, f"{req.ifname}: default route via {ip['gateway']} missing")
            if not have["up"]:
                raise spec.CniError(spec.ERR_PLUMBING, f"{req.ifname}: interface is down")
            if self.switch.ofport(rec.port) is None:
                raise spec.CniError(spec.ERR_BRIDGE, f"port {rec.port} is not on {self.bridge}")
            ready = self.controller("GET", f"/v1/pods/{rec.namespace}/{rec.pod}/flows?wait=0")
            if not ready.get("ready"):
                raise spec.CniError(spec.ERR_FLOWS_NOT_READY, f"pod {rec.namespace}/{rec.pod}: flows missing",
                                    ready.get("reason", ""))
        return None, {"total": time.monotonic() - t0}

    # --- STATUS -----------------------------------------------------------------------------
    def cmd_status(self, req):
        try:
            self.controller("GET", "/v1/healthz")
        except (ControllerUnreachable, spec.CniError) as exc:
            raise spec.CniError(spec.ERR_NOT_AVAILABLE, "the vpcnet controller is not reachable", str(exc)) from None
        ok, why = self.switch.bridge_ready()
        if not ok:
            raise spec.CniError(spec.ERR_NOT_AVAILABLE, f"{self.bridge} is not ready", why)
        return None, {}

    # --- GC ---------------------------------------------------------------------------------
    def cmd_gc(self, req):
        t0 = time.monotonic()
        valid = {(a.get("containerID"), a.get("ifname")) for a in (req.valid_attachments or [])}
        kept_ports = set()
        removed = 0
        for rec in self.records.all():
            if (rec.container_id, rec.ifname) in valid:
                kept_ports.add(rec.port)
                continue
            with self.lock(rec.container_id):
                self._teardown(rec, release=True)
                removed += 1
        for port, ids in self.switch.pod_ports().items():
            if port in kept_ports or (ids.get("vpcnet-container-id"), ids.get("vpcnet-ifname")) in valid:
                continue
            self.switch.del_port(port)
            plumbing.detach(self.host_netns, port)
            removed += 1
        for link in plumbing.host_links(self.host_netns, PORT_PREFIX):
            if link not in kept_ports and len(link) == len(PORT_PREFIX) + 12:
                plumbing.detach(self.host_netns, link)
                removed += 1
        LOG.info("GC: %d attachments kept, %d leftovers removed", len(valid), removed)
        return None, {"total": time.monotonic() - t0}


# --- the unix-socket server ---------------------------------------------------------------------
class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def _handler(daemon: NodeDaemon):
    class Handler(http_server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self):
            return "plugin"

        def log_message(self, fmt, *args):
            LOG.debug("cni: " + fmt, *args)

        def do_POST(self):
            if self.path != "/v1/cni":
                return self._send(404, {"code": spec.ERR_INVALID_CONFIG, "msg": f"unknown path {self.path}"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            except ValueError as exc:
                return self._send(400, {"code": spec.ERR_DECODE, "msg": "bad request body", "details": str(exc)})
            out = daemon.handle(body)
            if "error" in out:
                exc = out["error"]
                return self._send(exc.http_status, exc.to_wire())
            self._send(200, out)

        def _send(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
    return Handler


def serve(daemon: NodeDaemon, socket_path: str):
    path = Path(socket_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    server = _Server(str(path), _handler(daemon))
    threading.Thread(target=server.serve_forever, name="cni-server", daemon=True).start()
    return server


# --- install the plugin where the runtime looks ------------------------------------------------
def install_cni(conf_dir: str, bin_dir: str, socket_path: str, name: str = "vpcnet") -> None:
    Path(conf_dir).mkdir(parents=True, exist_ok=True)
    Path(bin_dir).mkdir(parents=True, exist_ok=True)
    conflist = {"cniVersion": "1.1.0", "name": name,
                "plugins": [{"type": "vpcnet-cni", "daemonSocket": socket_path,
                             "capabilities": {"ips": True, "mac": True}}]}
    conf = Path(conf_dir) / f"10-{name}.conflist"
    tmp = conf.with_suffix(".tmp")
    tmp.write_text(json.dumps(conflist, indent=2) + "\n")
    os.replace(tmp, conf)
    target = Path(bin_dir) / "vpcnet-cni"
    # The plugin is exec'd per call and imports only the standard library and vpcnet.cni.spec,
    # so it runs with `-I -S` (no site start-up: ~10 ms instead of ~50 ms) from a private
    # directory that exposes just the vpcnet package.
    lib = Path(bin_dir) / ".vpcnet-cni-lib"
    lib.mkdir(exist_ok=True)
    package = Path(__file__).resolve().parent.parent
    link = lib / "vpcnet"
    if not (link.is_symlink() and link.resolve() == package):
        tmp_link = lib / "vpcnet.tmp"
        if tmp_link.is_symlink():
            tmp_link.unlink()
        tmp_link.symlink_to(package, target_is_directory=True)
        os.replace(tmp_link, link)
    python = os.path.realpath(sys.executable)
    script = (f"#!{python} -IS\nimport sys\nsys.path.insert(0, {str(lib)!r})\n"
              f"from vpcnet.cni.plugin import main\nsys.exit(main())\n")
    tmp = target.with_suffix(".tmp")
    tmp.write_text(script)
    tmp.chmod(0o755)
    os.replace(tmp, target)
    LOG.info("installed %s and %s", conf, target)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", required=True, help="this node's name (a Node object in the controller)")
    p.add_argument("--bridge", default="br-int")
    p.add_argument("--api", required=True, help="controller API: unix:PATH or HOST:PORT")
    p.add_argument("--api-token", default=os.environ.get("VPCNET_API_TOKEN"))
    p.add_argument("--ovsdb", default="unix:/var/run/openvswitch/db.sock", help="this node's Open_vSwitch database")
    p.add_argument("--netns", help="network namespace where Open vSwitch and br-int's ports live (default: ours)")
    p.add_argument("--datapath-type", default="netdev")
    p.add_argument("--controller", action="append", default=[],
                   help="OpenFlow controller target for br-int (tcp:IP:PORT, ssl:..., unix:...); repeatable")
    p.add_argument("--datapath-id", help="16 hex digits; must match the Node's spec.datapathId")
    p.add_argument("--uplink", help="the trunk port towards the leaf, added to br-int")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="where vpcnet-cni finds us (default %(default)s)")
    p.add_argument("--state-dir", default="/var/lib/vpcnet/node")
    p.add_argument("--flows-wait", type=float, default=FLOWS_WAIT_S,
                   help="how long ADD waits for the pod's flows (default %(default)s s)")
    p.add_argument("--install-cni", action="store_true", help="write the .conflist and the plugin, then serve")
    p.add_argument("--cni-conf-dir", default="/etc/cni/net.d")
    p.add_argument("--cni-bin-dir", default="/opt/cni/bin")
    p.add_argument("--log-level", default="INFO")


def run(args) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.install_cni:
        install_cni(args.cni_conf_dir, args.cni_bin_dir, args.socket)
    daemon = NodeDaemon(args.node, args.api, args.api_token, args.ovsdb, args.bridge, args.state_dir, args.netns,
                        args.datapath_type, args.controller, args.datapath_id, args.uplink, args.mtu,
                        args.flows_wait)
    server = serve(daemon, args.socket)
    LOG.info("vpcnet node %s ready: cni socket %s, bridge %s, controller API %s", args.node, args.socket,
             args.bridge, args.api)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.shutdown()
    server.server_close()
    daemon.stop()
    return 0


