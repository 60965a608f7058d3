"""Spec validators for the service kinds: Service, Endpoints."""
from __future__ import annotations

from typing import Any

from .errors import Reporter, idx, sub
from .fields import (
    Fields, check_bool, check_list, check_map, dns_label, dns_subdomain, int_range, label_map,
)
from .net import check_port, check_port_or_name, ip_check, parse_ip
from .shared import SpecContext

__all__ = ["VALIDATORS", "NODE_PORT_RANGE", "DEFAULT_AFFINITY_TIMEOUT"]

NODE_PORT_RANGE = (30000, 32767)
DEFAULT_AFFINITY_TIMEOUT = 10800
_PROTOCOLS = ("TCP", "UDP")


# ---------------------------------------------------------------------------- Service
def _cluster_ip(r: Reporter, path: str, value: Any) -> str | None:
    if value == "None":
        return "None"
    return ip_check()(r, path, value)


def _service_port(r: Reporter, path: str, value: Any, node_port_ok: bool) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    name = f.get("name", dns_label)
    out: dict[str, Any] = {
        "protocol": f.enum("protocol", _PROTOCOLS, default="TCP", fold_case=True),
        "port": f.get("port", check_port, required=True),
    }
    target = f.get("targetPort", check_port_or_name)
    out["targetPort"] = target if target is not None else out["port"]
    node_port = f.get("nodePort", int_range(*NODE_PORT_RANGE))
    if f.has("nodePort") and not node_port_ok:
        r.bad(f.at("nodePort"), f.data.get("nodePort"), "is only allowed for type NodePort")
    f.done()
    bad = any(v is None for v in out.values()) or (name is None and f.has("name")) or (
        node_port is None and f.has("nodePort")) or (target is None and f.has("targetPort"))
    if bad:
        return None
    if name is not None:
        out["name"] = name
    if node_port is not None:
        out["nodePort"] = node_port
    return out


def _service_ports(f: Fields, node_port_ok: bool) -> list | None:
    r, path = f.r, f.at("ports")
    raw = f.get("ports", check_list, required=True)
    if raw is None:
        return None
    if not raw:
        r.error(path, "at least one port is required")
        return None
    ports = [_service_port(r, idx(path, i), v, node_port_ok) for i, v in enumerate(raw)]
    seen: dict[Any, int] = {}
    for i, port in enumerate(ports):
        if port is None:
            continue
        at = idx(path, i)
        if len(ports) > 1 and "name" not in port:
            r.error(sub(at, "name"), "is required when a service has more than one port")
        for key, what in (
            (("name", port.get("name")), "name"),
            (("port", port["port"], port["protocol"]), "port/protocol"),
            (("nodePort", port.get("nodePort"), port["protocol"]), "nodePort/protocol"),
        ):
            if key[1] is None:
                continue
            if key in seen:
                shown = "/".join(str(k) for k in key[1:])
                r.bad(at, shown, f"repeats the {what} of {idx(path, seen[key])}")
            seen.setdefault(key, i)
    return None if any(p is None for p in ports) else ports


def _affinity_config(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    client = f.map("clientIP", default={})
    f.done()
    if client is None:
        return None
    g = Fields(r, client, f.at("clientIP"))
    timeout = g.int("timeoutSeconds", 1, 86400, default=DEFAULT_AFFINITY_TIMEOUT)
    g.done()
    return None if timeout is None else {"clientIP": {"timeoutSeconds": timeout}}


def service_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    r = f.r
    kind = f.enum("type", ("ClusterIP", "NodePort"), default="ClusterIP")
    spec: dict[str, Any] = {"type": kind}
    cluster_ip = f.get("clusterIP", _cluster_ip) if f.data.get("clusterIP") != "" else None
    f.ignore("clusterIP")
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
        if cluster_ip == "None" and kind == "NodePort":
            r.error(f.at("clusterIP"), "a headless service (clusterIP: None) cannot be NodePort")
    spec["ports"] = _service_ports(f, node_port_ok=kind == "NodePort")
    selector = f.get("selector", label_map)
    if selector is not None:
        spec["selector"] = selector
    affinity = f.enum("sessionAffinity", ("None", "ClientIP"), default="None")
    spec["sessionAffinity"] = affinity
    config = f.get("sessionAffinityConfig", _affinity_config)
    if affinity == "ClientIP":
        spec["sessionAffinityConfig"] = config or {
            "clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_TIMEOUT}}
    elif f.has("sessionAffinityConfig") and affinity == "None":
        r.error(f.at("sessionAffinityConfig"), "only applies with sessionAffinity: ClientIP")
    policies = ("Cluster", "Local")
    spec["externalTrafficPolicy"] = f.enum("externalTrafficPolicy", policies, default="Cluster")
    if spec["externalTrafficPolicy"] == "Local" and kind == "ClusterIP":
        r.bad(f.at("externalTrafficPolicy"), "Local", "is only allowed for type NodePort")
    spec["internalTrafficPolicy"] = f.enum("internalTrafficPolicy", policies, default="Cluster")
    f.done()
    return spec


# ---------------------------------------------------------------------------- Endpoints
def _kind_name(r: Reporter, path: str, value: Any) -> str | None:
    if not (isinstance(value, str) and value.isascii() and value.isalnum()
            and value[:1].isupper()):
        r.bad(path, value, "is not a kind name (e.g. Pod)")
        return None
    return value


def _target_ref(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    ref = {
        "kind": f.get("kind", _kind_name),
        "namespace": f.get("namespace", dns_label),
        "name": f.get("name", dns_subdomain),
    }
    f.ignore("uid", "apiVersion", "resourceVersion", "fieldPath")  # ObjectReference noise
    f.done()
    if any(ref[k] is None and f.has(k) for k in ref):
        return None
    return {k: v for k, v in ref.items() if v is not None}


def _conditions(r: Reporter, path: str, value: Any, ready: bool) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    g = Fields(r, value, path)
    cond = {
        "ready": g.get("ready", check_bool, default=ready),
        "serving": g.get("serving", check_bool, default=ready),
        "terminating": g.get("terminating", check_bool, default=False),
    }
    g.done()
    if cond["ready"] is (not ready):
        where = "addresses" if ready else "notReadyAddresses"
        r.bad(g.at("ready"), not ready, f"contradicts being listed in {where}")
        return None
    return None if None in cond.values() else cond


def _address(ready: bool):
    """An EndpointAddress; ``conditions`` default to ready/serving == ``ready``."""
    def check(r: Reporter, path: str, value: Any) -> dict | None:
        if check_map(r, path, value) is None:
            return None
        f = Fields(r, value, path)
        out: dict[str, Any] = {"ip": f.get("ip", ip_check(), required=True)}
        ok = out["ip"] is not None
        for key, check_fn in (("nodeName", dns_subdomain), ("hostname", dns_label),
                              ("targetRef", _target_ref)):
            v = f.get(key, check_fn)
            if v is not None:
                out[key] = v
            ok = ok and (v is not None or not f.has(key))
        out["conditions"] = f.get("conditions", lambda r, p, v: _conditions(r, p, v, ready),
                                  default={"ready": ready, "serving": ready,
                                           "terminating": False})
        ok = ok and out["conditions"] is not None
        f.done()
        return out if ok else None
    return check


def _endpoint_port(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    name = f.get("name", dns_label)
    out: dict[str, Any] = {
        "port": f.get("port", check_port, required=True),
        "protocol": f.enum("protocol", _PROTOCOLS, default="TCP", fold_case=True),
    }
    f.ignore("appProtocol")
    f.done()
    if None in out.values() or (name is None and f.has("name")):
        return None
    if name is not None:
        out["name"] = name
    return out


def _subset(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    out = {
        "addresses": f.list("addresses", _address(ready=True)),
        "notReadyAddresses": f.list("notReadyAddresses", _address(ready=False)),
        "ports": f.list("ports", _endpoint_port),
    }
    f.done()
    seen: dict[Any, str] = {}
    for key in ("addresses", "notReadyAddresses"):
        for i, addr in enumerate(out[key] or []):
            ip = parse_ip(addr["ip"])
            at = idx(f.at(key), i)
            if ip in seen:
                r.bad(sub(at, "ip"), addr["ip"], f"is already listed at {seen[ip]}")
            seen.setdefault(ip, at)
    names: dict[Any, int] = {}
    for i, port in enumerate(out["ports"] or []):
        at = idx(f.at("ports"), i)
        if len(out["ports"]) > 1 and "name" not in port:
            r.error(sub(at, "name"), "is required when a subset has more than one port")
        elif port.get("name") in names:
            first = idx(f.at("ports"), names[port["name"]])
            r.bad(sub(at, "name"), port["name"], f"is already used by {first}")
        names.setdefault(port.get("name"), i)
    return None if None in out.values() else out


def endpoints_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    spec = {"subsets": f.list("subsets", _subset)}
    f.done()
    return spec


VALIDATORS = {"Service": service_spec, "Endpoints": endpoints_spec}
