"""compile_vtep: intent + pod locations -> desired hardware_vtep state of each VTEP leaf."""
from __future__ import annotations

import dataclasses

import pytest

from vpcnet.fabric import FabricIn, InputError, Ownership
from vpcnet.fabric.vtep import (
    MAX_LS_NAME, LogicalSwitch, PodLocation, RemoteMac, RemoteMcast, VlanBinding, VtepState,
    compile_vtep, compile_vtep_leaf, ls_name,
)

VPCS = [{"name": "finance", "vni": 50001}, {"name": "retail", "vni": 50002}]
SUBNETS = [
    {"name": "web", "vpc": "finance", "vlan": 100, "vni": 10100, "cidrBlock": "10.0.0.0/24"},
    {"name": "db", "vpc": "finance", "vlan": 101, "vni": 10101,
     "cidrBlock": "10.1.0.0/24,fd00:1::/64"},
    {"name": "shop", "vpc": "retail", "vlan": 102, "vni": 10102, "cidrBlock": "10.2.0.0/24"},
]
LEAVES = [
    {"name": "vtep-1", "driver": "vtep", "vtepIp": "10.99.0.1", "asn": 65101,
     "ports": ["p1", "p2"]},
    {"name": "vtep-2", "driver": "vtep", "vtepIp": "10.99.0.2", "asn": 65102},
    {"name": "leaf-3", "driver": "netconf", "vtepIp": "10.99.0.3", "asn": 65003},
    {"name": "leaf-4", "driver": "netconf", "vtepIp": "10.99.0.4", "asn": 65004},   # no nodes
]
NODES = [
    {"name": "n1", "leaf": "vtep-1", "leafPort": "p1"},
    {"name": "n2", "leaf": "vtep-1", "leafPort": "p2"},
    {"name": "n3", "leaf": "vtep-2", "leafPort": "p1"},
    {"name": "n4", "leaf": "leaf-3", "leafPort": "swp1"},
    {"name": "n5"},                                              # behind no leaf
]
PODS = [
    ("02:00:00:00:00:0a", "10.0.0.10", "n1", "web", "t/a"),       # local to vtep-1
    ("02:00:00:00:00:0b", "10.0.0.11", "n3", "web", "t/b"),       # behind vtep-2
    ("02:00:00:00:00:0c", ["10.1.0.12", "fd00:1::c"], "n4", "db", "t/c"),   # behind leaf-3
    ("02:00:00:00:00:0d", "10.0.0.13", "n5", "web", "t/d"),       # behind no leaf
    ("02:00:00:00:00:0e", "10.2.0.14", "n2", "shop", "r/e"),      # local to vtep-1 (2nd port)
    ("02:00:00:00:00:0f", "fd00:1::f", "n3", "db", "t/f"),        # IPv6 only, behind vtep-2
]


def build(**changes) -> FabricIn:
    data = {"vpcs": VPCS, "subnets": SUBNETS, "nodes": NODES, "leaves": LEAVES}
    data.update(changes)
    return FabricIn.from_dicts(**data)


@pytest.fixture(scope="module")
def states():
    return compile_vtep(build(), PODS)


def test_one_state_per_vtep_leaf(states):
    assert list(states) == ["vtep-1", "vtep-2"]          # NETCONF leaves are compile.py's
    s = states["vtep-1"]
    assert (s.leaf, s.physical_switch, s.vtep_ip, s.ownership) == \
        ("vtep-1", "vtep-1", "10.99.0.1", Ownership())


def test_logical_switch_per_subnet_keyed_by_l2vni(states):
    own = Ownership()
    assert states["vtep-1"].logical_switches == (
        LogicalSwitch("vpcnet-ls-db", 10101, "vpcnet: subnet db (vpc finance)", "source_node"),
        LogicalSwitch("vpcnet-ls-shop", 10102, "vpcnet: subnet shop (vpc retail)", "source_node"),
        LogicalSwitch("vpcnet-ls-web", 10100, "vpcnet: subnet web (vpc finance)", "source_node"),
    )
    for ls in states["vtep-1"].logical_switches:       # what the driver recognises as its own
        assert own.owns_name(ls.name) and own.owns_description(ls.description)
    assert states["vtep-2"].logical_switches == states["vtep-1"].logical_switches


def test_vlan_bindings_on_node_facing_ports(states):
    assert states["vtep-1"].bindings == tuple(
        VlanBinding("vtep-1", port, vlan, f"vpcnet-ls-{sub}")
        for port in ("p1", "p2") for vlan, sub in ((100, "web"), (101, "db"), (102, "shop")))
    assert {b.port for b in states["vtep-2"].bindings} == {"p1"}


@pytest.mark.parametrize("leaf, expected", [
    ("vtep-1", (
        RemoteMac("vpcnet-ls-db", "02:00:00:00:00:0c", "10.1.0.12", "10.99.0.3"),
        RemoteMac("vpcnet-ls-db", "02:00:00:00:00:0f", "", "10.99.0.2"),
        RemoteMac("vpcnet-ls-web", "02:00:00:00:00:0b", "10.0.0.11", "10.99.0.2"),
    )),
    ("vtep-2", (
        RemoteMac("vpcnet-ls-db", "02:00:00:00:00:0c", "10.1.0.12", "10.99.0.3"),
        RemoteMac("vpcnet-ls-shop", "02:00:00:00:00:0e", "10.2.0.14", "10.99.0.1"),
        RemoteMac("vpcnet-ls-web", "02:00:00:00:00:0a", "10.0.0.10", "10.99.0.1"),
    )),
])
def test_remote_macs_are_pods_behind_other_leaves(states, leaf, expected):
    # local pods (learnt by the switch) and pods on a leaf-less node (n5) get no row; the IPv4
    # address is ipaddr (ARP suppression), an IPv6-only pod has none
    assert states[leaf].remote_macs == expected


@pytest.mark.parametrize("leaf, others", [
    ("vtep-1", ("10.99.0.2", "10.99.0.3")),       # leaf-4 carries no subnet (no nodes)
    ("vtep-2", ("10.99.0.1", "10.99.0.3")),
])
def test_unknown_dst_floods_to_the_other_carrying_leaves(states, leaf, others):
    assert states[leaf].remote_mcasts == tuple(
        RemoteMcast(f"vpcnet-ls-{s}", "unknown-dst", others) for s in ("db", "shop", "web"))


def test_leaf_without_nodes_carries_nothing():
    nodes = [n for n in NODES if n.get("leaf") != "vtep-2"]
    s = compile_vtep(build(nodes=nodes), [p for p in PODS if p[2] != "n3"])["vtep-2"]
    assert s == VtepState("vtep-2", "vtep-2", "10.99.0.2")
    assert s.logical_switches == s.bindings == s.remote_macs == s.remote_mcasts == ()


def test_only_carrying_leaf_has_no_bum_set():
    nodes = [n for n in NODES if n.get("leaf") == "vtep-1"]
    s = compile_vtep(build(nodes=nodes), [p for p in PODS if p[2] in ("n1", "n2")])["vtep-1"]
    assert s.remote_mcasts == () and s.remote_macs == ()       # a locator set cannot be empty
    assert len(s.logical_switches) == 3


def test_pod_shapes_and_order_do_not_matter(states):
    shuffled = list(reversed(PODS))
    as_objects = [PodLocation(p[0].upper(), tuple(p[1]) if isinstance(p[1], list) else (p[1],),
                              p[2], p[3]) for p in PODS]
    dashed = [(p[0].replace(":", "-"), p[1], p[2], p[3]) for p in PODS]
    for pods in (shuffled, as_objects, dashed, iter(PODS)):
        assert compile_vtep(build(), pods) == states


def test_same_mac_in_two_subnets_is_fine():
    pods = [("02:00:00:00:00:01", "10.0.0.5", "n3", "web"), ("02:00:00:00:00:01", None, "n3", "db")]
    macs = compile_vtep(build(), pods)["vtep-1"].remote_macs
    assert [(m.logical_switch, m.ipaddr) for m in macs] == [("vpcnet-ls-db", ""),
                                                            ("vpcnet-ls-web", "10.0.0.5")]


def test_names_follow_ownership_and_are_bounded():
    own = Ownership(prefix="acme-", tag="acme")
    long = "s" * 80
    subnets = SUBNETS + [{"name": long, "vpc": "retail", "vlan": 103, "vni": 10103,
                          "cidrBlock": "10.3.0.0/24"}]
    s = compile_vtep(build(subnets=subnets, ownership=own), ())["vtep-1"]
    names = [ls.name for ls in s.logical_switches]
    assert "acme-ls-web" in names and all(len(n) <= MAX_LS_NAME for n in names)
    assert ls_name(own, long) in names and ls_name(own, long) != ls_name(own, long[:-1])
    assert {ls.description.split(":")[0] for ls in s.logical_switches} == {"acme"}


def test_physical_switch_name_can_differ_from_the_leaf():
    s = compile_vtep(build(), PODS, physical_switches={"vtep-1": "br-vtep"})
    assert s["vtep-1"].physical_switch == "br-vtep"
    assert {b.physical_switch for b in s["vtep-1"].bindings} == {"br-vtep"}
    assert s["vtep-2"].physical_switch == "vtep-2"


def test_compile_is_pure_and_deterministic(states):
    again = compile_vtep(build(), list(PODS))
    assert again == states and hash(again["vtep-1"].logical_switches)
    with pytest.raises(dataclasses.FrozenInstanceError):
        states["vtep-1"].leaf = "x"


def _leaf(name, **changes):
    return [{**lf, **changes} if lf["name"] == name else lf for lf in LEAVES]


@pytest.mark.parametrize("pods, kwargs, message", [
    ([("02:00:00:00:00:zz", "10.0.0.5", "n1", "web", "t/x")], {},
     "pod t/x: mac='02:00:00:00:00:zz' must be a MAC address"),
    ([("01:00:5e:00:00:01", "10.0.0.5", "n1", "web", "t/x")], {},
     "pod t/x: mac='01:00:5e:00:00:01' is a multicast/broadcast MAC"),
    ([("ff:ff:ff:ff:ff:ff", None, "n1", "web")], {},
     "pod ff:ff:ff:ff:ff:ff (node n1): mac='ff:ff:ff:ff:ff:ff' is a multicast/broadcast MAC"),
    ([("0e:76:70:ff:00:07", "10.0.0.5", "n1", "web", "t/x")], {},
     "pod t/x: mac=0e:76:70:ff:00:07 is in vpcnet's reserved router MAC range"),
    ([(None, "10.0.0.5", "n1", "web", "t/x")], {}, "pod t/x: mac=None must be a MAC address"),
    ([("02:00:00:00:00:01", "10.0.0.5", "n9", "web", "t/x")], {},
     "pod t/x: node='n9' is not a known Node"),
    ([("02:00:00:00:00:01", "10.0.0.5", "n1", "nope", "t/x")], {},
     "pod t/x: subnet='nope' is not a known Subnet"),
    ([("02:00:00:00:00:01", "10.9.0.5", "n1", "web", "t/x")], {},
     "pod t/x: ip=10.9.0.5 is outside subnet web's cidrBlock 10.0.0.0/24"),
    ([("02:00:00:00:00:01", "10.0.0.300", "n1", "web", "t/x")], {},
     "pod t/x: ip='10.0.0.300' must be an IP address"),
    ([("02:00:00:00:00:01", 42, "n1", "web", "t/x")], {}, "pod t/x: ip=42 must be an IP address"),
    ([("02:00:00:00:00:01", "10.0.0.5", "n1", "web", "t/x"),
      ("02:00:00:00:00:01", "10.0.0.6", "n3", "web", "t/y")], {},
     "pod t/y: mac=02:00:00:00:00:01 in subnet web is already pod t/x's"),
    ([("02:00:00:00:00:01", "10.0.0.5", "n1", "web"),
      ("02:00:00:00:00:01", "10.0.0.6", "n1", "web")], {},
     "pod 02:00:00:00:00:01 (node n1): mac=02:00:00:00:00:01 in subnet web is given twice"),
    ([("02:00:00:00:00:01", "10.0.0.5", "n1", "web", "t/x"),
      ("02:00:00:00:00:02", "10.0.0.5", "n3", "web", "t/y")], {},
     "pod t/y: ip=10.0.0.5 in subnet web is already pod t/x's"),
    ([("02:00:00:00:00:01", "10.0.0.5", "n1")], {},
     "pods: entry ('02:00:00:00:00:01', '10.0.0.5', 'n1') must be (mac, ip, node, subnet[, name])"),
    ("02:00:00:00:00:01", {}, "pods='02:00:00:00:00:01' must be an iterable of"),
    ((), {"physical_switches": {"leaf-3": "x"}},
     "physical_switches: leaf 'leaf-3' is not a known leaf with driver vtep"),
    ((), {"physical_switches": {"vtep-1": " x"}},
     "leaf vtep-1: physical switch name ' x' must be a non-empty name"),
])
def test_bad_input_names_object_field_and_value(pods, kwargs, message):
    with pytest.raises(InputError) as err:
        compile_vtep(build(), pods, **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("leaves, message", [
    (_leaf("vtep-2", vtepIp="10.99.0.3"), "vtepIp=10.99.0.3 is already leaf"),
    (_leaf("vtep-2", vtepIp="10.99.0.1"), "leaf vtep-2: vtepIp=10.99.0.1 is already leaf vtep-1's"),
])
def test_vtep_ips_must_be_unique(leaves, message):
    with pytest.raises(InputError, match=message):
        compile_vtep(build(leaves=leaves), ())


def test_compile_leaf_refuses_a_netconf_leaf():
    f = build()
    with pytest.raises(InputError, match="leaf leaf-3: driver='netconf' is not a hardware VTEP"):
        compile_vtep_leaf(f, f.leaf("leaf-3"))
    assert compile_vtep_leaf(f, f.leaf("vtep-1"), PODS) == compile_vtep(f, PODS)["vtep-1"]


# --- the controller's side (app/fabric_vtep.py): Pod rows -> pod locations ---------------------
import json as _json  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from vpcnet.app.fabric_vtep import ovsdb_remote, pod_locations  # noqa: E402


def _pod_row(ns, name, created, **status):
    return SimpleNamespace(namespace=ns, name=name, created_ms=created, node=None,
                           spec=_json.dumps({"nodeName": status.pop("spec_node", None)}),
                           status=_json.dumps(status))


def test_pod_rows_become_locations_and_bad_rows_are_left_out():
    f = build()
    rows = [
        _pod_row("t", "a", 1, mac="02:00:00:00:00:0A", ips=["10.0.0.5/24"], subnet="web", node="n1"),
        _pod_row("t", "dual", 2, mac="02:00:00:00:00:0b", ips=["10.1.0.5", "fd00:1::5"], subnet="db",
                 spec_node="n3"),                                       # node from spec.nodeName
        _pod_row("t", "pending", 3, subnet="web", node="n1"),              # not allocated yet
        _pod_row("t", "nowhere", 4, mac="02:00:00:00:00:0c", ips=["10.0.0.6"], subnet="web",
                 node="ghost"),                                         # unknown node
        _pod_row("t", "nosubnet", 5, mac="02:00:00:00:00:0d", ips=["10.9.0.6"], subnet="gone",
                 node="n1"),                                            # subnet without a VNI yet
        _pod_row("t", "clash", 6, mac="02:00:00:00:00:0e", ips=["10.0.0.5"], subnet="web", node="n3"),
    ]
    pods, problems = pod_locations(rows, f)
    assert pods == [PodLocation("02:00:00:00:00:0a", ("10.0.0.5",), "n1", "web", "t/a"),
                    PodLocation("02:00:00:00:00:0b", ("10.1.0.5", "fd00:1::5"), "n3", "db", "t/dual")]
    assert problems == ["Pod/t/clash: its MAC or address in subnet web is also Pod/t/a's; "
                        "left out of the VTEPs"]
    states = compile_vtep(f, pods)          # the locations always compile
    assert [m.mac for m in states["vtep-1"].remote_macs] == ["02:00:00:00:00:0b"]


@pytest.mark.parametrize("address, remote", [
    ("172.30.0.1:6640", "tcp:172.30.0.1:6640"),
    ("[fd00::1]:6640", "tcp:[fd00::1]:6640"),
    ("leaf1.lab:7000", "tcp:leaf1.lab:7000"),
    ("unix:/run/vtep.sock", "unix:/run/vtep.sock"),
])
def test_management_address_to_ovsdb_remote(address, remote):
    assert ovsdb_remote(address) == remote
