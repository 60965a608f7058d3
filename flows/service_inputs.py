"""Service inputs: Kubernetes Services and their Endpoints as the compiler sees them.

The app converts the validated intent specs of app/intent/service.py (Service spec + its allocated
cluster IP, and the Endpoints object of the same name) with ``ServiceIn.from_spec``. ``ClusterIn``
(inputs.py) carries them in ``services``.

Which endpoints take a connection (``ServiceIn.backends``), as kube-proxy decides:
* new connections go to *ready* endpoints; when none is ready, to endpoints that are *serving and
  terminating* (Kubernetes' terminating-endpoint fallback); none of either: the service port has
  no backend and its clients are refused at once;
* ``internalTrafficPolicy: Local`` (pod clients) and ``externalTrafficPolicy: Local`` (NodePort
  clients) keep only the endpoints on the client's node;
* the endpoint port is the Endpoints port of the service port's name (the endpoints controller
  has resolved named target ports per pod); an Endpoints object without that port falls back to a
  numeric ``targetPort``; a named ``targetPort`` then resolves on the endpoint's pod (its named
  container ports), else the endpoint does not serve that port.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .checks import InputError, _int, _ip, _name, _set, _tuple

SERVICE_TYPES = ("ClusterIP", "NodePort")
SERVICE_PROTOCOLS = ("TCP", "UDP")
TRAFFIC_POLICIES = ("Cluster", "Local")
NODE_PORTS = (30000, 32767)
MAX_AFFINITY_TIMEOUT = 86400


@dataclass(frozen=True)
class ServicePortIn:
    name: str                     # "" for the one unnamed port of a single-port service
    protocol: str                 # TCP | UDP
    port: int
    target_port: int | str        # a port number or a container port name
    node_port: int | None = None  # NodePort services only

    def __post_init__(self):
        me = f"service port {self.name or self.port!r}"
        if self.name:
            _name(me, "name", self.name)
        if self.protocol not in SERVICE_PROTOCOLS:
            raise InputError(f"{me}: protocol={self.protocol!r} must be one of {SERVICE_PROTOCOLS}")
        _int(me, "port", self.port, 1, 65535)
        if isinstance(self.target_port, str):
            _name(me, "target_port", self.target_port)
        else:
            _int(me, "target_port", self.target_port, 1, 65535)
        if self.node_port is not None:
            _int(me, "node_port", self.node_port, *NODE_PORTS)


@dataclass(frozen=True)
class EndpointIn:
    ip: str
    node: str = ""                               # nodeName ("" if the Endpoints object has none)
    pod: tuple[str, str] | None = None           # (namespace, name) of a Pod targetRef
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    ports: tuple[tuple[str, str, int], ...] = ()  # (name, protocol, port) of its subset, sorted

    def __post_init__(self):
        me = f"endpoint {self.ip!r}"
        _set(self, "ip", _ip(me, "ip", self.ip))
        if self.node:
            _name(me, "node", self.node)
        if self.pod is not None:
            ns, name = _tuple(me, "pod", self.pod)
            _set(self, "pod", (_name(me, "pod namespace", ns), _name(me, "pod name", name)))
        for what in ("ready", "serving", "terminating"):
            if not isinstance(getattr(self, what), bool):
                raise InputError(f"{me}: {what}={getattr(self, what)!r} must be a bool")
        ports = []
        for item in _tuple(me, "ports", self.ports):
            try:
                name, proto, port = item
            except (TypeError, ValueError):
                raise InputError(f"{me}: ports entry {item!r} must be (name, protocol, port)") from None
            if proto not in SERVICE_PROTOCOLS:
                raise InputError(f"{me}: ports entry {item!r}: protocol must be one of {SERVICE_PROTOCOLS}")
            ports.append((name or "", proto, _int(me, f"port {name!r}", port, 1, 65535)))
        _set(self, "ports", tuple(sorted(set(ports))))

    def port_for(self, name: str, protocol: str) -> int | None:
        for n, proto, port in self.ports:
            if n == name and proto == protocol:
                return port
        return None


@dataclass(frozen=True)
class ServiceIn:
    namespace: str
    name: str
    vpc: str
    cluster_ip: str | None                 # None: headless or not allocated yet (no flows)
    ports: tuple[ServicePortIn, ...]
    endpoints: tuple[EndpointIn, ...] = ()
    type: str = "ClusterIP"
    affinity_timeout: int = 0              # sessionAffinity ClientIP timeout in seconds; 0: None
    external_local: bool = False           # externalTrafficPolicy: Local
    internal_local: bool = False           # internalTrafficPolicy: Local

    def __post_init__(self):
        me = f"service {self.namespace}/{self.name}"
        for what in ("namespace", "name", "vpc"):
            _set(self, what, _name(me, what, getattr(self, what)))
        if self.cluster_ip is not None:
            _set(self, "cluster_ip", _ip(me, "cluster_ip", self.cluster_ip))
        if self.type not in SERVICE_TYPES:
            raise InputError(f"{me}: type={self.type!r} must be one of {SERVICE_TYPES}")
        ports = _tuple(me, "ports", self.ports)
        if not ports or not all(isinstance(p, ServicePortIn) for p in ports):
            raise InputError(f"{me}: ports must be one or more ServicePortIn")
        if len(ports) > 1 and not all(p.name for p in ports):
            raise InputError(f"{me}: every port needs a name when there are several")
        for key, what in ((lambda p: p.name, "name"), (lambda p: (p.port, p.protocol), "port/protocol"),
                          (lambda p: (p.node_port, p.protocol) if p.node_port else None, "nodePort/protocol")):
            seen = [key(p) for p in ports if key(p) is not None]
            if len(set(seen)) != len(seen):
                raise InputError(f"{me}: two ports have the same {what}")
        if self.type != "NodePort" and any(p.node_port for p in ports):
            raise InputError(f"{me}: node_port is only for type NodePort")
        _set(self, "ports", tuple(sorted(ports, key=lambda p: (p.name, p.protocol, p.port))))
        eps = _tuple(me, "endpoints", self.endpoints)
        if not all(isinstance(e, EndpointIn) for e in eps):
            raise InputError(f"{me}: endpoints must be EndpointIn values")
        if len({e.ip for e in eps}) != len(eps):
            raise InputError(f"{me}: an endpoint address is listed twice")
        _set(self, "endpoints", tuple(sorted(eps, key=lambda e: e.ip)))
        _int(me, "affinity_timeout", self.affinity_timeout, 0, MAX_AFFINITY_TIMEOUT)
        for what in ("external_local", "internal_local"):
            if not isinstance(getattr(self, what), bool):
                raise InputError(f"{me}: {what}={getattr(self, what)!r} must be a bool")

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def owner(self) -> str:
        return f"svc/{self.namespace}/{self.name}"

    def backends(self, port: ServicePortIn, *, node: str | None = None, external: bool = False,
                 named_port: Callable[[tuple[str, str], str, str], int | None] | None = None
                 ) -> tuple[tuple[str, int], ...]:
        """(endpoint IP, endpoint port) that take new connections to ``port`` (see the module
        doc), sorted. ``node``: the client's node, for the Local traffic policies (internal for
        pod clients, ``external`` for NodePort clients). ``named_port((ns, pod), name, protocol)``
        resolves a named targetPort on an endpoint's pod when its Endpoints entry has no port."""
        local = self.external_local if external else self.internal_local
        usable = [e for e in self.endpoints if (not local or e.node == node)]
        chosen = [e for e in usable if e.ready] or [e for e in usable if e.serving and e.terminating]
        out = []
        for e in chosen:
            ep_port = e.port_for(port.name, port.protocol)
            if ep_port is None and len(e.ports) == 1 and not port.name and e.ports[0][1] == port.protocol:
                ep_port = e.ports[0][2]
            if ep_port is None:
                if isinstance(port.target_port, int):
                    ep_port = port.target_port
                elif named_port is not None and e.pod is not None:
                    ep_port = named_port(e.pod, port.target_port, port.protocol)
            if ep_port is not None:
                out.append((e.ip, ep_port))
        return tuple(sorted(out))

    @classmethod
    def from_spec(cls, namespace: str, name: str, vpc: str, spec: Mapping, cluster_ip: str | None,
                  endpoints: Mapping | None = None) -> "ServiceIn":
        """From the validated specs of app/intent/service.py: the Service's spec, its cluster IP
        (``spec.clusterIP`` or the one the controller allocated; "None": headless) and the
        Endpoints object of the same name (None: no endpoints yet)."""
        ports = tuple(ServicePortIn(p.get("name", ""), p.get("protocol", "TCP"), p["port"],
                                    p.get("targetPort", p["port"]), p.get("nodePort"))
                      for p in spec.get("ports") or ())
        eps = []
        for subset in (endpoints or {}).get("subsets") or ():
            sports = tuple((p.get("name", ""), p.get("protocol", "TCP"), p["port"]) for p in subset.get("ports") or ())
            for key in ("addresses", "notReadyAddresses"):
                for a in subset.get(key) or ():
                    ref = a.get("targetRef") or {}
                    pod = (ref.get("namespace", namespace), ref["name"]) if ref.get("kind") == "Pod" and ref.get(
                        "name") else None
                    cond = a.get("conditions") or {}
                    ready = cond.get("ready", key == "addresses")
                    eps.append(EndpointIn(a["ip"], a.get("nodeName", ""), pod, ready, cond.get("serving", ready),
                                          cond.get("terminating", False), sports))
        affinity = spec.get("sessionAffinity") == "ClientIP"
        timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds", 10800)
        return cls(namespace, name, vpc, None if cluster_ip in (None, "", "None") else cluster_ip, ports,
                   _merge_endpoints(eps), spec.get("type", "ClusterIP"), timeout if affinity else 0,
                   spec.get("externalTrafficPolicy") == "Local", spec.get("internalTrafficPolicy") == "Local")


def _merge_endpoints(eps: list[EndpointIn]) -> tuple[EndpointIn, ...]:
    """One EndpointIn per address: an address in several subsets serves the union of their ports
    (the first subset's conditions win)."""
    by_ip: dict[str, EndpointIn] = {}
    for e in eps:
        old = by_ip.get(e.ip)
        if old is None:
            by_ip[e.ip] = e
        else:
            by_ip[e.ip] = EndpointIn(old.ip, old.node or e.node, old.pod or e.pod, old.ready, old.serving,
                                     old.terminating, old.ports + e.ports)
    return tuple(by_ip.values())
