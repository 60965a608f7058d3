"""Service inputs (flows/service_inputs.py): from the validated intent, which endpoints take new
connections, and the checks that name the bad field."""
from __future__ import annotations

import pytest

from vpcnet.app.intent import validate
from vpcnet.flows.inputs import ClusterIn, InputError, SubnetIn, VpcIn
from vpcnet.flows.service_inputs import EndpointIn, ServiceIn, ServicePortIn

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "payments"},
           "spec": {"type": "NodePort", "selector": {"app": "db"}, "sessionAffinity": "ClientIP",
                    "internalTrafficPolicy": "Local",
                    "ports": [{"name": "pg", "port": 5432, "targetPort": "postgres", "nodePort": 30432},
                              {"name": "metrics", "port": 9187, "protocol": "TCP"}]}}
ENDPOINTS = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db", "namespace": "payments"},
             "subsets": [{"addresses": [{"ip": "10.20.0.50", "nodeName": "node-1",
                                         "targetRef": {"kind": "Pod", "namespace": "payments", "name": "db-0"}},
                                        {"ip": "10.20.0.52", "nodeName": "node-2",
                                         "conditions": {"ready": True, "serving": True, "terminating": False}}],
                          "notReadyAddresses": [{"ip": "10.20.0.51", "nodeName": "node-2",
                                                 "conditions": {"ready": False, "serving": True,
                                                                "terminating": True}}],
                          "ports": [{"name": "pg", "port": 5433}]}]}


def service(**kw) -> ServiceIn:
    svc, eps = validate(SERVICE), validate(ENDPOINTS)
    return ServiceIn.from_spec("payments", "db", "finance", dict(svc.spec), "10.96.0.10", dict(eps.spec), **kw)


def test_from_the_validated_intent():
    s = service()
    assert s.cluster_ip == "10.96.0.10" and s.type == "NodePort" and s.affinity_timeout == 10800
    assert s.internal_local and not s.external_local
    pg = next(p for p in s.ports if p.name == "pg")
    assert (pg.protocol, pg.port, pg.target_port, pg.node_port) == ("TCP", 5432, "postgres", 30432)
    assert [(e.ip, e.ready, e.serving, e.terminating, e.pod) for e in s.endpoints] == [
        ("10.20.0.50", True, True, False, ("payments", "db-0")), ("10.20.0.51", False, True, True, None),
        ("10.20.0.52", True, True, False, None)]


def test_ready_endpoints_take_new_connections_with_the_endpoints_port():
    s = service()
    pg = next(p for p in s.ports if p.name == "pg")
    assert s.backends(pg, node="node-1", external=True) == (("10.20.0.50", 5433), ("10.20.0.52", 5433))
    assert s.backends(pg, node="node-1") == (("10.20.0.50", 5433),), "internalTrafficPolicy Local"
    assert s.backends(pg, node="node-3") == (), "Local and no endpoint on the node: refused"


def test_terminating_serving_endpoints_are_the_fallback_when_none_is_ready():
    s = service()
    only_terminating = tuple(e for e in s.endpoints if e.terminating)
    s2 = ServiceIn(s.namespace, s.name, s.vpc, s.cluster_ip, s.ports, only_terminating, s.type)
    pg = next(p for p in s2.ports if p.name == "pg")
    assert s2.backends(pg) == (("10.20.0.51", 5433),)
    gone = ServiceIn(s.namespace, s.name, s.vpc, s.cluster_ip, s.ports,
                     (EndpointIn("10.20.0.60", ready=False, serving=False, terminating=True),), s.type)
    assert gone.backends(pg) == ()


def test_a_port_missing_from_the_endpoints_falls_back_to_the_target_port():
    s = service()
    metrics = next(p for p in s.ports if p.name == "metrics")
    assert s.backends(metrics, external=True) == (("10.20.0.50", 9187), ("10.20.0.52", 9187))
    named = ServicePortIn("web", "TCP", 80, "http")
    svc = ServiceIn("payments", "web", "finance", "10.96.0.11", (named,),
                    (EndpointIn("10.20.0.50", pod=("payments", "db-0")), EndpointIn("10.20.0.70")))
    pods = {("payments", "db-0"): {("http", "TCP"): 8080}}
    assert svc.backends(named, named_port=lambda pod, n, proto: pods.get(pod, {}).get((n, proto))) == (
        ("10.20.0.50", 8080),), "a named port resolves on the endpoint's pod; no pod: not a backend"


@pytest.mark.parametrize("bad,words", [
    (lambda: ServicePortIn("a", "SCTP", 80, 80), "protocol"),
    (lambda: ServicePortIn("a", "TCP", 0, 80), "port=0"),
    (lambda: ServicePortIn("a", "TCP", 80, 80, 80), "node_port=80"),
    (lambda: ServiceIn("ns", "s", "v", "10.96.0.1", (ServicePortIn("", "TCP", 80, 80),
                                                      ServicePortIn("", "UDP", 80, 80))), "needs a name"),
    (lambda: ServiceIn("ns", "s", "v", "10.96.0.1", (ServicePortIn("a", "TCP", 80, 80, 30000),)), "NodePort"),
    (lambda: ServiceIn("ns", "s", "v", "x", (ServicePortIn("a", "TCP", 80, 80),)), "cluster_ip"),
    (lambda: EndpointIn("10.0.0.1", ready="yes"), "ready="),
])
def test_bad_values_name_the_field(bad, words):
    with pytest.raises(InputError, match=words):
        bad()


def test_cluster_ips_and_node_ports_are_unique_cluster_wide():
    vpc = VpcIn("finance", 1, 100)
    subnet = SubnetIn("a", "finance", ("10.20.0.0/24",), ("10.20.0.1",), 1, 100)
    one = ServiceIn("ns", "one", "finance", "10.96.0.1", (ServicePortIn("a", "TCP", 80, 80, 30080),), type="NodePort")
    c = ClusterIn((vpc,), (subnet,), (), (), services=(one,))
    assert c.find_service("ns", "one") is one
    with pytest.raises(InputError, match="cluster_ip"):
        c.with_services((one, ServiceIn("ns", "two", "finance", "10.96.0.1", (ServicePortIn("a", "TCP", 80, 80),))))
    with pytest.raises(InputError, match="node_port"):
        c.with_services((one, ServiceIn("ns", "two", "finance", "10.96.0.2",
                                        (ServicePortIn("a", "TCP", 81, 80, 30080),), type="NodePort")))
    with pytest.raises(InputError, match="unknown vpc"):
        c.with_services((ServiceIn("ns", "x", "retail", "10.96.0.3", (ServicePortIn("a", "TCP", 80, 80),)),))
    assert c.with_services(()).services == () and c.with_services(()).vpcs == c.vpcs
