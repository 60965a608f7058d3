"""Spec validators for the policy kinds: SecurityGroup, NetworkPolicy."""
from __future__ import annotations

from typing import Any

from .errors import Reporter, idx
from .fields import (
    Fields, check_list, check_map, comma_list, dns_label, dns_subdomain, is_int, list_of,
    one_of,
)
from .net import check_cidr, check_port, check_port_or_name, cidr_text
from .shared import SpecContext, label_selector

__all__ = ["VALIDATORS", "parse_port_ranges"]

_SG_REMOTES = ("remoteCidr", "remoteSecurityGroup", "remoteNamespace")
_NP_PROTOCOLS = ("TCP", "UDP", "SCTP")


# ---------------------------------------------------------------------------- SecurityGroup
def _port_range(r: Reporter, path: str, item: Any) -> list[int] | None:
    """``80`` / ``"80"`` / ``"1000-2000"`` / ``[1000, 2000]`` -> ``[lo, hi]``."""
    if is_int(item):
        port = check_port(r, path, item)
        return None if port is None else [port, port]
    if isinstance(item, list) and len(item) == 2 and all(is_int(p) for p in item):
        lo, hi = item
    elif isinstance(item, str):
        lo_text, dash, hi_text = item.strip().partition("-")
        texts = (lo_text, hi_text) if dash else (lo_text, lo_text)
        if not all(t.strip().isdigit() and t.strip().isascii() for t in texts):
            r.bad(path, item, "is not a port or a 'lo-hi' port range")
            return None
        lo, hi = (int(t) for t in texts)
    else:
        r.bad(path, item, "is not a port or a 'lo-hi' port range")
        return None
    for port in (lo, hi):
        if not 1 <= port <= 65535:
            r.bad(path, item, f"has port {port} out of range 1..65535")
            return None
    if lo > hi:
        r.bad(path, item, f"is an empty range: {lo} is above {hi}")
        return None
    return [lo, hi]


def parse_port_ranges(r: Reporter, path: str, value: Any) -> list[list[int]] | None:
    """``"80,443,1000-2000"`` (or a list of ports / ranges / ``[lo, hi]`` pairs) ->
    ``[[80, 80], [443, 443], [1000, 2000]]``."""
    if isinstance(value, str):
        items: list = comma_list(r, path, value)  # type: ignore[assignment]
        if items is None:
            return None
    elif is_int(value):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        r.wrong_type(path, value, "a port list such as '80,443,1000-2000'")
        return None
    ranges = [_port_range(r, path, item) for item in items]
    return None if any(x is None for x in ranges) else ranges  # type: ignore[return-value]


def _sg_rule(r: Reporter, path: str, value: Any, index: int) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    name = f.get("name", dns_label)
    f.ignore("id")  # derived on output (name or index); accepted so manifests round-trip
    rule: dict[str, Any] = {
        "id": name if name is not None else str(index),
        "direction": f.enum("direction", ("ingress", "egress"), required=True, fold_case=True),
        "protocol": f.enum("protocol", ("tcp", "udp", "icmp", "any"), default="any",
                           fold_case=True),
        "ports": f.get("ports", parse_port_ranges, default=[]),
    }
    if name is not None:
        rule["name"] = name
    if rule["ports"] and rule["protocol"] in ("icmp", "any"):
        r.bad(f.at("ports"), f.data.get("ports"), "only applies to protocol tcp or udp, not "
                                                  f"{rule['protocol']}")
    remotes = [k for k in _SG_REMOTES if f.has(k)]
    if len(remotes) > 1:
        r.error(path, f"give at most one of {', '.join(_SG_REMOTES)} (got {', '.join(remotes)})")
    for key, check in zip(_SG_REMOTES, (cidr_text, dns_subdomain, dns_label)):
        remote = f.get(key, check)
        if remote is not None:
            rule[key] = remote
    rule["action"] = f.enum("action", ("allow", "deny"), default="allow", fold_case=True)
    rule["priority"] = f.int("priority", 1, 1000, default=100)
    f.done()
    return rule


def security_group_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    r = f.r
    same = f.bool("allowSameGroup")
    alias = f.bool("allowSameGroupTraffic")
    if f.has("allowSameGroup") and f.has("allowSameGroupTraffic"):
        r.error(f.at("allowSameGroupTraffic"), "is an alias of allowSameGroup; give only one")
    spec: dict[str, Any] = {
        "allowSameGroup": same if same is not None else (alias if alias is not None else False),
        "namespaces": f.list("namespaces", dns_label, unique=True),
    }
    raw = f.get("rules", check_list, default=[])
    rules = []
    if raw is not None:
        ids: dict[str, int] = {}
        for i, item in enumerate(raw):
            rule = _sg_rule(r, idx(f.at("rules"), i), item, i)
            if rule is None:
                continue
            if rule["id"] in ids:
                r.bad(idx(f.at("rules"), i), rule["id"], "is already the id of rule "
                                                         f"{ids[rule['id']]}")
            ids.setdefault(rule["id"], i)
            rules.append(rule)
    spec["rules"] = rules
    f.done()
    return spec


# ---------------------------------------------------------------------------- NetworkPolicy
def _ip_block(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    cidr = f.get("cidr", lambda r, p, v: check_cidr(r, p, v), required=True)
    excepts = f.get("except", check_list, default=[])
    f.done()
    out = []
    for i, item in enumerate(excepts or []):
        at = idx(f.at("except"), i)
        exc = check_cidr(r, at, item)
        if exc is None or cidr is None:
            continue
        if exc.version != cidr.version:
            r.bad(at, item, f"is not the same address family as cidr {cidr}")
        elif exc not in cidr or exc.prefixlen <= cidr.prefixlen:
            r.bad(at, item, f"is not strictly inside cidr {cidr}")
        else:
            out.append(str(exc))
    if cidr is None or excepts is None or len(out) != len(excepts):
        return None
    return {"cidr": str(cidr), "except": out}


def _peer(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    peer = {
        "podSelector": f.get("podSelector", label_selector),
        "namespaceSelector": f.get("namespaceSelector", label_selector),
        "ipBlock": f.get("ipBlock", _ip_block),
    }
    f.done()
    given = [k for k in peer if f.has(k)]
    if not given:
        r.error(path, "a peer needs podSelector, namespaceSelector or ipBlock")
        return None
    if "ipBlock" in given and len(given) > 1:
        r.error(path, "ipBlock cannot be combined with podSelector or namespaceSelector")
        return None
    if any(peer[k] is None for k in given):
        return None
    return {k: peer[k] for k in given}


def _np_port(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    out: dict[str, Any] = {
        "protocol": f.enum("protocol", _NP_PROTOCOLS, default="TCP", fold_case=True)}
    port = f.get("port", check_port_or_name)
    end = f.get("endPort", check_port)
    f.done()
    ok = None not in out.values() and (port is not None or not f.has("port")) and (
        end is not None or not f.has("endPort"))
    if f.has("endPort") and not is_int(f.data.get("port")):
        r.error(f.at("endPort"), "needs a numeric port")
        ok = False
    elif is_int(port) and is_int(end) and end < port:
        r.bad(f.at("endPort"), end, f"is below port {port}")
        ok = False
    if not ok:
        return None
    if port is not None:
        out["port"] = port
    if end is not None:
        out["endPort"] = end
    return out


def _np_rule(peer_key: str):
    def check(r: Reporter, path: str, value: Any) -> dict | None:
        if check_map(r, path, value) is None:
            return None
        f = Fields(r, value, path)
        peers = f.get(peer_key, list_of(_peer), default=[])
        ports = f.get("ports", list_of(_np_port), default=[])
        f.done()
        if peers is None or ports is None:
            return None
        return {peer_key: peers, "ports": ports}
    return check


def network_policy_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": f.get("podSelector", label_selector, required=True)}
    types = f.get("policyTypes", list_of(one_of(("Ingress", "Egress")), unique=True))
    spec["ingress"] = f.get("ingress", list_of(_np_rule("from")), default=[])
    spec["egress"] = f.get("egress", list_of(_np_rule("to")), default=[])
    if not f.data.get("policyTypes"):
        # Upstream defaulting: Ingress always, Egress when there are egress rules.
        raw_egress = f.data.get("egress")
        types = ["Ingress"] + (["Egress"] if isinstance(raw_egress, list) and raw_egress else [])
    spec["policyTypes"] = types
    f.done()
    return spec


VALIDATORS = {"SecurityGroup": security_group_spec, "NetworkPolicy": network_policy_spec}

