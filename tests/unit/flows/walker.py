"""A behavioural packet walker over compiled flows: "where does this packet go?".

It models the parts of OVS the pipeline relies on:
* table lookup by priority; two matching flows at the same priority raise ``Ambiguous`` (OVS
  would pick one arbitrarily, OpenFlow 1.3 §6.4), conjunctive matches (conjunction/conj_id);
* apply-actions in order, goto_table, resubmit, output (never back out of the in_port unless
  IN_PORT), set_field/load/move, push/pop VLAN, dec_ttl (TTL <= 1 drops), groups
  (all / select / indirect), controller, learn (the learned flow is added to its table);
* a small conntrack: per-zone connection table, ct_state flags +trk/+new/+est/+rel/+rpl/+inv,
  ct(commit) with exec(ct_mark/ct_label), ct(table=) recirculation, simple NAT (src/dst address
  and port, reversed for replies);
* ICMP/ICMPv6 type rewrites and neighbour discovery: a message's link-layer option is ``nd_sll``
  (source, option type 1) or ``nd_tll`` (target, type 2) in the packet, absent when the message
  has none (matching ``nd_sll`` then sees 00:00:00:00:00:00, as in OVS); ``nd_options_type``
  retypes the option (a message without one is a WalkError: OVS would write past its end);
  set_field nd_sll/nd_tll changes the option only if it is of that type (OVS's packet_set_nd).

Packets are plain dicts keyed by OVS match field names (``in_port``, ``dl_src``, ``nw_dst``...),
plus ``vlans`` (outermost first) and ``nw_ttl``. Build them with ``ip_packet``/``arp_request``/
``neighbour_solicitation``.
"""
from __future__ import annotations

import copy
import zlib
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Iterable

import netaddr

from vpcnet.flows.fields import BitField
from vpcnet.flows.learn import LEARN_MATCH_FIELDS, Learn
from vpcnet.flows.model import (
    ETH_ARP, ETH_IPV4, ETH_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
    MATCH_FIELDS, OFPP_IN_PORT, OFPP_LOCAL, Conjunction, Controller, Ct, DecTtl, Flow,
    Goto, Group, GroupAction, Load, Match, Move, Multipath, Output, PopVlan, PushVlan, Resubmit, SetField,
    parse_ct_state,
)

# set_field/move names -> packet keys
_SET_TO_PKT = {"eth_src": "dl_src", "eth_dst": "dl_dst", "arp_op": "arp_op", "arp_spa": "arp_spa",
               "arp_tpa": "arp_tpa", "arp_sha": "arp_sha", "arp_tha": "arp_tha", "ip_src": "nw_src",
               "ip_dst": "nw_dst", "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst", "tcp_src": "tp_src",
               "tcp_dst": "tp_dst", "icmp_type": "icmp_type", "icmpv6_type": "icmp_type",
               "nd_reserved": "nd_reserved"}
_ND_OPTION = {1: "nd_sll", 2: "nd_tll"}     # ND option type -> packet key of its link-layer address
_NO_MAC = "00:00:00:00:00:00"
_PKT_DEFAULTS = {**{f"reg{i}": 0 for i in range(16)}, "metadata": 0, "ct_mark": 0, "ct_label": 0,
                 "ct_zone": 0}


class WalkError(AssertionError):
    pass


class Ambiguous(WalkError):
    """Two flows of the same priority match one packet."""


class _Dropped(Exception):
    pass


# --- packet builders ------------------------------------------------------------------------
def ip_packet(in_port, dl_src, dl_dst, src, dst, proto="icmp", ttl=64, tp_src=None, tp_dst=None,
              vlan=None, **extra) -> dict:
    v6 = ":" in src
    protos = {"icmp": IPPROTO_ICMPV6 if v6 else IPPROTO_ICMP, "tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
    pkt = {"in_port": in_port, "dl_src": dl_src, "dl_dst": dl_dst, "vlans": [vlan] if vlan else [],
           "dl_type": ETH_IPV6 if v6 else ETH_IPV4, "nw_proto": protos[proto], "nw_ttl": ttl,
           ("ipv6_src" if v6 else "nw_src"): src, ("ipv6_dst" if v6 else "nw_dst"): dst}
    if proto in ("tcp", "udp"):
        pkt.update(tp_src=tp_src or 40000, tp_dst=tp_dst or 80)
    else:
        pkt.update(icmp_type=128 if v6 else 8, icmp_code=0)
    pkt.update(extra)
    return pkt


def arp_request(in_port, sha, spa, tpa, vlan=None, dl_dst="ff:ff:ff:ff:ff:ff") -> dict:
    return {"in_port": in_port, "dl_src": sha, "dl_dst": dl_dst, "vlans": [vlan] if vlan else [],
            "dl_type": ETH_ARP, "arp_op": 1, "arp_sha": sha, "arp_spa": spa,
            "arp_tha": "00:00:00:00:00:00", "arp_tpa": tpa}


def neighbour_solicitation(in_port, dl_src, src, target, sll=None, dl_dst=None, dst=None) -> dict:
    """An ICMPv6 neighbour solicitation for ``target`` from ``src`` (``::`` for DAD), with a source
    link-layer address option ``sll`` (None: no option), to the target's solicited-node multicast
    address unless ``dst``/``dl_dst`` say otherwise (unicast, for reachability probes)."""
    low = int(netaddr.IPAddress(target)) & 0xFFFFFF
    pkt = ip_packet(in_port, dl_src, dl_dst or f"33:33:ff:{low >> 16:02x}:{(low >> 8) & 0xFF:02x}:{low & 0xFF:02x}",
                    src, dst or str(netaddr.IPAddress((0xFF02 << 112) | (0x1FF << 24) | low, 6)),
                    ttl=255, icmp_type=135, nd_target=target, nd_reserved=0)
    if sll is not None:
        pkt["nd_sll"] = sll
    return pkt


def reply_of(pkt: dict, in_port) -> dict:
    """The reverse-direction packet (addresses and ports swapped), entering at ``in_port``."""
    r = copy.deepcopy(pkt)
    r["in_port"] = in_port
    r["dl_src"], r["dl_dst"] = pkt["dl_dst"], pkt["dl_src"]
    for a, b in (("nw_src", "nw_dst"), ("ipv6_src", "ipv6_dst"), ("tp_src", "tp_dst")):
        if a in pkt:
            r[a], r[b] = pkt[b], pkt[a]
    if "icmp_type" in pkt:
        r["icmp_type"] = 129 if pkt["dl_type"] == ETH_IPV6 else 0
    return r


# --- conntrack ------------------------------------------------------------------------------
def _tuple(pkt: dict) -> tuple:
    v6 = pkt.get("dl_type") == ETH_IPV6
    src, dst = (pkt.get("ipv6_src"), pkt.get("ipv6_dst")) if v6 else (pkt.get("nw_src"), pkt.get("nw_dst"))
    return (src, dst, pkt.get("nw_proto"), pkt.get("tp_src", 0), pkt.get("tp_dst", 0))


def _reverse(t: tuple) -> tuple:
    return (t[1], t[0], t[2], t[4], t[3])


@dataclass
class Conn:
    zone: int
    orig: tuple
    reply: tuple
    mark: int = 0
    label: int = 0
    nat: tuple | None = None  # (kind, addr, port)


class Conntrack:
    def __init__(self):
        self.conns: list[Conn] = []

    def find(self, zone: int, t: tuple) -> tuple[Conn | None, bool]:
        for c in self.conns:
            if c.zone == zone and c.orig == t:
                return c, False
            if c.zone == zone and c.reply == t:
                return c, True
        return None, False

    def state(self, pkt: dict, zone: int) -> tuple[set, Conn | None, bool]:
        if pkt.get("ct_invalid"):
            return {"trk", "inv"}, None, False
        conn, is_reply = self.find(zone, _tuple(pkt))
        if conn is None:
            rel = pkt.get("ct_related_to")
            if rel is not None and self.find(zone, rel)[0] is not None:
                return {"trk", "rel"}, self.find(zone, rel)[0], False
            return {"trk", "new"}, None, False
        flags = {"trk", "est"} | ({"rpl"} if is_reply else set())
        if conn.nat:
            flags.add("dnat" if conn.nat[0] == "dst" else "snat")
        return flags, conn, is_reply


@dataclass
class Delivery:
    port: object          # int, "LOCAL" or "CONTROLLER"
    pkt: dict

    @property
    def vlan(self):
        return self.pkt["vlans"][0] if self.pkt.get("vlans") else None


@dataclass
class Result:
    outputs: list = field(default_factory=list)
    path: list = field(default_factory=list)   # (table, priority) in visit order
    dropped_reason: str | None = None

    @property
    def ports(self) -> list:
        return sorted((d.port for d in self.outputs), key=lambda p: (isinstance(p, str), p if isinstance(p, str) else int(p)))

    @property
    def dropped(self) -> bool:
        return not self.outputs

    def to(self, port) -> dict:
        hits = [d for d in self.outputs if d.port == port]
        assert len(hits) == 1, f"expected exactly one delivery to {port}, got {self.ports}; path={self.path}"
        return hits[0].pkt

    def tables(self) -> list[str]:
        return [t for t, _ in self.path]


# --- the walker -----------------------------------------------------------------------------
@lru_cache(maxsize=1 << 14)
def _mac(v: str) -> int:
    return int(netaddr.EUI(v))


@lru_cache(maxsize=1 << 16)
def _ip_in(have: str, want: str) -> bool:
    return netaddr.IPAddress(have) in netaddr.IPNetwork(want)


_parse_ct_state = lru_cache(maxsize=1 << 10)(parse_ct_state)


class Walker:
    MAX_DEPTH = 64

    def __init__(self, flows: Iterable[Flow], groups: Iterable[Group] = (), conntrack: Conntrack | None = None):
        self.tables: dict[str, list[Flow]] = {}
        for f in flows:
            self.tables.setdefault(f.table, []).append(f)
        for fl in self.tables.values():
            fl.sort(key=lambda f: -f.priority)
        self.groups = {g.group_id: g for g in groups}
        self.ct = conntrack if conntrack is not None else Conntrack()
        self.completed: list = []   # (table, priority, conj ids) where several conjunctions completed
        self.learned: list[Flow] = []   # flows added by learn actions, in order

    # matching
    @staticmethod
    def field_matches(pkt: dict, name: str, want) -> bool:
        spec = MATCH_FIELDS[name]
        if name == "dl_vlan":
            return bool(pkt["vlans"]) and pkt["vlans"][0] == want
        if name == "vlan_tci":
            tci = (0x1000 | pkt["vlans"][0]) if pkt["vlans"] else 0
            v, m = want if isinstance(want, tuple) else (want, 0xFFFF)
            return tci & m == v
        if name == "ct_state":
            have = pkt.get("ct_state", set())
            return all((flag in have) == on for flag, on in _parse_ct_state(want).items())
        if name == "in_port":
            return pkt["in_port"] == want
        if name == "conj_id":
            return True  # resolved in lookup(), against the completed conjunctions
        have = pkt.get(name, _PKT_DEFAULTS.get(name))
        if have is None and name == "nd_sll":
            have = _NO_MAC   # OVS: a solicitation without the option has nd_sll all zero
        if have is None:
            return False
        if spec.kind in ("ipv4", "ipv6"):
            return _ip_in(have, want)
        if spec.kind == "mac":
            v, m = want if isinstance(want, tuple) else (want, "ff:ff:ff:ff:ff:ff")
            return _mac(have) & _mac(m) == _mac(v)
        v, m = want if isinstance(want, tuple) else (want, (1 << spec.bits) - 1)
        return have & m == v

    def matches(self, pkt: dict, flow: Flow) -> bool:
        return all(self.field_matches(pkt, k, v) for k, v in flow.match.items())

    def lookup(self, pkt: dict, table: str) -> Flow | None:
        flows = [f for f in self.tables.get(table, ()) if self.matches(pkt, f)]
        for prio in sorted({f.priority for f in flows}, reverse=True):
            level = [f for f in flows if f.priority == prio]
            plain = [f for f in level if not any(isinstance(a, Conjunction) for a in f.actions)]
            clauses: dict[int, set] = {}
            for f in level:
                for a in f.actions:
                    if isinstance(a, Conjunction):
                        clauses.setdefault(a.conj_id, set()).add((a.clause, a.n_clauses))
            done = {cid for cid, cl in clauses.items() if {k for k, _ in cl} == set(range(1, next(iter(cl))[1] + 1))}
            hard = [f for f in plain if "conj_id" not in f.match]
            conj = sorted((f for f in plain if "conj_id" in f.match and f.match["conj_id"] in done),
                          key=lambda f: f.match["conj_id"])
            if hard:
                # OVS's classifier: a plain flow wins a tie with conjunctive matches
                plain = hard
            elif len(conj) > 1:
                # OVS picks one of several completed conjunctions of a priority; the compiler only
                # lets same-verdict conjunctions share a priority. Pick the lowest id, record all.
                self.completed.append((table, prio, tuple(f.match["conj_id"] for f in conj)))
                plain = conj[:1]
            else:
                plain = conj
            if len(plain) > 1:
                raise Ambiguous(f"{table}: {len(plain)} flows match at priority {prio}: {plain}")
            if plain:
                return plain[0]
        return None

    def trace(self, pkt: dict, table: str = "classifier") -> Result:
        pkt = copy.deepcopy(pkt)
        pkt.setdefault("vlans", [])
        for k, v in _PKT_DEFAULTS.items():
            pkt.setdefault(k, v)
        pkt["_orig_in_port"] = pkt["in_port"]
        res = Result()
        try:
            self._table(pkt, table, res, 0)
        except _Dropped as exc:
            res.dropped_reason = str(exc)
        return res

    def _table(self, pkt, table, res, depth):
        if depth > self.MAX_DEPTH:
            raise WalkError(f"loop: more than {self.MAX_DEPTH} table visits; path={res.path}")
        flow = self.lookup(pkt, table)
        if flow is None:
            raise _Dropped(f"no flow in {table}")
        res.path.append((table, flow.priority))
        self._apply(pkt, flow.actions, res, depth)

    def _apply(self, pkt, actions, res, depth):
        for a in actions:
            if isinstance(a, Output):
                self._output(pkt, a.port, res)
            elif isinstance(a, SetField):
                if a.field == "vlan_vid":
                    if not pkt["vlans"]:
                        raise WalkError("set vlan_vid on an untagged packet")
                    pkt["vlans"][0] = a.value & 0xFFF
                elif a.field == "nd_options_type":
                    self._retype_nd_option(pkt, a.value)
                elif a.field in ("nd_sll", "nd_tll"):
                    if a.field in pkt:      # only an option of that type is rewritten
                        pkt[a.field] = a.value
                else:
                    pkt[_SET_TO_PKT[a.field]] = a.value
            elif isinstance(a, Load):
                self._write_bits(pkt, a.field, a.value)
            elif isinstance(a, Move):
                self._move(pkt, a.src, a.dst)
            elif isinstance(a, Goto):
                self._table(pkt, a.table, res, depth + 1)
            elif isinstance(a, Resubmit):
                self._table(pkt, a.table, res, depth + 1)
            elif isinstance(a, Ct):
                self._ct(pkt, a, res, depth)
            elif isinstance(a, DecTtl):
                if pkt.get("nw_ttl", 64) <= 1:
                    raise _Dropped("ttl expired")
                pkt["nw_ttl"] = pkt.get("nw_ttl", 64) - 1
            elif isinstance(a, PushVlan):
                pkt["vlans"].insert(0, 0)
            elif isinstance(a, PopVlan):
                if not pkt["vlans"]:
                    raise WalkError("pop_vlan on an untagged packet")
                pkt["vlans"].pop(0)
            elif isinstance(a, GroupAction):
                self._group(pkt, a.group_id, res, depth)
            elif isinstance(a, Controller):
                res.outputs.append(Delivery("CONTROLLER", self._snapshot(pkt)))
            elif isinstance(a, Learn):
                self._learn(pkt, a)
            elif isinstance(a, Multipath):     # symmetric over addresses, protocol and ports
                ends = sorted([(pkt.get("nw_src") or pkt.get("ipv6_src"), pkt.get("tp_src", 0)),
                               (pkt.get("nw_dst") or pkt.get("ipv6_dst"), pkt.get("tp_dst", 0))])
                self._write_bits(pkt, a.dst, zlib.crc32(repr((ends, pkt.get("nw_proto"))).encode()) % a.n_links)
            elif isinstance(a, Conjunction):
                raise WalkError("conjunction flow selected directly")
            else:
                raise WalkError(f"walker cannot execute {a!r}")

    def _learn(self, pkt, a: Learn):
        """Add (or replace: OVS's learn is MODIFY_STRICT) the flow ``a`` describes for ``pkt``."""
        def value(side):
            if isinstance(side, BitField):
                return self._read_bits(pkt, side)
            return pkt[_SET_TO_PKT.get(side) or LEARN_MATCH_FIELDS[side][0]]
        parts, fields = [], dict(a.fixed)
        for c in a.copied:
            dst, src = c if isinstance(c, tuple) else (c, c)
            if isinstance(dst, BitField):
                parts.append(dst.eq(value(src)))
            else:
                fields[LEARN_MATCH_FIELDS[dst][0]] = value(src)
        actions = []
        for ld in a.loads:
            src, dst = ld if isinstance(ld, tuple) else (ld, ld)
            actions.append(Load(dst, value(src)) if isinstance(dst, BitField) else SetField(dst, value(src)))
        actions += [Load(f, v) for f, v in a.load_values]
        flow = Flow(a.table, a.priority, Match(*parts, **fields), tuple(actions), a.cookie)
        table = [f for f in self.tables.get(a.table, ()) if f.key != flow.key] + [flow]
        table.sort(key=lambda f: -f.priority)
        self.tables[a.table] = table
        self.learned.append(flow)

    @staticmethod
    def _retype_nd_option(pkt, opt_type):
        have = [k for k in ("nd_sll", "nd_tll") if k in pkt]
        if not have:
            raise WalkError("nd_options_type on an ND message without a link-layer option "
                            "(OVS would write the type past the end of the message)")
        if opt_type not in _ND_OPTION:
            raise WalkError(f"walker models ND options 1 and 2 only, not {opt_type}")
        pkt[_ND_OPTION[opt_type]] = pkt.pop(have[0])

    @staticmethod
    def _snapshot(pkt):
        out = copy.deepcopy(pkt)
        out.pop("_orig_in_port", None)
        return out

    def _output(self, pkt, port, res):
        if isinstance(port, BitField):
            port = self._read_bits(pkt, port)
        if port in ("IN_PORT", OFPP_IN_PORT):
            res.outputs.append(Delivery(pkt["in_port"], self._snapshot(pkt)))
            return
        if port in ("LOCAL", OFPP_LOCAL):
            port = "LOCAL"
        if port == pkt["in_port"]:
            return  # OVS never sends a packet back out of its in_port via output:N
        res.outputs.append(Delivery(port, self._snapshot(pkt)))

    @staticmethod
    def _read_bits(pkt, f: BitField) -> int:
        return (pkt.get(f.space, 0) & f.mask) >> f.start

    @staticmethod
    def _write_bits(pkt, f: BitField, value: int):
        pkt[f.space] = (pkt.get(f.space, 0) & ~f.mask) | ((value << f.start) & f.mask)

    def _move(self, pkt, src, dst):
        if isinstance(src, BitField) or isinstance(dst, BitField):
            if not (isinstance(src, BitField) and isinstance(dst, BitField)):
                raise WalkError("walker moves between BitFields or between header fields only")
            self._write_bits(pkt, dst, self._read_bits(pkt, src))
        else:
            pkt[_SET_TO_PKT[dst]] = pkt[_SET_TO_PKT[src]]

    def _group(self, pkt, gid, res, depth):
        g = self.groups.get(gid)
        if g is None:
            raise WalkError(f"group {gid} does not exist")
        if g.type == "all":
            buckets = g.buckets
        elif g.type == "indirect":
            buckets = g.buckets[:1]
        else:
            total = sum(b.weight or 1 for b in g.buckets)
            pick = zlib.crc32(repr(_tuple(pkt)).encode()) % total
            buckets = ()
            for b in g.buckets:
                pick -= b.weight or 1
                if pick < 0:
                    buckets = (b,)
                    break
        for b in buckets:
            clone = copy.deepcopy(pkt)
            try:
                self._apply(clone, b.actions, res, depth + 1)
            except _Dropped:
                pass

    def _ct(self, pkt, a: Ct, res, depth):
        zone = self._read_bits(pkt, a.zone) if isinstance(a.zone, BitField) else (a.zone or 0)
        flags, conn, is_reply = self.ct.state(pkt, zone)
        target = copy.deepcopy(pkt) if a.table is not None else pkt
        if a.commit and "inv" not in flags:
            if conn is None:
                orig = _tuple(pkt)
                nat = (a.nat.kind, a.nat.addr, a.nat.port) if a.nat is not None and a.nat.kind else None
                translated = orig
                if nat is not None:
                    translated = self._nat_tuple(orig, nat)
                conn = Conn(zone, orig, _reverse(translated), nat=nat)
                self.ct.conns.append(conn)
                is_reply = False
            for x in a.exec_:
                dst = x.field if isinstance(x, Load) else x.dst
                value = x.value if isinstance(x, Load) else self._read_bits(pkt, x.src)
                attr = "mark" if dst.space == "ct_mark" else "label"
                setattr(conn, attr, (getattr(conn, attr) & ~dst.mask) | (value << dst.start))
        if a.nat is not None and conn is not None and conn.nat is not None:
            self._apply_nat(target, conn, is_reply)
        if a.table is not None:
            target["ct_state"] = flags
            target["ct_zone"] = zone
            target["ct_mark"] = conn.mark if conn else 0
            target["ct_label"] = conn.label if conn else 0
            try:
                self._table(target, a.table, res, depth + 1)
            except _Dropped as exc:
                res.dropped_reason = str(exc)

    @staticmethod
    def _nat_tuple(t, nat):
        kind, addr, port = nat
        src, dst, proto, sp, dp = t
        if kind == "dst":
            return (src, addr, proto, sp, port or dp)
        return (addr, dst, proto, port or sp, dp)

    @staticmethod
    def _apply_nat(pkt, conn: Conn, is_reply: bool):
        kind, addr, port = conn.nat
        v6 = pkt.get("dl_type") == ETH_IPV6
        s, d = ("ipv6_src", "ipv6_dst") if v6 else ("nw_src", "nw_dst")
        if not is_reply:
            key, pkey = (d, "tp_dst") if kind == "dst" else (s, "tp_src")
            pkt[key] = addr
            if port and pkey in pkt:
                pkt[pkey] = port
        else:  # undo: the reply's source (dnat) / destination (snat) becomes the original again
            o_src, o_dst, _, o_sp, o_dp = conn.orig
            if kind == "dst":
                pkt[s] = o_dst
                if port and "tp_src" in pkt:
                    pkt["tp_src"] = o_dp
            else:
                pkt[d] = o_src
                if port and "tp_dst" in pkt:
                    pkt["tp_dst"] = o_sp
