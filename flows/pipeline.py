"""The one ordered declaration of every br-int table, and the checked flow builder.

How packets move (each line is a stage; numbers are ``stage * 10 + position in stage``):

    0  classifier      pod port / uplink VLAN / external port / LOCAL -> set PKT_SOURCE, VPC_ID, SUBNET_ID
    1  svc_external    external port: node IP:nodePort -> the Service's VPC; the rest to the host (LOCAL)
   10  port_sec        a pod sends only its own MAC + IPs (ARP: own spa/sha)
   11  svc_unsnat      replies to the Service hairpin address: un-SNAT (hairpin zone), mark HAIRPIN
   20  ct_zone         IP -> ct(zone=<vpc>, table=ct_state); ARP and ND skip conntrack
   21  ct_state        +trk+inv dropped
   22  svc_lb          new connection to a Service cluster IP:port -> select group -> DNAT to an endpoint
   23  svc_affinity    learned flows: (client, Service port) -> the endpoint it had (sessionAffinity)
   24  svc_aff_lb      sessionAffinity: the learned endpoint if it still serves, else the select group
   25  svc_aff_learn   sessionAffinity: (re)learn the client's endpoint, DNAT to it
   26  svc_slot        UDP: the slot a datagram's hash chose -> DNAT to its endpoint
   30  egress_policy   hook for security policy (passes everything today)
   40  l3_fwd          distributed router of a VPC: gateway ARP/ND/echo replies; route to other subnets
   41  l3_neigh        routed packets only: destination pod IP -> its MAC (unknown: drop)
   50  arp_responder   answer ARP for known pods of the requester's subnet; finish gateway ND answers
   51  l2_fwd          (subnet, dst MAC) -> pod port or uplink; broadcast/multicast flooded
   60  ingress_policy  hook for security policy (passes everything today)
   70  ct_commit       commit new connections in the VPC zone
   71  output          output to reg3; uplink-bound packets get their subnet's VLAN
   72  svc_ext_neigh   learned flows: NodePort client IP -> its MAC (replies leave by the external port)
  250  canary          never reached; one drop flow whose absence means OVS lost our flows

Rules (checked when a flow is built, so a wrong flow fails a unit test, not the lab):
* goto_table and ct(table=) only jump *forward*, to a table listed in ``next_tables``;
* resubmit only to a table listed in ``resubmit_tables`` (declared backward or multi-target jumps);
* a flow matches only fields listed in its table's ``match_fields``;
* a priority-0 flow is the table miss and matches nothing.

Adding a table: append it at the end of its stage (never reorder), so every existing number
stays stable. Numbers never depend on which features are enabled.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import lru_cache

from . import cookies
from .learn import Learn
from .model import Ct, Flow, FlowError, Goto, Match, Resubmit


class Stage(enum.IntEnum):
    CLASSIFY = 0
    VALIDATE = 1
    CONNTRACK = 2
    EGRESS_SECURITY = 3
    ROUTING = 4
    SWITCHING = 5
    INGRESS_SECURITY = 6
    OUTPUT = 7
    RESERVED = 25


@dataclass(frozen=True)
class Table:
    name: str
    stage: Stage
    next_tables: tuple[str, ...]
    miss: str                       # "drop" | "next" | "goto:<table>"
    match_fields: frozenset[str]
    doc: str = ""
    resubmit_tables: tuple[str, ...] = ()
    id: int = field(default=-1, compare=False)


REGS = frozenset(f"reg{i}" for i in range(16))
IP_FIELDS = frozenset({"dl_type", "nw_proto", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
                       "tp_src", "tp_dst", "icmp_type", "icmp_code"})
CT_FIELDS = frozenset({"ct_state", "ct_zone", "ct_mark", "ct_label"})
POLICY_FIELDS = REGS | IP_FIELDS | CT_FIELDS | {"conj_id", "in_port", "dl_src", "dl_dst"}


def _t(name, stage, next_tables, miss, match_fields, doc, resubmit=()):
    return Table(name, stage, tuple(next_tables), miss, frozenset(match_fields), doc, tuple(resubmit))


LEARNED_TABLES = ("svc_affinity", "svc_ext_neigh")   # hold learned flows only: never compiled, never audited


TABLES: tuple[Table, ...] = (
    _t("classifier", Stage.CLASSIFY, ("svc_external", "port_sec", "svc_unsnat", "ct_zone"), "drop",
       {"in_port", "dl_vlan", "vlan_tci"},
       "Pod port, uplink (per subnet VLAN), external port or LOCAL; sets PKT_SOURCE, VPC_ID, SUBNET_ID."),
    _t("svc_external", Stage.CLASSIFY, ("ct_zone",), "drop",
       {"in_port", "dl_type", "nw_proto", "nw_dst", "tp_dst"},
       "From the node's external port: <node IP>:<nodePort> -> FROM_EXTERNAL in the Service's VPC "
       "(learning the client's MAC for the replies); anything else is the host's (-> LOCAL)."),
    _t("port_sec", Stage.VALIDATE, ("svc_unsnat", "ct_zone"), "drop",
       {"in_port", "dl_src", "dl_type", "nw_proto", "nw_src", "ipv6_src", "arp_spa", "arp_sha",
        "icmp_type", "nd_target", "tp_src", "tp_dst"},
       "Anti-spoofing: a pod sends only its own MAC and IPs; ARP only for its own IP; never DHCP "
       "server answers, router advertisements or redirects."),
    _t("svc_unsnat", Stage.VALIDATE, ("ct_zone",), "goto:ct_zone",
       {"reg1", "dl_type", "nw_dst", "ipv6_dst"},
       "Replies to the Service hairpin address or to the node IP (NodePort SNAT) are un-SNATed (the VPC's "
       "hairpin zone) first."),
    _t("ct_zone", Stage.CONNTRACK, ("ct_state",), "next",
       {"dl_type", "nw_proto", "icmp_type", "reg1"},
       "Send IP traffic through conntrack in the VPC's zone; ARP/ND bypass."),
    _t("ct_state", Stage.CONNTRACK, ("svc_lb", "egress_policy"), "next",
       {"ct_state", "ct_zone", "ct_mark", "ct_label", "dl_type", "reg0", "reg1"},
       "Drop invalid connections."),
    _t("svc_lb", Stage.CONNTRACK, ("svc_aff_lb", "svc_slot", "egress_policy"), "goto:egress_policy",
       {"reg0", "reg1", "dl_type", "nw_proto", "nw_dst", "ipv6_dst", "tp_dst", "ct_state"},
       "New connections to a Service's cluster IP and port (or node port) -> its select group, whose bucket "
       "DNATs to an endpoint (ct commit, nat) and continues in egress_policy. sessionAffinity "
       "ports look the client up in svc_affinity (resubmit) and continue in svc_aff_lb.",
       resubmit=("svc_affinity",)),
    _t("svc_affinity", Stage.CONNTRACK, (), "drop", {"reg1", "dl_type", "nw_proto", "nw_src", "nw_dst",
                                                      "ipv6_src", "ipv6_dst", "tp_dst"},
       "Learned flows only (svc_aff_learn): (VPC, client IP, cluster IP, port) -> SVC_ENDPOINT and "
       "SVC_AFF_HIT. Entries expire after the Service's timeoutSeconds without a new connection."),
    _t("svc_aff_lb", Stage.CONNTRACK, ("svc_aff_learn", "egress_policy"), "goto:egress_policy",
       {"reg0", "reg1", "reg8", "dl_type", "nw_proto", "nw_dst", "ipv6_dst", "tp_dst"},
       "sessionAffinity ports: a client whose learned endpoint still serves -> svc_aff_learn with "
       "it; else the port's select group, whose bucket names an endpoint and resubmits to "
       "svc_aff_learn.", resubmit=("svc_aff_learn",)),
    _t("svc_aff_learn", Stage.CONNTRACK, ("egress_policy",), "drop",
       {"reg1", "reg8", "dl_type", "nw_proto", "nw_dst", "ipv6_dst", "tp_dst"},
       "(port, endpoint) -> learn the client's endpoint (svc_affinity), DNAT to it as svc_lb's "
       "buckets do and continue in egress_policy."),
    _t("svc_slot", Stage.CONNTRACK, ("egress_policy",), "drop",
       {"reg1", "reg10", "dl_type", "nw_proto", "nw_dst", "ipv6_dst", "tp_dst"},
       "UDP ports: (port, slot the datagram's hash chose in svc_lb) -> DNAT to the slot's endpoint "
       "(the select group's hash leaves UDP ports out)."),
    _t("egress_policy", Stage.EGRESS_SECURITY, ("l3_fwd",), "next", POLICY_FIELDS,
       "Hook for security policy on traffic leaving a pod (default: pass)."),
    _t("l3_fwd", Stage.ROUTING, ("l3_neigh", "arp_responder", "l2_fwd", "output"), "goto:arp_responder",
       {"reg0", "reg1", "reg2", "dl_dst", "dl_type", "nw_proto", "nw_dst", "ipv6_dst", "arp_op", "arp_tpa",
        "icmp_type", "icmp_code", "nd_target", "nd_sll", "ct_state", "ct_mark"},
       "Distributed router of a VPC: answer ARP, ND and ping for subnet gateways; route between subnets; "
       "replies to NodePort clients -> the external port (MACs from svc_ext_neigh); an endpoint's "
       "replies to another node's IP (NodePort SNAT) -> that node's router MAC.",
       resubmit=("svc_ext_neigh",)),
    _t("l3_neigh", Stage.ROUTING, ("l2_fwd",), "drop",
       {"reg1", "dl_type", "nw_dst", "ipv6_dst"},
       "Routed packets: destination pod IP -> its MAC. Unknown destinations are dropped."),
    _t("arp_responder", Stage.SWITCHING, ("l2_fwd",), "next",
       {"reg0", "reg2", "in_port", "dl_type", "arp_op", "arp_tpa", "nw_proto", "icmp_type", "icmp_code",
        "nd_target"},
       "Answer ARP requests for known pods of the requester's subnet in the switch; send out the "
       "gateway's neighbour advertisements."),
    _t("l2_fwd", Stage.SWITCHING, ("ingress_policy",), "drop",
       {"reg2", "dl_dst"},
       "(subnet, dst MAC) -> local pod port or uplink; broadcast/multicast flooded."),
    _t("ingress_policy", Stage.INGRESS_SECURITY, ("ct_commit",), "next", POLICY_FIELDS,
       "Hook for security policy on traffic entering a pod (default: pass)."),
    _t("ct_commit", Stage.OUTPUT, ("output",), "next",
       {"ct_state", "ct_mark", "dl_type", "reg0", "reg1", "reg6", "in_port", "reg3"},
       "Commit new connections in the VPC's zone (and in the peer's, for traffic routed from a peer)."),
    _t("output", Stage.OUTPUT, (), "drop",
       {"reg0", "reg2", "reg3"},
       "Output to reg3; packets for the uplink are tagged with their subnet's VLAN."),
    _t("svc_ext_neigh", Stage.OUTPUT, (), "drop", {"dl_type", "nw_dst"},
       "Learned flows only (svc_external): NodePort client IP -> its MAC and the node MAC it "
       "addressed, for the replies."),
    _t("canary", Stage.RESERVED, (), "drop", set(),
       "Never reached. Its miss flow disappearing means OVS lost our flows (re-provision)."),
)


@lru_cache(maxsize=1 << 18)
def _round0_cookie(owner: str, feature: cookies.Feature | None) -> int:
    feat = feature if feature is not None else cookies.feature_of_owner(owner)
    return cookies.cookie(0, feat, owner)


class Pipeline:
    """A validated, numbered table declaration plus the checked flow builder."""

    def __init__(self, tables: tuple[Table, ...]):
        numbered: list[Table] = []
        per_stage: dict[Stage, int] = {}
        last_stage = -1
        for t in tables:
            if t.stage < last_stage:
                raise FlowError(f"table {t.name}: stages must be declared in order")
            last_stage = t.stage
            pos = per_stage.get(t.stage, 0)
            if pos >= 10:
                raise FlowError(f"stage {t.stage.name} has more than 10 tables")
            per_stage[t.stage] = pos + 1
            numbered.append(Table(t.name, t.stage, t.next_tables, t.miss, t.match_fields, t.doc,
                                  t.resubmit_tables, id=int(t.stage) * 10 + pos))
        self.tables: tuple[Table, ...] = tuple(numbered)
        self._ok_jumps: set[tuple] = set()   # (table, action type, target) already checked
        self._by_name = {t.name: t for t in self.tables}
        if len(self._by_name) != len(self.tables):
            raise FlowError("duplicate table names")
        if max(t.id for t in self.tables) > 254:
            raise FlowError("table ids must stay below 255")
        for i, t in enumerate(self.tables):
            for n in t.next_tables:
                if n not in self._by_name or self._by_name[n].id <= t.id:
                    raise FlowError(f"table {t.name}: next table {n!r} is undeclared or not forward")
            for n in t.resubmit_tables:
                if n not in self._by_name:
                    raise FlowError(f"table {t.name}: resubmit table {n!r} is undeclared")
            if t.miss == "next" and i + 1 == len(self.tables):
                raise FlowError(f"table {t.name}: the last table cannot miss to 'next'")
            target = self.miss_target(t.name)
            if target is not None and target not in t.next_tables:
                raise FlowError(f"table {t.name}: miss target {target!r} is not a declared next table")

    # --- lookups ---
    def table(self, name: str) -> Table:
        try:
            return self._by_name[name]
        except KeyError:
            raise FlowError(f"undeclared table {name!r}") from None

    def id(self, name: str) -> int:
        return self.table(name).id

    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def miss_target(self, name: str) -> str | None:
        """The table a miss continues to, or None for drop."""
        t = self.table(name)
        if t.miss == "drop":
            return None
        if t.miss == "next":
            i = self.tables.index(t)
            return self.tables[i + 1].name
        if t.miss.startswith("goto:"):
            return t.miss[5:]
        raise FlowError(f"table {name}: bad miss {t.miss!r}")

    def jumps(self, flow: Flow) -> tuple[str, ...]:
        """Every table a flow can continue to (goto, ct(table=), resubmit)."""
        out = []
        for a in flow.actions:
            if isinstance(a, (Goto, Resubmit)):
                out.append(a.table)
            elif isinstance(a, Ct) and a.table is not None:
                out.append(a.table)
        return tuple(out)

    # --- building and checking ---
    def check(self, flow: Flow) -> Flow:
        """Raise FlowError unless ``flow`` obeys this pipeline's declaration."""
        t = self._by_name.get(flow.table) or self.table(flow.table)
        if t.match_fields.issuperset(flow.match._dict):
            ok = self._ok_jumps
            for a in flow.actions:   # fast path: every jump already checked once
                tp = type(a)
                if tp is Goto or tp is Ct or tp is Resubmit:
                    if (t.name, tp, a.table) not in ok:
                        break
                elif isinstance(a, (Goto, Ct, Resubmit, Learn)):
                    break             # learn actions are few: always checked in full
            else:
                return flow
        self._check(flow, t)
        for a in flow.actions:
            tp = type(a)
            if tp is Goto or tp is Ct or tp is Resubmit:
                self._ok_jumps.add((t.name, tp, a.table))
        return flow

    def _check(self, flow: Flow, t: Table) -> None:
        extra = set(flow.match) - t.match_fields
        if extra:
            raise FlowError(f"table {t.name}: match field(s) {sorted(extra)} not declared for this table "
                            f"(allowed: {sorted(t.match_fields)})")
        for a in flow.actions:
            if isinstance(a, (Goto, Ct)) and getattr(a, "table", None) is not None:
                target = self.table(a.table)
                if target.id <= t.id:
                    raise FlowError(f"table {t.name}: backward jump to {a.table} (use a declared resubmit)")
                if a.table not in t.next_tables:
                    raise FlowError(f"table {t.name}: {a.table} is not a declared next table "
                                    f"({', '.join(t.next_tables) or 'none'})")
            elif isinstance(a, Resubmit):
                self.table(a.table)
                if a.table not in t.resubmit_tables:
                    raise FlowError(f"table {t.name}: resubmit to {a.table} is not declared in resubmit_tables")
            elif isinstance(a, Learn):
                self._check_learn(a, t)

    def _check_learn(self, a: Learn, t: Table) -> None:
        """A learn action writes only into a table of LEARNED_TABLES, matching its declared fields."""
        if a.table not in LEARNED_TABLES:
            raise FlowError(f"table {t.name}: learn into {a.table!r}, which is not a learned-only table "
                            f"({', '.join(LEARNED_TABLES)})")
        target = self.table(a.table)
        names = [f for f, _ in a.fixed] + [Learn.match_name(c[0] if isinstance(c, tuple) else c) for c in a.copied]
        extra = set(names) - target.match_fields
        if extra:
            raise FlowError(f"table {t.name}: learned flows would match {sorted(extra)}, not declared for {a.table}")

    def flow(self, table: str, priority: int, match: Match | None = None, actions=(), *,
             owner: str, feature: cookies.Feature | None = None) -> Flow:
        """Build and check a flow; its cookie is (round 0, feature of owner, owner hash)."""
        return self.check(Flow(table, priority, match if match is not None else Match(),
                               tuple(actions), _round0_cookie(owner, feature)))

    def miss_flow(self, name: str, owner: str = "base") -> Flow:
        target = self.miss_target(name)
        return self.flow(name, 0, None, (Goto(target),) if target else (), owner=owner)

    def describe(self) -> str:
        """One line per table: number, name, stage, miss, next tables (used in docs/goldens)."""
        lines = []
        for t in self.tables:
            lines.append(f"{t.id:3d} {t.name:<15} {t.stage.name.lower():<17} miss={t.miss:<20} "
                         f"next={','.join(t.next_tables) or '-'}  # {t.doc}")
        return "\n".join(lines) + "\n"


PIPELINE = Pipeline(TABLES)
