"""Address, CIDR, MAC and port checks (all parsing goes through ``netaddr``).

``netaddr`` alone is lenient (``IPNetwork`` accepts netmasks, ``"/ 24"`` and trailing
newlines), so the text is pre-checked here and only canonical forms are produced.
"""
from __future__ import annotations

import re
from typing import Any

from netaddr import EUI, AddrFormatError, IPAddress, IPNetwork

from .errors import Reporter
from .fields import Check, check_str, comma_list, iana_svc_name, int_range, is_int

__all__ = [
    "parse_ip", "parse_cidr", "check_ip", "ip_check", "check_cidr", "check_mac", "check_port",
    "check_port_or_name", "ip_list",
]

_CIDR_TEXT = re.compile(r"([^/\s]+)/([0-9]{1,3})")
_MAX_PREFIX = {4: 32, 6: 128}

check_port = int_range(1, 65535)


def parse_ip(text: Any) -> IPAddress | None:
    """Strictly parse one IPv4/IPv6 address (no whitespace, zone ids or prefixes)."""
    if not isinstance(text, str) or not text or "/" in text or "%" in text:
        return None
    if any(c.isspace() for c in text):
        return None
    try:
        return IPAddress(text)
    except (AddrFormatError, ValueError, TypeError):
        return None


def parse_cidr(text: Any) -> IPNetwork | None:
    """Strictly parse ``address/prefixlen`` (host bits are kept: see :func:`check_cidr`)."""
    if not isinstance(text, str):
        return None
    m = _CIDR_TEXT.fullmatch(text)
    if not m:
        return None
    addr = parse_ip(m.group(1))
    plen = int(m.group(2))
    if addr is None or plen > _MAX_PREFIX[addr.version]:
        return None
    return IPNetwork(f"{addr}/{plen}")


def is_unicast(addr: IPAddress) -> bool:
    """Not unspecified, multicast, or the IPv4 limited broadcast address."""
    if addr.value == 0 or addr.is_multicast():
        return False
    return not (addr.version == 4 and addr.value == 0xFFFFFFFF)


def check_ip(r: Reporter, path: str, value: Any, *, version: int | None = None,
             unicast: bool = True) -> IPAddress | None:
    """An IP address; ``version`` restricts the family; ``unicast`` rejects 0.0.0.0, ::,
    multicast and 255.255.255.255."""
    if check_str(r, path, value) is None:
        return None
    addr = parse_ip(value)
    if addr is None:
        r.bad(path, value, "is not an IP address")
        return None
    if version is not None and addr.version != version:
        r.bad(path, value, f"must be an IPv{version} address")
        return None
    if unicast and not is_unicast(addr):
        r.bad(path, value, "is not a usable unicast address")
        return None
    return addr


def ip_check(*, version: int | None = None, unicast: bool = True) -> Check:
    """:func:`check_ip` as a check returning the canonical text."""
    def check(r: Reporter, path: str, value: Any) -> str | None:
        addr = check_ip(r, path, value, version=version, unicast=unicast)
        return None if addr is None else str(addr)
    return check


def check_cidr(r: Reporter, path: str, value: Any, *, network: bool = True) -> IPNetwork | None:
    """A CIDR ``address/prefix``; with ``network`` host bits must be zero."""
    if check_str(r, path, value) is None:
        return None
    net = parse_cidr(value)
    if net is None:
        r.bad(path, value, "is not a valid CIDR")
        return None
    if network and net.ip != net.network:
        r.bad(path, value, f"has host bits set; did you mean {net.cidr}?")
        return None
    return net.cidr if network else net


def cidr_text(r: Reporter, path: str, value: Any) -> str | None:
    """:func:`check_cidr` as a check returning the canonical text."""
    net = check_cidr(r, path, value)
    return None if net is None else str(net)


def check_mac(r: Reporter, path: str, value: Any) -> str | None:
    """A unicast 48-bit MAC, normalised to lowercase ``aa:bb:cc:dd:ee:ff``."""
    if check_str(r, path, value) is None:
        return None
    try:
        mac = EUI(value) if value and not any(c.isspace() for c in value) else None
    except (AddrFormatError, ValueError, TypeError):
        mac = None
    if mac is None or mac.version != 48:
        r.bad(path, value, "is not a MAC address (expected 6 octets, e.g. 02:00:00:00:00:01)")
        return None
    octets = [int(w) for w in mac.words]
    if octets[0] & 1:
        r.bad(path, value, "is a multicast MAC address (low bit of the first octet is set)")
        return None
    if not any(octets):
        r.bad(path, value, "is the all-zero MAC address")
        return None
    return ":".join(f"{o:02x}" for o in octets)


def check_port_or_name(r: Reporter, path: str, value: Any) -> int | str | None:
    """A port number 1..65535 or a named port (IANA_SVC_NAME)."""
    if is_int(value):
        return check_port(r, path, value)
    if isinstance(value, str):
        return iana_svc_name(r, path, value)
    r.wrong_type(path, value, "a port number or a port name")
    return None


def ip_list(r: Reporter, path: str, value: Any) -> list[IPAddress] | None:
    """A comma-separated list of unicast IP addresses (items reported individually)."""
    items = comma_list(r, path, value)
    if items is None:
        return None
    out = [check_ip(r, path, item) for item in items]
    return None if any(a is None for a in out) else out
