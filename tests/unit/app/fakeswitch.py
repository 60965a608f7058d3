"""An in-process stand-in for an OpenFlow 1.3 switch behind an os-ken ``Datapath``, for the
unit tests of ``oflink`` and ``reconciler``.

``FakeDatapath`` has what ``DatapathLink`` uses of os-ken's Datapath (``ofproto``,
``ofproto_parser``, ``id``, ``send(bytes)``, ``send_msg(msg)``). Every buffer sent is split into
messages (a buffer must hold whole messages: that is checked) and handled like OVS would:
ONF bundles (open / add / commit / discard, atomic), flow-mods (add, delete_strict, delete by
cookie mask), group mods (add / modify / delete, in bundles too, answered as OVS does:
OFPGMFC_GROUP_EXISTS, OFPGMFC_UNKNOWN_GROUP; deleting a group deletes the flows naming it; with
``check_group_refs`` a flow naming a missing group is refused, OFPBAC_BAD_OUT_GROUP), barriers,
flow dumps and group dumps (OFPMP_GROUP_DESC). Replies are real os-ken message objects parsed from real
bytes and handed to ``link.on_reply`` / ``link.on_error`` synchronously, inside ``send`` (the
link registers every xid before it sends). Flows are keyed by (table, priority, set of match
TLVs) and dumped with their match fields in *reverse* order, as OVS also reorders them.
"""
from __future__ import annotations

import struct
from types import SimpleNamespace

from os_ken.ofproto import ofproto_common
from os_ken.ofproto import ofproto_parser as osken_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

HEADER = struct.Struct("!BBHI")
FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")
FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")
GROUP_MOD = struct.Struct("!HBxI")         # command, type, group_id (after the OF header)
GROUP_DESC = struct.Struct("!HBxI")        # length, type, group_id


def action_groups(ins: bytes) -> set[int]:
    """The group ids the OFPAT_GROUP actions of a flow's instructions name."""
    out, p = set(), 0
    while p + 8 <= len(ins):
        itype, ilen = struct.unpack_from("!HH", ins, p)
        if itype in (ofp.OFPIT_APPLY_ACTIONS, ofp.OFPIT_WRITE_ACTIONS):
            q = p + 8
            while q + 4 <= p + ilen:
                atype, alen = struct.unpack_from("!HH", ins, q)
                if atype == ofp.OFPAT_GROUP:
                    out.add(struct.unpack_from("!I", ins, q + 4)[0])
                q += alen
        p += ilen
    return out


def split_messages(buf: bytes) -> list[bytes]:
    out, off = [], 0
    while off < len(buf):
        length = HEADER.unpack_from(buf, off)[2]
        assert length >= 8 and off + length <= len(buf), "a buffer holds part of a message"
        out.append(buf[off:off + length])
        off += length
    return out


def match_tlvs(match: bytes) -> list[bytes]:
    mlen = struct.unpack_from("!HH", match, 0)[1]
    out, p = [], 4
    while p < mlen:
        n = 4 + match[p + 3]
        out.append(match[p:p + n])
        p += n
    return out


def match_bytes(tlvs: list[bytes]) -> bytes:
    body = b"".join(tlvs)
    n = 4 + len(body)
    return struct.pack("!HH", 1, n) + body + bytes(-n % 8)


def parse(buf: bytes, dp):
    version, msg_type, length, xid = HEADER.unpack_from(buf, 0)
    return osken_parser.msg(dp, version, msg_type, length, xid, buf)


class FakeDatapath:
    def __init__(self, dpid: int = 1):
        self.ofproto, self.ofproto_parser, self.id = ofp, parser, dpid
        self.link = None                 # set by the test: where replies go
        self.flows: dict[tuple, tuple] = {}   # (table, priority, frozenset(tlvs)) -> (cookie, tlvs, instructions)
        self.groups: dict[int, tuple[int, bytes]] = {}   # group id -> (type, buckets as sent)
        self.group_mods: list[tuple[int, int, bool]] = []   # (command, group id, in a bundle), as applied
        self.check_group_refs = False    # refuse a flow naming a missing group (OVS does)
        self.bundles: dict[int, list] = {}
        self.bundle_errors: dict[int, bool] = {}
        self.sent: list[bytes] = []      # every buffer, as given to send()
        self.messages: list[bytes] = []  # every message
        self.commits = 0
        self.discards = 0
        self.refuse = lambda flow_mod: False   # flow-mod bytes -> refuse it inside a bundle?
        self.alive = True
        self.reply_chunk = 7             # flow stats entries per reply message
        self.dumps: list[tuple[int, int]] = []   # (cookie, cookie_mask) of each flow-stats request
        self.deferred: list | None = None        # replies held back until flush(), when a list

    # --- what DatapathLink calls ---
    def send(self, buf, close_socket=False) -> bool:
        if not self.alive:
            return False
        buf = bytes(buf)
        self.sent.append(buf)
        for m in split_messages(buf):
            self.messages.append(m)
            self._handle(m)
        return True

    def send_msg(self, msg, close_socket=False) -> bool:
        msg.serialize()
        return self.send(bytes(msg.buf))

    # --- the switch ---
    def _reply(self, msg, more=False):
        if self.deferred is not None:
            self.deferred.append((msg, more))
        elif self.link is not None:
            self.link.on_reply(msg, more)

    def flush(self) -> int:
        """Deliver the replies held back (``deferred`` is a list while replies are held)."""
        held, self.deferred = self.deferred or [], []
        for msg, more in held:
            self.link.on_reply(msg, more)
        return len(held)

    def _error(self, xid: int, code: int = 1, type_: int = ofp.OFPET_BAD_REQUEST):
        err = SimpleNamespace(xid=xid, type=type_, code=code)
        if self.link is not None:
            self.link.on_error(err)

    def _handle(self, m: bytes) -> None:
        version, msg_type, length, xid = HEADER.unpack_from(m, 0)
        if msg_type == ofp.OFPT_EXPERIMENTER:
            exp, exp_type = struct.unpack_from("!II", m, 8)
            assert exp == ofproto_common.ONF_EXPERIMENTER_ID
            if exp_type == ofp.ONF_ET_BUNDLE_CONTROL:
                bundle_id, ctype, flags = struct.unpack_from("!IHH", m, 16)
                if ctype == ofp.ONF_BCT_OPEN_REQUEST:
                    self.bundles[bundle_id] = []
                    self.bundle_errors[bundle_id] = False
                elif ctype == ofp.ONF_BCT_COMMIT_REQUEST:
                    adds = self.bundles.pop(bundle_id)
                    if self.bundle_errors.pop(bundle_id):
                        self._error(xid, 2)
                    else:
                        saved = dict(self.flows), dict(self.groups), len(self.group_mods)
                        for inner in adds:
                            err = self._apply(inner, True)
                            if err is not None:   # atomic: nothing of the bundle stays
                                self.flows, self.groups = saved[0], saved[1]
                                del self.group_mods[saved[2]:]
                                self._error(HEADER.unpack_from(inner, 0)[3], err[1], err[0])
                                self._error(xid, 2)
                                break
                        else:
                            self.commits += 1
                elif ctype == ofp.ONF_BCT_DISCARD_REQUEST:
                    self.bundles.pop(bundle_id, None)
                    self.bundle_errors.pop(bundle_id, None)
                    self.discards += 1
            elif exp_type == ofp.ONF_ET_BUNDLE_ADD_MESSAGE:
                bundle_id = struct.unpack_from("!I", m, 16)[0]
                inner = m[24:]
                assert HEADER.unpack_from(inner, 0)[3] == xid, "inner xid must equal the bundle add's"
                assert HEADER.unpack_from(inner, 0)[2] == len(inner)
                if self.refuse(inner):
                    self.bundle_errors[bundle_id] = True
                    self._error(xid)
                self.bundles[bundle_id].append(inner)
            return
        if msg_type in (ofp.OFPT_FLOW_MOD, ofp.OFPT_GROUP_MOD):
            err = self._apply(m, False)
            if err is not None:
                self._error(xid, err[1], err[0])
        elif msg_type == ofp.OFPT_BARRIER_REQUEST:
            self._reply(parse(HEADER.pack(4, ofp.OFPT_BARRIER_REPLY, 8, xid), self))
        elif msg_type == ofp.OFPT_MULTIPART_REQUEST:
            mp_type = struct.unpack_from("!H", m, 8)[0]
            if mp_type == ofp.OFPMP_GROUP_DESC:
                self._dump_groups(xid)
                return
            assert mp_type == ofp.OFPMP_FLOW
            cookie, cookie_mask = struct.unpack_from("!QQ", m, 32)
            self.dumps.append((cookie, cookie_mask))
            self._dump(xid, cookie, cookie_mask)

    def _apply(self, m: bytes, bundled: bool):
        """Apply a flow or group mod; the error (type, code) the switch answers, or None."""
        if m[1] == ofp.OFPT_GROUP_MOD:
            return self._group_mod(m, bundled)
        return self._flow_mod(m)

    def _group_mod(self, m: bytes, bundled: bool):
        command, gtype, group_id = GROUP_MOD.unpack_from(m, 8)
        failed = ofp.OFPET_GROUP_MOD_FAILED
        if command == ofp.OFPGC_ADD:
            if group_id in self.groups:
                return failed, ofp.OFPGMFC_GROUP_EXISTS
            self.groups[group_id] = (gtype, m[16:])
        elif command == ofp.OFPGC_MODIFY:
            if group_id not in self.groups:
                return failed, ofp.OFPGMFC_UNKNOWN_GROUP
            self.groups[group_id] = (gtype, m[16:])
        elif command == ofp.OFPGC_DELETE:
            ids = set(self.groups) if group_id == ofp.OFPG_ALL else {group_id}
            for gid in ids:
                self.groups.pop(gid, None)
            for k, (_, _, ins) in list(self.flows.items()):   # as OVS: the flows naming them go too
                if action_groups(ins) & ids:
                    del self.flows[k]
        else:
            raise AssertionError(f"unexpected group-mod command {command}")
        self.group_mods.append((command, group_id, bundled))
        return None

    def _dump_groups(self, xid: int) -> None:
        body = b"".join(GROUP_DESC.pack(8 + len(buckets), gtype, gid) + buckets
                        for gid, (gtype, buckets) in sorted(self.groups.items()))
        head = HEADER.pack(4, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), xid)
        self._reply(parse(head + struct.pack("!HH4x", ofp.OFPMP_GROUP_DESC, 0) + body, self))

    def _flow_mod(self, m: bytes):
        assert HEADER.unpack_from(m, 0)[1] == ofp.OFPT_FLOW_MOD
        cookie, cookie_mask, table, command, _, _, priority, _, _, _, _ = FLOW_MOD.unpack_from(m, 8)
        mlen = struct.unpack_from("!HH", m, 48)[1]
        match = m[48:48 + mlen]
        tlvs = match_tlvs(match)
        ins = m[48 + (mlen + 7) // 8 * 8:]
        key = (table, priority, frozenset(tlvs))
        if command == ofp.OFPFC_ADD:
            if self.check_group_refs and action_groups(ins) - set(self.groups):
                return ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_GROUP
            self.flows[key] = (cookie, tlvs, ins)
        elif command == ofp.OFPFC_DELETE_STRICT:
            self.flows.pop(key, None)
        elif command == ofp.OFPFC_DELETE:
            assert table == ofp.OFPTT_ALL and not tlvs
            for k, (c, _, _) in list(self.flows.items()):
                if c & cookie_mask == cookie & cookie_mask:
                    del self.flows[k]
        else:
            raise AssertionError(f"unexpected flow-mod command {command}")
        return None

    def entry_bytes(self, key) -> bytes:
        cookie, tlvs, ins = self.flows[key]
        body = match_bytes(list(reversed(tlvs))) + ins
        return FLOW_STATS.pack(48 + len(body), key[0], 5, 6, key[1], 0, 0, 0, cookie, 3, 300) + body

    def _dump(self, xid: int, cookie: int = 0, cookie_mask: int = 0) -> None:
        keys = [k for k in self.flows if self.flows[k][0] & cookie_mask == cookie & cookie_mask]
        entries = [self.entry_bytes(k) for k in sorted(keys, key=lambda k: (k[0], -k[1], sorted(k[2])))]
        chunks = [entries[i:i + self.reply_chunk] for i in range(0, len(entries), self.reply_chunk)] or [[]]
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            body = b"".join(chunk)
            head = HEADER.pack(4, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), xid)
            buf = head + struct.pack("!HH4x", ofp.OFPMP_FLOW, ofp.OFPMPF_REPLY_MORE if more else 0) + body
            self._reply(parse(buf, self), more)

    # --- hand changes, as an operator with ovs-ofctl would make them ---
    def key_of(self, table: int, priority: int, predicate=lambda tlvs: True):
        return next(k for k in self.flows if k[0] == table and k[1] == priority and predicate(self.flows[k][1]))

    def set_instructions(self, key, ins: bytes) -> None:
        cookie, tlvs, _ = self.flows[key]
        self.flows[key] = (cookie, tlvs, ins)

    def cookies(self) -> set[int]:
        return {c for c, _, _ in self.flows.values()}
