"""The controller's fabric side: keeps every NETCONF leaf configured as the intent says.

State database rows (Vpc, Subnet, Node, Leaf) -> :func:`fabric_input` -> the pure compiler
(``vpcnet.fabric.compile_fabric``) -> one :class:`~vpcnet.fabric.model.LeafState` per leaf ->
rendered in the leaf's model -> compared with the leaf's running configuration (get-config),
only inside what vpcnet owns -> a :class:`~vpcnet.fabric.diff.LeafPlan` -> applied through a
NETCONF session (lock, candidate, edit-config, confirmed commit, commit, unlock; rollback on any
error: ``vpcnet.fabric.netconf``).

When it runs (decisions; the issue is silent on the policy):

* ``plan``/``sync`` on demand (API ``GET /v1/fabric/plan``, ``POST /v1/fabric/sync``; CLI
  ``vpcnet fabric plan|sync``). ``plan`` never changes a leaf.
* After every intent change that touches the fabric (VPC, subnet, node or leaf rows), debounced:
  a new subnet must reach the leaves before its pods can talk across them, so waiting for an
  operator would be a silent outage.
* A leaf that was unreachable and answers again is synced at once (a leaf that restarted may
  have come back with its startup configuration).
* Drift: every ``interval`` seconds each leaf is read back; what changed by hand inside vpcnet's
  ranges is counted and, when ``repair`` is on (default), put back. Outside the ranges nothing
  is ever touched.

Credentials never live in the state database: a Leaf's ``spec.credentialsRef`` (default
``default``) names ``<credentials dir>/<ref>.json`` = ``{"username": ..., "keyFile": ...}``
(``password`` is accepted too) on the controller host.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vpcnet.app.ipam.plan import SubnetPlan
from vpcnet.fabric import compile_fabric
from vpcnet.fabric.diff import LeafPlan, diff_openconfig
from vpcnet.fabric.inputs import FabricIn, InputError
from vpcnet.fabric.model import LeafState
from vpcnet.fabric.render import render

LOG = logging.getLogger(__name__)

FABRIC_TABLES = ("Vpc", "Subnet", "Node", "Leaf")
# get-config filters per model: only the part vpcnet owns (netconfd also returns its nacm data)
_SUBTREES = {"vpcnet-leaf": '<leaf xmlns="urn:vpcnet:yang:leaf"/>'}
_SUBNET_SPEC_KEYS = ("private",)


def _json(text) -> dict:
    return json.loads(text) if text else {}


class FabricError(Exception):
    """A leaf could not be planned or synced; the message names the leaf."""


def fabric_input(vpc_rows, subnet_rows, node_rows, leaf_rows) -> FabricIn:
    """State database rows -> the fabric compiler's input. Subnets and VPCs without an
    allocated VNI/VLAN yet are left out (they have no fabric identity yet)."""
    vpcs = []
    for row in vpc_rows:
        spec = _json(row.spec)
        if not row.vni:
            continue
        vpcs.append({"name": row.name, "vni": row.vni, "l3Mode": spec.get("l3Mode", "distributed")})
    known_vpcs = {v["name"] for v in vpcs}
    subnets = []
    for row in subnet_rows:
        if not row.vni or not row.vlan or row.vpc not in known_vpcs:
            continue
        spec = _json(row.spec)
        plan = SubnetPlan.from_spec(row.name, spec, row.vlan)
        subnets.append({"name": row.name, "vpc": row.vpc, "vlan": row.vlan, "vni": row.vni,
                        "cidrs": [str(c.network) for c in plan.cidrs],
                        "gateways": [str(c.gateway) for c in plan.cidrs],
                        **{k: spec[k] for k in _SUBNET_SPEC_KEYS if k in spec}})
    nodes = [{"name": row.name, **{k: v for k, v in _json(row.spec).items() if k in ("leaf", "leafPort")}}
             for row in node_rows]
    leaves = [{"name": row.name, **_json(row.spec)} for row in leaf_rows]
    return FabricIn.from_dicts(vpcs=vpcs, subnets=subnets, nodes=nodes, leaves=leaves)


@dataclass
class LeafReport:
    """What happened to one leaf in a plan or sync."""
    leaf: str
    model: str = ""
    changes: tuple[str, ...] = ()
    text: str = ""
    applied: bool = False
    reset: bool = False     # the leaf holds nothing of vpcnet's: new, wiped or back with a factory config
    error: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"leaf": self.leaf, "model": self.model, "changes": list(self.changes), "text": self.text,
                "applied": self.applied, "error": self.error, "seconds": round(self.seconds, 3)}


def _differ(model: str):
    """(plan function, owned-objects inventory function) for a model with read-back, else None."""
    if model == "openconfig":
        from vpcnet.fabric.oc_inventory import inventory
        return diff_openconfig, inventory
    if model == "vpcnet-leaf":
        from vpcnet.fabric.diff_leaf import diff_leaf, inventory
        return diff_leaf, inventory
    return None


class FabricEngine:
    def __init__(self, api, metrics=None, credentials_dir: str | None = None, interval: float = 60.0,
                 repair: bool = True, debounce: float = 0.5):
        self.api = api
        self.metrics = metrics
        self.credentials_dir = Path(credentials_dir) if credentials_dir else None
        self.interval = interval
        self.repair = repair
        self.debounce = debounce
        self.lock = threading.Lock()          # one plan/sync at a time: a leaf has one candidate
        self.reachable: dict[str, bool] = {}
        self.last: dict[str, LeafReport] = {}
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="fabric", daemon=True)
        # hardware VTEP leaves (driver vtep): app/fabric_vtep.py
        from vpcnet.app.fabric_vtep import VtepLeaves
        self.vtep = VtepLeaves()
        self.has_vteps = False          # set by every pass: Pod changes matter only then
        self.pods_only = False          # what woke the loop: only Pod rows changed (first pass: all)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> "FabricEngine":
        self.api.idl.listeners.append(self._row_changed)
        self.thread.start()
        self.wake.set()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.vtep.close()

    def _row_changed(self, table: str, event: str) -> None:
        if table in FABRIC_TABLES:
            self.pods_only = False
            self.wake.set()
        elif table == "Pod" and self.has_vteps:
            self.wake.set()       # remote MACs of the VTEP leaves

    # --- desired state ---------------------------------------------------------------------
    def _rows(self) -> dict[str, list]:
        return {t: self.api.list_objects(t).execute(check_error=True) for t in FABRIC_TABLES}

    def desired(self) -> tuple[dict[str, LeafState], dict[str, dict]]:
        """(leaf -> LeafState for every NETCONF leaf, leaf -> spec)."""
        states, _, specs = self._desired_all()
        return states, specs

    def _pod_rows(self) -> list:
        self.api.ensure_loaded("Pod", None)     # every pod: the VTEPs need the remote ones
        return self.api.list_objects("Pod").execute(check_error=True)

    def _desired_all(self):
        """(NETCONF leaf -> LeafState, VTEP leaf -> VtepState, leaf -> spec)."""
        rows = self._rows()
        fabric = fabric_input(rows["Vpc"], rows["Subnet"], rows["Node"], rows["Leaf"])
        specs = {r.name: _json(r.spec) for r in rows["Leaf"]}
        states = {name: st for name, st in compile_fabric(fabric).items()
                  if specs.get(name, {}).get("driver") == "netconf"}
        self.has_vteps = any(s.get("driver") == "vtep" for s in specs.values())
        vteps = self.vtep.desired(fabric, self._pod_rows(), specs) if self.has_vteps else {}
        self.vtep.forget_others(vteps)
        return states, vteps, specs

    def target(self, leaf: str, spec: dict):
        from vpcnet.fabric.netconf import LeafTarget
        host, _, port = spec["managementAddress"].rpartition(":")
        cred = self._credentials(leaf, spec.get("credentialsRef", "default"))
        return LeafTarget(leaf=leaf, host=host.strip("[]"), port=int(port), username=cred.get("username", "root"),
                          key_file=cred.get("keyFile"), password=cred.get("password"),
                          netns=spec.get("managementNamespace"))

    def _credentials(self, leaf: str, ref: str) -> dict:
        if self.credentials_dir is None:
            raise FabricError(f"leaf {leaf}: no credentials: start the controller with --fabric-credentials DIR "
                              f"holding {ref}.json")
        path = self.credentials_dir / f"{ref}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FabricError(f"leaf {leaf}: credentialsRef {ref!r}: {path} does not exist") from None
        except ValueError as exc:
            raise FabricError(f"leaf {leaf}: credentialsRef {ref!r}: {path} is not JSON: {exc}") from None
        if not isinstance(data, dict) or not ({"keyFile", "password"} & set(data)):
            raise FabricError(f"leaf {leaf}: credentialsRef {ref!r}: {path} must hold username and keyFile "
                              "(or password)")
        return data

    # --- plan / sync --------------------------------------------------------------------------
    def plan(self, leaves: list[str] | None = None) -> list[LeafReport]:
        return self._run(leaves, apply=False)

    def sync(self, leaves: list[str] | None = None) -> list[LeafReport]:
        return self._run(leaves, apply=True)

    def _run(self, leaves: list[str] | None, apply: bool, kinds=("netconf", "vtep")) -> list[LeafReport]:
        with self.lock:
            try:
                states, vteps, specs = self._desired_all()
            except (InputError, ValueError, KeyError) as exc:
                raise FabricError(f"fabric intent cannot be compiled: {exc}") from exc
            if "netconf" not in kinds:
                states = {}
            if "vtep" not in kinds:
                vteps = {}
            names = sorted(states) + sorted(vteps) if not leaves else list(leaves)
            unknown = [n for n in names if n not in states and n not in vteps]
            if unknown:
                known = ", ".join(sorted([*states, *vteps])) or "none"
                kinds_text = "NETCONF or VTEP" if vteps else "NETCONF"
                raise FabricError(f"leaf {', '.join(unknown)}: not a {kinds_text} Leaf (known: {known})")
            return [self._one(states[n], specs[n], apply) if n in states
                    else self._one_vtep(vteps[n], specs[n], apply) for n in names]

    def _one_vtep(self, state, spec: dict, apply: bool) -> LeafReport:
        report = LeafReport(state.leaf)
        ok = self.vtep.one(report, state, spec, apply)
        self._set_reachable(state.leaf, ok)
        if report.applied:
            self._count("applied", state.leaf)
        elif not ok:
            self._count("failed", state.leaf)
        self.last[state.leaf] = report
        return report

    def _one(self, state: LeafState, spec: dict, apply: bool) -> LeafReport:
        report = LeafReport(state.leaf, state.model)
        t0 = time.monotonic()
        try:
            from vpcnet.fabric import netconf
            target = self.target(state.leaf, spec)
            differ = _differ(state.model)
            subtree = _SUBTREES.get(state.model)

            def plan_payload(running):
                diff, inventory = differ
                plan: LeafPlan = diff(state, running)
                report.reset = bool(plan.changes) and not inventory(running, state.ownership)
                report.changes = tuple(c.text() for c in plan.changes)
                report.text = plan.text()
                return plan.edit_config() if plan.changes else None

            if differ is None:   # no read-back for this vendor model yet: merge the whole rendered config
                report.text = (f"leaf {state.leaf} ({state.model}): drift detection is not available for this "
                               "model; sync merges the whole rendered configuration\n")
                if apply:
                    netconf.apply(target, render(state))
                    report.applied = True
            elif apply:
                # planned under the leaf's locks: nobody can change it between the read and the commit
                done = netconf.apply(target, plan_payload, subtree=subtree)
                report.applied = "in sync" not in done.steps
            else:
                plan_payload(netconf.read_running(target, subtree))
            self._set_reachable(state.leaf, True)
            if report.applied:
                self._count("applied", state.leaf)
        except FabricError as exc:
            report.error = str(exc)
        except Exception as exc:   # NetconfError names the leaf, the step and the server's error
            from vpcnet.fabric.netconf import NetconfConnectError
            report.error = str(exc) if state.leaf in str(exc) else f"leaf {state.leaf}: {exc}"
            if isinstance(exc, (NetconfConnectError, OSError)):
                self._set_reachable(state.leaf, False)
            self._count("failed", state.leaf)
        report.seconds = time.monotonic() - t0
        self.last[state.leaf] = report
        return report

    # --- background -----------------------------------------------------------------------------
    def _loop(self) -> None:
        next_check = time.monotonic() + self.interval
        while not self.stopping.is_set():
            woke = self.wake.wait(max(0.0, next_check - time.monotonic()))
            if self.stopping.is_set():
                return
            if woke:
                self.stopping.wait(self.debounce)
                self.wake.clear()
                pods_only, self.pods_only = self.pods_only, True
            try:
                if woke:
                    self._sync_all("pods changed" if pods_only else "intent changed",
                                   ("vtep",) if pods_only else ("netconf", "vtep"))
                else:
                    next_check = time.monotonic() + self.interval
                    self._check_all()
            except FabricError as exc:
                LOG.warning("fabric: %s", exc)
            except Exception:
                LOG.exception("fabric pass failed")

    def _sync_all(self, why: str, kinds=("netconf", "vtep")) -> None:
        for r in self._run(None, apply=True, kinds=kinds):
            if r.error:
                LOG.warning("fabric sync (%s): %s", why, r.error)
            elif r.applied:
                LOG.info("fabric sync (%s): leaf %s: %d change(s) applied in %.2fs", why, r.leaf,
                         len(r.changes), r.seconds)

    def _check_all(self) -> None:
        was = dict(self.reachable)
        reports = self.plan()
        # A leaf that answers again after being unreachable, or that holds nothing of vpcnet's
        # (restarted with its factory configuration faster than a check could see it down), is
        # synced even with --fabric-no-repair: that is not drift an operator made.
        back = [r.leaf for r in reports if not r.error and (was.get(r.leaf) is False or r.reset)]
        drifted = [r.leaf for r in reports if not r.error and r.changes]
        for r in reports:
            if r.changes and self.metrics is not None:
                self.metrics.fabric_drift.labels(leaf=r.leaf).inc(len(r.changes))
        todo = sorted(set(back) | (set(drifted) if self.repair else set()))
        if todo:
            LOG.info("fabric: re-syncing %s (%s)", ", ".join(todo),
                     "came back or reset" if set(todo) <= set(back) else "drift found")
            for r in self.sync(todo):
                if r.error:
                    LOG.warning("fabric re-sync: %s", r.error)

    def _set_reachable(self, leaf: str, up: bool) -> None:
        before = self.reachable.get(leaf)
        self.reachable[leaf] = up
        if self.metrics is not None:
            self.metrics.fabric_leaf_up.labels(leaf=leaf).set(1 if up else 0)
        if before is not None and before != up:
            LOG.info("leaf %s is %s", leaf, "reachable again" if up else "unreachable")

    def _count(self, result: str, leaf: str) -> None:
        if self.metrics is not None:
            self.metrics.fabric_syncs.labels(leaf=leaf, result=result).inc()


