"""Canonical text for flows, in ``ovs-ofctl dump-flows`` style.

* ``render(flows)``: one line per flow with TABLE NAMES, sorted by (table order, -priority,
  match text); used for golden tests, logs, debug endpoints and difflib diffs:
  ``cookie=0x50000d2c1a9f3, table=l2_fwd, priority=200,reg2=0x5,dl_dst=0e:76:70:00:00:05
  actions=set_field:0x3->reg3,load:0x1->NXM_NX_REG0[4],goto_table:ingress_policy``
  Group values among the flows come last, one ``group_id=..,type=..,bucket=..`` line each.
* ``render_for_ofctl(flows)``: the same flows as ``ovs-ofctl -O OpenFlow13 add-flows`` input
  (numeric tables): ``cookie=0x..,table=20,priority=200,ip,reg1=0x7,actions=ct(table=21,zone=7)``.

Partial register writes print as ``load:V->NXM_NX_REGn[a..b]`` and full ones as
``set_field:V->regn``, exactly as OVS dumps them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .fields import BitField
from .learn import Learn
from .model import (
    SET_FIELDS, Conjunction, Controller, Ct, DecTtl, Flow, Goto, Group, GroupAction, Load, Match,
    Meter, Move, Multipath, Output, PopVlan, PROTOS, PushVlan, Resubmit, SetField,
)
from .pipeline import PIPELINE, Pipeline

TableFmt = Callable[[str], str]


def _hex(v: int) -> str:
    return f"{v:#x}"


def format_match(match: Match) -> str:
    parts: list[str] = []
    proto = PROTOS.get((match.get("dl_type"), match.get("nw_proto")))
    if proto is None and "nw_proto" in match:
        proto = PROTOS.get((match.get("dl_type"), None))
    for name, value in match.items():
        if name == "dl_type" and proto is not None:
            parts.append(proto.name)
            continue
        if name == "nw_proto" and proto is not None and proto.nw_proto is not None:
            continue
        if isinstance(value, tuple):
            v, m = value
            if isinstance(v, str):
                text = f"{v}/{m}"
            elif name == "vlan_tci":
                text = f"{v:#06x}/{m:#06x}"
            else:
                text = f"{_hex(v)}/{_hex(m)}"
        elif name == "in_port" and isinstance(value, str):
            text = value
        elif name == "vlan_tci":
            text = f"{value:#06x}"
        elif name == "dl_type" or name.startswith("reg") or name in (
                "metadata", "ct_mark", "ct_label"):
            text = _hex(value)
        else:
            text = str(value)
        parts.append(f"{name}={text}")
    return ",".join(parts)


def _field_ref(f: str | BitField) -> str:
    return f.nxm() if isinstance(f, BitField) else SET_FIELDS[f][0]


# set_field values OVS prints in decimal (the others in hex)
_DECIMAL_SET_FIELDS = frozenset({"vlan_vid", "arp_op", "tcp_src", "tcp_dst", "icmp_type", "icmpv6_type",
                                 "nd_reserved", "nd_options_type"})


def _set_value(field: str, value) -> str:
    if isinstance(value, str):
        return value
    return str(value) if field in _DECIMAL_SET_FIELDS else _hex(value)


_LEARN_FIXED_NAME = {"dl_type": "eth_type", "nw_proto": "nw_proto"}
_LEARN_NXM = {"ip_src": "NXM_OF_IP_SRC[]", "ip_dst": "NXM_OF_IP_DST[]", "ipv6_src": "NXM_NX_IPV6_SRC[]",
              "ipv6_dst": "NXM_NX_IPV6_DST[]", "tcp_dst": "NXM_OF_TCP_DST[]", "udp_dst": "NXM_OF_UDP_DST[]"}


def _learn_ref(side) -> str:
    if isinstance(side, BitField):
        return side.nxm()
    return _LEARN_NXM[side] if side in _LEARN_NXM else SET_FIELDS[side][0]


def format_action(a, table: TableFmt) -> str:
    if isinstance(a, Output):
        if isinstance(a.port, BitField):
            return f"output:{a.port.nxm()}"
        if isinstance(a.port, str):
            return a.port
        return f"output:{a.port}"
    if isinstance(a, SetField):
        return f"set_field:{_set_value(a.field, a.value)}->{a.field}"
    if isinstance(a, Load):
        if a.field.full:
            return f"set_field:{_hex(a.value)}->{a.field.space}"
        return f"load:{_hex(a.value)}->{a.field.nxm()}"
    if isinstance(a, Move):
        return f"move:{_field_ref(a.src)}->{_field_ref(a.dst)}"
    if isinstance(a, Goto):
        return f"goto_table:{table(a.table)}"
    if isinstance(a, Resubmit):
        return f"resubmit(,{table(a.table)})"
    if isinstance(a, Ct):
        args = []
        if a.commit:
            args.append("commit")
        if a.table is not None:
            args.append(f"table={table(a.table)}")
        if a.zone is not None:
            args.append(f"zone={a.zone.nxm() if isinstance(a.zone, BitField) else a.zone}")
        if a.nat is not None:
            if a.nat.kind is None:
                args.append("nat")
            else:
                addr = f"[{a.nat.addr}]" if ":" in a.nat.addr and a.nat.port else a.nat.addr
                port = f":{a.nat.port}" if a.nat.port else ""
                args.append(f"nat({a.nat.kind}={addr}{port})")
        if a.exec_:
            args.append("exec(" + ",".join(format_action(x, table) for x in a.exec_) + ")")
        return "ct(" + ",".join(args) + ")"
    if isinstance(a, DecTtl):
        return "dec_ttl"
    if isinstance(a, PushVlan):
        return f"push_vlan:{a.ethertype:#06x}"
    if isinstance(a, PopVlan):
        return "pop_vlan"
    if isinstance(a, GroupAction):
        return f"group:{a.group_id}"
    if isinstance(a, Conjunction):
        return f"conjunction({a.conj_id},{a.clause}/{a.n_clauses})"
    if isinstance(a, Controller):   # userdata as ovs-ofctl prints (and reads) it: 01.02.03
        userdata = ",userdata=" + ".".join(f"{b:02x}" for b in a.userdata) if a.userdata else ""
        meter = f",meter_id={a.meter_id}" if a.meter_id is not None else ""
        return f"controller(max_len={a.max_len}{userdata}{meter})"
    if isinstance(a, Multipath):
        return f"multipath({a.fields},{a.basis},modulo_n,{a.n_links},0,{a.dst.nxm()})"
    if isinstance(a, Learn):        # ovs-ofctl's learn syntax
        args = [f"table={table(a.table)}"]
        if a.idle_timeout:
            args.append(f"idle_timeout={a.idle_timeout}")
        args += [f"priority={a.priority}", f"cookie={_hex(a.cookie)}"]
        args += [f"{_LEARN_FIXED_NAME[f]}={_hex(v)}" for f, v in a.fixed]
        for c in a.copied:
            dst, src = c if isinstance(c, tuple) else (c, c)
            args.append(_learn_ref(dst) if dst == src else f"{_learn_ref(dst)}={_learn_ref(src)}")
        for ld in a.loads:
            src, dst = ld if isinstance(ld, tuple) else (ld, ld)
            args.append(f"load:{_learn_ref(src)}->{_learn_ref(dst)}")
        args += [f"load:{_hex(v)}->{f.nxm()}" for f, v in a.load_values]
        return "learn(" + ",".join(args) + ")"
    raise TypeError(f"cannot render action {a!r}")


def format_actions(actions: Iterable, table: TableFmt) -> str:
    text = ",".join(format_action(a, table) for a in actions)
    return text or "drop"


def _sort_key(flow: Flow, pipeline: Pipeline) -> tuple:
    return (pipeline.id(flow.table), -flow.priority, format_match(flow.match), flow.cookie)


def sorted_flows(flows: Iterable[Flow], pipeline: Pipeline = PIPELINE) -> list[Flow]:
    return sorted(flows, key=lambda f: _sort_key(f, pipeline))


def render_flow(flow: Flow) -> str:
    match = format_match(flow.match)
    head = f"cookie={_hex(flow.cookie)}, table={flow.table}, priority={flow.priority}"
    if match:
        head += "," + match
    return f"{head} actions={format_actions(flow.actions, lambda t: t)}"


def render(flows: Iterable[Flow | Group], pipeline: Pipeline = PIPELINE) -> str:
    """Canonical dump with table names, one flow per line, sorted; ends with a newline. Group
    values among them (an owner's set may hold some) follow the flows, by id, one line each
    (``render_group_line``)."""
    flows = list(flows)
    groups = [g for g in flows if isinstance(g, Group)]
    if groups:
        flows = [f for f in flows if not isinstance(f, Group)]
    lines = [render_flow(f) for f in sorted_flows(flows, pipeline)]
    lines += [render_group_line(g) for g in sorted(groups, key=lambda g: g.group_id)]
    return "".join(line + "\n" for line in lines)


def render_flow_for_ofctl(flow: Flow, pipeline: Pipeline = PIPELINE) -> str:
    num = lambda t: str(pipeline.id(t))  # noqa: E731
    parts = [f"cookie={_hex(flow.cookie)}", f"table={pipeline.id(flow.table)}", f"priority={flow.priority}"]
    match = format_match(flow.match)
    if match:
        parts.append(match)
    parts.append("actions=" + format_actions(flow.actions, num))
    return ",".join(parts)


def render_for_ofctl(flows: Iterable[Flow], pipeline: Pipeline = PIPELINE) -> str:
    """Text for ``ovs-ofctl -O OpenFlow13 [--bundle] add-flows br-int -``."""
    return "".join(render_flow_for_ofctl(f, pipeline) + "\n" for f in sorted_flows(flows, pipeline))


def _group_text(group: Group, table: TableFmt) -> str:
    buckets = []
    for b in group.buckets:
        weight = f"weight:{b.weight}," if b.weight is not None else ""
        buckets.append(f"bucket={weight}actions={format_actions(b.actions, table)}")
    return ",".join([f"group_id={group.group_id}", f"type={group.type}", *buckets])


def render_group(group: Group, pipeline: Pipeline = PIPELINE) -> str:
    """Text for ``ovs-ofctl -O OpenFlow13 add-groups``."""
    return _group_text(group, lambda t: str(pipeline.id(t)))


def render_group_line(group: Group) -> str:
    """A group as ``render`` shows it (table names):
    ``group_id=7,type=select,bucket=weight:1,actions=ct(commit,table=ct_state,zone=3,nat(dst=10.0.0.5:80))``."""
    return _group_text(group, lambda t: t)


def render_meter(meter: Meter) -> str:
    """Text for ``ovs-ofctl -O OpenFlow13 add-meter``."""
    burst = f",burst_size={meter.burst}" if meter.burst else ""
    flags = f"{meter.unit},burst" if meter.burst else meter.unit
    return f"meter={meter.meter_id},{flags},band=type=drop,rate={meter.rate}{burst}"


__all__ = ["render", "render_flow", "render_for_ofctl", "render_flow_for_ofctl", "render_group", "render_group_line",
           "render_meter", "format_match", "format_actions", "sorted_flows"]
