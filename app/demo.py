"""`vpcnet demo`: the main job on an embedded default.

Starts a controller on a private state database, applies examples/, shows the VPCs, subnets and
pods with the addresses IPAM gave them, shows that a conflicting fixed IP is refused and that an
address keeps its history, then stops everything it started.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import vpcnet
from vpcnet.app import intent, output
from vpcnet.app.api import Client

EXAMPLES = Path(vpcnet.__file__).resolve().parent / "examples"


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def run_demo(args) -> int:
    examples = Path(args.examples) if args.examples else EXAMPLES
    state_dir = tempfile.mkdtemp(prefix="vpcnet-demo-")
    sock = os.path.join(state_dir, "api.sock")
    step(f"starting the controller on an embedded state database in {state_dir}")
    log = open(os.path.join(state_dir, "controller.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "vpcnet.app.cli", "controller", "--state-dir", state_dir,
                             "--ip-quarantine", "60", "--of-listen", "none"], stdout=log, stderr=subprocess.STDOUT)
    client = Client(f"unix:{sock}")
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                print(open(log.name).read(), file=sys.stderr)
                print("error: the controller did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
        step(f"applying {examples}")
        docs = intent.load_path(str(examples))
        status, payload = client.request("POST", "/v1/apply", {"documents": docs, "source": str(examples)})
        if status != 200:
            print("\n".join(payload["errors"]), file=sys.stderr)
            return 1
        for r in payload["results"]:
            print(f"    {r['ref'].lower()} {r['result']}")
        for kind, title in (("vpcs", "VPCs"), ("subnets", "subnets"), ("nodes", "nodes")):
            step(title)
            items = client.request("GET", f"/v1/objects/{kind}")[1]["items"]
            print(_indent(output.objects_table(intent.resolve_kind(kind).kind, items)))
        step("pods and the addresses IPAM gave them")
        pods = client.request("GET", "/v1/objects/pods")[1]["items"]
        print(_indent(output.objects_table("Pod", pods, wide=True)))
        fixed = next((p for p in pods if "vpcnet.io/ip_address" in p["metadata"].get("annotations", {})), None)
        if fixed is not None:
            ip = fixed["status"]["ip"]
            step(f"a second pod asking for {ip} is refused, and nothing is stored")
            thief = {"apiVersion": "vpcnet.io/v1", "kind": "Pod",
                     "metadata": {"name": "thief", "namespace": fixed["metadata"]["namespace"],
                                  "annotations": {"vpcnet.io/ip_address": ip}}, "spec": {}}
            status, payload = client.request("POST", "/v1/apply", {"documents": [thief]})
            print(f"    HTTP {status}: {'; '.join(payload.get('errors', []))}")
            step(f"who held {ip} when")
            print(_indent(output.history_table(client.request("GET", f"/v1/ip-history/{ip}")[1]["items"])))
        if args.keep:
            step(f"controller keeps running (pid {proc.pid}); try: vpcnet --state-dir {state_dir} get pods -A")
            return 0
        step("done; stopping the controller")
        return 0
    finally:
        if not args.keep:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
