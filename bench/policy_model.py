"""The synthetic security intent of bench/policy_bench.py (described in its docstring): the part 1
(``compile``) model as compiler input values, also loaded as intent documents by part 2
(``enforce``, bench/policy_enforce_bench.py) with ``--fabric-background``."""
from __future__ import annotations

import random

from vpcnet.flows import (
    ClusterIn, IpBlockIn, NamespaceIn, NetworkPolicyIn, NodeIn, NpPeerIn, NpPortIn, NpRuleIn, PodIn,
    SecurityGroupIn, SelectorIn, SgRuleIn, SubnetIn, VpcIn,
)

UPLINK = 1
VPC = "prod"
NS_NAME = "kubernetes.io/metadata.name"
CONJ_SLOTS = 0xFFFF

# role -> (share of the application pods, tier, named container ports (name, protocol, port))
ROLES = {
    "web": (25, "frontend", (("http", "TCP", 8080), ("metrics", "TCP", 9090))),
    "api": (30, "backend", (("http", "TCP", 8000), ("grpc", "TCP", 9000), ("metrics", "TCP", 9090))),
    "worker": (20, "backend", (("metrics", "TCP", 9100), ("diameter", "SCTP", 3868))),
    "cache": (10, "data", (("redis", "TCP", 6379), ("metrics", "TCP", 9121))),
    "db": (15, "data", (("postgres", "TCP", 5432), ("metrics", "TCP", 9187))),
}
ROLE_SG = {"api": ("app-tier",), "db": ("db-guard",)}
SPECIAL = {   # namespace -> (labels, pod labels, named ports, share of all pods in %)
    "kube-system": ((), (("k8s-app", "kube-dns"), ("app", "kube-dns")),
                    (("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)), 1),
    "monitoring": ((("purpose", "monitoring"),), (("app", "prometheus"),), (("web", "TCP", 9090),), 1),
    "ingress-nginx": ((("purpose", "ingress"),), (("app", "ingress-nginx"),),
                      (("http", "TCP", 80), ("https", "TCP", 443)), 1),
}
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
COMMON_PORTS = (80, 443, 8080, 8443, 9000, 5432, 6379, 3306, 27017, 9092, 2181, 11211, 5672, 8125, 9200)


def _mac(i: int) -> str:
    return f"0a:58:{(i >> 24) & 0xFF:02x}:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def sel(**labels) -> SelectorIn:
    return SelectorIn(tuple(labels.items()))


def ns_sel(name: str) -> SelectorIn:
    return SelectorIn(((NS_NAME, name),))

# --- the synthetic cluster -----------------------------------------------------------------------
class Model:
    """The synthetic intent (see bench/policy_bench.py's docstring) as compiler input values."""

    def __init__(self, nodes: int, pods: int, policies: int, sgs: int, namespaces: int, subnets: int,
                 seed: int = 1):
        if namespaces < len(SPECIAL) + 1:
            raise SystemExit(f"--namespaces must be at least {len(SPECIAL) + 1}")
        if pods < 3 * namespaces:
            raise SystemExit("--pods must be at least 3 per namespace")
        self.rng = rng = random.Random(seed)
        self.vpc = VpcIn(VPC, 7, 7007)
        self.subnets = []
        for j in range(subnets):
            cidrs, gws = [f"10.{64 + j}.0.0/16"], [f"10.{64 + j}.0.1"]
            if j == 1:
                cidrs.append(f"fd00:{j:x}::/64")
            self.subnets.append(SubnetIn(f"{VPC}-s{j}", VPC, tuple(cidrs), tuple(gws), 100 + j, 1 + j))
        self.nodes = [NodeIn(f"node-{k:03d}", k + 1, UPLINK) for k in range(nodes)]
        self.app_ns = [f"team-{k:02d}" for k in range(namespaces - len(SPECIAL))]
        self.ns_labels: dict[str, dict] = {}
        for k, ns in enumerate(self.app_ns):
            labels = {"team": f"t{k % 8}", "env": ("prod", "staging", "dev")[k % 3]}
            if k % 4 == 1:
                labels["compliance"] = "pci"
            self.ns_labels[ns] = labels
        for ns, (labels, _, _, _) in SPECIAL.items():
            self.ns_labels[ns] = dict(labels)
        self.namespaces = [NamespaceIn(ns, tuple(sorted(lb.items()))) for ns, lb in self.ns_labels.items()]
        self.next_port = [UPLINK + 1] * nodes
        self.next_host = [2] * subnets
        self.pods: list[PodIn] = []
        for ns, (_, plabels, ports, share) in SPECIAL.items():
            for _ in range(max(2, pods * share // 100)):
                self.pods.append(self._pod(ns, dict(plabels), ports, ()))
        weights = [w for w, _, _ in ROLES.values()]
        i = 0
        while len(self.pods) < pods:
            ns = self.app_ns[i % len(self.app_ns)]
            i += 1
            role = rng.choices(list(ROLES), weights)[0]
            _, tier, ports = ROLES[role]
            labels = {"app": role, "tier": tier, "version": rng.choice(("v1", "v2")),
                      "pod-template-hash": f"{rng.getrandbits(32):08x}"}
            self.pods.append(self._pod(ns, labels, ports, ROLE_SG.get(role, ())))
        self.policies = self._policies(policies)
        self.security_groups = self._security_groups(sgs)

    def _pod(self, ns: str, labels: dict, ports, sgs) -> PodIn:
        i = len(self.pods)
        j = i % len(self.subnets)
        k = self.rng.randrange(len(self.nodes))
        h = self.next_host[j]
        self.next_host[j] += 1
        ips = [f"10.{64 + j}.{h >> 8}.{h & 0xFF}"] + ([f"fd00:{j:x}::{h:x}"] if j == 1 else [])
        port = self.next_port[k]
        self.next_port[k] += 1
        return PodIn(ns, f"{labels['app']}-{i:05d}", VPC, self.subnets[j].name, tuple(ips), _mac(i),
                     self.nodes[k].name, port, f"veth{i:05d}", labels, ports, sgs)

    def cluster(self) -> ClusterIn:
        return ClusterIn((self.vpc,), self.subnets, self.pods, self.nodes, self.namespaces,
                         self.security_groups, self.policies)

    # --- NetworkPolicies ---
    def _policies(self, count: int) -> list[NetworkPolicyIn]:
        out: list[NetworkPolicyIn] = []
        self.template: dict[tuple[str, str], str] = {}
        per_ns: dict[str, int] = {ns: 0 for ns in self.app_ns}
        fixed = []
        for ns in self.app_ns:
            fixed.append(NetworkPolicyIn(ns, "default-deny-ingress", SelectorIn(), ("Ingress",)))
            if self.ns_labels[ns]["env"] == "prod":
                fixed.append(NetworkPolicyIn(ns, "default-deny-egress", SelectorIn(), ("Egress",)))
                fixed.append(NetworkPolicyIn(ns, "allow-dns", SelectorIn(), ("Egress",), egress=(NpRuleIn(
                    (NpPeerIn(sel(**{"k8s-app": "kube-dns"}), ns_sel("kube-system")),),
                    (NpPortIn("UDP", 53), NpPortIn("TCP", 53))),)))
        out += fixed[:count]
        templates = [self._t_role_to_role] * 5 + [self._t_from_ingress, self._t_monitoring, self._t_cross_ns,
                                                  self._t_internet, self._t_partner, self._t_egress_db,
                                                  self._t_nodeport, self._t_udp_range, self._t_sctp]
        i = 0
        while len(out) < count:
            ns = self.app_ns[i % len(self.app_ns)]
            i += 1
            per_ns[ns] += 1
            t = self.rng.choice(templates)
            np = t(ns, f"np-{per_ns[ns]:03d}")
            self.template[np.key] = t.__name__[3:]
            out.append(np)
        return out

    def _port_of(self, role: str) -> NpPortIn:
        """A named port of the role (2 in 3) or a numeric one, sometimes a range."""
        r = self.rng.random()
        if r < 0.66:
            name, proto, _ = self.rng.choice(ROLES[role][2])
            return NpPortIn(proto, name)
        port = self.rng.choice(COMMON_PORTS)
        return NpPortIn("TCP", port, port + self.rng.choice((10, 100)) if r > 0.9 else None)

    def _t_role_to_role(self, ns, name):
        src, dst = self.rng.sample(list(ROLES), 2)
        return NetworkPolicyIn(ns, f"{name}-{src}-to-{dst}", sel(app=dst), ("Ingress",), ingress=(NpRuleIn(
            (NpPeerIn(sel(app=src)),), tuple({self._port_of(dst) for _ in range(self.rng.randint(1, 2))})),))

    def _t_from_ingress(self, ns, name):
        return NetworkPolicyIn(ns, f"{name}-from-ingress", sel(app="web"), ("Ingress",), ingress=(NpRuleIn(
            (NpPeerIn(namespace_selector=ns_sel("ingress-nginx")),), (NpPortIn("TCP", "http"),)),))

    def _t_monitoring(self, ns, name):
        return NetworkPolicyIn(ns, f"{name}-metrics", SelectorIn((), (("app", "Exists", ()),)), ("Ingress",),
                               ingress=(NpRuleIn((NpPeerIn(sel(app="prometheus"), sel(purpose="monitoring")),),
                                                 (NpPortIn("TCP", "metrics"),)),))

    def _t_cross_ns(self, ns, name):
        lo = self.rng.choice((8000, 8080, 9000))
        return NetworkPolicyIn(ns, f"{name}-cross-ns", sel(app="api"), ("Ingress",), ingress=(NpRuleIn(
            (NpPeerIn(sel(tier="frontend"), sel(team=f"t{self.rng.randrange(8)}", env="prod")),),
            (NpPortIn("TCP", lo, lo + 100),)),))

    def _t_internet(self, ns, name):
        return NetworkPolicyIn(ns, f"{name}-internet", SelectorIn((), (("app", "In", ("api", "worker")),)),
                               ("Egress",), egress=(NpRuleIn((NpPeerIn(ip_block=IpBlockIn("0.0.0.0/0", PRIVATE)),),
                                                             (NpPortIn("TCP", 443), NpPortIn("TCP", 80))),))

    def _t_partner(self, ns, name):
        b = self.rng.randrange(256)
        return NetworkPolicyIn(ns, f"{name}-partner", sel(app=self.rng.choice(("api", "worker"))), ("Egress",),
                               egress=(NpRuleIn((NpPeerIn(ip_block=IpBlockIn(f"198.18.{b}.0/24",
                                                                             (f"198.18.{b}.128/28",))),),
                                                (NpPortIn("TCP", 5000, 5999),)),))

    def _t_egress_db(self, ns, name):
        return NetworkPolicyIn(ns, f"{name}-to-db", sel(app="api"), ("Egress",), egress=(NpRuleIn(
            (NpPeerIn(sel(app="db")),), (NpPortIn("TCP", "postgres"),)),))

    def _t_nodeport(self, ns, name):
        return NetworkPolicyIn(ns, f"{name}-nodeports", sel(app="web"), ("Ingress",), ingress=(NpRuleIn(
            (NpPeerIn(ip_block=IpBlockIn("10.0.0.0/8", ("10.66.0.0/16",))),), (NpPortIn("TCP", 30000, 32767),)),))

    def _t_udp_range(self, ns, name):
        return NetworkPolicyIn(ns, f"{name}-udp", sel(app="worker"), ("Ingress",), ingress=(NpRuleIn(
            (NpPeerIn(namespace_selector=SelectorIn((), (("env", "In", ("prod", "staging")),))),),
            (NpPortIn("UDP", 10000, 10100),)),))

    def _t_sctp(self, ns, name):
        return NetworkPolicyIn(ns, f"{name}-sctp", sel(app="worker"), ("Ingress",), ingress=(NpRuleIn(
            (NpPeerIn(sel(app="api")),), (NpPortIn("SCTP", "diameter"),)),))

    # --- SecurityGroups ---
    def _security_groups(self, count: int) -> list[SecurityGroupIn]:
        rng = self.rng
        fixed = [
            SecurityGroupIn("baseline", (
                SgRuleIn("no-telnet", "ingress", "tcp", ((23, 23),), action="deny", priority=1),
                SgRuleIn("no-smtp", "egress", "tcp", ((25, 25),), action="deny", priority=1),
                SgRuleIn("ssh-bastion", "ingress", "tcp", ((22, 22),), remote_cidr="10.250.0.0/24", priority=10),
            ), namespaces=tuple(self.app_ns)),
            SecurityGroupIn("app-tier", (SgRuleIn("health", "ingress", "tcp", ((8081, 8081),), priority=50),)),
            SecurityGroupIn("db-guard", (
                SgRuleIn("pg-from-app", "ingress", "tcp", ((5432, 5432),), remote_sg="app-tier", priority=20),
                SgRuleIn("pg-others", "ingress", "tcp", ((5432, 5432),), action="deny", priority=21),
            )),
            SecurityGroupIn("pci", (
                SgRuleIn("from-dev", "ingress", remote_namespace=self.app_ns[2 % len(self.app_ns)], action="deny",
                         priority=30),
            ), allow_same_group=True,
                namespaces=tuple(ns for ns in self.app_ns if self.ns_labels[ns].get("compliance") == "pci")),
        ]
        out = fixed[:count]
        while len(out) < count:
            g = len(out)
            rules = []
            for r in range(rng.randint(2, 5)):
                proto = rng.choice(("tcp", "tcp", "udp", "icmp", "any"))
                ports = ()
                if proto in ("tcp", "udp"):
                    lo = rng.choice(COMMON_PORTS)
                    ports = ((lo, lo + rng.choice((0, 0, 9, 99))),)
                remote = rng.choice(({}, {"remote_cidr": f"10.{rng.randrange(200, 250)}.0.0/16"},
                                     {"remote_sg": rng.choice(("app-tier", "db-guard", "baseline"))},
                                     {"remote_namespace": rng.choice(self.app_ns)}))
                rules.append(SgRuleIn(f"r{r}", rng.choice(("ingress", "egress")), proto, ports,
                                      action="allow" if rng.random() < 0.8 else "deny",
                                      priority=rng.randint(1, 1000), **remote))
            out.append(SecurityGroupIn(f"sg-{g:02d}", tuple(rules), namespaces=tuple(rng.sample(self.app_ns, 2))))
        return out



def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms"
