"""Flow sets for the ofwire tests (unit: ovs-ofctl decoding; functional: a real OVS).

* ``scenario_flows(node)``: what the compiler produces for a node of the flow scenarios;
* ``extra_flows()``: hand-made flows for every model action/match kind the scenarios do not
  use yet (conjunction, ct nat/exec/zone field, resubmit, controller with and without
  userdata/meter (NXAST_CONTROLLER2), group, metadata,
  ct_label, IPv6/TCP set_field, output from a register slice...). They only need to be valid
  OpenFlow for OVS, not a sensible pipeline, but each keeps its own (table, priority, match).
* ``ovs_groups()``/``ovs_meters()``: the group the extra flows point at, and two meters.

Also usable outside pytest: ``tests/functional/ofwire_probe_app.py`` imports this file by path.
"""
from __future__ import annotations

import sys
from pathlib import Path

_FLOW_TESTS = Path(__file__).resolve().parent.parent / "flows"
if str(_FLOW_TESTS) not in sys.path:  # flow_scenarios / flow_invariants are top-level helpers
    sys.path.insert(0, str(_FLOW_TESTS))

from flow_invariants import all_flows  # noqa: E402
from flow_scenarios import scale, two_vpcs  # noqa: E402

from vpcnet.flows.compile import compile_node  # noqa: E402
from vpcnet.flows.fields import CT_LABEL_RULE, CT_MARK_POLICY, BitField  # noqa: E402
from vpcnet.flows.learn import Learn  # noqa: E402
from vpcnet.flows.model import (  # noqa: E402
    ARP, ICMP, ICMP6, IP, IPV6, SCTP, TCP, TCP6, UDP, UDP6, Bucket, Conjunction, Controller, Ct, DecTtl,
    Flow, Goto, Group, GroupAction, Load, Match, Meter, Move, Multipath, Nat, Output, PopVlan, PushVlan,
    Resubmit, SetField, set_vlan_vid,
)
from vpcnet.flows.render import sorted_flows  # noqa: E402


def scenarios():
    """(name, ClusterIn) of every scenario the flow tests use."""
    return (("two_vpcs", two_vpcs()), ("scale", scale(40, 4)))


def scenario_flows(cluster=None, node: str = "node-1") -> list[Flow]:
    cluster = cluster if cluster is not None else two_vpcs()
    return sorted_flows(all_flows(compile_node(cluster, node)))


def every_scenario_flow() -> list[Flow]:
    """Every flow of every node of every scenario (identical flows once)."""
    out: set[Flow] = set()
    for _, cluster in scenarios():
        for node in cluster.nodes:
            out |= all_flows(compile_node(cluster, node.name))
    return sorted_flows(out)


ZONE_FIELD = BitField("TEST_ZONE", "reg5", 0, 15)


def extra_flows() -> list[Flow]:
    f = []
    add = lambda *a: f.append(Flow(*a))  # noqa: E731
    # conntrack: nat with address+port, exec loads (partial, whole field, >64 bits), zone field
    add("ct_commit", 300, Match(IP, ct_state="+new+trk"),
        (Ct(commit=True, zone=7, nat=Nat("src", "192.0.2.1", 1000),
            exec_=(Load(CT_MARK_POLICY, 1), Load(CT_LABEL_RULE, 42))), Goto("output")), 0x11)
    add("ct_zone", 300, Match(IP, reg1=5), (Ct(zone=ZONE_FIELD, table="ct_state", nat=Nat()),), 0x12)
    add("ct_commit", 301, Match(IPV6, ct_state="+new+trk"),
        (Ct(commit=True, zone=9, nat=Nat("dst", "fd00::1", 80),
            exec_=(Load(BitField("M", "ct_mark", 0, 31), 5), Load(BitField("L", "ct_label", 0, 127), 1 << 100))),),
        0x13)
    add("ct_commit", 302, Match(IP, ct_state="+new+trk", reg1=9),
        (Ct(commit=True, zone=9, exec_=(Load(BitField("H", "ct_label", 64, 95), 7),
                                        Load(BitField("W", "ct_label", 8, 107), (1 << 99) | 3))),), 0x14)
    # conjunctive match
    add("egress_policy", 100, Match(IP, nw_src="10.0.0.0/8"), (Conjunction(10, 1, 2), Conjunction(11, 1, 3)), 0x20)
    add("egress_policy", 100, Match(TCP, tp_dst=(0x50, 0xFFF0)), (Conjunction(10, 2, 2),), 0x21)
    add("egress_policy", 100, Match(conj_id=10), (Load(BitField("R4", "reg4", 0, 31), 10), Goto("l3_fwd")), 0x22)
    # ct matches, controller, group, metadata, ICMP, ND, resubmit, dec_ttl on IPv6
    add("egress_policy", 90, Match(UDP, tp_src=53, ct_zone=7, ct_mark=(1, 0xF), ct_label=(1 << 70, 1 << 70)),
        (Controller(max_len=128),), 0x23)
    add("egress_policy", 90, Match(ICMP, icmp_type=8, icmp_code=0, metadata=(0x10, 0xF0)), (GroupAction(5),), 0x24)
    add("egress_policy", 90, Match(ICMP6, icmp_type=135, nd_target="fd00::5", ipv6_src="fd00::/16"),
        (Resubmit("l2_fwd"), DecTtl()), 0x25)
    add("egress_policy", 90, Match(TCP6, tp_src=443, dl_src=("0e:00:00:00:00:00", "ff:ff:00:00:00:00")),
        (SetField("ipv6_src", "fd00::9"), SetField("tcp_dst", 8080), SetField("tcp_src", 1),
         SetField("ipv6_dst", "fd00::10"), Output(2)), 0x26)
    add("egress_policy", 90, Match(IP, in_port="LOCAL", reg4=(1, 1)),
        (SetField("ip_src", "10.1.1.1"), SetField("ip_dst", "10.1.1.2"),
         Move("ip_src", BitField("R6", "reg6", 0, 31)),
         Move(BitField("a", "reg4", 0, 15), BitField("b", "reg5", 16, 31)),
         Output(BitField("c", "reg4", 0, 15)), Output("LOCAL")), 0x27)
    add("egress_policy", 90, Match(ARP, arp_tha="00:11:22:33:44:55", arp_tpa="10.0.0.0/24", arp_spa="10.0.0.1"),
        (SetField("arp_tha", "00:11:22:33:44:66"), SetField("arp_tpa", "1.2.3.4"),
         Move("arp_spa", BitField("R7", "reg7", 0, 31)), SetField("eth_dst", "00:00:00:00:00:01"),
         Load(BitField("MD", "metadata", 0, 7), 3), Load(BitField("MDF", "metadata", 0, 63), 1 << 40),
         PushVlan(0x88A8), set_vlan_vid(10), Output("IN_PORT")), 0x28)
    # controller with userdata and/or a meter (NXAST_CONTROLLER2; meters 1 and 2 of ovs_meters())
    add("egress_policy", 85, Match(TCP, tp_dst=22), (Controller(userdata=b"\x01\x02\x03"),), 0x2D)
    add("egress_policy", 85, Match(TCP, tp_dst=23), (Controller(max_len=128, meter_id=1),), 0x2E)
    add("egress_policy", 85, Match(UDP, tp_dst=69),
        (Controller(userdata=b"deny:rule-0042", meter_id=2), Goto("l3_fwd")), 0x2F)
    add("egress_policy", 85, Match(UDP, tp_dst=70),
        (Controller(max_len=0, userdata=bytes(range(256)), meter_id=1),), 0x30)
    add("egress_policy", 80, Match(SCTP, tp_dst=9, nw_dst="10.0.0.1"),
        (Load(BitField("R15", "reg15", 3, 9), 5), Move("eth_src", BitField("x", "metadata", 8, 55))), 0x2C)
    # learn (sessionAffinity): fixed, copied header fields and registers, register loads
    add("svc_aff_learn", 90, Match(TCP, reg1=3, reg8=7, nw_dst="10.96.0.10", tp_dst=80),
        (Learn("svc_affinity", 200, idle_timeout=600, cookie=0x0700000012345678,
               fixed=(("dl_type", 0x800), ("nw_proto", 6)),
               copied=(BitField("V", "reg1", 0, 31), "ip_src", "ip_dst", "tcp_dst"),
               loads=(BitField("E", "reg8", 0, 31),), load_values=((BitField("H", "reg0", 6, 6), 1),)),
         Goto("egress_policy")), 0x31)
    add("svc_aff_learn", 90, Match(UDP6, reg1=3, ipv6_dst="fd00:96::a", tp_dst=53),
        (Learn("svc_affinity", 200, cookie=0x32, fixed=(("dl_type", 0x86DD), ("nw_proto", 17)),
               copied=("ipv6_src", "ipv6_dst", "udp_dst"), load_values=((BitField("E", "reg8", 0, 31), 9),)),),
        0x32)
    # multipath (UDP slots of a Service)
    add("svc_lb", 90, Match(UDP, reg1=3, nw_dst="10.96.0.53", tp_dst=53),
        (Multipath(BitField("S", "reg10", 0, 15), 64), Goto("svc_slot")), 0x33)
    # VLAN matches: exact TCI (VID + PCP), VLAN-present bit only
    add("classifier", 90, Match(in_port=9, vlan_tci=0x1064), (PopVlan(), Goto("port_sec")), 0x29)
    add("classifier", 91, Match(in_port=9, vlan_tci=(0x1000, 0x1000)), (), 0x2A)
    add("classifier", 92, Match(in_port=10, vlan_tci=(0x3064, 0xFFFF)), (), 0x2B)
    return sorted_flows(f)


def ovs_groups() -> list[Group]:
    return [Group(5, "select", (Bucket((Output(3),), weight=2), Bucket((Output(4),)))),
            Group(6, "all", (Bucket((Output(3),)), Bucket((set_vlan_vid(7), Output(4))))),
            Group(7, "indirect", (Bucket((Output(5),)),))]


def ovs_meters() -> list[Meter]:
    return [Meter(1, 1000, "kbps", 100), Meter(2, 50)]


def switch_flows() -> list[Flow]:
    """One node's compiled flows plus the extras: a set one bridge can hold (unique keys)."""
    flows = scenario_flows() + extra_flows()
    keys = [(f.table, f.priority, f.match) for f in flows]
    assert len(set(keys)) == len(keys), "extra_flows() reuses a compiled flow's key"
    return sorted_flows(flows)


def switch_owner_flows() -> dict[str, frozenset[Flow]]:
    """``switch_flows()`` by owner, as the reconciler takes them (the extras under one pod owner)."""
    out = dict(compile_node(two_vpcs(), "node-1"))
    out["pod/test/extras"] = frozenset(extra_flows())
    assert sorted_flows(f for flows in out.values() for f in flows) == switch_flows()
    return out


__all__ = ["scenarios", "scenario_flows", "every_scenario_flow", "extra_flows", "ovs_groups", "ovs_meters",
           "switch_flows", "switch_owner_flows"]
