"""The walker itself: conntrack, NAT, groups, conjunctions, ambiguity, in_port semantics."""
from __future__ import annotations

import pytest

from vpcnet.flows.fields import CT_MARK_POLICY
from vpcnet.flows.model import (
    IP, TCP, Bucket, Conjunction, Ct, Flow, Goto, Group, GroupAction, Load, Match, Nat, Output,
)
from walker import Ambiguous, Walker, ip_packet, reply_of

M1, M2 = "0e:76:70:00:00:01", "0e:76:70:00:00:02"


def test_ambiguous_flows_at_equal_priority_raise():
    w = Walker([Flow("t", 5, Match(in_port=1), (Output(2),)), Flow("t", 5, Match(dl_src=M1), (Output(3),))])
    with pytest.raises(Ambiguous):
        w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2"), table="t")


def test_output_never_hairpins_except_in_port():
    w = Walker([Flow("t", 5, Match(), (Output(1), Output(2), Output("IN_PORT")),)])
    res = w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2"), table="t")
    assert [d.port for d in res.outputs] == [2, 1]


def test_groups_all_select_indirect():
    groups = [Group(1, "all", (Bucket((Output(2),)), Bucket((Output(3),)))),
              Group(2, "select", (Bucket((Output(4),), 1), Bucket((Output(5),), 1))),
              Group(3, "indirect", (Bucket((Output(6),)),))]
    flows = [Flow("t", 5, Match(in_port=1), (GroupAction(1), GroupAction(2), GroupAction(3)))]
    w = Walker(flows, groups)
    ports = w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2"), table="t").ports
    assert ports[:2] == [2, 3] and ports[-1] == 6 and len(ports) == 4 and ports[2] in (4, 5)
    # select is deterministic per flow
    assert w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2"), table="t").ports == ports


def test_conjunction():
    flows = [
        Flow("t", 10, Match(IP, nw_src="10.0.0.1"), (Conjunction(7, 1, 2),)),
        Flow("t", 10, Match(TCP, tp_dst=80), (Conjunction(7, 2, 2),)),
        Flow("t", 10, Match(conj_id=7), (Output(9),)),
        Flow("t", 0, Match(), ()),
    ]
    w = Walker(flows)
    assert w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2", proto="tcp", tp_dst=80), table="t").ports == [9]
    assert w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2", proto="tcp", tp_dst=81), table="t").dropped
    assert w.trace(ip_packet(1, M1, M2, "10.0.0.3", "10.0.0.2", proto="tcp", tp_dst=80), table="t").dropped


def test_conntrack_commit_mark_and_dnat():
    flows = [
        Flow("a", 10, Match(IP), (Ct(zone=5, table="b", nat=Nat()),)),
        Flow("b", 10, Match(TCP, ct_state="+new+trk", in_port=1),
             (Ct(commit=True, zone=5, nat=Nat("dst", "10.0.0.9", 8080), exec_=(Load(CT_MARK_POLICY, 1),)),
              Output(2))),
        Flow("b", 10, Match(ct_state="+est+trk", ct_mark=(1, 0xF)), (Goto("c"),)),
        Flow("b", 5, Match(ct_state="+inv+trk"), ()),
        Flow("c", 10, Match(in_port=1), (Output(2),)),
        Flow("c", 10, Match(in_port=2), (Output(1),)),
    ]
    w = Walker(flows)
    syn = ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.100", proto="tcp", tp_src=5555, tp_dst=80)
    out = w.trace(syn, table="a").to(2)
    assert (out["nw_dst"], out["tp_dst"]) == ("10.0.0.9", 8080)
    assert out["ct_state"] == {"trk", "new"}
    # second packet of the connection: established, NATed the same way
    out = w.trace(syn, table="a").to(2)
    assert out["ct_state"] >= {"trk", "est"} and out["nw_dst"] == "10.0.0.9"
    # the server's reply is un-NATed back to the VIP
    server_reply = reply_of(dict(syn, nw_dst="10.0.0.9", tp_dst=8080), 2)
    back = w.trace(server_reply, table="a").to(1)
    assert (back["nw_src"], back["tp_src"], back["nw_dst"]) == ("10.0.0.100", 80, "10.0.0.1")
    assert "rpl" in back["ct_state"]
    assert w.trace(dict(syn, ct_invalid=True), table="a").dropped


def test_dec_ttl_and_vlans():
    from vpcnet.flows.model import DecTtl, PopVlan, PushVlan, set_vlan_vid
    w = Walker([Flow("t", 5, Match(IP), (DecTtl(), PushVlan(), set_vlan_vid(30), Output(2))),
                Flow("t", 6, Match(IP, in_port=7), (PopVlan(), Output(2)))])
    out = w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2", ttl=2), table="t").to(2)
    assert out["nw_ttl"] == 1 and out["vlans"] == [30]
    assert w.trace(ip_packet(1, M1, M2, "10.0.0.1", "10.0.0.2", ttl=1), table="t").dropped
    assert w.trace(ip_packet(7, M1, M2, "10.0.0.1", "10.0.0.2", vlan=30), table="t").to(2)["vlans"] == []
