"""Lab naming/addressing (sim/topo.py) and FRR rendering (sim/frr.py): pure functions."""
from __future__ import annotations

import pytest

from vpcnet.sim import frr, topo


def test_names_and_addresses():
    t = topo.Topology("vl", leaves=2, nodes_per_leaf=2)
    lf = t.leaf("leaf2")
    assert (lf.netns, lf.asn, lf.vtep, lf.mgmt_ip, lf.mgmt_peer, lf.underlay_ip, lf.spine_ip) == \
        ("vl-leaf2", 65002, "198.19.255.2", "198.18.2.1", "198.18.2.0", "198.19.2.1", "198.19.2.0")
    assert lf.ports == ["swp1", "swp2"]
    assert [n.name for n in t.node_plans] == ["vl-n1-1", "vl-n1-2", "vl-n2-1", "vl-n2-2"]
    n = t.node("n2-1")
    assert (n.leaf_port, n.leaf_netns, n.datapath_id) == ("swp1", "vl-leaf2", "0000000000020001")
    assert len({x.datapath_id for x in t.node_plans}) == 4
    assert t.all_netns()[:2] == ["vl-mgmt", "vl-spine"]
    assert t.leaf(1) is t.leaf("vl-leaf1")
    assert "198.18.0.0/16" in t.guarded_prefixes and "10.10.0.0/24" in t.guarded_prefixes


def test_interface_names_fit_the_kernel_limit():
    t = topo.Topology("abcdefghijkl", leaves=topo.MAX_LEAVES, nodes_per_leaf=topo.MAX_NODES_PER_LEAF)
    names = {topo.LEAF_MGMT_IF, topo.LEAF_SPINE_IF, topo.NODE_UPLINK, topo.FABRIC_BRIDGE}
    for lf in t.leaf_plans:
        names |= {lf.mgmt_peer_if, lf.spine_if, *lf.ports}
    assert max(len(n) for n in names) <= 15
    assert max(len(f"v{v}b") for v in (1, 4094)) <= 15 and len("vx16777215") <= 15


def test_owns_netns():
    t = topo.Topology("vl")
    for ns in ("vl-mgmt", "vl-spine", "vl-leaf12", "vl-n3-4", "vl-h-ha", "vl-pod-trading-web-0"):
        assert t.owns_netns(ns)
    for ns in ("vl2-mgmt", "vl-leaf", "vlx-n1-1", "other", "vl-mgmtx"):
        assert not t.owns_netns(ns)


@pytest.mark.parametrize("kwargs", [{"lab": "Bad"}, {"lab": "x" * 13}, {"lab": "vl", "leaves": 0},
                                    {"lab": "vl", "leaves": 251}, {"lab": "vl", "pod_prefixes": ("nope",)}])
def test_invalid(kwargs):
    with pytest.raises(topo.TopologyError):
        topo.Topology(**kwargs)


def test_frr_configs():
    t = topo.Topology("vl", leaves=2, nodes_per_leaf=1)
    leaf = frr.leaf_config(t, t.leaf(1))
    assert "router bgp 65001" in leaf and "neighbor 198.19.1.0 remote-as 65000" in leaf
    assert "  network 198.19.255.1/32" in leaf and "  advertise-all-vni" in leaf
    assert "log file /var/run/frr/vl-leaf1/frr.log" in leaf
    spine = frr.spine_config(t)
    assert "neighbor 198.19.2.1 remote-as 65002" in spine
    assert spine.count("attribute-unchanged next-hop") == 2
    assert "advertise-all-vni" not in spine
    assert "-P 0" in frr.DAEMONS
