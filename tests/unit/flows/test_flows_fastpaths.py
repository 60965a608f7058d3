"""The compiler's fast paths and memos give exactly what the plain code paths give."""
from __future__ import annotations

import pickle

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpcnet.flows.fields import FROM_POD, SUBNET_ID, VPC_ID
from vpcnet.flows.model import (
    ARP, ICMP6, IP, IPV6, Flow, FlowError, Goto, Match, _canon_ip_slow, _canon_mac_slow, arp_reply, canon_ip,
    canon_mac, ip_proto,
)

macs = st.integers(0, (1 << 48) - 1).map(lambda i: str(netaddr.EUI(i, dialect=netaddr.mac_unix_expanded)))
v4 = st.integers(0, (1 << 32) - 1).map(lambda i: str(netaddr.IPAddress(i, 4)))
v6 = st.integers(0, (1 << 128) - 1).map(lambda i: str(netaddr.IPAddress(i, 6)))


@settings(max_examples=200, deadline=None)
@given(st.one_of(macs, macs.map(str.upper), macs.map(lambda m: m.replace(":", "-")), st.text(max_size=20)))
def test_canon_mac_matches_netaddr(value):
    assert outcome(canon_mac, value, "dl_src") == outcome(_canon_mac_slow, value, "dl_src")


def outcome(fn, *args):
    """The result, or the exception type and message (netaddr's own quirks included)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        return type(exc), str(exc)


@settings(max_examples=200, deadline=None)
@given(st.one_of(v4, v6, v4.map(lambda a: a + "/24"), v4.map(lambda a: a + "/32"), v6.map(lambda a: a + "/64"),
                 st.sampled_from(["10.0.0.0/8", "010.1.2.3", "1.2.3", "::ffff:1.2.3.4", "fd00::0001", "x"])),
       st.sampled_from([4, 6]), st.booleans())
def test_canon_ip_matches_netaddr(value, version, prefix_ok):
    expected = outcome(_canon_ip_slow, value, version, "nw_dst", prefix_ok)
    assert outcome(canon_ip, value, version, "nw_dst", prefix_ok) == expected
    if type(expected) is str:
        proto = IP if netaddr.IPNetwork(value).version == 4 else IPV6
        assert ip_proto(value) is proto


@settings(max_examples=100, deadline=None)
@given(v4, macs, st.integers(1, 0xFFFFFEFF), v6, st.integers(1, 0xFFFFFFFF))
def test_with_values_equals_a_fresh_match(ip, mac, port, ip6, subnet_id):
    proto = Match(IP, nw_src="0.0.0.0", in_port=1, dl_src="02:00:00:00:00:00")
    got = proto.with_values(nw_src=ip, in_port=port, dl_src=mac.upper())
    want = Match(IP, nw_src=ip, in_port=port, dl_src=mac)
    assert got == want and hash(got) == hash(want) and list(got.items()) == list(want.items())
    nd = Match(ICMP6, icmp_type=136, nd_target="::", in_port=1, dl_src="02:00:00:00:00:00")
    assert nd.with_values(nd_target=ip6, in_port=port) == Match(ICMP6, icmp_type=136, nd_target=ip6, in_port=port,
                                                                dl_src="02:00:00:00:00:00")
    arp = Match(ARP, FROM_POD, SUBNET_ID.eq(1), arp_op=1, arp_tpa="0.0.0.0")
    assert arp.with_values(reg2=subnet_id, arp_tpa=ip) == Match(ARP, FROM_POD, SUBNET_ID.eq(subnet_id), arp_op=1,
                                                                arp_tpa=ip)


def test_with_values_validates_like_the_constructor():
    proto = Match(IP, nw_src="0.0.0.0", in_port=1)
    with pytest.raises(FlowError, match="nw_src"):
        proto.with_values(nw_src="fd00::1")
    with pytest.raises(FlowError, match="in_port"):
        proto.with_values(in_port=0)
    with pytest.raises(FlowError, match="requires ip"):   # a prerequisite field changes: full path
        proto.with_values(dl_type=0x0806)
    assert proto.with_values(nw_proto=6) == Match(IP, nw_src="0.0.0.0", in_port=1, nw_proto=6)   # new field


def test_flows_and_matches_pickle_and_keep_their_hash_semantics():
    m = Match(IP, FROM_POD, VPC_ID.eq(7), nw_dst="10.0.0.5")
    f = Flow("l3_neigh", 200, m, (Goto("l2_fwd"),), 5)
    g = Flow("arp_responder", 200, Match(ARP, arp_op=1, arp_tpa="10.0.0.5"), arp_reply("0e:76:70:00:00:05", "10.0.0.5"))
    for x in (m, f, g):
        y = pickle.loads(pickle.dumps(x))
        assert y == x and hash(y) == hash(x) and {x: 1}[y] == 1
    assert VPC_ID.eq(7) is VPC_ID.eq(7) and VPC_ID.eq(7) == VPC_ID.eq(7)
    VPC_ID.eq(1)
    for bad in (True, -1, 1 << 32):      # the memo never serves a value check_value rejects
        with pytest.raises(ValueError):
            VPC_ID.eq(bad)


def test_tiny_caches_evict_without_changing_results(monkeypatch):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from flow_scenarios import scale
    from vpcnet.flows import pod, subnet
    from vpcnet.flows.compile import clear_caches, compile_node
    c = scale(40, 4)
    expected = {n.name: compile_node(c, n.name) for n in c.nodes}
    clear_caches()
    monkeypatch.setattr(pod, "SHARED_CACHE_MAX", 4)
    monkeypatch.setattr(subnet, "STATIC_CACHE_MAX", 2)
    fresh = type(c)(c.vpcs, c.subnets, c.pods, c.nodes)
    assert {n.name: compile_node(fresh, n.name) for n in fresh.nodes} == expected
    assert len(pod._shared_cache) <= 4 and len(subnet._static_cache) <= 2
