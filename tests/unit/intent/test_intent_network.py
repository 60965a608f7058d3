"""Vpc, Subnet and Namespace: valid examples round-trip; bad ones name kind/name, path, value."""
from __future__ import annotations

import pytest

from intent_testlib import ABSENT, cases, check_invalid, check_valid, mk

VALID = [
    ("vpc-defaults", mk("Vpc"),
     {"namespaces": [], "l3Mode": "distributed", "strictRevocation": True, "peers": []}, True),
    ("vpc-full", mk("Vpc", {"namespaces": ["a", "b"], "vni": 16777215, "l3Mode": "fabric",
                            "peers": ["other"], "strictRevocation": False}),
     {"namespaces": ["a", "b"], "vni": 16777215, "l3Mode": "fabric", "strictRevocation": False,
      "peers": ["other"]}, True),
    ("subnet-defaults", mk("Subnet", {"cidrBlock": "10.0.0.0/24"}),
     {"vpc": "default", "cidrBlock": "10.0.0.0/24", "excludeIps": [], "namespaces": [],
      "private": False, "allowSubnets": []}, True),
    ("subnet-full", mk("Subnet", {
        "vpc": "finance", "cidrBlock": "10.0.0.0/24,fd00::/64", "gateway": "10.0.0.1,fd00::1",
        "excludeIps": ["10.0.0.2..10.0.0.9", "10.0.0.20", "fd00::10..fd00::20"],
        "namespaces": ["trading"], "vlan": 4094, "vni": 1, "private": True,
        "allowSubnets": ["10.1.0.0/16"], "mtu": 9000}),
     {"vpc": "finance", "cidrBlock": "10.0.0.0/24,fd00::/64", "gateway": "10.0.0.1,fd00::1",
      "excludeIps": ["10.0.0.2..10.0.0.9", "10.0.0.20", "fd00::10..fd00::20"],
      "namespaces": ["trading"], "vlan": 4094, "vni": 1, "private": True,
      "allowSubnets": ["10.1.0.0/16"], "mtu": 9000}, True),
    ("subnet-normalises-text", mk("Subnet", {
        "cidrBlock": " FD00:0::/64 , 10.0.0.0/24", "gateway": "FD00::1 , 10.0.0.254",
        "excludeIps": ["10.0.0.5..10.0.0.5", "FD00::0:9"]}),
     {"cidrBlock": "fd00::/64,10.0.0.0/24", "gateway": "fd00::1,10.0.0.254",
      "excludeIps": ["10.0.0.5", "fd00::9"]}, False),
    ("subnet-smallest", mk("Subnet", {"cidrBlock": "10.0.0.0/30,fd00::/126",
                                      "gateway": "10.0.0.2"}),
     {"cidrBlock": "10.0.0.0/30,fd00::/126", "gateway": "10.0.0.2"}, False),
    ("subnet-two-v4-cidrs", mk("Subnet", {"cidrBlock": "10.0.0.0/24,10.0.1.0/24",
                                          "gateway": "10.0.0.1,10.0.1.1"}),
     {"cidrBlock": "10.0.0.0/24,10.0.1.0/24", "vni": ABSENT, "mtu": ABSENT}, False),
    ("subnet-null-optional-fields", mk("Subnet", {"cidrBlock": "10.0.0.0/8", "gateway": None,
                                                  "excludeIps": None}),
     {"gateway": ABSENT, "excludeIps": []}, False),
    ("namespace-no-spec", mk("Namespace", api="v1"), {"subnets": []}, True),
    ("namespace-full", mk("Namespace", {"vpc": "finance", "subnets": ["b", "a"]}),
     {"vpc": "finance", "subnets": ["b", "a"]}, True),
    ("namespace-k8s-finalizers", mk("Namespace", {"finalizers": ["kubernetes"]}, api="v1"),
     {"subnets": []}, True),
]


@pytest.mark.parametrize("doc, expected, exact", cases(VALID))
def test_valid(doc, expected, exact):
    check_valid(doc, expected, exact=exact)


INVALID = [
    # Vpc
    ("vpc-vni-zero", mk("Vpc", {"vni": 0}), "Vpc/x: spec.vni: 0 is out of range 1..16777215"),
    ("vpc-vni-big", mk("Vpc", {"vni": 16777216}), "Vpc/x", "spec.vni", "16777216"),
    ("vpc-vni-string", mk("Vpc", {"vni": "5"}), "Vpc/x: spec.vni: '5' must be an integer"),
    ("vpc-vni-bool", mk("Vpc", {"vni": True}), "Vpc/x: spec.vni: True must be an integer"),
    ("vpc-l3mode", mk("Vpc", {"l3Mode": "routed"}), "Vpc/x", "spec.l3Mode", "'routed'",
     "distributed, fabric"),
    ("vpc-bad-namespace", mk("Vpc", {"namespaces": ["Bad_NS"]}), "Vpc/x",
     "spec.namespaces[0]", "'Bad_NS'", "DNS-1123 label"),
    ("vpc-dup-namespace", mk("Vpc", {"namespaces": ["a", "a"]}), "Vpc/x",
     "spec.namespaces[1]", "'a'", "duplicate"),
    ("vpc-namespaces-not-list", mk("Vpc", {"namespaces": "a,b"}), "Vpc/x",
     "spec.namespaces", "'a,b' must be a list"),
    ("vpc-peer-self", mk("Vpc", {"peers": ["x"]}), "Vpc/x", "spec.peers", "'x'", "itself"),
    ("vpc-unknown-field", mk("Vpc", {"vnii": 5}), "Vpc/x: spec: unknown field 'vnii'",
     "did you mean 'vni'"),
    # Subnet
    ("subnet-no-cidr", mk("Subnet", {}), "Subnet/x: spec.cidrBlock: required field is missing"),
    ("subnet-no-spec", mk("Subnet"), "Subnet/x: spec.cidrBlock: required field is missing"),
    ("subnet-cidr-33", mk("Subnet", {"cidrBlock": "10.0.0.0/33"}, name="web"),
     "Subnet/web: spec.cidrBlock: '10.0.0.0/33' is not a valid CIDR"),
    ("subnet-cidr-no-prefix", mk("Subnet", {"cidrBlock": "10.0.0.0"}), "Subnet/x",
     "spec.cidrBlock", "'10.0.0.0' is not a valid CIDR"),
    ("subnet-cidr-netmask", mk("Subnet", {"cidrBlock": "10.0.0.0/255.255.255.0"}),
     "spec.cidrBlock", "'10.0.0.0/255.255.255.0' is not a valid CIDR"),
    ("subnet-host-bits", mk("Subnet", {"cidrBlock": "10.0.0.1/24"}),
     "Subnet/x: spec.cidrBlock: '10.0.0.1/24' has host bits set; did you mean 10.0.0.0/24?"),
    ("subnet-v6-host-bits", mk("Subnet", {"cidrBlock": "fd00::1/64"}),
     "'fd00::1/64' has host bits set; did you mean fd00::/64?"),
    ("subnet-slash31", mk("Subnet", {"cidrBlock": "10.0.0.0/31"}), "Subnet/x",
     "spec.cidrBlock", "'10.0.0.0/31' is too small"),
    ("subnet-slash32", mk("Subnet", {"cidrBlock": "10.0.0.0/32"}), "'10.0.0.0/32' is too small"),
    ("subnet-slash127", mk("Subnet", {"cidrBlock": "fd00::/127"}), "'fd00::/127' is too small"),
    ("subnet-slash128", mk("Subnet", {"cidrBlock": "fd00::/128"}), "'fd00::/128' is too small"),
    ("subnet-dup-cidr", mk("Subnet", {"cidrBlock": "10.0.0.0/24,10.0.0.0/24"}),
     "spec.cidrBlock", "'10.0.0.0/24' is listed more than once"),
    ("subnet-overlap", mk("Subnet", {"cidrBlock": "10.0.0.0/16,10.0.1.0/24"}),
     "Subnet/x: spec.cidrBlock: '10.0.1.0/24' overlaps 10.0.0.0/16"),
    ("subnet-cidr-not-string", mk("Subnet", {"cidrBlock": ["10.0.0.0/24"]}),
     "spec.cidrBlock", "must be a string"),
    ("subnet-cidr-empty-item", mk("Subnet", {"cidrBlock": "10.0.0.0/24,"}),
     "spec.cidrBlock", "empty item"),
    ("subnet-gw-outside", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "gateway": "10.0.1.1"}),
     "Subnet/x: spec.gateway: '10.0.1.1' is not inside the subnet's CIDRs"),
    ("subnet-gw-network", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "gateway": "10.0.0.0"}),
     "spec.gateway: '10.0.0.0' is the network address"),
    ("subnet-gw-broadcast", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                          "gateway": "10.0.0.255"}),
     "spec.gateway: '10.0.0.255' is the broadcast address"),
    ("subnet-gw-two-per-cidr", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                             "gateway": "10.0.0.1,10.0.0.2"}),
     "spec.gateway: '10.0.0.2' is a second gateway for 10.0.0.0/24"),
    ("subnet-gw-not-ip", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "gateway": "10.0.0.x"}),
     "Subnet/x: spec.gateway: '10.0.0.x' is not an IP address"),
    ("subnet-excl-reversed", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                           "excludeIps": ["10.0.0.9..10.0.0.2"]}),
     "Subnet/x: spec.excludeIps[0]: '10.0.0.9..10.0.0.2' is an empty range"),
    ("subnet-excl-mixed", mk("Subnet", {"cidrBlock": "10.0.0.0/24,fd00::/64",
                                        "excludeIps": ["10.0.0.1..fd00::1"]}),
     "spec.excludeIps[0]", "'10.0.0.1..fd00::1' mixes IPv4 and IPv6"),
    ("subnet-excl-outside", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                          "excludeIps": ["10.0.0.5", "10.1.0.1"]}),
     "Subnet/x: spec.excludeIps[1]: '10.1.0.1' is not inside the subnet's CIDRs"),
    ("subnet-excl-range-end-outside", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                                    "excludeIps": ["10.0.0.5..10.0.1.5"]}),
     "spec.excludeIps[0]: '10.0.1.5' is not inside"),
    ("subnet-excl-garbage", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                          "excludeIps": ["10.0.0.5..abc"]}),
     "spec.excludeIps[0]: 'abc' is not an IP address"),
    ("subnet-excl-not-list", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                           "excludeIps": "10.0.0.5"}),
     "spec.excludeIps: '10.0.0.5' must be a list"),
    ("subnet-vlan", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "vlan": 4095}),
     "Subnet/x: spec.vlan: 4095 is out of range 1..4094"),
    ("subnet-vni", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "vni": 0}), "spec.vni: 0"),
    ("subnet-mtu-low", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "mtu": 575}),
     "spec.mtu: 575 is out of range 576..9000"),
    ("subnet-mtu-high", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "mtu": 9001}),
     "spec.mtu: 9001"),
    ("subnet-mtu-v6", mk("Subnet", {"cidrBlock": "fd00::/64", "mtu": 1000}),
     "Subnet/x: spec.mtu: 1000 is below the IPv6 minimum MTU"),
    ("subnet-private-string", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "private": "yes"}),
     "spec.private: 'yes' must be true or false"),
    ("subnet-allow-not-private", mk("Subnet", {"cidrBlock": "10.0.0.0/24",
                                               "allowSubnets": ["10.1.0.0/16"]}),
     "Subnet/x: spec.allowSubnets", "private"),
    ("subnet-allow-bad", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "private": True,
                                       "allowSubnets": ["10.1.0.1/16"]}),
     "spec.allowSubnets[0]: '10.1.0.1/16' has host bits set"),
    ("subnet-vpc-name", mk("Subnet", {"cidrBlock": "10.0.0.0/24", "vpc": "Fin_1"}),
     "spec.vpc: 'Fin_1' is not a valid DNS-1123 subdomain"),
    ("subnet-typo", mk("Subnet", {"cidrblock": "10.0.0.0/24"}),
     "Subnet/x: spec: unknown field 'cidrblock'; did you mean 'cidrBlock'?"),
    # Namespace
    ("namespace-name-dot", mk("Namespace", name="a.b"), "Namespace/a.b: metadata.name: 'a.b'",
     "DNS-1123 label"),
    ("namespace-cluster-scoped", mk("Namespace", namespace="default"),
     "Namespace/x: metadata.namespace: 'default' is not allowed", "cluster-scoped"),
    ("namespace-dup-subnet", mk("Namespace", {"subnets": ["a", "a"]}),
     "Namespace/x: spec.subnets[1]: 'a' is a duplicate"),
    ("namespace-unknown", mk("Namespace", {"vcp": "a"}),
     "Namespace/x: spec: unknown field 'vcp'; did you mean 'vpc'?"),
    ("namespace-spec-list", mk("Namespace", ["a"]), "Namespace/x: spec: ['a'] must be a mapping"),
]


@pytest.mark.parametrize("doc, fragments", [
    pytest.param(row[1], row[2:], id=row[0]) for row in INVALID])
def test_invalid(doc, fragments):
    check_invalid(doc, *fragments)


def test_subnet_reports_every_problem_at_once():
    errors = check_invalid(mk("Subnet", {"cidrBlock": "10.0.0.1/24,10.0.0.0/33",
                                         "vlan": 0, "mtu": 1, "bogus": 1}, name="web"))
    joined = "\n".join(errors)
    for fragment in ("'10.0.0.1/24' has host bits", "'10.0.0.0/33' is not a valid CIDR",
                     "spec.vlan: 0", "spec.mtu: 1", "unknown field 'bogus'"):
        assert fragment in joined
    assert all(e.startswith("Subnet/web: ") for e in errors)
