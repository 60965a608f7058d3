"""Helpers shared by the intent tests (imported by module name: pytest puts this dir on path)."""
from __future__ import annotations

import json

import pytest

from vpcnet.app.intent import KINDS, Obj, ValidationError, validate


def mk(kind: str, spec: dict | None = None, *, name: str = "x", namespace: str | None = None,
       api: str = "vpcnet.io/v1", labels: dict | None = None,
       annotations: dict | None = None, **top) -> dict:
    """Build a manifest dict."""
    assert kind in KINDS
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    doc = {"apiVersion": api, "kind": kind, "metadata": meta}
    if spec is not None:
        doc["spec"] = spec
    doc.update(top)
    return doc


def check_valid(doc: dict, expected: dict | None = None, *, exact: bool = False) -> Obj:
    """Validate ``doc``; compare the normalised spec (subset, or ``exact``); check the
    round trip validate -> to_manifest -> validate and JSON-serialisability."""
    obj = validate(doc)
    if expected is not None:
        if exact:
            assert dict(obj.spec) == expected
        else:
            for key, value in expected.items():
                assert obj.spec.get(key) == value, (key, obj.spec.get(key), value)
            for key in [k for k, v in expected.items() if v is ABSENT]:
                assert key not in obj.spec
    manifest = obj.to_manifest()
    assert json.loads(json.dumps(manifest)) == manifest
    again = validate(manifest)
    assert again == obj
    assert again.spec_json() == obj.spec_json()
    return obj


class _Absent:
    def __eq__(self, other):  # obj.spec.get(key) is None when absent
        return other is None

    def __repr__(self):
        return "ABSENT"


ABSENT = _Absent()


def check_invalid(doc: dict, *fragments: str) -> list[str]:
    """``validate(doc)`` must fail with one message containing every fragment."""
    with pytest.raises(ValidationError) as info:
        validate(doc)
    errors = info.value.errors
    assert any(all(f in m for f in fragments) for m in errors), (
        f"no message contains all of {fragments!r}:\n" + "\n".join(errors))
    return errors


def cases(table):
    """pytest.param list with ids from the first column."""
    return [pytest.param(*row[1:], id=row[0]) for row in table]
