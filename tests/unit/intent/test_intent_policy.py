"""SecurityGroup and NetworkPolicy: valid examples round-trip; bad ones are named precisely."""
from __future__ import annotations

import pytest

from intent_testlib import cases, check_invalid, check_valid, mk

EMPTY_SEL = {"matchLabels": {}, "matchExpressions": []}


def sg(spec=None, name="web"):
    return mk("SecurityGroup", spec, name=name)


def rule(**kw):
    return {"direction": "ingress", **kw}


def np(spec, name="allow", namespace="prod", api="networking.k8s.io/v1"):
    return mk("NetworkPolicy", spec, name=name, namespace=namespace, api=api)


VALID = [
    ("sg-defaults", sg(), {"allowSameGroup": False, "namespaces": [], "rules": []}, True),
    ("sg-alias", sg({"allowSameGroupTraffic": True, "namespaces": ["a"]}),
     {"allowSameGroup": True, "namespaces": ["a"], "rules": []}, True),
    ("sg-rule-defaults", sg({"rules": [rule()]}),
     {"rules": [{"id": "0", "direction": "ingress", "protocol": "any", "ports": [],
                 "action": "allow", "priority": 100}]}, False),
    ("sg-rules-full", sg({"rules": [
        rule(protocol="TCP", ports="80,443,1000-2000", remoteCidr="10.0.0.0/8",
             action="Deny", priority=1),
        rule(name="dns", direction="egress", protocol="udp", ports=53,
             remoteSecurityGroup="dns-servers", priority=1000),
        rule(protocol="icmp", remoteNamespace="monitoring"),
        rule(protocol="tcp", ports=[22, "8000-8080", [9000, 9100]]),
    ]}),
     {"rules": [
         {"id": "0", "direction": "ingress", "protocol": "tcp",
          "ports": [[80, 80], [443, 443], [1000, 2000]], "remoteCidr": "10.0.0.0/8",
          "action": "deny", "priority": 1},
         {"id": "dns", "name": "dns", "direction": "egress", "protocol": "udp",
          "ports": [[53, 53]], "remoteSecurityGroup": "dns-servers", "action": "allow",
          "priority": 1000},
         {"id": "2", "direction": "ingress", "protocol": "icmp", "ports": [],
          "remoteNamespace": "monitoring", "action": "allow", "priority": 100},
         {"id": "3", "direction": "ingress", "protocol": "tcp",
          "ports": [[22, 22], [8000, 8080], [9000, 9100]], "action": "allow",
          "priority": 100},
     ]}, False),
    ("np-defaults", np({"podSelector": {}}),
     {"podSelector": EMPTY_SEL, "policyTypes": ["Ingress"], "ingress": [], "egress": []}, True),
    ("np-egress-default-types", np({"podSelector": {}, "egress": [{}]}),
     {"policyTypes": ["Ingress", "Egress"], "egress": [{"to": [], "ports": []}]}, False),
    ("np-empty-egress-is-upstream-default", np({"podSelector": {}, "egress": []}),
     {"policyTypes": ["Ingress"]}, False),
    ("np-explicit-types", np({"podSelector": {}, "policyTypes": ["Egress"]}, api="vpcnet.io/v1"),
     {"policyTypes": ["Egress"]}, False),
    ("np-full", np({
        "podSelector": {"matchLabels": {"app": "db"},
                        "matchExpressions": [{"key": "tier", "operator": "In",
                                              "values": ["a", "b"]},
                                             {"key": "canary", "operator": "DoesNotExist"}]},
        "ingress": [{"from": [
            {"podSelector": {"matchLabels": {"app": "web"}}},
            {"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": {}},
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.0/24"]}},
        ], "ports": [{"port": 5432}, {"protocol": "udp", "port": "dns"},
                     {"port": 8000, "endPort": 8080}, {"protocol": "SCTP"}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8"}}]}]}),
     {"podSelector": {"matchLabels": {"app": "db"}, "matchExpressions": [
         {"key": "tier", "operator": "In", "values": ["a", "b"]},
         {"key": "canary", "operator": "DoesNotExist", "values": []}]},
      "policyTypes": ["Ingress", "Egress"],
      "ingress": [{"from": [
          {"podSelector": {"matchLabels": {"app": "web"}, "matchExpressions": []}},
          {"namespaceSelector": {"matchLabels": {"team": "x"}, "matchExpressions": []},
           "podSelector": EMPTY_SEL},
          {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.0/24"]}}],
          "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "UDP", "port": "dns"},
                    {"protocol": "TCP", "port": 8000, "endPort": 8080},
                    {"protocol": "SCTP"}]}],
      "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8", "except": []}}], "ports": []}]},
     True),
]


@pytest.mark.parametrize("doc, expected, exact", cases(VALID))
def test_valid(doc, expected, exact):
    check_valid(doc, expected, exact=exact)


INVALID = [
    # SecurityGroup
    ("sg-no-direction", sg({"rules": [{"protocol": "tcp"}]}),
     "SecurityGroup/web: spec.rules[0].direction: required field is missing"),
    ("sg-direction", sg({"rules": [rule(direction="in")]}),
     "SecurityGroup/web: spec.rules[0].direction: 'in' must be one of ingress, egress"),
    ("sg-protocol", sg({"rules": [rule(protocol="gre")]}),
     "spec.rules[0].protocol: 'gre' must be one of tcp, udp, icmp, any"),
    ("sg-ports-icmp", sg({"rules": [rule(protocol="icmp", ports="80")]}),
     "SecurityGroup/web: spec.rules[0].ports: '80' only applies to protocol tcp or udp"),
    ("sg-ports-any", sg({"rules": [rule(ports="80")]}),
     "spec.rules[0].ports: '80' only applies to protocol tcp or udp, not any"),
    ("sg-port-zero", sg({"rules": [rule(protocol="tcp", ports="0")]}),
     "spec.rules[0].ports: '0' has port 0 out of range 1..65535"),
    ("sg-port-big", sg({"rules": [rule(protocol="tcp", ports="80,70000")]}),
     "spec.rules[0].ports: '70000' has port 70000 out of range"),
    ("sg-port-reversed", sg({"rules": [rule(protocol="tcp", ports="2000-1000")]}),
     "SecurityGroup/web: spec.rules[0].ports: '2000-1000' is an empty range"),
    ("sg-port-garbage", sg({"rules": [rule(protocol="tcp", ports="80-")]}),
     "spec.rules[0].ports: '80-' is not a port or a 'lo-hi' port range"),
    ("sg-port-float", sg({"rules": [rule(protocol="tcp", ports=8.5)]}),
     "spec.rules[0].ports: 8.5 must be a port list"),
    ("sg-two-remotes", sg({"rules": [rule(remoteCidr="10.0.0.0/8", remoteNamespace="a")]}),
     "SecurityGroup/web: spec.rules[0]: give at most one of remoteCidr, remoteSecurityGroup, "
     "remoteNamespace"),
    ("sg-remote-cidr", sg({"rules": [rule(remoteCidr="10.0.0.1/8")]}),
     "spec.rules[0].remoteCidr: '10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"),
    ("sg-remote-ns", sg({"rules": [rule(remoteNamespace="a.b")]}),
     "spec.rules[0].remoteNamespace: 'a.b' is not a valid DNS-1123 label"),
    ("sg-priority-zero", sg({"rules": [rule(priority=0)]}),
     "spec.rules[0].priority: 0 is out of range 1..1000"),
    ("sg-priority-big", sg({"rules": [rule(priority=1001)]}), "spec.rules[0].priority: 1001"),
    ("sg-action", sg({"rules": [rule(action="reject")]}),
     "spec.rules[0].action: 'reject' must be one of allow, deny"),
    ("sg-both-aliases", sg({"allowSameGroup": True, "allowSameGroupTraffic": True}),
     "SecurityGroup/web: spec.allowSameGroupTraffic: is an alias of allowSameGroup"),
    ("sg-same-not-bool", sg({"allowSameGroup": "true"}),
     "spec.allowSameGroup: 'true' must be true or false"),
    ("sg-dup-rule-name", sg({"rules": [rule(name="a"), rule(name="a")]}),
     "SecurityGroup/web: spec.rules[1]: 'a' is already the id of rule 0"),
    ("sg-name-clashes-index", sg({"rules": [rule(), rule(name="0")]}),
     "spec.rules[1]: '0' is already the id of rule 0"),
    ("sg-rule-name", sg({"rules": [rule(name="Allow Web")]}),
     "spec.rules[0].name: 'Allow Web' is not a valid DNS-1123 label"),
    ("sg-rule-typo", sg({"rules": [rule(remote_cidr="10.0.0.0/8")]}),
     "spec.rules[0]: unknown field 'remote_cidr'; did you mean 'remoteCidr'?"),
    ("sg-rules-not-list", sg({"rules": {"direction": "ingress"}}),
     "spec.rules: {'direction': 'ingress'} must be a list"),
    # NetworkPolicy
    ("np-no-selector", np({}),
     "NetworkPolicy/prod/allow: spec.podSelector: required field is missing"),
    ("np-bad-api", np({"podSelector": {}}, api="networking.k8s.io/v1beta1"),
     "NetworkPolicy/prod/allow: apiVersion: 'networking.k8s.io/v1beta1' is not a supported"),
    ("np-types", np({"podSelector": {}, "policyTypes": ["Ingress", "Foo"]}),
     "NetworkPolicy/prod/allow: spec.policyTypes[1]: 'Foo' must be one of Ingress, Egress"),
    ("np-types-dup", np({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}),
     "spec.policyTypes[1]: 'Ingress' is a duplicate"),
    ("np-empty-peer", np({"podSelector": {}, "ingress": [{"from": [{}]}]}),
     "NetworkPolicy/prod/allow: spec.ingress[0].from[0]: a peer needs podSelector, "
     "namespaceSelector or ipBlock"),
    ("np-ipblock-and-selector", np({"podSelector": {}, "egress": [{"to": [
        {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}),
     "spec.egress[0].to[0]: ipBlock cannot be combined"),
    ("np-ipblock-no-cidr", np({"podSelector": {}, "egress": [{"to": [{"ipBlock": {}}]}]}),
     "spec.egress[0].to[0].ipBlock.cidr: required field is missing"),
    ("np-except-outside", np({"podSelector": {}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]}),
     "NetworkPolicy/prod/allow: spec.ingress[0].from[0].ipBlock.except[0]: '10.1.0.0/24' is "
     "not strictly inside cidr 10.0.0.0/16"),
    ("np-except-equal", np({"podSelector": {}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/16"]}}]}]}),
     "'10.0.0.0/16' is not strictly inside"),
    ("np-except-family", np({"podSelector": {}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["fd00::/64"]}}]}]}),
     "'fd00::/64' is not the same address family"),
    ("np-cidr-bad", np({"podSelector": {}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/40"}}]}]}),
     "spec.ingress[0].from[0].ipBlock.cidr: '10.0.0.0/40' is not a valid CIDR"),
    ("np-port-zero", np({"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]}),
     "NetworkPolicy/prod/allow: spec.ingress[0].ports[0].port: 0 is out of range 1..65535"),
    ("np-port-name", np({"podSelector": {}, "ingress": [{"ports": [{"port": "HTTP"}]}]}),
     "spec.ingress[0].ports[0].port: 'HTTP' is not a valid port name"),
    ("np-port-name-digits", np({"podSelector": {}, "ingress": [{"ports": [{"port": "8080"}]}]}),
     "spec.ingress[0].ports[0].port: '8080' is not a valid port name"),
    ("np-port-name-long", np({"podSelector": {}, "ingress": [{"ports": [
        {"port": "a-very-long-port-name"}]}]}),
     "'a-very-long-port-name' is not a valid port name"),
    ("np-endport-named", np({"podSelector": {}, "ingress": [{"ports": [
        {"port": "http", "endPort": 90}]}]}),
     "spec.ingress[0].ports[0].endPort: needs a numeric port"),
    ("np-endport-no-port", np({"podSelector": {}, "ingress": [{"ports": [{"endPort": 90}]}]}),
     "spec.ingress[0].ports[0].endPort: needs a numeric port"),
    ("np-endport-low", np({"podSelector": {}, "ingress": [{"ports": [
        {"port": 100, "endPort": 90}]}]}),
     "NetworkPolicy/prod/allow: spec.ingress[0].ports[0].endPort: 90 is below port 100"),
    ("np-protocol", np({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]}),
     "spec.ingress[0].ports[0].protocol: 'ICMP' must be one of TCP, UDP, SCTP"),
    ("np-in-no-values", np({"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "In"}]}}),
     "NetworkPolicy/prod/allow: spec.podSelector.matchExpressions[0].values: operator In "
     "needs at least one value"),
    ("np-exists-values", np({"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "Exists", "values": ["x"]}]}}),
     "spec.podSelector.matchExpressions[0].values: ['x'] must be empty for operator Exists"),
    ("np-operator", np({"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "Like", "values": ["x"]}]}}),
     "spec.podSelector.matchExpressions[0].operator: 'Like' must be one of In, NotIn, Exists, "
     "DoesNotExist"),
    ("np-match-labels-key", np({"podSelector": {"matchLabels": {"bad key": "x"}}}),
     "spec.podSelector.matchLabels[\"bad key\"]: key 'bad key' is not a valid label key"),
    ("np-match-labels-value", np({"podSelector": {"matchLabels": {"app": 1}}}),
     "spec.podSelector.matchLabels[\"app\"]: 1 must be a string"),
    ("np-selector-typo", np({"podSelector": {"matchLabel": {"app": "x"}}}),
     "spec.podSelector: unknown field 'matchLabel'; did you mean 'matchLabels'?"),
    ("np-rule-typo", np({"podSelector": {}, "ingress": [{"form": []}]}),
     "spec.ingress[0]: unknown field 'form'; did you mean 'from'?"),
    ("np-ingress-to", np({"podSelector": {}, "ingress": [{"to": []}]}),
     "spec.ingress[0]: unknown field 'to'"),
]


@pytest.mark.parametrize("doc, fragments", [
    pytest.param(row[1], row[2:], id=row[0]) for row in INVALID])
def test_invalid(doc, fragments):
    check_invalid(doc, *fragments)
