"""The controller API: HTTP + JSON over a unix socket (default) or TCP (TLS + bearer token).

Routes (all JSON):
  GET  /v1/healthz
  GET  /v1/objects/KIND[?namespace=NS]           list
  GET  /v1/objects/KIND/NAME[?namespace=NS]      one object
  POST /v1/apply   {"documents": [...]}          create/update, all or nothing
  POST /v1/delete  {"documents": [...]} | {"refs": [{"kind","namespace","name"}]}
  GET  /v1/ip-history/ADDRESS
  POST /v1/pods/ensure {"namespace","name","node","ips":[],"mac":""}   the CNI path
  POST /v1/pods/release {"namespace","name"}     CNI DEL: release a CNI-created pod's address
  GET  /v1/pods/NS/NAME/flows[?wait=SECONDS][&ofport=N&mac=M&ips=A,B]
                                                 are the pod's flows on its bridge? (long poll; the
                                                 optional ofport/mac/ips: for that port and address)
  GET  /v1/flows/NODE[?table=T&owner=O&installed=1]   compiled (or read back) br-int flows
  GET  /v1/fabric/plan[?leaf=A,B]                 per-leaf changes a sync would make (nothing sent)
  POST /v1/fabric/sync {"leaves": [...]}          apply them (all NETCONF leaves when omitted)
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import socketserver
import ssl
import threading
import urllib.parse
from http import server as http_server

from vpcnet.app import intent
from vpcnet.app.ipam.plan import IpamError
from vpcnet.app.store import StoreError

LOG = logging.getLogger(__name__)
ERROR_TEXT_MAX = 600    # characters of an unexpected exception shown to an API client (the log has it all)


class GroupCommit:
    """Group commit for work that costs one round trip whatever its size (a database
    transaction): callers ``submit`` items; whoever finds nobody committing becomes the leader,
    commits everything queued by then in one ``commit_many(items)`` (-> one result or exception
    per item, in order) and hands the leadership to the first caller that queued meanwhile.
    Alone, a caller commits at once; ten at once cost about two commits, not ten."""

    class _Slot:
        __slots__ = ("item", "done", "lead", "value", "error")

        def __init__(self, item):
            self.item, self.done, self.lead = item, threading.Event(), False
            self.value = self.error = None

    def __init__(self, commit_many):
        self.commit_many = commit_many
        self.lock = threading.Lock()
        self.queue: list = []
        self.busy = False

    def submit(self, item):
        slot = self._Slot(item)
        with self.lock:
            self.queue.append(slot)
            lead = not self.busy
            self.busy = True
        if not lead:
            slot.done.wait()
            lead = slot.lead
        if lead:
            with self.lock:
                batch, self.queue = self.queue, []
            try:
                self._commit(batch)
            finally:
                with self.lock:
                    if self.queue:
                        nxt = self.queue[0]
                        nxt.lead = True
                        nxt.done.set()
                    else:
                        self.busy = False
        if slot.error is not None:
            raise slot.error
        return slot.value

    def _commit(self, batch) -> None:
        try:
            outcomes = self.commit_many([s.item for s in batch])
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets it
            outcomes = [exc] * len(batch)
        for slot, outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                slot.error = outcome
            else:
                slot.value = outcome
            slot.done.set()


class ApiError(Exception):
    def __init__(self, status: int, errors):
        self.status = status
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


class Api:
    """Routes requests to the store. Transport-free, so tests and other servers can call `handle`."""

    def __init__(self, store, flows=None, fabric=None):
        self.store = store
        self.flows = flows  # FlowEngine, when this controller serves OpenFlow
        self.fabric = fabric  # FabricEngine (NETCONF leaves)
        self.lock = threading.Lock()  # changes are serialised; reads run in parallel
        # CNI ADDs arrive in bursts: the pod ensures queued while one commits share the next
        # transaction (Store.ensure_pods), instead of waiting for the lock one by one.
        self.ensures = GroupCommit(self._ensure_batch)

    def _ensure_batch(self, items):
        with self.lock:
            return self.store.ensure_pods(items)

    def handle(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        url = urllib.parse.urlsplit(path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            return 200, self._route(method, parts, query, body or {})
        except ApiError as exc:
            return exc.status, {"errors": exc.errors}
        except intent.ValidationError as exc:
            return 422, {"errors": exc.errors}
        except StoreError as exc:
            return exc.status, {"errors": exc.errors}
        except IpamError as exc:
            return exc.status, {"errors": [str(exc)]}
        except Exception as exc:  # never let one request take the server down
            LOG.exception("API %s %s failed", method, path)
            text = str(exc)       # an OVSDB timeout names every command of the transaction: keep it short
            if len(text) > ERROR_TEXT_MAX:
                text = text[:ERROR_TEXT_MAX // 2] + " [...] " + text[-ERROR_TEXT_MAX // 2:]
            return 500, {"errors": [f"internal error: {text}"]}

    def _route(self, method, parts, query, body):
        if parts[:1] != ["v1"]:
            raise ApiError(404, f"unknown path /{'/'.join(parts)}")
        parts = parts[1:]
        if method == "GET" and parts == ["healthz"]:
            return {"ok": True}
        if method == "GET" and parts[:1] == ["objects"] and len(parts) in (2, 3):
            info = intent.resolve_kind(parts[1])
            namespace = query.get("namespace")
            if len(parts) == 3:
                return self.store.get(info.kind, namespace or ("default" if info.namespaced else ""), parts[2])
            if not info.namespaced:
                namespace = None
            return {"items": self.store.list(info.kind, namespace)}
        if method == "POST" and parts == ["apply"]:
            objs = intent.validate_all(self._documents(body), body.get("source", ""))
            with self.lock:
                return {"results": self.store.apply(objs)}
        if method == "POST" and parts == ["delete"]:
            keys = self._delete_keys(body)
            with self.lock:
                return {"results": self.store.delete(keys)}
        if method == "GET" and parts[:1] == ["ip-history"] and len(parts) == 2:
            return {"items": self.store.ip_history(parts[1])}
        if method == "POST" and parts == ["pods", "ensure"]:
            for key in ("namespace", "name"):
                if not isinstance(body.get(key), str) or not body[key]:
                    raise ApiError(400, f"pods/ensure: {key}: required string, got {body.get(key)!r}")
            ips = body.get("ips") or []
            if not isinstance(ips, list) or not all(isinstance(i, str) and _is_ip(i) for i in ips):
                raise ApiError(400, f"pods/ensure: ips: expected a list of IP addresses, got {ips!r}")
            return {"status": self.ensures.submit((body["namespace"], body["name"], body.get("node", ""),
                                                   tuple(body.get("ips") or ()), body.get("mac")))}
        if method == "POST" and parts == ["pods", "release"]:
            for key in ("namespace", "name"):
                if not isinstance(body.get(key), str) or not body[key]:
                    raise ApiError(400, f"pods/release: {key}: required string, got {body.get(key)!r}")
            with self.lock:
                return self.store.release_pod(body["namespace"], body["name"])
        if method == "GET" and parts[:1] == ["pods"] and len(parts) == 4 and parts[3] == "flows":
            if self.flows is None:
                raise ApiError(409, "this controller does not serve OpenFlow (--of-listen none)")
            try:
                wait = min(max(float(query.get("wait", 0)), 0.0), 60.0)
            except ValueError:
                raise ApiError(400, f"wait: {query.get('wait')!r} is not a number of seconds") from None
            ready, reason = self.flows.wait_pod_ready(parts[1], parts[2], wait, _expected_pod(query))
            return {"ready": ready, "reason": reason}
        if method == "GET" and parts[:1] == ["flows"] and len(parts) == 2:
            return self._flows(parts[1], query)
        if parts[:1] == ["fabric"] and parts[1:] in (["plan"], ["sync"]):
            return self._fabric(method, parts[1], query, body)
        raise ApiError(404, f"unknown route {method} /v1/{'/'.join(parts)}")

    def _fabric(self, method: str, what: str, query: dict, body: dict) -> dict:
        from vpcnet.app.fabric import FabricError
        if self.fabric is None:
            raise ApiError(409, "this controller does not manage leaves")
        want = "GET" if what == "plan" else "POST"
        if method != want:
            raise ApiError(405, f"fabric/{what}: use {want}")
        leaves = body.get("leaves") if what == "sync" else [x for x in query.get("leaf", "").split(",") if x]
        if leaves is not None and (not isinstance(leaves, list) or not all(isinstance(x, str) for x in leaves)):
            raise ApiError(400, f"fabric/sync: leaves: must be a list of leaf names, got {leaves!r}")
        try:
            reports = self.fabric.plan(leaves) if what == "plan" else self.fabric.sync(leaves)
        except FabricError as exc:
            raise ApiError(409, str(exc)) from None
        return {"leaves": [r.as_dict() for r in reports]}

    def _flows(self, node: str, query: dict) -> dict:
        from vpcnet.flows import render
        from vpcnet.flows.cookies import owner_hash, owner_hash_of
        from vpcnet.flows.pipeline import PIPELINE
        from vpcnet.flows.model import Flow
        if self.flows is None:
            raise ApiError(409, "this controller does not serve OpenFlow (--of-listen none)")
        table, owner = query.get("table"), query.get("owner")
        if table and table not in PIPELINE.names():
            raise ApiError(422, f"table: {table!r} is not a br-int table ({', '.join(PIPELINE.names())})")
        try:
            if query.get("installed") in ("1", "true", "yes"):
                flows, other = self.flows.installed(node)
            else:
                flows, other = [f for fs in self.flows.compiled(node).values() for f in fs], []
        except KeyError as exc:
            raise ApiError(404, str(exc.args[0])) from None
        except LookupError as exc:
            raise ApiError(409, str(exc)) from None
        if table:   # a table holds flows only (an owner's groups go with --owner or no filter)
            flows = [f for f in flows if isinstance(f, Flow) and f.table == table]
        if owner:
            flows = [f for f in flows if not isinstance(f, Flow) or owner_hash_of(f.cookie) == owner_hash(owner)]
            if not query.get("installed") in ("1", "true", "yes"):
                flows = [f for f in flows if isinstance(f, Flow) or f in self.flows.compiled(node).get(owner, ())]
        return {"node": node, "flows": render(flows).splitlines(), "unrecognised": other}

    @staticmethod
    def _documents(body):
        docs = body.get("documents")
        if not isinstance(docs, list):
            raise ApiError(400, "body.documents: expected a list of manifests")
        return docs

    def _delete_keys(self, body):
        keys = []
        if "refs" in body:
            for ref in body["refs"]:
                info = intent.resolve_kind(str(ref.get("kind", "")))
                ns = ref.get("namespace") or ("default" if info.namespaced else "")
                keys.append((info.kind, ns, str(ref.get("name", ""))))
        else:
            for obj in intent.validate_all(self._documents(body), body.get("source", "")):
                keys.append(obj.key)
        return keys


def _expected_pod(query: dict) -> dict | None:
    """``ofport``, ``mac``, ``ips`` (comma-separated) of a flows wait: what the caller knows the
    pod to be, so an answer about an older port or address of the same pod is not taken."""
    expect: dict = {}
    if query.get("ofport"):
        if not query["ofport"].isdigit():
            raise ApiError(400, f"ofport: {query['ofport']!r} is not a port number")
        expect["ofport"] = int(query["ofport"])
    if query.get("mac"):
        expect["mac"] = query["mac"]
    if query.get("ips"):
        ips = [i for i in query["ips"].split(",") if i]
        if not all(_is_ip(i) for i in ips):
            raise ApiError(400, f"ips: {query['ips']!r} is not a list of IP addresses")
        import netaddr
        expect["ips"] = [str(netaddr.IPAddress(i)) for i in ips]
    return expect or None


def _is_ip(text: str) -> bool:
    import netaddr
    try:
        netaddr.IPAddress(text)
        return True
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return False


class _Handler(http_server.BaseHTTPRequestHandler):
    server_version = "vpcnet"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        LOG.debug("api: " + fmt, *args)

    def _serve(self, method):
        token = self.server.token
        if token is not None:
            got = self.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
                return self._reply(401, {"errors": ["missing or wrong bearer token"]})
        body = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as exc:
                return self._reply(400, {"errors": [f"request body is not JSON: {exc}"]})
            if not isinstance(body, dict):
                return self._reply(400, {"errors": ["request body must be a JSON object"]})
        status, payload = self.server.api.handle(method, self.path, body)
        self._reply(status, payload)

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def address_string(self):
        return "unix" if isinstance(self.client_address, str) or not self.client_address else self.client_address[0]


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128   # every node daemon's CNI ADDs land here in bursts


class _TcpServer(socketserver.ThreadingMixIn, http_server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def parse_address(text: str) -> tuple[str, object]:
    """'unix:/path' -> ('unix', path); 'HOST:PORT' or 'tcp:HOST:PORT' -> ('tcp', (host, port))."""
    if text.startswith("unix:"):
        return "unix", text[5:]
    if text.startswith("tcp:"):
        text = text[4:]
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--api: {text!r} is neither unix:PATH nor HOST:PORT")
    return "tcp", (host.strip("[]"), int(port))


def serve(api: Api, address: str, token: str | None = None, certfile: str | None = None,
          keyfile: str | None = None):
    """Start the API server in a background thread. TCP requires a token; TLS when a cert is given."""
    kind, where = parse_address(address)
    if kind == "unix":
        if os.path.exists(where):
            os.unlink(where)
        srv = _UnixServer(where, _Handler)
        os.chmod(where, 0o660)
    else:
        if not token:
            raise ValueError("--api on TCP needs --api-token (bearer token); use unix:PATH for local access")
        srv = _TcpServer(where, _Handler)
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.api = api
    srv.token = token
    thread = threading.Thread(target=srv.serve_forever, name="api", daemon=True)
    thread.start()
    return srv


class Client:
    """Minimal client of the controller API (stdlib only)."""

    def __init__(self, address: str, token: str | None = None, cafile: str | None = None, timeout: float = 60):
        self.kind, self.where = parse_address(address)
        self.token, self.cafile, self.timeout = token, cafile, timeout
        self.tls = bool(cafile)

    def _connection(self):
        import http.client
        if self.kind == "unix":
            conn = http.client.HTTPConnection("localhost", timeout=self.timeout)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # connect() on a non-blocking unix socket fails at once with EAGAIN when the
            # server's backlog is full; a blocking connect waits for the accept instead.
            sock.setblocking(True)
            sock.connect(self.where)
            sock.settimeout(self.timeout)
            conn.sock = sock
            return conn
        host, port = self.where
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        conn = self._connection()
        try:
            headers = {"Content-Type": "application/json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, (json.loads(payload) if payload else {})
        finally:
            conn.close()
