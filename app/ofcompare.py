"""Comparing flows: ours (the model, our flow-mod bytes) and what a switch reports.

``flow_signature(table_id, priority, cookie, match, instructions)`` is a hashable value computed
from os-ken objects, equally from the message we build and from an ``OFPFlowStats`` entry OVS
reports (``stats_signature(entry)``). Two signatures are equal iff the entries are the same flow
(table, priority, cookie, match with masks, instructions and actions) up to encoding. OVS does not
echo a flow byte for byte (OVS 3.1, on the whole test set: ``move`` comes back with NXM headers,
e.g. ``eth_src_nxm`` for the ``eth_src`` we sent; other OVS versions or other senders may also
change load encodings), so the signature is *semantic*:

  - match: every field becomes ``(canonical name, value & mask, mask or None)``, sorted by
    name. NXM aliases take their OXM name (``eth_src_nxm`` -> ``eth_src``, ``nd_target`` ->
    ``ipv6_nd_target``), fields os-ken only knows generically their OVS name (``field_524289``
    -> ``nd_reserved``), the 16-bit NXM ``in_port`` is widened to the 32-bit OXM port space,
    NXM ``vlan_tci`` is split into ``vlan_vid``/``vlan_pcp`` exactly as OVS does for OF1.3,
    an all-ones mask is dropped and an all-zero mask drops the field.
  - register writes: ``OFPActionSetField``, ``NXActionRegLoad`` (``value<<ofs`` within
    ``ofs_nbits``) and ``NXActionRegLoad2`` all become ``("set_field", field, value, mask)``
    (OVS echoes a load in the encoding it came in, but may switch a load to REG_LOAD2 or
    split it into 64-bit segments); consecutive writes to disjoint bits of one field merge.
  - ``OFPActionDecNwTtl``/``NXActionDecTtl``/``NXActionDecTtlCntIds([0])`` are one ``dec_ttl``;
    ``output:CONTROLLER``, ``NXActionController`` and ``NXActionController2`` (NXAST_CONTROLLER
    and CONTROLLER2, however many default properties the latter spells out) are one
    ``("controller", max_len, controller_id, reason, userdata, pause, meter_id)`` (meter 0 =
    none); ``max_len`` counts only for the controller; NXM field names in move/output-reg/ct zone
    and learn specs are canonicalised; ct() nested actions are normalised recursively.
  - instructions are ordered as OVS reports them (meter, apply, clear, write, write_metadata,
    goto); an empty APPLY_ACTIONS (``actions=drop``) is the same as none.
  - an action this module does not know still gets a stable signature (its os-ken JSON
    form), so an unexpected flow on the switch shows up as drift instead of an exception.

``key_of(table_id, priority, match)`` is the lookup key (OpenFlow's identity of a flow entry).

The audit and install paths do not build os-ken objects: ``flow_mod_identity(bytes)`` /
``entry_identity(raw ofp_flow_stats)`` / ``flow_identity(flow)`` give ``(key, signature)`` read
from the bytes, equal to ``stats_key`` / ``stats_signature`` of os-ken's parse of the same bytes
(tested on every test flow, on the other encodings a switch may echo, and on what OVS reports);
``desired_key`` and ``desired_signature`` use it.

Groups: ``group_signature(group_id, type, buckets)`` (``group_stats_signature(entry)`` of an
``OFPGroupDescStats`` or our ``OFPGroupMod``, ``desired_group_signature(group)``) normalizes each
bucket's actions the same way; OVS echoes a group's buckets in order, with the watch port/group
it was given (ANY) and the weight (only select groups use it, so only theirs counts).
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterable

from os_ken.ofproto import ofproto_v1_3 as _OFP
from os_ken.ofproto import ofproto_v1_3_parser as _PARSER

from vpcnet.app.ofencode import (
    _ACTION_HEAD, _CACHE_LIMIT, _DIRECT_NUMS, _MATCH_HEAD, _NX_ID, _NXAST_CONTROLLER2, _NXAST_REG_LOAD,
    _NXAST_REG_MOVE, _OXM_BY_NUM, encode_flow_mod,
)
from vpcnet.app.ofwire import (
    _GENERIC_SET_FIELDS, _OSKEN_FIELD, NX_CTLR_NO_METER, NXActionController2, Wire, _vlan_oxm, standin_datapath,
)
from vpcnet.flows.model import Flow, Group
from vpcnet.flows.pipeline import PIPELINE

Signature = tuple
_GROUP_WIRE = Wire(standin_datapath())
# --- normalisation ---------------------------------------------------------------------------
_FIELD_SIZE = {f.name: getattr(f.type, "size", None) for f in _OFP.oxm_types}
_ALIASES = {"nd_target": "ipv6_nd_target", "nd_sll": "ipv6_nd_sll", "nd_tll": "ipv6_nd_tll",
            # OVS extension fields os-ken parses generically (field_<num>): their OVS names
            **{_OSKEN_FIELD[name]: name for name in _GENERIC_SET_FIELDS}}


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
    return _int_terms(name, *_oxm_ints(name, user_value))


def _int_terms(name: str, v: int, m: int, bits: int) -> list[tuple[str, int, int, int]]:
    """``_match_terms`` once the field is integers (value, mask, bit width): shared by the
    os-ken object path and the raw-bytes path (``_tlv_terms``)."""
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


def _norm_terms(terms) -> list[tuple[str, tuple]]:
    """[(canonical name, normalized term)] of _int_terms output (all-zero masks dropped)."""
    out = []
    for cname, v, m, bits in terms:
        full = (1 << bits) - 1
        m &= full
        if m == 0:
            continue
        out.append((cname, (cname, v & m, None if m == full else m)))
    return out


def normalize_match(match) -> tuple:
    """Sorted ((name, value, mask|None), ...) of an os-ken OFPMatch."""
    out = {}
    for name, uv in match.items():
        try:
            terms = _match_terms(name, uv)
        except Exception:  # noqa: BLE001 - a field os-ken cannot convert: compare it verbatim
            out[name] = (name, repr(uv), None)
            continue
        for cname, term in _norm_terms(terms):
            out[cname] = term
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


def _controller(max_len: int, controller_id: int = 0, reason: int = _OFP.OFPR_ACTION, userdata=b"",
                pause: bool = False, meter_id: int | None = NX_CTLR_NO_METER) -> tuple:
    """The one signature of a controller action, whichever of its encodings said it."""
    return ("controller", max_len, controller_id, reason, bytes(userdata or b""), bool(pause),
            meter_id or NX_CTLR_NO_METER)


def _normalize_action(a, ofp=_OFP) -> tuple:
    name = type(a).__name__
    if name == "OFPActionOutput":
        if a.port == ofp.OFPP_CONTROLLER:
            return _controller(a.max_len)
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
        return _controller(a.max_len, a.controller_id, a.reason)
    if name == "NXActionController2" and not getattr(a, "unknown", ()):
        # ours (every property an attribute) or os-ken's own class (only those it was given)
        return _controller(getattr(a, "max_len", 0xFFFF), getattr(a, "controller_id", 0),
                           getattr(a, "reason", ofp.OFPR_ACTION), getattr(a, "userdata", b""),
                           getattr(a, "pause", False), getattr(a, "meter_id", NX_CTLR_NO_METER))
    if name == "NXActionMultipath":
        return ("multipath", a.fields, a.basis, a.algorithm, a.max_link, a.arg, _canon_name(a.dst),
                *_ofs_nbits(a.ofs_nbits))
    if name == "NXActionLearn":
        return ("learn", a.table_id, a.idle_timeout, a.hard_timeout, a.priority, a.cookie, a.flags,
                a.fin_idle_timeout, a.fin_hard_timeout, tuple(_learn_spec(x) for x in a.specs))
    return _jsonish(a)


def _learn_spec(spec) -> tuple:
    """One learn spec with canonical field names (OVS echoes NXM headers: ``eth_type_nxm``)."""
    def side(v):
        return (_canon_name(v[0]), v[1]) if isinstance(v, (tuple, list)) else ("imm", v)
    return (type(spec).__name__, side(spec.src), side(spec.dst) if spec.dst != "" else None, spec.n_bits)


def normalize_actions(actions: Iterable) -> tuple:
    return _merge_actions(_normalize_action(a) for a in actions)


def _merge_actions(normalized: Iterable[tuple]) -> tuple:
    """The normalized actions, with consecutive writes to disjoint bits of one field merged."""
    out: list[tuple] = []
    for n in normalized:
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


# --- identity from bytes (the audit path) --------------------------------------------------------
# ``flow_mod_identity(bytes)`` / ``entry_identity(bytes)`` give ``(key, signature)`` of a flow-mod
# we encoded or of a raw ofp_flow_stats entry the switch reported, equal to ``stats_key`` /
# ``stats_signature`` of the same bytes parsed by os-ken (tested on every test flow and on what
# OVS echoes), without os-ken objects: match fields and the common actions (output, set_field,
# reg_load, reg_move) are read here, every other action or field is parsed by os-ken and
# normalised by the functions above. Results are cached per field TLV and per action bytes.
_FLOW_MOD_FIXED = struct.Struct("!2xH4xQ8xB5xH")                 # length, cookie, table_id, priority
_FLOW_STATS_FIXED = struct.Struct("!HB9xH10xQ")                  # length, table_id, priority, cookie
_ACTION_KINDS = {_OFP.OFPIT_APPLY_ACTIONS: "apply", _OFP.OFPIT_WRITE_ACTIONS: "write",
                 _OFP.OFPIT_CLEAR_ACTIONS: "clear"}
_U32 = struct.Struct("!I")
_NX_MOVE_RAW = struct.Struct("!HHHII")                           # n_bits, src_ofs, dst_ofs, src, dst
_NX_LOAD_RAW = struct.Struct("!HIQ")                             # ofs_nbits, dst, value
_OUTPUT_RAW = struct.Struct("!IH")                               # port, max_len
_EXP_RAW = struct.Struct("!IH")                                  # experimenter, subtype
_TLV_TERMS: dict[bytes, tuple] = {}
_ACTION_NORMS: dict[bytes, tuple] = {}


def _tlv_ints(tlv: bytes, at: int = 0):
    """(os-ken name, value, mask, bits, TLV length) of a plain OXM/NXM TLV, or None (os-ken's turn)."""
    header = int.from_bytes(tlv[at:at + 4], "big")
    info = _DIRECT_NUMS.get(header >> 9)
    if info is None:
        return None
    name, size = info
    length = header & 0xFF
    if length != (2 * size if header & 0x100 else size) or len(tlv) < at + 4 + length:
        return None
    v = int.from_bytes(tlv[at + 4:at + 4 + size], "big")
    m = int.from_bytes(tlv[at + 4 + size:at + 4 + length], "big") if header & 0x100 else (1 << 8 * size) - 1
    return name, v, m, 8 * size, 4 + length


def _tlv_terms(tlv: bytes) -> tuple:
    """Normalized (canonical name, term) pairs of one match TLV (as normalize_match)."""
    hit = _TLV_TERMS.get(tlv)
    if hit is not None:
        return hit
    got = _tlv_ints(tlv)
    if got is not None:
        name, v, m, bits, _ = got
        out = tuple(_norm_terms(_int_terms(name, v, m, bits)))
    else:
        n, value, mask, _ = _OFP.oxm_parse(tlv, 0)
        name, uv = _OFP.oxm_to_user(n, value, mask)
        try:
            out = tuple(_norm_terms(_match_terms(name, uv)))
        except Exception:  # noqa: BLE001 - as normalize_match: compare it verbatim
            out = ((name, (name, repr(uv), None)),)
    if len(_TLV_TERMS) >= _CACHE_LIMIT:
        _TLV_TERMS.clear()
    _TLV_TERMS[tlv] = out
    return out


def _raw_match(buf, off: int) -> tuple[tuple, int]:
    """(normalized match, padded length) of the ofp_match at ``off``."""
    mtype, mlen = _MATCH_HEAD.unpack_from(buf, off)
    if mtype != _OFP.OFPMT_OXM or mlen < 4:
        raise ValueError(f"not an OXM match (type {mtype}, length {mlen})")
    out = {}
    p, end = off + 4, off + mlen
    while p < end:
        tlv = bytes(buf[p:p + 4 + buf[p + 3]])
        for cname, term in _tlv_terms(tlv):
            out[cname] = term
        p += len(tlv)
    return tuple(out[k] for k in sorted(out)), (mlen + 7) // 8 * 8


def _action_norm(raw: bytes) -> tuple:
    """Normalized form of one action's bytes (as _normalize_action of os-ken's parse)."""
    hit = _ACTION_NORMS.get(raw)
    if hit is not None:
        return hit
    out = None
    atype = int.from_bytes(raw[:2], "big")
    if atype == _OFP.OFPAT_OUTPUT and len(raw) == 16:
        port, max_len = _OUTPUT_RAW.unpack_from(raw, 4)
        out = _controller(max_len) if port == _OFP.OFPP_CONTROLLER else ("output", port)
    elif atype == _OFP.OFPAT_SET_FIELD:
        got = _tlv_ints(raw, 4)
        if got is not None and 4 + got[4] <= len(raw):
            name, v, m, _, _ = got
            out = _set_field(name, v, m)
    elif atype == 0xFFFF and len(raw) >= 16:
        vendor, subtype = _EXP_RAW.unpack_from(raw, 4)
        if vendor == _NX_ID and subtype == _NXAST_REG_LOAD and len(raw) == 24:
            ofs_nbits, dst, value = _NX_LOAD_RAW.unpack_from(raw, 10)
            f = _OXM_BY_NUM.get(dst >> 9)
            if f is not None:
                ofs, nbits = _ofs_nbits(ofs_nbits)
                out = _set_field(f.name, value << ofs, ((1 << nbits) - 1) << ofs)
        elif vendor == _NX_ID and subtype == _NXAST_REG_MOVE and len(raw) == 24:
            n_bits, src_ofs, dst_ofs, src, dst = _NX_MOVE_RAW.unpack_from(raw, 10)
            fs, fd = _OXM_BY_NUM.get(src >> 9), _OXM_BY_NUM.get(dst >> 9)
            if (fs is not None and fd is not None and not (src | dst) & 0x100 and src & 0xFF and dst & 0xFF
                    and (src >> 16) != 0xFFFF and (dst >> 16) != 0xFFFF):
                out = ("move", _canon_name(fs.name), src_ofs, _canon_name(fd.name), dst_ofs, n_bits)
        elif vendor == _NX_ID and subtype == _NXAST_CONTROLLER2:   # whatever os-ken's parser is
            a = NXActionController2.parser(raw[10:])
            a.len = len(raw)       # as os-ken's OFPActionExperimenter.parser sets it
            out = _normalize_action(a)
    if out is None:   # everything else: os-ken parses it, _normalize_action normalizes it
        out = _normalize_action(_PARSER.OFPAction.parser(raw, 0))
    if len(_ACTION_NORMS) >= _CACHE_LIMIT:
        _ACTION_NORMS.clear()
    _ACTION_NORMS[raw] = out
    return out


def _raw_instructions(buf, p: int, end: int) -> tuple:
    out = []
    while p < end:
        itype, ilen = _ACTION_HEAD.unpack_from(buf, p)
        if ilen < 8 or p + ilen > end:
            raise ValueError(f"bad instruction length {ilen}")
        kind = _ACTION_KINDS.get(itype)
        if kind is not None:
            norms, q, stop = [], p + 8, p + ilen
            while q + 4 <= stop:
                alen = int.from_bytes(buf[q + 2:q + 4], "big")
                if alen < 8 or q + alen > stop:
                    raise ValueError(f"bad action length {alen}")
                norms.append(_action_norm(bytes(buf[q:q + alen])))
                q += alen
            acts = _merge_actions(norms)
            if not (kind == "apply" and not acts):
                out.append((kind, acts) if kind != "clear" else ("clear",))
        elif itype == _OFP.OFPIT_GOTO_TABLE:
            out.append(("goto", buf[p + 4]))
        else:   # meter, write_metadata, anything else: as normalize_instructions on os-ken's parse
            out.extend(normalize_instructions([_PARSER.OFPInstruction.parser(bytes(buf[p:p + ilen]), 0)]))
        p += ilen
    if len(out) > 1:
        out.sort(key=_instruction_rank)
    return tuple(out)


def _instruction_rank(ins: tuple) -> int:
    return _INSTRUCTION_ORDER.get(ins[0], 9)


def _raw_identity(table: int, priority: int, cookie: int, buf, off: int, end: int) -> tuple[tuple, Signature]:
    match, mlen = _raw_match(buf, off)
    return (table, priority, match), (table, priority, cookie, match, _raw_instructions(buf, off + mlen, end))


def flow_mod_identity(msg: bytes) -> tuple[tuple, Signature]:
    """(key, signature) of an OFPT_FLOW_MOD's bytes (e.g. ``encode_flow_mod``): what OVS reports
    for that flow once it is installed, as ``stats_key``/``stats_signature`` would compute it."""
    length, cookie, table, priority = _FLOW_MOD_FIXED.unpack_from(msg, 0)
    return _raw_identity(table, priority, cookie, msg, 48, length)


def entry_identity(raw: bytes) -> tuple[tuple, Signature]:
    """(key, signature) of one raw ofp_flow_stats entry; equal to ``stats_key(e)`` /
    ``stats_signature(e)`` of os-ken's parse ``e`` of the same bytes."""
    length, table, priority, cookie = _FLOW_STATS_FIXED.unpack_from(raw, 0)
    return _raw_identity(table, priority, cookie, raw, 48, length)


def flow_identity(flow: Flow, cookie: int | None = None) -> tuple[tuple, Signature]:
    """(key, signature) OVS reports for ``flow`` (cookie replaced when given) once installed."""
    return flow_mod_identity(encode_flow_mod(flow, "add", cookie))


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
    """The signature OVS reports for ``flow`` once ``Wire.flow_mod(flow, 'add')`` installed it
    (computed from the encoded bytes: ``flow_identity``)."""
    return flow_identity(flow)[1]


def desired_key(flow: Flow) -> tuple:
    return flow_identity(flow)[0]


# --- groups ------------------------------------------------------------------------------------
def group_signature(group_id: int, group_type: int, buckets) -> Signature:
    """Hashable, normalized description of a group entry, from os-ken objects: the buckets of an
    ``OFPGroupMod`` we build (``Wire.group_mod``) or of an ``OFPGroupDescStats`` OVS reports.
    Buckets keep their order (OVS keeps it and numbers them); each is (weight, watch port, watch
    group, normalized actions), the weight only for select groups (the others ignore it)."""
    select = group_type == _OFP.OFPGT_SELECT
    return ("group", group_id, group_type,
            tuple((b.weight if select else 0, b.watch_port, b.watch_group, normalize_actions(b.actions or ()))
                  for b in buckets))


def group_stats_signature(entry) -> Signature:
    """Signature of anything with group_id/type/buckets: an ``OFPGroupDescStats`` reply entry or
    an ``OFPGroupMod`` built by ``Wire.group_mod``."""
    return group_signature(entry.group_id, entry.type, entry.buckets)


def desired_group_signature(group: Group) -> Signature:
    """The signature OVS reports for ``group`` once ``Wire.group_mod(group, 'add')`` installed it."""
    return group_stats_signature(_GROUP_WIRE.group_mod(group, "add"))


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


__all__ = ["flow_signature", "key_of", "flow_mod_identity", "entry_identity", "flow_identity",
           "stats_signature", "stats_key", "desired_signature", "desired_key", "normalize_match",
           "normalize_actions", "normalize_instructions", "table_names", "describe_stats", "group_signature",
           "group_stats_signature", "desired_group_signature"]
