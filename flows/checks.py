"""Checks and normalisers shared by the compiler's input values (``inputs``, ``policy_inputs``).

Each takes the object being built (for the message), the field name and the value, and returns
the canonical value or raises ``InputError`` naming both.
"""
from __future__ import annotations

import re
import sys
from typing import Mapping

import netaddr

class InputError(ValueError):
    """Invalid compiler input; the message names the object and field."""


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


def _int(obj, what: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{obj}: {what}={value!r} must be an integer in {lo}..{hi}")
    return value


def _name(obj, what: str, value) -> str:
    """A valid name, interned: 150,000 pods then share one string per node, subnet and VPC name
    (less memory, and index lookups by those names match on identity)."""
    if not isinstance(value, str) or not value or "/" in value or value != value.strip():
        raise InputError(f"{obj}: {what}={value!r} must be a non-empty name without '/'")
    return sys.intern(value) if type(value) is str else value


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANON_V4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_CANON_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def _ip(obj, what: str, value) -> str:
    if type(value) is str and _CANON_V4_RE.fullmatch(value):
        return value   # already what str(netaddr.IPAddress(value)) prints
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


# --- security policy inputs ------------------------------------------------------------------
# SecurityGroup and NetworkPolicy as the compiler sees them (the app converts the validated
# intent specs of app/intent/policy.py with ``from_spec``). Labels are sorted (key, value) tuples.
NS_NAME_LABEL = "kubernetes.io/metadata.name"   # set on every namespace, as the API server does
SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")
NP_PROTOCOLS = ("TCP", "UDP", "SCTP")
SG_PROTOCOLS = ("tcp", "udp", "icmp", "any")
POLICY_TYPES = ("Ingress", "Egress")


def _labels(obj, what: str, value) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else _tuple(obj, what, value)
    out = {}
    for item in items:
        try:
            k, v = item
        except (TypeError, ValueError):
            raise InputError(f"{obj}: {what} entry {item!r} must be a (key, value) pair") from None
        if not isinstance(k, str) or not k or not isinstance(v, str):
            raise InputError(f"{obj}: {what} entry {item!r} must map a non-empty string to a string")
        if out.get(k, v) != v:
            raise InputError(f"{obj}: {what} key {k!r} given twice")
        out[k] = v
    return tuple(sorted(out.items()))


def _names(obj, what: str, value) -> tuple[str, ...]:
    names = [_name(obj, what, n) for n in _tuple(obj, what, value)]
    if len(set(names)) != len(names):
        raise InputError(f"{obj}: {what}={tuple(value)!r} lists a name twice")
    return tuple(sorted(names))


def _named_ports(obj, value) -> tuple[tuple[str, str, int], ...]:
    out = []
    for item in _tuple(obj, "named_ports", value):
        try:
            name, proto, port = item
        except (TypeError, ValueError):
            raise InputError(f"{obj}: named_ports entry {item!r} must be (name, protocol, port)") from None
        _name(obj, "named_ports", name)
        if proto not in NP_PROTOCOLS:
            raise InputError(f"{obj}: named_ports entry {item!r}: protocol must be one of {NP_PROTOCOLS}")
        _int(obj, f"named_ports {name!r} port", port, 1, 65535)
        out.append((name, proto, port))
    if len({(n, p) for n, p, _ in out}) != len(out):
        raise InputError(f"{obj}: named_ports has a (name, protocol) twice: {tuple(out)!r}")
    return tuple(sorted(out))


def _ports(obj, what: str, value) -> tuple[tuple[int, int], ...]:
    out = []
    for item in _tuple(obj, what, value):
        try:
            lo, hi = item
        except (TypeError, ValueError):
            raise InputError(f"{obj}: {what} entry {item!r} must be a (lo, hi) pair") from None
        _int(obj, what, lo, 1, 65535)
        _int(obj, what, hi, lo, 65535)
        out.append((lo, hi))
    return tuple(sorted(set(out)))
