"""The controller's hardware-VTEP leaves (``Leaf.spec.driver: vtep``), next to the NETCONF ones.

State database rows (Vpc, Subnet, Node, Leaf, **Pod**) -> :func:`vpcnet.app.fabric.fabric_input`
+ :func:`pod_locations` -> :func:`vpcnet.fabric.vtep.compile_vtep` -> one VtepState per VTEP leaf
-> :class:`vpcnet.ovsdb.hwvtep.VtepDriver` ``plan``/``sync`` (one OVSDB transaction per leaf,
owned rows only). The FabricEngine (app/fabric.py) calls this module from its plan/sync and its
background loop; VTEP leaves appear in the same reports (``LeafReport.model ==
"hardware_vtep"``).

Differences from the NETCONF leaves (decisions):

* Pods are part of a VTEP's desired state (Ucast_Macs_Remote for every pod behind another
  leaf: hardware_vtep has no EVPN to learn them), so a Pod change wakes the engine too, but
  then only the VTEP leaves are synced (a NETCONF leaf's configuration does not depend on pods).
  The engine's debounce batches a burst of CNI ADDs into one transaction per VTEP.
* Management access: ``managementAddress`` is an OVSDB remote: ``host:port`` (-> ``tcp:``, the
  hardware_vtep default port 6640) or ``unix:/path``. ``managementNamespace`` is NOT honoured for
  VTEPs: ovsdbapp's Connection dials (and re-dials after every disconnect) from its own worker
  thread through python-ovs' Stream, with no socket factory to hook; network namespaces are
  per thread, so honouring it would mean moving that private thread into the namespace for
  good. The lab therefore exposes each emulated VTEP's database as a unix socket on the
  controller host (the lab's equivalent of a management VRF reachable from the controller).
* One VtepDriver (one IDL connection) per leaf is kept open between passes; any error closes it
  and the next pass reconnects (a VTEP that comes back is re-synced by the periodic check, as
  NETCONF leaves are).
"""
from __future__ import annotations

import json
import logging
import threading
import time

import netaddr

from vpcnet.fabric.inputs import FabricIn, InputError
from vpcnet.fabric.vtep import PodLocation, VtepState, compile_vtep

LOG = logging.getLogger(__name__)
MODEL = "hardware_vtep"


def _json(text) -> dict:
    return json.loads(text) if text else {}


def ovsdb_remote(address: str) -> str:
    """A Leaf's managementAddress (validated ``host:port`` / ``[v6]:port`` / ``unix:/path``) ->
    an OVSDB remote."""
    if address.startswith(("unix:", "tcp:", "ssl:")):
        return address
    return f"tcp:{address}"


def pod_locations(pod_rows, fabric: FabricIn) -> tuple[list[PodLocation], list[str]]:
    """Pod rows -> (where each allocated, scheduled pod is, problems). Pods not allocated yet,
    not on a known Node, or in a subnet the fabric does not know (no VNI yet) are left out; a pod
    whose MAC or address clashes with another's is left out with a problem (the first created
    wins), so one bad row never blocks every VTEP."""
    subnets = {s.name: [netaddr.IPNetwork(c) for c in s.cidrs] for s in fabric.subnets}
    nodes = {n.name for n in fabric.nodes}
    out: list[PodLocation] = []
    problems: list[str] = []
    seen_mac: dict[tuple, str] = {}
    seen_ip: dict[tuple, str] = {}
    rows = sorted(pod_rows, key=lambda r: (getattr(r, "created_ms", 0) or 0, r.namespace, r.name))
    for row in rows:
        status = _json(row.status)
        mac, ips, subnet = status.get("mac"), status.get("ips") or [], status.get("subnet")
        node = status.get("node") or getattr(row, "node", None) or _json(row.spec).get("nodeName")
        name = f"{row.namespace}/{row.name}"
        if not mac or not ips or subnet not in subnets or node not in nodes:
            continue
        addrs = []
        for ip in ips:
            try:
                a = netaddr.IPNetwork(ip).ip      # "10.10.0.5/24" or "10.10.0.5"
            except (netaddr.AddrFormatError, ValueError, TypeError):
                continue
            if any(a in n for n in subnets[subnet]):
                addrs.append(str(a))
        key = (subnet, str(mac).lower())
        clash = seen_mac.get(key) or next((seen_ip[(subnet, a)] for a in addrs
                                            if (subnet, a) in seen_ip), None)
        if clash:
            problems.append(f"Pod/{name}: its MAC or address in subnet {subnet} is also "
                            f"Pod/{clash}'s; left out of the VTEPs")
            continue
        seen_mac[key] = name
        for a in addrs:
            seen_ip[(subnet, a)] = name
        out.append(PodLocation(str(mac).lower(), tuple(addrs), node, subnet, name))
    return out, problems


class VtepLeaves:
    """Desired state and drivers of the VTEP leaves. Not thread-safe: the FabricEngine's lock
    serialises every call."""

    def __init__(self, connect_timeout: float = 10.0):
        self.connect_timeout = connect_timeout
        self.drivers: dict[str, tuple[str, object]] = {}     # leaf -> (remote, VtepDriver)
        self.problems: list[str] = []
        self.local_macs: dict[str, list[dict]] = {}
        self._guard = threading.Lock()

    def desired(self, fabric: FabricIn, pod_rows, specs: dict[str, dict]) -> dict[str, VtepState]:
        if not any(s.get("driver") == "vtep" for s in specs.values()):
            return {}
        pods, self.problems = pod_locations(pod_rows, fabric)
        for p in self.problems:
            LOG.warning("vtep: %s", p)
        return compile_vtep(fabric, pods)

    def _driver(self, leaf: str, remote: str):
        from vpcnet.ovsdb.hwvtep import VtepDriver
        have = self.drivers.get(leaf)
        if have is not None and have[0] == remote:
            return have[1]
        if have is not None:
            self.drop(leaf)
        drv = VtepDriver(remote, name=leaf, timeout=self.connect_timeout)
        self.drivers[leaf] = (remote, drv)
        return drv

    def drop(self, leaf: str) -> None:
        have = self.drivers.pop(leaf, None)
        if have is not None:
            try:
                have[1].close()
            except Exception:   # noqa: BLE001 - closing a broken connection
                pass

    def close(self) -> None:
        for leaf in list(self.drivers):
            self.drop(leaf)

    def forget_others(self, leaves) -> None:
        for leaf in set(self.drivers) - set(leaves):
            self.drop(leaf)

    def one(self, report, state: VtepState, spec: dict, apply: bool):
        """Plan or sync one VTEP leaf into ``report`` (a LeafReport). Returns True when the VTEP
        answered (reachable), False when it did not; raises nothing."""
        t0 = time.monotonic()
        report.model = MODEL
        try:
            drv = self._driver(state.leaf, ovsdb_remote(spec["managementAddress"]))
            changes = drv.sync(state) if apply else drv.plan(state)
            report.changes = tuple(str(c) for c in changes)
            report.applied = bool(apply and changes)
            lines = [f"leaf {state.leaf} ({MODEL}, physical switch {state.physical_switch}, "
                     f"vtep {state.vtep_ip}): {len(changes)} change(s)"
                     + (" applied" if report.applied else "")]
            lines += [f"  {c}" for c in report.changes]
            try:
                macs = drv.local_macs()
                self.local_macs[state.leaf] = [
                    {"logicalSwitch": m.logical_switch, "vni": m.tunnel_key, "mac": m.mac,
                     "ipaddr": m.ipaddr} for m in macs]
                lines.append(f"  {len(macs)} local MAC(s) learnt (Ucast_Macs_Local)")
            except Exception:   # noqa: BLE001 - optional information
                pass
            report.text = "\n".join(lines) + "\n"
            ok = True
        except Exception as exc:   # VtepError names the VTEP; connection errors do not
            text = str(exc)
            report.error = text if state.leaf in text else f"leaf {state.leaf}: {text}"
            self.drop(state.leaf)
            ok = False
        report.seconds = time.monotonic() - t0
        return ok


def compile_error(exc: Exception) -> str:
    return f"VTEP intent cannot be compiled: {exc}" if isinstance(exc, InputError) else str(exc)
