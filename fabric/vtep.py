"""Intent -> desired hardware_vtep state of each ``driver: vtep`` leaf. Pure: values in, values out.

A VTEP leaf is an OVSDB ``hardware_vtep`` switch (schema 1.7.0) without an EVPN control plane:
vpcnet writes into its database what EVPN would otherwise learn. ``compile_vtep(fabric, pods)``
returns ``{leaf name: VtepState}`` for every VTEP leaf; ``vpcnet.ovsdb.hwvtep.VtepDriver`` makes a
switch's database match one. Derivations:

* **Which subnets**: like the NETCONF leaves (compile.py), a VTEP leaf with at least one
  node-facing port (a Node whose ``leaf``/``leafPort`` points at it) carries every subnet; one
  without carries none (its vpcnet objects are removed).
* **Logical_Switch** per subnet: name ``<prefix>ls-<subnet>`` (at most :data:`MAX_LS_NAME`
  characters; longer names keep a prefix + 8 hex digits of their SHA-256, see
  :func:`vpcnet.fabric.model.bound_name`), ``tunnel_key`` = the subnet's L2VNI (per-switch key
  model; locators carry no key), ``description`` = ``"<tag>: subnet <subnet> (vpc <vpc>)"``
  (the ownership marker: the driver only ever touches switches with the prefix AND the tag),
  ``replication_mode`` = ``source_node``: the VTEP itself replicates BUM traffic to every
  locator of the ``unknown-dst`` set (head-end replication, as ovn-controller-vtep does); there
  is no service node in vpcnet's fabric.
* **vlan_bindings** on each node-facing Physical_Port (the Node's ``leafPort``): the subnet's VLAN
  (:func:`vpcnet.fabric.compile.leaf_vlan`) -> its Logical_Switch. The Physical_Switch is the
  one named like the leaf unless ``physical_switches`` maps the leaf to another name (ovs-vtep
  names it after its OVS bridge; real switches after their HSC configuration).
* **Ucast_Macs_Remote**: one per pod behind ANOTHER leaf (NETCONF or VTEP) in the pod's subnet:
  MAC, ``ipaddr`` = the pod's IPv4 address (the column exists for ARP suppression; empty for an
  IPv6-only pod) and the locator ``vxlan_over_ipv4`` / that leaf's ``vtepIp``. Pods behind the
  VTEP itself are learnt locally by the switch (Ucast_Macs_Local) and get no remote row. Pods on
  a node without a leaf are behind no VTEP and are skipped.
* **Mcast_Macs_Remote** ``unknown-dst`` per Logical_Switch: a Physical_Locator_Set of the other
  leaves that carry the subnets (every other leaf with a node-facing port), by ``vtepIp``; no row
  when there is no other such leaf (a locator set cannot be empty).

Pods are passed in as ``pods``: an iterable of :class:`PodLocation` or of plain tuples
``(mac, ip, node, subnet)`` / ``(mac, ip, node, subnet, name)``, where ``ip`` is one address, a
sequence of addresses (dual stack: give the pod once with all its addresses) or None, and
``name`` (e.g. ``"trading/trader-0"``) only serves error messages. The app builds them from the
Pod rows (``mac``, ``ips``, ``node``, ``subnet``).

Every input problem raises :class:`~vpcnet.fabric.inputs.InputError` naming object, field, value.
Not modelled (hardware_vtep has the tables, ovs-vtep does not implement them): Logical_Router
(the VPC's L3 stays on br-int / the NETCONF leaves), ACLs, per-locator tunnel keys, BFD.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import netaddr

from .compile import leaf_vlan
from .inputs import FabricIn, InputError, LeafIn, Ownership
from .model import bound_name

__all__ = [
    "MAX_LS_NAME", "ENCAPSULATION", "UNKNOWN_DST", "REPLICATION_MODE", "PodLocation",
    "LogicalSwitch", "VlanBinding", "RemoteMac", "RemoteMcast", "VtepState", "ls_name",
    "ls_description", "compile_vtep", "compile_vtep_leaf", "canonical_mac",
]

MAX_LS_NAME = 63            # conservative for switch CLIs/HSCs; hardware_vtep itself sets no limit
ENCAPSULATION = "vxlan_over_ipv4"
UNKNOWN_DST = "unknown-dst"
REPLICATION_MODE = "source_node"
_RESERVED_MAC_PREFIX = "0e:76:70:ff"     # vpcnet's router/anycast MACs (flows/inputs.py, model.py)


def ls_name(own: Ownership, subnet: str) -> str:
    return bound_name(f"{own.prefix}ls-{subnet}", MAX_LS_NAME)


def ls_description(own: Ownership, subnet: str, vpc: str) -> str:
    return f"{own.tag}: subnet {subnet} (vpc {vpc})"


def canonical_mac(me: str, what: str, value) -> str:
    """``aa:bb:cc:dd:ee:ff`` (lower case) for a unicast MAC; InputError otherwise."""
    try:
        eui = netaddr.EUI(value, dialect=netaddr.mac_unix_expanded) if isinstance(value, str) \
            else None
    except (netaddr.AddrFormatError, TypeError, ValueError):
        eui = None
    if eui is None or eui.version != 48:
        raise InputError(f"{me}: {what}={value!r} must be a MAC address (aa:bb:cc:dd:ee:ff)")
    if int(eui) & (1 << 40):
        raise InputError(f"{me}: {what}={value!r} is a multicast/broadcast MAC, not a unicast one")
    return str(eui)


@dataclass(frozen=True, order=True)
class PodLocation:
    """Where one pod is: its MAC and addresses, node and subnet (``name`` only for messages)."""
    mac: str
    ips: tuple[str, ...]
    node: str
    subnet: str
    name: str = ""

    @classmethod
    def of(cls, item) -> "PodLocation":
        if isinstance(item, PodLocation):
            return item
        if not isinstance(item, (tuple, list)) or len(item) not in (4, 5):
            raise InputError(f"pods: entry {item!r} must be (mac, ip, node, subnet[, name])")
        mac, ip, node, subnet = item[:4]
        name = item[4] if len(item) == 5 else ""
        if ip is None:
            ips: tuple = ()
        elif isinstance(ip, str):
            ips = (ip,)
        elif isinstance(ip, (tuple, list)):
            ips = tuple(ip)
        else:
            ips = (ip,)
        return cls(mac, ips, node, subnet, name if isinstance(name, str) else repr(name))

    @property
    def label(self) -> str:
        return f"pod {self.name}" if self.name else f"pod {self.mac} (node {self.node})"


@dataclass(frozen=True, order=True)
class LogicalSwitch:
    name: str
    tunnel_key: int | None
    description: str
    replication_mode: str = REPLICATION_MODE


@dataclass(frozen=True, order=True)
class VlanBinding:
    """Physical_Port ``port`` of ``physical_switch``: vlan_bindings[vlan] = ``logical_switch``."""
    physical_switch: str
    port: str
    vlan: int
    logical_switch: str


@dataclass(frozen=True, order=True)
class RemoteMac:
    """A Ucast_Macs_Remote row: ``mac`` in ``logical_switch`` lives behind ``dst_ip``."""
    logical_switch: str
    mac: str
    ipaddr: str          # "" when unknown
    dst_ip: str          # the vxlan_over_ipv4 Physical_Locator's dst_ip

    @property
    def key(self) -> tuple[str, str]:
        return (self.logical_switch, self.mac)


@dataclass(frozen=True, order=True)
class RemoteMcast:
    """A Mcast_Macs_Remote row: BUM (``unknown-dst``) of ``logical_switch`` goes to ``dst_ips``."""
    logical_switch: str
    mac: str
    dst_ips: tuple[str, ...]      # the Physical_Locator_Set's locators, sorted by address

    @property
    def key(self) -> tuple[str, str]:
        return (self.logical_switch, self.mac)


@dataclass(frozen=True)
class VtepState:
    """What vpcnet wants in (or, from ``VtepDriver.read()``, owns in) one hardware_vtep database.

    Tuples are sorted; equal intent gives an equal value."""
    leaf: str
    physical_switch: str
    vtep_ip: str
    logical_switches: tuple[LogicalSwitch, ...] = ()
    bindings: tuple[VlanBinding, ...] = ()
    remote_macs: tuple[RemoteMac, ...] = ()
    remote_mcasts: tuple[RemoteMcast, ...] = ()
    ownership: Ownership = Ownership()

    def switch(self, name: str) -> LogicalSwitch | None:
        return next((ls for ls in self.logical_switches if ls.name == name), None)


def _ip_key(ip: str):
    return netaddr.IPAddress(ip)


def _check_vtep_ips(fabric: FabricIn) -> None:
    """FabricIn checks vtepIp uniqueness among NETCONF leaves; VTEP leaves share the underlay."""
    holder: dict[str, str] = {}
    for lf in fabric.leaves:
        other = holder.setdefault(lf.vtep_ip, lf.name)
        if other != lf.name and "vtep" in (lf.driver, fabric.leaf(other).driver):
            raise InputError(f"leaf {lf.name}: vtepIp={lf.vtep_ip} is already leaf {other}'s")


def _pods(fabric: FabricIn, pods: Iterable) -> tuple[PodLocation, ...]:
    subnets = {s.name: s for s in fabric.subnets}
    nodes = {n.name: n for n in fabric.nodes}
    out: list[PodLocation] = []
    by_mac: dict[tuple[str, str], str] = {}
    by_ip: dict[tuple[str, str], str] = {}
    if isinstance(pods, (str, bytes, Mapping)):
        raise InputError(f"pods={pods!r} must be an iterable of (mac, ip, node, subnet) entries")
    for item in pods:
        p = PodLocation.of(item)
        me = p.label
        mac = canonical_mac(me, "mac", p.mac)
        if mac.startswith(_RESERVED_MAC_PREFIX):
            raise InputError(f"{me}: mac={mac} is in vpcnet's reserved router MAC range "
                             f"{_RESERVED_MAC_PREFIX}:xx:xx")
        if not isinstance(p.node, str) or p.node not in nodes:
            raise InputError(f"{me}: node={p.node!r} is not a known Node")
        if not isinstance(p.subnet, str) or p.subnet not in subnets:
            raise InputError(f"{me}: subnet={p.subnet!r} is not a known Subnet")
        subnet = subnets[p.subnet]
        nets = [netaddr.IPNetwork(c) for c in subnet.cidrs]
        ips = []
        for ip in p.ips:
            try:
                addr = netaddr.IPAddress(ip) if isinstance(ip, str) else None
            except (netaddr.AddrFormatError, ValueError):
                addr = None
            if addr is None:
                raise InputError(f"{me}: ip={ip!r} must be an IP address")
            if not any(addr in n for n in nets):
                raise InputError(f"{me}: ip={addr} is outside subnet {subnet.name}'s cidrBlock "
                                 f"{','.join(subnet.cidrs)}")
            key = (subnet.name, str(addr))
            if key in by_ip:
                what = f"already {by_ip[key]}'s" if by_ip[key] != me else "given twice"
                raise InputError(f"{me}: ip={addr} in subnet {subnet.name} is {what}")
            by_ip[key] = me
            ips.append(str(addr))
        key = (subnet.name, mac)
        if key in by_mac:
            what = f"already {by_mac[key]}'s" if by_mac[key] != me else "given twice"
            raise InputError(f"{me}: mac={mac} in subnet {subnet.name} is {what}")
        by_mac[key] = me
        out.append(PodLocation(mac, tuple(ips), p.node, p.subnet, p.name))
    return tuple(sorted(out))


def _carrying_leaves(fabric: FabricIn) -> dict[str, LeafIn]:
    """Leaves with at least one node-facing port: they carry every subnet (see compile.py)."""
    names = {n.leaf for n in fabric.nodes if n.leaf is not None}
    return {lf.name: lf for lf in fabric.leaves if lf.name in names}


def compile_vtep_leaf(fabric: FabricIn, leaf: LeafIn, pods: Iterable = (),
                      physical_switch: str | None = None,
                      _checked: tuple[PodLocation, ...] | None = None) -> VtepState:
    """Desired hardware_vtep state of one VTEP leaf (see the module doc for the rules)."""
    if leaf.driver != "vtep":
        raise InputError(f"leaf {leaf.name}: driver={leaf.driver!r} is not a hardware VTEP "
                         "(driver vtep)")
    if _checked is None:
        _check_vtep_ips(fabric)
        _checked = _pods(fabric, pods)
    ps = leaf.name if physical_switch is None else physical_switch
    if not isinstance(ps, str) or not ps or ps != ps.strip():
        raise InputError(f"leaf {leaf.name}: physical switch name {ps!r} must be a non-empty "
                         "name without surrounding spaces")
    own = fabric.ownership
    carrying = _carrying_leaves(fabric)
    if leaf.name not in carrying:
        return VtepState(leaf=leaf.name, physical_switch=ps, vtep_ip=leaf.vtep_ip, ownership=own)

    switches: dict[str, LogicalSwitch] = {}
    names: dict[str, str] = {}
    for s in fabric.subnets:
        name = ls_name(own, s.name)
        other = names.setdefault(name, s.name)
        if other != s.name:
            raise InputError(f"subnet {s.name}: its Logical_Switch name {name!r} collides with "
                             f"subnet {other}'s; shorten one of the names")
        switches[s.name] = LogicalSwitch(name, s.vni, ls_description(own, s.name, s.vpc))

    ports = sorted({n.leaf_port for n in fabric.nodes if n.leaf == leaf.name})
    bindings = [VlanBinding(ps, port, leaf_vlan(s, leaf), switches[s.name].name)
                for port in ports for s in fabric.subnets]

    node_leaf = {n.name: n.leaf for n in fabric.nodes}
    remote_ips = sorted({lf.vtep_ip for lf in carrying.values() if lf.name != leaf.name},
                        key=_ip_key)
    macs = []
    for p in _checked:
        where = node_leaf.get(p.node)
        if where is None or where == leaf.name:
            continue          # behind no leaf, or local to this VTEP (learnt by the switch)
        v4 = [ip for ip in p.ips if netaddr.IPAddress(ip).version == 4]
        macs.append(RemoteMac(switches[p.subnet].name, p.mac, v4[0] if v4 else "",
                              fabric.leaf(where).vtep_ip))
    mcasts = [RemoteMcast(ls.name, UNKNOWN_DST, tuple(remote_ips))
              for ls in switches.values()] if remote_ips else []
    return VtepState(
        leaf=leaf.name, physical_switch=ps, vtep_ip=leaf.vtep_ip,
        logical_switches=tuple(sorted(switches.values())), bindings=tuple(sorted(bindings)),
        remote_macs=tuple(sorted(macs)), remote_mcasts=tuple(sorted(mcasts)), ownership=own)


def compile_vtep(fabric: FabricIn, pods: Iterable = (),
                 physical_switches: Mapping[str, str] | None = None) -> dict[str, VtepState]:
    """``{leaf name: VtepState}`` for every ``driver: vtep`` leaf, in name order.

    ``pods``: see the module doc. ``physical_switches``: leaf name -> Physical_Switch name for
    switches not named like their Leaf."""
    _check_vtep_ips(fabric)
    checked = _pods(fabric, pods)
    physical_switches = dict(physical_switches or {})
    vteps = {lf.name: lf for lf in fabric.leaves if lf.driver == "vtep"}
    unknown = sorted(set(physical_switches) - set(vteps))
    if unknown:
        raise InputError(f"physical_switches: leaf {unknown[0]!r} is not a known leaf with "
                         "driver vtep")
    return {name: compile_vtep_leaf(fabric, lf, physical_switch=physical_switches.get(name),
                                    _checked=checked)
            for name, lf in vteps.items()}
