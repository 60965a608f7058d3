"""Envelope rules, Obj behaviour, validate_all (duplicates, ordering, collected errors)."""
from __future__ import annotations

import copy
import json
import pickle

import pytest
import yaml

from intent_testlib import check_invalid, check_valid, mk
from vpcnet.app.intent import (
    API_VERSION, APPLY_ORDER, KINDS, Obj, ValidationError, resolve_kind, validate, validate_all,
)

SUBNET = {"cidrBlock": "10.0.0.0/24"}


# ---------------------------------------------------------------------------- apiVersion
@pytest.mark.parametrize("kind, api", [
    (kind, api) for kind, info in KINDS.items() for api in info.api_versions])
def test_accepted_api_versions(kind, api):
    assert api == API_VERSION or kind in {"NetworkPolicy", "Namespace", "Pod", "Node",
                                          "Service", "Endpoints"}
    doc = mk(kind, name="x", api=api)
    try:
        validate(doc)
    except ValidationError as e:  # spec may be incomplete; the envelope must be fine
        assert not any("apiVersion" in m for m in e.errors), e.errors


@pytest.mark.parametrize("kind, api", [
    ("Subnet", "v1"), ("Vpc", "networking.k8s.io/v1"), ("Pod", "networking.k8s.io/v1"),
    ("Leaf", "vpcnet.io/v2"), ("NetworkPolicy", "v1"), ("SecurityGroup", "kubeovn.io/v1"),
])
def test_rejected_api_versions(kind, api):
    check_invalid(mk(kind, name="x", api=api), f"{kind}/", "apiVersion", repr(api),
                  "is not a supported apiVersion", "vpcnet.io/v1")


def test_api_version_missing():
    doc = mk("Vpc")
    del doc["apiVersion"]
    check_invalid(doc, "Vpc/x: apiVersion: required field is missing")


# ---------------------------------------------------------------------------- kind
def test_kind_missing():
    doc = mk("Vpc")
    del doc["kind"]
    check_invalid(doc, "<no kind>/x: kind: required field is missing")


def test_kind_unknown_lists_valid_kinds():
    doc = mk("Vpc") | {"kind": "Router"}
    errors = check_invalid(doc, "Router/x: kind: 'Router' is not a known kind; valid kinds: "
                                + ", ".join(APPLY_ORDER))
    assert len(errors) == 1


def test_kind_wrong_case_suggests():
    check_invalid(mk("Vpc") | {"kind": "subnet"},
                  "kind: 'subnet' is not a known kind; did you mean 'Subnet'?")


# ---------------------------------------------------------------------------- metadata
@pytest.mark.parametrize("meta, fragments", [
    (None, ["Vpc/<no name>: metadata: required field is missing"]),
    ("web", ["metadata: 'web' must be a mapping"]),
    ({}, ["Vpc/<no name>: metadata.name: required field is missing"]),
    ({"name": "Web_1"}, ["Vpc/Web_1: metadata.name: 'Web_1' is not a valid DNS-1123 subdomain"]),
    ({"name": "a" * 254}, ["metadata.name: 'aaaa", "is not a valid DNS-1123 subdomain"]),
    ({"name": "-a"}, ["metadata.name: '-a'"]),
    ({"name": 5}, ["metadata.name: 5 must be a string"]),
    ({"name": "x", "labels": {"app": 1}},
     ['Vpc/x: metadata.labels["app"]: 1 must be a string']),
    ({"name": "x", "labels": {"app": True}}, ['metadata.labels["app"]: True must be a string']),
    ({"name": "x", "labels": {"bad key": "v"}},
     ["metadata.labels[\"bad key\"]: key 'bad key' is not a valid label key"]),
    ({"name": "x", "labels": {"Example.com/app": "v"}}, ["key 'Example.com/app' is not a valid"]),
    ({"name": "x", "labels": {"a" * 64: "v"}}, ["is not a valid label key"]),
    ({"name": "x", "labels": {"app": "v" * 64}}, ['metadata.labels["app"]: \'vvvv',
                                                  "is not a valid label value"]),
    ({"name": "x", "labels": {"app": "-v"}}, ["'-v' is not a valid label value"]),
    ({"name": "x", "labels": ["app"]}, ["metadata.labels: ['app'] must be a mapping"]),
    ({"name": "x", "labels": {1: "v"}}, ['metadata.labels["1"]: key 1 must be a string']),
    ({"name": "x", "annotations": {"note": 5}},
     ['Vpc/x: metadata.annotations["note"]: 5 must be a string']),
    ({"name": "x", "annotations": {"no/te/x": "v"}}, ["key 'no/te/x' is not a valid"]),
    ({"name": "x", "lables": {}}, ["Vpc/x: metadata: unknown field 'lables'; did you mean "
                                   "'labels'?"]),
    ({"name": "x", "namespace": "default"},
     ["Vpc/x: metadata.namespace: 'default' is not allowed: Vpc is cluster-scoped"]),
])
def test_metadata_errors(meta, fragments):
    doc = {"apiVersion": API_VERSION, "kind": "Vpc", "metadata": meta}
    if meta is None:
        del doc["metadata"]
    check_invalid(doc, *fragments)


def test_metadata_labels_annotations_kept_and_k8s_noise_ignored():
    doc = mk("Vpc", labels={"app": "x", "example.com/tier": "", "a.b_c-d": "A.b_C-1"},
             annotations={"note": "free text: anything {}", "example.com/x": ""})
    doc["metadata"].update(uid="abc", resourceVersion="12", creationTimestamp=None,
                           generation=3, managedFields=[{"manager": "kubectl"}])
    obj = check_valid(doc)
    assert dict(obj.labels) == {"app": "x", "example.com/tier": "", "a.b_c-d": "A.b_C-1"}
    assert dict(obj.annotations) == {"note": "free text: anything {}", "example.com/x": ""}


def test_cluster_scoped_empty_namespace_is_fine():
    assert validate(mk("Vpc", namespace="")).namespace == ""


@pytest.mark.parametrize("kind", ["Pod", "Service", "Endpoints", "NetworkPolicy"])
def test_namespaced_kinds_default_namespace(kind):
    spec = {"Service": {"ports": [{"port": 80}]}, "NetworkPolicy": {"podSelector": {}}}
    obj = check_valid(mk(kind, spec.get(kind), name="x"))
    assert obj.namespace == "default"
    assert obj.key == (kind, "default", "x")
    assert obj.ref == f"{kind}/default/x"
    assert KINDS[kind].namespaced


def test_namespaced_bad_namespace():
    check_invalid(mk("Pod", namespace="a.b", name="p"),
                  "Pod/a.b/p: metadata.namespace: 'a.b' is not a valid DNS-1123 label")


# ---------------------------------------------------------------------------- top level
def test_unknown_top_level_key():
    check_invalid(mk("Vpc") | {"specs": {}},
                  "Vpc/x: unknown top-level field 'specs'; did you mean 'spec'?")


def test_status_is_ignored():
    obj = validate(mk("Subnet", SUBNET) | {"status": {"anything": ["goes", 1]}})
    assert "status" not in obj.to_manifest()


def test_spec_must_be_mapping():
    check_invalid(mk("Subnet", "10.0.0.0/24"), "Subnet/x: spec: '10.0.0.0/24' must be a mapping")


def test_document_not_a_mapping():
    with pytest.raises(ValidationError) as e:
        validate(["not", "a", "doc"], source="in.yaml")
    assert e.value.errors == ["in.yaml: a document must be a mapping, not list"]


def test_source_prefixes_messages():
    with pytest.raises(ValidationError) as e:
        validate(mk("Subnet", {}, name="web"), source="a.yaml")
    assert e.value.errors == ["a.yaml: Subnet/web: spec.cidrBlock: required field is missing"]


def test_multi_error_document_reports_all():
    doc = {"apiVersion": "vpcnet.io/v9", "kind": "Subnet", "extra": 1,
           "metadata": {"name": "web", "namespace": "x", "labels": {"a": 1}},
           "spec": {"cidrBlock": "10.0.0.1/24", "vlan": 0, "private": "no", "typo": 1}}
    with pytest.raises(ValidationError) as e:
        validate(doc)
    errors = e.value.errors
    expected = ["apiVersion: 'vpcnet.io/v9'", "unknown top-level field 'extra'",
                "metadata.namespace: 'x'", 'metadata.labels["a"]: 1', "'10.0.0.1/24'",
                "spec.vlan: 0", "spec.private: 'no'", "unknown field 'typo'"]
    for fragment in expected:
        assert any(fragment in m for m in errors), (fragment, errors)
    assert len(errors) == len(expected)
    assert all(m.startswith("Subnet/web: ") for m in errors)
    assert str(e.value) == "\n".join(errors)


def test_input_document_not_mutated():
    doc = mk("Subnet", {"cidrBlock": "FD00::/64", "excludeIps": ["fd00::5"]})
    before = copy.deepcopy(doc)
    validate(doc)
    assert doc == before


# ---------------------------------------------------------------------------- Obj
def test_obj_api():
    obj = validate(mk("Pod", {"nodeName": "n1", "containers": [{"name": "a"}]}, name="db-0",
                      namespace="prod", api="v1", labels={"app": "db"},
                      annotations={"vpcnet.io/ip_address": "10.0.0.1"}))
    assert obj.key == ("Pod", "prod", "db-0")
    assert obj.ref == "Pod/prod/db-0"
    manifest = obj.to_manifest()
    assert manifest == {
        "apiVersion": "vpcnet.io/v1", "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "prod", "labels": {"app": "db"},
                     "annotations": {"vpcnet.io/ip_address": "10.0.0.1"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "a", "ports": []}]},
    }
    assert obj.to_manifest(status={"phase": "Ready"})["status"] == {"phase": "Ready"}
    assert obj.spec_json() == json.dumps(manifest["spec"], sort_keys=True,
                                         separators=(",", ":"))
    # the manifest is a mutable copy, the object is not
    manifest["spec"]["containers"].append({})
    assert len(obj.spec["containers"]) == 1
    for mutate in (lambda: obj.spec.__setitem__("x", 1), lambda: obj.spec.update(x=1),
                   lambda: obj.spec["containers"].append({}), lambda: obj.labels.pop("app"),
                   lambda: obj.annotations.clear()):
        with pytest.raises(TypeError):
            mutate()
    with pytest.raises(AttributeError):
        obj.name = "other"  # type: ignore[misc]
    # still plain-JSON friendly and comparable to plain dicts
    assert json.loads(json.dumps(obj.spec)) == obj.spec
    plain = copy.deepcopy(obj.spec)
    plain["nodeName"] = "n2"
    assert obj.spec["nodeName"] == "n1"
    assert pickle.loads(pickle.dumps(obj)) == obj
    assert yaml.safe_load(yaml.safe_dump({"spec": obj.spec, "labels": obj.labels})) == {
        "spec": obj.spec, "labels": obj.labels}
    assert hash(obj) == hash(validate(obj.to_manifest()))
    assert {obj: 1}[validate(obj.to_manifest())] == 1


def test_obj_constructed_directly_is_frozen_copy():
    spec = {"namespaces": ["a"]}
    obj = Obj(kind="Vpc", name="v", spec=spec)
    spec["namespaces"].append("b")
    assert obj.spec == {"namespaces": ["a"]}
    assert obj.namespace == "" and obj.ref == "Vpc/v"


def test_validation_error_shape():
    e = ValidationError(["a", "b"])
    assert e.errors == ["a", "b"] and str(e) == "a\nb"
    assert ValidationError("one").errors == ["one"]
    assert pickle.loads(pickle.dumps(e)).errors == ["a", "b"]


# ---------------------------------------------------------------------------- kinds
ALIASES = {
    "Subnet": ["subnet", "subnets", "sn", "SUBNET", "Subnets"],
    "Pod": ["pod", "pods", "po"],
    "Vpc": ["vpc", "vpcs", "VPC"],
    "Namespace": ["namespace", "namespaces", "ns"],
    "Node": ["node", "nodes", "no"],
    "Leaf": ["leaf", "leaves"],
    "SecurityGroup": ["securitygroup", "securitygroups", "sg", "SecurityGroup"],
    "NetworkPolicy": ["networkpolicy", "networkpolicies", "netpol"],
    "Service": ["service", "services", "svc"],
    "Endpoints": ["endpoints", "ep", "Endpoints"],
}


@pytest.mark.parametrize("kind, alias", [(k, a) for k, al in ALIASES.items() for a in al])
def test_resolve_kind(kind, alias):
    assert resolve_kind(alias).kind == kind


def test_kind_registry():
    assert set(KINDS) == set(APPLY_ORDER) == set(ALIASES)
    assert {k for k, i in KINDS.items() if i.namespaced} == {
        "Pod", "Service", "Endpoints", "NetworkPolicy"}
    assert KINDS["Subnet"].plural == "subnets"
    assert KINDS["Leaf"].plural == "leaves"
    assert KINDS["NetworkPolicy"].plural == "networkpolicies"
    assert all(info.plural == info.plural.lower() for info in KINDS.values())


@pytest.mark.parametrize("text", ["router", "", "sub net", None, 5])
def test_resolve_kind_unknown(text):
    with pytest.raises(ValidationError) as e:
        resolve_kind(text)
    assert repr(text) in str(e.value) and "Subnet" in str(e.value) and "Endpoints" in str(e.value)


# ---------------------------------------------------------------------------- validate_all
def test_validate_all_orders_for_apply():
    docs = [
        mk("Endpoints", name="e"), mk("Service", {"ports": [{"port": 1}]}, name="s"),
        mk("NetworkPolicy", {"podSelector": {}}, name="np"), mk("Pod", name="p2"),
        mk("SecurityGroup", name="sg"),
        mk("Leaf", {"driver": "vtep", "managementAddress": "1.1.1.1", "vtepIp": "2.2.2.2",
                    "asn": 1}, name="l"),
        mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e"}, name="n"),
        mk("Subnet", SUBNET, name="b"), mk("Pod", name="p1"), mk("Subnet", SUBNET, name="a"),
        mk("Namespace", name="ns"), mk("Vpc", name="v"),
    ]
    objs = validate_all(docs)
    assert [o.kind for o in objs] == [
        "Vpc", "Namespace", "Subnet", "Subnet", "Node", "Leaf", "SecurityGroup", "Pod", "Pod",
        "NetworkPolicy", "Service", "Endpoints"]
    assert [o.name for o in objs if o.kind in ("Subnet", "Pod")] == ["b", "a", "p2", "p1"]


def test_validate_all_rejects_duplicates_naming_both():
    docs = [mk("Subnet", SUBNET, name="web"), mk("Vpc", name="web"),
            mk("Subnet", {"cidrBlock": "10.1.0.0/24"}, name="web")]
    with pytest.raises(ValidationError) as e:
        validate_all(docs)
    assert e.value.errors == [
        "Subnet/web: defined more than once: at document 1 and at document 3"]


def test_validate_all_duplicates_with_source():
    docs = [mk("Pod", name="p", namespace="a"), mk("Pod", name="p", namespace="b"),
            mk("Pod", name="p", namespace="a")]
    with pytest.raises(ValidationError) as e:
        validate_all(docs, source="pods.json")
    assert e.value.errors == ["Pod/a/p: defined more than once: at pods.json (document 1) and "
                              "at pods.json (document 3)"]


def test_validate_all_collects_errors_from_every_doc():
    docs = [mk("Subnet", {}, name="a"), mk("Vpc", {"vni": 0}, name="b"), "junk",
            mk("Vpc", name="ok")]
    with pytest.raises(ValidationError) as e:
        validate_all(docs)
    assert e.value.errors == [
        "Subnet/a: spec.cidrBlock: required field is missing",
        "Vpc/b: spec.vni: 0 is out of range 1..16777215",
        "a document must be a mapping, not string",
    ]


def test_validate_all_empty_and_bad_container():
    assert validate_all([]) == []
    with pytest.raises(ValidationError):
        validate_all({"kind": "Vpc"})  # type: ignore[arg-type]
