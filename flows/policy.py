"""Security policy flows (owner "policy/<vpc>"): SecurityGroups and Kubernetes NetworkPolicy.

DESIGN NOTE
===========
Where: ``egress_policy`` (30) judges what a local pod sends (target = ``in_port``), before
routing; ``ingress_policy`` (60) judges what a local pod receives (target = ``reg3``, the port
l2_fwd chose), on the receiver's node. Packets for the uplink are judged by the remote node.
Every policy flow matches ``reg1 = VPC_ID``: one owner per VPC, and overlapping CIDRs of other
VPCs never match (isolation between VPCs is structural: no route, no L2 and no conntrack zone
is shared; peering is not built yet).

Order (one table per direction, first match by OpenFlow priority, "banded"):

  65000  +trk+rpl with ct_mark POLICY=REVOKED          drop (replies of revoked connections)
  64990  +trk+rel with ct_mark POLICY=REVOKED          drop
  64010  +trk+est+rpl                                  accept (replies are never re-judged)
  64000  +trk+rel / -trk (ARP, ND: not tracked)        accept
  48000..50001  SECURITY GROUP band: OF priority = 50000 - 2 * sg_priority (+1 for deny);
         sg_priority 1..1000, lower first; ``allowSameGroup`` is sg_priority 0 (before every
         rule). At equal sg_priority deny wins. The first matching SG rule is FINAL: allow
         accepts without consulting NetworkPolicy, deny drops. (The Kubernetes
         AdminNetworkPolicy model: the cluster security team's layer above the namespace
         owners'.) No matching SG rule: fall through to NetworkPolicy.
  30000  NETWORKPOLICY allow (every NP rule of every policy: allows are a union)
  29000  NETWORKPOLICY default deny: a pod selected by a policy of that policyType
      0  miss: accept (no SG rule, not isolated by NetworkPolicy)

Stateful: ct_state (21) already dropped +inv. Original-direction packets (+new AND +est-rpl)
are judged on every packet (a VPC with ``strictRevocation: false``, VpcIn.strict_revocation,
accepts every +est packet at 64010 instead: rule changes then only affect new connections), so removing a rule or adding a deny stops the next packet of an
open connection (strict revocation without a controller round trip); a deny of a +est
packet also commits ct_mark POLICY=REVOKED so the replies stop too (Neutron's ct_mark=1, OVN's
ct_label.blocked). A connection allowed again un-revokes itself in ct_commit (310). New
connections are committed in ct_commit (300) with the admitting rule ids:
ct_label[0..31] = ingress rule (reg5), ct_label[32..63] = egress rule (reg4); 0 = no policy.

Conjunctions: a rule is split into *pieces* (one per distinct resolution of named ports); a
piece is ``conjunction(id, k/n)`` over up to three clauses, each a set of flows:
  1 target  egress ``reg1,in_port=<pod>`` / ingress ``reg1,reg3=<pod>`` (local pods only)
  2 peer    ``ip,reg1,nw_src|nw_dst=<cidr>`` (ipv6 alike): pod IPs and ipBlocks, merged into
            a minimal CIDR set (ipBlock ``except`` subtracted);      omitted when "any peer"
  3 port    ``tcp|udp|sctp,reg1,tp_dst=<value/mask>`` (ranges as prefixes), ``icmp``/
            ``icmp6``, for IPv4 and IPv6;                             omitted when "any port"
and one ``conj_id=<id>`` flow holding the verdict (allow: load the rule id into reg4/reg5,
continue; deny: drop, split by ct_state -est/+est for revocation). A piece with only the
target clause is a plain flow per target. Flows of different pieces with the same
(priority, match) share one flow with several conjunction actions, so the flow count grows
with pods + peers + ports + rules, not pods x rules. Pieces at one priority always share one
verdict, so it does not matter which of several completed conjunctions OVS picks (a plain
flow wins a tie with conjunctions in OVS's classifier; it has the same verdict too).

conj_id = vpc_id << 16 | slot, slot = hash of the piece key (linear probing in key order):
unique per table across VPC owners and stable while the piece exists. Rule id (reg4/reg5,
ct_label, later counters/logs) = 32-bit blake2b of the rule key: ``np/<ns>/<name>/<dir>/<i>``,
``sg/<group>/<rule id>``, ``sg/<group>/same-group/<dir>``.

NetworkPolicy semantics (upstream networking.k8s.io/v1): a pod is isolated for a direction
when a policy of its namespace selects it and lists that policyType; only the rules of listed
types count. A rule matches when a peer matches (none listed: every peer) and a port matches
(none listed: every port and protocol, ICMP included). Peers: podSelector (the policy's
namespace), namespaceSelector (namespaces with ``kubernetes.io/metadata.name`` set as the API
server does), both (AND), ipBlock minus except (matched against any address, pod IPs too).
Named ports resolve on the destination pod (ingress: the target; egress: the peer, also when
an ipBlock reached it; a non-pod address never matches a named port). endPort is inclusive.
SCTP is supported.

SecurityGroup semantics: members are the pods of ``namespaces`` plus pods annotated with the
group; a rule applies to every member in its direction; remote = CIDR, members of another
group, pods of a namespace, or (none) every peer. References to unknown groups or namespaces
select nothing (objects arrive in any order; the app should warn).

VPC peering (``ClusterIn.peers_of``: both VPCs list each other, address spaces disjoint):
subnet.py routes a pod's packet into a peer's subnet, rewriting VPC_ID to the peer and setting
PEER_SRC_VPC. No packet crosses unless a rule in *both* VPCs allows it: the owner ``policy/<vpc>``
exists wherever a peered VPC is present, even without any policy object, and holds
  20001  ingress: target = the uplink -> pass (ingress verdicts are the receiving node's)
  20000  PEERING DENY: egress ``FROM_POD, nw_dst=<peer CIDR>``, ingress ``nw_src=<peer CIDR>``
         (below every SG and NetworkPolicy verdict: an SG rule with that remote CIDR, or a
         NetworkPolicy ipBlock, allows; rule keys ``peering/<vpc>/<peer>/<dir>``)
    320  ct_commit: a new connection routed in from peer P is committed in P's zone as well as
         this VPC's (with the rule ids), so replies find it in whichever zone they are tracked:
         a reply leaving a pod of this VPC is tracked in this VPC's zone, and one arriving from
         the fabric on the client's node in P's zone.
NetworkPolicy pod and namespace selectors select pods of the policy's own VPC only (ipBlock is
the way to name a peer's addresses; a named port is never resolved on a peer's pod).

Audit: ``verdict_rules`` names the rule of every deciding flow (per-rule counters) and deny
verdicts of new connections log through a meter (app/policy_audit.py).

Not here yet: finer owners (today a policy or a pod label change recompiles the policy owner
of the VPC on every node where the VPC is present).
"""
from __future__ import annotations

import hashlib
import struct
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import netaddr

from .fields import (
    CT_MARK_POLICY, CT_POLICY_REVOKED, FROM_POD, PEER_SRC_VPC,
    POLICY_EGRESS_RULE, POLICY_INGRESS_RULE, TARGET_OFPORT, VPC_ID, vpc_ct_zone,
)
from .inputs import ClusterIn, PodIn
from .policy_inputs import NetworkPolicyIn, NpRuleIn, SecurityGroupIn
from .model import (
    DROP, ICMP, ICMP6, IP, IPV6, SCTP, SCTP6, TCP, TCP6, UDP, UDP6, Conjunction, Controller, Ct, Flow, Goto,
    Load, Match,
)
from .pipeline import PIPELINE
from .base import COMMIT_LABELS

P_REVOKED_REPLY = 65000
P_REVOKED_REL = 64990
P_REPLY = 64010
P_PASS = 64000
P_SG_BASE = 50000          # sg priority p -> P_SG_BASE - 2p (allow), +1 (deny); p = 0: allowSameGroup
P_NP_ALLOW = 30000
P_NP_DENY = 29000
P_PEER_UPLINK = 20001
P_PEER_DENY = 20000
P_PEER_COMMIT = 320
LOG_METER_ID = 1          # datapath meter limiting the deny log's packet-ins (installed per bridge)
LOG_USERDATA = struct.Struct("!IHB")   # deny-log userdata: rule id, VPC id, direction (DIRECTIONS index)
LOG_MAX_LEN = 128         # bytes of a denied packet sent to the controller: headers for the 5-tuple
P_COMMIT = 300             # ct_commit: new connections, with the rule ids (vpc.py's plain commit is 200)
P_UNREVOKE = 310

DIRECTIONS = ("egress", "ingress")
TABLE = {"egress": "egress_policy", "ingress": "ingress_policy"}
NEXT = {"egress": "l3_fwd", "ingress": "ct_commit"}
RULE_REG = {"egress": POLICY_EGRESS_RULE, "ingress": POLICY_INGRESS_RULE}
_PROTOS = {"tcp": (TCP, TCP6), "udp": (UDP, UDP6), "sctp": (SCTP, SCTP6), "icmp": (ICMP, ICMP6)}


def sg_priority(sg_prio: int, allow: bool) -> int:
    return P_SG_BASE - 2 * sg_prio + (0 if allow else 1)


def rule_id(rule_key: str) -> int:
    """Stable nonzero 32-bit id of a rule (reg4/reg5, ct_label)."""
    v = int.from_bytes(hashlib.blake2b(rule_key.encode(), digest_size=4).digest(), "big")
    return v or 1


@dataclass(frozen=True)
class Piece:
    """One conjunction: targets x peers x ports with one verdict at one priority."""

    key: str                              # unique in the VPC and direction
    rule: str                             # the rule key (audit identity)
    direction: str
    priority: int
    allow: bool
    targets: tuple[PodIn, ...]            # cluster-wide; the node keeps its local ones
    peers: tuple[str, ...] | None         # canonical CIDRs/addresses; None = any peer
    ports: tuple[tuple, ...] | None       # (proto, lo, hi) with lo/hi None = all; None = any


# --- semantics: who, which peers, which ports -------------------------------------------------
def _pods_of_vpc(cluster: ClusterIn, vpc: str) -> list[PodIn]:
    return [p for p in cluster.pods if p.vpc == vpc]


def _cidrs(addresses) -> tuple[str, ...]:
    """The minimal sorted CIDR cover of ``addresses`` (address strings or netaddr networks)."""
    ranges = []
    for a in addresses:
        if isinstance(a, str):
            v, x = _ip_int(a)
            ranges.append((v, x, x))
        else:
            ranges.append((a.version, a.first, a.last))
    ranges.sort()
    out: list[str] = []
    cur = None
    for v, lo, hi in ranges + [(None, 0, 0)]:
        if cur is not None and v == cur[0] and lo <= cur[2] + 1:
            cur = (v, cur[1], max(cur[2], hi))
            continue
        if cur is not None:
            out += _range_cidrs(*cur)
        cur = (v, lo, hi)
    return tuple(out)


def _range_cidrs(version: int, lo: int, hi: int) -> list[str]:
    bits = 32 if version == 4 else 128
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << bits
        while size > hi - lo + 1:
            size >>= 1
        plen = bits - size.bit_length() + 1
        addr = str(netaddr.IPAddress(lo, version))
        out.append(addr if plen == bits else f"{addr}/{plen}")
        lo += size
    return out


@lru_cache(maxsize=1 << 16)
def _ip_int(ip: str) -> tuple[int, int]:
    a = netaddr.IPAddress(ip)
    return a.version, int(a)


def _in_ranges(ip: str, ranges) -> bool:
    version, value = _ip_int(ip)
    return any(v == version and first <= value <= last for v, first, last in ranges)


def _ip_block_cidrs(ib) -> list:
    return list((netaddr.IPSet([ib.cidr]) - netaddr.IPSet(ib.excepts)).iter_cidrs())


@lru_cache(maxsize=1 << 18)
def _labels(labels: tuple) -> dict:
    return dict(labels)


def np_targets(cluster: ClusterIn, np: NetworkPolicyIn, pods: list[PodIn], memo: dict | None = None) -> list[PodIn]:
    """The pods ``np`` selects (its namespace, its podSelector); ``memo`` as for np_peer_pods."""
    memo = {} if memo is None else memo
    key = ("targets", np.namespace, np.pod_selector)
    hit = memo.get(key)
    if hit is None:
        by_ns = memo.get("by namespace")
        if by_ns is None:
            by_ns = memo["by namespace"] = {}
            for p in pods:
                by_ns.setdefault(p.namespace, []).append(p)
        sel = np.pod_selector
        hit = memo[key] = [p for p in by_ns.get(np.namespace, ()) if sel.matches(_labels(p.labels))]
    return hit


def _ns_labels(cluster: ClusterIn, ns: str) -> dict:
    memo = cluster.value_memo()
    key = ("ns labels", ns)
    out = memo.get(key)
    if out is None:
        out = memo[key] = cluster.namespace_labels(ns)
    return out


def np_peer_pods(cluster: ClusterIn, np: NetworkPolicyIn, peer, pods: list[PodIn], memo: dict | None = None
                 ) -> list[PodIn]:
    """The pods (of ``pods``, in their order) a podSelector/namespaceSelector peer selects.
    ``memo``: a dict kept for one ``pods`` list (many policies repeat the same selectors)."""
    memo = {} if memo is None else memo
    key = ("peer", np.namespace if peer.namespace_selector is None else None, peer.namespace_selector,
           peer.pod_selector)
    hit = memo.get(key)
    if hit is not None:
        return hit
    by_ns = memo.get("by namespace")
    if by_ns is None:
        by_ns = memo["by namespace"] = {}
        for p in pods:
            by_ns.setdefault(p.namespace, []).append(p)
    out: list[PodIn] = []
    for ns, members in by_ns.items():
        if peer.namespace_selector is None:
            if ns != np.namespace:
                continue
        elif not peer.namespace_selector.matches(_ns_labels(cluster, ns)):
            continue
        if peer.pod_selector is None:
            out += members
        else:
            out += [p for p in members if peer.pod_selector.matches(_labels(p.labels))]
    memo[key] = out
    return out


def _cidrs_memo(memo: dict, addresses: list) -> tuple[str, ...]:
    """``_cidrs`` of addresses, remembered in ``memo`` (policies repeat the same peer sets)."""
    key = ("cidrs", frozenset(a if isinstance(a, str) else (a.version, a.first, a.last) for a in addresses))
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = _cidrs(addresses)
    return hit


def _np_rule_pieces(cluster, np: NetworkPolicyIn, direction: str, i: int, rule: NpRuleIn,
                    targets: list[PodIn], pods: list[PodIn], memo: dict | None = None) -> list[Piece]:
    memo = {} if memo is None else memo
    rkey = f"np/{np.namespace}/{np.name}/{direction}/{i}"
    # peer pod -> its addresses that are peers (all of them, or those inside an ipBlock)
    peer_ips: dict[tuple, tuple[PodIn, set]] = {}
    if rule.peers:
        cidrs: list = []
        for peer in rule.peers:
            if peer.ip_block is not None:
                block = _ip_block_cidrs(peer.ip_block)
                cidrs += block
                if direction == "egress" and any(isinstance(pt.port, str) for pt in rule.ports):
                    # named ports resolve on pods an ipBlock reaches too (only then is this needed)
                    ranges = [(n.version, n.first, n.last) for n in block]
                    for p in pods:
                        ips = {ip for ip in p.ips if _in_ranges(ip, ranges)}
                        if ips:
                            peer_ips.setdefault(p.key, (p, set()))[1].update(ips)
            else:
                for p in np_peer_pods(cluster, np, peer, pods, memo):
                    peer_ips.setdefault(p.key, (p, set()))[1].update(p.ips)
        all_peers = _cidrs_memo(memo, cidrs + [ip for _, ips in peer_ips.values() for ip in ips])
    else:
        peer_ips = {p.key: (p, set(p.ips)) for p in pods}
        all_peers = None
    numeric, named = [], []
    for pt in rule.ports:
        proto = pt.protocol.lower()
        if isinstance(pt.port, str):
            named.append((pt.protocol, pt.port))
        elif pt.port is None:
            numeric.append((proto, None, None))
        else:
            numeric.append((proto, pt.port, pt.end_port or pt.port))
    out = []

    def add(suffix, tgts, peers, ports):
        if tgts and (peers is None or peers) and (ports is None or ports):
            out.append(Piece(f"{rkey}{suffix}", rkey, direction, P_NP_ALLOW, True, tuple(tgts), peers,
                             None if ports is None else tuple(sorted(set(ports), key=repr))))

    if not rule.ports:
        add("", targets, all_peers, None)
        return out
    add("", targets, all_peers, numeric)

    def resolve(pod):
        return tuple(sorted({(proto.lower(), n, n) for proto, name in named
                             if (n := pod.named_port(name, proto)) is not None}))
    if named:
        groups: dict[tuple, list[PodIn]] = defaultdict(list)
        if direction == "ingress":      # the destination is the target
            for t in targets:
                groups[resolve(t)].append(t)
            for ports, tg in sorted(groups.items()):
                add(f"/named{ports}", tg, all_peers, list(ports))
        else:                           # the destination is the peer (ipBlock peers too, if pods)
            ips_of: dict[tuple, list] = defaultdict(list)
            for p, ips in peer_ips.values():
                ips_of[resolve(p)] += ips
            for ports, ips in sorted(ips_of.items()):
                add(f"/named{ports}", targets, _cidrs(ips), list(ports))
    return out


def sg_members(cluster: ClusterIn, sg: SecurityGroupIn | None, pods: list[PodIn]) -> list[PodIn]:
    if sg is None:
        return []
    ns = set(sg.namespaces)
    return [p for p in pods if p.namespace in ns or sg.name in p.security_groups]


def _sg_pieces(cluster: ClusterIn, sg: SecurityGroupIn, pods: list[PodIn]) -> list[Piece]:
    members = sg_members(cluster, sg, pods)
    if not members:
        return []
    out = []
    if sg.allow_same_group:
        peers = _cidrs([ip for p in members for ip in p.ips])
        for d in DIRECTIONS:
            key = f"sg/{sg.name}/same-group/{d}"
            out.append(Piece(key, key, d, sg_priority(0, True), True, tuple(members), peers, None))
    for r in sg.rules:
        if r.remote_cidr is not None:
            peers = (r.remote_cidr,)
        elif r.remote_sg is not None:
            peers = _cidrs([ip for p in sg_members(cluster, cluster.find_security_group(r.remote_sg), pods)
                            for ip in p.ips])
        elif r.remote_namespace is not None:
            peers = _cidrs([ip for p in pods if p.namespace == r.remote_namespace for ip in p.ips])
        else:
            peers = None
        if peers is not None and not peers:
            continue
        if r.protocol == "any":
            ports = None
        elif r.ports:
            ports = tuple((r.protocol, lo, hi) for lo, hi in r.ports)
        else:
            ports = ((r.protocol, None, None),)
        key = f"sg/{sg.name}/{r.id}"
        allow = r.action == "allow"
        out.append(Piece(key, key, r.direction, sg_priority(r.priority, allow), allow, tuple(members), peers, ports))
    return out


@dataclass(frozen=True)
class VpcPolicy:
    """Everything policy.py knows about one VPC, independent of the node."""

    pieces: dict            # direction -> tuple[Piece] (sorted by key)
    isolated: dict          # direction -> frozenset of pod keys (NetworkPolicy default deny)
    conj_ids: dict          # (direction, piece key) -> conj id
    targets_on: dict        # (direction, piece key) -> node -> the piece's targets there


def vpc_policy(cluster: ClusterIn, vpc: str) -> VpcPolicy:
    memo = cluster.value_memo()
    key = ("policy", vpc)
    hit = memo.get(key)
    if hit is not None:
        return hit
    pods = _pods_of_vpc(cluster, vpc)
    selections: dict = {}    # selector results and CIDR sets, shared by the policies of this pass
    pieces: dict[str, list[Piece]] = {d: [] for d in DIRECTIONS}
    isolated: dict[str, set] = {d: set() for d in DIRECTIONS}
    for sg in cluster.security_groups:
        for pc in _sg_pieces(cluster, sg, pods):
            pieces[pc.direction].append(pc)
    for np in cluster.network_policies:
        targets = np_targets(cluster, np, pods, selections)
        if not targets:
            continue
        for d, rules in (("ingress", np.ingress), ("egress", np.egress)):
            if d.capitalize() not in np.policy_types:
                continue
            isolated[d].update(t.key for t in targets)
            for i, rule in enumerate(rules):
                pieces[d] += _np_rule_pieces(cluster, np, d, i, rule, targets, pods, selections)
    vpc_id = cluster.vpc(vpc).vpc_id
    conj_ids: dict = {}
    for d in DIRECTIONS:
        used: set[int] = set()
        for pc in sorted(pieces[d], key=lambda p: p.key):
            slot = rule_id("conj/" + pc.key) % 0xFFFF + 1
            while slot in used:
                slot = slot % 0xFFFF + 1
            used.add(slot)
            conj_ids[(d, pc.key)] = vpc_id << 16 | slot
    targets_on: dict = {}
    for d in DIRECTIONS:
        for pc in pieces[d]:
            by_node: dict[str, list[PodIn]] = {}
            for t in pc.targets:
                by_node.setdefault(t.node, []).append(t)
            targets_on[(d, pc.key)] = by_node
    out = VpcPolicy({d: tuple(sorted(v, key=lambda p: p.key)) for d, v in pieces.items()},
                    {d: frozenset(v) for d, v in isolated.items()}, conj_ids, targets_on)
    memo[key] = out
    return out


def node_independent(cluster: ClusterIn, vpc: str) -> tuple:
    """What ``policy_flows`` of ``vpc`` takes from the whole VPC, whatever the node: every piece
    but its targets (only *local* targets make flows on a node), and the conj ids. Two cluster
    values with equal ``node_independent`` give a node the same policy flows unless one of its
    own pods changed: compile.owners_affected then recompiles the owner on that node only."""
    memo = cluster.value_memo()
    key = ("policy shared", vpc)
    hit = memo.get(key)
    if hit is None:
        pol = vpc_policy(cluster, vpc)
        hit = memo[key] = (tuple((d, pc.key, pc.rule, pc.priority, pc.allow, pc.peers, pc.ports)
                                 for d in DIRECTIONS for pc in pol.pieces[d]), pol.conj_ids)
    return hit


def pod_matters(cluster: ClusterIn, pod: PodIn) -> bool:
    """Whether ``pod`` can make a difference to its VPC's policy (``vpc_policy``): it is a
    NetworkPolicy target, a pod/namespace-selector peer of a rule, a SecurityGroup member (also
    as another group's remote), in a namespace an SG rule names, or has named ports while an
    egress rule resolves named ports on its peers. Selectors are evaluated with the functions
    ``vpc_policy`` uses, on this one pod. When no state of a changed pod matters, the pod changes
    no policy flow (compile.owners_affected recompiles none for it)."""
    pods = [pod]
    memo: dict = {}
    for np in cluster.network_policies:
        if np.namespace == pod.namespace and np_targets(cluster, np, pods, memo):
            return True
        for direction, rules in (("ingress", np.ingress), ("egress", np.egress)):
            for rule in rules:
                if (direction == "egress" and pod.named_ports
                        and any(isinstance(pt.port, str) for pt in rule.ports)):
                    return True
                for peer in rule.peers:
                    if peer.ip_block is None and np_peer_pods(cluster, np, peer, pods, memo):
                        return True
    for sg in cluster.security_groups:
        if sg_members(cluster, sg, pods) or any(r.remote_namespace == pod.namespace for r in sg.rules):
            return True
    return False


# --- flows -------------------------------------------------------------------------------------
def _port_masks(lo: int, hi: int) -> list:
    """[lo, hi] as (value, mask) prefixes of 16-bit ports (exact ports as ints)."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        mask = 0xFFFF & ~(size - 1)
        out.append(lo if size == 1 else (lo, mask))
        lo += size
    return out


@lru_cache(maxsize=1 << 14)
def _port_matches(vpc_m, ports) -> tuple[Match, ...]:
    out = []
    for proto, lo, hi in ports:
        for p in _PROTOS[proto]:
            if lo is None:
                out.append(Match(p, vpc_m))
            else:
                out += [Match(p, vpc_m, tp_dst=v) for v in _port_masks(lo, hi)]
    return tuple(out)


@lru_cache(maxsize=1 << 14)
def _peer_matches(vpc_m, direction: str, peers) -> tuple[Match, ...]:
    out = []
    for c in peers:
        v6 = ":" in c
        field = ("ipv6_" if v6 else "nw_") + ("src" if direction == "ingress" else "dst")
        out.append(Match(IPV6 if v6 else IP, vpc_m, **{field: c}))
    return tuple(out)


@lru_cache(maxsize=1 << 16)
def _target_match(vpc_m, direction: str, pod: PodIn) -> Match:
    if direction == "egress":
        return Match(vpc_m, in_port=pod.ofport)
    return Match(vpc_m, TARGET_OFPORT.eq(pod.ofport))


@lru_cache(maxsize=1 << 14)
def _deny_log(direction: str, rid: int, vpc_id: int) -> tuple:
    """A new connection's denied packet goes to the controller's audit log through the log meter
    (at most its rate reaches the controller; the packet itself is dropped either way). The
    userdata names the rule, the VPC and the direction (app/policy_audit.py decodes it)."""
    user = LOG_USERDATA.pack(rid, vpc_id, DIRECTIONS.index(direction))
    return (Controller(max_len=LOG_MAX_LEN, userdata=user, meter_id=LOG_METER_ID),)


# Policy flows are mostly the same on every node (verdicts, peer and port clauses, and clause
# flows whose conjunction set is the same): built once, shared by every node's set.
@lru_cache(maxsize=1 << 18)
def _flow(table: str, priority: int, match: Match, actions: tuple, owner: str) -> Flow:
    return PIPELINE.flow(table, priority, match, actions, owner=owner)


@lru_cache(maxsize=1 << 16)
def _conjunction(cid: int, clause: int, n: int) -> Conjunction:
    return Conjunction(cid, clause, n)


@lru_cache(maxsize=1 << 16)
def _conj_verdict_flows(d: str, priority: int, cid: int, allow: bool, rid: int, zone: int, vpc_id: int,
                        owner: str) -> tuple[Flow, ...]:
    return tuple(_flow(TABLE[d], priority, Match(conj_id=cid, **extra), actions, owner)
                 for extra, actions in _verdicts(d, allow, rid, zone, vpc_id))


def _verdicts(direction: str, allow: bool, rid: int, zone: int, vpc_id: int) -> list[tuple[dict, tuple]]:
    """[(extra match fields, actions)]: allow is one flow; deny drops (and logs) new packets and
    revokes established connections (split on ct_state est, and per address family for ct())."""
    if allow:
        return [({}, (Load(RULE_REG[direction], rid), Goto(NEXT[direction])))]
    revoke = (Ct(commit=True, zone=zone, exec_=(Load.mark(CT_POLICY_REVOKED),)),)
    return [({"ct_state": "-est+trk"}, _deny_log(direction, rid, vpc_id)),
            ({"ct_state": "+est+trk", "dl_type": IP.dl_type}, revoke),      # ct() needs ip or ipv6
            ({"ct_state": "+est+trk", "dl_type": IPV6.dl_type}, revoke)]


def policy_flows(cluster: ClusterIn, node: str, vpc: str) -> frozenset[Flow]:
    """The flows of owner ``policy/<vpc>`` on ``node`` (empty when no policy applies there)."""
    return _node_policy(cluster, node, vpc, False)[0]


def verdict_rules(cluster: ClusterIn, node: str, vpc: str) -> dict[Flow, tuple[str, str, str]]:
    """Audit identity of the flows that decide: verdict flow -> (rule, "allow"|"deny", direction).
    ``rule`` is the rule key (``np/<ns>/<name>/<dir>/<i>``, ``sg/<group>/<rule id>``,
    ``sg/<group>/same-group/<dir>``), ``np/<ns>/default-deny/<dir>`` for NetworkPolicy isolation,
    or ``revoked/<dir>`` for the replies of revoked connections. Flows that only feed a
    conjunction (clauses) and the stateful pass-throughs are not verdicts. One rule owns many
    flows (pieces, targets, the est/new split); the counters add them up."""
    return _node_policy(cluster, node, vpc, True)[1]


def rule_names(cluster: ClusterIn, vpc: str) -> dict[int, str]:
    """rule id (reg4/reg5, ct_label, deny-log userdata) -> rule key, for the rules of ``vpc``."""
    if not cluster.has_policy or cluster.find_vpc(vpc) is None:
        return {}
    pol = vpc_policy(cluster, vpc)
    return {rule_id(pc.rule): pc.rule for d in DIRECTIONS for pc in pol.pieces[d]}


def _node_policy(cluster: ClusterIn, node: str, vpc: str, with_rules: bool) -> tuple[frozenset[Flow], dict]:
    rules: dict[Flow, tuple[str, str, str]] = {}
    if not (cluster.has_policy or cluster.peers_of(vpc)) or vpc not in cluster.vpcs_on_node(node):
        return frozenset(), rules
    v = cluster.vpc(vpc)
    pol = vpc_policy(cluster, vpc)
    local = {p.key: p for p in cluster.active_pods_of_vpc(vpc) if p.node == node}
    owner = f"policy/{vpc}"
    fl = _flow
    vpc_m = VPC_ID.eq(v.vpc_id)
    zone = vpc_ct_zone(v.vpc_id)
    flows: list[Flow] = []
    for d in DIRECTIONS:
        table = TABLE[d]
        plain: dict[tuple, tuple] = {}          # (priority, match) -> [(extra, actions)]
        clauses: dict[tuple, list] = defaultdict(list)
        for pc in pol.pieces[d]:
            targets = [local[t.key] for t in pol.targets_on[(d, pc.key)].get(node, ()) if t.key in local]
            if not targets:
                continue
            rid = rule_id(pc.rule)
            tms = [_target_match(vpc_m, d, t) for t in targets]
            dims = []
            if pc.peers is not None:
                dims.append(_peer_matches(vpc_m, d, pc.peers))
            if pc.ports is not None:
                dims.append(_port_matches(vpc_m, pc.ports))
            if not dims:
                for m in tms:
                    plain.setdefault((pc.priority, m), (pc.rule, pc.allow, _verdicts(d, pc.allow, rid, zone, v.vpc_id)))
                continue
            cid = pol.conj_ids[(d, pc.key)]
            n = len(dims) + 1
            for k, ms in enumerate([tuple(tms)] + dims, 1):
                conj = _conjunction(cid, k, n)
                for m in dict.fromkeys(ms):
                    clauses[(pc.priority, m)].append(conj)
            for f in _conj_verdict_flows(d, pc.priority, cid, pc.allow, rid, zone, v.vpc_id, owner):
                flows.append(f)
                if with_rules:
                    rules[f] = (pc.rule, "allow" if pc.allow else "deny", d)
        for (prio, m), (rule, allow, verdicts) in plain.items():
            for extra, actions in verdicts:
                flows.append(fl(table, prio, m.with_(**extra) if extra else m, actions, owner=owner))
                if with_rules:
                    rules[flows[-1]] = (rule, "allow" if allow else "deny", d)
        for (prio, m), conj in clauses.items():
            if (prio, m) in plain:              # a plain flow decides this target at this priority
                continue
            flows.append(fl(table, prio, m, tuple(sorted(conj, key=lambda c: (c.conj_id, c.clause))), owner=owner))
        for key in sorted(pol.isolated[d]):
            if key in local:
                for extra, actions in _verdicts(d, False, 0, zone, v.vpc_id):
                    flows.append(fl(table, P_NP_DENY, _target_match(vpc_m, d, local[key]).with_(**extra), actions,
                                    owner=owner))
                    if with_rules:
                        rules[flows[-1]] = (f"np/{key[0]}/default-deny/{d}", "deny", d)
        nxt = (Goto(NEXT[d]),)
        revoked = [
            fl(table, P_REVOKED_REPLY, Match(vpc_m, CT_POLICY_REVOKED, ct_state="+rpl+trk"), DROP, owner=owner),
            fl(table, P_REVOKED_REL, Match(vpc_m, CT_POLICY_REVOKED, ct_state="+rel+trk"), DROP, owner=owner),
        ]
        if with_rules:
            rules.update((f, (f"revoked/{d}", "deny", d)) for f in revoked)
        flows += revoked + [
            fl(table, P_REPLY, Match(vpc_m, ct_state="+est+rpl+trk" if v.strict_revocation else "+est+trk"), nxt,
               owner=owner),
            fl(table, P_PASS, Match(vpc_m, ct_state="+rel+trk"), nxt, owner=owner),
            fl(table, P_PASS, Match(vpc_m, ct_state="-trk"), nxt, owner=owner),
        ]
    labels = COMMIT_LABELS
    flows += _peering_flows(cluster, node, v, owner, labels, rules if with_rules else None)
    for proto in (IP, IPV6):
        flows += [
            fl("ct_commit", P_COMMIT, Match(proto, vpc_m, ct_state="+new+trk"),
               (Ct(commit=True, zone=zone, exec_=labels), Goto("output")), owner=owner),
            fl("ct_commit", P_UNREVOKE, Match(proto, vpc_m, CT_POLICY_REVOKED, ct_state="+est-rpl+trk"),
               (Ct(commit=True, zone=zone, exec_=(Load(CT_MARK_POLICY, 0),) + labels), Goto("output")),
               owner=owner),
        ]
    return frozenset(flows), rules


def _peering_flows(cluster: ClusterIn, node: str, v, owner: str, labels: tuple, rules: dict | None) -> list[Flow]:
    """Deny across a peering unless a rule allows; the second commit (see the module doc)."""
    peers = cluster.peers_of(v.name)
    if not peers:
        return []
    fl = PIPELINE.flow
    vpc_m = VPC_ID.eq(v.vpc_id)
    zone = vpc_ct_zone(v.vpc_id)
    uplink = cluster.node(node).uplink_ofport
    flows = [fl("ingress_policy", P_PEER_UPLINK, Match(vpc_m, TARGET_OFPORT.eq(uplink)), (Goto(NEXT["ingress"]),),
                owner=owner)]
    for name in peers:
        peer = cluster.vpc(name)
        cidrs = [c for s in cluster.subnets_of(name) for c in s.cidrs]
        for d in DIRECTIONS:
            rkey = f"peering/{v.name}/{name}/{d}"
            rid = rule_id(rkey)
            for m in _peer_matches(vpc_m, d, tuple(cidrs)):
                base = m.with_(FROM_POD) if d == "egress" else m
                for extra, actions in _verdicts(d, False, rid, zone, v.vpc_id):
                    if extra.get("dl_type", base["dl_type"]) != base["dl_type"]:
                        continue     # the est split per address family: only this one's
                    extra = {k: x for k, x in extra.items() if k != "dl_type"}
                    flows.append(fl(TABLE[d], P_PEER_DENY, base.with_(**extra) if extra else base, actions,
                                    owner=owner))
                    if rules is not None:
                        rules[flows[-1]] = (rkey, "deny", d)
        for proto in (IP, IPV6):
            flows.append(fl("ct_commit", P_PEER_COMMIT,
                            Match(proto, vpc_m, PEER_SRC_VPC.eq(peer.vpc_id), ct_state="+new+trk"),
                            (Ct(commit=True, zone=vpc_ct_zone(peer.vpc_id)), Ct(commit=True, zone=zone, exec_=labels),
                             Goto("output")), owner=owner))
    return flows


def naive_flow_count(cluster: ClusterIn, node: str, vpc: str) -> int:
    """Flows a cross-product compiler would need on ``node``: per piece, local targets x peer
    matches x port matches (for the benchmark, beside the real count)."""
    if not cluster.has_policy:
        return 0
    v = cluster.vpc(vpc)
    vpc_m = VPC_ID.eq(v.vpc_id)
    pol = vpc_policy(cluster, vpc)
    local = {p.key for p in cluster.active_pods_of_vpc(vpc) if p.node == node}
    n = 0
    for d in DIRECTIONS:
        for pc in pol.pieces[d]:
            t = sum(1 for x in pc.targets if x.key in local)
            peers = len(_peer_matches(vpc_m, d, pc.peers)) if pc.peers is not None else 1
            ports = len(_port_matches(vpc_m, pc.ports)) if pc.ports is not None else 1
            n += t * peers * ports
    return n
