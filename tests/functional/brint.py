"""Harness for br-int tests on real Open vSwitch: a real controller process, one private OVS per
node (its own ovsdb-server + ovs-vswitchd, bridge ``br-int``), intent applied through the API.

``dummy=True``: ovs-vswitchd --enable-dummy=override; ports are dummy interfaces and packets are
followed with ``ofproto/trace``. ``dummy=False``: netdev (userspace) datapath with real veths
whose other ends live in network namespaces ("pods"), so ``ping`` crosses the bridges; the two
nodes' uplinks are the two ends of one veth pair (a trunk standing in for the fabric).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

from vpcnet.app.api import Client
from vpcnet.app.topology import pod_port_name
from vpcnet.sim.ovs import PrivateOvs
from tests.conftest import ControllerProcess, free_port

VPCS = [
    {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "finance"},
     "spec": {"namespaces": ["trading", "payments"]}},
    {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "retail"},
     "spec": {"namespaces": ["shop"]}},
    {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "trading-a"},
     "spec": {"vpc": "finance", "cidrBlock": "10.10.0.0/24", "namespaces": ["trading"]}},
    {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "payments-a"},
     "spec": {"vpc": "finance", "cidrBlock": "10.20.0.0/24", "namespaces": ["payments"]}},
    {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "shop-a"},
     "spec": {"vpc": "retail", "cidrBlock": "10.30.0.0/24", "namespaces": ["shop"]}},
]


def pod_doc(namespace: str, name: str, node: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": {"vpcnet.io/ip_address": ip}},
            "spec": {"nodeName": node}}


class Fabric:
    def __init__(self, tmp: Path, nodes=("node-1", "node-2"), dummy: bool = True, audit_interval: float = 30.0,
                 extra_args=()):
        self.tmp = tmp
        self.dummy = dummy
        self.of_port = free_port()
        self.metrics_port = free_port()
        self.state = tmp / "ctl"
        self.state.mkdir(exist_ok=True)
        # Dummy bridges reach the controller over TCP; netdev nodes live in their own network
        # namespaces (see PrivateOvs), where the controller's unix socket is reachable and
        # 127.0.0.1 is not.
        self.of_target = f"tcp:127.0.0.1:{self.of_port}" if dummy else f"unix:{self.state / 'of.sock'}"
        of_listen = f"127.0.0.1:{self.of_port}" if dummy else self.of_target
        self.args = ("--of-listen", of_listen, "--metrics", f"127.0.0.1:{self.metrics_port}",
                     "--audit-interval", str(audit_interval), *extra_args)
        self.ctl = ControllerProcess(self.state, *self.args).wait_ready()
        self.client = Client(f"unix:{self.state / 'api.sock'}")
        self.nodes: dict[str, PrivateOvs] = {}
        self.uplink: dict[str, str] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.tag = f"{os.getpid() % 100000}-{time.monotonic_ns() % 10000}"
        for i, node in enumerate(nodes, start=1):
            netns = None if dummy else f"vpcnet-t{self.tag}-n{i}"
            ovs = PrivateOvs(tmp / f"ovs-{node}", dummy=dummy, netns=netns).start()
            self.nodes[node] = ovs
            self.uplink[node] = f"vpcup{i}"

    # --- controller ----------------------------------------------------------------------
    def restart_controller(self, kill: bool = True) -> None:
        if kill:
            self.ctl.proc.kill()
            self.ctl.proc.wait()
            self.ctl.log.close()
        else:
            self.ctl.stop()
        self.ctl = ControllerProcess(self.state, *self.args).wait_ready()

    def api(self, method: str, path: str, body=None):
        status, payload = self.client.request(method, path, body)
        assert status == 200, payload
        return payload

    def apply(self, docs: list[dict]):
        return self.api("POST", "/v1/apply", {"documents": docs})

    def metrics(self) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        return opener.open(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()

    def metric(self, name: str, **labels) -> float:
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    # --- nodes ---------------------------------------------------------------------------
    def node_doc(self, node: str, dpid: int) -> dict:
        ovs = self.nodes[node]
        return {"apiVersion": "vpcnet.io/v1", "kind": "Node", "metadata": {"name": node},
                "spec": {"datapathId": f"{dpid:016x}", "uplinkPort": self.uplink[node],
                         "ovsdb": f"unix:{ovs.db_sock}"}}

    def add_bridges(self) -> None:
        for i, (node, ovs) in enumerate(self.nodes.items(), start=1):
            target = self.of_target
            if target.startswith("unix:"):
                # ovs-vswitchd only dials unix sockets inside its own run directory
                link = ovs.run_dir / "controller.sock"
                if not link.exists():
                    link.symlink_to(target[len("unix:"):])
                target = f"unix:{link}"
            ovs.add_bridge("br-int", i, controller=target)

    def add_uplinks(self) -> None:
        names = list(self.nodes)
        if self.dummy:
            for node in names:
                self.nodes[node].add_port("br-int", self.uplink[node], ofport=100, type_="dummy")
            return
        (na, a), (nb, b) = ((self.nodes[n].netns, self.uplink[n]) for n in names[:2])
        _ip("link", "add", a, "netns", na, "type", "veth", "peer", "name", b, "netns", nb)
        for ns, dev in ((na, a), (nb, b)):
            _ip("-n", ns, "link", "set", dev, "up")
            subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"], capture_output=True)
        for node in names[:2]:
            self.nodes[node].add_port("br-int", self.uplink[node], ofport=100)

    # --- pods ----------------------------------------------------------------------------
    def add_pods(self, specs: list[tuple[str, str, str, str, int]], wire: bool = True) -> list[dict]:
        """Apply many pods (namespace, name, node, ip, ofport) in one change, then wire them."""
        self.apply([pod_doc(ns, name, node, ip) for ns, name, node, ip, _ in specs])
        return [self.add_pod(*spec, wire=wire, applied=True) for spec in specs]

    def add_pod(self, namespace: str, name: str, node: str, ip: str, ofport: int, wire: bool = True,
                applied: bool = False) -> dict:
        if not applied:
            self.apply([pod_doc(namespace, name, node, ip)])
        pod = self.api("GET", f"/v1/objects/pods/{name}?namespace={namespace}")
        status = pod["status"]
        port = pod_port_name(namespace, name)
        info = {"namespace": namespace, "name": name, "node": node, "ip": ip, "mac": status["mac"],
                "port": port, "ofport": ofport, "netns": f"vpcnet-t{self.tag}-{port}"}
        self.pods[(namespace, name)] = info
        if wire:
            self.wire_pod(info, status)
            info["wired"] = True
        return info

    def delete_pods(self, keys: list[tuple[str, str]]) -> None:
        """Delete pods through the API (their ports stay on the bridge, as after a crashed CNI DEL)."""
        self.api("POST", "/v1/delete", {"refs": [{"kind": "Pod", "namespace": ns, "name": n} for ns, n in keys]})
        for key in keys:
            self.pods[key]["wired"] = False

    def wire_pod(self, info: dict, status: dict) -> None:
        ovs = self.nodes[info["node"]]
        if self.dummy:
            ovs.add_port("br-int", info["port"], ofport=info["ofport"], type_="dummy")
            return
        ns, port = info["netns"], info["port"]
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        _ip("netns", "add", ns)
        _ip("link", "add", port, "netns", ovs.netns, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("-n", ovs.netns, "link", "set", port, "up")
        prefix = status["cidrs"][0].split("/")[1]
        gw = status["gateway"].split(",")[0]
        for cmd in (["link", "set", "lo", "up"], ["link", "set", "eth0", "address", info["mac"]],
                    ["addr", "add", f"{info['ip']}/{prefix}", "dev", "eth0"], ["link", "set", "eth0", "up"],
                    ["route", "add", "default", "via", gw]):
            _ip("-n", ns, *cmd)
        subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"], capture_output=True,
                       check=True)
        ovs.add_port("br-int", port, ofport=info["ofport"])

    def in_pod(self, namespace: str, name: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        ns = self.pods[(namespace, name)]["netns"]
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)

    def ping(self, src: tuple[str, str], dst_ip: str, count: int = 3, wait: float = 1.0) -> bool:
        r = self.in_pod(*src, "ping", "-c", str(count), "-W", str(wait), "-i", "0.2", dst_ip)
        return r.returncode == 0

    # --- flows ---------------------------------------------------------------------------
    def flows(self, node: str) -> list[str]:
        return self.nodes[node].dump_flows("br-int")

    def wait_flows(self, node: str, predicate, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            flows = self.flows(node)
            if predicate(flows):
                return flows
            if time.monotonic() > deadline:
                raise AssertionError(f"{node}: flows never matched; last dump:\n" + "\n".join(flows))
            time.sleep(0.1)

    def trace(self, node: str, flow: str) -> str:
        return self.nodes[node].trace("br-int", flow)

    def odp_ports(self, node: str) -> dict[int, str]:
        """Datapath port number -> port name (ofproto/trace prints datapath numbers)."""
        out = {}
        for line in self.nodes[node].appctl("dpif/show").splitlines():
            m = re.match(r"\s+(\S+) (\d+)/(\d+):", line)
            if m:
                out[int(m.group(3))] = m.group(1)
        return out

    def where(self, node: str, flow: str) -> str:
        """The datapath actions for ``flow`` (conntrack steps left out), output ports by name
        ("drop" when dropped)."""
        out = re.sub(r"ct\([^)]*\),?", "", final_action(self.trace(node, flow))) or "drop"
        names = self.odp_ports(node)
        return re.sub(r"(?<![\w=(:.])(\d+)(?![\w):.])", lambda m: names.get(int(m.group(1)), m.group(1)), out)

    def settle(self, timeout: float = 30.0, quiet: float = 0.6) -> None:
        """Wait until every wired pod's port is in its node's flows, no deleted or unwired pod's port
        is, and no bridge changed for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            dumps = {n: self.flows(n) for n in self.nodes}
            ready = all(any(info["port"] in f for f in dumps[info["node"]]) == bool(info.get("wired"))
                        for info in self.pods.values())
            if dumps != last:
                last, since = dumps, time.monotonic()
            elif ready and time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError("flows did not settle:\n" + dump_json(last) + "\ncontroller log (tail):\n"
                             + self.controller_log_tail())

    def controller_log_tail(self, lines: int = 60) -> str:
        with open(self.ctl.log.name) as f:
            return "".join(f.readlines()[-lines:])

    def stop(self) -> None:
        try:
            self.ctl.stop()
        finally:
            for ovs in self.nodes.values():
                ovs.stop()
            if not self.dummy:   # node namespaces go with their OVS (and take veth ends along)
                for info in self.pods.values():
                    subprocess.run(["ip", "netns", "del", info["netns"]], capture_output=True)


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def final_action(trace: str) -> str:
    """The last 'Datapath actions:' line of an ofproto/trace output (after any recirculation)."""
    found = [line.split(":", 1)[1].strip() for line in trace.splitlines() if line.startswith("Datapath actions:")]
    if not found:
        raise AssertionError(f"no datapath actions in trace:\n{trace}")
    return found[-1]


def dump_json(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
