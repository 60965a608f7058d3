"""The one translation between the flow model (``vpcnet.flows``) and os-ken OpenFlow 1.3 messages.

Two directions, kept side by side so they cannot drift apart:

* **encode**: ``Wire(datapath).flow_mod(flow, "add")`` (and ``delete_by_cookie``, ``group_mod``,
  ``meter_mod``) builds the os-ken message. The encoding mirrors what ``ovs-ofctl -O OpenFlow13``
  sends for the ``render_for_ofctl`` text of the same flow, so ``ovs-ofctl dump-flows`` shows the
  same text whichever way a flow was installed (both are tested against the real ovs-ofctl/OVS):

  ======================  =====================================================================
  model                   os-ken
  ======================  =====================================================================
  Load, whole field       ``OFPActionSetField``        (ovs-ofctl ``set_field:V->reg1``)
  Load, some bits         ``NXActionRegLoad``          (``load:V->NXM_NX_REG0[0..3]``), split in
                          64-bit segments from the low bit up when wider, as OVS does
  SetField                ``OFPActionSetField``
  Move                    ``NXActionRegMove``
  Output(port)            ``OFPActionOutput(port, max_len=0)``
  Output(BitField)        ``NXActionOutputReg(max_len=65535)``
  Controller              ``OFPActionOutput(CONTROLLER, max_len)``; with userdata or a meter:
                          ``NXActionController2`` (NXAST_CONTROLLER2, defined here: see below)
  Goto                    ``OFPInstructionGotoTable`` (other actions: one APPLY_ACTIONS)
  Resubmit                ``NXActionResubmitTable(in_port=IN_PORT)``
  Ct / Nat                ``NXActionCT`` with nested ``NXActionNAT`` then the exec() loads
  DecTtl                  ``OFPActionDecNwTtl``
  Push/PopVlan, Group     ``OFPActionPushVlan`` / ``OFPActionPopVlan`` / ``OFPActionGroup``
  Conjunction             ``NXActionConjunction`` (wire clause is 0-based: k-1)
  ======================  =====================================================================

  ``SetField`` of ``nd_reserved``/``nd_options_type`` (OVS extension fields of the ERICOXM class
  0x1000, which os-ken has no names for) is an ``OFPActionSetField`` of os-ken's generic field
  ``field_<(class << 7) | field>`` with the value as base64 bytes, which os-ken serialises as the
  plain 32-bit OXM header OVS expects (and names the same way when it parses OVS's dumps).

  Matches are sent as OXM the way OVS itself encodes them for OpenFlow 1.3 (``dl_vlan`` and
  ``vlan_tci`` become ``vlan_vid``/``vlan_pcp``; ``tp_src`` becomes ``tcp_src``/``udp_src``/``sctp_src``
  and ``icmp_type`` ``icmpv4_type``/``icmpv6_type`` from the protocol; prefixes become value/mask).
  ``add`` sends flags 0 (never ``OFPFF_RESET_COUNTS``): re-adding an unchanged flow keeps its
  counters. ``modify_strict`` (OF1.3) replaces the instructions only and leaves the installed
  cookie alone, so a flow whose cookie must change is re-sent with ``add``.
  Anything the model allows but os-ken/OF1.3 cannot carry (a ``Goto`` inside a group bucket, a
  ``vlan_tci`` mask covering only part of the PCP bits) raises ``ValueError`` naming the flow.
  os-ken 4.2.2's ``NXActionNAT`` forgets its padding when it carries an address or port (OVS
  then rejects the flow); ``_padded_nat_class`` fixes that. Its ``NXActionController2`` has no
  ``meter_id`` property (and cannot even parse one: a flow OVS reports with it would raise), so
  ``NXActionController2`` here (a subclass) writes and reads NXAST_CONTROLLER2 exactly as OVS's
  lib/ofp-actions.c does, and is what os-ken's action parser uses for that subtype from the
  moment this module is imported (``use_controller2_parser``).

The hot paths do not build os-ken objects: ``vpcnet.app.ofencode`` writes the same flow-mod bytes
directly (``osken_flow_mod`` here is its reference and fallback), and ``vpcnet.app.ofcompare``
compares flows (ours and what OVS reports) by semantic signature.
"""
from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import netaddr
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as _OFP
from os_ken.ofproto import ofproto_v1_3_parser as _PARSER

from vpcnet.flows.fields import BitField
from vpcnet.flows.learn import LEARN_MATCH_FIELDS, Learn
from vpcnet.flows.model import (
    ETH_IPV4, MULTIPATH_FIELDS, OFPP_IN_PORT, OFPP_LOCAL, SET_FIELDS, Conjunction, Controller, Ct,
    DecTtl, Flow, Goto, Group, GroupAction, Load, Match, Meter, Move, Multipath, Output, PopVlan, PushVlan,
    Resubmit, SetField, parse_ct_state,
)
from vpcnet.flows.pipeline import PIPELINE
from vpcnet.flows.render import render_flow

# learn specs: our names -> os-ken's (OXM) field names (and widths of the fixed ones)
_LEARN_OSKEN = {"ip_src": "ipv4_src", "ip_dst": "ipv4_dst", "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst",
                "tcp_dst": "tcp_dst", "udp_dst": "udp_dst"}
_LEARN_FIXED = {"dl_type": ("eth_type", 16), "nw_proto": ("ip_proto", 8)}

FLOW_COMMANDS = {"add": _OFP.OFPFC_ADD, "modify_strict": _OFP.OFPFC_MODIFY_STRICT,
                 "delete_strict": _OFP.OFPFC_DELETE_STRICT}
GROUP_COMMANDS = {"add": _OFP.OFPGC_ADD, "modify": _OFP.OFPGC_MODIFY, "delete": _OFP.OFPGC_DELETE}
METER_COMMANDS = {"add": _OFP.OFPMC_ADD, "modify": _OFP.OFPMC_MODIFY, "delete": _OFP.OFPMC_DELETE}
GROUP_TYPES = {"all": _OFP.OFPGT_ALL, "select": _OFP.OFPGT_SELECT, "indirect": _OFP.OFPGT_INDIRECT}

NX_NAT_F_SRC, NX_NAT_F_DST = 1, 2          # nicira_ext has no names for these
OUTPUT_REG_MAX_LEN = 0xFFFF                  # what ovs-ofctl puts in output:NXM_NX_REGn[]
_SPECIAL_PORTS = {"IN_PORT": OFPP_IN_PORT, "LOCAL": OFPP_LOCAL}


def table_id(name: str) -> int:
    """The OpenFlow table number of a pipeline table name."""
    return PIPELINE.id(name)


class UnsupportedFlow(ValueError):
    """A model value that os-ken / OpenFlow 1.3 cannot carry. The message names the flow."""


# --- encoding --------------------------------------------------------------------------------
OXM_CLASS_ERICOXM = 0x1000     # OVS's ERICOXM_OF fields: 32-bit OXM headers, no experimenter id


def _generic_oxm(oxm_class: int, field: int) -> str:
    """os-ken's name for an OXM it has no definition of (``oxx_fields``: ``field_<num>``, value in
    base64), e.g. ``field_524289`` for ERICOXM_OF_ICMPV6_ND_RESERVED (class 0x1000, field 1)."""
    return f"field_{(oxm_class << 7) | field}"


# model set_field/move names (ovs-ofctl) -> os-ken OXM names
_OSKEN_FIELD = {"eth_src": "eth_src", "eth_dst": "eth_dst", "vlan_vid": "vlan_vid",
                "arp_op": "arp_op", "arp_spa": "arp_spa", "arp_tpa": "arp_tpa",
                "arp_sha": "arp_sha", "arp_tha": "arp_tha", "ip_src": "ipv4_src",
                "ip_dst": "ipv4_dst", "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst",
                "tcp_src": "tcp_src", "tcp_dst": "tcp_dst", "icmp_type": "icmpv4_type",
                "icmpv6_type": "icmpv6_type", "nd_tll": "ipv6_nd_tll",
                "nd_reserved": _generic_oxm(OXM_CLASS_ERICOXM, 1),
                "nd_options_type": _generic_oxm(OXM_CLASS_ERICOXM, 2)}
# model set_field names os-ken knows only as generic fields -> value width in bytes
_GENERIC_SET_FIELDS = {"nd_reserved": 4, "nd_options_type": 1}

# model match field -> os-ken OXM name (fields needing context are handled in _match_kwargs)
_MATCH_NAME = {"ct_state": "ct_state", "ct_zone": "ct_zone", "ct_mark": "ct_mark",
               "ct_label": "ct_label", "conj_id": "conj_id", "dl_type": "eth_type",
               "metadata": "metadata", "in_port": "in_port", "dl_src": "eth_src",
               "dl_dst": "eth_dst", "nw_src": "ipv4_src", "nw_dst": "ipv4_dst",
               "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst", "arp_spa": "arp_spa",
               "arp_tpa": "arp_tpa", "arp_sha": "arp_sha", "arp_tha": "arp_tha",
               "nw_proto": "ip_proto", "arp_op": "arp_op", "nd_target": "ipv6_nd_target",
               "nd_sll": "ipv6_nd_sll",
               **{f"reg{i}": f"reg{i}" for i in range(16)}}
_SPECIAL_MATCH = frozenset({"dl_vlan", "vlan_tci", "ct_state", "in_port", "tp_src", "tp_dst",
                            "icmp_type", "icmp_code"})  # converted in _match_kwargs
_CT_STATE_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20,
                  "snat": 0x40, "dnat": 0x80}
_L4_PREFIX = {6: "tcp", 17: "udp", 132: "sctp"}


def _ip_value(text: str):
    """'10.0.0.5' -> '10.0.0.5'; '10.0.0.0/24' -> ('10.0.0.0', '255.255.255.0')."""
    if "/" not in text:
        return text
    net = netaddr.IPNetwork(text)
    return str(net.network), str(net.netmask)


def _vlan_oxm(value: int, mask: int) -> dict:
    """NXM vlan_tci value/mask -> the OXM fields OVS uses for it in OpenFlow 1.2+ (nx_put_raw)."""
    out: dict[str, Any] = {}
    vid, vmask = value & 0x1FFF, mask & 0x1FFF
    if vmask == 0x1FFF:
        out["vlan_vid"] = vid
    elif vmask:
        out["vlan_vid"] = (vid, vmask)
    pcp_mask = mask & 0xE000
    if vid and pcp_mask:
        if pcp_mask != 0xE000:
            raise ValueError(f"vlan_tci mask {mask:#06x} covers only part of the PCP bits "
                             "(OpenFlow 1.3 cannot match that)")
        out["vlan_pcp"] = (value >> 13) & 0x7
    return out


_CONTEXT_FIELDS = frozenset({"tp_src", "tp_dst", "icmp_type", "icmp_code"})  # need dl_type/nw_proto
_IP_FIELDS = frozenset({"nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "arp_spa", "arp_tpa", "nd_target"})


def _field_kwargs(name: str, value, dl_type, nw_proto) -> list[tuple[str, Any]]:
    """The os-ken OFPMatch keyword arguments, in order, for one model match field."""
    if name == "dl_vlan":
        return list(_vlan_oxm(0x1000 | value, 0x1FFF).items())
    if name == "vlan_tci":
        return list(_vlan_oxm(*(value if isinstance(value, tuple) else (value, 0xFFFF))).items())
    if name == "ct_state":
        flags = parse_ct_state(value)
        return [("ct_state", (sum(_CT_STATE_BITS[f] for f, on in flags.items() if on),
                              sum(_CT_STATE_BITS[f] for f in flags)))]
    if name == "in_port":
        return [("in_port", _SPECIAL_PORTS.get(value, value))]
    if name in ("tp_src", "tp_dst"):
        return [(f"{_L4_PREFIX[nw_proto]}_{name[3:]}", value)]
    if name in ("icmp_type", "icmp_code"):
        return [(f"icmpv{4 if dl_type == ETH_IPV4 else 6}_{name[5:]}", value)]
    if name not in _MATCH_NAME:
        raise ValueError(f"match field {name!r} has no os-ken encoding here yet")
    if name in _IP_FIELDS:
        return [(_MATCH_NAME[name], _ip_value(value))]
    return [(_MATCH_NAME[name], value)]


def _match_kwargs(match: Match) -> dict:
    """os-ken OFPMatch keyword arguments for a model Match."""
    kw: dict[str, Any] = {}
    dl_type, nw_proto = match.get("dl_type"), match.get("nw_proto")
    for name, value in match.items():
        kw.update(_field_kwargs(name, value, dl_type, nw_proto))
    return kw


def _load(parser, field: BitField, value: int) -> list:
    """A whole field: set_field. Some bits: NXAST_REG_LOAD, in 64-bit segments from the low bit
    up when wider (exactly how OVS encodes ``load:`` itself, so dumps read the same)."""
    if field.full:
        return [parser.OFPActionSetField(**{field.space: value})]
    out, ofs = [], field.start
    while ofs <= field.end:
        end = min(field.end, ofs + 63)
        chunk = (value >> (ofs - field.start)) & ((1 << (end - ofs + 1)) - 1)
        out.append(parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(ofs, end),
                                          dst=field.space, value=chunk))
        ofs = end + 1
    return out


_PADDED_NAT: dict = {}


def _padded_nat_class(parser):
    """os-ken 4.2.2's NXActionNAT announces a length rounded up to 8 but does not write the
    padding (an address + port makes a 22- or 34-byte body), so OVS rejects the flow or
    mis-parses the next action. This subclass (same class name, same parser) adds the pad."""
    cls = _PADDED_NAT.get(parser)
    if cls is None:
        base = parser.NXActionNAT

        def serialize_body(self):
            data = base.serialize_body(self)
            return data + bytes(-(10 + len(data)) % 8)  # 10 = experimenter header + subtype

        cls = _PADDED_NAT[parser] = type("NXActionNAT", (base,), {"serialize_body": serialize_body})
    return cls


# --- NXAST_CONTROLLER2 ---------------------------------------------------------------------
# ext_action_header (type, len, NX vendor, subtype 37, 6 zero bytes), then properties, each
# (type, length = 4 + payload) + payload, padded to 8 bytes; OVS writes only the non-default
# ones, in type order: MAX_LEN (u16, default 65535), CONTROLLER_ID (u16, default 0), REASON (u8,
# default OFPR_ACTION), USERDATA (bytes), PAUSE (flag), METER_ID (u32, default 0 = none).
NXAC2PT_MAX_LEN, NXAC2PT_CONTROLLER_ID, NXAC2PT_REASON, NXAC2PT_USERDATA, NXAC2PT_PAUSE, NXAC2PT_METER_ID = range(6)
NX_CTLR_NO_METER = 0
_PROP_HEAD = struct.Struct("!HH")
_OSKEN_CONTROLLER2 = _PARSER.NXActionController2


def _prop(ptype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return _PROP_HEAD.pack(ptype, n) + payload + bytes(-n % 8)


class NXActionController2(_OSKEN_CONTROLLER2):
    """NXAST_CONTROLLER2 as OVS encodes (``encode_CONTROLLER``) and decodes it: every property,
    ``meter_id`` included; ``userdata`` is bytes. Unknown properties are kept, (type, payload)."""

    def __init__(self, max_len=0xFFFF, controller_id=0, reason=_OFP.OFPR_ACTION, userdata=b"", pause=False,
                 meter_id=NX_CTLR_NO_METER, unknown=(), type_=None, len_=None, vendor=None, subtype=None):
        _PARSER.NXAction.__init__(self)
        self.max_len, self.controller_id, self.reason = max_len, controller_id, reason
        self.userdata, self.pause = bytes(userdata), bool(pause)
        self.meter_id, self.unknown = meter_id or NX_CTLR_NO_METER, tuple(unknown)

    @classmethod
    def parser(cls, buf):
        kw: dict[str, Any] = {}
        unknown = []
        off, end = 6, len(buf)      # after the subtype: 6 zero bytes, then the properties
        while off + 4 <= end:
            ptype, plen = _PROP_HEAD.unpack_from(buf, off)
            if plen < 4:
                break
            payload = bytes(buf[off + 4:off + plen])
            if ptype == NXAC2PT_MAX_LEN and len(payload) >= 2:
                kw["max_len"] = int.from_bytes(payload[:2], "big")
            elif ptype == NXAC2PT_CONTROLLER_ID and len(payload) >= 2:
                kw["controller_id"] = int.from_bytes(payload[:2], "big")
            elif ptype == NXAC2PT_REASON and payload:
                kw["reason"] = payload[0]
            elif ptype == NXAC2PT_USERDATA:
                kw["userdata"] = payload
            elif ptype == NXAC2PT_PAUSE:
                kw["pause"] = True
            elif ptype == NXAC2PT_METER_ID and len(payload) == 4:
                kw["meter_id"] = int.from_bytes(payload, "big")
            else:
                unknown.append((ptype, payload))
            off += (plen + 7) // 8 * 8
        return cls(unknown=unknown, **kw)

    def serialize_body(self):
        out = [bytes(6)]
        if self.max_len != 0xFFFF:
            out.append(_prop(NXAC2PT_MAX_LEN, self.max_len.to_bytes(2, "big")))
        if self.controller_id:
            out.append(_prop(NXAC2PT_CONTROLLER_ID, self.controller_id.to_bytes(2, "big")))
        if self.reason != _OFP.OFPR_ACTION:
            out.append(_prop(NXAC2PT_REASON, bytes([self.reason])))
        if self.userdata:
            out.append(_prop(NXAC2PT_USERDATA, self.userdata))
        if self.pause:
            out.append(_prop(NXAC2PT_PAUSE, b""))
        if self.meter_id != NX_CTLR_NO_METER:
            out.append(_prop(NXAC2PT_METER_ID, self.meter_id.to_bytes(4, "big")))
        out += [_prop(t, p) for t, p in self.unknown]
        return b"".join(out)     # 6 + whole properties: the action stays a multiple of 8


def use_controller2_parser() -> bool:
    """Make os-ken parse NXAST_CONTROLLER2 with ``NXActionController2`` above (os-ken's own
    class raises on a meter_id property). Returns whether it is in use."""
    subtypes = _PARSER.NXAction._subtypes
    if subtypes.get(nicira_ext.NXAST_CONTROLLER2) not in (_OSKEN_CONTROLLER2, NXActionController2):
        return False    # not the os-ken this was written for: leave it alone
    subtypes[nicira_ext.NXAST_CONTROLLER2] = NXActionController2
    return True


use_controller2_parser()


def _osken_field(name: str) -> str:
    try:
        return _OSKEN_FIELD[name]
    except KeyError:
        raise ValueError(f"set_field/move field {name!r} has no os-ken name here yet") from None


def _osken_set_value(name: str, value):
    """A model set_field value as os-ken takes it for that field (generic fields: base64 bytes)."""
    size = _GENERIC_SET_FIELDS.get(name)
    if size is None:
        return value
    return base64.b64encode(value.to_bytes(size, "big")).decode("ascii")


def _move_side(side) -> tuple[str, int]:
    if isinstance(side, BitField):
        return side.space, side.start
    return _osken_field(side), 0


def _move_bits(side) -> int:
    return side.width if isinstance(side, BitField) else SET_FIELDS[side][1]


class Wire:
    """Builds os-ken messages for one datapath (or any object with ``.ofproto`` and
    ``.ofproto_parser`` of OpenFlow 1.3, e.g. ``standin_datapath()`` in tests)."""

    def __init__(self, datapath):
        self.datapath = datapath
        self.ofp = datapath.ofproto
        self.parser = datapath.ofproto_parser
        if self.ofp.OFP_VERSION != _OFP.OFP_VERSION:
            raise ValueError(f"ofwire speaks OpenFlow 1.3 only, datapath has version {self.ofp.OFP_VERSION:#x}")

    # --- flows ---
    def match(self, match: Match):
        return self.parser.OFPMatch(**_match_kwargs(match))

    def actions(self, actions: Iterable) -> list:
        """os-ken actions for model actions (no Goto: that is an instruction)."""
        out: list = []
        for a in actions:
            encoded = self._action(a)
            out.extend(encoded if isinstance(encoded, list) else [encoded])
        return out

    def _action(self, a):
        p, ofp = self.parser, self.ofp
        if isinstance(a, Output):
            if isinstance(a.port, BitField):
                return p.NXActionOutputReg(ofs_nbits=nicira_ext.ofs_nbits(a.port.start, a.port.end),
                                           src=a.port.space, max_len=OUTPUT_REG_MAX_LEN)
            return p.OFPActionOutput(_SPECIAL_PORTS.get(a.port, a.port), 0)
        if isinstance(a, SetField):
            return p.OFPActionSetField(**{_osken_field(a.field): _osken_set_value(a.field, a.value)})
        if isinstance(a, Load):
            return _load(p, a.field, a.value)
        if isinstance(a, Move):
            (src, src_ofs), (dst, dst_ofs) = _move_side(a.src), _move_side(a.dst)
            return p.NXActionRegMove(src_field=src, dst_field=dst, n_bits=_move_bits(a.src),
                                     src_ofs=src_ofs, dst_ofs=dst_ofs)
        if isinstance(a, Resubmit):
            return p.NXActionResubmitTable(in_port=0xFFF8, table_id=table_id(a.table))
        if isinstance(a, Ct):
            if isinstance(a.zone, BitField):
                zone_src, zone = a.zone.space, nicira_ext.ofs_nbits(a.zone.start, a.zone.end)
            else:
                zone_src, zone = "", a.zone or 0
            nested = []
            if a.nat is not None:
                nested.append(self._nat(a.nat))
            nested += self.actions(a.exec_)   # load, set_field and move into ct_mark/ct_label
            return p.NXActionCT(flags=nicira_ext.NX_CT_F_COMMIT if a.commit else 0,
                                zone_src=zone_src, zone_ofs_nbits=zone,
                                recirc_table=nicira_ext.NX_CT_RECIRC_NONE if a.table is None else table_id(a.table),
                                alg=0, actions=nested)
        if isinstance(a, DecTtl):
            return p.OFPActionDecNwTtl()
        if isinstance(a, PushVlan):
            return p.OFPActionPushVlan(a.ethertype)
        if isinstance(a, PopVlan):
            return p.OFPActionPopVlan()
        if isinstance(a, GroupAction):
            return p.OFPActionGroup(a.group_id)
        if isinstance(a, Conjunction):
            return p.NXActionConjunction(clause=a.clause - 1, n_clauses=a.n_clauses, id_=a.conj_id)
        if isinstance(a, Controller):   # as OVS: CONTROLLER2 only when OUTPUT cannot say it
            if a.userdata or a.meter_id is not None:
                return NXActionController2(max_len=a.max_len, userdata=a.userdata,
                                           meter_id=a.meter_id or NX_CTLR_NO_METER)
            return p.OFPActionOutput(ofp.OFPP_CONTROLLER, a.max_len)
        if isinstance(a, Learn):
            return self._learn(a)
        if isinstance(a, Multipath):
            return p.NXActionMultipath(fields=MULTIPATH_FIELDS[a.fields], basis=a.basis,
                                       algorithm=nicira_ext.NX_MP_ALG_MODULO_N, max_link=a.n_links - 1, arg=0,
                                       ofs_nbits=nicira_ext.ofs_nbits(a.dst.start, a.dst.end), dst=a.dst.space)
        if isinstance(a, Goto):
            raise ValueError("goto_table is an instruction, not an action (only last in a flow)")
        raise ValueError(f"no os-ken encoding for action {a!r}")

    def _learn(self, a: Learn):
        """NXAST_LEARN: fixed match values, fields copied from the packet, loads."""
        p, specs = self.parser, []

        def ref(side):   # (os-ken field name, bit offset), n_bits
            if isinstance(side, BitField):
                return (side.space, side.start), side.width
            if side in _LEARN_OSKEN:
                return (_LEARN_OSKEN[side], 0), LEARN_MATCH_FIELDS[side][1]
            return (side, 0), 48          # eth_src / eth_dst
        for name, value in a.fixed:
            specs.append(p.NXFlowSpecMatch(src=value, dst=(_LEARN_FIXED[name][0], 0), n_bits=_LEARN_FIXED[name][1]))
        for c in a.copied:
            (dst, bits), (src, _) = ref(c[0] if isinstance(c, tuple) else c), ref(c[1] if isinstance(c, tuple) else c)
            specs.append(p.NXFlowSpecMatch(src=src, dst=dst, n_bits=bits))
        for ld in a.loads:
            (src, bits), (dst, _) = ref(ld[0] if isinstance(ld, tuple) else ld), ref(ld[1] if isinstance(ld, tuple) else ld)
            specs.append(p.NXFlowSpecLoad(src=src, dst=dst, n_bits=bits))
        for f, value in a.load_values:
            specs.append(p.NXFlowSpecLoad(src=value, dst=(f.space, f.start), n_bits=f.width))
        return p.NXActionLearn(table_id=table_id(a.table), specs=specs, idle_timeout=a.idle_timeout,
                               hard_timeout=0, priority=a.priority, cookie=a.cookie, flags=0,
                               fin_idle_timeout=0, fin_hard_timeout=0)

    def _nat(self, nat):
        kw: dict[str, Any] = {"flags": 0}
        if nat.kind is not None:
            kw["flags"] = NX_NAT_F_SRC if nat.kind == "src" else NX_NAT_F_DST
            kw["range_ipv4_min" if netaddr.IPAddress(nat.addr).version == 4 else "range_ipv6_min"] = nat.addr
            if nat.port is not None:
                kw["range_proto_min"] = nat.port
        return _padded_nat_class(self.parser)(**kw)

    def instructions(self, actions: Iterable) -> list:
        actions = tuple(actions)
        goto = actions[-1] if actions and isinstance(actions[-1], Goto) else None
        body = actions[:-1] if goto is not None else actions
        out = []
        if body:
            out.append(self.parser.OFPInstructionActions(self.ofp.OFPIT_APPLY_ACTIONS, self.actions(body)))
        if goto is not None:
            out.append(self.parser.OFPInstructionGotoTable(table_id(goto.table)))
        return out

    def flow_mod(self, flow: Flow, command: str = "add"):
        """OFPFlowMod for ``command`` in add | modify_strict | delete_strict (flags 0)."""
        try:
            cmd = FLOW_COMMANDS[command]
        except KeyError:
            raise ValueError(f"bad flow command {command!r} (use {', '.join(FLOW_COMMANDS)})") from None
        try:
            match = self.match(flow.match)
            instructions = [] if command == "delete_strict" else self.instructions(flow.actions)
            tid = table_id(flow.table)
        except (ValueError, KeyError) as exc:
            raise UnsupportedFlow(f"cannot encode flow [{render_flow(flow)}]: {exc}") from exc
        return self.parser.OFPFlowMod(
            self.datapath, cookie=flow.cookie, cookie_mask=0, table_id=tid, command=cmd,
            idle_timeout=0, hard_timeout=0, priority=flow.priority, buffer_id=self.ofp.OFP_NO_BUFFER,
            out_port=self.ofp.OFPP_ANY, out_group=self.ofp.OFPG_ANY, flags=0,
            match=match, instructions=instructions)

    def delete_by_cookie(self, cookie: int, mask: int):
        """OFPFC_DELETE of every flow, in all tables, whose cookie & mask == cookie & mask."""
        return self.parser.OFPFlowMod(
            self.datapath, cookie=cookie & mask, cookie_mask=mask, table_id=self.ofp.OFPTT_ALL,
            command=self.ofp.OFPFC_DELETE, buffer_id=self.ofp.OFP_NO_BUFFER,
            out_port=self.ofp.OFPP_ANY, out_group=self.ofp.OFPG_ANY, flags=0,
            match=self.parser.OFPMatch(), instructions=[])

    def delete_stats_strict(self, entry):
        """OFPFC_DELETE_STRICT of the flow entry a dump reported (any cookie)."""
        return self.parser.OFPFlowMod(
            self.datapath, cookie=0, cookie_mask=0, table_id=entry.table_id,
            command=self.ofp.OFPFC_DELETE_STRICT, priority=entry.priority,
            buffer_id=self.ofp.OFP_NO_BUFFER, out_port=self.ofp.OFPP_ANY, out_group=self.ofp.OFPG_ANY,
            flags=0, match=entry.match, instructions=[])

    def drop_everything(self) -> list:
        """For a bridge no Node claims: delete every flow, then one table-0 miss that drops."""
        delete_all = self.delete_by_cookie(0, 0)
        drop = self.parser.OFPFlowMod(
            self.datapath, cookie=0, cookie_mask=0, table_id=0, command=self.ofp.OFPFC_ADD,
            priority=0, buffer_id=self.ofp.OFP_NO_BUFFER, out_port=self.ofp.OFPP_ANY,
            out_group=self.ofp.OFPG_ANY, flags=0, match=self.parser.OFPMatch(), instructions=[])
        return [delete_all, drop]

    # --- groups and meters ---
    def group_mod(self, group: Group, command: str = "add"):
        """OFPGroupMod for ``command`` in add | modify | delete. Select buckets default to weight 1
        (as ovs-ofctl), other types use weight 0."""
        if command not in GROUP_COMMANDS:
            raise ValueError(f"bad group command {command!r} (use {', '.join(GROUP_COMMANDS)})")
        buckets = []
        if command != "delete":
            for b in group.buckets:
                try:
                    actions = self.actions(b.actions)
                except ValueError as exc:
                    raise UnsupportedFlow(f"cannot encode group {group.group_id}: {exc}") from exc
                weight = b.weight if b.weight is not None else (1 if group.type == "select" else 0)
                buckets.append(self.parser.OFPBucket(weight=weight, watch_port=self.ofp.OFPP_ANY,
                                                     watch_group=self.ofp.OFPG_ANY, actions=actions))
        return self.parser.OFPGroupMod(self.datapath, GROUP_COMMANDS[command], GROUP_TYPES[group.type],
                                       group.group_id, buckets)

    def group_delete(self, group_id: int):
        """OFPGC_DELETE of one group by id (what a dump reported; the switch also removes every
        flow that refers to it, OF1.3 §6.5). Deleting a group the switch lacks is no error."""
        return self.parser.OFPGroupMod(self.datapath, self.ofp.OFPGC_DELETE, self.ofp.OFPGT_ALL, group_id, [])

    def meter_mod(self, meter: Meter, command: str = "add"):
        """OFPMeterMod for ``command`` in add | modify | delete: one drop band."""
        if command not in METER_COMMANDS:
            raise ValueError(f"bad meter command {command!r} (use {', '.join(METER_COMMANDS)})")
        flags = self.ofp.OFPMF_PKTPS if meter.unit == "pktps" else self.ofp.OFPMF_KBPS
        if meter.burst:
            flags |= self.ofp.OFPMF_BURST
        bands = [] if command == "delete" else [
            self.parser.OFPMeterBandDrop(rate=meter.rate, burst_size=meter.burst)]
        return self.parser.OFPMeterMod(self.datapath, METER_COMMANDS[command], flags,
                                       meter.meter_id, bands)


def standin_datapath(dpid: int = 1):
    """A connection-less datapath stand-in: enough for os-ken to build and serialize messages."""
    return SimpleNamespace(ofproto=_OFP, ofproto_parser=_PARSER, id=dpid)


_DEFAULT_WIRE = Wire(standin_datapath())


def osken_flow_mod(flow: Flow, command: str = "add", cookie: int | None = None) -> bytes:
    """``Wire.flow_mod(flow, command)`` serialised by os-ken (xid 0; ``cookie`` replaces the
    flow's when given): the reference the direct encoder must equal, and its fallback."""
    msg = _DEFAULT_WIRE.flow_mod(flow, command)
    if cookie is not None:
        msg.cookie = cookie
    msg.set_xid(0)
    msg.serialize()
    return bytes(msg.buf)


def osken_group_mod(group: Group, command: str = "add") -> bytes:
    """``Wire.group_mod(group, command)`` serialised by os-ken (xid 0): what the reconciler sends
    (``DatapathLink.bundle`` takes complete messages' bytes)."""
    msg = _DEFAULT_WIRE.group_mod(group, command)
    msg.set_xid(0)
    msg.serialize()
    return bytes(msg.buf)


def osken_group_delete(group_id: int) -> bytes:
    """``Wire.group_delete(group_id)`` serialised by os-ken (xid 0)."""
    msg = _DEFAULT_WIRE.group_delete(group_id)
    msg.set_xid(0)
    msg.serialize()
    return bytes(msg.buf)


__all__ = ["Wire", "UnsupportedFlow", "NXActionController2", "table_id", "standin_datapath", "osken_flow_mod",
           "use_controller2_parser", "FLOW_COMMANDS", "GROUP_COMMANDS", "METER_COMMANDS", "osken_group_mod",
           "osken_group_delete"]
