"""Security policy benchmark (printed figures, not a test): policy flows and compile times at scale.

Also the time from a policy change to enforcement on every node, with the real controller and OVS.

Part 1, ``compile`` (pure compiler, in process). Synthetic model (defaults: 20 nodes, 1,000 pods,
500 NetworkPolicies, 10 SecurityGroups, 25 namespaces, one VPC of 4 subnets):

* namespaces: ``kube-system`` (kube-dns pods, named ports ``dns``/``dns-tcp``), ``monitoring``
  (``purpose=monitoring``, prometheus pods), ``ingress-nginx``; the others are application
  namespaces ``team-XX`` labelled ``team``, ``env`` (prod/staging/dev) and, one in four,
  ``compliance=pci``. Application pods have a role label ``app`` (web 25 %, api 30 %, worker
  20 %, cache 10 %, db 15 %), ``tier``, ``version``, and the role's named container ports
  (``http`` is 8080 on web pods but 8000 on api pods, so named ports resolve differently per
  target); api pods carry the SecurityGroup annotation ``app-tier``, db pods ``db-guard``.
  Pods are spread uniformly at random (seeded) over the nodes, round-robin over the subnets
  (subnet 1 dual stack), every pod wired.
* NetworkPolicies, dealt round-robin over the application namespaces: every namespace gets a
  default deny of ingress (prod ones: of egress too, plus the DNS egress allow); the rest are
  drawn (seeded) from templates seen in real clusters: role-to-role allows on named or numeric
  ports, allow from the ingress controller's namespace (namespaceSelector by
  ``kubernetes.io/metadata.name``), allow metrics scraping (namespaceSelector AND podSelector,
  named port ``metrics``), cross-namespace allows by ``team``/``env`` with ``endPort`` ranges,
  egress to the internet (ipBlock ``0.0.0.0/0`` with ``except`` of the private ranges),
  egress to a partner range (ipBlock with except, ``endPort`` range), egress to db pods by
  named port (resolved on the peer), NodePort-range ingress from ``10.0.0.0/8`` minus a /16,
  UDP port ranges from ``env In (prod, staging)`` namespaces (matchExpressions), SCTP.
* SecurityGroups: ``baseline`` (every application namespace: deny telnet/SMTP, allow SSH from
  a bastion CIDR), ``app-tier`` and ``db-guard`` (annotated pods: Postgres only from app-tier,
  deny it from anyone else), ``pci`` (pci namespaces, allowSameGroup, deny from a namespace),
  then seeded random groups (2-5 rules: remote CIDR / group / namespace / any, allow or deny).

Figures: flows per node (policy owner: mean/max; all owners: mean/max), the naive cross-product
count (``policy.naive_flow_count``: per conjunction piece, local targets x peer matches x port
matches) beside it and the ratio; conjunction pieces per direction (OVS conj_id slots per VPC
and table: 65,535); the cold ``compile_node`` of every node (total, the part spent in the cyclic
GC, per node p50/max; the first node also builds the VPC's policy, ``vpc_policy``, once per
cluster value); then, median of ``--repeat``, the incremental cost of
* one NetworkPolicy change (one port added to one rule): ``cluster.with_security(...)`` +
  ``owners_affected`` + ``compile_owner`` of the policy owner on every node, with the flows that
  change per node (what the reconciler sends), and its peer: ``compile_node`` on every node of
  the new value (checked equal to the incremental result);
* one pod label change (``app`` moved to another role: it leaves and joins selectors):
  ``cluster.with_pod`` + ``owners_affected`` + ``compile_owner`` (the pod's owner everywhere, its
  subnet on its node, the policy owner on every node), with the same peer and check.
``vpc_policy`` is called explicitly before the compile_owner calls (they would build it anyway) so
that its share shows. GC: Python's default thresholds, as in the controller process (nothing is
``gc.freeze()``-d); ``--gc-threshold`` to compare.

Part 2, ``enforce`` (real controller process, real ovs-vswitchd with the dummy datapath per node:
the tests/functional/brint.py harness, imported from the repository checkout). ``--fabric-nodes``
(4) nodes, each with a client pod (``app=client``), a server pod (``app=server``, named port
``http`` = 8080) and a spare pod (SecurityGroup ``bench-baseline``: telnet denied), in namespace
``bench``, plus one ``app=client`` pod in namespace ``other``; base policies: a default deny of
ingress for the server pods, metrics only from a monitoring namespace, egress of the spare pods
only outside 10/8. Probe: TCP SYN from the node's client to the node's server on 8080, traced with
``ofproto/trace --ct-next trk,new`` (conntrack answers "new connection"); verdict = whether the
server's datapath port is among the final datapath actions (drop: no output at all). The whole
verdict matrix is checked on every node first (named port, wrong port, SecurityGroup deny, egress
ipBlock/except and endPort, a cross-node packet judged by the receiver as it comes in from the
uplink, the same podSelector from another namespace), without, with and again without the
NetworkPolicy ``allow-client-http``; a wrong verdict is printed and nothing is timed (exit 1).
Then ``--changes`` (10) changes alternate: apply ``allow-client-http`` through the API
(drop -> allow), delete it (allow -> drop). Per change: time from just before the API call until
ofproto/trace on EVERY node shows the new verdict. Traces go straight to each ovs-vswitchd's
unixctl socket (JSON-RPC, ~0.5 ms a trace, no ovs-appctl process); nodes are polled round-robin
(rotating), sleeping ``--poll-sleep`` (2 ms) or 1 % of the time elapsed, the longer, between
rounds (so the polling never takes much CPU from the controller on a small machine). A node's
time is when its first trace showing the new verdict returned (an upper bound; the trace before
it, which still showed the old verdict, started earlier by the printed "resolution"). Peers in
the same run: the same measurement for a pod add that changes no policy verdict (a pod nobody
selects, in another subnet, created through the API and its port added to its bridge; done when
every node routes the client's SYN to it), and the controller's own figures per change from its
/metrics: the incremental reconcile time per node (``vpcnet_reconcile_duration_seconds``,
kind=incremental: compile excluded, flow-mod bundle included) and the flow-mods sent.
``--fabric-background PODS,POLICIES`` also loads the part 1 model (its namespaces, pods with
labels/named ports/SecurityGroup annotations, NetworkPolicies and SecurityGroups; one subnet) into
the fabric's VPC, so that the same changes are timed with a realistic policy load; the probe
verdicts are unaffected by it (checked all the same).

Code: this module is the entry point and part 1; part 2 lives in bench/policy_enforce_bench.py, the
synthetic model (part 1, and part 2's ``--fabric-background``) in bench/policy_model.py.

Run:   .venv/bin/python -m vpcnet.bench.policy_bench [--part compile|enforce|all] [--nodes 20 --pods 1000
       --policies 500 --security-groups 10 --namespaces 25 --repeat 5] [--fabric-nodes 4 --changes 10
       --pod-adds 4] [--fabric-background 1000,500]
Smoke: .venv/bin/python -m vpcnet.bench.policy_bench --smoke [--part compile|enforce]
       (tests/unit/flows/test_policy_bench_smoke.py, tests/functional/test_policy_bench_enforce.py)
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import random
import resource
import statistics
import sys
import time

from vpcnet.bench.compile_bench import GcTimer
from vpcnet.bench.policy_enforce_bench import run_enforce
from vpcnet.bench.policy_model import CONJ_SLOTS, ROLES, SPECIAL, VPC, Model, ms
from vpcnet.flows import Change, ClusterIn, NpPortIn, compile_node, compile_owner, owners_affected
from vpcnet.flows import policy
from vpcnet.flows.compile import clear_caches


# --- part 1: compile -------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]



def _policy_of(result: dict) -> frozenset:
    return result.get(f"policy/{VPC}", frozenset())


GC = None   # GcTimer while run_compile runs


def incremental(before: ClusterIn, after: ClusterIn, owner: str) -> tuple[dict, dict]:
    """owners_affected + compile_owner for every affected owner on every affected node (the
    reconciler's path). The VPC's policy (``policy.vpc_policy``, memoised per cluster value) is
    built first, explicitly, so that its share shows; compile_owner would build it anyway.
    Returns ({(node, owner): flows}, {phase: seconds})."""
    t0 = time.perf_counter()
    affected = owners_affected(Change(before, after, owner))
    t1 = time.perf_counter()
    policy.vpc_policy(after, VPC)
    t2 = time.perf_counter()
    out = {}
    per_node = []
    for node, owners in affected.items():
        tn = time.perf_counter()
        for o in owners:
            out[(node, o)] = compile_owner(after, node, o)
        per_node.append(time.perf_counter() - tn)
    t3 = time.perf_counter()
    return out, dict(affected=t1 - t0, vpc_policy=t2 - t1, compile_owner=t3 - t2, node_p50=pct(per_node, 0.5),
                     node_max=max(per_node))


def print_phases(inc: list[float], phases: list[dict], new: str, owners: int) -> None:
    med = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
    print(f"  incremental: {ms(statistics.median(inc))} wall (max {ms(max(inc))}), {ms(med['cpu'])} CPU = {new} "
          f"{med['new'] * 1e3:.2f} ms + owners_affected {med['affected'] * 1e3:.2f} ms + vpc_policy (once per value) "
          f"{ms(med['vpc_policy'])} + compile_owner x{owners} {ms(med['compile_owner'])} (per node p50 "
          f"{ms(med['node_p50'])}, max {ms(med['node_max'])})")
    print(f"    of which cyclic GC: {ms(med['gc'])} in "
          f"{med['full']:.0f} full collections")


def peer_check(after: ClusterIn, out: dict) -> float:
    """compile_node on every affected node of ``after``; the incremental result must agree."""
    nodes = list(dict.fromkeys(n for n, _ in out))
    t0 = time.perf_counter()
    full = {n: compile_node(after, n) for n in nodes}
    t = time.perf_counter() - t0
    for (n, o), flows in out.items():
        assert full[n].get(o, frozenset()) == flows, f"incremental {o} on {n} differs from compile_node"
    return t


def run_compile(args) -> int:
    global GC
    GC = GcTimer()
    old = gc.get_threshold()
    if args.gc_threshold:
        gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
    try:
        return _run_compile(args)
    finally:
        gc.set_threshold(*old)
        GC.close()
        GC = None


def _run_compile(args) -> int:
    print(f"policy_bench compile: {args.nodes} nodes, {args.pods} pods, {args.policies} NetworkPolicies, "
          f"{args.security_groups} SecurityGroups, {args.namespaces} namespaces, {args.subnets} subnets, 1 VPC; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"gc thresholds {gc.get_threshold()}")
    t0 = time.perf_counter()
    model = Model(args.nodes, args.pods, args.policies, args.security_groups, args.namespaces, args.subnets,
                  args.seed)
    cluster = model.cluster()
    print(f"model + ClusterIn built: {ms(time.perf_counter() - t0)}")
    kinds: dict[str, int] = {}
    for np in model.policies:
        k = model.template.get(np.key, np.name)
        kinds[k] = kinds.get(k, 0) + 1
    print("  NetworkPolicies by template: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(f"  SecurityGroups: {len(model.security_groups)} with {sum(len(g.rules) for g in model.security_groups)} "
          f"rules; pods per node: mean {args.pods / args.nodes:.0f}")

    clear_caches()
    gc.collect()
    per_node, pol_flows, all_flows, naive, before_policy = [], [], [], [], {}
    gc0 = GC.snapshot()
    c0 = time.process_time()
    t_all = time.perf_counter()
    for nd in cluster.nodes:
        t0 = time.perf_counter()
        result = compile_node(cluster, nd.name)
        per_node.append(time.perf_counter() - t0)
        before_policy[nd.name] = _policy_of(result)
        pol_flows.append(len(before_policy[nd.name]))
        all_flows.append(sum(len(f) for f in result.values()))
        del result
    total = time.perf_counter() - t_all
    cpu = time.process_time() - c0
    gc1 = GC.snapshot()
    for nd in cluster.nodes:
        naive.append(policy.naive_flow_count(cluster, nd.name, VPC))
    pol = policy.vpc_policy(cluster, VPC)
    pieces = {d: len(pol.pieces[d]) for d in policy.DIRECTIONS}
    isolated = {d: len(pol.isolated[d]) for d in policy.DIRECTIONS}
    print(f"conjunction pieces: egress {pieces['egress']}, ingress {pieces['ingress']} (conj_id slots per VPC and "
          f"table: {CONJ_SLOTS}); pods isolated: egress {isolated['egress']}, ingress {isolated['ingress']}")
    print(f"flows per node: policy owner mean {statistics.mean(pol_flows):.0f}, max {max(pol_flows)}; "
          f"all owners mean {statistics.mean(all_flows):.0f}, max {max(all_flows)}")
    ratio = [n / p for n, p in zip(naive, pol_flows) if p]
    print(f"  naive cross-product (policy.naive_flow_count) per node: mean {statistics.mean(naive):.0f}, "
          f"max {max(naive)}; naive / policy flows: mean x{statistics.mean(ratio):.1f}, "
          f"min x{min(ratio):.1f}, max x{max(ratio):.1f}")
    print(f"compile_node on all {len(per_node)} nodes (cold caches): {total * 1e3:.1f} ms wall, "
          f"{cpu * 1e3:.1f} ms CPU, of which cyclic GC {ms(gc1[0] - gc0[0])} in {gc1[1] - gc0[1]} full collections")
    print(f"  per node: first {ms(per_node[0])} (builds vpc_policy for the VPC), then p50 "
          f"{ms(pct(per_node[1:] or per_node, 0.5))}, max {ms(max(per_node[1:] or per_node))}")

    def timed_change(make_after, owner: str, inc: list, phases: list, diffs: list, peer: list) -> int:
        """Time one change (the new value, then the incremental recompile), append its figures,
        check it against compile_node; returns how many (node, owner) pairs it recompiled."""
        gc.collect()
        gc0 = GC.snapshot()
        c0 = time.process_time()
        t0 = time.perf_counter()
        after = make_after()
        t1 = time.perf_counter()
        out, ph = incremental(cluster, after, owner)
        inc.append(time.perf_counter() - t0)
        cpu = time.process_time() - c0
        gc1 = GC.snapshot()
        phases.append(dict(ph, new=t1 - t0, cpu=cpu, gc=gc1[0] - gc0[0], full=gc1[1] - gc0[1]))
        diffs.append(sum(len(f ^ before_policy[n]) for (n, o), f in out.items() if o == f"policy/{VPC}"))
        peer.append(peer_check(after, out))
        return len(out)

    # --- one NetworkPolicy change ---
    rng = random.Random(args.seed + 1)
    candidates = [i for i, np in enumerate(cluster.network_policies) if np.ingress and np.ingress[0].ports]
    inc, phases, peer, diffs = [], [], [], []
    for r in range(args.repeat):
        i = rng.choice(candidates)
        old = cluster.network_policies[i]
        rule = old.ingress[0]
        new_rule = dataclasses.replace(rule, ports=rule.ports + (NpPortIn("TCP", 40000 + r),))
        new = dataclasses.replace(old, ingress=(new_rule,) + old.ingress[1:])
        nps = cluster.network_policies[:i] + (new,) + cluster.network_policies[i + 1:]
        owners = timed_change(lambda: cluster.with_security(network_policies=nps),
                              f"policy/np/{new.namespace}/{new.name}", inc, phases, diffs, peer)
    t_inc = statistics.median(inc)
    print(f"one NetworkPolicy change (a port added to one rule), median of {len(inc)}; {owners} owners on "
          f"{args.nodes} nodes:")
    print_phases(inc, phases, "with_security", owners)
    print(f"  flows changed (added + deleted) on all nodes together: median {statistics.median(diffs):.0f} "
          f"(of {sum(pol_flows)} policy flows)")
    print(f"  peer, compile_node on every node of the new value: {ms(statistics.median(peer))} "
          f"(x{statistics.median(peer) / t_inc:.1f} the incremental change); results agree")

    # --- one pod label change ---
    apps = [p for p in cluster.pods if dict(p.labels).get("app") in ROLES]
    inc, phases, peer, diffs = [], [], [], []
    for r in range(args.repeat):
        pod = rng.choice(apps)
        labels = dict(pod.labels)
        labels["app"] = rng.choice([x for x in ROLES if x != labels["app"]])
        new = dataclasses.replace(pod, labels=tuple(sorted(labels.items())))
        owners = timed_change(lambda: cluster.with_pod(new), pod.owner, inc, phases, diffs, peer)
    t_inc = statistics.median(inc)
    print(f"one pod label change (app moved to another role), median of {len(inc)}; {owners} owners on "
          f"{args.nodes} nodes:")
    print_phases(inc, phases, "with_pod", owners)
    print(f"  policy flows changed (added + deleted) on all nodes together: median {statistics.median(diffs):.0f}")
    print(f"  peer, compile_node on every node of the new value: {ms(statistics.median(peer))} "
          f"(x{statistics.median(peer) / t_inc:.1f} the incremental change); results agree")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; load average "
          f"{os.getloadavg()[0]:.2f} (wall times include CPU taken by other processes)")
    return 0



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("compile", "enforce", "all"), default="all")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (sizes given explicitly still win)")
    g = ap.add_argument_group("part 1, compile")
    g.add_argument("--nodes", type=int)
    g.add_argument("--pods", type=int)
    g.add_argument("--policies", type=int, help="NetworkPolicies")
    g.add_argument("--security-groups", type=int)
    g.add_argument("--namespaces", type=int, help=f"namespaces, {len(SPECIAL)} of them system ones")
    g.add_argument("--subnets", type=int)
    g.add_argument("--repeat", type=int, help="incremental changes timed (median reported)")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--gc-threshold", metavar="G0,G1,G2", help="gc.set_threshold for part 1 (default: Python's, "
                   "as in the controller)")
    g = ap.add_argument_group("part 2, enforce")
    g.add_argument("--fabric-nodes", type=int)
    g.add_argument("--changes", type=int, help="policy changes timed (alternately apply and delete)")
    g.add_argument("--pod-adds", type=int, help="peer: pod adds timed")
    g.add_argument("--fabric-background", metavar="PODS,POLICIES",
                   help="also load the part 1 model with this many pods and NetworkPolicies into the fabric "
                        "(its --security-groups and --namespaces), e.g. 1000,500")
    g.add_argument("--poll-sleep", type=float, default=0.002, help="seconds between poll rounds")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one change")
    g.add_argument("--settle", type=float, default=0.5, help="seconds between changes")
    g.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args(argv)
    defaults = dict(nodes=20, pods=1000, policies=500, security_groups=10, namespaces=25, subnets=4, repeat=5,
                    fabric_nodes=4, changes=10, pod_adds=4)
    smoke = dict(nodes=3, pods=90, policies=40, security_groups=5, namespaces=6, subnets=2, repeat=2,
                 fabric_nodes=2, changes=2, pod_adds=1)
    for k, v in (smoke if args.smoke else defaults).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    rc = 0
    if args.part in ("compile", "all"):
        rc |= run_compile(args)
    if args.part in ("enforce", "all"):
        rc |= run_enforce(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
