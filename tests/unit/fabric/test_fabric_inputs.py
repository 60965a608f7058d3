"""FabricIn: plain dicts in, validated values out; every error names object, field and value."""
from __future__ import annotations

import pytest

from vpcnet.fabric import FabricIn, InputError, Ownership
from vpcnet.fabric.inputs import LeafIn, SubnetIn

from .fabric_cases import example_dicts, examples_fabric

VPC = {"name": "finance", "vni": 50001}
SUBNET = {"name": "web", "vpc": "finance", "vlan": 100, "vni": 10100,
          "cidrBlock": "10.0.0.0/24,fd00::/64", "gateway": "10.0.0.1,fd00::1"}
LEAF = {"name": "leaf-1", "driver": "netconf", "managementAddress": "172.30.0.1:830",
        "vtepIp": "10.0.0.1", "asn": 65001, "ports": ["swp1"]}
NODE = {"name": "node-1", "datapathId": "0000000000000001", "uplinkPort": "uplink0",
        "leaf": "leaf-1", "leafPort": "swp1"}


def build(**changes) -> FabricIn:
    data = {"vpcs": [VPC], "subnets": [SUBNET], "nodes": [NODE], "leaves": [LEAF]}
    data.update(changes)
    return FabricIn.from_dicts(**data)


def test_from_dicts_accepts_spec_and_row_shapes():
    f = build()
    s = f.subnets[0]
    assert s.cidrs == ("10.0.0.0/24", "fd00::/64")
    assert s.gateways == ("10.0.0.1", "fd00::1")
    assert s.gateway_interfaces() == ("10.0.0.1/24", "fd00::1/64")
    assert f.nodes[0].leaf_port == "swp1"
    lf = f.leaves[0]
    assert (lf.vtep_ip, lf.router_id, lf.model, lf.ports, lf.peers) == \
        ("10.0.0.1", "10.0.0.1", "openconfig", ("swp1",), None)
    snake = FabricIn.from_dicts(
        vpcs=[{"name": "finance", "vni": 50001, "l3_mode": "fabric"}],
        subnets=[{"name": "web", "vpc": "finance", "vlan": 100, "vni": 10100,
                  "cidrs": ["10.0.0.0/24"], "gateways": ["10.0.0.1"]}],
        nodes=[{"name": "node-1", "leaf": "leaf-1", "leaf_port": "swp1"}],
        leaves=[{"name": "leaf-1", "vtep_ip": "10.0.0.1", "asn": 65001}])
    assert snake.vpcs[0].l3_mode == "fabric" and snake.subnets[0].cidrs == ("10.0.0.0/24",)


def test_examples_load():
    f = examples_fabric()
    assert [v.name for v in f.vpcs] == ["finance", "retail"]
    assert [(s.name, s.vlan, s.vni, s.gateways) for s in f.subnets] == [
        ("payments-a", 101, 10101, ("10.20.0.1",)),
        ("shop-a", 102, 10102, ("10.30.0.1", "fd00:30::1")),
        ("trading-a", 100, 10100, ("10.10.0.1",)),
    ]
    assert [(n.name, n.leaf, n.leaf_port) for n in f.nodes] == [
        ("node-1", "leaf-1", "swp1"), ("node-2", "leaf-2", "swp1")]
    assert example_dicts()["leaves"][0]["managementAddress"] == "172.30.0.1:830"


def test_order_of_input_does_not_matter():
    d = example_dicts()
    rev = {k: list(reversed(v)) for k, v in d.items()}
    assert FabricIn.from_dicts(**d) == FabricIn.from_dicts(**rev)


@pytest.mark.parametrize("changes, message", [
    ({"subnets": [{**SUBNET, "vlan": 5000}]}, "subnet web: vlan=5000 must be an integer in 1..4094"),
    ({"subnets": [{**SUBNET, "vlan": 50}]},
     "subnet web: vlan=50 is outside the VLAN ranges vpcnet owns (100-4094)"),
    ({"subnets": [{**SUBNET, "vni": 5}]},
     "subnet web: vni=5 is outside the VNI ranges vpcnet owns (10000-19999, 50000-59999)"),
    ({"vpcs": [{**VPC, "vni": 70000}]},
     "vpc finance: vni=70000 is outside the VNI ranges vpcnet owns"),
    ({"vpcs": [{**VPC, "l3Mode": "ovs"}]}, "vpc finance: l3Mode='ovs' must be one of"),
    ({"subnets": [{**SUBNET, "vpc": "nope"}]}, "subnet web: vpc='nope' is not a known VPC"),
    ({"subnets": [{**SUBNET, "vni": 50001}]}, "subnet web: vni=50001 is already used by vpc finance"),
    ({"subnets": [SUBNET, {**SUBNET, "name": "db", "vni": 10200}]},
     "subnet web: vlan=100 is already used by subnet db"),
    ({"subnets": [{**SUBNET, "gateway": "10.9.0.1"}]},
     "subnet web: gateway 10.9.0.1 is outside cidrBlock 10.0.0.0/24,fd00::/64"),
    ({"subnets": [{**SUBNET, "gateway": "10.0.0.1,10.0.0.2"}]},
     "subnet web: gateway 10.0.0.2 is a second gateway for 10.0.0.0/24"),
    ({"subnets": [{**SUBNET, "cidrBlock": "10.0.0.1/24"}]},
     "subnet web: cidrBlock has '10.0.0.1/24', which is not a network address/prefix"),
    ({"subnets": [{**SUBNET, "color": "red"}]}, "subnet web: unknown field 'color'"),
    ({"subnets": [{k: v for k, v in SUBNET.items() if k != "vni"}]},
     "subnet web: missing field(s) vni"),
    ({"nodes": [{**NODE, "leaf": "leaf-9"}]}, "node node-1: leaf='leaf-9' is not a known Leaf"),
    ({"nodes": [{**NODE, "leafPort": "swp7"}]},
     "node node-1: leafPort='swp7' is not in the ports of leaf leaf-1 (swp1)"),
    ({"nodes": [NODE, {**NODE, "name": "node-2"}]},
     "node node-2: leafPort='swp1' on leaf leaf-1 is already used by node node-1"),
    ({"nodes": [{"name": "node-1", "leaf": "leaf-1"}]},
     "node node-1: leaf='leaf-1' and leafPort=None must be set together"),
    ({"leaves": [{**LEAF, "vtepIp": "fd00::1"}]}, "leaf leaf-1: vtepIp='fd00::1' must be an IPv4"),
    ({"leaves": [{**LEAF, "asn": 0}]}, "leaf leaf-1: asn=0 must be an integer in 1..4294967295"),
    ({"leaves": [{**LEAF, "model": "junos"}]}, "leaf leaf-1: model='junos' must be one of"),
    ({"leaves": [{**LEAF, "peers": [{"address": "10.0.0.9"}]}]},
     "leaf leaf-1: peers entry {'address': '10.0.0.9'} must have address and asn"),
    ({"leaves": [{**LEAF, "peers": [{"address": "nope", "asn": 1}]}]},
     "leaf leaf-1: peers.address='nope' must be an IP address"),
    ({"leaves": [LEAF, {**LEAF, "name": "leaf-2"}]}, "leaf vtepIp '10.0.0.1' is given twice"),
    ({"vpcs": [VPC, VPC]}, "vpc 'finance' is given twice"),
    ({"ownership": {"prefix": "vpcnet"}}, "ownership: prefix='vpcnet' must be"),
    ({"ownership": {"vlans": ["200-100"]}}, "ownership: vlans entry 200-100 is an empty range"),
    ({"ownership": {"vnis": [(1, 2), (3,)]}}, "ownership: vnis entry (3,) must be a (low, high)"),
    ({"ownership": {"owner": "me"}}, "ownership: unknown field(s) owner"),
])
def test_errors_name_object_field_and_value(changes, message):
    with pytest.raises(InputError) as e:
        build(**changes)
    assert message in str(e.value)


def test_ownership_ranges_and_markers():
    own = Ownership.from_dict({"vlans": ["100-199", 300], "vnis": [(10000, 10999)],
                               "prefix": "acme-", "tag": "acme"})
    assert own.vlans == ((100, 199), (300, 300)) and own.vnis == ((10000, 10999),)
    assert own.owns_vlan(150) and own.owns_vlan(300) and not own.owns_vlan(200)
    assert own.owns_vni(10500) and not own.owns_vni(11000)
    assert own.owns_name("acme-x") and not own.owns_name("vpcnet-x")
    assert own.owns_description("acme: leaf x") and own.owns_description("acme")
    assert not own.owns_description("acmecorp uplink") and not own.owns_description(None)


def test_values_are_canonical():
    s = SubnetIn("db", "finance", 100, 10100, ("FD00:0::/64",), ("fd00::0:1",))
    assert (s.cidrs, s.gateways) == (("fd00::/64",), ("fd00::1",))
    lf = LeafIn("leaf-1", "10.0.0.1", 65001, peers=(
        {"address": "10.0.0.20", "asn": 65000}, {"address": "10.0.0.3", "asn": 65000}))
    assert [p.address for p in lf.peers] == ["10.0.0.3", "10.0.0.20"]
