"""The one map of every register, metadata bit, ct_mark, ct_label and ct_zone used on br-int.

Feature code matches and loads *named* fields and marks from this module, never literal masks.
The layout below is the specification; ``ALL_FIELDS`` must list every field, and a unit test
checks that no two fields overlap and that every consumed bit is written by an earlier table.

reg0   packet classification
       [0..3]   PKT_SOURCE        where the packet entered br-int
                                  1 FROM_POD, 2 FROM_UPLINK, 3 FROM_LOCAL, 4 FROM_EXTERNAL (a NodePort
                                  client on the node's external port: svc_external)
                                  written: classifier          read: l3_fwd, arp_responder
       [4]      TARGET_OFPORT_SET 1 = reg3 holds the output port (mark OUTPUT_TO_TARGET)
                                  written: l2_fwd              read: output
       [5]      SVC_HAIRPIN_BIT   mark SVC_HAIRPIN: a Service connection from a pod to itself: output to IN_PORT
                                  written: svc_unsnat, ct_commit  read: output
       [6]      SVC_AFF_HIT_BIT   mark SVC_AFF_HIT: a learned sessionAffinity flow named this client's endpoint
                                  written: svc_affinity (learned flows)  read: svc_aff_lb
       [7..31]  reserved
reg1   [0..31]  VPC_ID            VpcIn.vpc_id (1..65535, see inputs.py); a peering route (l3_fwd)
                                  rewrites it to the peer VPC the packet is routed into
                                  written: classifier, l3_fwd  read: ct_zone, l3_fwd, l3_neigh, ct_commit
reg2   [0..31]  SUBNET_ID         SubnetIn.subnet_id of the L2 segment the packet is in. The classifier
                                  writes the source subnet; l3_fwd rewrites it to the destination subnet,
                                  so l2_fwd and output always see the segment the packet leaves on (and
                                  thus the VLAN it is tagged with on the uplink).
                                  written: classifier, l3_fwd  read: l3_fwd, arp_responder, l2_fwd, output
reg3   [0..31]  TARGET_OFPORT     output port chosen by l2_fwd (a pod port or the uplink)
                                  written: l2_fwd              read: output
reg4   [0..31]  POLICY_EGRESS_RULE  id of the rule that admitted the packet on egress (0: no policy)
                                  written: egress_policy       read: ct_commit (-> ct_label[32..63])
reg5   [0..31]  POLICY_INGRESS_RULE id of the rule that admitted the packet on ingress (0: no policy)
                                  written: ingress_policy      read: ct_commit (-> ct_label[0..31])
reg6   [0..15]  PEER_SRC_VPC      vpc_id of the peered VPC a routed packet came from (0: not peered);
                                  set by a peering route in l3_fwd, which also rewrites VPC_ID to the
                                  destination VPC
                                  written: l3_fwd              read: ct_commit (commit in the source zone too)
       [16..31] reserved for security policy
reg7            reserved for security policy
reg8   [0..31]  SVC_ENDPOINT      id of the endpoint a sessionAffinity Service picked (service.py)
                                  written: svc_affinity (learned), the affinity group's buckets
                                  read: svc_aff_lb, svc_aff_learn
reg9   [0..15]  SVC_SNAT_ZONE     the packet's VPC's hairpin zone (0x8000 | vpc id), for the NodePort SNAT
                                  written: svc_external (client side), svc_unsnat (replies to the node IP)
                                  read: svc_unsnat, ct_commit
       [16..31] SVC_VPC_ZONE      the packet's VPC's zone, for NodePort clients
                                  written: svc_external      read: ct_commit
reg10  [0..15]  SVC_SLOT          the slot a UDP datagram's hash chose (multipath), see service.py
                                  written: svc_lb            read: svc_slot
       [16..31] reserved
reg11           reserved for service load balancing
reg12..reg15    free
metadata        unused on purpose: registers are cheaper and need no instruction ordering.

ct_mark [0..3]  CT_MARK_POLICY    reserved for security policy: 0 = allowed, 1 = no longer allowed
                                  (Neutron-style invalidation of established connections)
        [4]     CT_SVC_BIT        mark CT_SERVICE: a Service DNATed the connection (service.py)
        [5]     CT_SVC_EXTERNAL_BIT  mark CT_SVC_EXTERNAL: its client is outside (NodePort): replies
                                  leave by the node's external port
        [6]     CT_SVC_SNAT_BIT   mark CT_SVC_SNAT: SNATed to the node IP in the VPC's hairpin zone
                                  (NodePort, externalTrafficPolicy Cluster)
        [7]     reserved for service load balancing
        [8..31] reserved
ct_label [0..31]  CT_LABEL_RULE   id of the ingress rule that admitted the connection (policy.py)
         [32..63] CT_LABEL_EGRESS_RULE  id of the egress rule that admitted it
         [64..95] CT_LABEL_SERVICE  id of the Service that DNATed the connection (service.py counters)
         [96..127] reserved

ct_zone         one zone per VPC: ``vpc_ct_zone(vpc_id) == vpc_id`` (1..65535; zone 0, the
                default zone, is never used by vpcnet). Overlapping pod CIDRs in different VPCs
                therefore never share conntrack entries.
"""
from __future__ import annotations

from dataclasses import dataclass

# Width in bits of every field space a BitField can live in, and its NXM/OXM name
# (used by move/load/output actions in ovs-ofctl syntax).
SPACE_BITS: dict[str, int] = {f"reg{i}": 32 for i in range(16)}
SPACE_BITS.update({"metadata": 64, "ct_mark": 32, "ct_label": 128})
SPACE_NXM: dict[str, str] = {f"reg{i}": f"NXM_NX_REG{i}" for i in range(16)}
SPACE_NXM.update({"metadata": "OXM_OF_METADATA", "ct_mark": "NXM_NX_CT_MARK",
                  "ct_label": "NXM_NX_CT_LABEL"})


@dataclass(frozen=True)
class BitField:
    """Bits ``start..end`` (inclusive) of one field space, e.g. reg0[0..3]."""

    name: str
    space: str
    start: int
    end: int
    doc: str = ""

    def __post_init__(self):
        bits = SPACE_BITS.get(self.space)
        if bits is None:
            raise ValueError(f"{self.name}: unknown field space {self.space!r}")
        if not 0 <= self.start <= self.end < bits:
            raise ValueError(f"{self.name}: bad bit range [{self.start}..{self.end}] in {self.space}")
        object.__setattr__(self, "_marks", {})   # eq() memo (not a field: no effect on eq/hash)
        object.__setattr__(self, "_hash", hash((self.name, self.space, self.start, self.end, self.doc)))

    def __hash__(self) -> int:   # hashed with every Load action: compute once
        return self._hash

    def __reduce__(self):        # rebuild (never carry a hash or memo across processes)
        return (BitField, (self.name, self.space, self.start, self.end, self.doc))

    @property
    def width(self) -> int:
        return self.end - self.start + 1

    @property
    def mask(self) -> int:
        """The field's mask, in place (shifted)."""
        return ((1 << self.width) - 1) << self.start

    @property
    def full(self) -> bool:
        """True when the field covers its whole space (rendered without a mask)."""
        return self.start == 0 and self.width == SPACE_BITS[self.space]

    def nxm(self) -> str:
        """ovs-ofctl sub-field syntax: ``NXM_NX_REG0[0..3]``, ``NXM_NX_REG3[]``."""
        if self.full:
            return f"{SPACE_NXM[self.space]}[]"
        if self.width == 1:
            return f"{SPACE_NXM[self.space]}[{self.start}]"
        return f"{SPACE_NXM[self.space]}[{self.start}..{self.end}]"

    def check_value(self, value: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << self.width):
            raise ValueError(f"{self.name}: value {value!r} does not fit in {self.width} bits")
        return value

    def eq(self, value: int) -> "Mark":
        """A match/load term ``field == value`` (e.g. ``VPC_ID.eq(7)``)."""
        memo = self._marks
        mark = memo.get(value) if type(value) is int else None
        if mark is None:
            mark = Mark(f"{self.name}={value}", self, self.check_value(value))
            if len(memo) >= 4096:
                memo.clear()
            memo[value] = mark
        return mark


@dataclass(frozen=True)
class Mark:
    """A named value of a BitField. Usable as a match term and as a load action."""

    name: str
    field: BitField
    value: int

    def __post_init__(self):
        self.field.check_value(self.value)
        object.__setattr__(self, "_shifted", (self.value << self.field.start, self.field.mask))

    @property
    def space(self) -> str:
        return self.field.space

    @property
    def shifted(self) -> tuple[int, int]:
        """(value, mask) in place, as matched or set in the whole space."""
        return self._shifted


# --- reg0: packet classification -------------------------------------------------------------
PKT_SOURCE = BitField("PKT_SOURCE", "reg0", 0, 3, "where the packet entered br-int")
FROM_POD = Mark("FROM_POD", PKT_SOURCE, 1)
FROM_UPLINK = Mark("FROM_UPLINK", PKT_SOURCE, 2)
FROM_LOCAL = Mark("FROM_LOCAL", PKT_SOURCE, 3)
FROM_EXTERNAL = Mark("FROM_EXTERNAL", PKT_SOURCE, 4)

TARGET_OFPORT_SET = BitField("TARGET_OFPORT_SET", "reg0", 4, 4, "reg3 holds the output port")
OUTPUT_TO_TARGET = Mark("OUTPUT_TO_TARGET", TARGET_OFPORT_SET, 1)
SVC_HAIRPIN_BIT = BitField("SVC_HAIRPIN_BIT", "reg0", 5, 5, "a Service connection from a pod to itself")
SVC_HAIRPIN = Mark("SVC_HAIRPIN", SVC_HAIRPIN_BIT, 1)
SVC_AFF_HIT_BIT = BitField("SVC_AFF_HIT_BIT", "reg0", 6, 6, "a learned affinity flow named the endpoint")
SVC_AFF_HIT = Mark("SVC_AFF_HIT", SVC_AFF_HIT_BIT, 1)
SVC_ENDPOINT = BitField("SVC_ENDPOINT", "reg8", 0, 31, "endpoint id chosen for a sessionAffinity Service")
SVC_SNAT_ZONE = BitField("SVC_SNAT_ZONE", "reg9", 0, 15, "the VPC's hairpin zone, for the NodePort SNAT")
SVC_VPC_ZONE = BitField("SVC_VPC_ZONE", "reg9", 16, 31, "the VPC's zone, for NodePort clients")
SVC_SLOT = BitField("SVC_SLOT", "reg10", 0, 15, "slot chosen by a UDP datagram's hash")
# Views of parts of the fields above (not in ALL_FIELDS: they overlap them on purpose): the
# low 15 bits of a VPC id moved into SVC_SNAT_ZONE under its top bit make the VPC's hairpin zone.
VPC_ID_LOW15 = BitField("VPC_ID_LOW15", "reg1", 0, 14, "VPC_ID's low 15 bits (vpc ids stay below 0x8000)")
SVC_SNAT_ZONE_LOW15 = BitField("SVC_SNAT_ZONE_LOW15", "reg9", 0, 14, "SVC_SNAT_ZONE without its top bit")

# --- reg1..reg3 ------------------------------------------------------------------------------
VPC_ID = BitField("VPC_ID", "reg1", 0, 31, "VpcIn.vpc_id")
SUBNET_ID = BitField("SUBNET_ID", "reg2", 0, 31, "SubnetIn.subnet_id of the current L2 segment")
TARGET_OFPORT = BitField("TARGET_OFPORT", "reg3", 0, 31, "output port chosen by l2_fwd")

# --- conntrack -------------------------------------------------------------------------------
CT_MARK_POLICY = BitField("CT_MARK_POLICY", "ct_mark", 0, 3, "reserved: security policy verdict")
CT_SVC_BIT = BitField("CT_SVC_BIT", "ct_mark", 4, 4, "a Service DNATed the connection")
CT_SVC_EXTERNAL_BIT = BitField("CT_SVC_EXTERNAL_BIT", "ct_mark", 5, 5, "a NodePort client outside")
CT_SVC_SNAT_BIT = BitField("CT_SVC_SNAT_BIT", "ct_mark", 6, 6, "SNATed to the NodePort SNAT address")
CT_LABEL_RULE = BitField("CT_LABEL_RULE", "ct_label", 0, 31, "ingress rule that admitted the connection")
CT_LABEL_EGRESS_RULE = BitField("CT_LABEL_EGRESS_RULE", "ct_label", 32, 63, "egress rule that admitted it")
CT_LABEL_SERVICE = BitField("CT_LABEL_SERVICE", "ct_label", 64, 95, "Service that DNATed the connection")
CT_POLICY_REVOKED = Mark("CT_POLICY_REVOKED", CT_MARK_POLICY, 1)
CT_SERVICE = Mark("CT_SERVICE", CT_SVC_BIT, 1)            # the connection was DNATed by a Service
CT_SVC_EXTERNAL = Mark("CT_SVC_EXTERNAL", CT_SVC_EXTERNAL_BIT, 1)
CT_SVC_SNAT = Mark("CT_SVC_SNAT", CT_SVC_SNAT_BIT, 1)

# --- reg4/reg5: security policy verdicts -----------------------------------------------------
POLICY_EGRESS_RULE = BitField("POLICY_EGRESS_RULE", "reg4", 0, 31, "egress rule id (0: no policy)")
POLICY_INGRESS_RULE = BitField("POLICY_INGRESS_RULE", "reg5", 0, 31, "ingress rule id (0: no policy)")

# --- reg6: VPC peering -----------------------------------------------------------------------
PEER_SRC_VPC = BitField("PEER_SRC_VPC", "reg6", 0, 15, "vpc_id of the peered VPC a routed packet came from")

CT_ZONE_MIN = 1
CT_ZONE_MAX = 65535


HAIRPIN_IP = "169.254.0.253"    # the source a pod sees when it reaches itself through a Service
HAIRPIN_IP6 = "fdff:ffff:ffff:ffff::fd"   # the same for IPv6 (the last /64 of the ULA block)
HAIRPIN_ZONE_BIT = 0x8000       # a VPC's hairpin zone: its id with the top bit set (ids stay below)


def vpc_hairpin_zone(vpc_id: int) -> int:
    """The conntrack zone of a VPC's hairpin SNAT (service.py): ``0x8000 | vpc_id``."""
    if not CT_ZONE_MIN <= vpc_id < HAIRPIN_ZONE_BIT:
        raise ValueError(f"vpc_id {vpc_id} has no hairpin zone (must be {CT_ZONE_MIN}..{HAIRPIN_ZONE_BIT - 1})")
    return HAIRPIN_ZONE_BIT | vpc_id


def vpc_ct_zone(vpc_id: int) -> int:
    """The conntrack zone of a VPC: its id (1..65535)."""
    if not CT_ZONE_MIN <= vpc_id <= CT_ZONE_MAX:
        raise ValueError(f"vpc_id {vpc_id} has no conntrack zone (must be {CT_ZONE_MIN}..{CT_ZONE_MAX})")
    return vpc_id


ALL_FIELDS: tuple[BitField, ...] = (
    PKT_SOURCE, TARGET_OFPORT_SET, SVC_HAIRPIN_BIT, VPC_ID, SUBNET_ID, TARGET_OFPORT,
    CT_MARK_POLICY, CT_SVC_BIT, CT_SVC_EXTERNAL_BIT, CT_SVC_SNAT_BIT, CT_LABEL_RULE, CT_LABEL_EGRESS_RULE, POLICY_EGRESS_RULE,
    POLICY_INGRESS_RULE, PEER_SRC_VPC, CT_LABEL_SERVICE, SVC_AFF_HIT_BIT, SVC_ENDPOINT,
    SVC_SNAT_ZONE, SVC_VPC_ZONE, SVC_SLOT,
)
ALL_MARKS: tuple[Mark, ...] = (FROM_POD, FROM_UPLINK, FROM_LOCAL, FROM_EXTERNAL, OUTPUT_TO_TARGET, CT_POLICY_REVOKED,
                               CT_SERVICE, CT_SVC_EXTERNAL, CT_SVC_SNAT, SVC_HAIRPIN, SVC_AFF_HIT)
