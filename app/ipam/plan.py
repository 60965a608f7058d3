"""Pure address arithmetic for one subnet: usable ranges, reserved addresses, fixed-IP checks, MACs.

No database here: `allocator.py` runs these against the IDL's address index inside a transaction.
"""
from __future__ import annotations

import dataclasses
import random
import re

import netaddr

# Locally administered, unicast: 0x0e = 0000 1110 (I/G bit 0, U/L bit 1). "vp" = 0x76 0x70.
MAC_PREFIX = (0x0E, 0x76, 0x70)
ORDINAL = re.compile(r"-(\d+)$")


class IpamError(Exception):
    """Base of IPAM errors; `field` names the request field at fault."""

    status = 400

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


class Conflict(IpamError):
    status = 409


class Exhausted(IpamError):
    status = 409


class Retry(Exception):
    """The view used for a decision was incomplete; the caller reloads and tries again."""


def mac_text(value: int) -> str:
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def derived_mac(ip: netaddr.IPAddress) -> str:
    """Predictable MAC for an address: the vpcnet prefix + the address's low 24 bits."""
    low = int(ip) & 0xFFFFFF
    return mac_text((MAC_PREFIX[0] << 40) | (MAC_PREFIX[1] << 32) | (MAC_PREFIX[2] << 24) | low)


def random_mac(rng: random.Random) -> str:
    return mac_text((MAC_PREFIX[0] << 40) | (MAC_PREFIX[1] << 32) | (MAC_PREFIX[2] << 24) | rng.getrandbits(24))


def normalise_mac(text: str) -> str:
    return str(netaddr.EUI(text, dialect=netaddr.mac_unix_expanded)).lower()


def parse_exclude(item: str) -> netaddr.IPSet:
    if ".." in item:
        lo, hi = item.split("..", 1)
        return netaddr.IPSet(netaddr.IPRange(lo.strip(), hi.strip()))
    return netaddr.IPSet([netaddr.IPAddress(item.strip())])


@dataclasses.dataclass
class CidrPlan:
    network: netaddr.IPNetwork
    gateway: netaddr.IPAddress
    first: int  # first usable address (as int)
    last: int   # last usable address

    @property
    def version(self) -> int:
        return self.network.version


class SubnetPlan:
    """Everything needed to hand out addresses in one subnet."""

    def __init__(self, name: str, vpc: str, cidr_block: str, gateway: str = "", exclude_ips=(),
                 vlan: int | None = None):
        self.name, self.vpc, self.vlan = name, vpc, vlan
        self.cidr_block = cidr_block
        gateways = [netaddr.IPAddress(g.strip()) for g in gateway.split(",") if g.strip()]
        self.excluded = netaddr.IPSet()
        for item in exclude_ips:
            self.excluded |= parse_exclude(item)
        self.cidrs: list[CidrPlan] = []
        for text in (c.strip() for c in cidr_block.split(",") if c.strip()):
            net = netaddr.IPNetwork(text)
            gw = next((g for g in gateways if g in net), None)
            if net.version == 4:
                first, last = int(net.first) + 1, int(net.last) - 1
            else:
                first, last = int(net.first) + 1, int(net.last)
            if gw is None:
                gw = netaddr.IPAddress(first, net.version)
            self.cidrs.append(CidrPlan(net, gw, first, last))
        self.gateways = {int(c.gateway) for c in self.cidrs}

    @classmethod
    def from_spec(cls, name: str, spec: dict, vlan: int | None = None) -> "SubnetPlan":
        return cls(name, spec.get("vpc", "default"), spec["cidrBlock"], spec.get("gateway", ""),
                   spec.get("excludeIps", ()), vlan)

    @property
    def versions(self) -> list[int]:
        seen: list[int] = []
        for c in self.cidrs:
            if c.version not in seen:
                seen.append(c.version)
        return seen

    def cidr_of(self, ip: netaddr.IPAddress) -> CidrPlan | None:
        return next((c for c in self.cidrs if ip in c.network), None)

    def contains(self, ip: netaddr.IPAddress) -> bool:
        return self.cidr_of(ip) is not None

    def reserved(self, ip: netaddr.IPAddress) -> bool:
        return int(ip) in self.gateways or ip in self.excluded

    def why_not_assignable(self, ip: netaddr.IPAddress) -> str | None:
        cidr = self.cidr_of(ip)
        if cidr is None:
            return f"{ip} is outside subnet {self.name} ({self.cidr_block})"
        if int(ip) < cidr.first or int(ip) > cidr.last:
            return f"{ip} is the network or broadcast address of {cidr.network}"
        if int(ip) in self.gateways:
            return f"{ip} is the gateway of subnet {self.name}"
        if ip in self.excluded:
            return f"{ip} is in excludeIps of subnet {self.name}"
        return None

    def size(self, version: int | None = None) -> int:
        total = 0
        for c in self.cidrs:
            if version is not None and c.version != version:
                continue
            span = netaddr.IPSet(netaddr.IPRange(netaddr.IPAddress(c.first, c.version),
                                                 netaddr.IPAddress(c.last, c.version)))
            span.remove(c.gateway)
            total += (span - self.excluded).size
        return total

    def describe(self) -> str:
        return f"subnet {self.name} ({self.cidr_block}, {self.size()} usable addresses)"

    def gateway_for(self, ip: netaddr.IPAddress) -> tuple[str, int]:
        cidr = self.cidr_of(ip)
        return str(cidr.gateway), cidr.network.prefixlen

    def candidates(self, version: int, used, start: dict, limit: int):
        """Yield up to `limit` free addresses of `version`, lowest first.

        `used(version, int) -> bool` says whether an address is taken; `start` caches, per CIDR,
        the lowest address not known to be taken (the caller resets it when addresses are freed).
        """
        found = 0
        for c in self.cidrs:
            if c.version != version:
                continue
            key = str(c.network)
            value = max(start.get(key, c.first), c.first)
            advanced = False
            while value <= c.last and found < limit:
                if used(version, value) or value in self.gateways or \
                        netaddr.IPAddress(value, version) in self.excluded:
                    if not advanced:
                        start[key] = value + 1
                    value += 1
                    continue
                advanced = True
                found += 1
                yield netaddr.IPAddress(value, version)
                value += 1
            if found >= limit:
                return


def ordinal(pod_name: str) -> int | None:
    m = ORDINAL.search(pod_name)
    return int(m.group(1)) if m else None
