"""app/ofwire.py against the real ovs-ofctl: the os-ken bytes we send decode to the same flow as
the ``render_for_ofctl`` text, and signatures are stable through a serialize/parse round trip.

ovs-ofctl is run in batches (one file of messages, one file of flows), so this takes seconds.
"""
from __future__ import annotations

import re
import subprocess

import pytest
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from vpcnet.app import ofcompare, ofwire
from vpcnet.flows import learn, model
from vpcnet.flows.fields import BitField
from vpcnet.flows.model import (
    ICMP6, IP, Bucket, Controller, DecTtl, Flow, Goto, Group, Load, Match, Output, SetField,
)
from vpcnet.flows.pipeline import PIPELINE
from vpcnet.flows.render import render_flow, render_for_ofctl, render_group, sorted_flows

from .ofwire_cases import every_scenario_flow, extra_flows, ovs_groups, ovs_meters


WIRE = ofwire.Wire(ofwire.standin_datapath())
_HEAD = re.compile(r"^OFPT_\w+ \(OF1\.3\) \(xid=0x[0-9a-f]+\):\s*")


def _messages(text: str) -> list[str]:
    """ovs-ofctl output -> one string per OpenFlow message, header line prefix stripped."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("OFPT_"):
            out.append(_HEAD.sub("", line).strip())
        elif out and line.strip():
            out[-1] = (out[-1] + " " + line.strip()).strip()
    return out


def _ofp_parse(msgs, tmp_path) -> list[str]:
    path = tmp_path / "msgs.bin"
    with open(path, "wb") as fh:
        for m in msgs:
            m.serialize()
            fh.write(bytes(m.buf))
    proc = subprocess.run(["ovs-ofctl", "ofp-parse", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    return _messages(proc.stdout)


def _parse_flows(flows, tmp_path) -> list[str]:
    path = tmp_path / "flows.txt"
    path.write_text(render_for_ofctl(flows))
    proc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "parse-flows", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return _messages(proc.stdout)


ALL_FLOWS = sorted_flows(every_scenario_flow() + extra_flows())  # the order render_for_ofctl prints


def _action_kinds(actions):
    for a in actions:
        yield type(a)
        if isinstance(a, model.Ct):
            yield from (type(x) for x in a.exec_)


def test_cases_cover_every_action_kind_of_the_model():
    kinds = {k for f in ALL_FLOWS for k in _action_kinds(f.actions)}
    every = {c for mod in (model, learn) for c in vars(mod).values()
             if isinstance(c, type) and issubclass(c, model.Action) and c is not model.Action}
    assert every <= kinds, f"no test flow uses {sorted(c.__name__ for c in every - kinds)}"
    fields = {k for f in ALL_FLOWS for k in f.match}
    assert {"dl_vlan", "vlan_tci", "ct_state", "ct_mark", "ct_label", "ct_zone", "conj_id", "metadata",
            "tp_src", "tp_dst", "icmp_type", "nd_target", "arp_tha", "ipv6_src"} <= fields


def test_every_model_field_has_an_encoding():
    """A field added to flows.model must be mapped in ofwire (else flow_mod raises ValueError)."""
    assert set(model.MATCH_FIELDS) <= set(ofwire._MATCH_NAME) | ofwire._SPECIAL_MATCH
    assert set(model.SET_FIELDS) == set(ofwire._OSKEN_FIELD)


def test_table_id():
    assert ofwire.table_id("classifier") == 0
    assert ofwire.table_id("l2_fwd") == PIPELINE.id("l2_fwd") == 51
    with pytest.raises(ValueError):
        ofwire.table_id("nope")


def test_flow_mods_decode_like_ovs_ofctl(tmp_path):
    """Every scenario flow + the extras: ovs-ofctl reads our bytes as the render_for_ofctl flow."""
    wire = _ofp_parse([WIRE.flow_mod(f, "add") for f in ALL_FLOWS], tmp_path)
    text = _parse_flows(ALL_FLOWS, tmp_path)
    assert len(wire) == len(text) == len(ALL_FLOWS)
    bad = [(render_flow(f), w, t) for f, w, t in zip(ALL_FLOWS, wire, text) if w != t]
    assert not bad, "\n".join(f"{r}\n  wire:  {w}\n  ofctl: {t}" for r, w, t in bad[:5])
    assert all(line.startswith("ADD ") and "reset_counts" not in line for line in wire)


def test_add_message_fields():
    f = ALL_FLOWS[0]
    m = WIRE.flow_mod(f, "add")
    assert m.flags == 0 and not m.flags & ofp.OFPFF_RESET_COUNTS
    assert (m.cookie, m.cookie_mask, m.priority, m.table_id) == (f.cookie, 0, f.priority, PIPELINE.id(f.table))
    assert (m.buffer_id, m.out_port, m.out_group) == (ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY)
    assert (m.idle_timeout, m.hard_timeout) == (0, 0)


def test_strict_commands_and_delete_by_cookie(tmp_path):
    f = Flow("l2_fwd", 50, Match(reg2=5), (Output(3), Goto("ingress_policy")), 0x42)
    add, mod, dele, by_cookie = _ofp_parse([WIRE.flow_mod(f, "add"), WIRE.flow_mod(f, "modify_strict"),
                                            WIRE.flow_mod(f, "delete_strict"),
                                            WIRE.delete_by_cookie(0x5000000ABCD, 0xFF00FFFFFFFF)], tmp_path)
    assert add == "ADD table:51 priority=50,reg2=0x5 cookie:0x42 actions=output:3,goto_table:60"
    assert mod == "MOD_STRICT table:51 priority=50,reg2=0x5 actions=output:3,goto_table:60"
    assert dele == "DEL_STRICT table:51 priority=50,reg2=0x5 actions=drop"
    assert by_cookie == "DEL table:255 cookie:0x5000000abcd/0xff00ffffffff actions=drop"
    with pytest.raises(ValueError, match="bad flow command"):
        WIRE.flow_mod(f, "modify")


def test_group_mods_decode_like_ovs_ofctl(tmp_path):
    groups = ovs_groups()
    wire = _ofp_parse([WIRE.group_mod(g, "add") for g in groups], tmp_path)
    for g, w in zip(groups, wire):
        proc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "parse-group", render_group(g)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert _messages(proc.stdout) == [w]
    mod, dele = _ofp_parse([WIRE.group_mod(groups[1], "modify"), WIRE.group_mod(groups[1], "delete")], tmp_path)
    assert mod.startswith("MOD group_id=6,type=all,bucket=")
    assert dele == "DEL group_id=6,type=all"


def test_meter_mods(tmp_path):
    fast, slow = ovs_meters()
    msgs = _ofp_parse([WIRE.meter_mod(fast), WIRE.meter_mod(slow, "modify"), WIRE.meter_mod(slow, "delete")],
                      tmp_path)
    assert msgs == ["ADD meter=1 kbps burst bands= type=drop rate=1000 burst_size=100",
                    "MOD meter=2 pktps bands= type=drop rate=50",
                    "DEL meter=2 bands="]


def _reparse(msg):
    """Serialize an OFPFlowMod and parse its match and instructions back, as os-ken would read
    them from an OFPFlowStats entry."""
    msg.serialize()
    buf = bytes(msg.buf)
    offset = ofp.OFP_FLOW_MOD_SIZE - ofp.OFP_MATCH_SIZE  # the match follows the fixed part
    match = parser.OFPMatch.parser(buf, offset)
    offset += (match.length + 7) // 8 * 8
    instructions = []
    while offset < len(buf):
        ins = parser.OFPInstruction.parser(buf, offset)
        instructions.append(ins)
        offset += ins.len
    return match, instructions


def test_signature_survives_serialize_and_parse():
    for f in ALL_FLOWS:
        msg = WIRE.flow_mod(f, "add")
        match, instructions = _reparse(msg)
        tid = PIPELINE.id(f.table)
        assert ofcompare.flow_signature(tid, f.priority, f.cookie, match, instructions) == \
            ofcompare.desired_signature(f), render_flow(f)
        assert ofcompare.key_of(tid, f.priority, match) == ofcompare.desired_key(f)


def test_signatures_tell_flows_apart():
    flows = ALL_FLOWS
    assert len({ofcompare.desired_signature(f) for f in flows}) == len(set(flows))
    assert len({ofcompare.desired_key(f) for f in flows}) == len({f.key for f in flows})
    f = Flow("l3_fwd", 200, Match(IP, reg1=7, nw_dst="10.0.1.0/24"),
             (DecTtl(), SetField("eth_src", "0e:76:70:ff:00:07"), Load(BitField("S", "reg2", 0, 31), 5),
              Goto("l3_neigh")), 0x99)
    base = ofcompare.desired_signature(f)
    variants = [
        Flow(f.table, f.priority, f.match, f.actions, 0x98),
        Flow(f.table, 201, f.match, f.actions, f.cookie),
        Flow(f.table, f.priority, Match(IP, reg1=7, nw_dst="10.0.1.0/25"), f.actions, f.cookie),
        Flow(f.table, f.priority, f.match, f.actions[:-1], f.cookie),
        Flow(f.table, f.priority, f.match, f.actions[1:], f.cookie),
        Flow(f.table, f.priority, f.match, (f.actions[1], f.actions[0], *f.actions[2:]), f.cookie),
        Flow(f.table, f.priority, f.match, (*f.actions[:2], Load(BitField("S", "reg2", 0, 31), 6),
                                            f.actions[3]), f.cookie),
        Flow(f.table, f.priority, f.match, (*f.actions[:2], Load(BitField("S", "reg2", 0, 15), 5),
                                            f.actions[3]), f.cookie),
    ]
    for v in variants:
        assert ofcompare.desired_signature(v) != base, render_flow(v)
    same_key = variants[0], variants[3], variants[4]
    assert all(ofcompare.desired_key(v) == ofcompare.desired_key(f) for v in same_key)


# --- normalisation of the encodings OVS may echo -----------------------------------------------
def _sig(match, actions=(), goto=None):
    ins = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))]
    if goto is not None:
        ins.append(parser.OFPInstructionGotoTable(goto))
    return ofcompare.flow_signature(0, 1, 2, match, ins)


def test_register_writes_in_every_encoding_are_equal():
    m = parser.OFPMatch()
    forms = [
        [parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(4, 7), dst="reg0", value=0x3)],
        [parser.NXActionRegLoad2(dst="reg0", value=0x30, mask=0xF0)],
        [parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(4, 5), dst="reg0", value=0x3),
         parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(6, 7), dst="reg0", value=0x0)],
    ]
    assert len({_sig(m, f) for f in forms}) == 1
    whole = [[parser.OFPActionSetField(reg1=7)],
             [parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(0, 31), dst="reg1", value=7)],
             [parser.NXActionRegLoad2(dst="reg1", value=7)]]
    assert len({_sig(m, f) for f in whole}) == 1
    assert _sig(m, forms[0]) != _sig(m, [parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(4, 7),
                                                                 dst="reg0", value=0x2)])
    assert _sig(m, forms[0]) != _sig(m, [parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(4, 7),
                                                                 dst="reg1", value=0x3)])


def test_nxm_and_oxm_spellings_are_equal():
    assert _sig(parser.OFPMatch(eth_type_nxm=0x800, ipv4_src_nxm="10.0.0.1", in_port_nxm=0xFFFE)) == \
        _sig(parser.OFPMatch(eth_type=0x800, ipv4_src="10.0.0.1", in_port=ofp.OFPP_LOCAL))
    assert _sig(parser.OFPMatch(vlan_tci=(0x1064, 0x1FFF))) == _sig(parser.OFPMatch(vlan_vid=0x1064))
    assert _sig(parser.OFPMatch(vlan_tci=(0x3064, 0xFFFF))) == _sig(parser.OFPMatch(vlan_vid=0x1064, vlan_pcp=1))
    assert _sig(parser.OFPMatch(reg0=(1, 0xFFFFFFFF), eth_dst=("00:00:00:00:00:01", "ff:ff:ff:ff:ff:ff"))) == \
        _sig(parser.OFPMatch(eth_dst="00:00:00:00:00:01", reg0=1))
    assert _sig(parser.OFPMatch(reg0=(5, 0))) == _sig(parser.OFPMatch())
    assert _sig(parser.OFPMatch(reg0=(1, 0xF))) != _sig(parser.OFPMatch(reg0=(1, 0x1F)))
    moves = [parser.NXActionRegMove(src_field=s, dst_field=d, n_bits=48) for s, d in
             (("eth_src", "eth_dst"), ("eth_src_nxm", "eth_dst_nxm"))]
    assert _sig(parser.OFPMatch(), moves[:1]) == _sig(parser.OFPMatch(), moves[1:])


def test_equivalent_actions_and_instructions():
    m = parser.OFPMatch(eth_type=0x800)
    assert _sig(m, [parser.OFPActionDecNwTtl()]) == _sig(m, [parser.NXActionDecTtl()])
    assert _sig(m, [parser.OFPActionOutput(3, 0)]) == _sig(m, [parser.OFPActionOutput(3, 65535)])
    assert _sig(m, [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, 128)]) == \
        _sig(m, [parser.NXActionController(max_len=128, controller_id=0, reason=ofp.OFPR_ACTION)])
    assert _sig(m, [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, 128)]) != \
        _sig(m, [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, 64)])
    assert _sig(m, [], goto=5) == ofcompare.flow_signature(0, 1, 2, m, [parser.OFPInstructionGotoTable(5)])
    goto_first = [parser.OFPInstructionGotoTable(5),
                  parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(1, 0)])]
    assert _sig(m, [parser.OFPActionOutput(1, 0)], goto=5) == ofcompare.flow_signature(0, 1, 2, m, goto_first)
    # controller actions: OFPAT_OUTPUT, NXAST_CONTROLLER, NXAST_CONTROLLER2 (ours or os-ken's own
    # class, which spells out default properties) are one action when they say the same
    c2, osken_c2 = ofwire.NXActionController2, ofwire._OSKEN_CONTROLLER2
    same = [[parser.OFPActionOutput(ofp.OFPP_CONTROLLER, 128)], [c2(max_len=128)],
            [osken_c2(max_len=128, reason=ofp.OFPR_ACTION, controller_id=0)],
            [parser.NXActionController(max_len=128, controller_id=0, reason=ofp.OFPR_ACTION)]]
    assert len({_sig(m, a) for a in same}) == 1
    assert _sig(m, [c2(userdata=b"ab", meter_id=3)]) == _sig(m, [c2(max_len=65535, userdata=[97, 98], meter_id=3)])
    assert _sig(m, [c2(userdata=b"ab")]) == _sig(m, [osken_c2(max_len=65535, userdata=[97, 98])])
    distinct = [[c2(max_len=128)], [c2(max_len=128, meter_id=1)], [c2(max_len=128, meter_id=2)],
                [c2(max_len=128, userdata=b"a")], [c2(max_len=128, userdata=b"b")],
                [c2(max_len=128, userdata=b"a", meter_id=1)], [c2(max_len=64, userdata=b"a", meter_id=1)],
                [c2(max_len=128, pause=True)], [c2(max_len=128, reason=ofp.OFPR_NO_MATCH)]]
    assert len({_sig(m, a) for a in distinct}) == len(distinct)
    unknown = [parser.NXActionNote(note=[1, 2, 3])]
    assert _sig(m, unknown) != _sig(m, [])  # unknown actions still count
    assert hash(_sig(m, unknown)) == hash(_sig(m, [parser.NXActionNote(note=[1, 2, 3])]))


def test_controller_with_userdata_or_meter_is_controller2_as_ovs_encodes_it(tmp_path):
    """OVS's encode_CONTROLLER: CONTROLLER2 with only the non-default properties, each padded to
    8 (MAX_LEN u16 in a 6-byte property, USERDATA, METER_ID u32); otherwise output:CONTROLLER."""
    def action(c):
        a = WIRE._action(c)
        buf = bytearray()
        a.serialize(buf, 0)
        assert len(buf) == a.len and a.len % 8 == 0
        return bytes(buf).hex()

    head = "ffff{:04x}00002320" "0025" "000000000000"
    assert action(Controller(max_len=128)) == "0000" "0010" "fffffffd" "0080" "000000000000"
    assert action(Controller(max_len=128, meter_id=1)) == head.format(32) + "000000060080" "0000" "0005000800000001"
    assert action(Controller(userdata=b"\x01\x02\x03")) == head.format(24) + "00030007" "010203" "00"
    assert action(Controller(userdata=bytes(4), meter_id=0x10000)) == \
        head.format(32) + "00030008" "00000000" "0005000800010000"
    assert action(Controller(userdata=bytes(range(5)))) == head.format(32) + "00030009" "0001020304" "000000" "00000000"
    flows = [Flow("egress_policy", 12 - i, Match(IP), (c,), 1) for i, c in enumerate(
        [Controller(userdata=b"\xde\xad"), Controller(meter_id=4), Controller(7, userdata=bytes(256), meter_id=9)])]
    wire = _ofp_parse([WIRE.flow_mod(f) for f in flows], tmp_path)
    assert [w.split("actions=")[1] for w in wire] == [
        "controller(userdata=de.ad)", "controller(meter_id=4)",
        "controller(max_len=7,userdata=" + ".".join(["00"] * 256) + ",meter_id=9)"]
    assert wire == _parse_flows(flows, tmp_path)


# --- what cannot be encoded -------------------------------------------------------------------
def test_unsupported_values_raise_value_error_naming_the_flow():
    with pytest.raises(ValueError, match=r"cookie=0x77, table=classifier, priority=10,vlan_tci.*PCP"):
        WIRE.flow_mod(Flow("classifier", 10, Match(vlan_tci=(0x3064, 0x3FFF)), (), 0x77))
    with pytest.raises(ValueError, match="PCP"):
        WIRE.flow_mod(Flow("classifier", 10, Match(vlan_tci=(0x3064, 0x3FFF)), (), 1))
    with pytest.raises(ValueError, match="group 9"):
        WIRE.group_mod(Group(9, "indirect", (Bucket((Goto("l2_fwd"),)),)))
    with pytest.raises(ValueError):
        WIRE.group_mod(ovs_groups()[0], "replace")
    with pytest.raises(ValueError):
        WIRE.meter_mod(ovs_meters()[0], "replace")


def test_nd_flow_and_drop_flow_signatures():
    nd = Flow("ct_zone", 300, Match(ICMP6, icmp_type=135), (Goto("ct_state"),), 1)
    sig = ofcompare.desired_signature(nd)
    assert sig[3] == (("eth_type", 0x86DD, None), ("icmpv6_type", 135, None), ("ip_proto", 58, None))
    assert sig[4] == (("goto", 21),)
    drop = Flow("canary", 0, Match(), (), 1)
    assert ofcompare.desired_signature(drop) == (250, 0, 1, (), ())
