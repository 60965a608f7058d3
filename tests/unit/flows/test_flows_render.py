"""Rendering: canonical dump text with table names, and text ovs-ofctl really accepts."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from flow_invariants import all_flows
from vpcnet.flows.fields import CT_MARK_POLICY, SUBNET_ID
from vpcnet.flows.model import (
    ICMP6, IP, TCP, Bucket, Conjunction, Controller, Ct, FlowError, Group, GroupAction, Load, Match, Meter, Nat,
    Output, PopVlan, PushVlan, nd_solicit_to_advert, set_vlan_vid,
)
from vpcnet.flows.pipeline import PIPELINE
from vpcnet.flows.render import render, render_flow, render_for_ofctl, render_group, render_meter


def test_render_flow_matches_dump_flows_style():
    f = PIPELINE.flow("l2_fwd", 100, Match(SUBNET_ID.eq(5), dl_dst="0e:76:70:00:00:05"),
                      (PopVlan(), Output(3)), owner="pod/ns/a")
    assert render_flow(f) == (f"cookie={f.cookie:#x}, table=l2_fwd, priority=100,reg2=0x5,"
                              "dl_dst=0e:76:70:00:00:05 actions=pop_vlan,output:3")


def test_render_is_sorted_by_table_priority_match():
    flows = [PIPELINE.flow(t, p, m, (), owner="base") for t, p, m in [
        ("output", 5, Match(SUBNET_ID.eq(1))), ("classifier", 1, Match(in_port=9)),
        ("classifier", 7, Match(in_port=2)), ("classifier", 1, Match(in_port=10))]]
    tables = [(line.split(", ")[1], line.split(", ")[2].split(" ")[0]) for line in render(flows).splitlines()]
    assert tables == [("table=classifier", "priority=7,in_port=2"), ("table=classifier", "priority=1,in_port=10"),
                      ("table=classifier", "priority=1,in_port=9"), ("table=output", "priority=5,reg2=0x1")]


def test_render_for_ofctl_uses_numbers():
    f = PIPELINE.flow("ct_zone", 200, Match(IP, reg1=7), (Ct(zone=7, table="ct_state"),), owner="vpc/v")
    assert render_for_ofctl([f]) == f"cookie={f.cookie:#x},table=20,priority=200,ip,reg1=0x7,actions=ct(table=21,zone=7)\n"


def test_render_all_actions():
    f = PIPELINE.flow("ingress_policy", 10, Match(TCP, tp_dst=80), (
        Ct(commit=True, zone=3, nat=Nat("dst", "10.0.0.1", 8080), exec_=(Load(CT_MARK_POLICY, 1),)),
        PushVlan(), set_vlan_vid(100), GroupAction(4), Controller(128, meter_id=2)), owner="base")
    assert render_flow(f).endswith(
        "actions=ct(commit,zone=3,nat(dst=10.0.0.1:8080),exec(load:0x1->NXM_NX_CT_MARK[0..3])),"
        "push_vlan:0x8100,set_field:4196->vlan_vid,group:4,controller(max_len=128,meter_id=2)")
    conj = PIPELINE.flow("ingress_policy", 10, Match(TCP, tp_dst=80), (Conjunction(9, 1, 2),), owner="base")
    assert render_flow(conj).endswith("actions=conjunction(9,1/2)")
    log = PIPELINE.flow("ingress_policy", 10, Match(TCP, tp_dst=80),
                        (Controller(userdata=b"\x0a\x00\xff", meter_id=7), Controller(64, userdata=b"x")), owner="base")
    assert render_flow(log).endswith("actions=controller(max_len=65535,userdata=0a.00.ff,meter_id=7),"
                                     "controller(max_len=64,userdata=78)")
    assert render_group(Group(4, "select", (Bucket((Output(1),), 2), Bucket((Output(2),), 1)))) == \
        "group_id=4,type=select,bucket=weight:2,actions=output:1,bucket=weight:1,actions=output:2"
    assert render_meter(Meter(2, 100, "pktps", 10)) == "meter=2,pktps,burst,band=type=drop,rate=100,burst_size=10"


OFCTL = shutil.which("ovs-ofctl") or "ovs-ofctl"  # install.sh installs Open vSwitch: never skip


def test_ovs_ofctl_parses_every_compiled_flow(tmp_path, compiled):
    """The exact text a benchmark feeds to ``ovs-ofctl -O OpenFlow13 --bundle add-flows``."""
    flows = all_flows(compiled["node-1"]) | all_flows(compiled["node-2"])
    path = tmp_path / "flows.txt"
    path.write_text(render_for_ofctl(flows))
    proc = subprocess.run([OFCTL, "-O", "OpenFlow13", "parse-flows", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    mods = [line for line in proc.stdout.splitlines() if line.startswith("OFPT_FLOW_MOD")]
    assert len(mods) == len(flows)


def test_ovs_ofctl_parses_groups_and_rare_actions(tmp_path):
    f = PIPELINE.flow("ingress_policy", 10, Match(TCP, tp_dst=80), (
        Ct(commit=True, zone=3, nat=Nat("dst", "10.0.0.1", 8080), exec_=(Load(CT_MARK_POLICY, 1),)),
        PushVlan(), set_vlan_vid(100), GroupAction(4), Controller(128, meter_id=2)), owner="base")
    conj = PIPELINE.flow("ingress_policy", 10, Match(TCP, tp_src=80), (Conjunction(9, 1, 2),), owner="base")
    log = PIPELINE.flow("ingress_policy", 11, Match(TCP, tp_src=80),
                        (Controller(userdata=b"\x0a\x00\xff", meter_id=7),), owner="base")
    (tmp_path / "f.txt").write_text(render_for_ofctl([f, conj, log]))
    proc = subprocess.run([OFCTL, "-O", "OpenFlow13", "parse-flows", str(tmp_path / "f.txt")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "actions=controller(userdata=0a.00.ff,meter_id=7)" in proc.stdout   # as OVS prints it back
    g = render_group(Group(4, "select", (Bucket((Output(1),), 2), Bucket((Output(2),), 1))))
    proc = subprocess.run([OFCTL, "-O", "OpenFlow13", "parse-group", g], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_controller_values_are_checked():
    assert Controller(userdata=bytearray(b"ab")).userdata == b"ab"
    assert Controller(userdata=bytes(256)) == Controller(userdata=bytearray(256))
    for bad in (dict(userdata="ab"), dict(userdata=[1, 2]), dict(userdata=bytes(257)), dict(meter_id=0),
                dict(meter_id=0xFFFF0001), dict(meter_id=True), dict(max_len=65536), dict(max_len=-1)):
        with pytest.raises(FlowError):
            Controller(**bad)


def test_icmp_and_nd_set_fields_render_like_ovs_dumps():
    f = PIPELINE.flow("l3_fwd", 300, Match(ICMP6, icmp_type=135, nd_target="fd00::1", nd_sll="00:00:00:00:00:00"),
                      nd_solicit_to_advert(), owner="subnet/s")
    assert render_flow(f).endswith(
        "priority=300,icmp6,icmp_type=135,nd_target=fd00::1,nd_sll=00:00:00:00:00:00 "
        "actions=set_field:136->icmpv6_type,set_field:3758096384->nd_reserved,set_field:2->nd_options_type")


def test_ovs_checks_nd_tll_against_the_match_only(tmp_path):
    """Why the gateway's neighbour advertisement takes two flows (model.nd_solicit_to_advert): OVS
    itself refuses nd_tll in a flow matching a solicitation, even after set_field:136->icmpv6_type."""
    one = ("table=40,priority=1,icmp6,icmp_type=135,nd_target=fd00::1,actions=set_field:136->icmpv6_type,"
           "set_field:0e:76:70:ff:00:07->nd_tll,IN_PORT")
    proc = subprocess.run([OFCTL, "-O", "OpenFlow13", "parse-flow", one], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "nd_tll lacks correct prerequisites" in proc.stderr, proc.stderr
