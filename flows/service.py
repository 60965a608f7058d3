"""Service flows (owner "svc/<namespace>/<name>"): ClusterIP load balancing on br-int.

Where: ``ct_zone`` looks every IP packet up in its VPC's zone *with nat*, so the packets of an
established Service connection are DNATed to their endpoint again and replies are un-DNATed
before anything else sees them. A *new* connection continues (ct_state -> svc_lb); in svc_lb,
``VPC_ID, proto, nw_dst=<cluster IP>, tp_dst=<port>`` sends it to the Service port's select group.
Each bucket does ``ct(commit, zone=<vpc>, nat(dst=<endpoint>:<port>), exec(ct_mark SERVICE),
table=egress_policy)``: the connection is committed DNATed and the packet carries on as if sent
to the endpoint -- egress policy judges the endpoint (Kubernetes semantics), l3_fwd routes to
it (the pod addressed the cluster IP through its gateway, so it is routed), and the endpoint's
node sees an ordinary connection from the client.

Which endpoints: ``ServiceIn.backends`` (service_inputs.py): ready, else serving+terminating;
internalTrafficPolicy Local keeps the client node's endpoints (so flows are per node).

Buckets: a fixed number of equal *slots* (64, or 256 past 32 endpoints), shared out equally
(``slots``: each endpoint gets S//n or S//n+1, up to 256 endpoints) by a capacity-bounded
rendezvous hash: slot-endpoint pairs are taken in descending hash order, a slot going to the
first endpoint with room. OVS's OF1.3 select group (dp_hash) maps a connection to a slot by
position, so with a fixed slot count an endpoint that goes away gives up its own slots plus
the few that the survivors' larger shares re-balance, and one that comes takes its share
mostly from the others' surplus: most connections keep their endpoint (plain buckets, one per
endpoint, reshuffle about 3/4 of them when one of four goes). Established connections never
move: conntrack holds their DNAT.

sessionAffinity ClientIP (``_affinity_flows``): learned flows in svc_affinity remember each
client's endpoint per Service port for timeoutSeconds after its last new connection.

Group ids: 32-bit hash of (namespace, name, port name, protocol), linear probing in key order,
unique per cluster value and stable while the port exists.
"""
from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from itertools import repeat

from . import cookies
from .fields import (CT_LABEL_SERVICE, CT_SERVICE, CT_SVC_EXTERNAL, CT_SVC_SNAT, FROM_EXTERNAL, SVC_AFF_HIT,
                     SVC_AFF_HIT_BIT, SVC_ENDPOINT, SVC_SLOT, SVC_SNAT_ZONE, SVC_VPC_ZONE, VPC_ID, vpc_ct_zone,
                     vpc_hairpin_zone)
from .inputs import ClusterIn
from .learn import Learn
from .model import (ETH_IPV6, IPPROTO_TCP, IPPROTO_UDP, TCP, TCP6, UDP, UDP6, Bucket, Controller, Ct, Flow, Goto,
                    Group, GroupAction, Load, Match, Multipath, Nat, Resubmit, SetField)
from .pipeline import PIPELINE
from .service_inputs import ServiceIn

P_VIP = 200
P_AFF_HIT = 300     # svc_aff_lb: the client's learned endpoint, above the group
REJECT_USERDATA = b"vpcnet-svc-reject"   # app/service_reject.py answers these packet-ins
REJECT_METER_ID = 2                       # datapath meter bounding them (installed per bridge)
REJECT_MAX_LEN = 256                      # enough of the packet to quote it in an ICMP error
SLOTS_SMALL, SLOTS_LARGE = 64, 256
_PROTO = {("TCP", 4): TCP, ("TCP", 6): TCP6, ("UDP", 4): UDP, ("UDP", 6): UDP6}


def _h32(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def group_ids(cluster: ClusterIn) -> dict[tuple, int]:
    """(namespace, name, port name, protocol) -> group id, for every port of every service."""
    memo = cluster.value_memo()
    hit = memo.get("service group ids")
    if hit is None:
        hit, used = {}, set()
        for s in cluster.services:
            for p in s.ports:
                for key in ((s.namespace, s.name, p.name, p.protocol),
                            (s.namespace, s.name, p.name, p.protocol, "nodePort")):
                    gid = _h32("/".join(map(str, key))) or 1
                    while gid in used:
                        gid = gid % 0xFFFFFF00 + 1      # 0xFFFFFF00.. are OpenFlow's reserved group ids
                    used.add(gid)
                    hit[key] = gid
        memo["service group ids"] = hit
    return hit


@lru_cache(maxsize=1 << 12)
def slots(backends: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """The endpoint of every slot (see the module doc), in slot order: every endpoint gets
    ``S // n`` or ``S // n + 1`` of the ``S`` slots (equal shares), each slot going to the
    endpoint that scores it highest among those with room left (scores: a hash of (slot,
    endpoint), taken in descending order). Deterministic in the endpoint set alone."""
    n_slots = SLOTS_SMALL if len(backends) <= 32 else SLOTS_LARGE
    ranked = sorted(backends, key=lambda b: (_h64(f"{b[0]}/{b[1]}"), b))
    base, extra = divmod(n_slots, len(ranked))
    room = [base + (1 if j < extra else 0) for j in range(len(ranked))]
    pairs = []
    for j, (ip, port) in enumerate(ranked):     # the scores of (slot i, endpoint j): one XOF per endpoint
        scores = struct.unpack(f">{n_slots}I", hashlib.shake_128(f"{ip}/{port}".encode()).digest(4 * n_slots))
        pairs += zip(scores, range(n_slots), repeat(j))
    pairs.sort(reverse=True)
    owner: list = [None] * n_slots
    left = n_slots
    for _, i, j in pairs:
        if owner[i] is None and room[j]:
            owner[i] = ranked[j]
            room[j] -= 1
            left -= 1
            if not left:
                break
    return tuple(owner)


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


P_COUNT = 100      # ct_state: below the +inv drop


def service_id(svc: ServiceIn) -> int:
    """Nonzero 32-bit id of a Service in ct_label (its traffic counters)."""
    return _h32(f"svc/{svc.namespace}/{svc.name}") or 1


@lru_cache(maxsize=1 << 14)
def _dnat(zone: int, ip: str, port: int, sid: int, marks: tuple = (Load.mark(CT_SERVICE),)) -> tuple:
    """The endpoint's DNAT: commit the connection in the VPC zone with the Service's marks and id
    (counters), continue as a packet to the endpoint (egress_policy)."""
    return (Ct(commit=True, zone=zone, table="egress_policy", nat=Nat("dst", ip, port),
               exec_=marks + (Load(CT_LABEL_SERVICE, sid),)),)


def _balanced(svc: ServiceIn, proto, vip: Match, backends, gid: int, dnat) -> tuple[tuple, list]:
    """(svc_lb actions, flows and groups) sending a new connection to ``vip`` to one of
    ``backends``: a select group over the slots whose buckets DNAT (``dnat(ip, port)``); for
    UDP a multipath hash over addresses and ports into SVC_SLOT and one svc_slot flow per slot
    (OVS's select group hashes UDP on addresses only: one client would always get one
    endpoint); for sessionAffinity the learned-endpoint path (``_affinity_flows``)."""
    if svc.affinity_timeout:
        return ((Resubmit("svc_affinity"), Goto("svc_aff_lb")),
                _affinity_flows(svc, proto, vip, backends, gid, dnat))
    chosen = slots(backends)
    actions = {b: dnat(*b) for b in backends}       # one value per endpoint, shared by its slots
    if proto.nw_proto == IPPROTO_UDP:
        return ((Multipath(SVC_SLOT, len(chosen)), Goto("svc_slot")),
                [PIPELINE.flow("svc_slot", P_VIP, vip.with_(SVC_SLOT.eq(i)), actions[b], owner=svc.owner)
                 for i, b in enumerate(chosen)])
    buckets = {b: Bucket(a) for b, a in actions.items()}
    return (GroupAction(gid),), [Group(gid, "select", tuple(buckets[b] for b in chosen))]


def _resolver(cluster: ClusterIn):
    def named_port(pod_key, name, protocol):
        pod = cluster.find_pod(*pod_key)
        return pod.named_port(name, protocol) if pod is not None else None
    return named_port


def service_flows(cluster: ClusterIn, node: str, svc: ServiceIn) -> frozenset:
    """The flows and groups of ``svc``'s owner on ``node`` (empty where its VPC is not present)."""
    return frozenset(_service_flows(cluster, node, svc, None))


def counted_flows(cluster: ClusterIn, node: str, svc: ServiceIn) -> dict[Flow, str]:
    """The flows whose counters are the Service's (app/policy_audit.py exports them):
    "connections" (new connections to each port: svc_lb) and "traffic" (every later packet of its
    connections, both ways, on the client's node: ct_state on the connection's ct_label)."""
    labels: dict[Flow, str] = {}
    _service_flows(cluster, node, svc, labels)
    return labels


def _service_flows(cluster: ClusterIn, node: str, svc: ServiceIn, labels: dict | None) -> list:
    if svc.cluster_ip is None or svc.vpc not in cluster.vpcs_on_node(node) or cluster.find_vpc(svc.vpc) is None:
        return []
    vpc = cluster.vpc(svc.vpc)
    zone = vpc_ct_zone(vpc.vpc_id)
    version = 6 if ":" in svc.cluster_ip else 4
    dst = "nw_dst" if version == 4 else "ipv6_dst"
    ids = group_ids(cluster)
    sid = service_id(svc)
    count = PIPELINE.flow("ct_state", P_COUNT, Match(VPC_ID.eq(vpc.vpc_id), CT_SERVICE, CT_LABEL_SERVICE.eq(sid),
                                                      ct_state="+trk"), (Goto("svc_lb"),), owner=svc.owner)
    out: list = [count]
    if labels is not None:
        labels[count] = "traffic"
    for port in svc.ports:
        backends = tuple(b for b in svc.backends(port, node=node, named_port=_resolver(cluster))
                         if (":" in b[0]) == (version == 6))
        proto = _PROTO[(port.protocol, version)]
        vip = Match(proto, VPC_ID.eq(vpc.vpc_id), **{dst: svc.cluster_ip, "tp_dst": port.port})
        match = vip.with_(ct_state="+new+trk")
        gid = ids[(svc.namespace, svc.name, port.name, port.protocol)]
        if not backends:     # refused at once: the controller answers RST / port unreachable
            entry = PIPELINE.flow("svc_lb", P_VIP, match, _REJECT, owner=svc.owner)
        else:
            actions, more = _balanced(svc, proto, vip, backends, gid, lambda ip, p: _dnat(zone, ip, p, sid))
            entry = PIPELINE.flow("svc_lb", P_VIP, match, actions, owner=svc.owner)
            out += more
        out.append(entry)
        if labels is not None:
            labels[entry] = "connections"
    node_in = cluster.node(node)
    if svc.type == "NodePort" and node_in.external_ofport is not None:
        for port in svc.ports:
            if port.node_port:
                out += _node_port_flows(cluster, node_in, svc, port, vpc, zone, sid, ids, labels)
    return out


def _node_port_flows(cluster: ClusterIn, node, svc: ServiceIn, port, vpc, zone: int, sid: int, ids,
                     labels: dict | None) -> list:
    """<node IP>:<nodePort> from the external port (svc_external) -> the Service's VPC as
    FROM_EXTERNAL, learning the client's MAC for the replies (svc_ext_neigh); svc_lb sends new
    connections to a select group of this node's endpoints whose buckets DNAT (and mark the
    connection EXTERNAL; for externalTrafficPolicy Cluster also SNAT, to the node IP: base.py
    node_flows). Local: this node's endpoints, the client's address kept; Cluster: every
    endpoint, whose replies to the node IP come back here (subnet.py _node_ip_routes)."""
    proto = _PROTO[(port.protocol, 4)]
    backends = tuple(b for b in svc.backends(port, node=node.name, external=True, named_port=_resolver(cluster))
                     if ":" not in b[0])
    marks = (Load.mark(CT_SERVICE), Load.mark(CT_SVC_EXTERNAL)) + (() if svc.external_local else (Load.mark(CT_SVC_SNAT),))
    steal = Match(proto, nw_dst=node.node_ip, tp_dst=port.node_port)
    vip = steal.with_(VPC_ID.eq(vpc.vpc_id))
    out = [PIPELINE.flow("svc_external", P_VIP, steal,
                         (_LEARN_CLIENT_MAC, Load.mark(FROM_EXTERNAL), Load(VPC_ID, vpc.vpc_id),
                          Load(SVC_VPC_ZONE, zone), Load(SVC_SNAT_ZONE, vpc_hairpin_zone(vpc.vpc_id)),
                          SetField("eth_dst", vpc.router_mac), Goto("ct_zone")), owner=svc.owner)]
    match = vip.with_(FROM_EXTERNAL, ct_state="+new+trk")
    if not backends:
        # no endpoint anywhere: refused as for the cluster IP; policy Local and endpoints elsewhere
        # only: dropped, so that a load balancer's health check sends the clients to another node
        actions = _REJECT if not svc.backends(port, named_port=_resolver(cluster)) else ()
        entry = PIPELINE.flow("svc_lb", P_VIP, match, actions, owner=svc.owner)
    else:
        gid = ids[(svc.namespace, svc.name, port.name, port.protocol, "nodePort")]
        actions, more = _balanced(svc, proto, vip, backends, gid, lambda ip, p: _dnat(zone, ip, p, sid, marks))
        entry = PIPELINE.flow("svc_lb", P_VIP, match, actions, owner=svc.owner)
        out += more
    out.append(entry)
    if labels is not None:
        labels[entry] = "connections"
    return out


# svc_external: remember (client IP -> client MAC, node MAC it addressed) for the replies
NEIGH_IDLE_TIMEOUT = 300
_LEARN_CLIENT_MAC = Learn("svc_ext_neigh", P_VIP, idle_timeout=NEIGH_IDLE_TIMEOUT,
                          cookie=cookies.cookie(0, cookies.Feature.SERVICE, "svc/external-neighbours"),
                          fixed=(("dl_type", 0x0800),), copied=(("ip_dst", "ip_src"),),
                          loads=(("eth_src", "eth_dst"), ("eth_dst", "eth_src")))


def endpoint_ids(backends: tuple[tuple[str, int], ...]) -> dict[tuple[str, int], int]:
    """(address, port) -> nonzero 32-bit id (SVC_ENDPOINT), unique among ``backends`` and stable
    while the endpoint stays (a learned affinity entry names its endpoint by this id)."""
    out: dict[tuple[str, int], int] = {}
    used: set[int] = set()
    for b in sorted(backends):
        eid = _h32(f"{b[0]}/{b[1]}") or 1
        while eid in used:
            eid = eid % 0xFFFFFFFF + 1
        used.add(eid)
        out[b] = eid
    return out


def _affinity_flows(svc: ServiceIn, proto, vip: Match, backends, gid: int, dnat) -> list:
    """sessionAffinity ClientIP: svc_lb looked the client up in svc_affinity (learned flows load
    SVC_ENDPOINT and SVC_AFF_HIT); svc_aff_lb takes the learned endpoint while it still serves,
    else the select group, whose bucket names an endpoint; svc_aff_learn (re)learns (client,
    cluster IP or node IP, port) -> that endpoint and DNATs to it. Re-learning on every new connection
    restarts the idle timeout: affinity lasts timeoutSeconds after the client's last new
    connection, as kube-proxy's ``recent`` match. A learned endpoint that left no longer matches
    in svc_aff_lb, so its clients are balanced again (and re-learned)."""
    v6 = proto.dl_type == ETH_IPV6
    learn = Learn("svc_affinity", P_VIP, idle_timeout=svc.affinity_timeout,
                  cookie=cookies.cookie(0, cookies.Feature.SERVICE, svc.owner),
                  fixed=(("dl_type", proto.dl_type), ("nw_proto", proto.nw_proto)),
                  copied=(VPC_ID, "ipv6_src" if v6 else "ip_src", "ipv6_dst" if v6 else "ip_dst",
                          "tcp_dst" if proto.nw_proto == IPPROTO_TCP else "udp_dst"),
                  loads=(SVC_ENDPOINT,), load_values=((SVC_AFF_HIT_BIT, 1),))
    ids = endpoint_ids(backends)
    out: list = [Group(gid, "select", tuple(Bucket((Load(SVC_ENDPOINT, ids[b]), Resubmit("svc_aff_learn")))
                                            for b in slots(backends))),
                 PIPELINE.flow("svc_aff_lb", P_VIP, vip, (GroupAction(gid),), owner=svc.owner)]
    for (ip, p), eid in ids.items():
        chosen = vip.with_(SVC_ENDPOINT.eq(eid))
        out.append(PIPELINE.flow("svc_aff_lb", P_AFF_HIT, chosen.with_(SVC_AFF_HIT),
                                 (Goto("svc_aff_learn"),), owner=svc.owner))
        out.append(PIPELINE.flow("svc_aff_learn", P_VIP, chosen, (learn,) + dnat(ip, p),
                                 owner=svc.owner))
    return out


def gone_udp_endpoints(before: ClusterIn, after: ClusterIn, node: str) -> list[tuple]:
    """(zone, Service address, port, endpoint address) of every UDP endpoint that ``node``'s
    flows sent datagrams to in ``before`` and no longer do in ``after`` (for cluster IPs and node
    ports): their conntrack entries must go (app/ctflush.py), or a client keeping its socket
    would go on sending to the endpoint until conntrack expired the entry."""
    out = []
    for svc in before.services:
        if svc.cluster_ip is None or not any(p.protocol == "UDP" for p in svc.ports):
            continue
        if svc.vpc not in before.vpcs_on_node(node) or before.find_node(node) is None:
            continue
        now = after.find_service(svc.namespace, svc.name)
        if now == svc and after.find_node(node) == before.find_node(node):
            continue
        zone = vpc_ct_zone(before.vpc(svc.vpc).vpc_id)
        for address, port_of, kw in _udp_addresses(before, node, svc):
            for port in svc.ports:
                if port.protocol != "UDP" or port_of(port) is None:
                    continue
                old = set(svc.backends(port, node=node, named_port=_resolver(before), **kw))
                new = set()
                if now is not None and after.find_node(node) is not None:
                    same = next((p for p in now.ports if (p.name, p.protocol) == (port.name, port.protocol)), None)
                    if same is not None:
                        new = set(now.backends(same, node=node, named_port=_resolver(after), **kw))
                out += [(zone, address, port_of(port), ip) for ip, _ in sorted(old - new)]
    return out


def _udp_addresses(cluster: ClusterIn, node: str, svc: ServiceIn) -> list:
    """(address, port -> its port number there, backends() options) where ``svc`` takes UDP."""
    out = [(svc.cluster_ip, lambda p: p.port, {})]
    nd = cluster.node(node)
    if svc.type == "NodePort" and nd.external_ofport is not None:
        out.append((nd.node_ip, lambda p: p.node_port, {"external": True}))
    return out


_REJECT = (Controller(max_len=REJECT_MAX_LEN, userdata=REJECT_USERDATA, meter_id=REJECT_METER_ID),)


def split(items) -> tuple[frozenset[Flow], frozenset[Group]]:
    """An owner's compiled set -> (its flows, its groups)."""
    flows = frozenset(x for x in items if isinstance(x, Flow))
    return flows, frozenset(x for x in items if isinstance(x, Group))

