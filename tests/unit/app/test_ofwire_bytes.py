"""app/ofwire.py without os-ken objects: the direct flow-mod encoder is byte-identical to
os-ken's serialisation (every scenario flow and hand-made case, every command), falls back to
os-ken where it must, and the raw-bytes identity equals stats_key/stats_signature of os-ken's
parse, for our own encodings and for the other encodings a switch may echo."""
from __future__ import annotations

import struct

import pytest
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from vpcnet.app import ofcompare, ofencode, ofwire
from vpcnet.flows.fields import BitField
from vpcnet.flows.model import (
    ICMP6, IP, TCP, Controller, Flow, Goto, Load, Match, Output, SetField, nd_solicit_to_advert,
)
from vpcnet.flows.render import sorted_flows

from .ofwire_cases import every_scenario_flow, extra_flows

ALL_FLOWS = sorted_flows(every_scenario_flow() + extra_flows())
DP = ofwire.standin_datapath()
FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")


def entry_of(flow_mod: bytes) -> bytes:
    """The ofp_flow_stats entry a switch would report for a flow-mod's flow."""
    length, cookie, table, priority = ofcompare._FLOW_MOD_FIXED.unpack_from(flow_mod, 0)
    body = flow_mod[48:length]
    return FLOW_STATS.pack(48 + len(body), table, 10, 20, priority, 0, 0, 0, cookie, 1, 2) + body


def osken_identity(raw: bytes) -> tuple:
    e = parser.OFPFlowStats.parser(raw, 0)
    return ofcompare.stats_key(e), ofcompare.stats_signature(e)


def osken_entry(table: int, priority: int, cookie: int, match, instructions) -> bytes:
    msg = parser.OFPFlowMod(DP, cookie=cookie, table_id=table, priority=priority, match=match,
                            instructions=instructions)
    msg.set_xid(0)
    msg.serialize()
    return entry_of(bytes(msg.buf))


# --- encoding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["add", "modify_strict", "delete_strict"])
def test_direct_encoding_is_byte_identical_to_os_ken(command):
    before = ofencode.ENCODER.fallbacks
    bad = []
    for f in ALL_FLOWS:
        for cookie in (None, 0x1234_0500_0000_abcd):
            got = ofencode.encode_flow_mod(f, command, cookie)
            if got != ofwire.osken_flow_mod(f, command, cookie):
                bad.append(f)
    assert not bad, bad[:3]
    assert ofencode.ENCODER.fallbacks == before, "the direct path covers every compiled and test flow"


def test_ovs_extension_fields_go_out_as_ericoxm_and_read_back_by_name():
    """nd_reserved / nd_options_type: set_field with OVS's ERICOXM_OF_ICMPV6_ND_RESERVED (class
    0x1000, field 1, 4 bytes) and ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE (field 2, 1 byte) headers,
    through os-ken's generic fields, and named like OVS in signatures."""
    f = Flow("l3_fwd", 300, Match(ICMP6, icmp_type=135, nd_target="fd00::1"),
             nd_solicit_to_advert() + (Goto("arp_responder"),), 0x1)
    raw = ofencode.encode_flow_mod(f)
    assert raw == ofwire.osken_flow_mod(f)
    set_field = struct.pack("!HH", ofp.OFPAT_SET_FIELD, 16)
    assert set_field + bytes.fromhex("10000204" "e0000000") + bytes(4) in raw
    assert set_field + bytes.fromhex("10000401" "02") + bytes(7) in raw
    apply = dict(ofcompare.desired_signature(f)[4])["apply"]
    assert apply == (("set_field", "icmpv6_type", 136, 0xFF), ("set_field", "nd_reserved", 0xE0000000, 0xFFFFFFFF),
                     ("set_field", "nd_options_type", 2, 0xFF))
    assert ofcompare.entry_identity(entry_of(raw)) == osken_identity(entry_of(raw))


def test_cookie_replaces_the_flows_cookie_only():
    f = ALL_FLOWS[3]
    a, b = ofencode.encode_flow_mod(f), ofencode.encode_flow_mod(f, cookie=7)
    assert a[:8] == b[:8] and a[16:] == b[16:] and struct.unpack_from("!Q", b, 8)[0] == 7


def test_controller_actions_are_encoded_directly():
    """controller with userdata and/or a meter: packed here (no fallback), as os-ken + ofwire."""
    before = ofencode.ENCODER.fallbacks
    ofencode.ENCODER.clear()
    cases = [Controller(), Controller(max_len=0), Controller(userdata=b"\x00"), Controller(meter_id=0xFFFF0000),
             Controller(max_len=65534, userdata=bytes(range(8)), meter_id=5)]
    cases += [Controller(userdata=bytes(n)) for n in (4, 5, 11, 12, 13, 255, 256)]
    for i, c in enumerate(cases):
        f = Flow("egress_policy", 10, Match(IP, reg1=i), (c, Goto("l3_fwd")), 0x77)
        raw = ofencode.encode_flow_mod(f)
        assert raw == ofwire.osken_flow_mod(f), c
        assert ofcompare.entry_identity(entry_of(raw)) == osken_identity(entry_of(raw))
        apply = dict(ofcompare.desired_signature(f)[4])["apply"]
        assert apply == (("controller", c.max_len, 0, ofp.OFPR_ACTION, c.userdata, False, c.meter_id or 0),)
    assert ofencode.ENCODER.fallbacks == before


def test_whole_flow_fallback_to_os_ken(monkeypatch):
    def refuse(self, match):
        raise ofencode._Fallback("test")

    monkeypatch.setattr(ofencode.FlowEncoder, "match_bytes", refuse)
    before = ofencode.ENCODER.fallbacks
    for f in ALL_FLOWS[:50]:
        assert ofencode.encode_flow_mod(f, cookie=5) == ofwire.osken_flow_mod(f, cookie=5)
    assert ofencode.ENCODER.fallbacks == before + 50


def test_per_field_and_per_action_fallbacks_give_os_kens_bytes(monkeypatch):
    """Values the direct path leaves to os-ken (other spellings, CIDR text, lists) and the
    direct values themselves give os-ken's TLVs; with the direct path off, flows still match."""
    kwargs = {kv for f in ALL_FLOWS for kv in ofwire._match_kwargs(f.match).items()}
    odd = [("eth_dst", "0A:00:00:00:00:01"), ("eth_src", "0a-00-00-00-00-02"), ("ipv4_dst", "10.0.0.0/24"),
           ("ipv6_src", "fd00::/16"), ("reg0", [5, 0xF]), ("metadata", (1 << 64) + 3), ("arp_tpa", "10.1.2.3"),
           ("reg1", (7, 3))]
    for k, uv in list(kwargs) + odd:
        assert ofencode._oxm_tlv(k, uv) == ofencode._osken_tlv(k, uv), (k, uv)
    monkeypatch.setattr(ofencode, "_DIRECT_FIELDS", {})
    ofencode.ENCODER.clear()
    try:
        for f in ALL_FLOWS:
            assert ofencode.encode_flow_mod(f) == ofwire.osken_flow_mod(f)
    finally:
        ofencode.ENCODER.clear()


def test_unsupported_flows_raise_as_before():
    with pytest.raises(ofwire.UnsupportedFlow, match="PCP"):
        ofencode.encode_flow_mod(Flow("classifier", 10, Match(vlan_tci=(0x3064, 0x3FFF)), (), 1))
    with pytest.raises(ValueError, match="bad flow command"):
        ofencode.encode_flow_mod(ALL_FLOWS[0], "modify")


def test_caches_are_bounded(monkeypatch):
    monkeypatch.setattr(ofencode, "_CACHE_LIMIT", 10)
    monkeypatch.setattr(ofcompare, "_CACHE_LIMIT", 10)
    monkeypatch.setattr(ofcompare, "_TLV_TERMS", {})
    monkeypatch.setattr(ofcompare, "_ACTION_NORMS", {})
    enc = ofencode.FlowEncoder()
    for f in ALL_FLOWS[:200]:
        assert enc.flow_mod(f) == ofwire.osken_flow_mod(f)
        ofcompare.flow_mod_identity(enc.flow_mod(f))
    assert len(enc._fields) <= 10 and len(enc._actions) <= 10
    assert len(ofcompare._TLV_TERMS) <= 10 and len(ofcompare._ACTION_NORMS) <= 10


# --- identity from bytes --------------------------------------------------------------------------
def test_identity_of_our_bytes_equals_the_os_ken_signature():
    for f in ALL_FLOWS:
        msg = ofwire.Wire(DP).flow_mod(f)
        want = (ofcompare.stats_key(msg), ofcompare.stats_signature(msg))
        assert ofcompare.flow_identity(f) == want
        assert (ofcompare.desired_key(f), ofcompare.desired_signature(f)) == want
        raw = entry_of(ofencode.encode_flow_mod(f))
        assert ofcompare.entry_identity(raw) == osken_identity(raw) == want


def test_identity_with_cookie():
    f = ALL_FLOWS[5]
    key, sig = ofcompare.flow_identity(f, cookie=0x0001_0000_0000_0042)
    assert sig[2] == 0x0001_0000_0000_0042 and key == ofcompare.desired_key(f)


def _echo_variants():
    """Matches and instructions in encodings OVS (or another controller) may report."""
    M = parser.OFPMatch
    nx = parser
    matches = [
        M(eth_type_nxm=0x800, ipv4_src_nxm="10.0.0.1", in_port_nxm=0xFFFE),
        M(eth_type=0x800, ipv4_src="10.0.0.1", in_port=ofp.OFPP_LOCAL),
        M(vlan_tci=(0x1064, 0x1FFF)), M(vlan_tci=(0x3064, 0xFFFF)), M(vlan_tci=(0x3064, 0x3FFF)),
        M(reg0=(1, 0xFFFFFFFF), eth_dst=("00:00:00:00:00:01", "ff:ff:ff:ff:ff:ff")),
        M(reg0=(5, 0)), M(reg0=(1, 0xF)), M(ct_state=(0x21, 0x21), ct_zone=7, ct_mark=(1, 0xF)),
        M(eth_type=0x86DD, ip_proto=58, icmpv6_type=135, ipv6_nd_target="fd00::5", nd_target="fd00::6"),
        M(tcp_flags=2, eth_type=0x800, ip_proto=6),             # an experimenter OXM: os-ken's turn
        M(in_port_nxm=5, eth_src_nxm=("0e:00:00:00:00:00", "ff:ff:00:00:00:00")),
        M(),
    ]
    actions = [
        [nx.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(4, 7), dst="reg0", value=0x3)],
        [nx.NXActionRegLoad2(dst="reg0", value=0x30, mask=0xF0)],
        [nx.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(4, 5), dst="reg0", value=0x3),
         nx.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(6, 7), dst="reg0", value=0x0)],
        [nx.OFPActionSetField(reg1=7), nx.NXActionRegLoad2(dst="reg1", value=7)],
        [nx.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(0, 63), dst="ct_label", value=5)],
        [nx.NXActionRegMove(src_field="eth_src_nxm", dst_field="eth_dst_nxm", n_bits=48)],
        [nx.NXActionRegMove(src_field="eth_src", dst_field="eth_dst", n_bits=48)],
        [nx.NXActionRegMove(src_field="arp_spa", dst_field="reg7", n_bits=32, src_ofs=0, dst_ofs=0)],
        [nx.OFPActionDecNwTtl(), nx.NXActionDecTtl(), nx.NXActionDecTtlCntIds(cnt_ids=[0])],
        [nx.OFPActionOutput(3, 0), nx.OFPActionOutput(3, 65535), nx.OFPActionOutput(ofp.OFPP_CONTROLLER, 128)],
        [nx.NXActionController(max_len=128, controller_id=0, reason=ofp.OFPR_ACTION)],
        [ofwire.NXActionController2(max_len=128, userdata=b"\x01\x02\x03", meter_id=1)],
        [ofwire.NXActionController2(userdata=bytes(range(12)), meter_id=2), ofwire.NXActionController2(max_len=9)],
        [ofwire._OSKEN_CONTROLLER2(max_len=65535, reason=ofp.OFPR_ACTION, userdata=[1, 2, 3])],  # defaults spelt out
        [ofwire._OSKEN_CONTROLLER2(max_len=128, controller_id=3, reason=ofp.OFPR_NO_MATCH, pause=True)],
        [ofwire.NXActionController2(userdata=b"x", unknown=((9, b"\x01\x02"),))],
        [nx.NXActionOutputReg(ofs_nbits=nicira_ext.ofs_nbits(0, 15), src="reg4", max_len=65535)],
        [nx.NXActionOutputReg2(ofs_nbits=nicira_ext.ofs_nbits(0, 15), src="reg4", max_len=65535)],
        [nx.NXActionResubmitTable(in_port=0xFFF8, table_id=51), nx.NXActionResubmit(in_port=0xFFF8)],
        [nx.OFPActionPushVlan(0x8100), nx.OFPActionSetField(vlan_vid=0x100A), nx.OFPActionPopVlan(),
         nx.OFPActionGroup(5)],
        [nx.NXActionConjunction(clause=0, n_clauses=2, id_=10)],
        [nx.NXActionNote(note=[1, 2, 3])],
        [nx.OFPActionSetField(ipv6_src="fd00::9"), nx.OFPActionSetField(eth_src="0e:00:00:00:00:01"),
         nx.OFPActionSetField(tcp_dst=8080), nx.OFPActionSetField(arp_op=2)],
        [],
    ]
    instructions = []
    for acts in actions:
        instructions.append([parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, acts)])
    instructions += [
        [parser.OFPInstructionGotoTable(5), parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                                         [parser.OFPActionOutput(1, 0)])],
        [parser.OFPInstructionWriteMetadata(0x10, 0xF0), parser.OFPInstructionMeter(3),
         parser.OFPInstructionActions(ofp.OFPIT_WRITE_ACTIONS, [parser.OFPActionOutput(2, 0)]),
         parser.OFPInstructionActions(ofp.OFPIT_CLEAR_ACTIONS, [])],
    ]
    return matches, instructions


def test_identity_of_other_encodings_equals_the_os_ken_signature():
    matches, instructions = _echo_variants()
    seen = set()
    for i, m in enumerate(matches):
        for j, ins in enumerate(instructions):
            raw = osken_entry(7, 100 + i, 0x99 + j, m, ins)
            assert ofcompare.entry_identity(raw) == osken_identity(raw), (m, ins)
            seen.add(ofcompare.entry_identity(raw))
    assert len({s for _, s in seen}) == len(seen)


def test_the_direct_decoders_agree_with_os_ken_on_every_action():
    """Every distinct action of the test flows and of the echo variants: the direct reading
    (set_field, reg_load, reg_move, output) equals os-ken's parse + _normalize_action."""
    _, instructions = _echo_variants()
    raws = set()
    for f in ALL_FLOWS:
        for a in f.actions:
            if not isinstance(a, Goto):
                raws.add(ofencode.ENCODER.action_bytes(a))
    for ins in instructions:
        for i in ins:
            for a in getattr(i, "actions", None) or []:
                buf = bytearray()
                a.serialize(buf, 0)
                raws.add(bytes(buf) + bytes(a.len - len(buf)))
    split = set()
    for raw in raws:            # an encoded Load may be several reg_loads
        p = 0
        while p < len(raw):
            n = struct.unpack_from("!H", raw, p + 2)[0]
            split.add(raw[p:p + n])
            p += n
    ofcompare._ACTION_NORMS.clear()
    for raw in split:
        assert ofcompare._action_norm(raw) == ofcompare._normalize_action(parser.OFPAction.parser(raw, 0)), raw.hex()


def test_signatures_tell_hand_changes_apart():
    f = Flow("l3_fwd", 200, Match(TCP, reg1=7, nw_dst="10.0.1.0/24"),
             (SetField("eth_src", "0e:76:70:ff:00:07"), Load(BitField("S", "reg2", 0, 31), 5), Goto("l3_neigh")), 9)
    variants = [Flow(f.table, f.priority, f.match, (Output(99),), f.cookie),
                Flow(f.table, f.priority, f.match, f.actions[1:], f.cookie),
                Flow(f.table, f.priority, f.match, (Load(BitField("S", "reg2", 0, 15), 5), *f.actions[1:]), f.cookie),
                Flow(f.table, f.priority, f.match, f.actions, 10)]
    key, sig = ofcompare.flow_identity(f)
    for v in variants:
        vkey, vsig = ofcompare.entry_identity(entry_of(ofencode.encode_flow_mod(v)))
        assert vkey == key and vsig != sig


def test_a_bench_cluster_encodes_and_reads_back_like_os_ken():
    """More of the compiler's output (the install bench's cluster: dual stack, many remote pods)."""
    from vpcnet.bench.install_bench import node_flows
    flows = sorted_flows({f for fl in node_flows(20, 300, 2).values() for f in fl})
    assert len(flows) > 800
    for f in flows:
        b = ofencode.encode_flow_mod(f, cookie=f.cookie | 1 << 48)
        assert b == ofwire.osken_flow_mod(f, cookie=f.cookie | 1 << 48)
        assert ofcompare.entry_identity(entry_of(b)) == osken_identity(entry_of(b))


def _test_groups() -> list:
    """The OVS test groups plus compiled Service groups (ct/nat buckets, repeated slots, affinity
    buckets with resubmit)."""
    from vpcnet.flows.inputs import ClusterIn, NodeIn, PodIn, SubnetIn, VpcIn
    from vpcnet.flows.compile import compile_node
    from vpcnet.flows.model import Group
    from vpcnet.flows.service_inputs import EndpointIn, ServiceIn, ServicePortIn
    from .ofwire_cases import ovs_groups
    vpc = VpcIn("v", 3, 103)
    sub = SubnetIn("s", "v", ("10.1.0.0/24",), ("10.1.0.1",), 11, 11)
    pods = (PodIn("ns", "p", "v", "s", ("10.1.0.5",), "02:00:00:00:00:05", "n1", 5),)
    eps = tuple(EndpointIn(f"10.1.0.{i}", "n1") for i in (10, 11, 12))
    svcs = (ServiceIn("ns", "a", "v", "10.96.0.10", (ServicePortIn("http", "TCP", 80, 8080),), eps),
            ServiceIn("ns", "b", "v", "10.96.0.11", (ServicePortIn("http", "TCP", 80, 8080),), eps,
                      affinity_timeout=60))
    c = ClusterIn((vpc,), (sub,), pods, (NodeIn("n1", 1, 1),), services=svcs)
    compiled = [g for items in compile_node(c, "n1").values() for g in items if isinstance(g, Group)]
    assert len(compiled) == 2
    return ovs_groups() + compiled


@pytest.mark.parametrize("command", ["add", "modify", "delete"])
def test_group_mod_bytes_are_os_kens(command):
    for g in _test_groups():
        assert ofencode.encode_group_mod(g, command) == ofwire.osken_group_mod(g, command), (g.group_id, command)
