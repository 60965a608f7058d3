"""topology.update (what a flow-engine pass does after a CNI ADD/DEL) gives exactly what
topology.build gives from every row, whatever the sequence of pod and port changes."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from vpcnet.app import topology
from vpcnet.app.flowengine import changed_owners


def vpc_row(name, zone, vni):
    return SimpleNamespace(name=name, zone=[zone], vni=vni, spec="{}")


def subnet_row(name, vpc, cidr, vlan):
    return SimpleNamespace(name=name, vpc=vpc, vlan=vlan, spec=json.dumps({"vpc": vpc, "cidrBlock": cidr}))


def node_row(name, dpid, uplink="up1"):
    return SimpleNamespace(name=name, spec=json.dumps({"datapathId": f"{dpid:016x}", "uplinkPort": uplink}))


def pod_row(ns, name, created, subnet=None, ip=None, mac=None, node="", port="", labels=None, groups=""):
    status = {}
    if ip is not None:
        status = {"ips": [ip], "mac": mac, "subnet": subnet, "node": node, "port": port}
    spec = {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                                   {"containerPort": 9090, "protocol": "TCP"}]}]}
    return SimpleNamespace(namespace=ns, name=name, created_ms=created, node=node,
                           status=json.dumps(status) if status else "", labels=labels or {},
                           annotations={"vpcnet.io/security_groups": groups} if groups else {},
                           spec=json.dumps(spec))


def ns_row(name, labels):
    return SimpleNamespace(name=name, labels=labels)


def sg_row(name, namespaces, port):
    spec = {"allowSameGroup": True, "namespaces": namespaces,
            "rules": [{"id": "0", "direction": "ingress", "protocol": "tcp", "ports": [[port, port]],
                       "action": "deny", "priority": 10}]}
    return SimpleNamespace(name=name, spec=json.dumps(spec))


def np_row(ns, name, app):
    spec = {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"tier": "front"}}}],
                         "ports": [{"protocol": "TCP", "port": "http"}]}], "egress": []}
    return SimpleNamespace(namespace=ns, name=name, spec=json.dumps(spec))


VPCS = [vpc_row("finance", 1, 50000), vpc_row("retail", 2, 50001)]
SUBNETS = [subnet_row("trading-a", "finance", "10.10.0.0/24", 100),
           subnet_row("payments-a", "finance", "10.20.0.0/24", 101),
           subnet_row("shop-a", "retail", "10.30.0.0/24", 102)]
NODES = [node_row("node-1", 1), node_row("node-2", 2), node_row("node-3", 3)]   # node-3: not connected


class World:
    """Rows and bridge ports as the engine sees them, and what changed since the last look."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pods: dict[tuple[str, str], SimpleNamespace] = {}
        self.ports = {"node-1": {"up1": 1}, "node-2": {"up1": 1}}
        self.clock = 1000
        self.next_ofport = 1
        self.dirty_pods: set = set()
        self.dirty_ports: set = set()
        self.policy = {"ns": {}, "sg": {}, "np": {}}
        self.dirty_policy = False

    def security(self):
        return topology.security(*(list(self.policy[k].values()) for k in ("ns", "sg", "np")))

    def build(self):
        return topology.build(VPCS, SUBNETS, list(self.pods.values()), NODES,
                              {n: dict(p) for n, p in self.ports.items()}, self.security())

    def ofport_of(self, node, port):
        return self.ports.get(node, {}).get(port)

    def update(self, topo):
        if self.dirty_policy and not self.dirty_pods and not self.dirty_ports:
            self.dirty_policy = False    # what the flow engine does: policy objects on their own
            return topology.with_security(topo, self.security())
        if self.dirty_policy:
            return None                  # together with pod changes the engine builds
        rows = {k: self.pods.get(k) for k in self.dirty_pods}
        ports = sorted(self.dirty_ports)
        self.dirty_pods, self.dirty_ports = set(), set()
        return topology.update(topo, rows, ports, self.ofport_of)

    # --- changes ------------------------------------------------------------------------
    def set_pod(self, ns, name, **kw):
        old = self.pods.get((ns, name))
        created = old.created_ms if old is not None else self.clock
        self.clock += 1
        self.pods[(ns, name)] = pod_row(ns, name, created, **kw)
        self.dirty_pods.add((ns, name))

    def del_pod(self, ns, name):
        self.pods.pop((ns, name), None)
        self.dirty_pods.add((ns, name))

    def set_port(self, node, port, ofport):
        if ofport is None:
            self.ports[node].pop(port, None)
        else:
            self.ports[node][port] = ofport
        self.dirty_ports.add((node, port))

    def random_step(self):
        rng = self.rng
        ns, subnet, net = rng.choice([("trading", "trading-a", "10.10.0"), ("payments", "payments-a", "10.20.0"),
                                      ("shop", "shop-a", "10.30.0")])
        name = f"p{rng.randrange(12)}"
        node = rng.choice(["node-1", "node-1", "node-2", "node-3", ""])
        port = topology.pod_port_name(ns, name)
        what = rng.random()
        if what < 0.08:     # a policy object changes (now and then a bad one: a problem)
            kind = rng.choice(["ns", "sg", "np"])
            key = rng.choice(["trading", "shop"])
            if rng.random() < 0.3:
                self.policy[kind].pop(key, None)
            elif kind == "ns":
                self.policy[kind][key] = ns_row(key, {"tier": rng.choice(["front", "back"])})
            elif kind == "sg":
                self.policy[kind][key] = sg_row(key, [key], rng.choice([22, 0]))   # port 0: refused
            else:
                self.policy[kind][key] = np_row(key, "np", rng.choice(["web", "db"]))
            self.dirty_policy = True
            return
        if what < 0.16 and (ns, name) in self.pods:   # relabelled, or another security group
            old = self.pods[(ns, name)]
            old.labels = {"app": rng.choice(["web", "db"])}
            old.annotations = {"vpcnet.io/security_groups": rng.choice(["trading", "shop"])}
            self.dirty_pods.add((ns, name))
            return
        if what < 0.35:     # (re)allocated; now and then clashing with another pod's address
            host = 2 + int(name[1:]) if rng.random() < 0.98 else rng.randrange(2, 14)
            self.set_pod(ns, name, subnet=subnet, ip=f"{net}.{host}", mac=f"02:00:00:{net[3]}:{host:02x}:00",
                         node=node)
        elif what < 0.42:   # created, not allocated yet
            self.set_pod(ns, name)
        elif what < 0.47:   # unknown subnet / bad mac: left out with a problem
            self.set_pod(ns, name, subnet=rng.choice(["gone", subnet]), ip=f"{net}.77",
                         mac=rng.choice(["02:00:00:00:00:77", "zz"]), node=node)
        elif what < 0.62:
            self.del_pod(ns, name)
        elif what < 0.92 and node in self.ports:   # the daemon adds / removes the pod's port
            if rng.random() < 0.7:
                self.next_ofport += 1   # OVS numbers ports uniquely; now and then a reused number
                self.set_port(node, port, self.next_ofport if rng.random() < 0.98 else rng.randrange(2, 6))
            else:
                self.set_port(node, port, None)
        elif node in self.ports:                   # a port nobody uses
            self.next_ofport += 1
            self.set_port(node, f"vpx{rng.randrange(5)}", self.next_ofport)


def same(a: topology.Topology, b: topology.Topology) -> None:
    assert a.cluster == b.cluster
    assert a.problems == b.problems
    assert a.node_by_dpid == b.node_by_dpid and a.node_specs == b.node_specs


@pytest.mark.parametrize("seed", range(16))
def test_update_matches_build(seed):
    world = World(random.Random(seed))
    topo = world.build()
    updated = fell_back = 0
    for _ in range(120):
        for _ in range(world.rng.choice([1, 1, 1, 2, 5])):
            world.random_step()
        try:
            want = world.build()
        except Exception as exc:   # the compiler input refused the rows: build raises, so must the pass
            assert world.update(topo) is None, exc
            world = World(world.rng)   # start over from a clean state
            topo = world.build()
            continue
        got = world.update(topo)
        if got is None:
            fell_back += 1
            world.dirty_policy = False
            got = world.build()
        else:
            updated += 1
            same(got, want)
            owners = set(changed_owners(topo.cluster, got.cluster))
            if got.changed_policy:
                assert owners <= {"policy/objects"}
            else:
                assert owners <= {f"pod/{ns}/{name}" for ns, name in got.changed_pods}
        topo = got
    assert updated > 30, (updated, fell_back)
    assert world.policy != {"ns": {}, "sg": {}, "np": {}}   # the policy path ran too


def test_update_gives_up_on_a_clash_and_the_index_moves_on():
    world = World(random.Random(1))
    world.set_pod("trading", "a", subnet="trading-a", ip="10.10.0.5", mac="02:00:00:00:00:05", node="node-1")
    topo = world.build()
    world.dirty_pods.clear()
    world.set_pod("trading", "b", subnet="trading-a", ip="10.10.0.5", mac="02:00:00:00:00:06", node="node-1")
    assert world.update(topo) is None             # who keeps 10.10.0.5: creation order, build()
    topo = world.build()
    assert any("also used by pod trading/a" in p for p in topo.problems)
    world.del_pod("trading", "b")
    assert world.update(topo) is None             # a clash is on record: build() again
    topo = world.build()
    world.set_port("node-1", topology.pod_port_name("trading", "a"), 7)
    new = world.update(topo)
    assert new is not None and new.cluster.find_pod("trading", "a").ofport == 7
    assert new.changed_pods == {("trading", "a")}
    assert topology.update(topo, {}, [], world.ofport_of) is None   # the old value gave its index away


def test_nodes_whose_router_macs_collide_are_left_out_and_named():
    # 0x0001_0000_0000_0001 and 0x1 keep the same low 48 bits: same node router MAC
    rows = [node_row("a", 0x1), node_row("b", 0x0001_0000_0000_0001)]
    ports = {"a": {"up1": 1}, "b": {"up1": 1}}
    topo = topology.build([vpc_row("v", 1, 50001)], [], [], rows, ports)
    assert [n.name for n in topo.cluster.nodes] == ["a"]
    assert any("Node/b" in p and "node a's" in p and "02:00:00:00:00:01" in p for p in topo.problems), topo.problems


def test_pod_rows_carry_what_policy_needs_and_bad_policy_is_a_problem():
    world = World(random.Random(0))
    world.set_pod("trading", "a", subnet="trading-a", ip="10.10.0.5", mac="02:00:00:00:00:05", node="node-1",
                  labels={"app": "web"}, groups="g2, g1")
    world.policy["sg"]["bad"] = sg_row("bad", ["trading"], 0)
    world.policy["np"]["ok"] = np_row("trading", "np", "web")
    topo = world.build()
    pod = topo.cluster.find_pod("trading", "a")
    assert dict(pod.labels) == {"app": "web"}
    assert pod.security_groups == ("g1", "g2")
    assert pod.named_ports == (("http", "TCP", 8080),)
    assert [p.name for p in topo.cluster.network_policies] == ["np"]
    assert topo.cluster.security_groups == ()
    assert any(p.startswith("SecurityGroup/bad:") and "0" in p for p in topo.problems), topo.problems


def test_peering_from_vpc_specs_and_why_one_is_not_established():
    def vpc(name, zone, peers):
        return SimpleNamespace(name=name, zone=[zone], vni=50000 + zone, spec=json.dumps({"peers": peers}))
    rows = [vpc("finance", 1, ["retail", "ghost"]), vpc("retail", 2, ["finance"]), vpc("ops", 3, ["finance"]),
            vpc("lab", 4, ["copy"]), vpc("copy", 5, ["lab"])]
    rows[2].spec = json.dumps({"peers": ["finance"], "strictRevocation": False})
    subnets = [subnet_row("f", "finance", "10.10.0.0/24", 100), subnet_row("r", "retail", "10.30.0.0/24", 101),
               subnet_row("l", "lab", "10.50.0.0/24", 102), subnet_row("c", "copy", "10.50.0.0/25", 103)]
    topo = topology.build(rows, subnets, [], NODES, {})
    assert topo.cluster.peers_of("finance") == ("retail",)
    assert topo.cluster.peers_of("ops") == () and topo.cluster.peers_of("lab") == ()
    assert not topo.cluster.vpc("ops").strict_revocation and topo.cluster.vpc("finance").strict_revocation
    problems = "\n".join(topo.problems)
    assert "Vpc/finance: peer 'ghost' is unknown" in problems
    assert "Vpc/ops: peer 'finance' does not list 'ops'" in problems
    assert "Vpc/copy: cannot peer with 'lab': 10.50.0.0/25 overlaps 10.50.0.0/24" in problems


def svc_row(ns, name, created, ip, node_ports=None, ports=(("http", 80),)):
    spec = {"type": "NodePort" if node_ports else "ClusterIP",
            "ports": [{"name": n, "port": p, "protocol": "TCP", "targetPort": 8080} for n, p in ports]}
    status = {"clusterIP": ip, "nodePorts": {n: [p, "TCP"] for n, p in (node_ports or {}).items()}}
    return SimpleNamespace(namespace=ns, name=name, created_ms=created, spec=json.dumps(spec),
                           status=json.dumps(status))


def ep_row(ns, name, *ips):
    return SimpleNamespace(namespace=ns, name=name, spec=json.dumps({"subsets": [
        {"addresses": [{"ip": ip, "nodeName": "node-1"} for ip in ips], "ports": [{"name": "http", "port": 8080}]}]}))


def test_services_from_rows_with_their_vpc_cluster_ip_and_endpoints():
    vpcs = [SimpleNamespace(name="finance", zone=[1], vni=50000, spec=json.dumps({"namespaces": ["trading"]})),
            SimpleNamespace(name="retail", zone=[2], vni=50001, spec="{}")]
    namespaces = [SimpleNamespace(name="shop", labels={}, spec=json.dumps({"vpc": "retail"}))]
    eps = [SimpleNamespace(namespace="trading", name="web", spec=json.dumps({"subsets": [
        {"addresses": [{"ip": "10.10.0.5", "nodeName": "node-1"}], "ports": [{"name": "http", "port": 8080}]}]}))]
    rows = [svc_row("trading", "web", 1, "10.96.0.2", {"http": 30080}), svc_row("shop", "cart", 2, "10.96.0.3"),
            svc_row("trading", "dup", 3, "10.96.0.2"), svc_row("nowhere", "x", 4, "10.96.0.9")]
    got = topology.services(vpcs, namespaces, rows, eps)
    assert [(s.namespace, s.name, s.vpc, s.cluster_ip) for s in got.services] == [
        ("trading", "web", "finance", "10.96.0.2"), ("shop", "cart", "retail", "10.96.0.3")]
    web = got.services[0]
    assert web.ports[0].node_port == 30080 and [e.ip for e in web.endpoints] == ["10.10.0.5"]
    assert any("Service/trading/dup" in p and "Service/trading/web" in p for p in got.problems), got.problems
    assert any("Service/nowhere/x" in p and "'default'" in p for p in got.problems), got.problems
    topo = topology.build(vpcs, [], [], NODES, {}, svc=got)
    assert [s.name for s in topo.cluster.services] == ["cart", "web"]
    emptied = topology.with_services(topo, topology.Services())
    assert emptied.cluster.services == () and emptied.changed_services
    assert not any(p.startswith("Service/") for p in emptied.problems)


def test_a_pass_with_the_cache_converts_only_what_changed_and_forgets_what_went():
    vpcs = [SimpleNamespace(name="finance", zone=[1], vni=50000, spec=json.dumps({"namespaces": ["trading"]}))]
    rows = [svc_row("trading", f"s{i}", i, f"10.96.0.{i + 2}") for i in range(4)]
    eps = [ep_row("trading", f"s{i}", f"10.10.0.{i + 5}") for i in range(4)]
    cache: dict = {}
    first = topology.services(vpcs, [], rows, eps, cache)
    eps[1] = ep_row("trading", "s1", "10.10.0.99")                    # an endpoint moved
    rows[2] = svc_row("trading", "s2", 2, "10.96.0.4", ports=(("http", 81),))   # a port changed
    del rows[3], eps[3]                                               # a Service deleted
    second = topology.services(vpcs, [], rows, eps, cache)
    assert second == topology.services(vpcs, [], rows, eps), "the cache changes nothing in the result"
    assert [e.ip for e in second.services[1].endpoints] == ["10.10.0.99"]
    assert second.services[2].ports[0].port == 81 and [s.name for s in second.services] == ["s0", "s1", "s2"]
    assert second.services[0] is first.services[0], "an unchanged Service is not converted again"
    assert set(cache) == {("trading", "s0"), ("trading", "s1"), ("trading", "s2")}
