"""compile_fabric: intent -> per-leaf desired state (bindings, MAC-VRFs, IP-VRFs, BGP)."""
from __future__ import annotations

import dataclasses

import pytest

from vpcnet.fabric import FabricIn, InputError, compile_fabric
from vpcnet.fabric.compile import EBGP_MULTIHOP_TTL, route_target_asn
from vpcnet.fabric.inputs import LeafIn, NodeIn, PeerIn
from vpcnet.fabric.model import (
    ANYCAST_GATEWAY_MAC, PortBinding, bound_name, mac_vrf_name, route_distinguisher,
    route_target, vrf_name,
)

from .fabric_cases import examples_fabric, fabric_mode, replace_leaf


@pytest.fixture(scope="module")
def states():
    return compile_fabric(examples_fabric())


def test_one_state_per_netconf_leaf(states):
    assert list(states) == ["leaf-1", "leaf-2"]
    s = states["leaf-1"]
    assert (s.leaf, s.model, s.vtep_ip, s.router_id) == ("leaf-1", "openconfig", "10.0.0.1",
                                                         "10.0.0.1")


def test_port_bindings_are_leaf_port_vlan_to_vni(states):
    s = states["leaf-1"]
    assert s.bindings == (PortBinding("swp1", 100, 10100, "trading-a"),
                          PortBinding("swp1", 101, 10101, "payments-a"),
                          PortBinding("swp1", 102, 10102, "shop-a"))
    assert [(p.name, p.nodes, p.vlans) for p in s.ports] == [("swp1", ("node-1",), (100, 101, 102))]
    assert s.vlan_of_vni() == {10100: 100, 10101: 101, 10102: 102}
    assert states["leaf-2"].ports[0].nodes == ("node-2",)


def test_mac_vrf_per_subnet_with_rd_and_rt(states):
    s1, s2 = states["leaf-1"], states["leaf-2"]
    mv = {m.subnet: m for m in s1.mac_vrfs}["trading-a"]
    assert (mv.name, mv.vni, mv.evi, mv.vlan, mv.vpc) == ("vpcnet-L2-trading-a", 10100, 10100,
                                                         100, "finance")
    assert mv.rd == "10.0.0.1:10100"                      # <router-id>:<evi>
    assert mv.import_rts == mv.export_rts == ("65001:10100",)   # <fabric asn>:<vni>
    mv2 = {m.subnet: m for m in s2.mac_vrfs}["trading-a"]
    assert mv2.rd == "10.0.0.2:10100"                     # RD unique per leaf ...
    assert mv2.export_rts == mv.export_rts                # ... RT shared by the fabric


def test_route_target_asn_is_fabric_wide(states):
    assert route_target_asn(examples_fabric()) == 65001   # lowest NETCONF leaf ASN
    pinned = dataclasses.replace(examples_fabric(), route_target_asn=65000)
    assert compile_fabric(pinned)["leaf-2"].mac_vrfs[0].export_rts == ("65000:10100",)


def test_ip_vrf_per_vpc_distributed_has_no_gateways(states):
    vrfs = {v.vpc: v for v in states["leaf-1"].ip_vrfs}
    fin = vrfs["finance"]
    assert (fin.name, fin.l3vni, fin.rd, fin.export_rts) == (
        "vpcnet-finance", 50001, "10.0.0.1:50001", ("65001:50001",))
    assert fin.gateways == () and states["leaf-1"].gateways == ()
    assert vrfs["finance"].address_families == (4,)
    assert vrfs["retail"].address_families == (4, 6)


def test_fabric_mode_adds_anycast_gateways():
    s = compile_fabric(fabric_mode())["leaf-2"]
    gws = {g.subnet: g for g in s.gateways}
    assert set(gws) == {"trading-a", "payments-a", "shop-a"}
    assert gws["shop-a"].addresses == ("10.30.0.1/24", "fd00:30::1/64")
    assert gws["shop-a"].vlan == 102 and gws["shop-a"].vni == 10102
    assert {g.mac for g in gws.values()} == {ANYCAST_GATEWAY_MAC} == {"0e:76:70:ff:00:00"}


def test_bgp_full_mesh_between_netconf_leaves(states):
    b = states["leaf-1"].bgp
    assert (b.asn, b.router_id) == (65001, "10.0.0.1")
    assert [(n.address, n.asn, n.description, n.ebgp_multihop) for n in b.neighbors] == [
        ("10.0.0.2", 65002, "vpcnet: leaf leaf-2", EBGP_MULTIHOP_TTL)]
    ibgp = replace_leaf(examples_fabric(), "leaf-2", asn=65001)
    assert compile_fabric(ibgp)["leaf-1"].bgp.neighbors[0].ebgp_multihop is None


def test_explicit_peers_replace_the_mesh():
    f = replace_leaf(examples_fabric(), "leaf-1", peers=(
        PeerIn("10.255.0.1", 65100, "spine-1"), PeerIn("10.255.0.2", 65001)))
    n = compile_fabric(f)["leaf-1"].bgp.neighbors
    assert [(x.address, x.description, x.ebgp_multihop) for x in n] == [
        ("10.255.0.1", "vpcnet: spine-1", EBGP_MULTIHOP_TTL), ("10.255.0.2", "vpcnet: peer", None)]
    with pytest.raises(InputError, match="leaf leaf-1: peers has the leaf's own address 10.0.0.1"):
        compile_fabric(replace_leaf(examples_fabric(), "leaf-1", peers=(PeerIn("10.0.0.1", 1),)))


def test_vtep_leaves_and_leaves_without_nodes():
    f = examples_fabric()
    extra = (LeafIn("leaf-3", "10.0.0.3", 65003), LeafIn("tor-ovs", "10.0.0.9", 65009, driver="vtep"))
    f = dataclasses.replace(f, leaves=f.leaves + extra)
    states = compile_fabric(f)
    assert list(states) == ["leaf-1", "leaf-2", "leaf-3"]          # hardware_vtep: not here
    s3 = states["leaf-3"]
    assert (s3.ports, s3.bindings, s3.mac_vrfs, s3.ip_vrfs) == ((), (), (), ())
    assert [n.address for n in s3.bgp.neighbors] == ["10.0.0.1", "10.0.0.2"]
    assert "10.0.0.9" not in [n.address for n in states["leaf-1"].bgp.neighbors]


def test_two_nodes_on_two_ports():
    f = examples_fabric()
    f = replace_leaf(f, "leaf-1", ports=("swp1", "swp2"))
    f = dataclasses.replace(f, nodes=f.nodes + (NodeIn("node-3", "leaf-1", "swp2"),))
    s = compile_fabric(f)["leaf-1"]
    assert [p.name for p in s.ports] == ["swp1", "swp2"]
    assert [(b.port, b.vlan) for b in s.bindings if b.vni == 10100] == [("swp1", 100), ("swp2", 100)]


def test_compile_is_deterministic():
    a = compile_fabric(examples_fabric())
    d = examples_fabric()
    shuffled = FabricIn(vpcs=tuple(reversed(d.vpcs)), subnets=tuple(reversed(d.subnets)),
                        nodes=tuple(reversed(d.nodes)), leaves=tuple(reversed(d.leaves)))
    assert compile_fabric(shuffled) == a


def test_derivation_limits():
    assert route_distinguisher("10.0.0.1", 65535, "x") == "10.0.0.1:65535"
    with pytest.raises(InputError, match="subnet web: vni=70000 is above 65535, which a type-1"):
        route_distinguisher("10.0.0.1", 70000, "subnet web")
    assert route_target(65001, 1_000_000, "x") == "65001:1000000"        # type 0: 4-byte VNI ok
    assert route_target(4_200_000_000, 10100, "x") == "4200000000:10100"  # type 2: 2-byte VNI
    with pytest.raises(InputError, match="vpc a: vni=70000 is above 65535, which a route target "
                                         "with the 4-byte ASN 4200000000"):
        route_target(4_200_000_000, 70000, "vpc a")


def test_rd_limit_reaches_compile():
    f = FabricIn.from_dicts(
        vpcs=[{"name": "a", "vni": 50001}],
        subnets=[{"name": "big", "vpc": "a", "vlan": 100, "vni": 70000, "cidrs": "10.0.0.0/24"}],
        nodes=[{"name": "n", "leaf": "l", "leafPort": "p1"}],
        leaves=[{"name": "l", "vtepIp": "10.0.0.1", "asn": 65001}],
        ownership={"vnis": [(50000, 80000)]})
    with pytest.raises(InputError, match="subnet big: vni=70000 is above 65535"):
        compile_fabric(f)


def test_names_are_bounded_and_distinct():
    own = examples_fabric().ownership
    assert vrf_name(own, "finance") == "vpcnet-finance"
    assert mac_vrf_name(own, "finance") == "vpcnet-L2-finance"      # cannot clash with a VPC
    long = "a-very-long-subnet-name-for-the-trading-desk"
    name = mac_vrf_name(own, long)
    assert len(name) == 31 and name.startswith("vpcnet-L2-a-very")
    assert name != mac_vrf_name(own, long + "x")
    assert bound_name("short") == "short"


def test_vlan_of_vni_refuses_two_vlans_for_one_vni(states):
    s = states["leaf-1"]
    odd = dataclasses.replace(s, bindings=s.bindings + (PortBinding("swp2", 200, 10100, "trading-a"),))
    with pytest.raises(InputError, match="leaf leaf-1: vni=10100 uses VLAN 100 and 200"):
        odd.vlan_of_vni()
