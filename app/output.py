"""How objects look to a person (aligned tables) and to scripts (JSON/YAML)."""
from __future__ import annotations

import datetime
import json

import yaml


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _ms(value) -> str:
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _join(items) -> str:
    return ",".join(str(i) for i in items) if items else "-"


def _meta(o):
    return o["metadata"]


def _ports(spec):
    return _join(f"{p['port']}/{p.get('protocol', 'TCP')}" + (f":{p['nodePort']}" if p.get("nodePort") else "")
                 for p in spec.get("ports", []))


def _endpoints(spec):
    ips = [a["ip"] for s in spec.get("subsets", []) for a in s.get("addresses", [])]
    return _join(ips[:4]) + (f" +{len(ips) - 4} more" if len(ips) > 4 else "")


def _selector(sel):
    labels = sel.get("matchLabels", {}) if sel else {}
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if sel and sel.get("matchExpressions"):
        text += (" " if text else "") + f"+{len(sel['matchExpressions'])} expr"
    return text or "<all>"


# kind -> (headers, row function, extra wide headers, extra wide row function)
COLUMNS = {
    "Vpc": (["NAME", "VNI", "L3MODE", "NAMESPACES", "SUBNETS"],
            lambda o: [_meta(o)["name"], o["status"].get("vni"), o["spec"].get("l3Mode"),
                       _join(o["spec"].get("namespaces")), _join(o["status"].get("subnets"))],
            ["PEERS"], lambda o: [_join(o["spec"].get("peers"))]),
    "Subnet": (["NAME", "VPC", "CIDR", "GATEWAY", "VLAN", "VNI", "USED", "AVAILABLE"],
               lambda o: [_meta(o)["name"], o["spec"].get("vpc"), o["spec"]["cidrBlock"], o["status"].get("gateway"),
                          o["status"].get("vlan"), o["status"].get("vni"), o["status"].get("used"),
                          o["status"].get("available")],
               ["QUARANTINED", "NAMESPACES", "EXCLUDE", "PRIVATE"],
               lambda o: [o["status"].get("quarantined"), _join(o["spec"].get("namespaces")),
                          _join(o["spec"].get("excludeIps")), o["spec"].get("private")]),
    "Namespace": (["NAME", "VPC", "SUBNETS", "LABELS"],
                  lambda o: [_meta(o)["name"], o["spec"].get("vpc") or "-", _join(o["spec"].get("subnets")),
                             _join(f"{k}={v}" for k, v in sorted(_meta(o).get("labels", {}).items()))],
                  [], lambda o: []),
    "Pod": (["NAMESPACE", "NAME", "IP", "MAC", "SUBNET", "NODE"],
            lambda o: [_meta(o)["namespace"], _meta(o)["name"], o["status"].get("ip") or "<pending>",
                       o["status"].get("mac"), o["status"].get("subnet"), o["status"].get("node") or "-"],
            ["VPC", "VLAN", "GATEWAY", "PORT"],
            lambda o: [o["status"].get("vpc"), o["status"].get("vlan"), o["status"].get("gateway"),
                       o["status"].get("port") or "-"]),
    "Node": (["NAME", "DATAPATH", "BRIDGE", "UPLINK", "LEAF", "LEAFPORT"],
             lambda o: [_meta(o)["name"], o["spec"]["datapathId"], o["spec"].get("bridge"), o["spec"]["uplinkPort"],
                        o["spec"].get("leaf") or "-", o["spec"].get("leafPort") or "-"],
             [], lambda o: []),
    "Leaf": (["NAME", "DRIVER", "ADDRESS", "VTEP", "ASN", "MODEL"],
             lambda o: [_meta(o)["name"], o["spec"]["driver"], o["spec"]["managementAddress"], o["spec"]["vtepIp"],
                        o["spec"]["asn"], o["spec"].get("model")],
             [], lambda o: []),
    "SecurityGroup": (["NAME", "NAMESPACES", "RULES", "ALLOW-SAME-GROUP"],
                      lambda o: [_meta(o)["name"], _join(o["spec"].get("namespaces")), len(o["spec"].get("rules", [])),
                                 o["spec"].get("allowSameGroup")],
                      [], lambda o: []),
    "NetworkPolicy": (["NAMESPACE", "NAME", "POD-SELECTOR", "TYPES"],
                      lambda o: [_meta(o)["namespace"], _meta(o)["name"], _selector(o["spec"].get("podSelector")),
                                 _join(o["spec"].get("policyTypes"))],
                      [], lambda o: []),
    "Service": (["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORTS"],
                lambda o: [_meta(o)["namespace"], _meta(o)["name"], o["spec"].get("type"),
                           o["spec"].get("clusterIP") or "-", _ports(o["spec"])],
                ["SELECTOR", "AFFINITY"],
                lambda o: [_join(f"{k}={v}" for k, v in sorted((o["spec"].get("selector") or {}).items())),
                           o["spec"].get("sessionAffinity")]),
    "Endpoints": (["NAMESPACE", "NAME", "ENDPOINTS"],
                  lambda o: [_meta(o)["namespace"], _meta(o)["name"], _endpoints(o["spec"])],
                  [], lambda o: []),
}


def objects_table(kind: str, items: list[dict], wide: bool = False) -> str:
    headers, row, wide_headers, wide_row = COLUMNS[kind]
    if wide:
        return table(headers + wide_headers, [row(o) + wide_row(o) for o in items])
    return table(headers, [row(o) for o in items])


def history_table(items: list[dict]) -> str:
    return table(["VPC", "IP", "HELD-BY", "MAC", "SUBNET", "NODE", "FROM (UTC)", "TO (UTC)"],
                 [[h["vpc"], h["ip"], h["owner"], h["mac"], h["subnet"], h["node"] or "-", _ms(h["from_ms"]),
                   _ms(h["to_ms"]) if h["to_ms"] else "(holds it)"] for h in items])


def describe(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip()


def dump(data, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    return yaml.safe_dump(data, sort_keys=False).rstrip()
