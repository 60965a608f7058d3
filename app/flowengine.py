"""The flow engine: state-database changes and switch events in, reconciled bridges out.

Threads (os-ken 4 runs on native threads by default, like ovsdbapp — no eventlet anywhere):
* ovsdbapp's connection thread reports row changes (StateIdl.listeners) -> ``kick()``;
* os-ken's handler thread calls ``datapath_up/down``, ``port_changed`` and resolves replies;
  it never blocks (a blocked handler thread would also block the replies we wait for);
* one worker thread rebuilds the compiler input, compiles and reconciles; it is the only
  thread that decides what a bridge should hold;
* one audit thread dumps every bridge at ``audit_interval`` and repairs drift.

Nothing a handler or the worker raises may escape: errors are logged with the node/owner and
counted (``vpcnet_handler_errors_total``), and the worker retries after a back-off.

A pass costs what changed, not what exists: the state-database IDL remembers which Pod rows
changed (``_EngineIdl``) and the port-status handler which ports, and the pass derives the next
compiler input from the last one (``topology.update``: ClusterIn.with_pods/without_pods) and
recompiles the owners of those pods only. Anything else (a Vpc, Subnet or Node row, a bridge
(re)connecting, an IDL resync, a clash between pods, a failed pass) reads every row again
(``topology.build``). This is the CNI ADD's critical path: ``wait_pod_ready`` answers as soon as
the pass that installed the pod's flows on its bridge is done.
"""
from __future__ import annotations

import logging
import threading
import time

from ovsdbapp.backend.ovs_idl import connection as ovs_connection

from vpcnet.app import ofcompare, ofwire, topology
from vpcnet.app.ctflush import ct_flush
from vpcnet.app.metrics import Metrics
from vpcnet.app.oflink import DatapathLink, LinkError
from vpcnet.app import service_reject
from vpcnet.app.policy_audit import SERVICE, DenyLog
from vpcnet.app.reconcile_groups import GroupConflict
from vpcnet.app.reconciler import Reconciler
from vpcnet.flows import Change, ClusterIn, compile_node, compile_owner, owners_affected, owners_on_node
from vpcnet.flows import policy as flow_policy
from vpcnet.flows import service as flow_service
from vpcnet.flows.compile import EMPTY
from vpcnet.flows.model import Meter
from vpcnet.ovsdb.state import commands as state_cmd
from vpcnet.ovsdb.state import idl as state_idl
from vpcnet.ovsdb.state.impl_idl import StateApi

LOG = logging.getLogger(__name__)
NETWORK_TABLES = ("Vpc", "Subnet", "Pod", "Node")
POLICY_TABLES = ("Namespace", "SecurityGroup", "NetworkPolicy")
SERVICE_TABLES = ("Service", "Endpoints")
WATCHED_TABLES = NETWORK_TABLES + POLICY_TABLES + SERVICE_TABLES
REJECT_RATE = 1000     # refusals of connections to a Service without endpoints, per second and bridge
POLICY_CHANGED = "policy/objects"     # the owner changed_owners reports for any policy object change


def changed_owners(before: ClusterIn, after: ClusterIn) -> list[str]:
    """Owners ("vpc/V", "subnet/S", "node/N", "pod/NS/P", and POLICY_CHANGED for a Namespace,
    SecurityGroup or NetworkPolicy) whose input differs between two states."""
    out = []
    if (before.namespaces, before.security_groups, before.network_policies) != (
            after.namespaces, after.security_groups, after.network_policies):
        out.append(POLICY_CHANGED)
    out += changed_services(before, after)
    for kind, items in (("vpc", lambda c: {v.name: v for v in c.vpcs}),
                        ("subnet", lambda c: {s.name: s for s in c.subnets}),
                        ("node", lambda c: {n.name: n for n in c.nodes}),
                        ("pod", lambda c: {f"{p.namespace}/{p.name}": p for p in c.pods})):
        old, new = items(before), items(after)
        out += [f"{kind}/{k}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    return out


def changed_services(before: ClusterIn, after: ClusterIn) -> list[str]:
    """``svc/<ns>/<name>`` of every Service that differs between two states."""
    if before.services == after.services:
        return []
    old, new = {s.key: s for s in before.services}, {s.key: s for s in after.services}
    return [f"svc/{ns}/{name}" for ns, name in sorted(old.keys() | new.keys()) if old.get((ns, name)) != new.get((ns, name))]


def changed_owners_by_node(before: ClusterIn, after: ClusterIn, owners=None) -> dict[str, frozenset[str]]:
    """node -> owners to recompute there, for every change between ``before`` and ``after``
    (``owners``: the owners that changed, when the caller knows; else they are compared)."""
    out: dict[str, set[str]] = {}
    for owner in (changed_owners(before, after) if owners is None else owners):
        for node, owners in owners_affected(Change(before, after, owner)).items():
            out.setdefault(node, set()).update(owners)
    return {n: frozenset(o) for n, o in out.items()}


class _EngineIdl(state_idl.StateIdl):
    """The engine's StateIdl: also remembers which Pod rows changed, as (namespace, name) keys
    (runs in the connection thread, before the listeners kick the worker)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pod_changes: set[tuple[str, str]] = set()
        self.pod_changes_lock = threading.Lock()

    def notify(self, event, row, updates=None):
        if row._table.name == "Pod":
            keys = [(row.namespace, row.name)]
            if updates is not None and event == "update":
                old = (getattr(updates, "namespace", None), getattr(updates, "name", None))
                if old != (None, None):    # vpcnet never renames a row; cover it all the same
                    keys.append((old[0] or row.namespace, old[1] or row.name))
            with self.pod_changes_lock:
                self.pod_changes.update(keys)
        super().notify(event, row, updates)

    def take_pod_changes(self) -> set[tuple[str, str]]:
        with self.pod_changes_lock:
            out, self.pod_changes = self.pod_changes, set()
        return out


def connect(remote: str, timeout: float = 30.0) -> StateApi:
    """``impl_idl.connect`` with the engine's IDL (the big tables load on demand the same way)."""
    helper = state_idl.schema_helper(remote.split(",")[0])
    idl = _EngineIdl(remote, helper, leader_only=True)
    return StateApi(ovs_connection.Connection(idl, timeout=timeout))


class FlowEngine:
    def __init__(self, state_remote: str, metrics: Metrics, audit_interval: float = 30.0,
                 debounce: float = 0.002, restart_grace: float = 10.0, deny_log_rate: int = 100):
        self.metrics = metrics
        if deny_log_rate < 1:
            raise ValueError(f"deny_log_rate={deny_log_rate}: must be at least 1 per second")
        # the deny log's datapath meter, on every bridge (flows/policy.py's deny verdicts use it)
        self.meters = (Meter(flow_policy.LOG_METER_ID, deny_log_rate, "pktps", deny_log_rate),
                       Meter(flow_service.REJECT_METER_ID, REJECT_RATE, "pktps", REJECT_RATE))
        self.audit_interval = audit_interval
        # How long a pass waits after the first event, to take the ones right behind it along
        # (a pass is cheap now; events arriving while one runs are batched into the next anyway).
        self.debounce = debounce
        self.api = connect(state_remote)
        self.api.idl.listeners.append(self._row_changed)
        # What changed since the last pass (see topology.update); _full: read every row instead.
        self._full = True
        self._policy_dirty = False
        self._services_dirty = False
        self._service_cache: dict = {}   # topology.services: each Service's conversion, by its texts
        self._ports_dirty: set[tuple[int, str]] = set()
        self._rows_seen: dict[str, object] = {}   # table -> its IDL row dict at the last build
        self._dpid_of: tuple[object, dict[str, int]] = (None, {})
        self.pods_loaded = False
        # A pod counts as wired only once its own bridge reports its port. Right after a
        # controller (re)start, bridges reconnect one by one: a bridge resynced before the others
        # are back would lose its entries for their pods (a gap for traffic to them). So the
        # first resync waits until every Node's bridge is connected, or this grace has passed.
        self.restart_grace = restart_grace
        self.retry_after = 1.0
        self.started_at = time.monotonic()
        self.lock = threading.Lock()
        self.links: dict[int, DatapathLink] = {}
        self.ports: dict[int, dict[str, int]] = {}
        self.fresh: set[int] = set()            # connected, port list not read yet
        # Port-status messages seen per datapath: a port added while its port list is being read
        # may be missing from the reply, and its status message finds no list to update, so a
        # read that overlapped any port change is thrown away and done again.
        self.port_events: dict[int, int] = {}
        self.reconcilers: dict[str, Reconciler] = {}
        self.dropping: set[int] = set()         # unknown datapaths given the drop-all miss
        self.topology: topology.Topology | None = None
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.passed = threading.Condition()      # notified after every worker pass
        self.generation = 0                      # bumped on every kick (tests wait for quiescence)
        self.done_generation = -1
        self.worker = threading.Thread(target=self._work, name="flow-engine", daemon=True)
        self.deny_log = DenyLog(metrics.rule_counters, self._resolve_denied)
        self.auditor = threading.Thread(target=self._audit_loop, name="flow-audit", daemon=True)

    def start(self) -> "FlowEngine":
        self.worker.start()
        self.auditor.start()
        self.kick()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.api.stop()

    def _row_changed(self, table: str, event: str) -> None:
        if table in WATCHED_TABLES:
            if table in POLICY_TABLES:
                with self.lock:
                    self._policy_dirty = True   # re-read the policy objects only
                    self._services_dirty = self._services_dirty or table == "Namespace"   # namespace -> VPC
            elif table in SERVICE_TABLES:
                with self.lock:
                    self._services_dirty = True
            elif table != "Pod":
                with self.lock:
                    self._full = True   # Vpc, Subnet, Node: rare; read everything again
            self.kick()

    def kick(self) -> None:
        with self.lock:
            self.generation += 1
        self.wake.set()

    # --- called from os-ken's handler thread: never block ----------------------------------
    def datapath_up(self, dp) -> None:
        with self.lock:
            old = self.links.get(dp.id)
            if old is not None:
                old.close()
            self.links[dp.id] = DatapathLink(dp)
            self.fresh.add(dp.id)
            self.dropping.discard(dp.id)
            self._full = True
        self._set_gauges()
        LOG.info("datapath %016x connected from %s", dp.id, getattr(dp, "address", "?"))
        self.kick()

    def datapath_down(self, dp) -> None:
        with self.lock:
            link = self.links.get(dp.id)
            if link is None or link.dp is not dp:
                return
            link.close()
            del self.links[dp.id]
            self.ports.pop(dp.id, None)
            self.fresh.discard(dp.id)
            self.dropping.discard(dp.id)
            self._full = True
            for node, rec in list(self.reconcilers.items()):
                if rec.link is link:
                    del self.reconcilers[node]
        self._set_gauges()
        LOG.info("datapath %016x disconnected", dp.id)
        self.kick()

    def port_changed(self, dp, name: str, ofport: int, deleted: bool) -> None:
        with self.lock:
            self.port_events[dp.id] = self.port_events.get(dp.id, 0) + 1
            ports = self.ports.get(dp.id)
            if ports is None:
                return
            self._ports_dirty.add((dp.id, name))
            if deleted:
                if ports.get(name) == ofport:
                    del ports[name]
            else:
                ports[name] = ofport
        self.kick()

    def packet_in(self, dp, data: bytes, userdata: bytes, metadata: bytes = b"") -> None:
        """A packet the switch sent us: a Service without endpoints to refuse
        (service_reject), or a denied connection to log (policy_audit.DenyLog)."""
        if userdata == service_reject.REJECT_USERDATA:
            reply, port = service_reject.reply_for(data), service_reject.in_port_of(metadata)
            link = self.link_of(dp)
            if reply is not None and port is not None and link is not None:
                parser, ofp = dp.ofproto_parser, dp.ofproto
                link.send(parser.OFPPacketOut(dp, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER,
                                              [parser.OFPActionOutput(port)], reply))
                self.metrics.service_rejects.inc()
            return
        topo = self.topology
        node = topo.node_by_dpid.get(dp.id) if topo is not None else None
        self.deny_log.record(node or f"{dp.id:016x}", data, userdata)

    def _resolve_denied(self, vpc_id: int, rid: int, ip: str, direction: str) -> tuple[str, str, str]:
        """(VPC, rule key, "namespace/pod") of a denied packet, from the current compiler input."""
        topo = self.topology
        cluster = topo.cluster if topo is not None else None
        vpc = next((v.name for v in cluster.vpcs if v.vpc_id == vpc_id), None) if cluster is not None else None
        if vpc is None:
            return f"#{vpc_id}", f"#{rid:08x}", ""
        pod = next((p for p in cluster.active_pods_of_vpc(vpc) if ip in p.ips), None)
        pod_name = f"{pod.namespace}/{pod.name}" if pod is not None else ""
        if rid == 0:
            rule = f"np/{pod.namespace}/default-deny/{direction}" if pod is not None else "np/default-deny"
        else:
            memo = cluster.value_memo()
            names = memo.get(("rule names", vpc))
            if names is None:
                names = memo[("rule names", vpc)] = flow_policy.rule_names(cluster, vpc)
            rule = names.get(rid, f"#{rid:08x}")
        return vpc, rule, pod_name

    def link_of(self, dp) -> DatapathLink | None:
        link = self.links.get(dp.id)
        return link if link is not None and link.dp is dp else None

    def _set_gauges(self) -> None:
        known = self.topology.node_by_dpid if self.topology else {}
        with self.lock:
            dpids = list(self.links)
        self.metrics.datapaths.labels(known="true").set(sum(1 for d in dpids if d in known))
        self.metrics.datapaths.labels(known="false").set(sum(1 for d in dpids if d not in known))

    # --- worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait()
            if self.stopping.is_set():
                return
            time.sleep(self.debounce)
            self.wake.clear()
            with self.lock:
                generation = self.generation
            try:
                if not self.pods_loaded and not self.links:
                    self.done_generation = generation   # nothing to serve until a bridge connects
                    continue
                if not self.pods_loaded:
                    # Every pod (remote pods get ARP / L3 entries too). On a big database this
                    # sync takes a while; it runs here, not in start(), so the API and IPAM serve
                    # at once, and bridges keep their current flows until it is done.
                    t0 = time.monotonic()
                    self.api.ensure_loaded("Pod", None, timeout=3600)
                    self.pods_loaded = True
                    LOG.info("flow engine: all pods loaded in %.1fs", time.monotonic() - t0)
                ok = self._reconcile_all()
            except Exception:
                LOG.exception("flow engine pass failed")
                self.metrics.errors.labels(where="engine").inc()
                with self.lock:
                    self._full = True   # what this pass took from the change sets is not applied
                ok = False
            if ok:
                self.done_generation = generation
            with self.passed:
                self.passed.notify_all()
            if not ok:
                self.stopping.wait(self.retry_after)   # back off, then try again
                self.retry_after = 1.0
                self.wake.set()

    def _read_ports(self) -> None:
        """Read the port list of every bridge connected since the last pass (the next topology
        is then built from all rows)."""
        with self.lock:
            fresh = [(d, self.links[d]) for d in self.fresh if d in self.links]
        for dpid, link in fresh:
            with self.lock:
                seen = self.port_events.get(dpid, 0)
            ports = link.port_desc()
            with self.lock:
                if self.links.get(dpid) is not link:
                    continue
                if self.port_events.get(dpid, 0) != seen:
                    self.wake.set()     # a port changed while the list was read: read it again
                    continue
                self.ports[dpid] = ports
                self.fresh.discard(dpid)
                self._full = True

    def build_topology(self) -> topology.Topology:
        tables = self.api.idl.tables
        self._rows_seen = {t: tables[t].rows for t in WATCHED_TABLES}   # replaced by an IDL resync
        rows = {t: self.api.list_objects(t).execute(check_error=True) for t in WATCHED_TABLES}
        datapaths = topology.node_datapaths(rows["Node"])
        with self.lock:
            ports = {datapaths[d]: dict(p) for d, p in self.ports.items() if d in datapaths}
        return topology.build(rows["Vpc"], rows["Subnet"], rows["Pod"], rows["Node"], ports,
                              self._security(), self._services())

    def _services(self) -> topology.Services:
        return topology.services(*(self.api.list_objects(t).execute(check_error=True)
                                   for t in ("Vpc", "Namespace") + SERVICE_TABLES), cache=self._service_cache)

    def _security(self) -> topology.Security:
        return topology.security(*(self.api.list_objects(t).execute(check_error=True) for t in POLICY_TABLES))

    def _next_topology(self) -> topology.Topology:
        """The compiler input after what changed since the last pass: derived from the last one
        when only pods changed (``topology.update``), else built from every row."""
        with self.lock:
            full, self._full = self._full, False
            policy_dirty, self._policy_dirty = self._policy_dirty, False
            services_dirty, self._services_dirty = self._services_dirty, False
            ports_dirty, self._ports_dirty = self._ports_dirty, set()
        pods_dirty = self.api.idl.take_pod_changes()
        topo = self.topology
        tables = self.api.idl.tables
        if full or topo is None or any(tables[t].rows is not rows for t, rows in self._rows_seen.items()):
            return self.build_topology()
        if policy_dirty or services_dirty:
            # Only policy objects or Services changed: swap them in, share the rest. Together
            # with pod or port changes, or both kinds at once (rare in one pass), read everything.
            if pods_dirty or ports_dirty or (policy_dirty and services_dirty):
                return self.build_topology()
            if services_dirty:
                return topology.with_services(topo, self._services())
            return topology.with_security(topo, self._security())
        if not pods_dirty and not ports_dirty:
            return topo
        node_ids, dpid_of = self._dpid_of
        if node_ids is not topo.node_by_dpid:
            dpid_of = {n: d for d, n in topo.node_by_dpid.items()}
            self._dpid_of = (topo.node_by_dpid, dpid_of)
        changed_ports = []
        for dpid, name in ports_dirty:
            node = topo.node_by_dpid.get(dpid)
            if node is None:
                continue   # not a Node's bridge: no pod is wired there
            spec = topo.node_specs.get(node, {})
            if name in (spec.get("uplinkPort"), spec.get("externalPort")):
                return self.build_topology()   # the node's uplink or external NIC: a NodeIn change
            changed_ports.append((node, name))

        def ofport_of(node: str, port: str) -> int | None:
            with self.lock:
                return self.ports.get(dpid_of.get(node), {}).get(port)

        rows = {key: state_cmd.find_row(self.api, "Pod", *key) for key in pods_dirty}
        new = topology.update(topo, rows, changed_ports, ofport_of)
        return new if new is not None else self.build_topology()

    def _reconcile_all(self) -> bool:
        self._read_ports()
        topo = self._next_topology()
        if self.topology is None or topo.problems != self.topology.problems:
            for problem in topo.problems:
                LOG.warning("left out of the flows: %s", problem)
        before = self.topology.cluster if self.topology is not None else None
        self.topology = topo
        self.metrics.problems.set(len(topo.problems))
        self._set_gauges()
        if before is None:
            affected = None
        elif topo.cluster is before:
            affected = {}
        elif topo.changed_policy:
            affected = changed_owners_by_node(before, topo.cluster, [POLICY_CHANGED])
        elif topo.changed_services:
            affected = changed_owners_by_node(before, topo.cluster, changed_services(before, topo.cluster))
        elif topo.changed_pods is not None:
            affected = changed_owners_by_node(before, topo.cluster,
                                              [f"pod/{ns}/{name}" for ns, name in sorted(topo.changed_pods)])
        else:
            affected = changed_owners_by_node(before, topo.cluster)
        ok = True
        with self.lock:
            links = dict(self.links)
            ready = {d for d in links if d in self.ports}
        missing = sorted(n for d, n in topo.node_by_dpid.items() if d not in ready)
        holding = bool(missing) and time.monotonic() - self.started_at < self.restart_grace
        for dpid, link in sorted(links.items()):
            if dpid not in ready:
                continue
            node = topo.node_by_dpid.get(dpid)
            try:
                if node is None:
                    self._drop_unknown(dpid, link)
                elif topo.cluster.find_node(node) is None:
                    continue  # known but not compilable (e.g. uplink missing): leave its flows alone
                elif holding and node not in self.reconcilers:
                    ok = False   # look again shortly: the other bridges may be reconnecting
                    self.retry_after = 0.1
                    LOG.info("%s: first resync waits for %s (at most %.0fs after start)", node,
                             ", ".join(missing), self.restart_grace)
                else:
                    ok &= self._reconcile_node(node, link, topo, before, affected)
            except Exception as exc:  # noqa: BLE001 - one bridge's trouble never holds the others back
                if isinstance(exc, LinkError):
                    LOG.error("datapath %016x (%s): %s", dpid, node or "unknown", exc)
                else:
                    LOG.exception("datapath %016x (%s): reconcile failed", dpid, node or "unknown")
                self.metrics.errors.labels(where="reconcile").inc()
                rec = self.reconcilers.get(node or "")
                if rec is not None:
                    rec.cluster = None   # next pass compares everything
                ok = False
        return ok

    def _drop_unknown(self, dpid: int, link: DatapathLink) -> None:
        if dpid in self.dropping:
            return
        with self.lock:
            stale = [n for n, r in self.reconcilers.items() if r.link is link]
            for n in stale:
                del self.reconcilers[n]
        LOG.warning("datapath %016x is not any Node's datapathId: it gets a drop-everything table-miss "
                    "(apply a Node with spec.datapathId: \"%016x\" to wire it)", dpid, dpid)
        link.bundle(ofwire.Wire(link.dp).drop_everything())
        self.dropping.add(dpid)

    def _reconcile_node(self, node: str, link: DatapathLink, topo: topology.Topology, before,
                        affected: dict[str, frozenset[str]] | None) -> bool:
        rec = self.reconcilers.get(node)
        if rec is None or rec.link is not link:
            spec = topo.node_specs.get(node, {})
            rec = Reconciler(node, link, self.metrics, ovsdb=spec.get("ovsdb"), bridge=spec.get("bridge", "br-int"),
                             meters=self.meters)
            desired, bad = self._compile_node(topo.cluster, node)
            try:
                rec.resync(desired)
            except (ofwire.UnsupportedFlow, GroupConflict):
                more = rec.uninstallable(desired)     # which owners: resync without them
                for owner, exc in sorted(more.items()):
                    LOG.error("%s: flows of %s not installed: %s", node, owner, exc)
                    self.metrics.errors.labels(where="plan").inc()
                bad |= set(more)
                rec.resync({o: f for o, f in desired.items() if o not in more})
            rec.failed = bad
            rec.cluster = topo.cluster
            self.dropping.discard(link.dp.id)
            with self.lock:
                self.reconcilers[node] = rec
            return not bad
        if rec.cluster is not None and rec.cluster is before and affected is not None:
            # Incremental: only the owners this pass's changes touch on this node (compile.py
            # says which), plus any owner whose last bundle failed.
            owners = set(affected.get(node, ())) | rec.failed
            changes, bad = self._compile_owners(topo.cluster, node, owners)
        else:
            desired, bad = self._compile_node(topo.cluster, node)
            with rec.lock:
                owners = set(rec.installed)
            changes = {o: desired.get(o, EMPTY) for o in owners | set(desired) if o not in bad}
        failed = rec.apply(changes)
        rec.failed = set(failed) | bad
        if not failed and topo.changed_services and rec.cluster is before and before is not None:
            self._flush_gone_udp(node, link, before, topo.cluster)
        rec.cluster = topo.cluster
        return not (failed or bad)

    def _compile_node(self, cluster: ClusterIn, node: str) -> tuple[dict, set[str]]:
        """compile_node, or, if it raises, every owner of the node compiled alone (see
        ``_compile_owners``): (flows by owner, the owners that failed)."""
        try:
            return compile_node(cluster, node), set()
        except Exception:  # noqa: BLE001 - find the owner(s) at fault, serve the others
            LOG.exception("%s: compiling the node failed; compiling its owners one by one", node)
        flows, bad = self._compile_owners(cluster, node, owners_on_node(cluster, node))
        return {o: f for o, f in flows.items() if f}, bad

    def _compile_owners(self, cluster: ClusterIn, node: str, owners) -> tuple[dict, set[str]]:
        """compile_owner for each of ``owners``: (flows by owner, the owners whose compile raised,
        a compiler bug: logged and counted, left out, so their flows are not updated)."""
        out, bad = {}, set()
        for o in sorted(owners):
            try:
                out[o] = compile_owner(cluster, node, o)
            except Exception:  # noqa: BLE001 - one owner's bug: log it, keep the rest
                LOG.exception("%s: compiling %s failed; its flows are not updated", node, o)
                self.metrics.errors.labels(where="compile").inc()
                bad.add(o)
        return out, bad

    def _flush_gone_udp(self, node: str, link: DatapathLink, before: ClusterIn, after: ClusterIn) -> None:
        """Once the new buckets are in: delete the conntrack entries of UDP endpoints that left a
        Service (see flows.service.gone_udp_endpoints), so its clients' next datagrams are
        balanced again. Needs OVS >= 3.1 (NXT_CT_FLUSH); an older switch answers with an error,
        which is logged, and its entries expire by themselves."""
        for zone, address, port, endpoint in flow_service.gone_udp_endpoints(before, after, node):
            LOG.info("%s: flushing UDP conntrack entries %s:%d -> %s (zone %d): the endpoint left",
                     node, address, port, endpoint, zone)
            link.send(ct_flush(zone, "UDP", orig_dst=address, orig_dst_port=port, reply_src=endpoint))

    # --- audit -----------------------------------------------------------------------------
    def _accounting(self, cluster: ClusterIn, node: str) -> dict[tuple, tuple[str, str, str]]:
        """OpenFlow key of every deciding policy flow on ``node`` -> (rule, action, direction),
        for the per-rule counters (policy_audit.RuleCounters). Memoised per cluster value."""
        memo = cluster.value_memo()
        hit = memo.get(("accounting", node))
        if hit is None:
            hit = {}
            if cluster.has_policy:
                for vpc in sorted(cluster.vpcs_on_node(node)):
                    for flow, label in flow_policy.verdict_rules(cluster, node, vpc).items():
                        hit[ofcompare.desired_key(flow)] = label
            for svc in cluster.services:
                for flow, kind in flow_service.counted_flows(cluster, node, svc).items():
                    hit[ofcompare.desired_key(flow)] = (SERVICE, f"{svc.namespace}/{svc.name}", kind)
            memo[("accounting", node)] = hit
        return hit

    def _audit_loop(self) -> None:
        while not self.stopping.wait(self.audit_interval):
            self.audit_now()

    def audit_now(self) -> dict[str, dict]:
        out = {}
        with self.lock:
            recs = list(self.reconcilers.items())
        topo = self.topology
        for node, rec in recs:
            try:
                rec.accounting = self._accounting(topo.cluster, node) if topo is not None else {}
                out[node] = dict(rec.audit())
                self.metrics.rule_counters.update(node, rec.counted)
            except Exception as exc:
                LOG.error("%s: audit failed: %s", node, exc)
                self.metrics.errors.labels(where="audit").inc()
        return out

    # --- pod readiness (the CNI path answers ADD only once the pod's flows are on its bridge) ---
    def pod_ready(self, namespace: str, name: str, expect: dict | None = None) -> tuple[bool, str]:
        """Are the flows of pod ``namespace/name`` on its bridge: its own and its subnet's there
        (the flood flow lists its port), as compiled from the pod as the engine knows it now?

        ``expect`` (optional): what the caller knows the pod to be — ``ofport`` (the number its
        port got from OVS), ``mac``, ``ips`` — so a pass that has not seen the new port or the
        new address yet (a re-created pod, a re-added port) cannot answer for it.

        The pod's own flows are compared with what the newest input compiles to; its subnet's
        (whose flood flow lists every local port) with what the state the bridge was last
        brought to (``Reconciler.cluster``, which must hold the same pod) compiles to: with
        ADDs arriving back to back there always is a newer input with more pods, and waiting for
        the bridge to catch up with it would hold every waiter back by a pass or more."""
        topo = self.topology
        if topo is None:
            return False, "the flow engine has not run yet"
        pod = topo.cluster.find_pod(namespace, name)
        if pod is None:
            return False, "pod unknown to the flow engine (no address, node or subnet yet)"
        if not topo.cluster.is_active(pod):
            return False, f"port {pod.port_name} is not on node {pod.node}'s bridge (or the node is not connected)"
        if expect:
            differs = self._differs(pod, expect)
            if differs:
                return False, f"the flow engine does not know the pod's {differs} yet"
        rec = self.reconcilers.get(pod.node)
        if rec is None:
            return False, f"node {pod.node}'s bridge is not connected"
        with rec.lock:
            cluster = rec.cluster
            if cluster is None or cluster.find_pod(namespace, name) != pod:
                ok = False
            else:   # the pod's own flows depend on nothing newer than the pod, its subnet, its VPC
                subnet = f"subnet/{pod.subnet}"
                ok = (pod.owner not in rec.failed and subnet not in rec.failed
                      and rec.installed.get(pod.owner, {}) == rec._rounded(compile_owner(topo.cluster, pod.node,
                                                                                         pod.owner))
                      and rec.installed.get(subnet, {}) == rec._rounded(compile_owner(cluster, pod.node, subnet)))
        return (True, f"flows installed on {pod.node} (ofport {pod.ofport})") if ok else \
            (False, f"flows for ofport {pod.ofport} not installed on {pod.node} yet")

    @staticmethod
    def _differs(pod, expect: dict) -> str:
        if expect.get("ofport") is not None and pod.ofport != expect["ofport"]:
            return f"ofport {expect['ofport']} (it knows {pod.ofport})"
        if expect.get("mac") and pod.mac != str(expect["mac"]).lower():
            return f"mac {expect['mac']}"
        if expect.get("ips") and sorted(pod.ips) != sorted(expect["ips"]):
            return f"addresses {','.join(expect['ips'])}"
        return ""

    def wait_pod_ready(self, namespace: str, name: str, timeout: float,
                       expect: dict | None = None) -> tuple[bool, str]:
        """``pod_ready``, waiting up to ``timeout`` seconds: checked again after every pass."""
        deadline = time.monotonic() + timeout
        with self.passed:
            while True:
                ready, why = self.pod_ready(namespace, name, expect)
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return ready, why
                self.passed.wait(min(left, 0.5))

    # --- introspection (API) -----------------------------------------------------------------
    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                gen = self.generation
            if self.done_generation >= gen and not self.wake.is_set():
                return True
            time.sleep(0.01)
        return False

    def compiled(self, node: str) -> dict[str, frozenset]:
        """The node's flows as the compiler produces them now (owner -> flows, round 0)."""
        if not self.pods_loaded or self.topology is None:
            raise LookupError("the flow engine is still loading the state database; try again shortly")
        topo = self.topology
        if node not in topo.node_specs:
            raise KeyError(f"no Node named {node!r}")
        if topo.cluster.find_node(node) is None:
            raise LookupError(f"node {node} has not connected to this controller yet: its port numbers "
                              f"(uplink, pods) are known only from its switch")
        return compile_node(topo.cluster, node)

    def installed(self, node: str) -> tuple[list, list]:
        """Read back from the switch: (flows recognised as ours, exactly as desired; raw lines of
        every other flow found there)."""
        rec = self.reconcilers.get(node)
        if rec is None:
            raise LookupError(f"node {node} is not connected")
        wanted = {ofcompare.desired_signature(f): f for f in rec.flows()}
        ours, other = [], []
        for s in rec.link.dump_flows():
            flow = wanted.get(ofcompare.stats_signature(s))
            if flow is not None:
                ours.append(flow)
            else:
                other.append(ofcompare.describe_stats(s))
        return ours, sorted(other)
