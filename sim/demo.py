"""``vpcnet lab demo``: the whole system on one machine, in one command.

1. ``lab up``: spine + EVPN leaves (FRR, netconfd, leaf agent) + nodes (OVS netdev br-int, the
   ``vpcnet node`` daemon) + a controller on the embedded state database.
2. The bundled examples' VPCs, namespaces and subnets are applied through the API; the controller
   pushes each leaf its MAC-VRFs/IP-VRFs over NETCONF (shown as the ``fabric sync`` plan).
3. Pods are created through the real CNI path (a kubelet-like driver execs ``vpcnet-cni`` on the
   pod's node), spread over every leaf, including a pod with a fixed IP and MAC.
4. Every pod pings every other pod; the connectivity matrix is printed and judged against the
   intent (same VPC reaches, other VPCs are isolated).

The lab stays up for exploring (``vpcnet lab status``, ``vpcnet lab exec POD -- CMD``,
``vpcnet fabric plan``); ``vpcnet lab down`` removes it. An earlier lab of the same name is
taken down first, so the demo can be run again.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from vpcnet.sim.lab import Lab, LabNotFound
from vpcnet.sim.matrix import PodRef, render_matrix, run_matrix

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INTENT_FILES = ("00-vpcs.yaml", "10-namespaces.yaml", "20-subnets.yaml")

# (namespace, name, annotations, leaf index, node index on that leaf). Pods of one VPC sit behind
# different leaves (L2VNI between leaves, and br-int's routing between subnets), two VPCs share
# nodes (isolation on one bridge), and trader-0 pins its address and MAC.
DEMO_PODS = (
    ("trading", "trader-0", {"vpcnet.io/ip_address": "10.10.0.100", "vpcnet.io/mac_address": "02:00:0a:0a:00:64"},
     1, 1),
    ("trading", "trader-1", {}, 2, 1),
    ("payments", "db-0", {}, 1, 2),
    ("payments", "db-1", {}, 2, 2),
    ("shop", "web-0", {}, 1, 1),
    ("shop", "web-1", {}, 2, 1),
)


def _docs(client_apply, files) -> None:
    from vpcnet.app.intent.manifest import load_path
    docs = [d for f in files for d in load_path(EXAMPLES / f)]
    client_apply(docs)


def run_lab_demo(name: str = "vl", run_dir: str | None = None, leaves: int = 2, nodes_per_leaf: int = 2,
                 log=print) -> int:
    t_start = time.monotonic()
    try:
        old = Lab.load(name, run_dir, log=log)
        log(f"demo: an earlier lab {name!r} is still up: taking it down first")
        old.down()
    except LabNotFound:
        pass
    lab = Lab(name, run_dir, leaves=leaves, nodes_per_leaf=max(2, nodes_per_leaf), log=log)
    lab.up()
    client = lab.client()

    def apply(docs):
        status, payload = client.request("POST", "/v1/apply", {"documents": docs})
        if status != 200:
            raise SystemExit("demo: apply refused: " + "; ".join(payload.get("errors", [str(status)])))
        return payload

    log("demo: applying the examples' VPCs, namespaces and subnets ...")
    _docs(apply, INTENT_FILES)
    log("demo: leaf configuration over NETCONF (vpcnet fabric sync) ...")
    t = time.monotonic()
    status, payload = client.request("POST", "/v1/fabric/sync", {})
    if status != 200:
        raise SystemExit("demo: fabric sync failed: " + "; ".join(payload.get("errors", [str(status)])))
    for leaf in payload["leaves"]:
        if leaf["error"]:
            raise SystemExit(f"demo: {leaf['error']}")
        log("  " + leaf["text"].rstrip("\n").replace("\n", "\n  "))
    log(f"demo: leaves in sync in {time.monotonic() - t:.2f} s")

    pods: list[PodRef] = []
    log("demo: creating pods through vpcnet-cni (as containerd would) ...")
    subnet_vpc = _subnet_vpcs(client)
    for ns, pod, notes, leaf_i, node_i in DEMO_PODS:
        node = _node_for(lab, leaf_i, node_i)
        apply([{"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": ns, "annotations": notes},
                "spec": {"nodeName": node}}])
        t = time.monotonic()
        rec = lab.add_pod(ns, pod, node)
        status, obj = client.request("GET", f"/v1/objects/pods/{pod}?namespace={ns}")
        st = obj.get("status", {}) if status == 200 else {}
        ip = st.get("ips", [""])[0].split("/")[0] if st.get("ips") else rec.get("ips", [""])[0].split("/")[0]
        subnet = st.get("subnet", "?")
        pods.append(PodRef(ns, pod, ip, subnet_vpc.get(subnet, "?"), subnet, node))
        log(f"  {ns}/{pod}: {ip} ({st.get('mac', '?')}) subnet {subnet} on {node}, ADD took "
            f"{time.monotonic() - t:.2f} s")

    log(f"demo: connectivity matrix ({len(pods)} pods, {len(pods) * (len(pods) - 1)} pairs, ping) ...")

    def probe(src: PodRef, dst_ip: str) -> bool:
        try:
            r = lab.exec(src.key, ["ping", "-c", "2", "-i", "0.3", "-W", "1", "-q", dst_ip], timeout=15)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0

    cells = run_matrix(pods, probe, parallel=4, progress=log)
    print()
    print(render_matrix(pods, cells))
    print()
    ok = all(c.ok for c in cells)
    lab_args = "" if name == "vl" and run_dir is None else f" --name {name}" + (f" --run-dir {run_dir}" if run_dir else "")
    far = next((p for p in pods if p.vpc == pods[0].vpc and p.node != pods[0].node and p.subnet != pods[0].subnet),
               pods[-1])
    log(f"demo: {'done' if ok else 'FAILED'} in {time.monotonic() - t_start:.1f} s. The lab stays up: "
        f"`vpcnet lab status{lab_args}`, `vpcnet lab exec{lab_args} {pods[0].key} -- ping {far.ip}`, "
        f"`vpcnet --state-dir {lab.ctl_dir} fabric plan`; `vpcnet lab down{lab_args}` removes it.")
    return 0 if ok else 1


def _subnet_vpcs(client) -> dict[str, str]:
    status, payload = client.request("GET", "/v1/objects/subnets")
    items = payload.get("items", payload if isinstance(payload, list) else [])
    return {s["metadata"]["name"]: s["spec"].get("vpc", "?") for s in items}


def _node_for(lab: Lab, leaf_i: int, node_i: int) -> str:
    """The lab node at (leaf, index), wrapped around when the lab is smaller than the plan."""
    leaf_i = (leaf_i - 1) % lab.topo.leaves + 1
    node_i = (node_i - 1) % lab.topo.nodes_per_leaf + 1
    return next(n.name for n in lab.topo.node_plans if (n.leaf, n.index) == (leaf_i, node_i))
