"""The learn action (OVS ``learn``): a flow that adds flows built from the packet it sees.

vpcnet uses it where state must outlive a connection and conntrack cannot hold it: a Service's
sessionAffinity (client -> endpoint) and the return path of NodePort clients (client IP -> its
MAC and the node MAC it addressed). See ``Learn``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .fields import BitField
from .model import Action, FlowError


# Fields a learn action can copy from the packet into the match of the flow it learns:
# name -> (match field name in a Flow, width in bits, prerequisite).
LEARN_MATCH_FIELDS: dict[str, tuple[str, int, str]] = {
    "ip_src": ("nw_src", 32, "ip"), "ip_dst": ("nw_dst", 32, "ip"),
    "ipv6_src": ("ipv6_src", 128, "ipv6"), "ipv6_dst": ("ipv6_dst", 128, "ipv6"),
    "tcp_dst": ("tp_dst", 16, "l4"), "udp_dst": ("tp_dst", 16, "l4"),
}
LEARN_FIXED_FIELDS = ("dl_type", "nw_proto")   # constants a learned match may hold
LEARN_HEADER_LOADS = ("eth_src", "eth_dst")      # header fields a learned flow may load (from the packet's)


def _learn_side_width(side, what: str) -> int:
    if isinstance(side, BitField):
        return side.width
    if side in LEARN_MATCH_FIELDS:
        return LEARN_MATCH_FIELDS[side][1]
    if side in LEARN_HEADER_LOADS:
        return 48
    raise FlowError(f"learn: {what} {side!r} is not supported")


@dataclass(frozen=True, slots=True)
class Learn(Action):
    """learn(table=..,priority=..,idle_timeout=..,cookie=..,<match>,<loads>): adds (or replaces,
    OVS issues MODIFY_STRICT) a flow in ``table`` built from the current packet:

    * its match: ``fixed`` constants (dl_type, nw_proto), and each of ``copied``: a
      LEARN_MATCH_FIELDS name or a BitField matched on the packet's value of that same field, or
      a pair ``(field, from_field)`` matched on the value of another field (``("ip_dst",
      "ip_src")``: the learned flow matches packets *to* this packet's source);
    * its actions: each of ``loads`` writes a field with the packet's current value of it (a
      BitField) or of another field (a pair ``(from_field, to_field)``, e.g. ``("eth_src",
      "eth_dst")``), then each ``(BitField, value)`` of ``load_values``.

    Learned flows only load: their table is reached by ``resubmit`` and the caller acts on what
    they loaded. Such a table holds learned flows only (the reconciler leaves them alone)."""

    table: str
    priority: int
    idle_timeout: int = 0
    cookie: int = 0
    fixed: tuple = ()            # ((field, value), ...)
    copied: tuple = ()           # (name | BitField | (field, from_field), ...)
    loads: tuple = ()            # (BitField | (from_field, to_field), ...)
    load_values: tuple = ()      # ((BitField, value), ...)

    def __post_init__(self):
        for name in ("fixed", "copied", "loads", "load_values"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not 0 <= self.priority <= 65535 or not 0 <= self.idle_timeout <= 65535:
            raise FlowError(f"learn: bad priority {self.priority} or idle_timeout {self.idle_timeout}")
        if not 0 <= self.cookie < (1 << 64):
            raise FlowError(f"learn: bad cookie {self.cookie:#x}")
        for f, _ in self.fixed:
            if f not in LEARN_FIXED_FIELDS:
                raise FlowError(f"learn: fixed field {f!r} (allowed: {', '.join(LEARN_FIXED_FIELDS)})")
        for c in self.copied:
            dst, src = c if isinstance(c, tuple) else (c, c)
            if isinstance(dst, str) and dst in LEARN_HEADER_LOADS or isinstance(src, str) and src in LEARN_HEADER_LOADS:
                raise FlowError(f"learn: cannot match on {c!r}")
            if _learn_side_width(dst, "match field") != _learn_side_width(src, "source field"):
                raise FlowError(f"learn: width mismatch in {c!r}")
        for ld in self.loads:
            src, dst = ld if isinstance(ld, tuple) else (ld, ld)
            if isinstance(dst, str) and dst not in LEARN_HEADER_LOADS:
                raise FlowError(f"learn: a learned flow can load BitFields or {LEARN_HEADER_LOADS}, not {dst!r}")
            if _learn_side_width(src, "load source") != _learn_side_width(dst, "load target"):
                raise FlowError(f"learn: width mismatch in {ld!r}")
        for f, v in self.load_values:
            try:
                f.check_value(v)
            except (AttributeError, ValueError) as exc:
                raise FlowError(f"learn: bad load {f!r} <- {v!r}: {exc}") from exc
        if not self.loads and not self.load_values:
            raise FlowError("learn: a learned flow needs at least one load")

    def prereqs(self):
        names = {n for c in self.copied for n in (c if isinstance(c, tuple) else (c,))
                 if isinstance(n, str) and n in LEARN_MATCH_FIELDS}
        return tuple(sorted({LEARN_MATCH_FIELDS[n][2] for n in names}))

    @staticmethod
    def match_name(field) -> str:
        """The Flow match key (or register space) a learned match on ``field`` uses."""
        return field.space if isinstance(field, BitField) else LEARN_MATCH_FIELDS[field][0]
