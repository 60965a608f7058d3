"""The vpcnet lab: a spine-leaf EVPN/VXLAN fabric, Kubernetes-like nodes and a real controller,
all on this machine, as a library (`Lab`) behind the ``vpcnet lab`` CLI (sim/cli.py).

What ``Lab(name="vl", leaves=2, nodes_per_leaf=2).up()`` builds (names/addresses: sim/topo.py)::

   L-mgmt (no default route) --198.18.N.0/31-- mgmt0 [L-leafN] NETCONF (netconfd+sshd :830)
   L-spine FRR AS65000 --198.19.N.0/31, MTU 9000-- spine0 [L-leafN] FRR AS6500N, VTEP 198.19.255.N
   [L-leafN] OVS bridge "fabric": trunk swpK --veth-- uplink0 [L-nN-K] OVS br-int <- vpcnet node
             v<V> (tag V) = v<V>b in br<V> + vx<VNI>  (made by the leaf agent from NETCONF config)
   root netns: vpcnet controller (unix sockets in RUN/ctl), node daemons, unreachable routes

Why it is built like this (the machine's kernel has no OVS module, VRF, 802.1Q or VLAN-aware
bridge — /work/shared/platform.md):

* Every OVS (leaf ``fabric`` bridges, node ``br-int``) is a PrivateOvs with the netdev datapath,
  each in its own namespace (two netdev vswitchds in one namespace collide on tap names). The
  leaf's OVS does the 802.1Q trunk work the kernel cannot; VXLAN is the kernel's, as FRR needs.
* Namespaces are Mininet nodes pinned under /var/run/netns (sim/lab_net.py) so that FRR, the node
  daemons, ``ip netns exec`` and a later ``lab exec``/``lab down`` in another process reach them.
* FRR runs per namespace (sim/frr.py); the spine is an eBGP transit keeping EVPN next hops.
* The controller is a real ``vpcnet controller`` process with private unix sockets; the lab
  applies one Node per node and one Leaf per leaf through its API, like an operator would.
* Pushing leaf configuration is the controller's job (``vpcnet fabric sync``); the leaf's
  NETCONF server only stores it and the leaf agent (sim/leafagent.py) realises it.
* Safety: before anything else ``up`` installs unreachable routes in the root namespace for all
  lab prefixes; management runs from L-mgmt, which has no default route.
* ``leaf_kind="vtep"``: the leaves are ovs-vtep hardware VTEPs instead (sim/lab_vtep.py: a
  netdev Physical_Switch bridge on the node trunks, userspace VXLAN over an OVS underlay bridge,
  static underlay routes, no FRR/NETCONF); the controller syncs their hardware_vtep databases.
* All state is in ``RUN/lab.json`` (saved after every step), so ``status``/``exec``/``down`` work
  from a new process and ``down`` cleans up after a half-failed ``up``; ``down`` is idempotent.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vpcnet.sim import frr, lab_net as net, topo
from vpcnet.sim.kubelet import Kubelet, Sandbox
from vpcnet.sim.lab_net import LabError

YANG = Path(__file__).resolve().parent.parent / "fabric" / "yang" / "vpcnet-leaf@2026-11-22.yang"
DEFAULT_RUN_ROOT = Path("/run/vpcnet-lab")
CREDENTIALS_REF = "lab"
STATE_FILE = "lab.json"


class LabNotFound(LabError):
    pass


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, name: str = "vl", run_dir: str | Path | None = None, leaves: int = 2,
                 nodes_per_leaf: int = 2, leaf_kind: str = "evpn",
                 pod_prefixes=topo.DEFAULT_POD_PREFIXES, log=print, controller_args=()):
        if leaf_kind not in topo.LEAF_KINDS:
            raise LabError(f"leaf kind {leaf_kind!r}: one of {', '.join(topo.LEAF_KINDS)}")
        self.topo = topo.Topology(name, leaves, nodes_per_leaf, tuple(pod_prefixes))
        self.name, self.leaf_kind, self.log = name, leaf_kind, log
        self.run_dir = Path(run_dir) if run_dir else DEFAULT_RUN_ROOT / name
        self.controller_args = list(controller_args)   # extra `vpcnet controller` flags
        self.state: dict = self._fresh_state()
        self._mn: dict = {}     # Mininet nodes while building
        self._procs: dict = {}  # process records with their Popen objects while building

    # --- state --------------------------------------------------------------------------------
    def _fresh_state(self) -> dict:
        return {"name": self.name, "run_dir": str(self.run_dir), "leaves": self.topo.leaves,
                "nodes_per_leaf": self.topo.nodes_per_leaf, "leaf_kind": self.leaf_kind,
                "pod_prefixes": list(self.topo.pod_prefixes), "phase": "new", "routes": [], "ovs": {},
                "procs": {}, "netconf": {}, "hosts": {}, "pods": {}, "timings": {}, "warnings": [],
                "controller_args": list(getattr(self, "controller_args", []))}

    @property
    def state_file(self) -> Path:
        return self.run_dir / STATE_FILE

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, default=str) + "\n")
        os.replace(tmp, self.state_file)

    @classmethod
    def load(cls, name: str = "vl", run_dir: str | Path | None = None, log=print) -> "Lab":
        path = Path(run_dir) if run_dir else DEFAULT_RUN_ROOT / name
        try:
            state = json.loads((path / STATE_FILE).read_text())
        except FileNotFoundError:
            raise LabNotFound(f"no lab {name!r} at {path} (no {STATE_FILE}; --name/--run-dir?)") from None
        lab = cls(state["name"], path, state["leaves"], state["nodes_per_leaf"], state["leaf_kind"],
                  state.get("pod_prefixes", topo.DEFAULT_POD_PREFIXES), log=log)
        lab.state.update(state)
        return lab

    def _record_proc(self, key: str, rec: dict) -> None:
        """Remember a process we started: in the state file and as its own pidfile under
        RUN/pids (so a `down` without a readable state file still finds it by PID)."""
        self.state["procs"][key] = net.record(rec)
        d = self.run_dir / "pids"
        d.mkdir(parents=True, exist_ok=True)
        (d / (key.replace(":", "_") + ".json")).write_text(json.dumps({"key": key, **net.record(rec)}) + "\n")
        self.save()

    def _warn(self, text: str) -> None:
        self.state["warnings"].append(text)
        self.log(f"  warning: {text}")

    # --- paths --------------------------------------------------------------------------------
    @property
    def ctl_dir(self) -> Path:
        return self.run_dir / "ctl"

    @property
    def api(self) -> str:
        return f"unix:{self.ctl_dir / 'api.sock'}"

    def client(self, timeout: float = 60):
        from vpcnet.app.api import Client
        return Client(self.api, timeout=timeout)

    def leaf_dir(self, leaf: topo.LeafPlan) -> Path:
        return self.run_dir / leaf.name

    def node_dir(self, node: topo.NodePlan) -> Path:
        return self.run_dir / node.short

    def ovs(self, netns: str):
        """The PrivateOvs of a leaf or node namespace (works from a new process)."""
        from vpcnet.sim.ovs import PrivateOvs
        rec = self.state["ovs"].get(netns)
        if rec is None:
            raise LabError(f"no OVS recorded for {netns}")
        o = PrivateOvs(rec["run_dir"], dummy=False, netns=netns)
        o.pids = dict(rec.get("pids", {}))
        return o

    def frr(self, ref: str) -> frr.FrrInstance:
        """FRR of ``spine`` or a leaf (``leafN`` / its namespace)."""
        ns = self.topo.spine_netns if ref in ("spine", self.topo.spine_netns) else self.topo.leaf(ref).netns
        return frr.FrrInstance(ns, ns)

    def kubelet(self, node: topo.NodePlan) -> Kubelet:
        d = self.node_dir(node)
        return Kubelet(d / "net.d", d / "bin")

    # --- up -----------------------------------------------------------------------------------
    def up(self, keep_on_failure: bool = False) -> dict:
        """Build the lab; prints progress; returns the timings. On failure everything built so
        far is torn down again (unless ``keep_on_failure``) and the error re-raised."""
        if self.state_file.exists():
            raise LabError(f"lab {self.name} already has state in {self.state_file}: `lab down` first")
        clash = [ns for ns in net.list_netns() if self.topo.owns_netns(ns)]
        if clash:
            raise LabError(f"namespaces of a lab named {self.name} exist: {', '.join(clash)} "
                           f"(`lab down --name {self.name}` first)")
        t0 = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        self.state = self._fresh_state()
        self.state["phase"] = "building"
        self.state["started"] = time.time()
        self.save()
        # Slow starters (Python processes: ~3-4 s of imports each on this VM) are launched early
        # and waited for late, so their start-up overlaps the namespace/FRR work.
        steps = [("route guard", self._guard), ("controller launch", self._launch_controller),
                 ("namespaces, OVS, links", self._build), ("FRR", self._start_frr),
                 ("controller ready", self._wait_controller), ("Node/Leaf objects", self._apply_objects),
                 ("node daemons launch", self._launch_nodes),
                 ("NETCONF servers + leaf agents", self._start_leaf_mgmt),
                 ("node daemons ready", self._wait_nodes), ("BGP", self._wait_bgp)]
        if self.leaf_kind == "vtep":   # sim/lab_vtep.py: ovs-vtep leaves, static underlay, no FRR
            steps = [("route guard", self._guard), ("controller launch", self._launch_controller),
                     ("namespaces, OVS, links", self._build), ("VTEP emulators", self._start_vteps),
                     ("controller ready", self._wait_controller), ("Node/Leaf objects", self._apply_objects),
                     ("node daemons launch", self._launch_nodes), ("node daemons ready", self._wait_nodes),
                     ("underlay", self._wait_underlay)]
        try:
            for label, fn in steps:
                t = time.monotonic()
                self.log(f"lab {self.name}: {label} ...")
                detail = fn()
                took = time.monotonic() - t
                self.state["timings"][label] = round(took, 2)
                self.log(f"lab {self.name}: {label} done in {took:.2f} s" + (f" ({detail})" if detail else ""))
                self.save()
        except BaseException as exc:
            net.release(self._mn.values())
            self._mn.clear()
            self.state["phase"] = "failed"
            self.state["error"] = f"{type(exc).__name__}: {exc}"
            self.save()
            if not keep_on_failure:
                self.log(f"lab {self.name}: up failed ({exc}); tearing down")
                self.down()
            raise
        self.state["phase"] = "up"
        self.state["timings"]["total"] = round(time.monotonic() - t0, 2)
        self.save()
        self.log(f"lab {self.name}: up in {self.state['timings']['total']:.2f} s (run dir {self.run_dir})")
        return self.state["timings"]

    def _guard(self) -> str:
        metric = net.lab_metric(self.name)
        prefixes = self.topo.guarded_prefixes
        net.check_prefix_clear(prefixes, metric)
        for p in prefixes:
            self.state["routes"].append({"prefix": p, "metric": metric})
            self.save()                       # recorded before it exists: down removes it either way
            net.add_guard(p, metric)
        return f"{len(prefixes)} unreachable routes, metric {metric}"

    def guard_prefix(self, prefix: str) -> bool:
        """Add an unreachable route for ``prefix`` unless a guarded prefix covers it already."""
        import ipaddress
        new = ipaddress.ip_network(prefix, strict=False)
        for r in self.state["routes"]:
            have = ipaddress.ip_network(r["prefix"])
            if have.version == new.version and new.subnet_of(have):
                return False
        metric = net.lab_metric(self.name)
        net.check_prefix_clear([str(new)], metric)
        self.state["routes"].append({"prefix": str(new), "metric": metric})
        self.save()
        net.add_guard(str(new), metric)
        return True

    def _start_ovs(self, netns: str, run_dir: Path):
        from vpcnet.sim.ovs import PrivateOvs
        self.state["ovs"][netns] = {"run_dir": str(run_dir), "pids": {}}
        o = PrivateOvs(run_dir, dummy=False, netns=netns)
        try:
            o.start()
        finally:
            self.state["ovs"][netns]["pids"] = dict(o.pids)
        # no IPv6 anywhere in leaves/nodes: a silent veth/tap never shows up as an EVPN MAC
        net.sysctl(netns, net__ipv6__conf__all__disable_ipv6=1, net__ipv6__conf__default__disable_ipv6=1)
        return o

    def _build(self) -> str:
        t = self.topo
        self._mn[t.mgmt_netns] = net.make_node(t.mgmt_netns)
        self._mn[t.spine_netns] = net.make_node(t.spine_netns)
        jobs = [(lf.netns, self.leaf_dir(lf) / "ovs") for lf in t.leaf_plans] + \
               [(n.netns, self.node_dir(n) / "ovs") for n in t.node_plans]
        with ThreadPoolExecutor(max_workers=4) as pool:
            ovss = dict(zip([j[0] for j in jobs], pool.map(lambda j: self._start_ovs(*j), jobs)))
        self.save()
        for ns, _ in jobs:
            self._mn[ns] = net.make_node(ns, attach=True)
        vtep = self.leaf_kind == "vtep"
        mg, sp = self._mn[t.mgmt_netns], self._mn[t.spine_netns]
        batch = {t.mgmt_netns: [], t.spine_netns: [f"addr add {topo.SPINE_ROUTER_ID}/32 dev lo", "link set lo up"]}
        for lf in t.leaf_plans:
            leafnode = self._mn[lf.netns]
            net.link(mg, leafnode, lf.mgmt_peer_if, topo.LEAF_MGMT_IF)
            net.link(sp, leafnode, lf.spine_if, topo.LEAF_SPINE_IF, mtu=topo.UNDERLAY_MTU)
            batch[t.mgmt_netns].append(f"addr add {lf.mgmt_peer}/31 dev {lf.mgmt_peer_if}")
            batch[t.spine_netns].append(f"addr add {lf.spine_ip}/31 dev {lf.spine_if}")
            batch[lf.netns] = [f"addr add {lf.vtep}/32 dev lo", f"addr add {lf.mgmt_ip}/31 dev {topo.LEAF_MGMT_IF}",
                               f"addr add {lf.underlay_ip}/31 dev {topo.LEAF_SPINE_IF}"]
            if vtep:   # underlay and VTEP addresses live on OVS's "ul" port (lab_vtep.build_leaf)
                batch[lf.netns] = [f"addr add {lf.mgmt_ip}/31 dev {topo.LEAF_MGMT_IF}"]
                continue
            # standalone = a plain learning switch (NORMAL), no controller; its own internal port
            # carries no VLAN (trunks=[4095]) so flooded frames never reach the tap
            ovss[lf.netns].vsctl("add-br", topo.FABRIC_BRIDGE, "--", "set", "Bridge", topo.FABRIC_BRIDGE,
                                 "datapath_type=netdev", "fail_mode=standalone", "--", "set", "Port",
                                 topo.FABRIC_BRIDGE, "vlan_mode=trunk", "trunks=4095")
        batch[t.mgmt_netns].append("link set lo up")
        for n in t.node_plans:
            net.link(self._mn[n.leaf_netns], self._mn[n.netns], n.leaf_port, n.uplink)
            if vtep:
                continue
            ovss[n.leaf_netns].vsctl("add-port", topo.FABRIC_BRIDGE, n.leaf_port, "--", "set", "Port", n.leaf_port,
                                     "vlan_mode=trunk", "trunks=4095")
        if vtep:
            from vpcnet.sim import lab_vtep
            batch[t.spine_netns] += lab_vtep.spine_routes(t)
            lab_vtep.spine_sysctls(t)
        for ns, cmds in batch.items():
            net.run("ip", "-n", ns, "-batch", "-", input="\n".join(cmds) + "\n")
        if vtep:
            for lf in t.leaf_plans:
                lab_vtep.build_leaf(ovss[lf.netns], lf)
        for ns in [t.spine_netns, *(lf.netns for lf in t.leaf_plans)]:
            net.sysctl(ns, net__ipv4__ip_forward=1)
        net.release(self._mn.values())
        self._mn.clear()
        return f"{len(t.all_netns())} namespaces, {len(jobs)} OVS"

    def _start_frr(self) -> str:
        t = self.topo
        instances = [(frr.FrrInstance(t.spine_netns, t.spine_netns), frr.spine_config(t))]
        instances += [(frr.FrrInstance(lf.netns, lf.netns), frr.leaf_config(t, lf)) for lf in t.leaf_plans]
        self.state["frr"] = [i.pathspace for i, _ in instances]
        self.save()

        def start(item):
            inst, conf = item
            inst.write_config(conf)
            inst.start()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(start, instances))
        self.state["timings"]["frr_started_at"] = time.time()
        return f"{len(instances)} instances"

    def _launch_controller(self) -> str:
        ctl = self.ctl_dir
        ctl.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        cmd = [sys.executable, "-m", "vpcnet.app.cli", "controller", "--state-dir", str(ctl),
               "--of-listen", f"unix:{ctl / 'of.sock'}", "--metrics", f"127.0.0.1:{port}"]
        creds = self.run_dir / "credentials"
        creds.mkdir(exist_ok=True)
        cmd += ["--fabric-credentials", str(creds), *self.state.get("controller_args", [])]
        rec = net.start_detached(cmd, self.run_dir / "logs" / "controller.log")
        self._procs["controller"] = rec
        self._record_proc("controller", rec)
        self.state["controller"] = {"api": self.api, "of": f"unix:{ctl / 'of.sock'}",
                                    "metrics": f"http://127.0.0.1:{port}/metrics",
                                    "credentials": str(creds) if creds.exists() else None}
        return f"pid {rec['pid']}"

    def _wait_controller(self) -> str:
        rec = self._procs["controller"]

        def healthy():
            if rec["_popen"].poll() is not None:
                raise LabError("controller exited: " + Path(rec["log"]).read_text()[-2000:])
            try:
                return self.client(timeout=2).request("GET", "/v1/healthz")[0] == 200
            except OSError:
                return False
        net.wait_for("the controller API", healthy, timeout=60, interval=0.05)
        return self.state["controller"]["metrics"]

    def node_doc(self, n: topo.NodePlan) -> dict:
        return {"apiVersion": "vpcnet.io/v1", "kind": "Node", "metadata": {"name": n.name},
                "spec": {"datapathId": n.datapath_id, "uplinkPort": n.uplink, "leaf": n.leaf_name,
                         "leafPort": n.leaf_port, "ovsdb": f"unix:{self.node_dir(n) / 'ovs' / 'db.sock'}"}}

    def leaf_doc(self, lf: topo.LeafPlan) -> dict:
        if self.leaf_kind == "vtep":
            from vpcnet.sim import lab_vtep
            return lab_vtep.leaf_doc(self, lf)
        return {"apiVersion": "vpcnet.io/v1", "kind": "Leaf", "metadata": {"name": lf.name},
                "spec": {"driver": "netconf", "model": "vpcnet-leaf",
                         "managementAddress": f"{lf.mgmt_ip}:{topo.NETCONF_PORT}",
                         "managementNamespace": self.topo.mgmt_netns, "credentialsRef": CREDENTIALS_REF,
                         "vtepIp": lf.vtep, "asn": lf.asn, "ports": lf.ports,
                         "peers": [{"address": lf.spine_ip, "asn": topo.SPINE_ASN, "description": "vpcnet spine"}]}}

    def _apply_objects(self) -> str:
        leaves = [self.leaf_doc(lf) for lf in self.topo.leaf_plans]
        nodes = [self.node_doc(n) for n in self.topo.node_plans]
        status, payload = self.client().request("POST", "/v1/apply", {"documents": leaves + nodes,
                                                                       "source": f"lab {self.name}"})
        if status == 200:
            return f"{len(leaves)} Leaf, {len(nodes)} Node"
        self._warn("controller refused the Leaf objects, applying Nodes only: "
                   + "; ".join(payload.get("errors", [str(payload)]))[:1500])
        status, payload = self.client().request("POST", "/v1/apply", {"documents": nodes})
        if status != 200:
            raise LabError(f"controller refused the Node objects: {payload}")
        return f"{len(nodes)} Node (Leaf objects refused)"

    def _node_cmd(self, n: topo.NodePlan) -> list[str]:
        d = self.node_dir(n)
        return [sys.executable, "-m", "vpcnet.app.cli", "node", "--node", n.name, "--api", self.api,
                "--ovsdb", f"unix:{d / 'ovs' / 'db.sock'}", "--netns", n.netns,
                "--controller", f"unix:{d / 'ovs' / 'controller.sock'}", "--datapath-id", n.datapath_id,
                "--uplink", n.uplink, "--socket", str(d / "cni.sock"), "--state-dir", str(d / "state"),
                "--install-cni", "--cni-conf-dir", str(d / "net.d"), "--cni-bin-dir", str(d / "bin")]

    def _launch_nodes(self) -> str:
        for n in self.topo.node_plans:
            link = self.node_dir(n) / "ovs" / "controller.sock"
            if not link.is_symlink():
                link.symlink_to(self.ctl_dir / "of.sock")
            rec = net.start_detached(self._node_cmd(n), self.run_dir / "logs" / f"node-{n.short}.log")
            self._procs[f"node:{n.name}"] = rec
            self._record_proc(f"node:{n.name}", rec)
        return f"{len(self.topo.node_plans)} daemons"

    def _wait_nodes(self) -> str:
        recs = {n: self._procs[f"node:{n.name}"] for n in self.topo.node_plans}

        def ready():
            for n, rec in recs.items():
                if rec["_popen"].poll() is not None:
                    raise LabError(f"node daemon {n.name} exited: " + Path(rec["log"]).read_text()[-2000:])
                if not _accepts(self.node_dir(n) / "cni.sock"):
                    return False
            return True
        net.wait_for("the node daemons' CNI sockets", ready, timeout=90, interval=0.05)
        return f"{len(recs)} daemons"

    def _start_leaf_mgmt(self) -> str:
        try:
            from vpcnet.sim.netconf import NetconfLeafServer
        except ImportError:
            self._warn("sim/netconf.py (NetconfLeafServer) is not available: leaves have no NETCONF server "
                       "and no agent; configure them with vpcnet.sim.leafagent.apply_config")
            return "skipped"
        # One client key for the whole lab (the Leaf objects share credentialsRef "lab"): it is
        # generated once and placed as every server's client key before it starts, so each
        # leaf's authorized_keys holds the same public key.
        lab_key = self.run_dir / "credentials" / "id_ed25519"
        lab_key.parent.mkdir(parents=True, exist_ok=True)
        if not lab_key.exists():
            net.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"vpcnet-lab-{self.name}", "-f", str(lab_key))
        keys = []
        for lf in self.topo.leaf_plans:
            d = self.leaf_dir(lf) / "netconf"
            self.state["netconf"][lf.name] = {"run_dir": str(d)}
            self.save()
            d.mkdir(parents=True, exist_ok=True)
            for suffix in ("", ".pub"):
                shutil.copyfile(f"{lab_key}{suffix}", d / f"id_ed25519{suffix}")
            (d / "id_ed25519").chmod(0o600)
            server = NetconfLeafServer(d, lf.netns, lf.mgmt_ip, port=topo.NETCONF_PORT, modules=[str(YANG)])
            server.start()
            key = _client_key(server, d)
            self.state["netconf"][lf.name]["key"] = str(key) if key else None
            for daemon, pid in server.pids.items():
                self._record_proc(f"netconf:{lf.name}:{daemon}", net.pid_record(pid))
            keys.append(key)
            self.save()
            if key is None:
                self._warn(f"{lf.name}: NETCONF client key not found in {d}; no leaf agent started")
                continue
            cmd = ["ip", "netns", "exec", lf.netns, sys.executable, "-m", "vpcnet.sim.leafagent",
                   "--netns", lf.netns, "--run-dir", str(self.leaf_dir(lf) / "agent"),
                   "--ovsdb", f"unix:{self.leaf_dir(lf) / 'ovs' / 'db.sock'}", "--key", str(key),
                   "--netconf", f"{lf.mgmt_ip}:{topo.NETCONF_PORT}"]
            rec = net.start_detached(cmd, self.run_dir / "logs" / f"agent-{lf.name}.log")
            self._record_proc(f"agent:{lf.name}", rec)
            self.save()
        creds = self.state.get("controller", {}).get("credentials")
        if creds:
            (Path(creds) / f"{CREDENTIALS_REF}.json").write_text(
                json.dumps({"username": "root", "keyFile": str(lab_key.resolve())}) + "\n")
        return f"{len(keys)} leaves"

    def restart_netconf(self, leaf: str, factory_config: bool = False) -> None:
        """Restart a leaf's NETCONF server (netconfd + sshd), as a leaf reboot does to its
        management plane. ``factory_config``: it comes back with an empty startup configuration
        (a replaced or wiped switch), so only the controller can put vpcnet's config back."""
        lf = next((lp for lp in self.topo.leaf_plans if lp.name == leaf), None)
        if lf is None:
            raise LabError(f"no leaf {leaf!r} in lab {self.name}")
        from vpcnet.sim.netconf import NetconfLeafServer
        keys = [k for k in self.state["procs"] if k.startswith(f"netconf:{leaf}:")]
        problems = net.stop_procs([self.state["procs"][k] for k in keys])
        if problems:
            raise LabError(f"{leaf}: NETCONF server did not stop: {'; '.join(problems)}")
        for k in keys:
            self.state["procs"].pop(k)
        d = self.leaf_dir(lf) / "netconf"
        if factory_config:
            (d / "startup.xml").unlink(missing_ok=True)   # the server seeds an empty one
        server = NetconfLeafServer(d, lf.netns, lf.mgmt_ip, port=topo.NETCONF_PORT, modules=[str(YANG)])
        server.start()
        for daemon, pid in server.pids.items():
            self._record_proc(f"netconf:{lf.name}:{daemon}", net.pid_record(pid))
        self.save()

    def _wait_bgp(self) -> str:
        spine = self.frr("spine")
        peers = [lf.underlay_ip for lf in self.topo.leaf_plans]
        t0 = self.state["timings"].get("frr_started_at", time.time())
        net.wait_for("BGP sessions spine<->leaves", lambda: all(
            spine.bgp_states().get(p) == "Established" for p in peers), timeout=90, interval=0.2)
        took = time.time() - t0
        self.state["timings"]["bgp_established_after_frr_start"] = round(took, 2)
        return f"{len(peers)} sessions Established {took:.2f} s after FRR start"

    # --- VTEP leaves (sim/lab_vtep.py) ---------------------------------------------------------
    def vtep(self, leaf: str | int):
        """The PrivateVtep of a VTEP leaf (vtep_ctl, ofctl, ...), usable from a new process."""
        from vpcnet.sim import lab_vtep
        return lab_vtep.vtep_of(self, self.topo.leaf(leaf))

    def _start_vteps(self) -> str:
        from vpcnet.sim import lab_vtep
        return lab_vtep.start_all(self)

    def _wait_underlay(self) -> str:
        from vpcnet.sim import lab_vtep
        return lab_vtep.wait_underlay(self)

    # --- hosts and pods -------------------------------------------------------------------------
    def add_host(self, name: str, leaf: str | int, vlan: int, address: str | None = None,
                 mac: str | None = None) -> dict:
        """A plain host (own namespace ``<L>-h-<name>``) on leaf ``leaf``'s fabric bridge as an
        access port in ``vlan`` — a server that is not a Kubernetes node (and a test probe)."""
        import re
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", name) or name in self.state["hosts"]:
            raise LabError(f"host name {name!r}: 1-12 lowercase letters/digits, unique in the lab")
        lf = self.topo.leaf(leaf)
        ns, port = self.topo.host_netns(name), f"h-{name}"
        self.state["hosts"][name] = {"netns": ns, "leaf": lf.name, "port": port, "vlan": vlan, "address": address}
        self.save()
        nodes = [net.make_node(ns), net.make_node(lf.netns, attach=True)]
        try:
            net.link(nodes[0], nodes[1], "eth0", port)
        finally:
            net.release(nodes)
        if mac:
            net.run("ip", "-n", ns, "link", "set", "eth0", "address", mac)
        net.run("ip", "-n", ns, "link", "set", "lo", "up")
        if address:
            import ipaddress
            self.guard_prefix(str(ipaddress.ip_interface(address).network))
            net.run("ip", "-n", ns, "addr", "add", address, "dev", "eth0")
        net.ns_run(ns, "ethtool", "-K", "eth0", "tx", "off")   # userspace datapath: no partial checksums
        self.ovs(lf.netns).vsctl("add-port", topo.FABRIC_BRIDGE, port, "--", "set", "Port", port, f"tag={vlan}")
        self.state["hosts"][name]["mac"] = json.loads(net.run("ip", "-n", ns, "-j", "link", "show", "eth0"))[0]["address"]
        self.save()
        return self.state["hosts"][name]

    def add_pod(self, namespace: str, name: str, node: str | None = None, runtime: dict | None = None) -> dict:
        """Create a pod sandbox on ``node`` (default: the node with the fewest lab pods) through the
        node's installed vpcnet-cni, as containerd would; returns its record (incl. the CNI result)."""
        key = f"{namespace}/{name}"
        if key in self.state["pods"]:
            raise LabError(f"pod {key} exists in the lab already")
        if node is None:
            counts = {n.name: 0 for n in self.topo.node_plans}
            for p in self.state["pods"].values():
                counts[p["node"]] = counts.get(p["node"], 0) + 1
            node = min(counts, key=lambda k: (counts[k], k))
        n = self.topo.node(node)
        if net.netns_exists(self.topo.pod_netns(namespace, name)):
            raise LabError(f"namespace {self.topo.pod_netns(namespace, name)} exists already (a pod of a "
                           f"crashed run? `ip netns del` it)")
        sb = self.kubelet(n).add(namespace, name, self.topo.pod_netns(namespace, name), runtime)
        for ip in sb.ips:
            import ipaddress
            try:
                self.guard_prefix(str(ipaddress.ip_interface(ip).network))
            except LabError as exc:
                self._warn(f"pod {key}: {exc}")
        self.state["pods"][key] = {"node": n.name, **sb.to_dict()}
        self.save()
        return self.state["pods"][key]

    def del_pod(self, namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        rec = self.state["pods"].get(key)
        if rec is None:
            raise LabError(f"no pod {key} in lab {self.name}")
        sb = Sandbox.from_dict({k: v for k, v in rec.items() if k != "node"})
        try:
            self.kubelet(self.topo.node(rec["node"])).delete(sb)
        finally:
            self.state["pods"].pop(key, None)
            self.save()

    # --- exec -----------------------------------------------------------------------------------
    def netns_of(self, target: str) -> str:
        """``namespace/name`` of a lab pod, or a host: mgmt, spine, leafN, nN-K (or full names),
        a test host's name, or any of the lab's namespace names."""
        if "/" in target:
            rec = self.state["pods"].get(target)
            if rec is None:
                raise LabError(f"no pod {target} in lab {self.name} (pods: {', '.join(self.state['pods']) or 'none'})")
            return rec["netns"]
        t = self.topo
        fixed = {"mgmt": t.mgmt_netns, "spine": t.spine_netns}
        if target in fixed:
            return fixed[target]
        if target in self.state["hosts"]:
            return self.state["hosts"][target]["netns"]
        for lookup in (t.leaf, t.node):
            try:
                return lookup(target).netns
            except topo.TopologyError:
                pass
        if target in t.all_netns() or any(h["netns"] == target for h in self.state["hosts"].values()):
            return target
        raise LabError(f"no pod or host {target!r} in lab {self.name}")

    def exec(self, target: str, cmd: list[str] | str, capture: bool = True, timeout: float | None = 60,
             check: bool = False) -> subprocess.CompletedProcess:
        """Run ``cmd`` in the namespace of a lab pod or host (see ``netns_of``)."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return subprocess.run(["ip", "netns", "exec", self.netns_of(target), *argv], capture_output=capture,
                              text=True, timeout=timeout, check=check)

    # --- status ---------------------------------------------------------------------------------
    def status(self) -> dict:
        """A snapshot: processes alive, BGP sessions, EVPN VNIs, agents, guard routes, pods, timings."""
        t = self.topo
        present = set(net.list_netns())
        procs = {k: {"pid": r.get("pid"), "alive": net.proc_alive(r)} for k, r in self.state["procs"].items()}
        frrs = {}
        for ps in t.frr_pathspaces():
            inst = frr.FrrInstance(ps, ps)
            frrs[ps] = {"daemons": sorted(inst.pids()), "bgp": inst.bgp_states() if inst.pids() else {}}
            if ps != t.spine_netns and inst.pids():
                try:
                    vnis = inst.vtysh_json("show evpn vni json", timeout=10)
                    frrs[ps]["vnis"] = {k: {"remoteVteps": v.get("numRemoteVteps"), "macs": v.get("numMacs")}
                                        for k, v in vnis.items()}
                except (frr.FrrError, ValueError, subprocess.TimeoutExpired) as exc:
                    frrs[ps]["vnis"] = f"error: {exc}"
        agents = {}
        for lf in t.leaf_plans:
            try:
                agents[lf.name] = json.loads((self.leaf_dir(lf) / "agent" / "status.json").read_text())
            except (OSError, ValueError):
                agents[lf.name] = None
        return {"name": self.name, "run_dir": str(self.run_dir), "phase": self.state.get("phase"),
                "leaf_kind": self.leaf_kind, "leaves": t.leaves, "nodes_per_leaf": t.nodes_per_leaf,
                "netns": {ns: ns in present for ns in t.all_netns()},
                "processes": procs,
                "ovs": {ns: {k: net.proc_alive(net.pid_record(p)) for k, p in r.get("pids", {}).items()}
                        for ns, r in self.state["ovs"].items()},
                "frr": frrs, "agents": agents, "controller": self.state.get("controller"),
                "vteps": self.state.get("vteps", {}),
                "guard_routes": [{**r, "present": net.guard_present(r["prefix"], r["metric"])}
                                 for r in self.state["routes"]],
                "hosts": self.state["hosts"],
                "pods": {k: {"node": p["node"], "ips": Sandbox.from_dict(
                    {kk: vv for kk, vv in p.items() if kk != "node"}).ips} for k, p in self.state["pods"].items()},
                "timings": self.state["timings"], "warnings": self.state["warnings"],
                "error": self.state.get("error")}

    # --- down -----------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Remove everything the lab made: processes, namespaces (and their veths), FRR pathspace
        directories, unreachable routes, the run directory. Safe twice, after a half-failed up, and
        without a state file (then by naming scheme). Returns the problems met (also printed)."""
        from vpcnet.sim.lab_down import teardown
        return teardown(self)


def _accepts(path: Path) -> bool:
    import socket
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def _client_key(server, run_dir: Path) -> Path | None:
    for attr in ("client_key", "key_file", "client_key_file", "key_path", "identity"):
        value = getattr(server, attr, None)
        if value and Path(value).exists():
            return Path(value)
    for name in ("id_ed25519", "client_key", "id_rsa"):
        for p in Path(run_dir).rglob(name):
            return p
    return None
