"""Spec validators for the workload/infrastructure kinds: Pod, Node, Leaf."""
from __future__ import annotations

import re
from typing import Any

from .errors import Reporter, mkey
from .fields import (
    Fields, check_map, check_nonempty_str, comma_list, dns_label, dns_subdomain,
    iana_svc_name, iface_name, list_of, suggest,
)
from .net import check_mac, check_port, ip_check, ip_list, is_unicast, parse_ip
from .shared import SpecContext

__all__ = [
    "VALIDATORS", "ANN_IP_ADDRESS", "ANN_MAC_ADDRESS", "ANN_SUBNET", "ANN_IP_POOL",
    "ANN_SECURITY_GROUPS", "ANN_ORIGIN", "POD_ANNOTATIONS", "LEAF_DEFAULT_PORTS", "LEAF_MODELS",
]

ANN_PREFIX = "vpcnet.io/"
ANN_IP_ADDRESS = "vpcnet.io/ip_address"
ANN_MAC_ADDRESS = "vpcnet.io/mac_address"
ANN_SUBNET = "vpcnet.io/subnet"
ANN_IP_POOL = "vpcnet.io/ip_pool"
ANN_SECURITY_GROUPS = "vpcnet.io/security_groups"
ANN_ORIGIN = "vpcnet.io/origin"   # set by the store: "cni" = created by the CNI path, released by CNI DEL
POD_ANNOTATIONS = (ANN_IP_ADDRESS, ANN_MAC_ADDRESS, ANN_SUBNET, ANN_IP_POOL, ANN_SECURITY_GROUPS, ANN_ORIGIN)

LEAF_DEFAULT_PORTS = {"netconf": 830, "vtep": 6640}
# The NETCONF data models vpcnet renders (fabric/render.py); "vpcnet-leaf" is vpcnet's own small
# model, spoken by the lab's leaves (netconfd cannot load OpenConfig network-instance).
LEAF_MODELS = ("openconfig", "nxos", "huawei", "vpcnet-leaf")
_NETNS_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PROTOCOLS = ("TCP", "UDP", "SCTP")


# ---------------------------------------------------------------------------- Pod
def _container_port(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    name = f.get("name", iana_svc_name)
    port = f.get("containerPort", check_port, required=True)
    proto = f.enum("protocol", _PROTOCOLS, default="TCP", fold_case=True)
    f.ignore("hostPort", "hostIP")  # real pod manifests carry them; we do not use them
    f.done()
    if port is None or proto is None or (name is None and f.has("name")):
        return None
    out: dict[str, Any] = {"containerPort": port, "protocol": proto}
    if name is not None:
        out["name"] = name
    return out


def _container(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    name = f.get("name", dns_label, required=True)
    ports = f.list("ports", _container_port)
    f.done(allow_unknown=True)  # image, command, resources ... are accepted and dropped
    if ports:
        seen: dict[str, int] = {}
        for i, port in enumerate(ports):
            pname = port.get("name")
            if pname is not None and pname in seen:
                r.bad(f"{f.at('ports')}[{i}].name", pname, "is used by another port of this "
                                                          "container")
            seen.setdefault(pname, i)
    if name is None or ports is None:
        return None
    return {"name": name, "ports": ports}


def _pod_annotations(r: Reporter, ann: dict[str, str]) -> None:
    """Validate and normalise the ``vpcnet.io/*`` pod annotations in place."""
    path = "metadata.annotations"
    for key in list(ann):
        if key.startswith(ANN_PREFIX) and key not in POD_ANNOTATIONS:
            r.error(mkey(path, key), "unknown vpcnet.io annotation"
                    f"{suggest(key, POD_ANNOTATIONS)} (known: {', '.join(POD_ANNOTATIONS)})")

    def at(key: str) -> str:
        return mkey(path, key)

    if ANN_IP_ADDRESS in ann:
        addrs = ip_list(r, at(ANN_IP_ADDRESS), ann[ANN_IP_ADDRESS])
        if addrs is not None:
            for version in (4, 6):
                if sum(a.version == version for a in addrs) > 1:
                    r.bad(at(ANN_IP_ADDRESS), ann[ANN_IP_ADDRESS],
                          f"has more than one IPv{version} address")
            ann[ANN_IP_ADDRESS] = ",".join(str(a) for a in addrs)
    if ANN_MAC_ADDRESS in ann:
        mac = check_mac(r, at(ANN_MAC_ADDRESS), ann[ANN_MAC_ADDRESS])
        if mac is not None:
            ann[ANN_MAC_ADDRESS] = mac
    if ANN_SUBNET in ann:
        dns_subdomain(r, at(ANN_SUBNET), ann[ANN_SUBNET])
    if ANN_IP_POOL in ann:
        pool = ip_list(r, at(ANN_IP_POOL), ann[ANN_IP_POOL])
        if pool is not None:
            seen = set()
            for a in pool:
                if a in seen:
                    r.bad(at(ANN_IP_POOL), str(a), "is listed more than once")
                seen.add(a)
            ann[ANN_IP_POOL] = ",".join(str(a) for a in pool)
    if ANN_SECURITY_GROUPS in ann:
        names = comma_list(r, at(ANN_SECURITY_GROUPS), ann[ANN_SECURITY_GROUPS])
        if names is not None:
            ok = all(dns_subdomain(r, at(ANN_SECURITY_GROUPS), n) is not None for n in names)
            if len(set(names)) != len(names):
                r.bad(at(ANN_SECURITY_GROUPS), ann[ANN_SECURITY_GROUPS],
                      "lists a security group more than once")
            elif ok:
                ann[ANN_SECURITY_GROUPS] = ",".join(names)
    if ANN_IP_ADDRESS in ann and ANN_IP_POOL in ann:
        r.error(at(ANN_IP_POOL), f"cannot be combined with {ANN_IP_ADDRESS}: use one or the "
                                 "other")


def pod_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    node = f.get("nodeName", dns_subdomain)
    if node is not None:
        spec["nodeName"] = node
    containers = f.list("containers", _container)
    if containers:
        seen: set[str] = set()
        for i, c in enumerate(containers):
            if c["name"] in seen:
                f.r.bad(f"{f.at('containers')}[{i}].name", c["name"], "is used by another "
                                                                      "container")
            seen.add(c["name"])
    spec["containers"] = containers
    f.done(allow_unknown=True)  # real pod specs carry many fields we do not use
    _pod_annotations(f.r, ctx.annotations)
    return spec


# ---------------------------------------------------------------------------- Node
_HEX16 = re.compile(r"[0-9a-f]{16}")


def _datapath_id(r: Reporter, path: str, value: Any) -> str | None:
    """16 hex digits; ``0x`` prefix and ``:`` separators accepted; -> lowercase digits."""
    if not isinstance(value, str):
        r.wrong_type(path, value, "a string of 16 hex digits (quote it: YAML reads "
                                  "0000000000000001 as a number)")
        return None
    text = value.lower()
    if text.startswith("0x"):
        text = text[2:]
    text = text.replace(":", "")
    if not _HEX16.fullmatch(text):
        r.bad(path, value, "is not a datapath id (16 hex digits, optionally with a 0x prefix "
                           "or ':' separators)")
        return None
    return text


def node_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    r = f.r
    spec: dict[str, Any] = {
        "datapathId": f.get("datapathId", _datapath_id, required=True),
        "bridge": f.get("bridge", iface_name, default="br-int"),
        "uplinkPort": f.get("uplinkPort", iface_name, required=True),
    }
    leaf = f.get("leaf", dns_subdomain)
    leaf_port = f.get("leafPort", check_nonempty_str)
    if f.has("leaf") and not f.has("leafPort"):
        r.error(f.at("leafPort"), "is required when spec.leaf is set")
    if f.has("leafPort") and not f.has("leaf"):
        r.bad(f.at("leafPort"), f.data.get("leafPort"), "needs spec.leaf (which leaf the port "
                                                        "is on)")
    if leaf is not None:
        spec["leaf"] = leaf
    if leaf_port is not None:
        spec["leafPort"] = leaf_port
    for key in ("tunnelIp", "managementIp"):
        value = f.get(key, ip_check())
        if value is not None:
            spec[key] = value
    ovsdb = f.get("ovsdb", _ovsdb_remote)
    if ovsdb is not None:
        spec["ovsdb"] = ovsdb
    # NodePort: the node's external NIC as a port of its bridge, its IPv4 address on the bridge
    external = f.get("externalPort", iface_name)
    node_ip = f.get("nodeIP", ip_check(version=4))
    if f.has("externalPort") != f.has("nodeIP"):
        missing = "nodeIP" if f.has("externalPort") else "externalPort"
        r.error(f.at(missing), "is required when spec." + ("externalPort" if missing == "nodeIP" else "nodeIP")
                + " is set (NodePorts need both)")
    if external is not None and external == spec.get("uplinkPort"):
        r.bad(f.at("externalPort"), external, "is the uplink port; the external NIC is another port")
    if external is not None:
        spec["externalPort"] = external
    if node_ip is not None:
        spec["nodeIP"] = node_ip
    f.done()
    return spec


_OVSDB_REMOTE = re.compile(r"(unix:/\S+|(tcp|ssl):(\[[0-9a-fA-F:.]+\]|[0-9A-Za-z.-]+):[0-9]{1,5})")


def _ovsdb_remote(r: Reporter, path: str, value: Any) -> str | None:
    """The node's Open_vSwitch database (where br-int's restart round is kept)."""
    if not isinstance(value, str) or not _OVSDB_REMOTE.fullmatch(value):
        r.bad(path, value, "is not an OVSDB remote (unix:/PATH, tcp:HOST:PORT or ssl:HOST:PORT)")
        return None
    return value


# ---------------------------------------------------------------------------- Leaf
_IPV4ISH = re.compile(r"[0-9.]+")


def _host_port(r: Reporter, path: str, value: str, default_port: int) -> str | None:
    """``host[:port]`` / ``[v6][:port]`` / bare IPv6 -> ``host:port``."""
    def bad(problem: str) -> None:
        r.bad(path, value, problem)

    port_text = None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        addr = parse_ip(host)
        if not sep or addr is None or addr.version != 6:
            bad("is not a valid '[IPv6]:port' address")
            return None
        if rest:
            if not rest.startswith(":"):
                bad("has junk after ']' (expected ':port')")
                return None
            port_text = rest[1:]
        host_text = f"[{addr}]"
    elif value.count(":") >= 2:
        addr = parse_ip(value)
        if addr is None:
            bad("is not an IP address (put IPv6 addresses with a port in [brackets])")
            return None
        host_text = f"[{addr}]"
    else:
        host, sep, rest = value.partition(":")
        if sep:
            port_text = rest
        addr = parse_ip(host)
        if addr is not None:
            host_text = str(addr)
        elif _IPV4ISH.fullmatch(host):
            r.bad(path, host, "is not an IP address")
            return None
        else:
            host_text = host.lower()
            if not host_text or dns_subdomain(Reporter(), path, host_text) is None:
                bad("is not a valid host name or IP address")
                return None
    if addr is not None and not is_unicast(addr):
        bad("is not a usable unicast address")
        return None
    port = default_port
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65535:
            r.bad(path, port_text, "is not a valid port (1..65535)")
            return None
        port = int(port_text)
    return f"{host_text}:{port}"


_UNIX_PATH = re.compile(r"/[^\x00-\x20\x7f]*")


def _vtep_unix_remote(r: Reporter, path: str, value: str) -> str | None:
    """``unix:/PATH`` for a hardware VTEP: its hardware_vtep OVSDB served on a unix socket of the
    controller host (the lab's emulated VTEPs; ovsdbapp cannot dial from another netns)."""
    sock = value[len("unix:"):]
    if not _UNIX_PATH.fullmatch(sock) or len(sock) > 107 or "/../" in f"{sock}/":
        r.bad(path, value, "is not a unix socket remote (unix:/ABSOLUTE/PATH, at most 107 "
                           "characters, no spaces or '..')")
        return None
    return value


def leaf_spec(f: Fields, ctx: SpecContext) -> dict[str, Any]:
    r = f.r
    driver = f.enum("driver", tuple(LEAF_DEFAULT_PORTS), required=True)
    mgmt = f.str("managementAddress", required=True)
    if mgmt is not None and driver == "vtep" and mgmt.startswith("unix:"):
        mgmt = _vtep_unix_remote(r, f.at("managementAddress"), mgmt)
    elif mgmt is not None:
        mgmt = _host_port(r, f.at("managementAddress"), mgmt,
                          LEAF_DEFAULT_PORTS.get(driver, 830))
    spec: dict[str, Any] = {"driver": driver, "managementAddress": mgmt}
    cred = f.get("credentialsRef", dns_subdomain)
    if cred is not None:
        spec["credentialsRef"] = cred
    namespace = f.get("managementNamespace", _netns_name)
    if namespace is not None:
        spec["managementNamespace"] = namespace
    spec["vtepIp"] = f.get("vtepIp", ip_check(version=4), required=True)
    spec["asn"] = f.int("asn", 1, 4294967295, required=True)
    model = f.enum("model", LEAF_MODELS, default="openconfig")
    netconf_only = ("model", "routerId", "vtepInterface", "peers")
    if driver == "vtep":
        for key in netconf_only:
            if f.has(key):
                r.bad(f.at(key), f.data.get(key), "only applies to driver netconf")
    else:
        spec["model"] = model
        router_id = f.get("routerId", ip_check(version=4))
        if router_id is not None:
            spec["routerId"] = router_id
        vtep_if = f.get("vtepInterface", iface_name)
        if vtep_if is not None:
            spec["vtepInterface"] = vtep_if
        peers = f.list("peers", _bgp_peer)
        if peers is not None and f.has("peers"):
            spec["peers"] = peers
    spec["ports"] = f.get("ports", list_of(check_nonempty_str, unique=True), default=[])
    f.done()
    return spec


def _netns_name(r: Reporter, path: str, value: Any) -> str | None:
    """A network namespace name (as under /var/run/netns): the controller opens its management
    sessions to the leaf from there (a management VRF on a real controller host; the lab's
    management namespace, which has no default route)."""
    if not isinstance(value, str) or not _NETNS_RE.fullmatch(value):
        r.bad(path, value, "must be a network namespace name (1-64 of letters, digits, '.', '_', '-')")
        return None
    return value


def _bgp_peer(r: Reporter, path: str, value: Any) -> dict | None:
    """One BGP EVPN neighbour of the leaf (a spine or route server): address, asn, description."""
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    address = f.get("address", ip_check(), required=True)
    asn = f.int("asn", 1, 4294967295, required=True)
    description = f.str("description")
    f.done()
    if address is None or asn is None:
        return None
    out: dict[str, Any] = {"address": address, "asn": asn}
    if description:
        out["description"] = description
    return out


VALIDATORS = {"Pod": pod_spec, "Node": node_spec, "Leaf": leaf_spec}
