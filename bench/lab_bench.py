"""Lab benchmark (printed figures, not a test). Needs root.

* Lab bring-up: ``Lab.up()`` of LEAVES x NODES (spine, FRR EVPN leaves with netconfd and leaf
  agents, nodes with OVS and the node daemon, controller), split by step as ``up`` measures it,
  and ``down``.
* Leaf configuration: the examples' VPCs/namespaces/subnets applied, then ``POST /v1/fabric/sync``
  (already in sync when the controller's own post-change sync won the race: both are shown).
* ADD -> first answer across the fabric: a responder pod sits on a node behind leaf 2; a new pod
  is created on a node behind leaf 1 through the real CNI path, and from the moment the ADD
  starts the new pod pings the responder (50 ms apart) until the first reply. Peer in the same
  run: the same with the responder on the new pod's own node (no leaf, no VXLAN), so the
  difference is what the fabric adds (MAC learning, EVPN type-2 routes, ingress replication).

  cd /work/main && .venv/bin/python -m vpcnet.bench.lab_bench [--rounds 5 --leaves 2 --nodes-per-leaf 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from vpcnet.app.intent.manifest import load_path
from vpcnet.sim.lab import Lab

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def first_answer(lab: Lab, src: str, dst_ip: str, t0: float, timeout: float = 30.0) -> float:
    """Seconds from ``t0`` until ``src`` gets an echo reply from ``dst_ip``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = lab.exec(src, ["ping", "-c", "1", "-W", "0.2", "-q", dst_ip], timeout=5)
        if r.returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise RuntimeError(f"{src} never reached {dst_ip} in {timeout:.0f} s")


def pod_ip(lab: Lab, ns: str, name: str) -> str:
    status, obj = lab.client().request("GET", f"/v1/objects/pods/{name}?namespace={ns}")
    assert status == 200, obj
    return obj["status"]["ips"][0].split("/")[0]


def stats(xs: list[float]) -> str:
    return f"p50 {statistics.median(xs) * 1000:.0f} ms, min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f} (n={len(xs)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--leaves", type=int, default=2)
    ap.add_argument("--nodes-per-leaf", type=int, default=2)
    args = ap.parse_args()
    run = Path(tempfile.mkdtemp(prefix="vpcnet-labbench-")) / "run"
    lab = Lab(f"b{os.getpid() % 100000}", run, leaves=args.leaves, nodes_per_leaf=args.nodes_per_leaf,
              log=lambda line: None)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    t = time.monotonic()
    lab.up()
    up_s = time.monotonic() - t
    try:
        timings = dict(lab.state["timings"])
        print(f"lab up ({args.leaves} leaves x {args.nodes_per_leaf} nodes): {up_s:.2f} s")
        for step, secs in timings.items():
            if step not in ("total", "frr_started_at", "bgp_established_after_frr_start"):
                print(f"  {step:32s} {secs:6.2f} s")
        if "bgp_established_after_frr_start" in timings:
            print(f"  (BGP Established {timings['bgp_established_after_frr_start']:.2f} s after FRR start)")
        client = lab.client()
        docs = [d for f in ("00-vpcs.yaml", "10-namespaces.yaml", "20-subnets.yaml") for d in load_path(EXAMPLES / f)]
        t = time.monotonic()
        status, payload = client.request("POST", "/v1/apply", {"documents": docs})
        assert status == 200, payload
        status, payload = client.request("POST", "/v1/fabric/sync", {})
        assert status == 200 and not any(x["error"] for x in payload["leaves"]), payload
        per_leaf = ", ".join("%s: %d change(s) %.2f s" % (x["leaf"], len(x["changes"]), x["seconds"])
                             for x in payload["leaves"])
        print(f"intent applied + every leaf in sync over NETCONF: {time.monotonic() - t:.2f} s ({per_leaf})")

        nodes = lab.topo.node_plans
        near = next(n for n in nodes if n.leaf == 1)
        far = next(n for n in nodes if n.leaf == 2)
        lab.add_pod("trading", "far-responder", far.name)
        lab.add_pod("trading", "near-responder", near.name)
        targets = {"across leaves": pod_ip(lab, "trading", "far-responder"),
                   "same node (peer)": pod_ip(lab, "trading", "near-responder")}
        results: dict[str, list[float]] = {k: [] for k in targets}
        adds: list[float] = []
        for i in range(args.rounds):
            for label, ip in targets.items():
                name = f"probe-{i}-{'far' if 'across' in label else 'near'}"
                t0 = time.monotonic()
                lab.add_pod("trading", name, near.name)
                adds.append(time.monotonic() - t0)
                results[label].append(first_answer(lab, f"trading/{name}", ip, t0))
                lab.del_pod("trading", name)
        print(f"ADD -> first echo reply from a pod in the same subnet ({args.rounds} rounds, ADD included):")
        for label, xs in results.items():
            print(f"  {label:18s} {stats(xs)}")
        print(f"  (the ADD alone, through vpcnet-cni: {stats(adds)})")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        t = time.monotonic()
        lab.down()
        print(f"lab down: {time.monotonic() - t:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
