"""Spec validators for the network kinds: Vpc, Subnet, Namespace."""
from __future__ import annotations

from typing import Any

from netaddr import IPAddress, IPNetwork

from .errors import Reporter
from .fields import Fields, check_str, comma_list, dns_label, dns_subdomain
from .net import cidr_text, check_cidr, check_ip, parse_ip
from .shared import SpecContext

__all__ = ["VALIDATORS", "MAX_VNI", "parse_cidr_block", "parse_exclude"]

MAX_VNI = 16777215
_MAX_SUBNET_PREFIX = {4: 30, 6: 126}
_IPV6_MIN_MTU = 1280


# ---------------------------------------------------------------------------- Vpc
def vpc_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "namespaces": f.list("namespaces", dns_label, unique=True),
        "l3Mode": f.enum("l3Mode", ("distributed", "fabric"), default="distributed"),
    }
    vni = f.int("vni", 1, MAX_VNI)
    if vni is not None:
        spec["vni"] = vni
    spec["strictRevocation"] = f.bool("strictRevocation", default=True)
    peers = f.list("peers", dns_subdomain, unique=True)
    if peers and ctx.name in peers:
        f.r.bad(f.at("peers"), ctx.name, "is this VPC itself; a VPC cannot peer with itself")
    spec["peers"] = peers
    f.done()
    return spec


# ---------------------------------------------------------------------------- Subnet
def parse_cidr_block(r: Reporter, path: str, value: Any) -> list[IPNetwork] | None:
    """``"10.0.0.0/24,fd00::/64"`` -> networks; checks sizes, duplicates and overlaps."""
    items = comma_list(r, path, value)
    if items is None:
        return None
    nets: list[IPNetwork] = []
    ok = True
    for item in items:
        net = check_cidr(r, path, item)
        if net is None:
            ok = False
            continue
        limit = _MAX_SUBNET_PREFIX[net.version]
        if net.prefixlen > limit:
            r.bad(path, item, f"is too small for a subnet (IPv{net.version} prefix must be "
                              f"/{limit} or shorter)")
            ok = False
            continue
        for other in nets:
            if other == net:
                r.bad(path, item, "is listed more than once")
                ok = False
                break
            if other.version == net.version and (net in other or other in net):
                r.bad(path, item, f"overlaps {other} in the same subnet")
                ok = False
                break
        else:
            nets.append(net)
    return nets if ok else None


def _containing(nets: list[IPNetwork], addr: IPAddress) -> IPNetwork | None:
    for net in nets:
        if net.version == addr.version and addr in net:
            return net
    return None


def _where(nets: list[IPNetwork]) -> str:
    return ",".join(str(n) for n in nets)


def _gateways(f: Fields, nets: list[IPNetwork] | None) -> str | None:
    path = f.at("gateway")
    items = f.get("gateway", comma_list)
    if items is None:
        return None
    out, used = [], {}
    for item in items:
        addr = check_ip(f.r, path, item)
        if addr is None:
            continue
        out.append(str(addr))
        if nets is None:
            continue
        net = _containing(nets, addr)
        if net is None:
            f.r.bad(path, item, f"is not inside the subnet's CIDRs ({_where(nets)})")
        elif addr == net.network:
            f.r.bad(path, item, f"is the network address of {net}")
        elif net.version == 4 and addr == net.broadcast:
            f.r.bad(path, item, f"is the broadcast address of {net}")
        elif net in used:
            f.r.bad(path, item, f"is a second gateway for {net} (already {used[net]})")
        else:
            used[net] = item
    return ",".join(out) if len(out) == len(items) else None


def parse_exclude(r: Reporter, path: str, value: Any,
                  nets: list[IPNetwork] | None) -> str | None:
    """An exclude entry: ``"10.0.0.5"`` or ``"10.0.0.2..10.0.0.9"`` -> canonical text."""
    if check_str(r, path, value) is None:
        return None
    parts = value.split("..")
    if len(parts) > 2:
        r.bad(path, value, "is not an IP address or an 'a..b' range")
        return None
    addrs = [parse_ip(p.strip()) for p in parts]
    for text, addr in zip(parts, addrs):
        if addr is None:
            r.bad(path, text.strip() if len(parts) == 2 else value, "is not an IP address")
    if any(a is None for a in addrs):
        return None
    lo, hi = addrs[0], addrs[-1]
    if lo.version != hi.version:
        r.bad(path, value, "mixes IPv4 and IPv6 addresses in one range")
        return None
    if lo > hi:
        r.bad(path, value, f"is an empty range: {lo} is above {hi}")
        return None
    ok = True
    if nets is not None:
        for addr in dict.fromkeys((lo, hi)):
            if _containing(nets, addr) is None:
                r.bad(path, str(addr), f"is not inside the subnet's CIDRs ({_where(nets)})")
                ok = False
    if not ok:
        return None
    return str(lo) if lo == hi else f"{lo}..{hi}"


def subnet_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    r = f.r
    spec: dict[str, Any] = {"vpc": f.get("vpc", dns_subdomain, default="default")}
    nets = f.get("cidrBlock", parse_cidr_block, required=True)
    spec["cidrBlock"] = None if nets is None else ",".join(str(n) for n in nets)
    gateway = _gateways(f, nets)
    if gateway is not None:
        spec["gateway"] = gateway
    spec["excludeIps"] = f.list(
        "excludeIps", lambda r, p, v: parse_exclude(r, p, v, nets), unique=True)
    spec["namespaces"] = f.list("namespaces", dns_label, unique=True)
    for key, lo, hi in (("vlan", 1, 4094), ("vni", 1, MAX_VNI), ("mtu", 576, 9000)):
        value = f.int(key, lo, hi)
        if value is not None:
            spec[key] = value
    mtu = spec.get("mtu")
    if mtu is not None and nets and any(n.version == 6 for n in nets) and mtu < _IPV6_MIN_MTU:
        r.bad(f.at("mtu"), mtu, f"is below the IPv6 minimum MTU of {_IPV6_MIN_MTU}")
    spec["private"] = f.bool("private", default=False)
    allow = f.list("allowSubnets", cidr_text, unique=True)
    if allow and spec["private"] is False:
        r.error(f.at("allowSubnets"), "only applies to a private subnet; set private: true")
    spec["allowSubnets"] = allow
    f.done()
    return spec


# ---------------------------------------------------------------------------- Namespace
def namespace_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    vpc = f.get("vpc", dns_subdomain)
    if vpc is not None:
        spec["vpc"] = vpc
    spec["subnets"] = f.list("subnets", dns_subdomain, unique=True)
    f.ignore("finalizers")  # Kubernetes' own Namespace spec field; not ours
    f.done()
    return spec


VALIDATORS = {"Vpc": vpc_spec, "Subnet": subnet_spec, "Namespace": namespace_spec}
