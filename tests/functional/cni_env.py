"""A node as containerd sees it: a real controller, a real OVS (netdev, in the node's network
namespace), a real `vpcnet node` daemon process that installed `vpcnet-cni` into a private
bin dir, and a driver that execs the plugin exactly as containerd does (env + stdin + CNI_PATH).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ControllerProcess
from tests.functional.brint import VPCS
from vpcnet.app.api import Client
from vpcnet.sim.ovs import PrivateOvs

CNI_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


class CniNode:
    def __init__(self, tmp: Path, node: str = "node-1", dpid: int = 1):
        self.tmp = tmp
        self.tag = f"{os.getpid() % 100000}-{time.monotonic_ns() % 10000}"
        self.node = node
        self.state = tmp / "ctl"
        self.state.mkdir(exist_ok=True)
        self.ctl = ControllerProcess(self.state, "--of-listen", f"unix:{self.state / 'of.sock'}").wait_ready()
        self.client = Client(f"unix:{self.state / 'api.sock'}")
        self.ovs = PrivateOvs(tmp / "ovs", dummy=False, netns=f"vpcnet-c{self.tag}-node").start()
        link = self.ovs.run_dir / "controller.sock"
        link.symlink_to(self.state / "of.sock")
        # the uplink: one end of a veth pair in the node namespace (the fabric is not under test)
        subprocess.run(["ip", "-n", self.ovs.netns, "link", "add", "vpcup1", "type", "veth", "peer", "name",
                        "vpcup1p"], check=True)
        subprocess.run(["ip", "-n", self.ovs.netns, "link", "set", "vpcup1", "up"], check=True)
        node_doc = {"apiVersion": "vpcnet.io/v1", "kind": "Node", "metadata": {"name": node},
                    "spec": {"datapathId": f"{dpid:016x}", "uplinkPort": "vpcup1", "ovsdb": f"unix:{self.ovs.db_sock}"}}
        status, payload = self.client.request("POST", "/v1/apply", {"documents": VPCS + [node_doc]})
        assert status == 200, payload
        self.socket = tmp / "cni.sock"
        self.bin_dir = tmp / "bin"
        self.conf_dir = tmp / "net.d"
        self.node_log = open(tmp / "node.log", "w")
        self.daemon_args = [sys.executable, "-m", "vpcnet.app.cli", "node", "--node", node,
                            "--api", f"unix:{self.state / 'api.sock'}", "--ovsdb", f"unix:{self.ovs.db_sock}",
                            "--netns", self.ovs.netns, "--controller", f"unix:{link}",
                            "--datapath-id", f"{dpid:016x}", "--uplink", "vpcup1", "--socket", str(self.socket),
                            "--state-dir", str(tmp / "node"), "--install-cni", "--cni-conf-dir", str(self.conf_dir),
                            "--cni-bin-dir", str(self.bin_dir)]
        self.daemon = None
        self.start_daemon()
        self.netns: list[str] = []

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen(self.daemon_args, stdout=self.node_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self._accepts():   # a killed daemon leaves its socket file: connect, do not stat
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("node daemon did not start:\n" + (self.tmp / "node.log").read_text())
            time.sleep(0.02)

    def _accepts(self) -> bool:
        import socket
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.socket))
                return True
            except OSError:
                return False

    def kill_daemon(self) -> None:
        self.daemon.kill()
        self.daemon.wait()

    @property
    def conflist(self) -> dict:
        return json.loads(next(self.conf_dir.glob("*.conflist")).read_text())

    def new_netns(self, name: str) -> str:
        ns = f"vpcnet-c{self.tag}-{name}"
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.netns.append(ns)
        return f"/var/run/netns/{ns}"

    def cni(self, command: str, container_id: str = "", netns: str = "", ifname: str = "eth0",
            pod: tuple[str, str] | None = None, version: str = "1.1.0", extra: dict | None = None,
            env_override: dict | None = None, stdin: str | None = None, timeout: float = 60):
        """Exec vpcnet-cni like containerd: returns (exit code, parsed stdout or None, stderr)."""
        plugin = dict(self.conflist["plugins"][0])
        config = {"cniVersion": version, "name": self.conflist["name"], **plugin, **(extra or {})}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
               "CNI_PATH": str(self.bin_dir)}
        if container_id:
            env["CNI_CONTAINERID"] = container_id
        if netns:
            env["CNI_NETNS"] = netns
        if ifname:
            env["CNI_IFNAME"] = ifname
        if pod:
            env["CNI_ARGS"] = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod[0]};K8S_POD_NAME={pod[1]};"
                               f"K8S_POD_INFRA_CONTAINER_ID={container_id}")
        env.update(env_override or {})
        env = {k: v for k, v in env.items() if v is not None}
        r = subprocess.run([str(self.bin_dir / "vpcnet-cni")], input=json.dumps(config) if stdin is None else stdin,
                           env=env, capture_output=True, text=True, timeout=timeout)
        out = json.loads(r.stdout) if r.stdout.strip() else None
        return r.returncode, out, r.stderr

    def in_ns(self, netns_path: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", f"--net={netns_path}", *cmd], capture_output=True, text=True,
                              timeout=timeout)

    def ping(self, netns_path: str, ip: str, count: int = 2) -> bool:
        return self.in_ns(netns_path, "ping", "-c", str(count), "-W", "1", "-i", "0.2", ip).returncode == 0

    # --- leak accounting ------------------------------------------------------------------
    def inventory(self) -> dict:
        links = subprocess.run(["ip", "-n", self.ovs.netns, "-o", "link"], capture_output=True, text=True).stdout
        host_veths = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
                            if ": vp" in line and "vpcup" not in line)
        ports = sorted(p for p in self.ovs.vsctl("list-ports", "br-int").split() if p != "vpcup1")
        status, payload = self.client.request("GET", "/v1/objects/pods")
        pods = sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in payload.get("items", []))
        records = sorted(p.name for p in (self.tmp / "node" / "attachments").glob("*.json"))
        return {"veths": host_veths, "ports": ports, "pods": pods, "records": records}

    def stop(self) -> None:
        try:
            if self.daemon and self.daemon.poll() is None:
                self.daemon.terminate()
                try:
                    self.daemon.wait(10)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
            self.ctl.stop()
        finally:
            self.ovs.stop()
            for ns in self.netns:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            self.node_log.close()
