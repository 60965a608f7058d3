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
  Controller              ``OFPActionOutput(CONTROLLER, max_len)``
  Goto                    ``OFPInstructionGotoTable`` (other actions: one APPLY_ACTIONS)
  Resubmit                ``NXActionResubmitTable(in_port=IN_PORT)``
  Ct / Nat                ``NXActionCT`` with nested ``NXActionNAT`` then the exec() loads
  DecTtl                  ``OFPActionDecNwTtl``
  Push/PopVlan, Group     ``OFPActionPushVlan`` / ``OFPActionPopVlan`` / ``OFPActionGroup``
  Conjunction             ``NXActionConjunction`` (wire clause is 0-based: k-1)
  ======================  =====================================================================

  Matches are sent as OXM the way OVS itself encodes them for OpenFlow 1.3 (``dl_vlan`` and
  ``vlan_tci`` become ``vlan_vid``/``vlan_pcp``; ``tp_src`` becomes ``tcp_src``/``udp_src``/``sctp_src``
  and ``icmp_type`` ``icmpv4_type``/``icmpv6_type`` from the protocol; prefixes become value/mask).
  ``add`` sends flags 0 (never ``OFPFF_RESET_COUNTS``): re-adding an unchanged flow keeps its
  counters. ``modify_strict`` (OF1.3) replaces the instructions only and leaves the installed
  cookie alone, so a flow whose cookie must change is re-sent with ``add``.
  Anything the model allows but os-ken/OF1.3 cannot carry (``Controller(meter_id=..)``, a
  ``Goto`` inside a group bucket, a ``vlan_tci`` mask covering only part of the PCP bits) raises
  ``ValueError`` naming the flow. os-ken 4.2.2's ``NXActionNAT`` forgets its padding when it
  carries an address or port (OVS then rejects the flow); ``_padded_nat_class`` fixes that.

* **compare**: ``flow_signature(table_id, priority, cookie, match, instructions)`` is a hashable
  value computed from os-ken objects, equally from the message we build and from an
  ``OFPFlowStats`` entry OVS reports (``stats_signature(entry)``). Two signatures are equal iff
  the entries are the same flow (table, priority, cookie, match with masks, instructions and
  actions) up to encoding. OVS does not echo a flow byte for byte (OVS 3.1, on the whole test
  set: ``move`` comes back with NXM headers, e.g. ``eth_src_nxm`` for the ``eth_src`` we sent;
  other OVS versions or other senders may also change load encodings), so the signature is
  *semantic*:

  - match: every field becomes ``(canonical name, value & mask, mask or None)``, sorted by
    name. NXM aliases take their OXM name (``eth_src_nxm`` -> ``eth_src``, ``nd_target`` ->
    ``ipv6_nd_target``), the 16-bit NXM ``in_port`` is widened to the 32-bit OXM port space,
    NXM ``vlan_tci`` is split into ``vlan_vid``/``vlan_pcp`` exactly as OVS does for OF1.3,
    an all-ones mask is dropped and an all-zero mask drops the field.
  - register writes: ``OFPActionSetField``, ``NXActionRegLoad`` (``value<<ofs`` within
    ``ofs_nbits``) and ``NXActionRegLoad2`` all become ``("set_field", field, value, mask)``
    (OVS echoes a load in the encoding it came in, but may switch a load to REG_LOAD2 or
    split it into 64-bit segments); consecutive writes to disjoint bits of one field merge.
  - ``OFPActionDecNwTtl``/``NXActionDecTtl``/``NXActionDecTtlCntIds([0])`` are one ``dec_ttl``;
    ``output:CONTROLLER`` and ``NXActionController(reason=action,id=0)`` are one ``controller``;
    ``max_len`` counts only for the controller; NXM field names in move/output-reg/ct zone are
    canonicalised; ct() nested actions are normalised recursively.
  - instructions are ordered as OVS reports them (meter, apply, clear, write, write_metadata,
    goto); an empty APPLY_ACTIONS (``actions=drop``) is the same as none.
  - an action this module does not know still gets a stable signature (its os-ken JSON
    form), so an unexpected flow on the switch shows up as drift instead of an exception.

  ``key_of(table_id, priority, match)`` is the lookup key (OpenFlow's identity of a flow entry).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import netaddr
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as _OFP
from os_ken.ofproto import ofproto_v1_3_parser as _PARSER

from vpcnet.flows.fields import BitField
from vpcnet.flows.model import (
    ETH_IPV4, OFPP_IN_PORT, OFPP_LOCAL, SET_FIELDS, Conjunction, Controller, Ct, DecTtl,
    Flow, Goto, Group, GroupAction, Load, Match, Meter, Move, Output, PopVlan, PushVlan, Resubmit,
    SetField, parse_ct_state,
)
from vpcnet.flows.pipeline import PIPELINE
from vpcnet.flows.render import render_flow

Signature = tuple

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
# model set_field/move names (ovs-ofctl) -> os-ken OXM names
_OSKEN_FIELD = {"eth_src": "eth_src", "eth_dst": "eth_dst", "vlan_vid": "vlan_vid",
                "arp_op": "arp_op", "arp_spa": "arp_spa", "arp_tpa": "arp_tpa",
                "arp_sha": "arp_sha", "arp_tha": "arp_tha", "ip_src": "ipv4_src",
                "ip_dst": "ipv4_dst", "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst",
                "tcp_src": "tcp_src", "tcp_dst": "tcp_dst"}

# model match field -> os-ken OXM name (fields needing context are handled in _match_kwargs)
_MATCH_NAME = {"ct_state": "ct_state", "ct_zone": "ct_zone", "ct_mark": "ct_mark",
               "ct_label": "ct_label", "conj_id": "conj_id", "dl_type": "eth_type",
               "metadata": "metadata", "in_port": "in_port", "dl_src": "eth_src",
               "dl_dst": "eth_dst", "nw_src": "ipv4_src", "nw_dst": "ipv4_dst",
               "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst", "arp_spa": "arp_spa",
               "arp_tpa": "arp_tpa", "arp_sha": "arp_sha", "arp_tha": "arp_tha",
               "nw_proto": "ip_proto", "arp_op": "arp_op", "nd_target": "ipv6_nd_target",
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


def _match_kwargs(match: Match) -> dict:
    """os-ken OFPMatch keyword arguments for a model Match."""
    kw: dict[str, Any] = {}
    dl_type, nw_proto = match.get("dl_type"), match.get("nw_proto")
    for name, value in match.items():
        if name == "dl_vlan":
            kw.update(_vlan_oxm(0x1000 | value, 0x1FFF))
        elif name == "vlan_tci":
            kw.update(_vlan_oxm(*(value if isinstance(value, tuple) else (value, 0xFFFF))))
        elif name == "ct_state":
            flags = parse_ct_state(value)
            kw["ct_state"] = (sum(_CT_STATE_BITS[f] for f, on in flags.items() if on),
                              sum(_CT_STATE_BITS[f] for f in flags))
        elif name == "in_port":
            kw["in_port"] = _SPECIAL_PORTS.get(value, value)
        elif name in ("tp_src", "tp_dst"):
            kw[f"{_L4_PREFIX[nw_proto]}_{name[3:]}"] = value
        elif name in ("icmp_type", "icmp_code"):
            kw[f"icmpv{4 if dl_type == ETH_IPV4 else 6}_{name[5:]}"] = value
        elif name not in _MATCH_NAME:
            raise ValueError(f"match field {name!r} has no os-ken encoding here yet")
        elif name in ("nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "arp_spa", "arp_tpa", "nd_target"):
            kw[_MATCH_NAME[name]] = _ip_value(value)
        else:
            kw[_MATCH_NAME[name]] = value
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


def _osken_field(name: str) -> str:
    try:
        return _OSKEN_FIELD[name]
    except KeyError:
        raise ValueError(f"set_field/move field {name!r} has no os-ken name here yet") from None


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
            return p.OFPActionSetField(**{_osken_field(a.field): a.value})
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
            for x in a.exec_:
                nested += _load(p, x.field, x.value)
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
        if isinstance(a, Controller):
            if a.meter_id is not None:
                raise ValueError("controller(meter_id=..) needs NXAST_CONTROLLER2 with a meter "
                                 "property, which os-ken does not provide")
            return p.OFPActionOutput(ofp.OFPP_CONTROLLER, a.max_len)
        if isinstance(a, Goto):
            raise ValueError("goto_table is an instruction, not an action (only last in a flow)")
        raise ValueError(f"no os-ken encoding for action {a!r}")

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


# --- normalisation ---------------------------------------------------------------------------
_FIELD_SIZE = {f.name: getattr(f.type, "size", None) for f in _OFP.oxm_types}
_ALIASES = {"nd_target": "ipv6_nd_target", "nd_sll": "ipv6_nd_sll", "nd_tll": "ipv6_nd_tll"}


def _canon_name(name: str) -> str:
    """os-ken field name -> the name used in signatures (OXM name when NXM has an alias)."""
    if name in _ALIASES:
        return _ALIASES[name]
    if name.endswith("_nxm") and name[:-4] in _FIELD_SIZE:
        return name[:-4]
    return name


def _oxm_ints(name: str, user_value) -> tuple[int, int, int]:
    """(value, mask, bit width) as integers for an os-ken (name, user value)."""
    _, value, mask = _OFP.oxm_from_user(name, user_value)
    bits = len(value) * 8
    v = int.from_bytes(bytes(value), "big")
    m = int.from_bytes(bytes(mask), "big") if mask is not None else (1 << bits) - 1
    return v, m, bits


def _match_terms(name: str, user_value) -> list[tuple[str, int, int, int]]:
    """One os-ken match field -> [(canonical name, value, mask, bits)]."""
    v, m, bits = _oxm_ints(name, user_value)
    if name == "vlan_tci":  # NXM; OVS reports it as vlan_vid (+ vlan_pcp) in OF1.2+
        try:
            split = _vlan_oxm(v & m, m)
        except ValueError:  # a PCP mask OXM cannot express: keep the NXM field as it is
            return [("vlan_tci", v, m, 16)]
        terms = []
        for n, x in split.items():
            width = 13 if n == "vlan_vid" else 3
            xv, xm = x if isinstance(x, tuple) else (x, (1 << width) - 1)
            terms.append((n, xv, xm, width))
        return terms
    cname = _canon_name(name)
    if cname == "in_port" and bits == 16:  # NXM in_port: 16-bit port space
        v = v | 0xFFFF0000 if v >= 0xFF00 else v
        m, bits = 0xFFFFFFFF, 32
    if cname == "vlan_vid":
        bits = 13
    return [(cname, v, m, bits)]


def normalize_match(match) -> tuple:
    """Sorted ((name, value, mask|None), ...) of an os-ken OFPMatch."""
    out = {}
    for name, uv in match.items():
        try:
            terms = _match_terms(name, uv)
        except Exception:  # noqa: BLE001 - a field os-ken cannot convert: compare it verbatim
            out[name] = (name, repr(uv), None)
            continue
        for cname, v, m, bits in terms:
            full = (1 << bits) - 1
            m &= full
            if m == 0:
                continue
            out[cname] = (cname, v & m, None if m == full else m)
    return tuple(out[k] for k in sorted(out))


def _ofs_nbits(ofs_nbits: int) -> tuple[int, int]:
    return ofs_nbits >> 6, (ofs_nbits & 0x3F) + 1


def _set_field(name: str, value: int, mask: int) -> tuple:
    return ("set_field", _canon_name(name), value & mask, mask)


def _jsonish(a) -> tuple:
    try:
        text = json.dumps(a.to_jsondict(), sort_keys=True, default=str)
    except Exception:  # noqa: BLE001 - any object must still get a stable signature
        text = repr(sorted(vars(a).items(), key=lambda kv: kv[0]))
    return ("other", type(a).__name__, text)


def _normalize_action(a, ofp=_OFP) -> tuple:
    name = type(a).__name__
    if name == "OFPActionOutput":
        if a.port == ofp.OFPP_CONTROLLER:
            return ("controller", a.max_len, 0, ofp.OFPR_ACTION)
        return ("output", a.port)
    if name == "OFPActionSetField":
        v, m, _ = _oxm_ints(a.key, a.value)
        return _set_field(a.key, v, m)
    if name == "NXActionRegLoad":
        ofs, nbits = _ofs_nbits(a.ofs_nbits)
        mask = ((1 << nbits) - 1) << ofs
        return _set_field(a.dst, a.value << ofs, mask)
    if name == "NXActionRegLoad2":
        v, m, _ = _oxm_ints(a.dst, a.value if a.mask is None else (a.value, a.mask))
        return _set_field(a.dst, v, m)
    if name == "NXActionRegMove":
        return ("move", _canon_name(a.src_field), a.src_ofs, _canon_name(a.dst_field), a.dst_ofs, a.n_bits)
    if name in ("NXActionOutputReg", "NXActionOutputReg2"):
        return ("output_reg", _canon_name(a.src), *_ofs_nbits(a.ofs_nbits))
    if name == "NXActionResubmitTable":
        return ("resubmit", a.in_port, a.table_id)
    if name == "NXActionResubmit":
        return ("resubmit", a.in_port, 0xFF)
    if name == "NXActionCT":
        zone = ("imm", a.zone_ofs_nbits) if not a.zone_src else (
            _canon_name(a.zone_src), *_ofs_nbits(a.zone_ofs_nbits))
        return ("ct", a.flags, zone, a.recirc_table, a.alg, normalize_actions(a.actions))
    if name == "NXActionNAT":
        return ("nat", a.flags, a.range_ipv4_min or None, a.range_ipv4_max or None,
                a.range_ipv6_min or None, a.range_ipv6_max or None,
                a.range_proto_min, a.range_proto_max)
    if name in ("OFPActionDecNwTtl", "NXActionDecTtl"):
        return ("dec_ttl",)
    if name == "NXActionDecTtlCntIds" and list(a.cnt_ids) == [0]:
        return ("dec_ttl",)
    if name == "OFPActionPushVlan":
        return ("push_vlan", a.ethertype)
    if name == "OFPActionPopVlan":
        return ("pop_vlan",)
    if name == "OFPActionGroup":
        return ("group", a.group_id)
    if name == "NXActionConjunction":
        return ("conjunction", a.id, a.clause, a.n_clauses)
    if name == "NXActionController":
        return ("controller", a.max_len, a.controller_id, a.reason)
    return _jsonish(a)


def normalize_actions(actions: Iterable) -> tuple:
    out: list[tuple] = []
    for a in actions:
        n = _normalize_action(a)
        prev = out[-1] if out else None
        if (n[0] == "set_field" and prev is not None and prev[0] == "set_field"
                and prev[1] == n[1] and not prev[3] & n[3]):
            out[-1] = ("set_field", n[1], prev[2] | n[2], prev[3] | n[3])  # OVS may split a load
        else:
            out.append(n)
    return tuple(out)


_INSTRUCTION_ORDER = {"meter": 0, "apply": 1, "clear": 2, "write": 3, "write_metadata": 4, "goto": 5}


def normalize_instructions(instructions: Iterable, ofp=_OFP) -> tuple:
    out = []
    for ins in instructions:
        name = type(ins).__name__
        if name == "OFPInstructionActions":
            kind = {ofp.OFPIT_APPLY_ACTIONS: "apply", ofp.OFPIT_WRITE_ACTIONS: "write",
                    ofp.OFPIT_CLEAR_ACTIONS: "clear"}.get(ins.type)
            acts = normalize_actions(ins.actions or ())
            if kind == "apply" and not acts:
                continue
            out.append((kind, acts) if kind != "clear" else ("clear",))
        elif name == "OFPInstructionGotoTable":
            out.append(("goto", ins.table_id))
        elif name == "OFPInstructionWriteMetadata":
            out.append(("write_metadata", ins.metadata & ins.metadata_mask, ins.metadata_mask))
        elif name == "OFPInstructionMeter":
            out.append(("meter", ins.meter_id))
        else:
            out.append(_jsonish(ins))
    return tuple(sorted(out, key=lambda i: _INSTRUCTION_ORDER.get(i[0], 9)))


def key_of(table_id: int, priority: int, match) -> tuple:
    """(table_id, priority, normalized match): how OpenFlow identifies a flow entry."""
    return (table_id, priority, normalize_match(match))


def flow_signature(table_id: int, priority: int, cookie: int, match, instructions) -> Signature:
    """Hashable, normalized description of a flow entry; equal iff the flows are the same."""
    return (table_id, priority, cookie, normalize_match(match), normalize_instructions(instructions))


def stats_signature(entry) -> Signature:
    """Signature of anything with table_id/priority/cookie/match/instructions: an
    ``OFPFlowStats`` reply entry or an ``OFPFlowMod`` built by ``Wire.flow_mod``."""
    return flow_signature(entry.table_id, entry.priority, entry.cookie, entry.match, entry.instructions)


def stats_key(entry) -> tuple:
    return key_of(entry.table_id, entry.priority, entry.match)


def desired_signature(flow: Flow) -> Signature:
    """The signature OVS reports for ``flow`` once ``Wire.flow_mod(flow, 'add')`` installed it."""
    return stats_signature(_DEFAULT_WIRE.flow_mod(flow, "add"))


def desired_key(flow: Flow) -> tuple:
    return stats_key(_DEFAULT_WIRE.flow_mod(flow, "add"))


def table_names() -> dict[int, str]:
    """OpenFlow table number -> pipeline table name."""
    return {PIPELINE.id(name): name for name in PIPELINE.names()}


def describe_stats(entry) -> str:
    """One line for a flow entry that is not (exactly) ours: table, priority, cookie, normalized
    match and instructions. For humans (``vpcnet flows --installed``), not for parsing."""
    name = table_names().get(entry.table_id, str(entry.table_id))
    match = ",".join(f"{t[0]}={t[1:]}" for t in normalize_match(entry.match))
    return (f"cookie={entry.cookie:#x}, table={name}, priority={entry.priority}"
            f"{',' + match if match else ''} instructions={normalize_instructions(entry.instructions)}")


__all__ = ["Wire", "UnsupportedFlow", "table_id", "standin_datapath", "flow_signature", "key_of",
           "stats_signature", "stats_key", "desired_signature", "desired_key", "normalize_match",
           "table_names", "describe_stats",
           "normalize_actions", "normalize_instructions", "FLOW_COMMANDS", "GROUP_COMMANDS",
           "METER_COMMANDS"]
