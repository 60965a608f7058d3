"""The validated object type (:class:`Obj`) and the kind registry (:data:`KINDS`)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ValidationError, fmt

__all__ = [
    "API_VERSION", "KindInfo", "KINDS", "APPLY_ORDER", "resolve_kind", "Obj", "FrozenDict",
    "FrozenList", "freeze", "thaw",
]

API_VERSION = "vpcnet.io/v1"


# ---------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class KindInfo:
    kind: str                          # canonical, e.g. "Subnet"
    plural: str                        # lowercase plural, e.g. "subnets"
    aliases: tuple[str, ...]           # lowercase names accepted by resolve_kind
    namespaced: bool
    api_versions: tuple[str, ...]      # accepted apiVersion strings


def _kind(kind: str, plural: str, aliases: tuple[str, ...], namespaced: bool,
          *extra_versions: str) -> KindInfo:
    return KindInfo(kind, plural, aliases, namespaced, (API_VERSION, *extra_versions))


#: Dependency-friendly order for applying a set of objects.
APPLY_ORDER: tuple[str, ...] = (
    "Vpc", "Namespace", "Subnet", "Node", "Leaf", "SecurityGroup", "Pod", "NetworkPolicy",
    "Service", "Endpoints",
)

KINDS: dict[str, KindInfo] = {k.kind: k for k in (
    _kind("Vpc", "vpcs", ("vpc", "vpcs"), False),
    _kind("Namespace", "namespaces", ("namespace", "namespaces", "ns"), False, "v1"),
    _kind("Subnet", "subnets", ("subnet", "subnets", "sn"), False),
    _kind("Node", "nodes", ("node", "nodes", "no"), False, "v1"),
    _kind("Leaf", "leaves", ("leaf", "leaves"), False),
    _kind("SecurityGroup", "securitygroups", ("securitygroup", "securitygroups", "sg"), False),
    _kind("Pod", "pods", ("pod", "pods", "po"), True, "v1"),
    _kind("NetworkPolicy", "networkpolicies", ("networkpolicy", "networkpolicies", "netpol"),
          True, "networking.k8s.io/v1"),
    _kind("Service", "services", ("service", "services", "svc"), True, "v1"),
    _kind("Endpoints", "endpoints", ("endpoints", "ep"), True, "v1"),
)}

_BY_ALIAS: dict[str, KindInfo] = {}
for _info in KINDS.values():
    for _alias in (_info.kind.lower(), _info.plural, *_info.aliases):
        _BY_ALIAS[_alias] = _info


def resolve_kind(text: Any) -> KindInfo:
    """Look a kind up by name, plural or alias, case-insensitively."""
    info = _BY_ALIAS.get(text.strip().lower()) if isinstance(text, str) else None
    if info is None:
        raise ValidationError(
            f"{fmt(text)} is not a known kind; valid kinds: {', '.join(APPLY_ORDER)}")
    return info


# ---------------------------------------------------------------------------- immutability
def _readonly(self: Any, *args: Any, **kwargs: Any) -> None:
    raise TypeError(f"{type(self).__name__} is read-only; use thaw() or copy.deepcopy() "
                    "to get a mutable copy")


class FrozenDict(dict):
    """A read-only ``dict`` (still a ``dict``: JSON-serialisable, compares equal to dicts).

    ``copy.copy``/``copy.deepcopy`` return plain mutable copies.
    """
    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _readonly  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __copy__(self) -> dict:
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict:
        return thaw(self)

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True, separators=(",", ":"), default=str))


class FrozenList(list):
    """A read-only ``list`` (still a ``list``); copies are plain mutable lists."""
    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _readonly  # type: ignore[assignment]
    append = extend = insert = pop = remove = clear = sort = reverse = _readonly  # type: ignore

    def __copy__(self) -> list:
        return list(self)

    def __deepcopy__(self, memo: dict) -> list:
        return thaw(self)

    def __reduce__(self) -> tuple:
        return (FrozenList, (list(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True, separators=(",", ":"), default=str))


def freeze(value: Any) -> Any:
    """Deep read-only copy of a JSON-like value."""
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return FrozenList(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Deep plain (mutable ``dict``/``list``) copy of a JSON-like value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------------- Obj
@dataclass(frozen=True)
class Obj:
    """One validated, normalised object.

    ``labels``, ``annotations`` and ``spec`` are deep read-only copies (:class:`FrozenDict` /
    :class:`FrozenList`, which are ``dict``/``list`` subclasses, so ``json.dumps`` works and they
    compare equal to plain dicts).  Objects hash by :attr:`key`.
    """
    kind: str
    name: str
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    spec: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("labels", "annotations", "spec"):
            object.__setattr__(self, name, freeze(getattr(self, name) or {}))

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        """``Subnet/web`` or ``Pod/prod/db-0``."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def spec_json(self) -> str:
        """Canonical JSON of the spec (sorted keys, no whitespace): stable for diffing."""
        return _canonical_json(self.spec)

    def to_manifest(self, status: dict | None = None) -> dict:
        """A plain-dict manifest that :func:`validate` turns back into an equal ``Obj``.

        ``status`` is included only when given.
        """
        metadata: dict[str, Any] = {"name": self.name}
        if self.namespace:
            metadata["namespace"] = self.namespace
        if self.labels:
            metadata["labels"] = thaw(self.labels)
        if self.annotations:
            metadata["annotations"] = thaw(self.annotations)
        manifest: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": metadata,
            "spec": thaw(self.spec),
        }
        if status is not None:
            manifest["status"] = thaw(status)
        return manifest
