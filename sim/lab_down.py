"""``Lab.down()``: remove everything a lab made, from its state file or — when that is missing or
incomplete (a half-failed ``up``, a crash) — from the naming scheme and the run directory.

Order matters: first the processes that would react to disappearing things (leaf agents, node
daemons, NETCONF servers, the controller), then FRR (all instances in parallel), then the OVS
daemons, then the namespaces (deleting a namespace destroys its veths), then the root-namespace
guard routes — last, so no lab address is ever unguarded while something could still send to
it — and finally the FRR pathspace directories and the run directory.

Only processes this lab started are signalled: recorded PIDs whose kernel start time still
matches, and daemons found through their own pidfiles in the lab's directories whose command
line names the lab's path or pathspace. Nothing is ever looked up by process name.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from vpcnet.sim import frr, lab_net as net
from vpcnet.sim.kubelet import Sandbox
from vpcnet.sim.proc import process_tree


def _pidfile_proc(pidfile: Path, must_contain: str) -> dict | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    cmd = frr._proc_cmdline(pid)
    if not any(must_contain in a for a in cmd):
        return None
    return {"pid": pid, "start": net.proc_start_time(pid), "cmd": cmd[:3]}


def _ovs_dirs(lab) -> list[Path]:
    dirs = {Path(r["run_dir"]) for r in lab.state.get("ovs", {}).values()}
    if lab.run_dir.is_dir():
        dirs |= {p.parent for p in lab.run_dir.glob("*/ovs/*.pid")}
    return sorted(dirs)


def _recorded_procs(lab) -> dict[str, dict]:
    """Every process the lab recorded: the state file's, merged with RUN/pids/*.json."""
    procs = dict(lab.state.get("procs", {}))
    for f in sorted((lab.run_dir / "pids").glob("*.json")) if lab.run_dir.is_dir() else []:
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        procs.setdefault(rec.pop("key", f.stem), rec)
    return procs


def _netconf_procs(procs: dict[str, dict]) -> list[dict]:
    """The NETCONF servers' daemons (netconfd, sshd: recorded PIDs whose start time still matches)
    and their children (per-connection sshd, netconf-subsystem). NetconfLeafServer.stop() only
    knows the Popen objects of the process that started it, so a later `lab down` does this."""
    roots = [r["pid"] for k, r in procs.items() if k.startswith("netconf:") and net.proc_alive(r)]
    return [net.pid_record(pid) for pid in process_tree(roots)]


def _pod_del(lab, problems: list[str]) -> None:
    """CNI DEL for every lab pod while the node daemons still run (releases their addresses)."""
    for key, rec in list(lab.state.get("pods", {}).items()):
        node_rec = lab.state.get("procs", {}).get(f"node:{rec['node']}")
        if not net.proc_alive(node_rec):
            continue
        try:
            sb = Sandbox.from_dict({k: v for k, v in rec.items() if k != "node"})
            kubelet = lab.kubelet(lab.topo.node(rec["node"]))
            kubelet.timeout = 20
            kubelet.delete(sb)
        except Exception as exc:   # noqa: BLE001
            problems.append(f"pod {key}: CNI DEL failed: {exc}")


def _stop_vteps(lab, procs: dict[str, dict]) -> list[str]:
    """VTEP leaves (sim/lab_vtep.py): ovs-vtep, then the hardware_vtep ovsdb-servers; recorded
    PIDs, else their pidfiles in RUN/leafN/vtep (cmdline must name that directory). Their OVS
    bridges (ovs-vtep's per-switch bridges too) live in the leaf's private OVS, which goes below."""
    from vpcnet.sim.lab_vtep import stop_recorded
    vteps = {k: r for k, r in procs.items() if k.startswith("vtep:")}
    if lab.run_dir.is_dir():
        for d in lab.run_dir.glob("*/vtep"):
            for name, pidfile in (("ovs-vtep", "ovs-vtep.pid"), ("ovsdb-server", "vtep-ovsdb-server.pid")):
                rec = _pidfile_proc(d / pidfile, str(d))
                if rec:
                    vteps.setdefault(f"vtep:{d.parent.name}:{name}", rec)
    return stop_recorded(vteps) if vteps else []


def teardown(lab) -> list[str]:
    t0 = time.monotonic()
    problems: list[str] = []
    t = lab.topo
    log = lab.log
    log(f"lab {lab.name}: down ...")
    lab.state["phase"] = "stopping"
    if lab.state_file.exists():
        lab.save()

    procs = _recorded_procs(lab)
    lab.state["procs"] = procs
    _pod_del(lab, problems)
    agents = [r for k, r in procs.items() if k.startswith("agent:")]
    problems += net.stop_procs(agents, timeout=10)
    problems += net.stop_procs([r for k, r in procs.items() if k.startswith("node:")], timeout=15)
    problems += net.stop_procs(_netconf_procs(procs), timeout=10)
    problems += net.stop_procs([r for k, r in procs.items() if k == "controller"], timeout=20)
    problems += _stop_vteps(lab, procs)
    log(f"lab {lab.name}: processes stopped")

    pathspaces = set(t.frr_pathspaces()) | set(lab.state.get("frr", []))
    for base in (frr.FRR_ETC, frr.FRR_RUN):
        if base.is_dir():
            pathspaces |= {p.name for p in base.iterdir() if p.is_dir() and t.owns_netns(p.name)}
    problems += frr.stop_all([frr.FrrInstance(ps, ps) for ps in sorted(pathspaces)])
    log(f"lab {lab.name}: FRR stopped ({len(pathspaces)} instances)")

    ovs_procs = []
    for d in _ovs_dirs(lab):
        for name in ("ovs-vswitchd", "ovsdb-server"):
            rec = _pidfile_proc(d / f"{name}.pid", str(d))
            if rec:
                ovs_procs.append(rec)
    # vswitchd first (it holds the taps), then the databases
    problems += net.stop_procs([r for r in ovs_procs if "vswitchd" in " ".join(r["cmd"])], timeout=10)
    problems += net.stop_procs([r for r in ovs_procs if "vswitchd" not in " ".join(r["cmd"])], timeout=10)

    names = set(t.all_netns()) | {h["netns"] for h in lab.state.get("hosts", {}).values()} \
        | {p["netns"] for p in lab.state.get("pods", {}).values()}
    names |= {ns for ns in net.list_netns() if t.owns_netns(ns)}
    strays = _stray_procs(lab, names)
    if strays:
        log(f"lab {lab.name}: {len(strays)} process(es) no record named, found by namespace or run dir")
        problems += net.stop_procs(strays, timeout=10)
    for ns in sorted(names):
        if net.netns_exists(ns):
            net.delete_netns(ns)
    left = [ns for ns in names if net.netns_exists(ns)]
    if left:
        problems.append(f"namespaces not deleted: {', '.join(left)}")
    log(f"lab {lab.name}: namespaces deleted")

    metric = net.lab_metric(lab.name)
    routes = {(r["prefix"], r["metric"]) for r in lab.state.get("routes", [])}
    routes |= {(p, metric) for p in t.guarded_prefixes}
    routes |= set(_routes_with_metric(metric))
    for prefix, m in sorted(routes):
        net.del_guard(prefix, m)
    still = [p for p, m in routes if net.guard_present(p, m)]
    if still:
        problems.append(f"unreachable routes not removed: {', '.join(still)}")

    shutil.rmtree(lab.run_dir, ignore_errors=True)
    if lab.run_dir.exists():
        problems.append(f"run directory {lab.run_dir} not removed")
    for p in problems:
        log(f"  problem: {p}")
    log(f"lab {lab.name}: down in {time.monotonic() - t0:.2f} s")
    lab.state = lab._fresh_state()
    return problems


def _stray_procs(lab, namespaces) -> list[dict]:
    """Lab processes no record names: the run directory can vanish under a running lab (pytest
    prunes old temporary directories; someone deletes /run/vpcnet-lab/NAME), taking the state
    file and pidfiles along. What is left is still the lab's by construction: any process inside
    one of the lab's namespaces, and any process whose command line names the lab's private run
    directory (controller, node daemons, OVS, FRR and NETCONF daemons all do)."""
    pids: set[int] = set()
    for ns in namespaces:
        if net.netns_exists(ns):
            out = net.run("ip", "netns", "pids", ns, check=False)
            pids |= {int(x) for x in out.split() if x.isdigit()}
    run = str(lab.run_dir)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a == run or f"{run}/" in a or a.endswith(f"={run}") for a in args):
            pids.add(int(entry))
    pids -= _ancestors()      # never this `lab down`, nor the shell or `timeout` that runs it
    return [net.pid_record(pid) for pid in sorted(pids) if net.proc_alive(net.pid_record(pid))]


def _ancestors() -> set[int]:
    """This process and its parents up to init."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _routes_with_metric(metric: int) -> list[tuple[str, int]]:
    out = []
    for fam in ("-4", "-6"):
        text = net.run("ip", fam, "route", "show", "table", "main", "proto", net.ROUTE_PROTO, check=False)
        for line in text.splitlines():
            m = re.match(r"unreachable (\S+) .*metric (\d+)", line)
            if m and int(m.group(2)) == metric:
                prefix = m.group(1)
                if "/" not in prefix:
                    prefix += "/32" if fam == "-4" else "/128"
                out.append((prefix, metric))
    return out
