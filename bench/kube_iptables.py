"""kube-proxy-style iptables rules (``iptables-restore`` text) for N ClusterIP Services of E
endpoints each: the peer of vpcnet's Service flows in bench/service_bench.py.

Written from kube-proxy's documented iptables-mode structure (not its code):

* ``nat`` table: ``PREROUTING`` and ``OUTPUT`` jump to ``KUBE-SERVICES``, ``POSTROUTING`` to
  ``KUBE-POSTROUTING``. ``KUBE-SERVICES`` has one rule per Service port,
  ``-d <cluster IP>/32 -p tcp --dport <port> -j KUBE-SVC-<hash>``, walked linearly by every new
  connection, then the ``KUBE-NODEPORTS`` jump for local destinations (kept last, as kube-proxy
  does; the chain is empty here).
* ``KUBE-SVC-<hash>``: first the cluster-CIDR masquerade rule (``! -s <cluster CIDR> ... -j
  KUBE-MARK-MASQ``, kube-proxy with ``--cluster-cidr``), then one rule per endpoint choosing it
  with ``-m statistic --mode random --probability 1/(E-i)`` (the last one unconditional), so each
  of E endpoints is picked with probability 1/E.
* ``KUBE-SEP-<hash>``: ``-s <endpoint>/32 -j KUBE-MARK-MASQ`` (hairpin) and
  ``-p tcp -m tcp -j DNAT --to-destination <endpoint>:<port>``.
* ``KUBE-MARK-MASQ`` sets mark 0x4000; ``KUBE-POSTROUTING`` returns unmarked packets, clears the
  mark and ``MASQUERADE``s the rest.
* ``filter`` table: ``FORWARD`` -> ``KUBE-FORWARD`` (drop conntrack INVALID, accept marked and
  established) and, for new connections, the filter ``KUBE-SERVICES`` (rejects for Services
  without endpoints: empty here, every Service has endpoints).

Chain names: ``KUBE-SVC-``/``KUBE-SEP-`` + the first 16 characters of the base32 SHA-256 of the
service port name (plus protocol, plus endpoint), the same shape as kube-proxy's.

The *measured* Service is the LAST rule of ``KUBE-SERVICES`` (the worst case of the linear walk);
the other N-1 ("filler") Services have cluster IPs from ``FILLER_VIPS`` and endpoints at
addresses of ``FILLER_ENDPOINTS`` that nobody has.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass

MARK_MASQ = "0x4000/0x4000"
FILLER_VIPS = ipaddress.ip_network("10.96.128.0/17")      # filler cluster IPs (the measured one is outside)
FILLER_ENDPOINTS = ipaddress.ip_network("10.201.0.0/16")  # addresses nobody has


@dataclass(frozen=True)
class KubeService:
    namespace: str
    name: str
    cluster_ip: str
    port: int
    endpoints: tuple[str, ...]
    target_port: int
    port_name: str = "http"

    @property
    def port_ref(self) -> str:
        """kube-proxy's service port name: ``namespace/name:port``."""
        return f"{self.namespace}/{self.name}:{self.port_name}"


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(svc: KubeService) -> str:
    return "KUBE-SVC-" + _hash16(svc.port_ref + "tcp")


def sep_chain(svc: KubeService, endpoint: str) -> str:
    return "KUBE-SEP-" + _hash16(f"{svc.port_ref}tcp{endpoint}:{svc.target_port}")


def filler_services(count: int, endpoints: int, port: int = 80, target_port: int = 8080) -> list[KubeService]:
    """``count`` Services ``bench/filler-<i>`` with cluster IPs from FILLER_VIPS and ``endpoints``
    endpoints each at unused addresses of FILLER_ENDPOINTS."""
    vips = FILLER_VIPS.hosts()
    base = int(FILLER_ENDPOINTS.network_address) + 1
    out = []
    for i in range(count):
        eps = tuple(str(ipaddress.ip_address(base + (i * endpoints + k) % (FILLER_ENDPOINTS.num_addresses - 2)))
                    for k in range(endpoints))
        out.append(KubeService("bench", f"filler-{i}", str(next(vips)), port, eps, target_port))
    return out


def restore_text(services: list[KubeService], cluster_cidr: str) -> str:
    """The ``iptables-restore`` input (nat and filter tables, replacing them) for ``services`` in
    this order: the last one is the last rule of KUBE-SERVICES."""
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"]
    rules = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        f"-A KUBE-MARK-MASQ -j MARK --set-xmark {MARK_MASQ}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MARK_MASQ} -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    ]
    per_service: list[str] = []
    for svc in services:
        svc_name = svc_chain(svc)
        chains.append(svc_name)
        rules.append(f'-A KUBE-SERVICES -d {svc.cluster_ip}/32 -p tcp -m comment --comment "{svc.port_ref} cluster IP" '
                     f"-m tcp --dport {svc.port} -j {svc_name}")
        per_service.append(f'-A {svc_name} ! -s {cluster_cidr} -d {svc.cluster_ip}/32 -p tcp -m comment --comment '
                           f'"{svc.port_ref} cluster IP" -m tcp --dport {svc.port} -j KUBE-MARK-MASQ')
        n = len(svc.endpoints)
        for i, ep in enumerate(svc.endpoints):
            sep = sep_chain(svc, ep)
            chains.append(sep)
            comment = f'-m comment --comment "{svc.port_ref} -> {ep}:{svc.target_port}"'
            pick = f"-m statistic --mode random --probability {1 / (n - i):.10f} " if i < n - 1 else ""
            per_service.append(f"-A {svc_name} {comment} {pick}-j {sep}")
            per_service += [f'-A {sep} -s {ep}/32 -m comment --comment "{svc.port_ref}" -j KUBE-MARK-MASQ',
                            f'-A {sep} -p tcp -m comment --comment "{svc.port_ref}" -m tcp '
                            f"-j DNAT --to-destination {ep}:{svc.target_port}"]
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the '
                 'last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    nat = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":POSTROUTING ACCEPT [0:0]", *(f":{c} - [0:0]" for c in chains), *rules, *per_service, "COMMIT"]
    filt = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":KUBE-FORWARD - [0:0]", ":KUBE-SERVICES - [0:0]",
            '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
            '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
            "-j KUBE-SERVICES",
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MARK_MASQ} -j ACCEPT',
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "COMMIT"]
    return "\n".join(nat + filt) + "\n"


def rule_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("-A "))
