"""Frozen, hashable OpenFlow 1.3 values: Match, actions, Flow, Group, Meter.

These are the currency between the compiler and the reconciler. They carry OVS semantics
(field names, prerequisites, action rules) but know nothing about sockets or os-ken; the app
layer translates them to messages. Tables are referred to by *name*; numbers come from
``pipeline.py``.

Match keys are OVS field names (``in_port``, ``dl_dst``, ``nw_src``, ``reg0``...). A value is an
int/str, or ``(value, mask)`` for masked fields. ``Match(...)`` canonicalises values (lower-case
MACs, IP prefixes, merged register marks) and checks OVS prerequisites, so two matches that mean
the same thing are equal and hash alike.
"""
from __future__ import annotations

from collections.abc import Mapping
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Union

import netaddr

from .fields import BitField, Mark, SPACE_BITS


class FlowError(ValueError):
    """A flow, match or action that OVS would reject or our pipeline forbids."""


# --- ports -----------------------------------------------------------------------------------
OFPP_MAX = 0xFFFFFF00
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_LOCAL = 0xFFFFFFFE
SPECIAL_PORTS = {"IN_PORT": OFPP_IN_PORT, "LOCAL": OFPP_LOCAL}

ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMPV6 = 1, 6, 17, 132, 58
VLAN_PRESENT = 0x1000
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
MULTICAST_BIT = ("01:00:00:00:00:00", "01:00:00:00:00:00")


# --- match fields ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str            # int | mac | ipv4 | ipv6 | ct_state | port
    bits: int = 0
    maskable: bool = False
    prereq: str | None = None  # see _PREREQS


def _f(name, kind, bits=0, maskable=False, prereq=None):
    return name, FieldSpec(name, kind, bits, maskable, prereq)


# Declaration order = canonical render order (close to what ovs-ofctl prints).
MATCH_FIELDS: dict[str, FieldSpec] = dict([
    _f("ct_state", "ct_state"),
    _f("ct_zone", "int", 16),
    _f("ct_mark", "int", 32, True),
    _f("ct_label", "int", 128, True),
    _f("conj_id", "int", 32),
    _f("dl_type", "int", 16),
    *[_f(f"reg{i}", "int", 32, True) for i in range(16)],
    _f("metadata", "int", 64, True),
    _f("in_port", "port"),
    _f("dl_vlan", "int", 12),
    _f("vlan_tci", "int", 16, True),
    _f("dl_src", "mac", 48, True),
    _f("dl_dst", "mac", 48, True),
    _f("nw_src", "ipv4", 32, True, "ip"),
    _f("nw_dst", "ipv4", 32, True, "ip"),
    _f("ipv6_src", "ipv6", 128, True, "ipv6"),
    _f("ipv6_dst", "ipv6", 128, True, "ipv6"),
    _f("arp_spa", "ipv4", 32, True, "arp"),
    _f("arp_tpa", "ipv4", 32, True, "arp"),
    _f("arp_sha", "mac", 48, True, "arp"),
    _f("arp_tha", "mac", 48, True, "arp"),
    _f("nw_proto", "int", 8, False, "ip_any"),
    _f("arp_op", "int", 16, False, "arp"),
    _f("tp_src", "int", 16, True, "l4"),
    _f("tp_dst", "int", 16, True, "l4"),
    _f("icmp_type", "int", 8, False, "icmp_any"),
    _f("icmp_code", "int", 8, False, "icmp_any"),
    _f("nd_target", "ipv6", 128, True, "nd"),
    _f("nd_sll", "mac", 48, True, "nd_ns"),
])
FIELD_ORDER = {name: i for i, name in enumerate(MATCH_FIELDS)}

_PREREQS = {
    "ip": ("ip", lambda m: m.get("dl_type") == ETH_IPV4),
    "ipv6": ("ipv6", lambda m: m.get("dl_type") == ETH_IPV6),
    "ip_any": ("ip or ipv6", lambda m: m.get("dl_type") in (ETH_IPV4, ETH_IPV6)),
    "arp": ("arp", lambda m: m.get("dl_type") == ETH_ARP),
    "l4": ("tcp, udp or sctp", lambda m: m.get("dl_type") in (ETH_IPV4, ETH_IPV6)
           and m.get("nw_proto") in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP)),
    "icmp_any": ("icmp or icmp6", lambda m: (m.get("dl_type"), m.get("nw_proto"))
                 in ((ETH_IPV4, IPPROTO_ICMP), (ETH_IPV6, IPPROTO_ICMPV6))),
    "nd": ("icmp6 with icmp_type=135/136", lambda m: m.get("dl_type") == ETH_IPV6
           and m.get("nw_proto") == IPPROTO_ICMPV6 and m.get("icmp_type") in (135, 136)),
    "nd_ns": ("icmp6 with icmp_type=135", lambda m: m.get("dl_type") == ETH_IPV6
              and m.get("nw_proto") == IPPROTO_ICMPV6 and m.get("icmp_type") == 135),
    "nd_na": ("icmp6 with icmp_type=136", lambda m: m.get("dl_type") == ETH_IPV6
              and m.get("nw_proto") == IPPROTO_ICMPV6 and m.get("icmp_type") == 136),
    "icmp4": ("icmp", lambda m: m.get("dl_type") == ETH_IPV4 and m.get("nw_proto") == IPPROTO_ICMP),
    "icmp6": ("icmp6", lambda m: m.get("dl_type") == ETH_IPV6 and m.get("nw_proto") == IPPROTO_ICMPV6),
}

# Protocol shorthands: (dl_type, nw_proto) -> ovs-ofctl keyword.
@dataclass(frozen=True)
class Proto:
    name: str
    dl_type: int
    nw_proto: int | None = None


IP = Proto("ip", ETH_IPV4)
IPV6 = Proto("ipv6", ETH_IPV6)
ARP = Proto("arp", ETH_ARP)
ICMP = Proto("icmp", ETH_IPV4, IPPROTO_ICMP)
TCP = Proto("tcp", ETH_IPV4, IPPROTO_TCP)
UDP = Proto("udp", ETH_IPV4, IPPROTO_UDP)
SCTP = Proto("sctp", ETH_IPV4, IPPROTO_SCTP)
ICMP6 = Proto("icmp6", ETH_IPV6, IPPROTO_ICMPV6)
TCP6 = Proto("tcp6", ETH_IPV6, IPPROTO_TCP)
UDP6 = Proto("udp6", ETH_IPV6, IPPROTO_UDP)
SCTP6 = Proto("sctp6", ETH_IPV6, IPPROTO_SCTP)
PROTOS = {(p.dl_type, p.nw_proto): p for p in (IP, IPV6, ARP, ICMP, TCP, UDP, SCTP, ICMP6, TCP6, UDP6, SCTP6)}


# Canonical text is what the netaddr round trip prints; inputs already in that form (the
# normal case: PodIn/SubnetIn values are canonical) skip the round trip, others are memoised.
_CANON_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANON_V4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_V4_OR_PREFIX_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12]?[0-9]))?")


def ip_proto(address: str, v4: Proto = IP, v6: Proto = IPV6) -> Proto:
    """The protocol shorthand for an address or prefix: IP for IPv4, IPV6 for IPv6."""
    if type(address) is str and _V4_OR_PREFIX_RE.fullmatch(address):
        return v4
    return v4 if netaddr.IPNetwork(address).version == 4 else v6


def _canon_mac_slow(value: Any, what: str) -> str:
    try:
        return str(netaddr.EUI(value, dialect=netaddr.mac_unix_expanded))
    except (netaddr.AddrFormatError, TypeError, ValueError) as exc:
        raise FlowError(f"{what}: bad MAC {value!r}") from exc


@lru_cache(maxsize=1 << 14)
def _canon_mac_memo(value: Any) -> str:
    return _canon_mac_slow(value, "MAC")


def canon_mac(value: Any, what: str = "MAC") -> str:
    if type(value) is str and _CANON_MAC_RE.fullmatch(value):
        return value
    try:
        return _canon_mac_memo(value)
    except (FlowError, TypeError):  # unhashable or bad: redo it to name ``what`` in the error
        return _canon_mac_slow(value, what)


def _canon_ip_slow(value: Any, version: int, what: str, prefix_ok: bool) -> str:
    try:
        net = netaddr.IPNetwork(str(value))
    except (netaddr.AddrFormatError, TypeError, ValueError) as exc:
        raise FlowError(f"{what}: bad IP {value!r}") from exc
    if net.version != version:
        raise FlowError(f"{what}: {value!r} is not IPv{version}")
    full = 32 if version == 4 else 128
    if net.prefixlen == full:
        return str(net.ip)
    if not prefix_ok:
        raise FlowError(f"{what}: {value!r} must be a host address")
    if net.ip != net.network:
        raise FlowError(f"{what}: {value!r} has host bits set")
    return f"{net.network}/{net.prefixlen}"


@lru_cache(maxsize=1 << 16)
def _canon_ip_memo(text: str, version: int, prefix_ok: bool) -> str:
    return _canon_ip_slow(text, version, "address", prefix_ok)


def canon_ip(value: Any, version: int, what: str = "address", prefix_ok: bool = True) -> str:
    """'10.0.0.5' (host) or '10.0.0.0/24' (prefix, host bits must be zero)."""
    if version == 4 and type(value) is str and _CANON_V4_RE.fullmatch(value):
        return value
    try:
        return _canon_ip_memo(str(value), version, prefix_ok)
    except FlowError:  # redo it to name ``what`` and the original value in the error
        return _canon_ip_slow(value, version, what, prefix_ok)


CT_FLAGS = ("new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat")


def parse_ct_state(text: str) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    i = 0
    while i < len(text):
        sign = text[i]
        j = i + 1
        while j < len(text) and text[j] not in "+-":
            j += 1
        name = text[i + 1:j]
        if sign not in "+-" or name not in CT_FLAGS or name in flags:
            raise FlowError(f"ct_state: bad flags {text!r}")
        flags[name] = sign == "+"
        i = j
    if not flags:
        raise FlowError("ct_state: empty")
    return flags


def format_ct_state(flags: Mapping[str, bool]) -> str:
    return "".join(("+" if flags[f] else "-") + f for f in CT_FLAGS if f in flags)


def _canon_int(spec: FieldSpec, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << spec.bits):
        raise FlowError(f"{spec.name}: value {value!r} is not a {spec.bits}-bit integer")
    return value


def _canon_value(spec: FieldSpec, value: Any):
    """Canonical value (or (value, mask)) for one match field."""
    if spec.kind == "ct_state":
        return format_ct_state(parse_ct_state(value))
    if spec.kind == "port":
        if value in SPECIAL_PORTS:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < OFPP_MAX:
            raise FlowError(f"in_port: bad port {value!r}")
        return value
    if spec.kind in ("ipv4", "ipv6"):
        if isinstance(value, tuple):
            raise FlowError(f"{spec.name}: give an IP prefix ('10.0.0.0/24'), not (value, mask)")
        return canon_ip(value, 4 if spec.kind == "ipv4" else 6, spec.name)
    masked = isinstance(value, tuple)
    if masked and not spec.maskable:
        raise FlowError(f"{spec.name}: field is not maskable")
    if spec.kind == "mac":
        if masked:
            v, m = canon_mac(value[0], spec.name), canon_mac(value[1], spec.name)
            return v if m == BROADCAST_MAC else (v, m)
        return canon_mac(value, spec.name)
    if masked:
        v, m = _canon_int(spec, value[0]), _canon_int(spec, value[1])
        if v & ~m:
            raise FlowError(f"{spec.name}: value {v:#x} has bits outside mask {m:#x}")
        return v if m == (1 << spec.bits) - 1 else (v, m)
    return _canon_int(spec, value)


MatchPart = Union["Match", Proto, Mark, tuple, Mapping]
_PLAIN_INT_LIMIT = {name: 1 << spec.bits for name, spec in MATCH_FIELDS.items() if spec.kind == "int"}
_MASKABLE_INT = frozenset(name for name, spec in MATCH_FIELDS.items() if spec.kind == "int" and spec.maskable)
_FIELD_PREREQ = {name: _PREREQS[spec.prereq] for name, spec in MATCH_FIELDS.items() if spec.prereq}
_MISSING = object()
_K_INT, _K_MAC, _K_V4, _K_PORT, _K_OTHER = range(5)
_FAST_KIND = {name: {"int": _K_INT, "mac": _K_MAC, "ipv4": _K_V4, "port": _K_PORT}.get(spec.kind, _K_OTHER)
              for name, spec in MATCH_FIELDS.items()}
# field names in given order -> (canonical order, ((name, prereq) to check, in canonical order),
# whether the given order is already canonical)
_PLANS: dict[tuple, tuple] = {}


def _plan(names: tuple) -> tuple:
    order = tuple(sorted(names, key=FIELD_ORDER.__getitem__))
    plan = (order, tuple((n, _FIELD_PREREQ[n]) for n in order if n in _FIELD_PREREQ), order == names)
    if len(_PLANS) < 4096:
        _PLANS[names] = plan
    return plan


def _canon_field(k: str, v: Any):
    """_canon_value(MATCH_FIELDS[k], v), with fast paths for values already canonical."""
    kind = _FAST_KIND[k]
    tv = type(v)
    if kind == _K_INT:
        if tv is int and 0 <= v < _PLAIN_INT_LIMIT[k]:
            return v
        if tv is tuple and len(v) == 2 and k in _MASKABLE_INT:
            a, b = v
            limit = _PLAIN_INT_LIMIT[k]
            if type(a) is int and type(b) is int and 0 <= a < limit and 0 <= b < limit and not a & ~b:
                return a if b == limit - 1 else (a, b)
    elif tv is str:
        if (kind == _K_MAC and _CANON_MAC_RE.fullmatch(v)) or (kind == _K_V4 and _CANON_V4_RE.fullmatch(v)):
            return v
    elif kind == _K_PORT and tv is int and 0 < v < OFPP_MAX:
        return v
    return _canon_value(MATCH_FIELDS[k], v)


# Fields whose values other fields' prerequisites look at (see _PREREQS).
_PREREQ_INPUTS = frozenset({"dl_type", "nw_proto", "icmp_type"})


def _put(raw: dict, name: str, value: Any) -> None:
    if name not in MATCH_FIELDS:
        raise FlowError(f"unknown match field {name!r}")
    old = raw.get(name, _MISSING)
    if old is not _MISSING and old != value:
        raise FlowError(f"match field {name!r} given twice ({old!r} and {value!r})")
    raw[name] = value


class Match(Mapping):
    """Frozen, canonically ordered mapping: OVS field name -> value or (value, mask).

    ``Match(IP, FROM_POD, VPC_ID.eq(7), in_port=3, nw_src="10.0.0.5")``. Parts may be Proto
    shorthands, Marks (merged per register), ``(name, value)`` pairs, mappings or Matches.
    """

    __slots__ = ("_dict", "_hash")   # _dict: canonical field order; one dict per match, no item tuples

    def __init__(self, *parts: MatchPart, **fields: Any):
        raw: dict[str, Any] = {}
        masked: dict[str, tuple[int, int]] = {}  # register-like spaces assembled from Marks
        for part in parts:
            tp = type(part)
            if tp is Mark or (tp is not Proto and tp is not Match and isinstance(part, Mark)):
                val, mask = part.shifted
                space = part.field.space
                old_v, old_m = masked.get(space, (0, 0))
                if (old_v ^ val) & old_m & mask:
                    raise FlowError(f"conflicting matches on {space}: {part.name}")
                masked[space] = (old_v | val, old_m | mask)
            elif tp is Proto or (tp is not Match and isinstance(part, Proto)):
                _put(raw, "dl_type", part.dl_type)
                if part.nw_proto is not None:
                    _put(raw, "nw_proto", part.nw_proto)
            elif tp is Match:
                for k, v in part._dict.items():
                    _put(raw, k, v)
            elif isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], str):
                _put(raw, *part)
            elif isinstance(part, Mapping):
                for k, v in part.items():
                    _put(raw, k, v)
            else:
                raise FlowError(f"bad match part {part!r}")
        for k, v in fields.items():
            if k in raw or k not in MATCH_FIELDS:
                _put(raw, k, v)
            else:
                raw[k] = v
        for space, (v, m) in masked.items():
            if space in raw:
                rv, rm = raw[space] if isinstance(raw[space], tuple) else (raw[space], (1 << SPACE_BITS[space]) - 1)
                if (rv ^ v) & rm & m:
                    raise FlowError(f"conflicting matches on {space}")
                v, m = v | rv, m | rm
            raw[space] = (v, m)
        canon = {k: _canon_field(k, v) for k, v in raw.items()}
        names = tuple(canon)
        plan = _PLANS.get(names)
        if plan is None:
            plan = _plan(names)
        order, prereqs, in_order = plan
        for name, prereq in prereqs:
            if not prereq[1](canon):
                raise FlowError(f"match field {name!r} requires {prereq[0]} in the match")
        if not in_order:
            canon = {k: canon[k] for k in order}
            names = order
        object.__setattr__(self, "_dict", canon)
        object.__setattr__(self, "_hash", hash((names, tuple(canon.values()))))

    def __setattr__(self, name, value):
        raise AttributeError("Match is immutable")

    def __reduce__(self):
        return (Match, (dict(self._dict),))

    def __getitem__(self, key: str):
        return self._dict[key]

    def __iter__(self):
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        if isinstance(other, Match):
            # equal canonical dicts have the same (canonical) order too
            return self._hash == other._hash and self._dict == other._dict
        return NotImplemented

    def __repr__(self) -> str:
        return "Match(" + ", ".join(f"{k}={v!r}" for k, v in self._dict.items()) + ")"

    # Mapping's generic get/contains go through __getitem__ and KeyError: delegate instead.
    def get(self, key: str, default=None):
        return self._dict.get(key, default)

    def __contains__(self, key) -> bool:
        return key in self._dict

    def satisfies(self, prereq: str) -> bool:
        return _PREREQS[prereq][1](self._dict)

    def with_(self, *parts: MatchPart, **fields: Any) -> "Match":
        return Match(self, *parts, **fields)

    def with_values(self, **fields: Any) -> "Match":
        """This match with new values for fields it already has: equal to building the match
        again with those values, but cheap (only the new values are canonicalised; the field
        set, its order and the prerequisites, which depend only on dl_type, nw_proto and
        icmp_type, stay valid). Feature code uses it to stamp out per-pod matches."""
        d = dict(self._dict)
        for k, v in fields.items():
            if k not in d or k in _PREREQ_INPUTS:
                return Match({**self._dict, **fields})   # not a pure value change: the full path
            d[k] = _canon_field(k, v)
        m = object.__new__(Match)
        object.__setattr__(m, "_dict", d)
        object.__setattr__(m, "_hash", hash((tuple(d), tuple(d.values()))))
        return m


EMPTY_MATCH = Match()


# --- actions ---------------------------------------------------------------------------------
class Action:
    """Base of every action value. Subclasses are frozen dataclasses."""

    __slots__ = ()   # actions are small frozen slotted dataclasses: flows hold millions of them
    prereq: str | None = None

    def prereqs(self) -> tuple[str, ...]:
        return (self.prereq,) if self.prereq else ()


# set_field/move targets: ovs-ofctl name -> (NXM name, width bits, value kind, prerequisite).
# The prerequisites are OVS's own (checked by ovs-vswitchd against the flow's *match*, not against
# earlier set_fields: nd_tll can only be set by a flow that matches icmp_type=136). OVS updates the
# ICMP/ICMPv6 checksum itself when it rewrites icmp_type/icmpv6_type, IPv6 addresses or ND fields
# (incrementally, or in full for nd_reserved/nd_options_type); IPv4 addresses are not in the ICMP
# checksum. nd_reserved (the NA's R|S|O flags word) and nd_options_type (type of the first ND
# option: 1 source, 2 target link-layer address) are OVS extensions (ERICOXM class 0x1000, OVS
# 2.11+, userspace datapath); OVS applies them *before* the other ND rewrites of the same packet.
SET_FIELDS: dict[str, tuple[str, int, str, str | None]] = {
    "eth_src": ("NXM_OF_ETH_SRC[]", 48, "mac", None),
    "eth_dst": ("NXM_OF_ETH_DST[]", 48, "mac", None),
    "vlan_vid": ("OXM_OF_VLAN_VID[]", 13, "int", None),
    "arp_op": ("NXM_OF_ARP_OP[]", 16, "int", "arp"),
    "arp_spa": ("NXM_OF_ARP_SPA[]", 32, "ipv4", "arp"),
    "arp_tpa": ("NXM_OF_ARP_TPA[]", 32, "ipv4", "arp"),
    "arp_sha": ("NXM_NX_ARP_SHA[]", 48, "mac", "arp"),
    "arp_tha": ("NXM_NX_ARP_THA[]", 48, "mac", "arp"),
    "ip_src": ("NXM_OF_IP_SRC[]", 32, "ipv4", "ip"),
    "ip_dst": ("NXM_OF_IP_DST[]", 32, "ipv4", "ip"),
    "ipv6_src": ("NXM_NX_IPV6_SRC[]", 128, "ipv6", "ipv6"),
    "ipv6_dst": ("NXM_NX_IPV6_DST[]", 128, "ipv6", "ipv6"),
    "tcp_src": ("NXM_OF_TCP_SRC[]", 16, "int", "l4"),
    "tcp_dst": ("NXM_OF_TCP_DST[]", 16, "int", "l4"),
    "icmp_type": ("NXM_OF_ICMP_TYPE[]", 8, "int", "icmp4"),
    "icmpv6_type": ("NXM_NX_ICMPV6_TYPE[]", 8, "int", "icmp6"),
    "nd_tll": ("NXM_NX_ND_TLL[]", 48, "mac", "nd_na"),
    "nd_reserved": ("ERICOXM_OF_ICMPV6_ND_RESERVED[]", 32, "int", "nd"),
    "nd_options_type": ("ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE[]", 8, "int", "nd"),
}


_SET_INT_SPECS = {name: FieldSpec(name, "int", bits) for name, (_, bits, kind, _) in SET_FIELDS.items()
                  if kind == "int"}


def _canon_set_value(field: str, value: Any):
    _, bits, kind, _ = SET_FIELDS[field]
    if kind == "mac":
        return canon_mac(value, field)
    if kind in ("ipv4", "ipv6"):
        return canon_ip(value, 4 if kind == "ipv4" else 6, field, prefix_ok=False)
    return _canon_int(_SET_INT_SPECS[field], value)


@dataclass(frozen=True, slots=True)
class Output(Action):
    """output:N, IN_PORT, LOCAL or output:NXM_NX_REG3[] (port taken from a BitField)."""

    port: int | str | BitField

    def __post_init__(self):
        p = self.port
        if isinstance(p, BitField) or p in SPECIAL_PORTS:
            return
        if isinstance(p, bool) or not isinstance(p, int) or not 0 < p < OFPP_MAX:
            raise FlowError(f"output: bad port {p!r}")


@dataclass(frozen=True, slots=True)
class SetField(Action):
    field: str
    value: int | str

    def __post_init__(self):
        if self.field not in SET_FIELDS:
            raise FlowError(f"set_field: unsupported field {self.field!r}")
        object.__setattr__(self, "value", _canon_set_value(self.field, self.value))

    def prereqs(self):
        return _SET_PREREQS[self.field]


def set_vlan_vid(vid: int) -> SetField:
    """set_field:<0x1000|vid>->vlan_vid (OpenFlow 1.3 wants the VLAN-present bit)."""
    if not 0 < vid < 4095:
        raise FlowError(f"bad VLAN id {vid}")
    return SetField("vlan_vid", VLAN_PRESENT | vid)


@dataclass(frozen=True, slots=True)
class Load(Action):
    """Write ``value`` into a BitField (a register, ct_mark, ct_label or metadata sub-field)."""

    field: BitField
    value: int

    def __post_init__(self):
        try:
            self.field.check_value(self.value)
        except ValueError as exc:
            raise FlowError(str(exc)) from exc

    @classmethod
    def mark(cls, mark: Mark) -> "Load":
        return cls(mark.field, mark.value)


@dataclass(frozen=True, slots=True)
class Move(Action):
    """move:SRC->DST; each side is a SET_FIELDS name or a BitField."""

    src: str | BitField
    dst: str | BitField

    def __post_init__(self):
        widths = []
        for side in (self.src, self.dst):
            if isinstance(side, BitField):
                widths.append(side.width)
            elif side in SET_FIELDS:
                widths.append(SET_FIELDS[side][1])
            else:
                raise FlowError(f"move: unsupported field {side!r}")
        if widths[0] != widths[1]:
            raise FlowError(f"move: width mismatch {self.src!r} ({widths[0]}) -> {self.dst!r} ({widths[1]})")

    def prereqs(self):
        if type(self.src) is str and type(self.dst) is str:
            return _MOVE_PREREQS[(self.src, self.dst)]
        return tuple(SET_FIELDS[s][3] for s in (self.src, self.dst)
                     if isinstance(s, str) and SET_FIELDS[s][3])


_SET_PREREQS = {f: ((p,) if p else ()) for f, (_, _, _, p) in SET_FIELDS.items()}
_MOVE_PREREQS = {(a, b): tuple(p for p in (SET_FIELDS[a][3], SET_FIELDS[b][3]) if p)
                 for a in SET_FIELDS for b in SET_FIELDS}


@dataclass(frozen=True, slots=True)
class Goto(Action):
    """goto_table: must be the last action; only forward, to a declared next table."""

    table: str


@dataclass(frozen=True, slots=True)
class Resubmit(Action):
    """resubmit(,table): only for jumps the pipeline declares (e.g. backward re-entry)."""

    table: str


@dataclass(frozen=True)
class Nat:
    """nat / nat(src=addr[:port]) / nat(dst=addr[:port]) inside ct()."""

    kind: str | None = None       # None: re-apply the connection's existing NAT
    addr: str | None = None
    port: int | None = None

    def __post_init__(self):
        if self.kind not in (None, "src", "dst"):
            raise FlowError(f"nat: bad kind {self.kind!r}")
        if (self.kind is None) != (self.addr is None) or (self.port is not None and self.addr is None):
            raise FlowError("nat: kind and addr go together; port needs an addr")
        if self.addr is not None:
            net = netaddr.IPAddress(self.addr)
            object.__setattr__(self, "addr", str(net))
        if self.port is not None and not 0 < self.port < 65536:
            raise FlowError(f"nat: bad port {self.port}")


@dataclass(frozen=True, slots=True)
class Ct(Action):
    """ct(commit,zone=..,table=..,nat(..),exec(..)). ``table`` recirculates (forward only)."""

    commit: bool = False
    zone: int | BitField | None = None
    table: str | None = None
    nat: Nat | None = None
    exec_: tuple = ()

    def __post_init__(self):
        if isinstance(self.zone, int) and not 0 <= self.zone < 65536:
            raise FlowError(f"ct: bad zone {self.zone}")
        if isinstance(self.zone, BitField) and self.zone.width != 16:
            raise FlowError(f"ct: zone field {self.zone.name} must be 16 bits wide")
        object.__setattr__(self, "exec_", tuple(self.exec_))
        if self.exec_ and not self.commit:
            raise FlowError("ct: exec() needs commit")
        for a in self.exec_:
            dst = a.field if isinstance(a, Load) else a.dst if isinstance(a, Move) else None
            if not (isinstance(dst, BitField) and dst.space in ("ct_mark", "ct_label")):
                raise FlowError(f"ct: exec() may only load/move into ct_mark/ct_label, got {a!r}")

    def prereqs(self):
        # OVS rejects ct() in a flow that does not match ip or ipv6 (check_CT:
        # OFPBAC_MATCH_INCONSISTENT), nat or not.
        return ("ip_any",)


@dataclass(frozen=True, slots=True)
class DecTtl(Action):
    prereq = "ip_any"


@dataclass(frozen=True, slots=True)
class PushVlan(Action):
    ethertype: int = 0x8100


@dataclass(frozen=True, slots=True)
class PopVlan(Action):
    pass


@dataclass(frozen=True, slots=True)
class GroupAction(Action):
    """group:N (named GroupAction to keep ``Group`` for the group-table entry itself)."""

    group_id: int


@dataclass(frozen=True, slots=True)
class Conjunction(Action):
    """conjunction(id,k/n): clause k (1-based) of n. Only other conjunctions may share the flow."""

    conj_id: int
    clause: int
    n_clauses: int

    def __post_init__(self):
        if not (2 <= self.n_clauses <= 64 and 1 <= self.clause <= self.n_clauses):
            raise FlowError(f"conjunction: bad clause {self.clause}/{self.n_clauses}")


MULTIPATH_FIELDS = {"symmetric_l3l4+udp": 3}   # OVS's NX_HASH_FIELDS_* this model uses


@dataclass(frozen=True, slots=True)
class Multipath(Action):
    """multipath(<fields>,<basis>,modulo_n,<n_links>,0,<dst>): ``dst`` = hash(fields) mod
    ``n_links``. ``symmetric_l3l4+udp`` hashes addresses, protocol and TCP/UDP/SCTP ports (the
    select group's dp_hash leaves UDP ports out, so a UDP client would always get one bucket)."""

    dst: BitField
    n_links: int
    fields: str = "symmetric_l3l4+udp"
    basis: int = 0

    def __post_init__(self):
        if self.fields not in MULTIPATH_FIELDS:
            raise FlowError(f"multipath: fields {self.fields!r} (supported: {', '.join(MULTIPATH_FIELDS)})")
        if not 1 <= self.n_links <= min(1 << self.dst.width, 65536):
            raise FlowError(f"multipath: {self.n_links} links do not fit {self.dst.name} ({self.dst.width} bits)")
        if not 0 <= self.basis < 65536:
            raise FlowError(f"multipath: bad basis {self.basis}")


OFPM_MAX = 0xFFFF0000              # the last meter id a flow may name (OpenFlow 1.3)
CONTROLLER_USERDATA_MAX = 256      # bytes of userdata a controller action may carry here


@dataclass(frozen=True, slots=True)
class Controller(Action):
    """controller(max_len=..,userdata=..,meter_id=..): a packet-in with reason ``action``, as
    OVS's action of that name. ``userdata`` (bytes, at most 256) is handed to the controller in
    the packet-in (NXT_PACKET_IN2 only: a controller must ask for that format to see it);
    ``meter_id`` (1..OFPM_MAX) rate-limits these packet-ins in the datapath, before they reach
    the controller, with that meter (which the switch must have: see Reconciler's ``meters``)."""

    max_len: int = 65535
    meter_id: int | None = None
    userdata: bytes = b""

    def __post_init__(self):
        if type(self.max_len) is not int or not 0 <= self.max_len <= 0xFFFF:
            raise FlowError(f"controller: bad max_len {self.max_len!r}")
        if self.meter_id is not None and (type(self.meter_id) is not int or not 1 <= self.meter_id <= OFPM_MAX):
            raise FlowError(f"controller: bad meter_id {self.meter_id!r} (1..{OFPM_MAX:#x})")
        data = self.userdata
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise FlowError(f"controller: userdata must be bytes, not {type(data).__name__}")
            object.__setattr__(self, "userdata", bytes(data))
        if len(self.userdata) > CONTROLLER_USERDATA_MAX:
            raise FlowError(f"controller: userdata of {len(self.userdata)} bytes "
                            f"(at most {CONTROLLER_USERDATA_MAX})")


DROP: tuple = ()  # an empty action list drops the packet


def arp_reply(mac: str, ip: str) -> tuple[Action, ...]:
    """Turn an ARP request for ``ip`` into the reply 'ip is-at mac', sent back out IN_PORT.

    The flow that uses it must match ``arp,arp_op=1,arp_tpa=<ip>``.
    """
    return (
        _ARP_MOVE_ETH,
        SetField("eth_src", mac),
        _ARP_OP_REPLY,
        _ARP_MOVE_SHA,
        SetField("arp_sha", mac),
        _ARP_MOVE_SPA,
        SetField("arp_spa", ip),
        _OUT_IN_PORT,
    )


# the fixed actions of arp_reply, built once (actions are immutable values)
_ARP_MOVE_ETH = Move("eth_src", "eth_dst")
_ARP_OP_REPLY = SetField("arp_op", 2)
_ARP_MOVE_SHA = Move("arp_sha", "arp_tha")
_ARP_MOVE_SPA = Move("arp_spa", "arp_tpa")
_OUT_IN_PORT = Output("IN_PORT")

ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ND_NS, ND_NA = 135, 136
ND_OPT_TARGET_LLADDR = 2
NA_FLAGS_ROUTER = 0xE0000000      # nd_reserved of a router's solicited NA: R|S|O (RFC 4861 4.4)


def echo_reply(mac: str, ip: str) -> tuple[Action, ...]:
    """Turn an echo request to ``ip`` into the echo reply from ``ip`` and ``mac``, sent back
    out IN_PORT: ICMP type 8 -> 0 for an IPv4 ``ip``, ICMPv6 128 -> 129 for an IPv6 one.

    The flow that uses it must match ``icmp,nw_dst=<ip>,icmp_type=8`` (IPv4) or
    ``icmp6,ipv6_dst=<ip>,icmp_type=128``, so moving the source address to the destination and
    setting the source to ``ip`` swaps them. Checksums are OVS's job and it does them: the IPv4
    header checksum on the address rewrite, the ICMP checksum incrementally on the type rewrite
    (the IPv4 addresses are not covered by it); for ICMPv6 the address swap leaves the
    pseudo-header sum unchanged and the type rewrite is folded in incrementally (verified with
    tcpdump and the receiving kernel's checksum counters in tests/functional/test_brint_netns.py).
    """
    if ":" in ip:
        return (_ARP_MOVE_ETH, SetField("eth_src", mac), _MOVE_IPV6, SetField("ipv6_src", ip),
                _ECHO6_REPLY, _OUT_IN_PORT)
    return (_ARP_MOVE_ETH, SetField("eth_src", mac), _MOVE_IPV4, SetField("ip_src", ip),
            _ECHO_REPLY, _OUT_IN_PORT)


def nd_solicit_to_advert() -> tuple[Action, ...]:
    """First half of the neighbour advertisement answer (IPv6's ARP reply): turn a neighbour
    solicitation into an advertisement with the router/solicited/override flags, its first
    option (the solicitation's source link-layer address option) retyped as a target link-layer
    address option. The flow must match ``icmp6,icmp_type=135`` and continue to a flow that
    matches ``icmp6,icmp_type=136`` and applies ``nd_advert_reply``.

    Why two flows: OVS checks ``nd_tll``'s prerequisite (icmp_type=136) against the flow's
    *match*, and when it applies one packet's rewrites it applies the ND extension fields
    (nd_reserved, nd_options_type) before nd_sll/nd_tll. Writing the MAC with ``nd_sll`` and
    retyping the option in one flow therefore loses the MAC (OVS 3.1: the pod learned its own
    MAC for the gateway). OVS recomputes the whole ICMPv6 checksum for the extension fields.
    Only answer solicitations that carry a source link-layer option: without one there is no
    option to retype (OVS would write the type past the end of the message).
    """
    return _ND_TO_ADVERT


def nd_advert_reply(mac: str, ip: str) -> tuple[Action, ...]:
    """Second half (see ``nd_solicit_to_advert``): address the advertisement that ``ip`` is at
    ``mac`` to the soliciting node and send it back out IN_PORT. The flow must match
    ``icmp6,icmp_type=136,nd_target=<ip>``."""
    return (_ARP_MOVE_ETH, SetField("eth_src", mac), _MOVE_IPV6, SetField("ipv6_src", ip),
            SetField("nd_tll", mac), _OUT_IN_PORT)


_MOVE_IPV4 = Move("ip_src", "ip_dst")
_MOVE_IPV6 = Move("ipv6_src", "ipv6_dst")
_ECHO_REPLY = SetField("icmp_type", ICMP_ECHO_REPLY)
_ECHO6_REPLY = SetField("icmpv6_type", ICMPV6_ECHO_REPLY)
_ND_TO_ADVERT = (SetField("icmpv6_type", ND_NA), SetField("nd_reserved", NA_FLAGS_ROUTER),
                 SetField("nd_options_type", ND_OPT_TARGET_LLADDR))


# --- flows, groups, meters -------------------------------------------------------------------
# Per action type: (prereqs, is a Goto, is a Conjunction). prereqs is _DYNAMIC when they depend
# on the instance (SetField, Move, Ct): ask it every time.
_ACTION_INFO: dict[type, tuple] = {}
_DYNAMIC: tuple = ("<dynamic>",)


def _action_info(tp: type) -> tuple:
    prereqs = _DYNAMIC if tp.prereqs is not Action.prereqs else ((tp.prereq,) if tp.prereq else ())
    out = _ACTION_INFO[tp] = (prereqs, issubclass(tp, Goto), issubclass(tp, Conjunction))
    return out


@dataclass(frozen=True, slots=True)
class Flow:
    table: str
    priority: int
    match: Match
    actions: tuple
    cookie: int = 0
    _hash: int = field(default=0, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        match = self.match
        if type(match) is not Match and not isinstance(match, Match):
            match = Match(match)
            object.__setattr__(self, "match", match)
        actions = self.actions
        if type(actions) is not tuple:
            actions = tuple(actions)
            object.__setattr__(self, "actions", actions)
        if not 0 <= self.priority <= 65535:
            raise FlowError(f"{self.table}: bad priority {self.priority}")
        if self.priority == 0 and len(match):
            raise FlowError(f"{self.table}: a priority-0 flow (table miss) must not match anything, "
                            f"got {match!r}")
        if not 0 <= self.cookie < (1 << 64):
            raise FlowError(f"bad cookie {self.cookie:#x}")
        last = len(actions) - 1
        conj = 0
        fields = match._dict
        satisfied = None   # the last prerequisite found satisfied (actions often repeat one)
        for i, a in enumerate(actions):
            info = _ACTION_INFO.get(type(a))
            if info is None:
                if not isinstance(a, Action):
                    raise FlowError(f"{self.table}: not an action: {a!r}")
                info = _action_info(type(a))
            prereqs, is_goto, is_conj = info
            if prereqs is _DYNAMIC:
                prereqs = a.prereqs()
            if is_goto and i != last:
                raise FlowError(f"{self.table}: goto_table must be the last action")
            for p in prereqs:
                if p != satisfied:
                    if not _PREREQS[p][1](fields):
                        raise FlowError(f"{self.table}: action {a!r} requires {_PREREQS[p][0]} in the match")
                    satisfied = p
            if is_conj:
                conj += 1
        if conj and conj != len(actions):
            raise FlowError(f"{self.table}: conjunction() cannot be mixed with other actions")
        # Flows live in sets and are hashed many times: hash once (same value the dataclass
        # hash would give). __reduce__ below rebuilds it, so pickles never carry a stale hash.
        object.__setattr__(self, "_hash", hash((self.table, self.priority, match, actions, self.cookie)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        return (Flow, (self.table, self.priority, self.match, self.actions, self.cookie))

    @property
    def key(self) -> tuple:
        return (self.table, self.priority, self.match)


@dataclass(frozen=True)
class Bucket:
    actions: tuple
    weight: int | None = None
    _hash: int = field(default=0, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):   # a Service's group holds each bucket many times (its slots): hash once
        object.__setattr__(self, "_hash", hash((self.actions, self.weight)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        return (Bucket, (self.actions, self.weight))


@dataclass(frozen=True)
class Group:
    group_id: int
    type: str
    buckets: tuple
    _hash: int = field(default=0, init=False, repr=False, compare=False, hash=False)

    def __hash__(self) -> int:   # groups of many buckets live in sets: hash once
        return self._hash

    def __post_init__(self):
        if self.type not in ("select", "all", "indirect"):
            raise FlowError(f"group {self.group_id}: bad type {self.type!r}")
        object.__setattr__(self, "buckets", tuple(self.buckets))
        if self.type == "indirect" and len(self.buckets) != 1:
            raise FlowError(f"group {self.group_id}: indirect groups have exactly one bucket")
        if self.type != "select" and any(b.weight is not None for b in self.buckets):
            raise FlowError(f"group {self.group_id}: only select buckets have weights")
        object.__setattr__(self, "_hash", hash((self.group_id, self.type, self.buckets)))

    def __reduce__(self):   # a pickle never carries the hash (str hashes differ between processes)
        return (Group, (self.group_id, self.type, self.buckets))


@dataclass(frozen=True)
class Meter:
    meter_id: int
    rate: int
    unit: str = "pktps"   # pktps | kbps
    burst: int = 0

    def __post_init__(self):
        if self.unit not in ("pktps", "kbps"):
            raise FlowError(f"meter {self.meter_id}: bad unit {self.unit!r}")
