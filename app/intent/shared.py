"""Pieces shared by several kinds: the per-document context and Kubernetes label selectors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import Reporter
from .fields import Fields, check_map, label_key, label_map, label_value, list_of

__all__ = ["SpecContext", "SpecValidator", "label_selector", "OPERATORS"]


@dataclass
class SpecContext:
    """What a spec validator may need besides the spec itself."""
    kind: str
    name: str
    namespace: str
    #: validated ``metadata.annotations``; a validator may replace values with normalised ones
    annotations: dict[str, str] = field(default_factory=dict)


SpecValidator = Callable[[Fields, SpecContext], dict]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _key(r: Reporter, path: str, value: Any) -> str | None:
    if not isinstance(value, str):
        r.wrong_type(path, value, "a string")
        return None
    return label_key(r, path, value)


def _requirement(r: Reporter, path: str, value: Any) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    key = f.get("key", _key, required=True)
    op = f.enum("operator", OPERATORS, required=True)
    values = f.list("values", label_value)
    f.done()
    if op in ("In", "NotIn") and values == []:
        r.error(f.at("values"), f"operator {op} needs at least one value")
        return None
    if op in ("Exists", "DoesNotExist") and values:
        r.bad(f.at("values"), values, f"must be empty for operator {op}")
        return None
    if key is None or op is None or values is None:
        return None
    return {"key": key, "operator": op, "values": values}


def label_selector(r: Reporter, path: str, value: Any) -> dict | None:
    """A ``metav1.LabelSelector``, normalised to always carry both keys::

        {"matchLabels": {...}, "matchExpressions": [{"key", "operator", "values"}]}

    ``{}`` selects everything.
    """
    if check_map(r, path, value) is None:
        return None
    f = Fields(r, value, path)
    labels = f.get("matchLabels", label_map, default={})
    exprs = f.get("matchExpressions", list_of(_requirement, unique=True), default=[])
    f.done()
    if labels is None or exprs is None:
        return None
    return {"matchLabels": labels, "matchExpressions": exprs}
