"""Match canonicalisation, OVS prerequisites, action rules, cookies and the register map."""
from __future__ import annotations

import itertools

import pytest

from vpcnet.flows import cookies, fields
from vpcnet.flows.fields import FROM_POD, FROM_UPLINK, OUTPUT_TO_TARGET, SUBNET_ID, VPC_ID, BitField, Mark
from vpcnet.flows.model import (
    ARP, ICMP, ICMP6, IP, IPV6, TCP, Bucket, Conjunction, Ct, Flow, FlowError, Goto, Group, Load, Match, Move,
    Nat, Output, SetField, echo_reply, nd_advert_reply, nd_solicit_to_advert, set_vlan_vid,
)


# --- Match ----------------------------------------------------------------------------------
def test_match_is_canonical_hashable_and_ordered():
    a = Match(IP, in_port=3, nw_src="10.0.0.5/32", dl_src="0E-76-70-00-00-05")
    b = Match(("nw_src", "10.0.0.5"), ("dl_src", "0e:76:70:00:00:05"), ("in_port", 3), IP)
    assert a == b and hash(a) == hash(b)
    assert list(a) == ["dl_type", "in_port", "dl_src", "nw_src"]
    assert a["nw_src"] == "10.0.0.5"
    assert {a: 1}[b] == 1


def test_marks_merge_into_one_register_match():
    m = Match(FROM_POD, OUTPUT_TO_TARGET, VPC_ID.eq(7))
    assert m["reg0"] == (0x11, 0x1F)
    assert m["reg1"] == 7  # full-width: no mask
    with pytest.raises(FlowError, match="conflicting"):
        Match(FROM_POD, FROM_UPLINK)


def test_match_rejects_bad_values_and_missing_prerequisites():
    with pytest.raises(FlowError, match="requires ip"):
        Match(nw_src="10.0.0.1")
    with pytest.raises(FlowError, match="requires arp"):
        Match(IP, arp_tpa="10.0.0.1")
    with pytest.raises(FlowError, match="tcp, udp or sctp"):
        Match(IP, tp_dst=80)
    with pytest.raises(FlowError, match="host bits"):
        Match(IP, nw_dst="10.0.0.1/24")
    with pytest.raises(FlowError, match="not IPv4"):
        Match(IP, nw_dst="fd00::1")
    with pytest.raises(FlowError, match="unknown match field"):
        Match(bogus=1)
    with pytest.raises(FlowError, match="not maskable"):
        Match(dl_vlan=(1, 1))
    with pytest.raises(FlowError, match="bits outside mask"):
        Match(reg0=(0x3, 0x1))
    with pytest.raises(FlowError, match="given twice"):
        Match(IP, ARP)
    assert Match(TCP, tp_dst=80)["nw_proto"] == 6


def test_ct_state_canonical_order():
    assert Match(ct_state="+trk+inv")["ct_state"] == "+inv+trk"
    with pytest.raises(FlowError):
        Match(ct_state="+bogus")


# --- actions / flows -------------------------------------------------------------------------
def test_action_validation():
    with pytest.raises(FlowError):
        Output(0)
    with pytest.raises(FlowError):
        SetField("nope", 1)
    with pytest.raises(FlowError, match="width"):
        Move("eth_src", "arp_spa")
    with pytest.raises(FlowError, match="does not fit"):
        Load(fields.PKT_SOURCE, 16)
    with pytest.raises(FlowError, match="exec"):
        Ct(exec_=(Load(fields.CT_MARK_POLICY, 1),))
    with pytest.raises(FlowError, match="exec"):
        Ct(commit=True, exec_=(Load(VPC_ID, 1),))
    with pytest.raises(FlowError):
        Conjunction(1, 3, 2)
    with pytest.raises(FlowError):
        Nat("dst")
    assert set_vlan_vid(100).value == 4196
    assert SetField("eth_src", "0E:76:70:FF:00:07").value == "0e:76:70:ff:00:07"


def test_icmp_and_nd_rewrites_follow_ovs_prerequisites():
    """OVS checks a set_field's prerequisites against the flow's match only (an earlier set_field
    of icmpv6_type does not make nd_tll settable): the model does the same."""
    rmac = "0e:76:70:ff:00:07"
    with pytest.raises(FlowError, match="requires icmp in the match"):
        Flow("l3_fwd", 1, Match(ICMP6, icmp_type=128), (SetField("icmp_type", 0),))
    with pytest.raises(FlowError, match="requires icmp6 in the match"):
        Flow("l3_fwd", 1, Match(ICMP, icmp_type=8), (SetField("icmpv6_type", 129),))
    with pytest.raises(FlowError, match="icmp_type=136"):
        Flow("l3_fwd", 1, Match(ICMP6, icmp_type=135), (SetField("icmpv6_type", 136), SetField("nd_tll", rmac)))
    with pytest.raises(FlowError, match="icmp_type=135/136"):
        Flow("l3_fwd", 1, Match(ICMP6, icmp_type=128), (SetField("nd_reserved", 0xE0000000),))
    with pytest.raises(FlowError, match="icmp_type=135"):
        Match(ICMP6, icmp_type=136, nd_sll=rmac)
    with pytest.raises(FlowError, match="does not fit|not a 8-bit"):
        SetField("nd_options_type", 256)
    # the reply builders are valid with the matches their docs name
    Flow("l3_fwd", 1, Match(ICMP, nw_dst="10.0.0.1", icmp_type=8), echo_reply(rmac, "10.0.0.1"))
    Flow("l3_fwd", 1, Match(ICMP6, ipv6_dst="fd00::1", icmp_type=128), echo_reply(rmac, "fd00::1"))
    Flow("l3_fwd", 1, Match(ICMP6, icmp_type=135, nd_target="fd00::1", nd_sll=rmac), nd_solicit_to_advert())
    Flow("l3_fwd", 1, Match(ICMP6, icmp_type=136, nd_target="fd00::1"), nd_advert_reply(rmac, "fd00::1"))
    assert [a.field for a in echo_reply(rmac, "fd00::1") if isinstance(a, SetField)] == \
        ["eth_src", "ipv6_src", "icmpv6_type"]
    assert [(a.field, a.value) for a in echo_reply(rmac, "10.0.0.1") if isinstance(a, SetField)][-1] == ("icmp_type", 0)


def test_flow_rules():
    with pytest.raises(FlowError, match="last action"):
        Flow("l2_fwd", 1, Match(), (Goto("output"), Output(1)))
    with pytest.raises(FlowError, match="priority-0"):
        Flow("l2_fwd", 0, Match(in_port=1), ())
    with pytest.raises(FlowError, match="conjunction"):
        Flow("l2_fwd", 1, Match(in_port=1), (Conjunction(1, 1, 2), Output(2)))
    with pytest.raises(FlowError, match="requires ip or ipv6"):
        Flow("l2_fwd", 1, Match(), (Ct(nat=Nat()),))
    f = Flow("l2_fwd", 1, Match(IPV6), (Ct(commit=True, zone=3, nat=Nat("dst", "fd00::1", 80)),))
    assert f == Flow("l2_fwd", 1, Match(IPV6), [Ct(commit=True, zone=3, nat=Nat("dst", "fd00::1", 80))])
    assert len({f, Flow("l2_fwd", 1, Match(IPV6), (Ct(commit=True, zone=3, nat=Nat("dst", "fd00::1", 80)),))}) == 1


def test_group_rules():
    with pytest.raises(FlowError):
        Group(1, "fast", ())
    with pytest.raises(FlowError):
        Group(1, "indirect", (Bucket((Output(1),)), Bucket((Output(2),))))
    with pytest.raises(FlowError):
        Group(1, "all", (Bucket((Output(1),), weight=3),))


# --- cookies ---------------------------------------------------------------------------------
def test_cookie_layout_and_masks():
    c = cookies.cookie(3, cookies.Feature.POD, "pod/ns/a")
    assert cookies.round_of(c) == 3
    assert cookies.feature_of(c) == cookies.Feature.POD
    assert cookies.owner_hash_of(c) == cookies.owner_hash("pod/ns/a")
    assert cookies.mask_round() == 0xFFFF << 48
    assert cookies.mask_feature() == 0xFF << 40
    assert cookies.mask_owner() == 0xFFFFFFFF
    assert cookies.mask_round() | cookies.mask_feature() | cookies.mask_owner() | (0xFF << 32) == (1 << 64) - 1
    assert cookies.with_round(c, 9) == cookies.cookie(9, cookies.Feature.POD, "pod/ns/a")
    assert cookies.with_round(cookies.with_round(c, 0xFFFF), 0) == cookies.cookie(0, cookies.Feature.POD, "pod/ns/a")


def test_owner_hash_is_stable_across_processes():
    # pinned values: blake2b, not Python's salted hash()
    assert cookies.owner_hash("base") == 0xAD25DD37
    assert cookies.owner_hash("pod/finance/a") == cookies.owner_hash("pod/finance/a")
    assert cookies.owner_hash("pod/finance/a") != cookies.owner_hash("pod/finance/b")


def test_owner_kinds():
    assert cookies.feature_of_owner("subnet/web") == cookies.Feature.SUBNET
    assert cookies.feature_of_owner("base") == cookies.Feature.BASE
    for bad in ("pod", "base/x", "what/x", "vpc/", ""):
        with pytest.raises(ValueError):
            cookies.owner_kind(bad)


# --- register map ----------------------------------------------------------------------------
def test_fields_do_not_overlap_and_marks_fit():
    for a, b in itertools.combinations(fields.ALL_FIELDS, 2):
        assert a.space != b.space or a.mask & b.mask == 0, (a.name, b.name)
    for m in fields.ALL_MARKS:
        assert m.field in fields.ALL_FIELDS
    names = [f.name for f in fields.ALL_FIELDS] + [m.name for m in fields.ALL_MARKS]
    assert len(names) == len(set(names))
    with pytest.raises(ValueError):
        BitField("x", "reg0", 30, 32)
    with pytest.raises(ValueError):
        Mark("x", fields.PKT_SOURCE, 16)
    assert fields.PKT_SOURCE.nxm() == "NXM_NX_REG0[0..3]"
    assert fields.TARGET_OFPORT.nxm() == "NXM_NX_REG3[]"
    assert SUBNET_ID.eq(5).shifted == (5, 0xFFFFFFFF)
    assert fields.vpc_ct_zone(7) == 7
    with pytest.raises(ValueError):
        fields.vpc_ct_zone(70000)


def test_module_docs_list_every_field():
    for f in fields.ALL_FIELDS:
        assert f.name in fields.__doc__, f"{f.name} missing from the bit-layout comment"
