"""The compiler's input values: frozen, validated, canonical (built by the app from the state DB).

Nothing here reads a database; the app layer builds these values and hands them to
``compile.py``. Constructors normalise (lower-case MACs, canonical IPs/CIDRs, tuples) and raise
``InputError`` naming the offending object and field.

Router MAC: every VPC has one fixed distributed-router MAC, ``0e:76:70:ff:HH:LL`` where HHLL is
the 16-bit ``vpc_id`` (``router_mac(7) == "0e:76:70:ff:00:07"``). It is the gateway MAC of every
subnet of that VPC, on every node: br-int answers the pods' ARP/ND for the gateway, and their
pings to it, with it. The ``0e:76:70:ff`` prefix (locally administered, unicast) is reserved: pod
MACs may not use it.

Node router MAC: the Ethernet *source* of every packet br-int routes (l3_fwd's route action) is
the routing node's own MAC, not the VPC router MAC: every node routes, so a shared source MAC
would be seen by the EVPN leaves behind every node in turn (MAC mobility, a BGP update per move,
then the MAC flagged duplicate). Pods do not care: they address their gateway by the VPC router
MAC they resolved by ARP/ND, which does not change. (OVN does the same with
ovn-chassis-mac-mappings.) ``node_router_mac(datapath_id)`` derives it, deterministically:

1. the datapath id's low 48 bits (OVS derives a bridge's default datapath id from its MAC, so
   this is usually the bridge's own MAC), with the first octet's U/L bit (0x02) set and its I/G
   bit (0x01) cleared: a locally administered unicast MAC (dpid 0x20001 -> 02:00:00:02:00:01);
2. if that lands in vpcnet's own block ``0e:76:70:xx:xx:xx`` (app/ipam's pod MACs, prefix +
   the IP's low 24 bits or random low 24 bits, and the router MACs ``0e:76:70:ff:HH:LL``), the
   first octet's 0x20 bit is flipped (0e:76:70:.. -> 2e:76:70:..), so a node MAC is never in
   that block.

Collisions: the derivation drops the datapath id's high 16 bits and the first octet's two low
bits, and step 2 maps onto an ordinary MAC, so two distinct datapath ids can give one MAC.
``ClusterIn`` refuses two nodes with the same node router MAC (InputError naming both nodes and
both datapath ids): the fix is to give one bridge another ``other_config:datapath-id``. (A pod
MAC chosen by hand outside vpcnet's block is not checked against the node MACs.)

Security policy: ``PodIn`` carries its labels, named container ports and security group
annotation; ``ClusterIn`` carries ``namespaces`` (NamespaceIn: labels), ``security_groups``
(SecurityGroupIn/SgRuleIn) and ``network_policies`` (NetworkPolicyIn/NpRuleIn/NpPeerIn/NpPortIn/
IpBlockIn/SelectorIn); ``from_spec`` builds them from app/intent/policy.py's validated specs,
``ClusterIn.with_security`` replaces them and shares everything else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import netaddr

from .checks import (
    _CANON_MAC_RE, _CANON_V4_RE, NS_NAME_LABEL, InputError, _cidr, _int, _ip, _labels, _name,
    _named_ports, _names, _set, _tuple,
)
from .model import OFPP_MAX
from .pmap import PMap
from .policy_inputs import NamespaceIn, NetworkPolicyIn, SecurityGroupIn
from .service_inputs import ServiceIn

ROUTER_MAC_PREFIX = "0e:76:70:ff"
VPCNET_MAC_BLOCK = 0x0E7670          # first 3 octets of every MAC vpcnet allocates (pods, routers)
L3_MODES = ("distributed", "none")


def router_mac(vpc_id: int) -> str:
    if not 0 < vpc_id <= 0xFFFF:
        raise InputError(f"vpc_id {vpc_id}: must be 1..65535 to derive a router MAC")
    return f"{ROUTER_MAC_PREFIX}:{vpc_id >> 8:02x}:{vpc_id & 0xFF:02x}"


def node_router_mac(datapath_id: int) -> str:
    """The node router MAC of the node whose bridge has ``datapath_id`` (see the module doc)."""
    if isinstance(datapath_id, bool) or not isinstance(datapath_id, int) or not 0 <= datapath_id < 1 << 64:
        raise InputError(f"datapath_id {datapath_id!r}: must be a 64-bit unsigned integer")
    mac = (datapath_id & ((1 << 48) - 1) | (0x02 << 40)) & ~(0x01 << 40)
    if mac >> 24 == VPCNET_MAC_BLOCK:
        mac ^= 0x20 << 40
    return ":".join(f"{(mac >> s) & 0xFF:02x}" for s in range(40, -1, -8))


@dataclass(frozen=True)
class VpcIn:
    name: str
    vpc_id: int
    vni: int
    l3_mode: str = "distributed"   # "distributed": route between subnets; "none": no routing
    peers: tuple[str, ...] = ()    # VPCs this one agrees to peer with (sorted); see ClusterIn.peers_of
    strict_revocation: bool = True  # policy re-judges established connections (flows/policy.py)

    def __post_init__(self):
        _set(self, "name", _name(f"vpc {self.name!r}", "name", self.name))
        if self.peers or type(self.peers) is not tuple:
            _set(self, "peers", _names(f"vpc {self.name}", "peers", self.peers))
            if self.name in self.peers:
                raise InputError(f"vpc {self.name}: peers lists the VPC itself")
        _int(f"vpc {self.name}", "vpc_id", self.vpc_id, 1, 0x7FFF)   # 0x8000 | id: its hairpin zone
        _int(f"vpc {self.name}", "vni", self.vni, 1, (1 << 24) - 1)
        if not isinstance(self.strict_revocation, bool):
            raise InputError(f"vpc {self.name}: strict_revocation={self.strict_revocation!r} must be a bool")
        if self.l3_mode not in L3_MODES:
            raise InputError(f"vpc {self.name}: l3_mode={self.l3_mode!r} must be one of {L3_MODES}")

    @property
    def owner(self) -> str:
        return f"vpc/{self.name}"

    @property
    def router_mac(self) -> str:
        return router_mac(self.vpc_id)


@dataclass(frozen=True)
class SubnetIn:
    name: str
    vpc: str
    cidrs: tuple[str, ...]
    gateways: tuple[str, ...]
    vlan: int
    subnet_id: int
    private: bool = False                # if True, only allow_subnets (and itself) may route in
    allow_subnets: tuple[str, ...] = ()

    def __post_init__(self):
        me = f"subnet {self.name!r}"
        _set(self, "name", _name(me, "name", self.name))
        _set(self, "vpc", _name(me, "vpc", self.vpc))
        _set(self, "cidrs", tuple(_cidr(me, "cidrs", c) for c in _tuple(me, "cidrs", self.cidrs)))
        if not self.cidrs:
            raise InputError(f"{me}: cidrs must not be empty")
        _set(self, "gateways", tuple(_ip(me, "gateways", g) for g in _tuple(me, "gateways", self.gateways)))
        for gw in self.gateways:
            if not any(netaddr.IPAddress(gw) in netaddr.IPNetwork(c) for c in self.cidrs):
                raise InputError(f"{me}: gateway {gw} is outside cidrs {self.cidrs}")
        _int(me, "vlan", self.vlan, 1, 4094)
        _int(me, "subnet_id", self.subnet_id, 1, 0xFFFFFFFF)
        _set(self, "allow_subnets", tuple(sorted(set(_tuple(me, "allow_subnets", self.allow_subnets)))))
        # (version, first, last) per CIDR, for contains() (not a field: no effect on eq/hash)
        _set(self, "_ranges", tuple((n.version, n.first, n.last) for n in map(netaddr.IPNetwork, self.cidrs)))

    @property
    def owner(self) -> str:
        return f"subnet/{self.name}"

    def contains(self, ip: str) -> bool:
        if type(ip) is str and _CANON_V4_RE.fullmatch(ip):
            a, b, c, d = ip.split(".")
            version, value = 4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
        else:
            addr = netaddr.IPAddress(ip)
            version, value = addr.version, int(addr)
        return any(v == version and first <= value <= last for v, first, last in self._ranges)


@dataclass(frozen=True)
class PodIn:
    namespace: str
    name: str
    vpc: str
    subnet: str
    ips: tuple[str, ...]
    mac: str
    node: str
    ofport: int | None = None            # None until the node agent has wired the port
    port_name: str = ""
    labels: tuple[tuple[str, str], ...] = ()        # sorted (key, value); a Mapping is accepted
    named_ports: tuple[tuple[str, str, int], ...] = ()   # sorted (name, protocol, port) of its containers
    security_groups: tuple[str, ...] = ()           # vpcnet.io/security_groups (sorted, unique)

    def __post_init__(self):
        me = f"pod {self.namespace}/{self.name}"
        for what in ("namespace", "name", "vpc", "subnet", "node"):
            _set(self, what, _name(me, what, getattr(self, what)))
        if self.labels or type(self.labels) is not tuple:
            _set(self, "labels", _labels(me, "labels", self.labels))
        if self.named_ports or type(self.named_ports) is not tuple:
            _set(self, "named_ports", _named_ports(me, self.named_ports))
        if self.security_groups or type(self.security_groups) is not tuple:
            _set(self, "security_groups", _names(me, "security_groups", self.security_groups))
        _set(self, "ips", tuple(_ip(me, "ips", i) for i in _tuple(me, "ips", self.ips)))
        if type(self.mac) is str and _CANON_MAC_RE.fullmatch(self.mac):
            mac, multicast = self.mac, int(self.mac[:2], 16) & 1   # canonical already
        else:
            try:
                eui = netaddr.EUI(self.mac, dialect=netaddr.mac_unix_expanded)
            except (netaddr.AddrFormatError, TypeError, ValueError):
                raise InputError(f"{me}: bad mac {self.mac!r}") from None
            mac, multicast = str(eui), int(eui) & (1 << 40)
        if multicast or mac.startswith(ROUTER_MAC_PREFIX):
            raise InputError(f"{me}: mac {mac} is multicast or in the reserved router range")
        _set(self, "mac", mac)
        if self.ofport is not None:
            _int(me, "ofport", self.ofport, 1, OFPP_MAX - 1)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def owner(self) -> str:
        return f"pod/{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        """The container port called ``name`` for ``protocol`` (TCP/UDP/SCTP), or None."""
        for n, proto, port in self.named_ports:
            if n == name and proto == protocol:
                return port
        return None


@dataclass(frozen=True)
class NodeIn:
    name: str
    datapath_id: int
    uplink_ofport: int
    bridge: str = "br-int"
    external_ofport: int | None = None   # the node's external NIC on the bridge (NodePort clients)
    node_ip: str | None = None           # the node's IPv4 address there (on the bridge's LOCAL port)

    def __post_init__(self):
        me = f"node {self.name!r}"
        _set(self, "name", _name(me, "name", self.name))
        _int(me, "datapath_id", self.datapath_id, 0, (1 << 64) - 1)
        _int(me, "uplink_ofport", self.uplink_ofport, 1, OFPP_MAX - 1)
        if (self.external_ofport is None) != (self.node_ip is None):
            raise InputError(f"{me}: external_ofport and node_ip go together "
                             f"(got {self.external_ofport!r}, {self.node_ip!r})")
        if self.external_ofport is not None:
            _int(me, "external_ofport", self.external_ofport, 1, OFPP_MAX - 1)
            if self.external_ofport == self.uplink_ofport:
                raise InputError(f"{me}: external_ofport {self.external_ofport} is the uplink's")
            _set(self, "node_ip", _ip(me, "node_ip", self.node_ip))
            if ":" in self.node_ip:
                raise InputError(f"{me}: node_ip {self.node_ip} must be IPv4 (NodePorts are IPv4 here)")
        # derived from datapath_id (not a field: no effect on eq/hash)
        _set(self, "_router_mac", node_router_mac(self.datapath_id))

    @property
    def owner(self) -> str:
        return f"node/{self.name}"

    @property
    def router_mac(self) -> str:
        """The node router MAC: the source MAC of the packets this node routes."""
        return self._router_mac


def _mutual_peers(vpcs, by_name: dict, subnets_by_vpc: dict) -> dict[str, tuple[str, ...]]:
    """vpc -> the VPCs it is peered with (see ``ClusterIn.peers_of``)."""
    out: dict[str, list[str]] = {}
    for v in vpcs:
        for name in v.peers:
            p = by_name.get(name)
            if (p is None or v.name not in p.peers or v.name > name or v.l3_mode != "distributed"
                    or p.l3_mode != "distributed" or peering_overlap(v.name, name, subnets_by_vpc)):
                continue
            out.setdefault(v.name, []).append(name)
            out.setdefault(name, []).append(v.name)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def peering_overlap(a: str, b: str, subnets_by_vpc: dict) -> tuple[str, str] | None:
    """The first pair of overlapping CIDRs of VPCs ``a`` and ``b`` (None: disjoint)."""
    nets_a = [netaddr.IPNetwork(c) for s in subnets_by_vpc.get(a, ()) for c in s.cidrs]
    for s in subnets_by_vpc.get(b, ()):
        for c in s.cidrs:
            nb = netaddr.IPNetwork(c)
            for na in nets_a:
                if na.version == nb.version and na.first <= nb.last and nb.first <= na.last:
                    return str(na.cidr), str(nb.cidr)
    return None


def _index(items: Iterable, key, what: str) -> dict:
    out: dict = {}
    for it in items:
        k = key(it)
        if k in out:
            raise InputError(f"duplicate {what} {k!r}")
        out[k] = it
    return out


def _mac_clash(node: NodeIn, other: NodeIn) -> InputError:
    return InputError(f"node {node.name}: node router MAC {node.router_mac} (datapath_id {node.datapath_id:016x}) "
                      f"is also node {other.name}'s (datapath_id {other.datapath_id:016x}); give one of their "
                      f"bridges another datapath-id")


def _node_macs(nodes: Iterable[NodeIn]) -> dict[str, NodeIn]:
    """node router MAC -> node; InputError naming both nodes if two share one."""
    out: dict[str, NodeIn] = {}
    for n in nodes:
        other = out.get(n.router_mac)
        if other is not None:
            raise _mac_clash(*sorted((n, other), key=lambda x: x.name))
        out[n.router_mac] = n
    return out


def _pod_key(p: PodIn) -> tuple[str, str]:
    return (p.namespace, p.name)


class _PodName:
    """``pod <namespace>/<name>`` for error messages, formatted only if one is raised."""

    __slots__ = ("p",)

    def __init__(self, p: PodIn):
        self.p = p

    def __format__(self, spec: str) -> str:
        return f"pod {self.p.namespace}/{self.p.name}"


def _claims(p: PodIn) -> list[tuple]:
    """What a pod holds exclusively: its IPs in its VPC, its MAC in its subnet, its port on its node."""
    out = [("ip", p.vpc, ip) for ip in p.ips]
    out.append(("mac", p.subnet, p.mac))
    if p.ofport is not None:
        out.append(("port", p.node, p.ofport))
    return out


_DEL = PMap.DELETE
_MISS = object()
_NO_VPCS: frozenset[str] = frozenset()


@dataclass(frozen=True, eq=False)
class ClusterIn:
    """The whole intent, validated across objects, with lookup helpers.

    A pod is *active* when its port is wired (``ofport`` set) and its node is known; only
    active pods produce flows anywhere.

    Values are immutable. Besides the constructor (which sorts, indexes and validates
    everything), new values are derived cheaply from an old one: ``with_pod``/``without_pod``
    (and the batch ``with_pods``/``without_pods``) validate only what the pods touch (subnet and
    VPC membership, IP/MAC/ofport uniqueness) and share every untouched index with the old value
    (the big indexes are persistent maps, see pmap.py), so one pod costs microseconds, not a
    rebuild. ``with_node``/``without_node`` scan the pods once (no re-validation);
    ``with_subnet``/``without_subnet``/``with_vpc``/``without_vpc`` rebuild through the
    constructor. An invalid change raises InputError (naming the object and field) and leaves
    the old value as it was. A derived value equals (``==``, same lookups, same compiled flows)
    the value the constructor builds from the same objects.

    Nodes: names are unique, and so are their node router MACs (``NodeIn.router_mac``, derived
    from the datapath id): two nodes whose MACs collide are refused with an InputError naming
    both (by the constructor and by ``with_node``), since their routed packets would make the
    leaves see one MAC move between them.

    ``pods`` is the sorted tuple of all pods; a derived value builds it on first access
    (O(n log n)), so incremental users should stick to the lookups.

    ``vpc_memo(vpc)`` is a dict for values derived from one VPC's *slice* (the VPC, its subnets,
    its active pods; compile.py keeps its per-VPC flow tables there). A derived value shares the
    memo of every VPC whose slice its change did not touch (their slices are identical).
    """

    vpcs: tuple[VpcIn, ...] = ()
    subnets: tuple[SubnetIn, ...] = ()
    pods: tuple[PodIn, ...] = field(default_factory=tuple)  # no class attribute: see __getattr__
    nodes: tuple[NodeIn, ...] = ()
    namespaces: tuple[NamespaceIn, ...] = ()
    security_groups: tuple[SecurityGroupIn, ...] = ()
    network_policies: tuple[NetworkPolicyIn, ...] = ()
    services: tuple[ServiceIn, ...] = ()

    def __post_init__(self):
        self._set_security(self.namespaces, self.security_groups, self.network_policies)
        _set(self, "vpcs", tuple(sorted(self.vpcs, key=lambda v: v.name)))
        _set(self, "subnets", tuple(sorted(self.subnets, key=lambda s: s.name)))
        _set(self, "pods", tuple(sorted(self.pods, key=_pod_key)))
        _set(self, "nodes", tuple(sorted(self.nodes, key=lambda n: n.name)))
        _set(self, "_vpcs", _index(self.vpcs, lambda v: v.name, "vpc"))
        self._set_services(self.services)
        _set(self, "_subnets", _index(self.subnets, lambda s: s.name, "subnet"))
        pods = _index(self.pods, _pod_key, "pod")
        _set(self, "_nodes", _index(self.nodes, lambda n: n.name, "node"))
        _set(self, "_node_macs", _node_macs(self.nodes))
        by_vpc: dict[str, list] = {}
        for s in self.subnets:
            by_vpc.setdefault(s.vpc, []).append(s)
        _set(self, "_subnets_by_vpc", {k: tuple(v) for k, v in by_vpc.items()})
        claims = self._validate()
        _set(self, "_peering", _mutual_peers(self.vpcs, self._vpcs, self._subnets_by_vpc))
        _set(self, "_pods", PMap(pods))
        _set(self, "_claims", PMap(claims))
        active_by_vpc: dict[str, list] = {}
        local: dict[str, dict[str, list]] = {}
        vpcs_by_node: dict[str, set] = {}
        nodes_by_vpc: dict[str, set] = {}
        for p in self.pods:
            if p.ofport is not None and p.node in self._nodes:
                active_by_vpc.setdefault(p.vpc, []).append(p)
                local.setdefault(p.node, {}).setdefault(p.subnet, []).append(p)
                vpcs_by_node.setdefault(p.node, set()).add(p.vpc)
                nodes_by_vpc.setdefault(p.vpc, set()).add(p.node)
        _set(self, "_local", PMap({(n, s): tuple(ps) for n, d in local.items() for s, ps in d.items()}))
        _set(self, "_vpcs_by_node", {n: frozenset(v) for n, v in vpcs_by_node.items()})
        _set(self, "_nodes_by_vpc", {k: frozenset(v) for k, v in nodes_by_vpc.items()})
        _set(self, "_memo", PMap({vpc: {"active": tuple(v)} for vpc, v in active_by_vpc.items()}))
        _set(self, "_memo_new", {})

    def _set_security(self, namespaces, security_groups, network_policies) -> None:
        """Sort, index and check the policy objects (names unique; references to unknown security
        groups or namespaces are allowed and select nothing: objects arrive in any order)."""
        for what, items, tp in (("namespaces", namespaces, NamespaceIn), ("security_groups", security_groups,
                                SecurityGroupIn), ("network_policies", network_policies, NetworkPolicyIn)):
            for it in _tuple("cluster", what, items):
                if not isinstance(it, tp):
                    raise InputError(f"cluster: {what} entry {it!r} is not a {tp.__name__}")
        _set(self, "namespaces", tuple(sorted(namespaces, key=lambda n: n.name)))
        _set(self, "security_groups", tuple(sorted(security_groups, key=lambda g: g.name)))
        _set(self, "network_policies", tuple(sorted(network_policies, key=lambda n: n.key)))
        _set(self, "_namespaces", _index(self.namespaces, lambda n: n.name, "namespace"))
        _set(self, "_security_groups", _index(self.security_groups, lambda g: g.name, "security group"))
        _index(self.network_policies, lambda n: n.key, "network policy")

    def _set_services(self, services) -> None:
        """Sort, index and check the services: the VPC known, cluster IPs and node ports (per
        protocol) unique cluster-wide (a cluster IP or node port names its VPC)."""
        items = _tuple("cluster", "services", services)
        for s in items:
            if not isinstance(s, ServiceIn):
                raise InputError(f"cluster: services entry {s!r} is not a ServiceIn")
            if s.vpc not in self._vpcs:
                raise InputError(f"service {s.namespace}/{s.name}: unknown vpc {s.vpc!r}")
        _set(self, "services", tuple(sorted(items, key=lambda s: s.key)))
        _set(self, "_services", _index(self.services, lambda s: s.key, "service"))
        _index([s for s in self.services if s.cluster_ip is not None], lambda s: s.cluster_ip, "service cluster_ip")
        _index([(s, p) for s in self.services for p in s.ports if p.node_port], lambda sp: (sp[1].node_port,
               sp[1].protocol), "service node_port/protocol")

    def find_service(self, namespace: str, name: str) -> ServiceIn | None:
        return self._services.get((namespace, name))

    def with_services(self, services) -> "ClusterIn":
        """This cluster with other services; everything else (and every memo) is shared."""
        new = self._clone()
        new._set_services(tuple(services))
        _set(new, "_memo", self._shared_memo())
        _set(new, "_memo_new", {})
        return new

    @property
    def has_policy(self) -> bool:
        return bool(self.security_groups or self.network_policies)

    def namespace_labels(self, name: str) -> dict[str, str]:
        ns = self._namespaces.get(name)
        return ns.effective_labels if ns is not None else {NS_NAME_LABEL: name}

    def find_security_group(self, name: str) -> SecurityGroupIn | None:
        return self._security_groups.get(name)

    def with_security(self, *, namespaces=None, security_groups=None, network_policies=None) -> "ClusterIn":
        """This cluster with the given policy collections replaced (None: kept). Network values,
        their per-VPC memos and indexes are shared."""
        new = self._clone()
        new._set_security(self.namespaces if namespaces is None else tuple(namespaces),
                          self.security_groups if security_groups is None else tuple(security_groups),
                          self.network_policies if network_policies is None else tuple(network_policies))
        _set(new, "_memo", self._shared_memo())   # per-VPC network values do not depend on policy
        _set(new, "_memo_new", {})
        return new

    def _validate(self) -> dict:
        _index(self.vpcs, lambda v: v.vpc_id, "vpc_id")
        _index(self.subnets, lambda s: s.subnet_id, "subnet_id")
        _index(self.subnets, lambda s: s.vlan, "subnet vlan")
        for s in self.subnets:
            if s.vpc not in self._vpcs:
                raise InputError(f"subnet {s.name}: unknown vpc {s.vpc!r}")
            for a in s.allow_subnets:
                if a not in self._subnets or self._subnets[a].vpc != s.vpc:
                    raise InputError(f"subnet {s.name}: allow_subnets entry {a!r} is not a subnet of vpc {s.vpc}")
        for vpc in self.vpcs:
            nets = [(netaddr.IPNetwork(c), s.name) for s in self.subnets_of(vpc.name) for c in s.cidrs]
            for i, (a, an) in enumerate(nets):
                for b, bn in nets[i + 1:]:
                    if a.version == b.version and (a.first <= b.last and b.first <= a.last):
                        raise InputError(f"vpc {vpc.name}: subnets {an} and {bn} overlap ({a}, {b})")
        claims: dict = {}
        for p in self.pods:
            self._check_pod(p, claims.get, self._nodes)
            key = p.key
            for c in _claims(p):
                claims.setdefault(c, key)
        return claims

    def _check_pod(self, p: PodIn, holder, nodes: dict) -> None:
        """Raise InputError unless ``p`` fits: its subnet and VPC, and no IP (per VPC), MAC (per
        subnet) or ofport (per node, uplink included) of another pod. ``holder(claim)`` gives the
        key of the pod holding a claim (see ``_claims``), or None."""
        me = _PodName(p)
        key = p.key
        s = self._subnets.get(p.subnet)
        if s is None:
            raise InputError(f"{me}: unknown subnet {p.subnet!r}")
        if s.vpc != p.vpc:
            raise InputError(f"{me}: subnet {p.subnet} belongs to vpc {s.vpc}, not {p.vpc}")
        for ip in p.ips:
            if not s.contains(ip) or ip in s.gateways:
                raise InputError(f"{me}: ip {ip} is outside subnet {s.name} or is its gateway")
            other = holder(("ip", p.vpc, ip))
            if other is not None and other != key:
                raise InputError(f"{me}: ip {ip} already used by pod {'/'.join(other)} in vpc {p.vpc}")
        other = holder(("mac", p.subnet, p.mac))
        if other is not None and other != key:
            raise InputError(f"{me}: mac {p.mac} already used by pod {'/'.join(other)} in subnet {p.subnet}")
        if p.ofport is not None:
            other = holder(("port", p.node, p.ofport))
            node = nodes.get(p.node)
            if (other is not None and other != key) or (node is not None and p.ofport in (node.uplink_ofport,
                                                                                          node.external_ofport)):
                raise InputError(f"{me}: ofport {p.ofport} on node {p.node} is already in use")

    # --- value semantics ---
    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: ``pods`` of a derived value, built on demand.
        if name == "pods" and "_pods" in self.__dict__:
            pods = tuple(sorted(self._pods.values(), key=_pod_key))
            _set(self, "pods", pods)
            return pods
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __eq__(self, other) -> bool:
        if not isinstance(other, ClusterIn):
            return NotImplemented
        return (self is other or (self.vpcs == other.vpcs and self.subnets == other.subnets
                                  and self.nodes == other.nodes and self._pods == other._pods
                                  and self.namespaces == other.namespaces
                                  and self.security_groups == other.security_groups
                                  and self.network_policies == other.network_policies
                                  and self.services == other.services))

    def __hash__(self) -> int:
        return hash((self.vpcs, self.subnets, self.pods, self.nodes, self.namespaces, self.security_groups,
                     self.network_policies, self.services))

    def __reduce__(self):
        return (ClusterIn, (self.vpcs, self.subnets, self.pods, self.nodes, self.namespaces, self.security_groups,
                            self.network_policies, self.services))

    # --- lookups ---
    def vpc(self, name: str) -> VpcIn:
        return self._vpcs[name]

    def subnet(self, name: str) -> SubnetIn:
        return self._subnets[name]

    def pod(self, namespace: str, name: str) -> PodIn:
        return self._pods[(namespace, name)]

    def node(self, name: str) -> NodeIn:
        return self._nodes[name]

    def find_vpc(self, name: str) -> VpcIn | None:
        return self._vpcs.get(name)

    def find_subnet(self, name: str) -> SubnetIn | None:
        return self._subnets.get(name)

    def find_pod(self, namespace: str, name: str) -> PodIn | None:
        return self._pods.get((namespace, name))

    def find_node(self, name: str) -> NodeIn | None:
        return self._nodes.get(name)

    def is_active(self, pod: PodIn) -> bool:
        return pod.ofport is not None and pod.node in self._nodes

    def subnets_of(self, vpc: str) -> tuple[SubnetIn, ...]:
        return self._subnets_by_vpc.get(vpc, ())

    def active_pods_of_vpc(self, vpc: str) -> tuple[PodIn, ...]:
        """Active pods of ``vpc``, sorted by (namespace, name)."""
        nodes = self._nodes_by_vpc.get(vpc)
        if not nodes:
            return ()
        memo = self.vpc_memo(vpc)
        out = memo.get("active")
        if out is None:   # gathered from the nodes running the VPC (once per value and VPC)
            subnets = [s.name for s in self.subnets_of(vpc)]
            pods = []
            local = self._local
            for n in nodes:
                for s in subnets:
                    pods += local.get((n, s), ())
            out = memo["active"] = tuple(sorted(pods, key=_pod_key))
        return out

    def local_pods(self, node: str, subnet: str) -> tuple[PodIn, ...]:
        """Active pods of ``subnet`` wired on ``node``, sorted by (namespace, name)."""
        return self._local.get((node, subnet), ())

    def local_pods_by_subnet(self, node: str) -> dict[str, tuple[PodIn, ...]]:
        """subnet -> ``local_pods(node, subnet)`` for every subnet with an active pod on ``node``."""
        out = {}
        for vpc in self.vpcs_on_node(node):
            for s in self.subnets_of(vpc):
                pods = self._local.get((node, s.name))
                if pods:
                    out[s.name] = pods
        return out

    def vpcs_on_node(self, node: str) -> frozenset[str]:
        """VPCs *present* on ``node`` (only these get flows there): those with at least one active
        pod on it, and their peers (``peers_of``: a pod routes into a peer VPC on its own node,
        which therefore needs the peer's subnets and pod addresses)."""
        raw = self._vpcs_by_node.get(node, _NO_VPCS)
        if not self._peering or not raw:
            return raw
        memo = self.value_memo()
        hit = memo.get(("present", node))
        if hit is None:
            extra = {p for v in raw for p in self._peering.get(v, ())}
            hit = memo[("present", node)] = raw if extra <= raw else raw | extra
        return hit

    def nodes_with_external(self) -> tuple[NodeIn, ...]:
        """Nodes with an external port (NodePorts), by name. Kept with the nodes tuple it was
        read from, which derived values share until a node changes: a pod add recompiles its
        subnet's routes (which ask this) without scanning every node again."""
        hit = self.__dict__.get("_nodes_with_external")
        if hit is None or hit[0] is not self.nodes:
            hit = (self.nodes, tuple(n for n in self.nodes if n.external_ofport is not None))
            _set(self, "_nodes_with_external", hit)
        return hit[1]

    def nodes_with_vpc(self, vpc: str) -> frozenset[str]:
        """Nodes where ``vpc`` is present (see ``vpcs_on_node``)."""
        raw = self._nodes_by_vpc.get(vpc, _NO_VPCS)
        peers = self._peering.get(vpc) if self._peering else None
        if not peers:
            return raw
        memo = self.value_memo()
        hit = memo.get(("nodes", vpc))
        if hit is None:
            hit = raw.union(*(self._nodes_by_vpc.get(p, _NO_VPCS) for p in peers))
            memo[("nodes", vpc)] = hit = raw if hit == raw else hit
        return hit

    def peers_of(self, vpc: str) -> tuple[str, ...]:
        """The VPCs ``vpc`` is peered with: both list each other in ``peers``, both route
        (l3_mode distributed) and no CIDR of one overlaps a CIDR of the other (a peering whose
        address spaces overlap is not established: routing could not tell them apart)."""
        return self._peering.get(vpc, ())

    def value_memo(self) -> dict:
        """Scratch dict for values derived from this whole cluster value (never shared with a
        derived value)."""
        m = self.__dict__.get("_value_memo")
        if m is None:
            m = {}
            _set(self, "_value_memo", m)
        return m

    def vpc_memo(self, vpc: str) -> dict:
        """Scratch dict for values derived from ``vpc``'s slice only (see the class docstring)."""
        m = self._memo_new.get(vpc)
        if m is None:
            m = self._memo.get(vpc)
            if m is None:
                m = self._memo_new[vpc] = {}
        return m

    def _shared_memo(self) -> PMap:
        """Every VPC memo of this value as one persistent map (what derived values start from).
        Memos created since the last call are folded in (a cache update, not a value change)."""
        if self._memo_new:
            _set(self, "_memo", self._memo.evolve(self._memo_new))
            _set(self, "_memo_new", {})
        return self._memo

    # --- derived values ---
    def with_pod(self, pod: PodIn) -> "ClusterIn":
        """This cluster with ``pod`` added, or replacing the pod with the same namespace/name."""
        return self.with_pods((pod,))

    def with_pods(self, pods: Iterable[PodIn]) -> "ClusterIn":
        """This cluster with every pod of ``pods`` added or replacing its namesake (applied in
        order; two pods of one batch must not share a namespace/name)."""
        pods = tuple(pods)
        for p in pods:
            if not isinstance(p, PodIn):
                raise InputError(f"with_pods: {p!r} is not a PodIn")
        seen: set = set()
        for p in pods:
            if p.key in seen:
                raise InputError(f"duplicate pod {p.key!r}")
            seen.add(p.key)
        changed = [p for p in pods if self._pods.get(p.key) != p]
        if not changed:
            return self
        return self._derive([p.key for p in changed if p.key in self._pods], changed)

    def without_pod(self, namespace: str, name: str, *, missing_ok: bool = False) -> "ClusterIn":
        """This cluster without the pod ``namespace/name`` (KeyError if absent, unless missing_ok)."""
        return self.without_pods([(namespace, name)], missing_ok=missing_ok)

    def without_pods(self, keys: Iterable[tuple[str, str]], *, missing_ok: bool = False) -> "ClusterIn":
        """This cluster without the pods ``(namespace, name)`` of ``keys``."""
        keys = list(dict.fromkeys(tuple(k) for k in keys))
        missing = [k for k in keys if k not in self._pods]
        if missing and not missing_ok:
            raise KeyError(f"no pod {'/'.join(missing[0])}")
        keys = [k for k in keys if k in self._pods]
        return self._derive(keys, ()) if keys else self

    def with_node(self, node: NodeIn) -> "ClusterIn":
        """This cluster with ``node`` added or replacing its namesake. Replacing only checks the
        uplink port against the node's pods; adding activates the wired pods already scheduled
        there (one scan of the pods, no re-validation)."""
        if not isinstance(node, NodeIn):
            raise InputError(f"with_node: {node!r} is not a NodeIn")
        old = self._nodes.get(node.name)
        if old == node:
            return self
        other = self._node_macs.get(node.router_mac)
        if other is not None and other.name != node.name:
            raise _mac_clash(*sorted((node, other), key=lambda x: x.name))
        macs = dict(self._node_macs)
        if old is not None:
            del macs[old.router_mac]
        macs[node.router_mac] = node
        nodes = dict(self._nodes)
        nodes[node.name] = node
        ordered = tuple(sorted(nodes.values(), key=lambda n: n.name))
        if old is not None:
            for port in (node.uplink_ofport, node.external_ofport):
                other = self._claims.get(("port", node.name, port)) if port is not None else None
                if other is not None:
                    raise InputError(f"pod {'/'.join(other)}: ofport {port} on node {node.name} "
                                     f"is already in use")
            new = self._clone()
            _set(new, "nodes", ordered)
            _set(new, "_nodes", nodes)
            _set(new, "_node_macs", macs)
            _set(new, "_memo", self._shared_memo())   # per-VPC values do not depend on node values
            _set(new, "_memo_new", {})
            return new
        on_node = [p for p in self._pods.values() if p.node == node.name]
        new = self._derive([p.key for p in on_node], on_node, nodes=nodes, ordered_nodes=ordered)
        _set(new, "_node_macs", macs)
        return new

    def without_node(self, name: str, *, missing_ok: bool = False) -> "ClusterIn":
        """This cluster without node ``name``; its pods stay, inactive, until they move."""
        if name not in self._nodes:
            if missing_ok:
                return self
            raise KeyError(f"no node {name}")
        nodes = {k: v for k, v in self._nodes.items() if k != name}
        ordered = tuple(n for n in self.nodes if n.name != name)
        on_node = [p for p in self._pods.values() if p.node == name]
        new = self._derive([p.key for p in on_node], on_node, nodes=nodes, ordered_nodes=ordered)
        _set(new, "_node_macs", {m: n for m, n in self._node_macs.items() if n.name != name})
        return new

    def with_subnet(self, subnet: SubnetIn) -> "ClusterIn":
        """This cluster with ``subnet`` added or replacing its namesake (rebuilt and re-validated)."""
        old = self._subnets.get(subnet.name)
        if old == subnet:
            return self
        subnets = [s for s in self.subnets if s.name != subnet.name] + [subnet]
        touched = {subnet.vpc} | ({old.vpc} if old is not None else set())
        return self._rebuild(self.vpcs, subnets, self.nodes, touched)

    def without_subnet(self, name: str) -> "ClusterIn":
        """This cluster without subnet ``name`` (rebuilt; InputError if a pod still uses it)."""
        old = self.subnet(name)
        return self._rebuild(self.vpcs, [s for s in self.subnets if s.name != name], self.nodes, {old.vpc})

    def with_vpc(self, vpc: VpcIn) -> "ClusterIn":
        """This cluster with ``vpc`` added or replacing its namesake (rebuilt and re-validated)."""
        if self._vpcs.get(vpc.name) == vpc:
            return self
        return self._rebuild([v for v in self.vpcs if v.name != vpc.name] + [vpc], self.subnets, self.nodes,
                             {vpc.name})

    def without_vpc(self, name: str) -> "ClusterIn":
        """This cluster without VPC ``name`` (rebuilt; InputError if a subnet still uses it)."""
        self.vpc(name)
        return self._rebuild([v for v in self.vpcs if v.name != name], self.subnets, self.nodes, {name})

    # --- derivation internals ---
    def _rebuild(self, vpcs, subnets, nodes, touched: set[str]) -> "ClusterIn":
        new = ClusterIn(tuple(vpcs), tuple(subnets), self.pods, tuple(nodes), self.namespaces,
                        self.security_groups, self.network_policies, self.services)
        _set(new, "_memo", new._memo.evolve({v: m for v, m in self._shared_memo().items() if v not in touched}))
        return new

    def _clone(self) -> "ClusterIn":
        new = object.__new__(ClusterIn)
        new.__dict__.update(self.__dict__)
        new.__dict__.pop("_value_memo", None)
        return new

    def _derive(self, removes: Iterable[tuple[str, str]], adds: Iterable[PodIn], *,
                nodes: dict | None = None, ordered_nodes: tuple | None = None) -> "ClusterIn":
        """Remove the pods ``removes`` (activity judged with the current nodes), then add ``adds``
        (validated against what remains, activity judged with ``nodes``), sharing the rest."""
        new_nodes = self._nodes if nodes is None else nodes
        pods_ch: dict = {}
        claims_ch: dict = {}

        def lookup(pmap: PMap, changes: dict):
            def get(k):
                v = changes.get(k, _MISS)
                if v is _MISS:
                    return pmap.get(k)
                return None if v is _DEL else v
            return get

        pod_of, holder = lookup(self._pods, pods_ch), lookup(self._claims, claims_ch)
        local_ch: dict[tuple[str, str], tuple] = {}    # (node, subnet) -> its new local pods
        touched_nv: set[tuple[str, str]] = set()       # (node, vpc) whose presence may change
        added_nv: set[tuple[str, str]] = set()         # (node, vpc) that got an active pod
        touched_vpcs: set[str] = set()

        def local(n: str, s: str) -> tuple:
            v = local_ch.get((n, s))
            return self._local.get((n, s), ()) if v is None else v

        for key in removes:
            old = pod_of(key)
            if old is None:
                raise KeyError(f"no pod {'/'.join(key)}")
            pods_ch[key] = _DEL
            for c in _claims(old):   # a pod holds all its claims (checked when it came in)
                claims_ch[c] = _DEL
            touched_vpcs.add(old.vpc)
            if old.ofport is not None and old.node in self._nodes:
                local_ch[(old.node, old.subnet)] = tuple(p for p in local(old.node, old.subnet) if p.key != key)
                touched_nv.add((old.node, old.vpc))

        for p in adds:
            key = p.key
            if pod_of(key) is not None:
                raise InputError(f"duplicate pod {key!r}")
            self._check_pod(p, holder, new_nodes)
            pods_ch[key] = p
            for c in _claims(p):     # free, or already this pod's (_check_pod)
                claims_ch[c] = key
            touched_vpcs.add(p.vpc)
            if p.ofport is not None and p.node in new_nodes:
                local_ch[(p.node, p.subnet)] = tuple(sorted(local(p.node, p.subnet) + (p,), key=_pod_key))
                touched_nv.add((p.node, p.vpc))
                added_nv.add((p.node, p.vpc))

        new = self._clone()
        new.__dict__.pop("pods", None)              # rebuilt on demand (see __getattr__)
        if nodes is not None:
            _set(new, "_nodes", nodes)
            _set(new, "nodes", ordered_nodes)
        _set(new, "_pods", self._pods.evolve(pods_ch))
        _set(new, "_claims", self._claims.evolve(claims_ch))

        _set(new, "_local", self._local.evolve({k: v if v else _DEL for k, v in local_ch.items()}))

        vbn_ch: dict[str, frozenset] = {}
        nbv: dict | None = None
        for node, vpc in touched_nv:
            present = (node, vpc) in added_nv or any(local(node, s.name) for s in self.subnets_of(vpc))
            cur = vbn_ch.get(node)
            if cur is None:
                cur = self._vpcs_by_node.get(node, _NO_VPCS)
            if present == (vpc in cur):
                continue
            vbn_ch[node] = cur | {vpc} if present else cur - {vpc}
            if nbv is None:
                nbv = dict(self._nodes_by_vpc)
            nodes_v = nbv.get(vpc, _NO_VPCS)
            nodes_v = nodes_v | {node} if present else nodes_v - {node}
            if nodes_v:
                nbv[vpc] = nodes_v
            else:
                nbv.pop(vpc, None)
        if vbn_ch:
            vbn = dict(self._vpcs_by_node)
            for n, v in vbn_ch.items():
                if v:
                    vbn[n] = v
                else:
                    vbn.pop(n, None)
            _set(new, "_vpcs_by_node", vbn)
        if nbv is not None:
            _set(new, "_nodes_by_vpc", nbv)
        _set(new, "_memo", self._shared_memo().evolve(dict.fromkeys(touched_vpcs, _DEL)))
        _set(new, "_memo_new", {})
        return new

