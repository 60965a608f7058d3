"""Service and Endpoints: valid examples round-trip; bad ones are named precisely."""
from __future__ import annotations

import pytest

from intent_testlib import ABSENT, cases, check_invalid, check_valid, mk

READY = {"ready": True, "serving": True, "terminating": False}
NOT_READY = {"ready": False, "serving": False, "terminating": False}


def svc(spec, name="web", namespace="shop"):
    return mk("Service", spec, name=name, namespace=namespace, api="v1")


def ep(subsets=None, spec=None, name="web", namespace="shop"):
    top = {} if subsets is None else {"subsets": subsets}
    return mk("Endpoints", spec, name=name, namespace=namespace, api="v1", **top)


VALID = [
    ("svc-defaults", svc({"ports": [{"port": 80}]}),
     {"type": "ClusterIP", "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}],
      "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
      "internalTrafficPolicy": "Cluster"}, True),
    ("svc-nodeport", svc({"type": "NodePort", "selector": {"app": "web"},
                          "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
                          "internalTrafficPolicy": "Local", "ports": [
                              {"name": "http", "port": 80, "targetPort": "http",
                               "nodePort": 30080},
                              {"name": "dns", "protocol": "udp", "port": 53, "targetPort": 5353,
                               "nodePort": 32767}]}),
     {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
      "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local", "ports": [
          {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http",
           "nodePort": 30080},
          {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353,
           "nodePort": 32767}]}, False),
    ("svc-client-ip-default-timeout", svc({"sessionAffinity": "ClientIP",
                                           "ports": [{"port": 80}]}),
     {"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}, False),
    ("svc-client-ip-timeout", svc({"sessionAffinity": "ClientIP", "ports": [{"port": 80}],
                                   "sessionAffinityConfig": {"clientIP": {
                                       "timeoutSeconds": 60}}}),
     {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}, False),
    ("svc-headless", svc({"clusterIP": "None", "ports": [{"port": 80}]}),
     {"clusterIP": "None"}, False),
    ("svc-empty-cluster-ip", svc({"clusterIP": "", "ports": [{"port": 80}]}),
     {"clusterIP": ABSENT}, False),
    ("svc-same-port-two-protocols", svc({"ports": [{"name": "a", "port": 53},
                                                   {"name": "b", "port": 53,
                                                    "protocol": "UDP"}]}),
     {"ports": [{"name": "a", "protocol": "TCP", "port": 53, "targetPort": 53},
                {"name": "b", "protocol": "UDP", "port": 53, "targetPort": 53}]}, False),
    ("ep-empty", ep([]), {"subsets": []}, True),
    ("ep-no-subsets", ep(), {"subsets": []}, True),
    ("ep-defaults", ep([{"addresses": [{"ip": "10.0.0.5"}],
                         "notReadyAddresses": [{"ip": "10.0.0.6"}],
                         "ports": [{"port": 8080}]}]),
     {"subsets": [{"addresses": [{"ip": "10.0.0.5", "conditions": READY}],
                   "notReadyAddresses": [{"ip": "10.0.0.6", "conditions": NOT_READY}],
                   "ports": [{"port": 8080, "protocol": "TCP"}]}]}, True),
    ("ep-full", ep(spec={"subsets": [{
        "addresses": [{"ip": "FD00::5", "nodeName": "node-1", "hostname": "web-0",
                       "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-0",
                                     "uid": "1234", "resourceVersion": "7"},
                       "conditions": {"terminating": True}}],
        "notReadyAddresses": [{"ip": "10.0.0.6", "conditions": {"serving": True}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "tcp"},
                  {"name": "dns", "port": 53, "protocol": "UDP"}]}]}),
     {"subsets": [{
         "addresses": [{"ip": "fd00::5", "nodeName": "node-1", "hostname": "web-0",
                        "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-0"},
                        "conditions": {"ready": True, "serving": True, "terminating": True}}],
         "notReadyAddresses": [{"ip": "10.0.0.6", "conditions": {
             "ready": False, "serving": True, "terminating": False}}],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "dns", "port": 53, "protocol": "UDP"}]}]}, True),
]


@pytest.mark.parametrize("doc, expected, exact", cases(VALID))
def test_valid(doc, expected, exact):
    check_valid(doc, expected, exact=exact)


INVALID = [
    # Service
    ("svc-no-ports", svc({}), "Service/shop/web: spec.ports: required field is missing"),
    ("svc-empty-ports", svc({"ports": []}),
     "Service/shop/web: spec.ports: at least one port is required"),
    ("svc-port-zero", svc({"ports": [{"port": 0}]}),
     "Service/shop/web: spec.ports[0].port: 0 is out of range 1..65535"),
    ("svc-port-missing", svc({"ports": [{"targetPort": 80}]}),
     "spec.ports[0].port: required field is missing"),
    ("svc-unnamed-ports", svc({"ports": [{"port": 80}, {"name": "b", "port": 81}]}),
     "Service/shop/web: spec.ports[0].name: is required when a service has more than one port"),
    ("svc-dup-names", svc({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
     "Service/shop/web: spec.ports[1]: 'a' repeats the name of spec.ports[0]"),
    ("svc-dup-port", svc({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
     "spec.ports[1]: '80/TCP' repeats the port/protocol of spec.ports[0]"),
    ("svc-dup-node-port", svc({"type": "NodePort", "ports": [
        {"name": "a", "port": 80, "nodePort": 30000},
        {"name": "b", "port": 81, "nodePort": 30000}]}),
     "spec.ports[1]: '30000/TCP' repeats the nodePort/protocol"),
    ("svc-node-port-clusterip", svc({"ports": [{"port": 80, "nodePort": 30080}]}),
     "Service/shop/web: spec.ports[0].nodePort: 30080 is only allowed for type NodePort"),
    ("svc-node-port-range", svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
     "spec.ports[0].nodePort: 80 is out of range 30000..32767"),
    ("svc-protocol", svc({"ports": [{"port": 80, "protocol": "SCTP"}]}),
     "spec.ports[0].protocol: 'SCTP' must be one of TCP, UDP"),
    ("svc-target-port", svc({"ports": [{"port": 80, "targetPort": "Web_Port"}]}),
     "spec.ports[0].targetPort: 'Web_Port' is not a valid port name"),
    ("svc-target-port-zero", svc({"ports": [{"port": 80, "targetPort": 0}]}),
     "spec.ports[0].targetPort: 0 is out of range"),
    ("svc-port-name", svc({"ports": [{"port": 80, "name": "Web"}]}),
     "spec.ports[0].name: 'Web' is not a valid DNS-1123 label"),
    ("svc-type", svc({"type": "LoadBalancer", "ports": [{"port": 80}]}),
     "Service/shop/web: spec.type: 'LoadBalancer' must be one of ClusterIP, NodePort"),
    ("svc-cluster-ip", svc({"clusterIP": "10.96.0", "ports": [{"port": 80}]}),
     "Service/shop/web: spec.clusterIP: '10.96.0' is not an IP address"),
    ("svc-headless-nodeport", svc({"type": "NodePort", "clusterIP": "None",
                                   "ports": [{"port": 80}]}),
     "spec.clusterIP: a headless service (clusterIP: None) cannot be NodePort"),
    ("svc-affinity", svc({"sessionAffinity": "Cookie", "ports": [{"port": 80}]}),
     "spec.sessionAffinity: 'Cookie' must be one of None, ClientIP"),
    ("svc-affinity-config-without-clientip", svc({
        "ports": [{"port": 80}], "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}),
     "Service/shop/web: spec.sessionAffinityConfig: only applies with sessionAffinity: "
     "ClientIP"),
    ("svc-timeout-zero", svc({"sessionAffinity": "ClientIP", "ports": [{"port": 80}],
                              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is out of range 1..86400"),
    ("svc-timeout-big", svc({"sessionAffinity": "ClientIP", "ports": [{"port": 80}],
                             "sessionAffinityConfig": {"clientIP": {
                                 "timeoutSeconds": 86401}}}),
     "timeoutSeconds: 86401 is out of range"),
    ("svc-etp-local-clusterip", svc({"externalTrafficPolicy": "Local",
                                     "ports": [{"port": 80}]}),
     "Service/shop/web: spec.externalTrafficPolicy: 'Local' is only allowed for type NodePort"),
    ("svc-itp", svc({"internalTrafficPolicy": "local", "ports": [{"port": 80}]}),
     "spec.internalTrafficPolicy: 'local' must be one of Cluster, Local"),
    ("svc-selector", svc({"selector": {"app": ["web"]}, "ports": [{"port": 80}]}),
     "spec.selector[\"app\"]: ['web'] must be a string"),
    ("svc-k8s-field-typo", svc({"ports": [{"port": 80}], "sesionAffinity": "None"}),
     "spec: unknown field 'sesionAffinity'; did you mean 'sessionAffinity'?"),
    # Endpoints
    ("ep-bad-ip", ep([{"addresses": [{"ip": "10.0.0.300"}]}]),
     "Endpoints/shop/web: subsets[0].addresses[0].ip: '10.0.0.300' is not an IP address"),
    ("ep-bad-ip-spec-form", ep(spec={"subsets": [{"addresses": [{"ip": "x"}]}]}),
     "Endpoints/shop/web: spec.subsets[0].addresses[0].ip: 'x' is not an IP address"),
    ("ep-no-ip", ep([{"addresses": [{"nodeName": "n"}]}]),
     "subsets[0].addresses[0].ip: required field is missing"),
    ("ep-port-zero", ep([{"ports": [{"port": 0}]}]),
     "Endpoints/shop/web: subsets[0].ports[0].port: 0 is out of range"),
    ("ep-port-protocol", ep([{"ports": [{"port": 80, "protocol": "ICMP"}]}]),
     "subsets[0].ports[0].protocol: 'ICMP' must be one of TCP, UDP"),
    ("ep-unnamed-ports", ep([{"ports": [{"port": 80}, {"port": 81}]}]),
     "subsets[0].ports[0].name: is required when a subset has more than one port"),
    ("ep-dup-port-names", ep([{"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}]),
     "subsets[0].ports[1].name: 'a' is already used by subsets[0].ports[0]"),
    ("ep-dup-ip", ep([{"addresses": [{"ip": "10.0.0.1"}],
                       "notReadyAddresses": [{"ip": "10.0.0.1"}]}]),
     "Endpoints/shop/web: subsets[0].notReadyAddresses[0].ip: '10.0.0.1' is already listed at "
     "subsets[0].addresses[0]"),
    ("ep-ready-false-in-addresses", ep([{"addresses": [{"ip": "10.0.0.1",
                                                         "conditions": {"ready": False}}]}]),
     "subsets[0].addresses[0].conditions.ready: False contradicts being listed in addresses"),
    ("ep-ready-true-in-not-ready", ep([{"notReadyAddresses": [
        {"ip": "10.0.0.1", "conditions": {"ready": True}}]}]),
     "conditions.ready: True contradicts being listed in notReadyAddresses"),
    ("ep-condition-type", ep([{"addresses": [{"ip": "10.0.0.1",
                                               "conditions": {"serving": "yes"}}]}]),
     "subsets[0].addresses[0].conditions.serving: 'yes' must be true or false"),
    ("ep-target-ref", ep([{"addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "pod"}}]}]),
     "subsets[0].addresses[0].targetRef.kind: 'pod' is not a kind name"),
    ("ep-target-ref-typo", ep([{"addresses": [{"ip": "10.0.0.1",
                                                "targetRef": {"nmae": "x"}}]}]),
     "subsets[0].addresses[0].targetRef: unknown field 'nmae'; did you mean 'name'?"),
    ("ep-both-shapes", ep([], spec={"subsets": []}),
     "Endpoints/shop/web: subsets: give subsets either at the top level or in spec, not both"),
    ("ep-address-typo", ep([{"adresses": []}]),
     "subsets[0]: unknown field 'adresses'; did you mean 'addresses'?"),
    ("ep-subsets-on-service", svc({"ports": [{"port": 80}]}) | {"subsets": []},
     "Service/shop/web: unknown top-level field 'subsets'"),
]


@pytest.mark.parametrize("doc, fragments", [
    pytest.param(row[1], row[2:], id=row[0]) for row in INVALID])
def test_invalid(doc, fragments):
    check_invalid(doc, *fragments)
