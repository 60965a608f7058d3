"""``vpcnet lab ...``: the lab's command line (wired into app/cli.py with ``add_lab_commands``).

    vpcnet lab up     [--name vl] [--run-dir DIR] [--leaves 2] [--nodes-per-leaf 2]
                      [--leaf-kind evpn|vtep] [--pod-prefix CIDR ...] [--keep-on-failure]
    vpcnet lab status [--name vl] [--run-dir DIR] [--json]
    vpcnet lab down   [--name vl] [--run-dir DIR]
    vpcnet lab demo   [--name vl] [--run-dir DIR] [--leaves 2] [--nodes-per-leaf 2]
    vpcnet lab exec   [--name vl] [--run-dir DIR] POD|HOST -- CMD...
    vpcnet lab pod add NAMESPACE/NAME [--node NODE]    (a pod sandbox through the node's vpcnet-cni)
    vpcnet lab pod del NAMESPACE/NAME
    vpcnet lab host add NAME --leaf N --vlan V [--address CIDR]   (a plain server on a leaf port)

The lab name defaults to $VPCNET_LAB or "vl", the run directory to /run/vpcnet-lab/<name>; give
the same --name/--run-dir to every command of one lab.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=os.environ.get("VPCNET_LAB", "vl"),
                   help="lab name: prefix of every namespace and FRR pathspace (default $VPCNET_LAB or vl)")
    p.add_argument("--run-dir", help="the lab's private run directory (default /run/vpcnet-lab/NAME)")


def add_lab_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``lab`` with its sub-commands to an argparse ``subparsers`` object; returns the parser."""
    lab = subparsers.add_parser("lab", help="a spine-leaf EVPN lab with nodes and a controller on this machine")
    sub = lab.add_subparsers(dest="lab_command", required=True)

    up = sub.add_parser("up", help="build the lab (unreachable guard routes first; prints progress)")
    _common(up)
    up.add_argument("--leaves", type=int, default=2)
    up.add_argument("--nodes-per-leaf", type=int, default=2)
    up.add_argument("--leaf-kind", choices=["evpn", "vtep"], default="evpn")
    up.add_argument("--pod-prefix", action="append", metavar="CIDR",
                    help="pod subnets to guard with unreachable routes in the root namespace (repeatable; "
                         "default: the examples' 10.10.0.0/24 10.20.0.0/24 10.30.0.0/24 fd00:30::/64)")
    up.add_argument("--keep-on-failure", action="store_true", help="leave a failed lab in place for debugging")
    up.set_defaults(func=cmd_up)

    st = sub.add_parser("status", help="processes, BGP sessions, VNIs, leaf agents, pods")
    _common(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    dn = sub.add_parser("down", help="remove everything the lab made (safe to repeat)")
    _common(dn)
    dn.set_defaults(func=cmd_down)

    ex = sub.add_parser("exec", help="run a command in a lab pod (NAMESPACE/NAME) or host (mgmt, spine, "
                                     "leafN, nN-K, a test host)")
    _common(ex)
    ex.add_argument("target")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    ex.set_defaults(func=cmd_exec)

    demo = sub.add_parser("demo", help="up a lab, apply the examples, sync the leaves, create pods through "
                                       "vpcnet-cni and print the connectivity matrix (the lab stays up)")
    _common(demo)
    demo.add_argument("--leaves", type=int, default=2)
    demo.add_argument("--nodes-per-leaf", type=int, default=2)
    demo.set_defaults(func=cmd_demo)

    pod = sub.add_parser("pod", help="pod sandboxes through the nodes' vpcnet-cni (like containerd)")
    psub = pod.add_subparsers(dest="pod_command", required=True)
    pa = psub.add_parser("add")
    _common(pa)
    pa.add_argument("pod", metavar="NAMESPACE/NAME")
    pa.add_argument("--node", help="lab node (nN-K or its full name; default: the least loaded)")
    pa.set_defaults(func=cmd_pod_add)
    pd = psub.add_parser("del")
    _common(pd)
    pd.add_argument("pod", metavar="NAMESPACE/NAME")
    pd.set_defaults(func=cmd_pod_del)

    host = sub.add_parser("host", help="plain servers on a leaf's access port")
    hsub = host.add_subparsers(dest="host_command", required=True)
    ha = hsub.add_parser("add")
    _common(ha)
    ha.add_argument("host")
    ha.add_argument("--leaf", required=True)
    ha.add_argument("--vlan", type=int, required=True)
    ha.add_argument("--address", help="CIDR, e.g. 10.10.0.200/24")
    ha.set_defaults(func=cmd_host_add)
    return lab


def _load(args):
    from vpcnet.sim.lab import Lab
    return Lab.load(args.name, args.run_dir)


def _errors(fn):
    def wrapper(args):
        from vpcnet.sim.kubelet import CniFailure
        from vpcnet.sim.lab_net import LabError
        from vpcnet.sim.topo import TopologyError
        try:
            return fn(args)
        except (LabError, TopologyError, NotImplementedError, CniFailure) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return wrapper


@_errors
def cmd_demo(args) -> int:
    from vpcnet.sim.demo import run_lab_demo
    return run_lab_demo(args.name, args.run_dir, args.leaves, args.nodes_per_leaf,
                        log=lambda line: print(line, flush=True))


@_errors
def cmd_up(args) -> int:
    from vpcnet.sim.lab import Lab
    from vpcnet.sim import topo
    lab = Lab(args.name, args.run_dir, args.leaves, args.nodes_per_leaf, args.leaf_kind,
              tuple(args.pod_prefix) if args.pod_prefix else topo.DEFAULT_POD_PREFIXES,
              log=lambda line: print(line, flush=True))
    lab.up(keep_on_failure=args.keep_on_failure)
    print(f"controller API: {lab.api}   (vpcnet --api {lab.api} get nodes)")
    return 0


@_errors
def cmd_down(args) -> int:
    from vpcnet.sim.lab import Lab, LabNotFound
    log = lambda line: print(line, flush=True)  # noqa: E731
    try:
        lab = Lab.load(args.name, args.run_dir, log=log)
    except LabNotFound:
        print(f"lab {args.name}: no state file; removing what its naming scheme finds")
        lab = Lab(args.name, args.run_dir, log=log)
    return 1 if lab.down() else 0


@_errors
def cmd_status(args) -> int:
    s = _load(args).status()
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    print(f"lab {s['name']} ({s['leaf_kind']}, {s['leaves']} leaves x {s['nodes_per_leaf']} nodes): "
          f"{s['phase']}   run dir {s['run_dir']}")
    if s.get("error"):
        print(f"  error: {s['error']}")
    ctl = s.get("controller") or {}
    print(f"  controller: api {ctl.get('api')}  metrics {ctl.get('metrics')}")
    missing = [ns for ns, ok in s["netns"].items() if not ok]
    print(f"  namespaces: {len(s['netns']) - len(missing)}/{len(s['netns'])}"
          + (f" (missing {', '.join(missing)})" if missing else ""))
    for name, p in s["processes"].items():
        print(f"  {name:<22} pid {p['pid']:<8} {'running' if p['alive'] else 'DEAD'}")
    for ns, daemons in s["ovs"].items():
        dead = [d for d, ok in daemons.items() if not ok]
        print(f"  ovs {ns:<18} {'running' if not dead else 'DEAD: ' + ', '.join(dead)}")
    for ps, f in s["frr"].items():
        bgp = ", ".join(f"{peer} {state}" for peer, state in f.get("bgp", {}).items()) or "-"
        vnis = f.get("vnis")
        vtext = ""
        if isinstance(vnis, dict):
            vtext = "  VNIs " + (", ".join(f"{k} (macs {v['macs']}, remote VTEPs {v['remoteVteps']})"
                                           for k, v in vnis.items()) or "none")
        print(f"  frr {ps:<18} {'+'.join(f['daemons']) or 'NOT RUNNING'}  BGP {bgp}{vtext}")
    for leaf, a in s["agents"].items():
        if a is None:
            print(f"  agent {leaf:<16} no status")
        else:
            applied = a.get("applied") or {}
            vnis = ", ".join(f"{m['vlan']}->{m['vni']}" for m in applied.get("mac_vrfs", []))
            print(f"  agent {leaf:<16} {a.get('state')} gen {a.get('generation')}  mac-vrfs {vnis or '-'}"
                  + (f"  error: {a['last_error']}" if a.get("last_error") else ""))
            for n in applied.get("not_realised", []):
                print(f"      {n}")
    bad = [r["prefix"] for r in s["guard_routes"] if not r["present"]]
    print(f"  guard routes: {len(s['guard_routes'])}" + (f" (MISSING {', '.join(bad)})" if bad else " present"))
    for name, h in s["hosts"].items():
        print(f"  host {name}: {h['leaf']} vlan {h['vlan']} {h.get('address') or ''} {h.get('mac', '')}")
    for key, p in s["pods"].items():
        print(f"  pod {key}: {p['node']} {', '.join(p['ips'])}")
    if s["timings"]:
        print("  timings: " + ", ".join(f"{k} {v}" for k, v in s["timings"].items() if k != "frr_started_at"))
    for w in s["warnings"]:
        print(f"  warning: {w}")
    return 0


@_errors
def cmd_exec(args) -> int:
    cmd = list(args.cmd)
    if "--" in cmd:   # REMAINDER also swallows options given after POD: `exec POD --name x -- CMD`
        i = cmd.index("--")
        pre, cmd = cmd[:i], cmd[i + 1:]
        p = argparse.ArgumentParser(prog="vpcnet lab exec")
        _common(p)
        opts = p.parse_args(pre, namespace=argparse.Namespace(name=args.name, run_dir=args.run_dir))
        args.name, args.run_dir = opts.name, opts.run_dir
    if not cmd:
        print("error: give a command after --", file=sys.stderr)
        return 2
    return _load(args).exec(args.target, cmd, capture=False, timeout=None).returncode


@_errors
def cmd_pod_add(args) -> int:
    ns, _, name = args.pod.partition("/")
    if not ns or not name:
        print("error: pod is NAMESPACE/NAME", file=sys.stderr)
        return 2
    rec = _load(args).add_pod(ns, name, args.node)
    ips = ", ".join(ip["address"] for ip in rec["result"].get("ips", []))
    print(f"pod {args.pod} on {rec['node']}: {ips} (netns {rec['netns']})")
    return 0


@_errors
def cmd_pod_del(args) -> int:
    ns, _, name = args.pod.partition("/")
    _load(args).del_pod(ns, name)
    print(f"pod {args.pod} deleted")
    return 0


@_errors
def cmd_host_add(args) -> int:
    h = _load(args).add_host(args.host, args.leaf, args.vlan, args.address)
    print(f"host {args.host}: {h['leaf']} port {h['port']} vlan {h['vlan']} {h.get('address') or ''} {h['mac']}")
    return 0


def main(argv=None) -> int:
    """Standalone entry (``python -m vpcnet.sim.cli lab ...``) until app/cli.py wires it in."""
    p = argparse.ArgumentParser(prog="vpcnet")
    add_lab_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
