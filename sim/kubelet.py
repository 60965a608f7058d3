"""A kubelet/containerd stand-in for the lab: pod sandboxes and CNI calls, done as containerd does.

containerd (through libcni) for every pod sandbox: creates a network namespace and bind-mounts it
(``/var/run/netns/<name>`` here, via ``ip netns add``), reads the first ``*.conflist`` of the CNI
conf dir, and for each plugin execs ``<CNI_PATH>/<type>`` with

* env ``CNI_COMMAND`` (ADD/CHECK/DEL), ``CNI_CONTAINERID``, ``CNI_NETNS`` (a path), ``CNI_IFNAME``
  (``eth0``), ``CNI_ARGS`` (``IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;
  K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..``), ``CNI_PATH`` (the bin dirs);
* stdin: the plugin's config from the conflist with the list's ``cniVersion`` and ``name``
  added, ``runtimeConfig`` holding only the capabilities the plugin declares and the runtime has
  values for, and — for CHECK and DEL (cniVersion >= 0.4.0) — ``prevResult``, the cached ADD result;
* DEL is sent even when the namespace is already gone, and must succeed; then the namespace is
  unmounted and deleted.

``Kubelet.add()`` returns a ``Sandbox`` (JSON-serialisable, so ``lab exec``/``lab down`` in a new
process can find and delete it). A failed ADD is followed by DEL and the namespace is removed,
like containerd's cleanup of a failed RunPodSandbox.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path


class CniFailure(RuntimeError):
    def __init__(self, command: str, rc: int, out, err: str):
        msg = out.get("msg") if isinstance(out, dict) else None
        super().__init__(f"CNI {command} failed (exit {rc}): {msg or err.strip() or out}")
        self.rc, self.out, self.err = rc, out, err


@dataclass
class Sandbox:
    namespace: str
    name: str
    netns: str                  # name under /var/run/netns
    container_id: str
    ifname: str = "eth0"
    uid: str = ""
    result: dict = field(default_factory=dict)

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    @property
    def ips(self) -> list[str]:
        return [ip["address"] for ip in self.result.get("ips", [])]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Sandbox":
        return cls(**d)


class Kubelet:
    def __init__(self, conf_dir: str | Path, bin_dir: str | Path, timeout: float = 60):
        self.conf_dir, self.bin_dir, self.timeout = Path(conf_dir), Path(bin_dir), timeout

    @property
    def conflist(self) -> dict:
        files = sorted(self.conf_dir.glob("*.conflist"))
        if not files:
            raise FileNotFoundError(f"no *.conflist in {self.conf_dir} (is the node daemon running "
                                    f"with --install-cni?)")
        return json.loads(files[0].read_text())

    def exec_plugins(self, command: str, sb: Sandbox, runtime: dict | None = None,
                     netns_path: str | None = None) -> dict:
        """Run every plugin of the conflist for ``command``; returns the last result (ADD)."""
        conflist = self.conflist
        plugins = conflist["plugins"]
        if command == "DEL":
            plugins = list(reversed(plugins))
        prev = sb.result if command in ("CHECK", "DEL") and sb.result else None
        result: dict = {}
        for plugin in plugins:
            config = {**plugin, "cniVersion": conflist["cniVersion"], "name": conflist["name"]}
            caps = {k for k, v in plugin.get("capabilities", {}).items() if v}
            rc_values = {k: v for k, v in (runtime or {}).items() if k in caps}
            if rc_values:
                config["runtimeConfig"] = rc_values
            if prev is not None and _version(conflist["cniVersion"]) >= (0, 4, 0):
                config["prevResult"] = prev
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
                   "CNI_CONTAINERID": sb.container_id, "CNI_NETNS": netns_path if netns_path is not None
                   else sb.netns_path, "CNI_IFNAME": sb.ifname, "CNI_PATH": str(self.bin_dir),
                   "CNI_ARGS": (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={sb.namespace};K8S_POD_NAME={sb.name};"
                                f"K8S_POD_INFRA_CONTAINER_ID={sb.container_id};K8S_POD_UID={sb.uid}")}
            binary = self.bin_dir / plugin["type"]
            r = subprocess.run([str(binary)], input=json.dumps(config), env=env, capture_output=True, text=True,
                               timeout=self.timeout)
            try:
                out = json.loads(r.stdout) if r.stdout.strip() else {}
            except ValueError:
                out = {"msg": r.stdout.strip()}
            if r.returncode != 0:
                raise CniFailure(command, r.returncode, out, r.stderr)
            if command == "ADD":
                prev = result = out
        return result

    def add(self, namespace: str, name: str, netns: str, runtime: dict | None = None,
            container_id: str | None = None) -> Sandbox:
        sb = Sandbox(namespace, name, netns, container_id or secrets.token_hex(32), uid=secrets.token_hex(16))
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True, timeout=30)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=30)
        try:
            sb.result = self.exec_plugins("ADD", sb, runtime)
        except Exception:
            self.delete(sb)
            raise
        return sb

    def check(self, sb: Sandbox) -> None:
        self.exec_plugins("CHECK", sb)

    def delete(self, sb: Sandbox) -> None:
        """DEL (also when the namespace is already gone: CNI_NETNS is then empty), then remove it."""
        gone = not Path(sb.netns_path).exists()
        try:
            self.exec_plugins("DEL", sb, netns_path="" if gone else None)
        finally:
            subprocess.run(["ip", "netns", "del", sb.netns], capture_output=True, timeout=30)


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        return (0,)
