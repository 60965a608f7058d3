"""A small, obviously-correct reference model of the security policy semantics (flows/policy.py's
design note), independent of the compiler: no flows, no CIDR merging, no conjunctions.

``allowed(cluster, src, dst, proto, port)`` is the verdict on the first packet of a connection
from pod ``src`` to pod ``dst`` (same VPC): src's egress AND dst's ingress must accept. Each
direction: the first matching security group rule (lowest sg priority, deny wins a tie,
allowSameGroup at priority 0) is final; otherwise NetworkPolicy (upstream semantics); a pod no
policy isolates accepts.
"""
from __future__ import annotations

import netaddr

from vpcnet.flows.inputs import ClusterIn, PodIn


def _in(ip: str, cidr: str) -> bool:
    a, n = netaddr.IPAddress(ip), netaddr.IPNetwork(cidr)
    return a.version == n.version and a in n


def np_allows(cluster: ClusterIn, direction: str, pod: PodIn, peer: PodIn, peer_ip: str, proto: str,
              port: int | None) -> bool:
    """NetworkPolicy verdict for ``pod`` sending (egress) to / receiving (ingress) from ``peer``."""
    ptype = direction.capitalize()
    policies = [np for np in cluster.network_policies
                if np.namespace == pod.namespace and ptype in np.policy_types
                and np.pod_selector.matches(dict(pod.labels))]
    if not policies:
        return True
    dest = pod if direction == "ingress" else peer
    for np in policies:
        for rule in (np.ingress if direction == "ingress" else np.egress):
            if rule.peers and not any(_peer_ok(cluster, np, p, peer, peer_ip) for p in rule.peers):
                continue
            if rule.ports and not any(_port_ok(p, dest, proto, port) for p in rule.ports):
                continue
            return True
    return False


def _peer_ok(cluster, np, p, peer: PodIn, peer_ip: str) -> bool:
    if p.ip_block is not None:
        return _in(peer_ip, p.ip_block.cidr) and not any(_in(peer_ip, e) for e in p.ip_block.excepts)
    if p.namespace_selector is None:
        if peer.namespace != np.namespace:
            return False
    elif not p.namespace_selector.matches(cluster.namespace_labels(peer.namespace)):
        return False
    return p.pod_selector is None or p.pod_selector.matches(dict(peer.labels))


def _port_ok(p, dest: PodIn, proto: str, port: int | None) -> bool:
    if p.protocol.lower() != proto:
        return False
    if p.port is None:
        return True
    if isinstance(p.port, str):
        return dest.named_port(p.port, p.protocol) == port
    return p.port <= port <= (p.end_port or p.port)


def _member(cluster, sg_name: str, pod: PodIn) -> bool:
    sg = cluster.find_security_group(sg_name)
    return sg is not None and (pod.namespace in sg.namespaces or sg.name in pod.security_groups)


def sg_verdict(cluster: ClusterIn, direction: str, pod: PodIn, peer: PodIn, peer_ip: str, proto: str,
               port: int | None) -> str | None:
    """'allow', 'deny' or None (no security group rule matches)."""
    hits = []
    for sg in cluster.security_groups:
        if not _member(cluster, sg.name, pod):
            continue
        if sg.allow_same_group and _member(cluster, sg.name, peer):
            hits.append((0, "allow"))
        for r in sg.rules:
            if r.direction != direction or (r.protocol != "any" and r.protocol != proto):
                continue
            if r.ports and not any(lo <= port <= hi for lo, hi in r.ports):
                continue
            if r.remote_cidr is not None and not _in(peer_ip, r.remote_cidr):
                continue
            if r.remote_sg is not None and not _member(cluster, r.remote_sg, peer):
                continue
            if r.remote_namespace is not None and peer.namespace != r.remote_namespace:
                continue
            hits.append((r.priority, r.action))
    if not hits:
        return None
    best = min(p for p, _ in hits)
    return "deny" if any(p == best and a == "deny" for p, a in hits) else "allow"


def direction_allows(cluster, direction, pod, peer, peer_ip, proto, port) -> bool:
    v = sg_verdict(cluster, direction, pod, peer, peer_ip, proto, port)
    if v is not None:
        return v == "allow"
    return np_allows(cluster, direction, pod, peer, peer_ip, proto, port)


def allowed(cluster: ClusterIn, src: PodIn, dst: PodIn, proto: str, port: int | None) -> bool:
    if src.vpc != dst.vpc:
        return False
    return (direction_allows(cluster, "egress", src, dst, dst.ips[0], proto, port)
            and direction_allows(cluster, "ingress", dst, src, src.ips[0], proto, port))
