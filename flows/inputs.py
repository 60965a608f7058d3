"""The compiler's input values: frozen, validated, canonical (built by the app from the state DB).

Nothing here reads a database; the app layer builds these values and hands them to
``compile.py``. Constructors normalise (lower-case MACs, canonical IPs/CIDRs, tuples) and raise
``InputError`` naming the offending object and field.

Router MAC: every VPC has one fixed distributed-router MAC, ``0e:76:70:ff:HH:LL`` where HHLL is
the 16-bit ``vpc_id`` (``router_mac(7) == "0e:76:70:ff:00:07"``). It is the gateway MAC of every
subnet of that VPC, on every node. The ``0e:76:70:ff`` prefix (locally administered, unicast)
is reserved: pod MACs may not use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

import netaddr

from .model import OFPP_MAX

ROUTER_MAC_PREFIX = "0e:76:70:ff"
L3_MODES = ("distributed", "none")


class InputError(ValueError):
    """Invalid compiler input; the message names the object and field."""


def router_mac(vpc_id: int) -> str:
    if not 0 < vpc_id <= 0xFFFF:
        raise InputError(f"vpc_id {vpc_id}: must be 1..65535 to derive a router MAC")
    return f"{ROUTER_MAC_PREFIX}:{vpc_id >> 8:02x}:{vpc_id & 0xFF:02x}"


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


def _int(obj, what: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{obj}: {what}={value!r} must be an integer in {lo}..{hi}")
    return value


def _name(obj, what: str, value) -> str:
    if not isinstance(value, str) or not value or "/" in value or value != value.strip():
        raise InputError(f"{obj}: {what}={value!r} must be a non-empty name without '/'")
    return value


def _ip(obj, what: str, value) -> str:
    try:
        return str(netaddr.IPAddress(value))
    except (netaddr.AddrFormatError, TypeError, ValueError):
        raise InputError(f"{obj}: {what} has a bad IP address {value!r}") from None


def _cidr(obj, what: str, value) -> str:
    try:
        net = netaddr.IPNetwork(value)
    except (netaddr.AddrFormatError, TypeError, ValueError):
        raise InputError(f"{obj}: {what} has a bad CIDR {value!r}") from None
    if net.ip != net.network:
        raise InputError(f"{obj}: {what} CIDR {value!r} has host bits set")
    return str(net.cidr)


def _tuple(obj, what: str, value) -> tuple:
    if isinstance(value, str):
        raise InputError(f"{obj}: {what} must be a sequence, not a string")
    return tuple(value)


@dataclass(frozen=True)
class VpcIn:
    name: str
    vpc_id: int
    vni: int
    l3_mode: str = "distributed"   # "distributed": route between subnets; "none": no routing

    def __post_init__(self):
        _name(f"vpc {self.name!r}", "name", self.name)
        _int(f"vpc {self.name}", "vpc_id", self.vpc_id, 1, 0xFFFF)
        _int(f"vpc {self.name}", "vni", self.vni, 1, (1 << 24) - 1)
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
        _name(me, "name", self.name)
        _name(me, "vpc", self.vpc)
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

    @property
    def owner(self) -> str:
        return f"subnet/{self.name}"

    def contains(self, ip: str) -> bool:
        addr = netaddr.IPAddress(ip)
        return any(addr in netaddr.IPNetwork(c) for c in self.cidrs)


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

    def __post_init__(self):
        me = f"pod {self.namespace}/{self.name}"
        for what in ("namespace", "name", "vpc", "subnet", "node"):
            _name(me, what, getattr(self, what))
        _set(self, "ips", tuple(_ip(me, "ips", i) for i in _tuple(me, "ips", self.ips)))
        try:
            eui = netaddr.EUI(self.mac, dialect=netaddr.mac_unix_expanded)
        except (netaddr.AddrFormatError, TypeError, ValueError):
            raise InputError(f"{me}: bad mac {self.mac!r}") from None
        mac = str(eui)
        if int(eui) & (1 << 40) or mac.startswith(ROUTER_MAC_PREFIX):
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


@dataclass(frozen=True)
class NodeIn:
    name: str
    datapath_id: int
    uplink_ofport: int
    bridge: str = "br-int"

    def __post_init__(self):
        me = f"node {self.name!r}"
        _name(me, "name", self.name)
        _int(me, "datapath_id", self.datapath_id, 0, (1 << 64) - 1)
        _int(me, "uplink_ofport", self.uplink_ofport, 1, OFPP_MAX - 1)

    @property
    def owner(self) -> str:
        return f"node/{self.name}"


def _index(items: Iterable, key, what: str) -> dict:
    out: dict = {}
    for it in items:
        k = key(it)
        if k in out:
            raise InputError(f"duplicate {what} {k!r}")
        out[k] = it
    return out


@dataclass(frozen=True)
class ClusterIn:
    """The whole intent, validated across objects, with lookup helpers.

    A pod is *active* when its port is wired (``ofport`` set) and its node is known; only
    active pods produce flows anywhere.
    """

    vpcs: tuple[VpcIn, ...] = ()
    subnets: tuple[SubnetIn, ...] = ()
    pods: tuple[PodIn, ...] = ()
    nodes: tuple[NodeIn, ...] = ()
    _vpcs: dict = field(init=False, repr=False, compare=False, hash=False)
    _subnets: dict = field(init=False, repr=False, compare=False, hash=False)
    _pods: dict = field(init=False, repr=False, compare=False, hash=False)
    _nodes: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        _set(self, "vpcs", tuple(sorted(self.vpcs, key=lambda v: v.name)))
        _set(self, "subnets", tuple(sorted(self.subnets, key=lambda s: s.name)))
        _set(self, "pods", tuple(sorted(self.pods, key=lambda p: p.key)))
        _set(self, "nodes", tuple(sorted(self.nodes, key=lambda n: n.name)))
        _set(self, "_vpcs", _index(self.vpcs, lambda v: v.name, "vpc"))
        _set(self, "_subnets", _index(self.subnets, lambda s: s.name, "subnet"))
        _set(self, "_pods", _index(self.pods, lambda p: p.key, "pod"))
        _set(self, "_nodes", _index(self.nodes, lambda n: n.name, "node"))
        self._validate()

    def _validate(self) -> None:
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
        seen_ip: dict = {}
        seen_mac: dict = {}
        seen_port: dict = {}
        for p in self.pods:
            me = f"pod {p.namespace}/{p.name}"
            s = self._subnets.get(p.subnet)
            if s is None:
                raise InputError(f"{me}: unknown subnet {p.subnet!r}")
            if s.vpc != p.vpc:
                raise InputError(f"{me}: subnet {p.subnet} belongs to vpc {s.vpc}, not {p.vpc}")
            for ip in p.ips:
                if not s.contains(ip) or ip in s.gateways:
                    raise InputError(f"{me}: ip {ip} is outside subnet {s.name} or is its gateway")
                other = seen_ip.setdefault((p.vpc, ip), p.key)
                if other != p.key:
                    raise InputError(f"{me}: ip {ip} already used by pod {'/'.join(other)} in vpc {p.vpc}")
            other = seen_mac.setdefault((p.subnet, p.mac), p.key)
            if other != p.key:
                raise InputError(f"{me}: mac {p.mac} already used by pod {'/'.join(other)} in subnet {p.subnet}")
            if p.ofport is not None:
                other = seen_port.setdefault((p.node, p.ofport), p.key)
                node = self._nodes.get(p.node)
                if other != p.key or (node is not None and node.uplink_ofport == p.ofport):
                    raise InputError(f"{me}: ofport {p.ofport} on node {p.node} is already in use")

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

    @cached_property
    def _subnets_by_vpc(self) -> dict[str, tuple[SubnetIn, ...]]:
        out: dict[str, list] = {}
        for s in self.subnets:
            out.setdefault(s.vpc, []).append(s)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _active_by_vpc(self) -> dict[str, tuple[PodIn, ...]]:
        out: dict[str, list] = {}
        for p in self.pods:
            if self.is_active(p):
                out.setdefault(p.vpc, []).append(p)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _active_by_node_subnet(self) -> dict[tuple[str, str], tuple[PodIn, ...]]:
        out: dict[tuple[str, str], list] = {}
        for p in self.pods:
            if self.is_active(p):
                out.setdefault((p.node, p.subnet), []).append(p)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _vpcs_by_node(self) -> dict[str, frozenset[str]]:
        out: dict[str, set] = {}
        for p in self.pods:
            if self.is_active(p):
                out.setdefault(p.node, set()).add(p.vpc)
        return {k: frozenset(v) for k, v in out.items()}

    def subnets_of(self, vpc: str) -> tuple[SubnetIn, ...]:
        return self._subnets_by_vpc.get(vpc, ())

    def active_pods_of_vpc(self, vpc: str) -> tuple[PodIn, ...]:
        return self._active_by_vpc.get(vpc, ())

    def local_pods(self, node: str, subnet: str) -> tuple[PodIn, ...]:
        """Active pods of ``subnet`` wired on ``node``, sorted by (namespace, name)."""
        return self._active_by_node_subnet.get((node, subnet), ())

    def vpcs_on_node(self, node: str) -> frozenset[str]:
        """VPCs with at least one active pod on ``node`` (only these get flows there)."""
        return self._vpcs_by_node.get(node, frozenset())

    def nodes_with_vpc(self, vpc: str) -> frozenset[str]:
        return frozenset(p.node for p in self.active_pods_of_vpc(vpc))
