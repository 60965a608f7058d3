"""parse_documents / load_path, and the shipped examples/ directory."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vpcnet.app.intent import (
    APPLY_ORDER, Document, ValidationError, load_path, parse_documents, validate, validate_all,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

VPC = {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "a"}}
VPC_B = {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "b"}}


# ---------------------------------------------------------------------------- YAML
def test_yaml_multi_document_skips_empty():
    text = "---\n# comment only\n---\n" + yaml.safe_dump(VPC) + "---\n---\n" + \
        yaml.safe_dump(VPC_B) + "...\n"
    docs = parse_documents(text, "x.yaml")
    assert docs == [VPC, VPC_B]
    assert all(isinstance(d, Document) and isinstance(d, dict) for d in docs)
    assert [d.line for d in docs] == [4, 10]
    assert docs[1].location == "x.yaml:10"


def test_empty_text():
    assert parse_documents("") == []
    assert parse_documents("\n# nothing\n") == []


def test_yaml_syntax_error_names_source_and_line():
    text = "apiVersion: vpcnet.io/v1\nkind: Vpc\nmetadata:\n  name: [a\n"
    with pytest.raises(ValidationError) as e:
        parse_documents(text, "bad.yaml")
    (message,) = e.value.errors
    assert message.startswith("bad.yaml:5:") and "invalid YAML" in message


def test_yaml_bad_indentation_line():
    text = "kind: Vpc\nmetadata:\n  name: a\n bad: 1\n"
    with pytest.raises(ValidationError) as e:
        parse_documents(text, "bad.yaml")
    assert e.value.errors[0].startswith("bad.yaml:4:")


def test_yaml_duplicate_keys_rejected():
    text = "kind: Vpc\nmetadata:\n  name: a\n  name: b\n"
    with pytest.raises(ValidationError) as e:
        parse_documents(text, "dup.yaml")
    assert "dup.yaml:4:" in str(e.value) and "duplicate key 'name'" in str(e.value)
    assert "first at line 3" in str(e.value)


def test_yaml_merge_keys_still_work():
    text = "base: &b {x: 1}\nkind: Vpc\nmore:\n  <<: *b\n  x: 2\n"
    assert parse_documents(text)[0]["more"] == {"x": 2}


def test_yaml_control_character():
    with pytest.raises(ValidationError) as e:
        parse_documents("kind: Vpc\nname: \x07\n", "ctl.yaml")
    assert e.value.errors[0].startswith("ctl.yaml:2: invalid YAML")


def test_scalar_document_rejected():
    with pytest.raises(ValidationError) as e:
        parse_documents("kind: Vpc\n---\njust a string\n---\n- 1\n", "s.yaml")
    assert e.value.errors == ["s.yaml:3: a document must be a mapping, not string",
                              "s.yaml:5: a list item must be a mapping, not integer"]


def test_yaml_list_kind_and_top_level_sequence():
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [VPC, VPC_B]})
    docs = parse_documents(text, "l.yaml")
    assert docs == [VPC, VPC_B]
    assert [d.location for d in docs] == ["l.yaml:3", "l.yaml:7"]
    docs = parse_documents(yaml.safe_dump([VPC, VPC_B]), "s.yaml")
    assert docs == [VPC, VPC_B] and docs[0].line == 1


def test_yaml_bytes_input_and_bom():
    assert parse_documents(b"\xef\xbb\xbf" + yaml.safe_dump(VPC).encode()) == [VPC]
    with pytest.raises(ValidationError, match="not UTF-8"):
        parse_documents(b"\xff\xfe kind: x", "b.yaml")


# ---------------------------------------------------------------------------- JSON
def test_json_single_object():
    assert parse_documents(json.dumps(VPC), "a.json") == [VPC]


def test_json_list():
    docs = parse_documents(json.dumps([VPC, VPC_B]), "a.json")
    assert docs == [VPC, VPC_B]
    assert docs[1].location == "a.json (document 2)"


def test_json_kind_list():
    text = json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {},
                       "items": [VPC, VPC_B]}, indent=2)
    assert parse_documents(text, "l.json") == [VPC, VPC_B]
    objs = validate_all(parse_documents(text, "l.json"))
    assert [o.name for o in objs] == ["a", "b"]


def test_json_list_items_not_list():
    with pytest.raises(ValidationError, match="List items must be a list"):
        parse_documents(json.dumps({"kind": "List", "items": {"a": 1}}), "l.json")


def test_json_syntax_error_names_line():
    text = '{\n  "kind": "Vpc",\n  "metadata": {"name": "a"\n}\n'
    with pytest.raises(ValidationError) as e:
        parse_documents(text, "bad.json")
    assert e.value.errors[0].startswith("bad.json:5:1: invalid JSON")


def test_json_errors_carry_document_location():
    docs = parse_documents(json.dumps([VPC, dict(VPC_B, spec={"vni": 0})]), "v.json")
    with pytest.raises(ValidationError) as e:
        validate_all(docs)
    assert e.value.errors == ["v.json (document 2): Vpc/b: spec.vni: 0 is out of range "
                              "1..16777215"]


def test_documents_dump_like_plain_dicts():
    docs = parse_documents(yaml.safe_dump(VPC), "a.yaml")
    assert yaml.safe_load(yaml.safe_dump(docs[0])) == VPC
    assert json.loads(json.dumps(docs)) == [VPC]


# ---------------------------------------------------------------------------- load_path
def test_load_path_directory(tmp_path):
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(VPC_B))
    (tmp_path / "a.json").write_text(json.dumps(VPC))
    (tmp_path / "c.yml").write_text("")
    (tmp_path / "notes.txt").write_text("kind: nope")
    (tmp_path / ".hidden.yaml").write_text("kind: nope")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "z.yaml").write_text("kind: nope")
    docs = load_path(tmp_path)
    assert docs == [VPC, VPC_B]
    assert docs[0].source == str(tmp_path / "a.json")
    assert docs[1].location == f"{tmp_path / 'b.yaml'}:1"


def test_load_path_file(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text(yaml.safe_dump(VPC))
    assert load_path(str(f)) == [VPC]


def test_load_path_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: [\n")
    (tmp_path / "b.yaml").write_bytes(b"\xff\xfe")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(VPC))
    with pytest.raises(ValidationError) as e:
        load_path(tmp_path)
    assert len(e.value.errors) == 2
    assert e.value.errors[0].startswith(f"{tmp_path / 'a.yaml'}:2:")
    assert e.value.errors[1].startswith(f"{tmp_path / 'b.yaml'}: not UTF-8")


def test_load_path_missing_and_empty_dir(tmp_path):
    with pytest.raises(ValidationError, match="no such file"):
        load_path(tmp_path / "nope.yaml")
    with pytest.raises(ValidationError, match="no \\*.yaml"):
        load_path(tmp_path)


def test_validation_errors_name_file_and_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(VPC) + "---\n" + "apiVersion: vpcnet.io/v1\nkind: Subnet\n"
                 "metadata:\n  name: web\nspec:\n  cidrBlock: 10.0.0.0/33\n")
    with pytest.raises(ValidationError) as e:
        validate_all(load_path(f))
    assert e.value.errors == [f"{f}:6: Subnet/web: spec.cidrBlock: '10.0.0.0/33' is not a "
                              "valid CIDR"]


def test_duplicates_across_files_name_both(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(VPC))
    (tmp_path / "b.yaml").write_text("# dup\n" + yaml.safe_dump(VPC))
    with pytest.raises(ValidationError) as e:
        validate_all(load_path(tmp_path))
    assert e.value.errors == [f"Vpc/a: defined more than once: at {tmp_path / 'a.yaml'}:1 and "
                              f"at {tmp_path / 'b.yaml'}:2"]


# ---------------------------------------------------------------------------- examples/
def test_examples_validate():
    objs = validate_all(load_path(EXAMPLES))
    counts = {kind: sum(o.kind == kind for o in objs) for kind in APPLY_ORDER}
    assert counts == {"Vpc": 2, "Namespace": 3, "Subnet": 3, "Node": 2, "Leaf": 2,
                      "SecurityGroup": 1, "Pod": 5, "NetworkPolicy": 1, "Service": 1,
                      "Endpoints": 1}
    assert [o.kind for o in objs] == sorted((o.kind for o in objs), key=APPLY_ORDER.index)
    by_ref = {o.ref: o for o in objs}
    assert by_ref["Vpc/finance"].spec["vni"] == 50001
    assert list(by_ref["Vpc/finance"].spec["namespaces"]) == ["trading", "payments"]
    assert by_ref["Subnet/shop-a"].spec["cidrBlock"] == "10.30.0.0/24,fd00:30::/64"
    assert by_ref["Subnet/trading-a"].spec["excludeIps"] == ["10.10.0.2..10.10.0.9"]
    assert by_ref["Node/node-2"].spec["datapathId"] == "0000000000000002"
    assert by_ref["Leaf/leaf-1"].spec["managementAddress"] == "172.30.0.1:830"
    assert by_ref["Pod/payments/db-1"].annotations["vpcnet.io/ip_pool"] == \
        "10.20.0.50,10.20.0.51,10.20.0.52"
    assert {o.spec["nodeName"] for o in objs if o.kind == "Pod"} == {"node-1", "node-2"}
    assert {o.namespace for o in objs if o.kind == "Pod"} == {"trading", "payments", "shop"}
    for obj in objs:
        assert validate(obj.to_manifest()) == obj


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_each_example_file_validates(path):
    assert validate_all(load_path(path))
