"""Per-leaf desired state: what one EVPN/VXLAN leaf must carry for vpcnet. Frozen values only.

Derivations (the single place they are defined; compile.py applies them):

* **Port bindings**: the unit of configuration is ``(leaf, port, vlan) -> vni``. br-int sends a
  subnet's traffic up the node's trunk tagged with the subnet's VLAN; the leaf maps that
  (port, VLAN) to the subnet's L2VNI. Today every leaf uses the subnet's cluster-wide VLAN, but the
  model carries the VLAN per binding and per MAC-VRF so a leaf-local VLAN can differ later.
* **EVI** of a MAC-VRF = its L2VNI; of an IP-VRF = its L3VNI.
* **Route distinguisher** = ``<router-id>:<evi>`` (type 1, RFC 4364 section 4.2). The router id
  defaults to the VTEP IP. The assigned-number field is 16 bits, so an EVI above 65535 is refused
  (vpcnet's default VNI ranges stay below it).
* **Route targets** = ``<asn>:<vni>`` for import and export, with one fabric-wide ASN
  (``FabricIn.route_target_asn``, default the lowest NETCONF leaf ASN). Per-leaf ``AS:VNI`` auto
  RTs (FRR's and most vendors' ``auto``) do not match across leaves with per-leaf eBGP ASNs, so
  vpcnet writes explicit RTs. A 2-byte ASN gives a type-0 RT (``<asn2>:<vni4>``); a 4-byte ASN a
  type-2 RT (``<asn4>:<vni2>``), which needs the VNI to fit 16 bits.
* **Anycast gateway**: in ``l3Mode: fabric`` every leaf answers for each subnet's gateway
  addresses with the same MAC, :data:`ANYCAST_GATEWAY_MAC` = ``0e:76:70:ff:00:00``. It is inside
  the block vpcnet reserves for router MACs (``0e:76:70:ff:HH:LL`` with VPC id 1..65535, see
  flows/inputs.py), where pod MACs are refused, and id 0 is never a VPC's, so it cannot collide
  with a pod or with br-int's distributed routers. One fabric-wide MAC because NX-OS allows only
  one (``fabric forwarding anycast-gateway-mac``). In ``l3Mode: distributed`` br-int routes and
  answers for the gateway; the leaves carry the IP-VRF/L3VNI but no gateway interfaces.
* **Names**: VRF ``<prefix><vpc>``, MAC-VRF ``<prefix>L2-<subnet>`` (Kubernetes names are lower
  case, so the upper-case ``L2-`` cannot collide with a VPC name), at most 31 characters (Huawei
  VPN-instance limit; NX-OS allows 32); longer names keep a prefix of the name plus 8 hex digits
  of its SHA-256.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .inputs import InputError, Ownership

__all__ = [
    "ANYCAST_GATEWAY_MAC", "MAX_NAME", "PortBinding", "LeafPort", "MacVrf", "Gateway", "IpVrf",
    "BgpNeighbor", "Bgp", "LeafState", "route_distinguisher", "route_target", "vrf_name",
    "mac_vrf_name", "bound_name",
]

ANYCAST_GATEWAY_MAC = "0e:76:70:ff:00:00"
MAX_NAME = 31


def bound_name(name: str, limit: int = MAX_NAME) -> str:
    """``name`` if it fits ``limit``, else a prefix of it + ``-`` + 8 hex digits of its SHA-256."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:limit - 9]}-{digest}"


def vrf_name(own: Ownership, vpc: str) -> str:
    return bound_name(f"{own.prefix}{vpc}")


def mac_vrf_name(own: Ownership, subnet: str) -> str:
    return bound_name(f"{own.prefix}L2-{subnet}")


def route_distinguisher(router_id: str, evi: int, who: str) -> str:
    """Type-1 RD ``<router-id>:<evi>``; ``who`` names the object for the error message."""
    if not 0 <= evi <= 0xFFFF:
        raise InputError(f"{who}: vni={evi} is above 65535, which a type-1 route distinguisher "
                         f"({router_id}:<evi>) cannot carry")
    return f"{router_id}:{evi}"


def route_target(asn: int, vni: int, who: str) -> str:
    """``<asn>:<vni>``: type 0 for a 2-byte ASN, type 2 (needs a 16-bit VNI) for a 4-byte ASN."""
    if asn > 0xFFFF and vni > 0xFFFF:
        raise InputError(f"{who}: vni={vni} is above 65535, which a route target with the 4-byte "
                         f"ASN {asn} (type 2, <asn4>:<nn2>) cannot carry")
    return f"{asn}:{vni}"


@dataclass(frozen=True, order=True)
class PortBinding:
    """``(leaf, port, vlan) -> vni``: the leaf maps frames tagged ``vlan`` on ``port`` to ``vni``."""
    port: str
    vlan: int
    vni: int
    subnet: str


@dataclass(frozen=True, order=True)
class LeafPort:
    """A node-facing trunk port and the VLANs vpcnet puts on it."""
    name: str
    nodes: tuple[str, ...]
    vlans: tuple[int, ...]


@dataclass(frozen=True, order=True)
class MacVrf:
    """One subnet's L2 service on a leaf: VLAN-based MAC-VRF / bridge domain + L2VNI."""
    vni: int
    name: str
    subnet: str
    vpc: str
    vlan: int                      # the VLAN this leaf uses for the subnet
    evi: int
    rd: str
    import_rts: tuple[str, ...]
    export_rts: tuple[str, ...]
    description: str


@dataclass(frozen=True, order=True)
class Gateway:
    """A subnet's anycast gateway on a leaf (IRB/SVI/VBDIF in the VPC's IP-VRF)."""
    vlan: int
    subnet: str
    vni: int                       # the subnet's L2VNI (Huawei's bridge-domain id)
    addresses: tuple[str, ...]     # "10.10.0.1/24", "fd00:30::1/64"
    mac: str
    description: str


@dataclass(frozen=True, order=True)
class IpVrf:
    """One VPC's L3 service on a leaf: IP-VRF + L3VNI (+ anycast gateways in fabric mode)."""
    name: str
    vpc: str
    l3vni: int
    rd: str
    import_rts: tuple[str, ...]
    export_rts: tuple[str, ...]
    gateways: tuple[Gateway, ...]
    address_families: tuple[int, ...]   # IP versions of the VPC's subnets (4, 6)
    description: str


@dataclass(frozen=True, order=True)
class BgpNeighbor:
    address: str
    asn: int
    description: str               # always starts with the ownership tag
    ebgp_multihop: int | None      # TTL for loopback-to-loopback eBGP sessions, None for iBGP


@dataclass(frozen=True)
class Bgp:
    asn: int
    router_id: str
    neighbors: tuple[BgpNeighbor, ...]


@dataclass(frozen=True)
class LeafState:
    """Everything vpcnet wants on one leaf. Tuples are sorted; equal intent -> equal value."""
    leaf: str
    model: str
    vtep_ip: str
    router_id: str
    vtep_interface: str | None
    ports: tuple[LeafPort, ...]
    bindings: tuple[PortBinding, ...]
    mac_vrfs: tuple[MacVrf, ...]
    ip_vrfs: tuple[IpVrf, ...]
    bgp: Bgp
    ownership: Ownership
    anycast_mac: str = ANYCAST_GATEWAY_MAC

    @property
    def gateways(self) -> tuple[Gateway, ...]:
        return tuple(sorted(g for v in self.ip_vrfs for g in v.gateways))

    def vlan_of_vni(self) -> dict[int, int]:
        """VNI -> VLAN on this leaf; raises when a VNI uses two VLANs (VLAN-based renderers)."""
        out: dict[int, int] = {}
        for b in self.bindings:
            if out.setdefault(b.vni, b.vlan) != b.vlan:
                raise InputError(f"leaf {self.leaf}: vni={b.vni} uses VLAN {out[b.vni]} and "
                                 f"{b.vlan}; a VLAN-based MAC-VRF needs one VLAN per VNI per leaf")
        for mv in self.mac_vrfs:
            out.setdefault(mv.vni, mv.vlan)
        return out
