"""Policy audit: per-rule packet/byte counters (Prometheus) and the denied-connection log.

Counters. Every flow that decides a verdict (flows/policy.py ``verdict_rules``: conjunction
verdicts, plain per-target verdicts, NetworkPolicy default deny, drops of revoked replies) is
attributed to its rule. The periodic audit already dumps each bridge's flows; for the deciding
flows it hands ``RuleCounters.update`` their OVS packet/byte counts, keyed by the flow's OpenFlow
identity (table, priority, match). OVS counters restart when a flow is replaced (a new controller
round, a policy change that re-adds the flow), and a flow disappears with its pod, so the
exported values are *accumulated deltas*: a count below the last one seen is a restart (its
whole value is new), a flow that is gone stops contributing. The series stay monotonic.

Labels are bounded by configuration, never by traffic: ``rule`` (the rule key, e.g.
``np/trading/db-ingress/ingress/0``, ``sg/ops/ping-in``, ``np/trading/default-deny/ingress``,
``revoked/egress``), ``action`` (allow|deny) and ``direction``; no pod, address or node label.
Past ``max_rules`` series, further rules are counted under ``rule="other"``.

Deny log. A deny verdict for a new connection sends the packet to the controller through the
policy log meter (flows/policy.py ``LOG_METER_ID``; a datapath meter, so a flood of denied packets
costs the controller at most the meter's rate). ``DenyLog.record`` turns each such packet-in
into one log line on the ``vpcnet.audit`` logger: node, pod, direction, rule and the 5-tuple.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import struct
import threading

from prometheus_client.core import CounterMetricFamily

from vpcnet.flows.policy import DIRECTIONS, LOG_USERDATA

AUDIT_LOG = logging.getLogger("vpcnet.audit")
OTHER = "other"
SERVICE = "svc"        # labels ("svc", "<ns>/<name>", "connections"|"traffic"): a Service's counters


class RuleCounters:
    """Collector of the per-rule counters (see the module doc)."""

    def __init__(self, max_rules: int = 10000):
        self.max_rules = max_rules
        self.lock = threading.Lock()
        self.last: dict[str, dict[tuple, tuple[tuple, int, int]]] = {}   # node -> key -> (label, packets, bytes)
        self.totals: dict[tuple, list[int]] = {}                          # (rule, action, direction) -> [p, b]
        self.denied_logged = 0

    def update(self, node: str, samples: dict[tuple, tuple[tuple, int, int]]) -> None:
        """``samples``: flow key -> ((rule, action, direction), packets, bytes) for every deciding
        flow found on ``node``'s bridge in one dump."""
        with self.lock:
            last = self.last.get(node, {})
            for key, (label, packets, octets) in samples.items():
                prev = last.get(key)
                if prev is not None and prev[0] == label and packets >= prev[1] and octets >= prev[2]:
                    dp, db = packets - prev[1], octets - prev[2]
                else:
                    dp, db = packets, octets      # a new flow, or OVS restarted its counters
                if dp or db or label in self.totals:
                    total = self._total(label)
                    total[0] += dp
                    total[1] += db
            self.last[node] = dict(samples)

    def forget(self, node: str) -> None:
        with self.lock:
            self.last.pop(node, None)

    def _total(self, label: tuple) -> list[int]:
        total = self.totals.get(label)
        if total is None:
            if len(self.totals) >= self.max_rules:
                label = (label[0], OTHER, label[2]) if label[0] == SERVICE else (OTHER,) + label[1:]
                total = self.totals.get(label)
            if total is None:
                total = self.totals[label] = [0, 0]
        return total

    def value(self, rule: str, action: str | None = None) -> tuple[int, int]:
        """(packets, bytes) counted for ``rule`` so far (all directions; one action if given)."""
        with self.lock:
            out = [0, 0]
            for (r, a, _), (p, b) in self.totals.items():
                if r == rule and action in (None, a):
                    out[0] += p
                    out[1] += b
            return out[0], out[1]

    def describe(self):
        return []

    def collect(self):
        packets = CounterMetricFamily("vpcnet_policy_rule_packets", "Packets decided by a security rule "
                                      "(NetworkPolicy, SecurityGroup, default deny, revoked), summed over nodes",
                                      labels=["rule", "action", "direction"])
        octets = CounterMetricFamily("vpcnet_policy_rule_bytes", "Bytes decided by a security rule, summed over "
                                     "nodes", labels=["rule", "action", "direction"])
        logged = CounterMetricFamily("vpcnet_policy_denied_logged", "Denied connections that reached the "
                                     "audit log (after the datapath meter)")
        conns = CounterMetricFamily("vpcnet_service_connections", "New connections to a Service (its cluster IP "
                                    "ports), summed over nodes", labels=["service"])
        svc_packets = CounterMetricFamily("vpcnet_service_packets", "Packets of a Service's connections after "
                                          "the first, both ways, summed over the clients' nodes", labels=["service"])
        svc_bytes = CounterMetricFamily("vpcnet_service_bytes", "Bytes of a Service's connections after the "
                                        "first, both ways, summed over the clients' nodes", labels=["service"])
        with self.lock:
            for label, (p, b) in sorted(self.totals.items()):
                if label[0] == SERVICE:
                    if label[2] == "connections":
                        conns.add_metric([label[1]], p)
                    else:
                        svc_packets.add_metric([label[1]], p)
                        svc_bytes.add_metric([label[1]], b)
                    continue
                packets.add_metric(list(label), p)
                octets.add_metric(list(label), b)
            logged.add_metric([], self.denied_logged)
        return [packets, octets, logged, conns, svc_packets, svc_bytes]


# --- deny log ---------------------------------------------------------------------------------
def five_tuple(frame: bytes) -> dict | None:
    """protocol, addresses and ports (ICMP: type/code) of an Ethernet frame carrying IPv4/IPv6
    (VLAN tags skipped), or None for anything else."""
    off = 12
    eth_type = struct.unpack_from("!H", frame, off)[0] if len(frame) >= 14 else None
    while eth_type in (0x8100, 0x88A8) and len(frame) >= off + 6:
        off += 4
        eth_type = struct.unpack_from("!H", frame, off)[0]
    off += 2
    if eth_type == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        src, dst = ipaddress.IPv4Address(frame[off + 12:off + 16]), ipaddress.IPv4Address(frame[off + 16:off + 20])
        l4 = off + ihl
    elif eth_type == 0x86DD and len(frame) >= off + 40:
        proto = frame[off + 6]
        src, dst = ipaddress.IPv6Address(frame[off + 8:off + 24]), ipaddress.IPv6Address(frame[off + 24:off + 40])
        l4 = off + 40
    else:
        return None
    out = {"proto": {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}.get(proto, str(proto)),
           "src": str(src), "dst": str(dst)}
    if proto in (6, 17, 132) and len(frame) >= l4 + 4:
        out["sport"], out["dport"] = struct.unpack_from("!HH", frame, l4)
    elif proto in (1, 58) and len(frame) >= l4 + 2:
        out["icmp_type"], out["icmp_code"] = frame[l4], frame[l4 + 1]
    return out


class DenyLog:
    """Turns the deny verdicts' packet-ins into audit log lines (see the module doc).
    ``resolve(vpc_id, rule_id, ip, direction)`` -> (VPC name, rule key, "namespace/pod") from the
    current compiler input (the flow engine provides it)."""

    def __init__(self, counters: RuleCounters, resolve):
        self.counters = counters
        self.resolve = resolve

    def record(self, node: str, data: bytes, user: bytes) -> dict | None:
        if len(user) != LOG_USERDATA.size:
            return None
        rid, vpc_id, d = LOG_USERDATA.unpack(user)
        direction = DIRECTIONS[d] if d < len(DIRECTIONS) else str(d)
        tup = five_tuple(data)
        if tup is None:
            return None
        pod_ip = tup["src"] if direction == "egress" else tup["dst"]
        vpc, rule, pod = self.resolve(vpc_id, rid, pod_ip, direction)
        event = {"event": "denied", "node": node, "vpc": vpc, "pod": pod, "direction": direction,
                 "rule": rule, **tup}
        AUDIT_LOG.warning("%s", json.dumps(event, sort_keys=True))
        with self.counters.lock:
            self.counters.denied_logged += 1
        return event
