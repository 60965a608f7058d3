"""Security policy inputs: SecurityGroup and NetworkPolicy as the compiler sees them.

The app converts the validated intent specs of app/intent/policy.py with ``from_spec``; labels are
sorted (key, value) tuples. ``ClusterIn`` (inputs.py) carries them in ``namespaces``,
``security_groups`` and ``network_policies``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import netaddr

from .checks import (
    NP_PROTOCOLS, NS_NAME_LABEL, POLICY_TYPES, SELECTOR_OPS, SG_PROTOCOLS, InputError, _cidr, _int,
    _labels, _name, _names, _ports, _set, _tuple,
)

@dataclass(frozen=True)
class SelectorIn:
    """A metav1.LabelSelector. The empty selector selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()   # (key, operator, values)

    def __post_init__(self):
        me = "label selector"
        _set(self, "match_labels", _labels(me, "match_labels", self.match_labels))
        exprs = []
        for item in _tuple(me, "match_expressions", self.match_expressions):
            try:
                key, op, values = item
            except (TypeError, ValueError):
                raise InputError(f"{me}: match_expressions entry {item!r} must be (key, operator, values)") from None
            values = tuple(sorted(set(_tuple(me, f"match_expressions {key!r} values", values))))
            if op not in SELECTOR_OPS:
                raise InputError(f"{me}: match_expressions {key!r}: operator={op!r} must be one of {SELECTOR_OPS}")
            if (op in ("In", "NotIn")) != bool(values):
                raise InputError(f"{me}: match_expressions {key!r}: operator {op} "
                                 f"{'needs' if op in ('In', 'NotIn') else 'takes no'} values")
            exprs.append((key, op, values))
        _set(self, "match_expressions", tuple(sorted(set(exprs))))

    @classmethod
    def from_spec(cls, spec: Mapping | None) -> "SelectorIn | None":
        if spec is None:
            return None
        return cls(tuple((spec.get("matchLabels") or {}).items()),
                   tuple((e["key"], e["operator"], tuple(e.get("values") or ())) for e in spec.get("matchExpressions") or ()))

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        for k, op, values in self.match_expressions:
            have = labels.get(k)
            if op == "In" and have not in values:
                return False
            if op == "NotIn" and have is not None and have in values:
                return False
            if op == "Exists" and have is None:
                return False
            if op == "DoesNotExist" and have is not None:
                return False
        return True


@dataclass(frozen=True)
class IpBlockIn:
    cidr: str
    excepts: tuple[str, ...] = ()

    def __post_init__(self):
        me = f"ipBlock {self.cidr!r}"
        _set(self, "cidr", _cidr(me, "cidr", self.cidr))
        _set(self, "excepts", tuple(sorted({_cidr(me, "except", c) for c in _tuple(me, "except", self.excepts)})))
        net = netaddr.IPNetwork(self.cidr)
        for c in self.excepts:
            e = netaddr.IPNetwork(c)
            if e.version != net.version or e not in net or e.prefixlen <= net.prefixlen:
                raise InputError(f"{me}: except {c} is not strictly inside {self.cidr}")

    def contains(self, ip: str) -> bool:
        a = netaddr.IPAddress(ip)
        net = netaddr.IPNetwork(self.cidr)
        return a.version == net.version and a in net and not any(a in netaddr.IPNetwork(c) for c in self.excepts)


@dataclass(frozen=True)
class NpPortIn:
    protocol: str = "TCP"
    port: int | str | None = None        # None: every port of the protocol; str: a named port
    end_port: int | None = None

    def __post_init__(self):
        me = f"networkpolicy port {self.protocol}/{self.port}"
        if self.protocol not in NP_PROTOCOLS:
            raise InputError(f"{me}: protocol={self.protocol!r} must be one of {NP_PROTOCOLS}")
        if isinstance(self.port, str):
            _name(me, "port", self.port)
        elif self.port is not None:
            _int(me, "port", self.port, 1, 65535)
        if self.end_port is not None:
            if not isinstance(self.port, int) or isinstance(self.port, bool):
                raise InputError(f"{me}: end_port={self.end_port!r} needs a numeric port")
            _int(me, "end_port", self.end_port, self.port, 65535)


@dataclass(frozen=True)
class NpPeerIn:
    """podSelector and/or namespaceSelector, or ipBlock alone."""

    pod_selector: SelectorIn | None = None
    namespace_selector: SelectorIn | None = None
    ip_block: IpBlockIn | None = None

    def __post_init__(self):
        sel = self.pod_selector is not None or self.namespace_selector is not None
        if sel == (self.ip_block is not None):
            raise InputError(f"networkpolicy peer {self!r}: give podSelector/namespaceSelector or ipBlock alone")


@dataclass(frozen=True)
class NpRuleIn:
    peers: tuple[NpPeerIn, ...] = ()     # empty: every peer
    ports: tuple[NpPortIn, ...] = ()     # empty: every port and protocol

    def __post_init__(self):
        _set(self, "peers", _tuple("networkpolicy rule", "peers", self.peers))
        _set(self, "ports", _tuple("networkpolicy rule", "ports", self.ports))


@dataclass(frozen=True)
class NetworkPolicyIn:
    namespace: str
    name: str
    pod_selector: SelectorIn = SelectorIn()
    policy_types: tuple[str, ...] = ("Ingress",)
    ingress: tuple[NpRuleIn, ...] = ()
    egress: tuple[NpRuleIn, ...] = ()

    def __post_init__(self):
        me = f"networkpolicy {self.namespace}/{self.name}"
        _set(self, "namespace", _name(me, "namespace", self.namespace))
        _set(self, "name", _name(me, "name", self.name))
        types = _tuple(me, "policy_types", self.policy_types)
        if not set(types) <= set(POLICY_TYPES) or len(set(types)) != len(types):
            raise InputError(f"{me}: policy_types={types!r} must be distinct values of {POLICY_TYPES}")
        _set(self, "policy_types", tuple(t for t in POLICY_TYPES if t in types))
        _set(self, "ingress", _tuple(me, "ingress", self.ingress))
        _set(self, "egress", _tuple(me, "egress", self.egress))

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def from_spec(cls, namespace: str, name: str, spec: Mapping) -> "NetworkPolicyIn":
        """From the validated spec of app/intent/policy.py (``network_policy_spec``)."""
        def peer(p):
            ib = p.get("ipBlock")
            return NpPeerIn(SelectorIn.from_spec(p.get("podSelector")), SelectorIn.from_spec(p.get("namespaceSelector")),
                            IpBlockIn(ib["cidr"], tuple(ib.get("except") or ())) if ib else None)

        def rule(r, key):
            return NpRuleIn(tuple(peer(p) for p in r.get(key) or ()),
                            tuple(NpPortIn(pt.get("protocol", "TCP"), pt.get("port"), pt.get("endPort"))
                                  for pt in r.get("ports") or ()))
        return cls(namespace, name, SelectorIn.from_spec(spec["podSelector"]), tuple(spec["policyTypes"]),
                   tuple(rule(r, "from") for r in spec.get("ingress") or ()),
                   tuple(rule(r, "to") for r in spec.get("egress") or ()))


@dataclass(frozen=True)
class SgRuleIn:
    id: str
    direction: str                       # ingress | egress
    protocol: str = "any"                # tcp | udp | icmp | any
    ports: tuple[tuple[int, int], ...] = ()   # (lo, hi); empty: every port (tcp/udp only)
    remote_cidr: str | None = None       # at most one remote; none: every peer
    remote_sg: str | None = None
    remote_namespace: str | None = None
    action: str = "allow"                # allow | deny
    priority: int = 100                  # 1..1000, lower first

    def __post_init__(self):
        me = f"security group rule {self.id!r}"
        _name(me, "id", self.id)
        if self.direction not in ("ingress", "egress"):
            raise InputError(f"{me}: direction={self.direction!r} must be ingress or egress")
        if self.protocol not in SG_PROTOCOLS:
            raise InputError(f"{me}: protocol={self.protocol!r} must be one of {SG_PROTOCOLS}")
        _set(self, "ports", _ports(me, "ports", self.ports))
        if self.ports and self.protocol not in ("tcp", "udp"):
            raise InputError(f"{me}: ports={self.ports!r} only apply to protocol tcp or udp, not {self.protocol}")
        remotes = [r for r in (self.remote_cidr, self.remote_sg, self.remote_namespace) if r is not None]
        if len(remotes) > 1:
            raise InputError(f"{me}: give at most one of remote_cidr, remote_sg, remote_namespace (got {remotes})")
        if self.remote_cidr is not None:
            _set(self, "remote_cidr", _cidr(me, "remote_cidr", self.remote_cidr))
        for what in ("remote_sg", "remote_namespace"):
            if getattr(self, what) is not None:
                _name(me, what, getattr(self, what))
        if self.action not in ("allow", "deny"):
            raise InputError(f"{me}: action={self.action!r} must be allow or deny")
        _int(me, "priority", self.priority, 1, 1000)


@dataclass(frozen=True)
class SecurityGroupIn:
    name: str
    rules: tuple[SgRuleIn, ...] = ()
    allow_same_group: bool = False
    namespaces: tuple[str, ...] = ()     # every pod of these namespaces is a member

    def __post_init__(self):
        me = f"security group {self.name!r}"
        _set(self, "name", _name(me, "name", self.name))
        _set(self, "rules", _tuple(me, "rules", self.rules))
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise InputError(f"{me}: rules has a rule id twice: {ids}")
        if not isinstance(self.allow_same_group, bool):
            raise InputError(f"{me}: allow_same_group={self.allow_same_group!r} must be a bool")
        _set(self, "namespaces", _names(me, "namespaces", self.namespaces))

    @classmethod
    def from_spec(cls, name: str, spec: Mapping) -> "SecurityGroupIn":
        """From the validated spec of app/intent/policy.py (``security_group_spec``)."""
        rules = tuple(SgRuleIn(r["id"], r["direction"], r.get("protocol", "any"),
                               tuple(tuple(x) for x in r.get("ports") or ()), r.get("remoteCidr"),
                               r.get("remoteSecurityGroup"), r.get("remoteNamespace"), r.get("action", "allow"),
                               r.get("priority", 100)) for r in spec.get("rules") or ())
        return cls(name, rules, bool(spec.get("allowSameGroup")), tuple(spec.get("namespaces") or ()))


@dataclass(frozen=True)
class NamespaceIn:
    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        me = f"namespace {self.name!r}"
        _set(self, "name", _name(me, "name", self.name))
        _set(self, "labels", _labels(me, "labels", self.labels))

    @property
    def effective_labels(self) -> dict[str, str]:
        """Its labels plus ``kubernetes.io/metadata.name=<name>`` (as the API server sets it)."""
        return {**dict(self.labels), NS_NAME_LABEL: self.name}
