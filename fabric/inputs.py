"""The fabric compiler's input values: frozen, validated, canonical.

Nothing here reads a database. The app builds a :class:`FabricIn` from the state DB (VPC and
Subnet rows with their allocated ``vni``/``vlan``, Node and Leaf specs) and hands it to
:func:`vpcnet.fabric.compile.compile_fabric`. :meth:`FabricIn.from_dicts` accepts plain dicts
shaped like those rows and specs (``leafPort`` or ``leaf_port``, ``cidrBlock`` or ``cidrs``, ...).

Every problem raises :class:`InputError` whose message names the object, the field and the value,
e.g. ``subnet shop-a: vni=5 is outside the VNI ranges vpcnet owns (10000-19999, 50000-59999)``.

Leaf fields that the Leaf spec does not have (yet) and that this module accepts as optional keys:

* ``peers``: ``[{"address": ..., "asn": ..., "description": ...}]``: the leaf's BGP EVPN
  neighbours (spines or route servers). When absent, every NETCONF leaf peers with every other
  NETCONF leaf, loopback to loopback (full mesh, see compile.py).
* ``routerId``: BGP router id and route-distinguisher administrator; default ``vtepIp``.
* ``vtepInterface``: the loopback carrying ``vtepIp`` (NVE source, BGP update source); default
  chosen by the renderer for its model.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import netaddr

__all__ = [
    "InputError", "Ownership", "VpcIn", "SubnetIn", "NodeIn", "PeerIn", "LeafIn", "FabricIn",
    "L3_MODES", "LEAF_MODELS", "MAX_VNI",
]

MAX_VNI = 16777215
L3_MODES = ("distributed", "fabric")   # Vpc spec.l3Mode; "fabric": the leaves' anycast gateway routes
LEAF_MODELS = ("openconfig", "nxos", "huawei", "vpcnet-leaf")
_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,11}")


class InputError(ValueError):
    """Invalid fabric input; the message names the object, the field and the value."""


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


def _int(me: str, what: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{me}: {what}={value!r} must be an integer in {lo}..{hi}")
    return value


def _name(me: str, what: str, value) -> str:
    if not isinstance(value, str) or not value or "/" in value or value != value.strip() \
            or any(c.isspace() for c in value):
        raise InputError(f"{me}: {what}={value!r} must be a non-empty name without '/' or spaces")
    return value


def _port(me: str, what: str, value) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise InputError(f"{me}: {what}={value!r} must be a non-empty interface name without spaces")
    return value


def _ipv4(me: str, what: str, value) -> str:
    try:
        addr = netaddr.IPAddress(value) if isinstance(value, str) else None
    except (netaddr.AddrFormatError, ValueError):
        addr = None
    if addr is None or addr.version != 4:
        raise InputError(f"{me}: {what}={value!r} must be an IPv4 address")
    return str(addr)


def _ip(me: str, what: str, value) -> str:
    try:
        if isinstance(value, str):
            return str(netaddr.IPAddress(value))
    except (netaddr.AddrFormatError, ValueError):
        pass
    raise InputError(f"{me}: {what}={value!r} must be an IP address")


def _seq(me: str, what: str, value) -> tuple:
    """A list, tuple or comma-separated string -> tuple of stripped items."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise InputError(f"{me}: {what}={value!r} must be a list or a comma-separated string")


def _ranges(what: str, value, hi: int) -> tuple[tuple[int, int], ...]:
    out = []
    for item in _seq("ownership", what, value):
        if isinstance(item, str) and "-" in item:
            lo_s, _, hi_s = item.partition("-")
            item = (int(lo_s) if lo_s.isdigit() else lo_s, int(hi_s) if hi_s.isdigit() else hi_s)
        if isinstance(item, int) and not isinstance(item, bool):
            item = (item, item)
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InputError(f"ownership: {what} entry {item!r} must be a (low, high) pair or 'low-high'")
        lo_v = _int("ownership", what, item[0], 1, hi)
        hi_v = _int("ownership", what, item[1], 1, hi)
        if lo_v > hi_v:
            raise InputError(f"ownership: {what} entry {lo_v}-{hi_v} is an empty range")
        out.append((lo_v, hi_v))
    if not out:
        raise InputError(f"ownership: {what} must name at least one range")
    return tuple(sorted(out))


def ranges_text(ranges: Iterable[tuple[int, int]]) -> str:
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


@dataclass(frozen=True)
class Ownership:
    """What vpcnet owns on every leaf; drift detection and deletes never look outside it.

    * ``vlans``/``vnis``: the VLAN and VNI ranges vpcnet allocates from. The defaults mirror the
      allocator in app/store.py: subnet VLANs from 100, L2VNI = 10000 + VLAN, L3VNI from 50000.
    * ``prefix``: every VRF and MAC-VRF name vpcnet creates starts with it.
    * ``tag``: the description marker of entries vpcnet adds to shared lists (BGP neighbours).
    """

    vlans: tuple[tuple[int, int], ...] = ((100, 4094),)
    vnis: tuple[tuple[int, int], ...] = ((10000, 19999), (50000, 59999))
    prefix: str = "vpcnet-"
    tag: str = "vpcnet"

    def __post_init__(self):
        _set(self, "vlans", _ranges("vlans", self.vlans, 4094))
        _set(self, "vnis", _ranges("vnis", self.vnis, MAX_VNI))
        if not isinstance(self.prefix, str) or not _PREFIX_RE.fullmatch(self.prefix.rstrip("-")) \
                or not self.prefix.endswith("-"):
            raise InputError(f"ownership: prefix={self.prefix!r} must be 1-12 letters/digits/'_'/'-' "
                             "starting with a letter and ending with '-'")
        if not isinstance(self.tag, str) or not _PREFIX_RE.fullmatch(self.tag):
            raise InputError(f"ownership: tag={self.tag!r} must be 1-12 letters/digits/'_'/'-'")

    def owns_vlan(self, vlan: int) -> bool:
        return any(lo <= vlan <= hi for lo, hi in self.vlans)

    def owns_vni(self, vni: int) -> bool:
        return any(lo <= vni <= hi for lo, hi in self.vnis)

    def owns_name(self, name: str | None) -> bool:
        return bool(name) and name.startswith(self.prefix)

    def owns_description(self, text: str | None) -> bool:
        return bool(text) and (text == self.tag or text.startswith(self.tag + ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Ownership":
        if data is None:
            return cls()
        unknown = set(data) - {"vlans", "vnis", "prefix", "tag"}
        if unknown:
            raise InputError(f"ownership: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**dict(data))


@dataclass(frozen=True)
class VpcIn:
    name: str
    vni: int                       # the VPC's L3VNI (Vpc row column ``vni``)
    l3_mode: str = "distributed"

    def __post_init__(self):
        _name(f"vpc {self.name!r}", "name", self.name)
        me = f"vpc {self.name}"
        _int(me, "vni", self.vni, 1, MAX_VNI)
        if self.l3_mode not in L3_MODES:
            raise InputError(f"{me}: l3Mode={self.l3_mode!r} must be one of {', '.join(L3_MODES)}")


@dataclass(frozen=True)
class SubnetIn:
    name: str
    vpc: str
    vlan: int                      # Subnet row column ``vlan`` (cluster-wide today)
    vni: int                       # Subnet row column ``vni`` (the L2VNI)
    cidrs: tuple[str, ...]
    gateways: tuple[str, ...] = ()

    def __post_init__(self):
        _name(f"subnet {self.name!r}", "name", self.name)
        me = f"subnet {self.name}"
        _name(me, "vpc", self.vpc)
        _int(me, "vlan", self.vlan, 1, 4094)
        _int(me, "vni", self.vni, 1, MAX_VNI)
        nets = []
        for text in _seq(me, "cidrBlock", self.cidrs):
            try:
                net = netaddr.IPNetwork(text) if isinstance(text, str) and "/" in text else None
            except (netaddr.AddrFormatError, ValueError):
                net = None
            if net is None or net.ip != net.network:
                raise InputError(f"{me}: cidrBlock has {text!r}, which is not a network address/prefix")
            nets.append(net)
        if not nets:
            raise InputError(f"{me}: cidrBlock must not be empty")
        _set(self, "cidrs", tuple(str(n.cidr) for n in nets))
        gws = tuple(_ip(me, "gateway", g) for g in _seq(me, "gateway", self.gateways))
        used: dict[str, str] = {}
        for gw in gws:
            net = next((n for n in nets if netaddr.IPAddress(gw) in n), None)
            if net is None:
                raise InputError(f"{me}: gateway {gw} is outside cidrBlock {','.join(self.cidrs)}")
            if str(net) in used:
                raise InputError(f"{me}: gateway {gw} is a second gateway for {net} "
                                 f"(already {used[str(net)]})")
            used[str(net)] = gw
        _set(self, "gateways", gws)

    def gateway_interfaces(self) -> tuple[str, ...]:
        """Each gateway with its CIDR's prefix length (``10.10.0.1/24``), in CIDR order."""
        out = []
        for cidr in self.cidrs:
            net = netaddr.IPNetwork(cidr)
            for gw in self.gateways:
                if netaddr.IPAddress(gw) in net:
                    out.append(f"{gw}/{net.prefixlen}")
        return tuple(out)


@dataclass(frozen=True)
class NodeIn:
    name: str
    leaf: str | None = None
    leaf_port: str | None = None

    def __post_init__(self):
        _name(f"node {self.name!r}", "name", self.name)
        me = f"node {self.name}"
        if (self.leaf is None) != (self.leaf_port is None):
            raise InputError(f"{me}: leaf={self.leaf!r} and leafPort={self.leaf_port!r} must be "
                             "set together")
        if self.leaf is not None:
            _name(me, "leaf", self.leaf)
            _port(me, "leafPort", self.leaf_port)


@dataclass(frozen=True)
class PeerIn:
    address: str
    asn: int
    description: str = ""

    def check(self, me: str) -> "PeerIn":
        _ip(me, "peers.address", self.address)
        _int(me, "peers.asn", self.asn, 1, 4294967295)
        if not isinstance(self.description, str):
            raise InputError(f"{me}: peers.description={self.description!r} must be a string")
        return self


@dataclass(frozen=True)
class LeafIn:
    name: str
    vtep_ip: str
    asn: int
    model: str = "openconfig"
    driver: str = "netconf"
    ports: tuple[str, ...] = ()
    router_id: str | None = None
    vtep_interface: str | None = None
    peers: tuple[PeerIn, ...] | None = None     # None: full mesh with the other NETCONF leaves

    def __post_init__(self):
        _name(f"leaf {self.name!r}", "name", self.name)
        me = f"leaf {self.name}"
        _set(self, "vtep_ip", _ipv4(me, "vtepIp", self.vtep_ip))
        _int(me, "asn", self.asn, 1, 4294967295)
        if self.driver not in ("netconf", "vtep"):
            raise InputError(f"{me}: driver={self.driver!r} must be netconf or vtep")
        if self.model not in LEAF_MODELS:
            raise InputError(f"{me}: model={self.model!r} must be one of {', '.join(LEAF_MODELS)}")
        ports = tuple(_port(me, "ports", p) for p in _seq(me, "ports", self.ports))
        if len(set(ports)) != len(ports):
            raise InputError(f"{me}: ports={list(ports)!r} lists a port more than once")
        _set(self, "ports", ports)
        _set(self, "router_id", _ipv4(me, "routerId", self.router_id or self.vtep_ip))
        if self.vtep_interface is not None:
            _port(me, "vtepInterface", self.vtep_interface)
        if self.peers is not None:
            peers = []
            for p in _seq(me, "peers", self.peers):
                if isinstance(p, Mapping):
                    unknown = set(p) - {"address", "asn", "description"}
                    if unknown or "address" not in p or "asn" not in p:
                        raise InputError(f"{me}: peers entry {dict(p)!r} must have address and asn "
                                         "(and optionally description)")
                    p = PeerIn(p["address"], p["asn"], p.get("description", ""))
                if not isinstance(p, PeerIn):
                    raise InputError(f"{me}: peers entry {p!r} must be a mapping")
                peers.append(p.check(me))
            _set(self, "peers", tuple(sorted(peers, key=lambda p: netaddr.IPAddress(p.address))))


# Keys accepted by from_dicts: spec/DB spellings -> field names; None = accepted and ignored.
_VPC_KEYS = {"name": "name", "vni": "vni", "l3Mode": "l3_mode", "l3_mode": "l3_mode",
             "namespaces": None, "peers": None, "strictRevocation": None}
_SUBNET_KEYS = {"name": "name", "vpc": "vpc", "vlan": "vlan", "vni": "vni", "cidrBlock": "cidrs",
                "cidrs": "cidrs", "gateway": "gateways", "gateways": "gateways", "excludeIps": None,
                "namespaces": None, "mtu": None, "private": None, "allowSubnets": None}
_NODE_KEYS = {"name": "name", "leaf": "leaf", "leafPort": "leaf_port", "leaf_port": "leaf_port",
              "datapathId": None, "bridge": None, "uplinkPort": None, "tunnelIp": None,
              "managementIp": None, "ovsdb": None}
_LEAF_KEYS = {"name": "name", "vtepIp": "vtep_ip", "vtep_ip": "vtep_ip", "asn": "asn",
              "model": "model", "driver": "driver", "ports": "ports", "routerId": "router_id",
              "router_id": "router_id", "vtepInterface": "vtep_interface",
              "vtep_interface": "vtep_interface", "peers": "peers", "managementAddress": None,
              "credentialsRef": None, "managementNamespace": None}


def _from(kind: str, cls, keys: dict, data) -> Any:
    if not isinstance(data, Mapping):
        raise InputError(f"{kind} {data!r}: must be a mapping")
    name = data.get("name")
    kwargs = {}
    for key, value in data.items():
        if key not in keys:
            raise InputError(f"{kind} {name}: unknown field {key!r}")
        if keys[key] is not None and value is not None:
            kwargs[keys[key]] = value
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InputError(f"{kind} {name}: missing field(s) {', '.join(missing)}")
    return cls(**kwargs)


def _unique(items: Iterable, key, what: str) -> dict:
    out: dict = {}
    for it in items:
        k = key(it)
        if k in out:
            raise InputError(f"{what} {k!r} is given twice")
        out[k] = it
    return out


@dataclass(frozen=True, eq=True)
class FabricIn:
    """The whole fabric intent, validated across objects. Tuples are sorted by name."""

    vpcs: tuple[VpcIn, ...] = ()
    subnets: tuple[SubnetIn, ...] = ()
    nodes: tuple[NodeIn, ...] = ()
    leaves: tuple[LeafIn, ...] = ()
    ownership: Ownership = field(default_factory=Ownership)
    route_target_asn: int | None = None   # None: the lowest ASN of the NETCONF leaves

    def __post_init__(self):
        for what in ("vpcs", "subnets", "nodes", "leaves"):
            _set(self, what, tuple(sorted(getattr(self, what), key=lambda o: o.name)))
        vpcs = _unique(self.vpcs, lambda v: v.name, "vpc")
        _unique(self.subnets, lambda s: s.name, "subnet")
        _unique(self.nodes, lambda n: n.name, "node")
        leaves = _unique(self.leaves, lambda lf: lf.name, "leaf")
        own = self.ownership
        vni_holder: dict[int, str] = {}
        for v in self.vpcs:
            if not own.owns_vni(v.vni):
                raise InputError(f"vpc {v.name}: vni={v.vni} is outside the VNI ranges vpcnet owns "
                                 f"({ranges_text(own.vnis)})")
            vni_holder[v.vni] = f"vpc {v.name}"
        vlan_holder: dict[int, str] = {}
        for s in self.subnets:
            me = f"subnet {s.name}"
            if s.vpc not in vpcs:
                raise InputError(f"{me}: vpc={s.vpc!r} is not a known VPC")
            if not own.owns_vlan(s.vlan):
                raise InputError(f"{me}: vlan={s.vlan} is outside the VLAN ranges vpcnet owns "
                                 f"({ranges_text(own.vlans)})")
            if not own.owns_vni(s.vni):
                raise InputError(f"{me}: vni={s.vni} is outside the VNI ranges vpcnet owns "
                                 f"({ranges_text(own.vnis)})")
            if s.vni in vni_holder:
                raise InputError(f"{me}: vni={s.vni} is already used by {vni_holder[s.vni]}")
            if s.vlan in vlan_holder:
                raise InputError(f"{me}: vlan={s.vlan} is already used by {vlan_holder[s.vlan]}")
            vni_holder[s.vni] = me
            vlan_holder[s.vlan] = me
        port_holder: dict[tuple[str, str], str] = {}
        for n in self.nodes:
            if n.leaf is None:
                continue
            me = f"node {n.name}"
            leaf = leaves.get(n.leaf)
            if leaf is None:
                raise InputError(f"{me}: leaf={n.leaf!r} is not a known Leaf")
            if leaf.ports and n.leaf_port not in leaf.ports:
                raise InputError(f"{me}: leafPort={n.leaf_port!r} is not in the ports of leaf "
                                 f"{leaf.name} ({', '.join(leaf.ports)})")
            other = port_holder.setdefault((n.leaf, n.leaf_port), n.name)
            if other != n.name:
                raise InputError(f"{me}: leafPort={n.leaf_port!r} on leaf {n.leaf} is already used "
                                 f"by node {other}")
        _unique((lf for lf in self.leaves if lf.driver == "netconf"), lambda lf: lf.vtep_ip,
                "leaf vtepIp")
        if self.route_target_asn is not None:
            _int("fabric", "route_target_asn", self.route_target_asn, 1, 4294967295)

    @classmethod
    def from_dicts(cls, *, vpcs=(), subnets=(), nodes=(), leaves=(), ownership=None,
                   route_target_asn=None) -> "FabricIn":
        """Build from plain dicts shaped like the state DB rows and specs (see module doc)."""
        own = ownership if isinstance(ownership, Ownership) else Ownership.from_dict(ownership)
        return cls(
            vpcs=tuple(_from("vpc", VpcIn, _VPC_KEYS, d) for d in vpcs),
            subnets=tuple(_from("subnet", SubnetIn, _SUBNET_KEYS, d) for d in subnets),
            nodes=tuple(_from("node", NodeIn, _NODE_KEYS, d) for d in nodes),
            leaves=tuple(_from("leaf", LeafIn, _LEAF_KEYS, d) for d in leaves),
            ownership=own, route_target_asn=route_target_asn)

    def vpc(self, name: str) -> VpcIn:
        return next(v for v in self.vpcs if v.name == name)

    def leaf(self, name: str) -> LeafIn:
        return next(lf for lf in self.leaves if lf.name == name)
