"""Property tests: junk input never crashes validation with anything but ValidationError."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpcnet.app.intent import (
    KINDS, ValidationError, load_path, parse_documents, validate, validate_all,
)

FIELDS = sorted({
    # envelope / metadata
    "apiVersion", "kind", "metadata", "spec", "status", "name", "namespace", "labels",
    "annotations", "subsets",
    # Vpc / Subnet / Namespace
    "namespaces", "vni", "l3Mode", "peers", "vpc", "cidrBlock", "gateway", "excludeIps",
    "vlan", "private", "allowSubnets", "mtu", "subnets",
    # Pod / Node / Leaf
    "nodeName", "containers", "ports", "containerPort", "protocol", "datapathId", "bridge",
    "uplinkPort", "leaf", "leafPort", "tunnelIp", "managementIp", "driver",
    "managementAddress", "credentialsRef", "vtepIp", "asn", "model",
    # SecurityGroup / NetworkPolicy
    "allowSameGroup", "allowSameGroupTraffic", "rules", "direction", "remoteCidr",
    "remoteSecurityGroup", "remoteNamespace", "action", "priority", "id", "podSelector",
    "policyTypes", "ingress", "egress", "from", "to", "namespaceSelector", "ipBlock", "cidr",
    "except", "port", "endPort", "matchLabels", "matchExpressions", "key", "operator",
    "values",
    # Service / Endpoints
    "type", "clusterIP", "targetPort", "nodePort", "selector", "sessionAffinity",
    "sessionAffinityConfig", "clientIP", "timeoutSeconds", "externalTrafficPolicy",
    "internalTrafficPolicy", "addresses", "notReadyAddresses", "ip", "targetRef",
    "conditions", "ready", "serving", "terminating", "hostname",
})

PLAUSIBLE = [
    "", "a", "web", "default", "10.0.0.0/24", "10.0.0.1", "10.0.0.255", "10.0.0.0",
    "fd00::/64", "fd00::1", "10.0.0.0/31", "10.0.0.1/24", "10.0.0.2..10.0.0.9",
    "10.0.0.9..10.0.0.2", "10.0.0.1,fd00::1", "80", "80,443", "1000-2000", "0-1", "TCP", "tcp",
    "UDP", "SCTP", "any", "icmp", "ingress", "egress", "allow", "Ingress", "Egress", "None",
    "ClientIP", "ClusterIP", "NodePort", "Local", "Cluster", "netconf", "vtep", "nxos", "In",
    "NotIn", "Exists", "DoesNotExist", "0000000000000001", "0x00:00:00:00:00:00:00:01",
    "02:00:00:00:00:01", "01:00:5e:00:00:01", "[fd00::1]:830", "[fd00::1", "host:99999",
    "leaf.example:830", "1.2.3", "x:y:z", "distributed", "fabric", "vpcnet.io/ip_address",
    "Pod", "http", "--", "a/b", "a" * 300, "é", "\n", "..", "[", "]:", "::", "0.0.0.0",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-5, max_value=70000),
    st.sampled_from([0, 1, 65535, 65536, 30000, 32767, 4294967295, 2**70, 16777215]),
    st.floats(allow_nan=True), st.sampled_from(PLAUSIBLE), st.text(max_size=8),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=6), st.integers(0, 3))
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=25,
)


@st.composite
def documents(draw):
    kind = draw(st.one_of(st.sampled_from(sorted(KINDS)), junk))
    doc = {
        "apiVersion": draw(st.one_of(
            st.sampled_from(["vpcnet.io/v1", "v1", "networking.k8s.io/v1"]), junk)),
        "kind": kind,
        "metadata": draw(st.one_of(
            st.fixed_dictionaries({"name": st.one_of(st.sampled_from(["web", "db-0"]), junk)},
                                  optional={"namespace": junk, "labels": junk,
                                            "annotations": st.one_of(junk, st.dictionaries(
                                                st.sampled_from([
                                                    "vpcnet.io/ip_address", "vpcnet.io/ip_pool",
                                                    "vpcnet.io/mac_address", "vpcnet.io/subnet",
                                                    "vpcnet.io/security_groups",
                                                    "vpcnet.io/ip_adress"]),
                                                st.one_of(st.sampled_from(PLAUSIBLE), junk),
                                                max_size=3))}),
            junk)),
        "spec": draw(st.one_of(st.dictionaries(st.sampled_from(FIELDS), junk, max_size=8), junk)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=2)):
        doc.pop(key, None)
    return doc


# INTENT_FUZZ_EXAMPLES=5000 for a longer local run; no example database (tests stay pure).
FUZZ = settings(max_examples=int(os.environ.get("INTENT_FUZZ_EXAMPLES", "200")), deadline=None,
                database=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(documents())
def test_validate_only_raises_validation_error(doc):
    try:
        obj = validate(doc)
    except ValidationError as e:
        assert e.errors and all(isinstance(m, str) and m for m in e.errors)
        return
    # Whatever validates must round-trip, be JSON-serialisable and hold no nulls.
    assert validate(obj.to_manifest()) == obj
    json.dumps(obj.to_manifest())
    assert not _has_none(obj.spec)


def _has_none(value):
    if isinstance(value, dict):
        return any(_has_none(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_none(v) for v in value)
    return value is None


@FUZZ
@given(junk)
def test_validate_junk_top_level(value):
    try:
        validate(value)
    except ValidationError:
        pass


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 3))
@given(st.lists(documents(), max_size=4))
def test_validate_all_only_raises_validation_error(docs):
    try:
        validate_all(docs)
    except ValidationError:
        pass


@FUZZ
@given(st.text(max_size=200))
def test_parse_documents_only_raises_validation_error(text):
    try:
        docs = parse_documents(text, "fuzz.yaml")
    except ValidationError as e:
        assert all(m.startswith("fuzz.yaml") for m in e.errors)
        return
    assert all(isinstance(d, dict) for d in docs)


# ---------------------------------------------------------------------------- mutation fuzzing

EXAMPLES = [dict(d) for d in load_path(Path(__file__).resolve().parents[3] / "examples")]


def _paths(value, prefix=()):
    """Every (path, value) inside a JSON-like value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(doc, path, value):
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


@st.composite
def mutated(draw):
    doc = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        _set(doc, path, draw(st.one_of(st.sampled_from(PLAUSIBLE), junk)))
    return doc


@FUZZ
@given(mutated())
def test_mutated_examples_only_raise_validation_error(doc):
    try:
        obj = validate(doc)
    except ValidationError as e:
        assert e.errors
        return
    assert validate(obj.to_manifest()) == obj
    assert not _has_none(obj.spec)
