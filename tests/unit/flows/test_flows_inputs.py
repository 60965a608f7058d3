"""Input validation: canonical values, and errors that name the object and field."""
from __future__ import annotations

import pytest

from flow_scenarios import NODES, PODS, SUBNETS, VPCS
from vpcnet.flows.inputs import ClusterIn, InputError, NodeIn, PodIn, SubnetIn, VpcIn, node_router_mac, router_mac


def test_router_mac_is_derived_from_vpc_id():
    assert router_mac(7) == "0e:76:70:ff:00:07"
    assert router_mac(0x1234) == "0e:76:70:ff:12:34"
    assert VpcIn("v", 0x1234, 1).router_mac == "0e:76:70:ff:12:34"
    with pytest.raises(InputError):
        router_mac(0x10000)


def test_values_are_canonical():
    p = PodIn("ns", "a", "v", "s", ["10.0.0.5", "FD00::0005"], "0E-76-70-00-00-05", "n", 3)
    assert p.ips == ("10.0.0.5", "fd00::5") and p.mac == "0e:76:70:00:00:05"
    s = SubnetIn("s", "v", ["10.0.0.0/24"], ["10.0.0.1"], 10, 1, allow_subnets=["b", "a", "b"])
    assert s.cidrs == ("10.0.0.0/24",) and s.allow_subnets == ("a", "b")
    assert hash(s) == hash(SubnetIn("s", "v", ("10.0.0.0/24",), ("10.0.0.1",), 10, 1, allow_subnets=("a", "b")))


@pytest.mark.parametrize("make,msg", [
    (lambda: VpcIn("v", 0, 1), "vpc_id"),
    (lambda: VpcIn("v", 1, 1, l3_mode="ospf"), "l3_mode"),
    (lambda: SubnetIn("s", "v", ("10.0.0.1/24",), (), 10, 1), "host bits"),
    (lambda: SubnetIn("s", "v", ("10.0.0.0/24",), ("10.1.0.1",), 10, 1), "outside"),
    (lambda: SubnetIn("s", "v", ("10.0.0.0/24",), (), 4095, 1), "vlan"),
    (lambda: SubnetIn("s", "v", "10.0.0.0/24", (), 10, 1), "sequence"),
    (lambda: PodIn("ns", "a", "v", "s", ("10.0.0.5",), "01:00:00:00:00:01", "n", 3), "multicast"),
    (lambda: PodIn("ns", "a", "v", "s", ("10.0.0.5",), "0e:76:70:ff:00:01", "n", 3), "router"),
    (lambda: PodIn("ns", "a/b", "v", "s", (), "0e:76:70:00:00:01", "n", 3), "name"),
    (lambda: NodeIn("n", 1, 0), "uplink_ofport"),
])
def test_bad_objects_rejected(make, msg):
    with pytest.raises(InputError, match=msg):
        make()


def _pod(**kw):
    base = dict(namespace="finance", name="z", vpc="finance", subnet="web", ips=("10.0.1.99",),
                mac="0e:76:70:00:00:99", node="node-1", ofport=30)
    base.update(kw)
    return PodIn(**base)


@pytest.mark.parametrize("extra,msg", [
    (dict(subnets=SUBNETS + (SubnetIn("web2", "finance", ("10.0.1.128/25",), (), 555, 555),)), "overlap"),
    (dict(subnets=SUBNETS + (SubnetIn("dup", "finance", ("10.0.77.0/24",), (), 100, 556),)), "vlan"),
    (dict(subnets=SUBNETS + (SubnetIn("o", "nowhere", ("10.0.77.0/24",), (), 557, 557),)), "unknown vpc"),
    (dict(subnets=SUBNETS + (SubnetIn("o", "retail", ("10.0.77.0/24",), (), 557, 557, True, ("web",)),)),
     "allow_subnets"),
    (dict(pods=PODS + (_pod(ips=("10.0.1.5",)),)), "already used"),
    (dict(pods=PODS + (_pod(ips=("10.0.2.9",)),)), "outside subnet"),
    (dict(pods=PODS + (_pod(ips=("10.0.1.1",)),)), "gateway"),
    (dict(pods=PODS + (_pod(mac="0e:76:70:00:00:05"),)), "mac"),
    (dict(pods=PODS + (_pod(ofport=3),)), "ofport"),
    (dict(pods=PODS + (_pod(ofport=1),)), "ofport"),
    (dict(pods=PODS + (_pod(vpc="retail"),)), "belongs to vpc"),
    (dict(pods=PODS + (PODS[0],)), "duplicate pod"),
])
def test_bad_cluster_rejected(extra, msg):
    args = dict(vpcs=VPCS, subnets=SUBNETS, pods=PODS, nodes=NODES)
    args.update(extra)
    with pytest.raises(InputError, match=msg):
        ClusterIn(**args)


def test_lookups():
    c = ClusterIn(VPCS, SUBNETS, PODS, NODES)
    assert c.vpc("finance").vpc_id == 7 and c.subnet("web").vlan == 100
    assert c.pod("finance", "a").ofport == 3 and c.node("node-2").uplink_ofport == 1
    assert [p.name for p in c.local_pods("node-1", "web")] == ["a", "b"]  # p is not wired
    assert c.vpcs_on_node("node-2") == {"finance", "lab"}
    assert c.nodes_with_vpc("retail") == {"node-1"}
    assert c.find_pod("x", "y") is None
    # an active pod on an unknown node is ignored rather than rejected
    c2 = ClusterIn(VPCS, SUBNETS, PODS + (_pod(node="node-9"),), NODES)
    assert not c2.is_active(c2.pod("finance", "z"))


# --- node router MAC ------------------------------------------------------------------------
def test_node_router_mac_is_the_locally_administered_unicast_form_of_the_dpid():
    assert node_router_mac(1) == NodeIn("n", 1, 1).router_mac == "02:00:00:00:00:01"
    assert node_router_mac(0x20001) == "02:00:00:02:00:01"                 # the lab's leaf 2, node 1
    assert node_router_mac(0x0000_5254_00ab_cdef) == "52:54:00:ab:cd:ef"   # already LA unicast
    assert node_router_mac(0xFFFF_0123_4567_89AB) == "02:23:45:67:89:ab"   # high 16 bits dropped,
    assert node_router_mac(0x0000_FFFF_FFFF_FFFF) == "fe:ff:ff:ff:ff:ff"   # I/G cleared, U/L set
    assert node_router_mac(0) == "02:00:00:00:00:00"


def test_node_router_mac_never_in_vpcnet_block():
    # vpcnet's pod MACs (0e:76:70 + low 24 bits) and router MACs (0e:76:70:ff:HH:LL)
    for dpid in (0x0E7670_000005, 0x0E7670_FF0007, 0x0C7670_123456, 0x0F7670_FFFFFF):
        mac = node_router_mac(dpid)
        assert not mac.startswith("0e:76:70:"), mac
        assert mac[:9] == "2e:76:70:" and int(mac[:2], 16) & 0x03 == 0x02
    with pytest.raises(InputError, match="datapath_id"):
        node_router_mac(-1)


def test_node_router_mac_not_a_field():
    n = NodeIn("n", 7, 2)
    assert n == NodeIn("n", 7, 2) and hash(n) == hash(NodeIn("n", 7, 2))
    assert n != NodeIn("n", 8, 2)
    import pickle
    assert pickle.loads(pickle.dumps(n)).router_mac == n.router_mac


@pytest.mark.parametrize("other_dpid", [
    0x0001_0000_0000_0001,          # differs only in the high 16 bits
    0x0300_0000_0001,               # differs only in the first octet's U/L and I/G bits
])
def test_nodes_with_colliding_node_router_macs_refused_naming_both(other_dpid):
    nodes = NODES + (NodeIn("node-3", other_dpid, 1),)   # node-1 has datapath id 1
    with pytest.raises(InputError, match=r"node node-1: .*02:00:00:00:00:01.* node node-3") as err:
        ClusterIn(VPCS, SUBNETS, PODS, nodes)
    assert "datapath-id" in str(err.value)
    c = ClusterIn(VPCS, SUBNETS, PODS, NODES)
    with pytest.raises(InputError, match=r"node node-1: .* node node-3"):
        c.with_node(NodeIn("node-3", other_dpid, 1))
    with pytest.raises(InputError, match=r"node node-1: .* node node-2"):
        c.with_node(NodeIn("node-2", other_dpid, 1))         # replacing node-2 with node-1's MAC
    # the remapped reserved block collides with the natural 2e:76:70 one
    with pytest.raises(InputError, match="node a: .* node b"):
        ClusterIn(nodes=(NodeIn("b", 0x0E7670_000001, 1), NodeIn("a", 0x2E7670_000001, 1)))


def test_node_router_macs_follow_with_and_without_node():
    c = ClusterIn(VPCS, SUBNETS, PODS, NODES)
    c1 = c.with_node(NodeIn("node-1", 0x77, 1))               # node-1's dpid changed: its old MAC is free
    c2 = c1.with_node(NodeIn("node-3", 1, 1))                 # ... and can be reused
    assert c2 == ClusterIn(VPCS, SUBNETS, PODS, (NodeIn("node-1", 0x77, 1), NODES[1], NodeIn("node-3", 1, 1)))
    with pytest.raises(InputError, match="node node-2: .* node node-3"):
        c2.with_node(NodeIn("node-3", 2, 1))
    c3 = c2.without_node("node-2")
    assert c3.with_node(NodeIn("node-3", 2, 1)).node("node-3").router_mac == "02:00:00:00:00:02"
