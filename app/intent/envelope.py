"""Validating documents: the envelope (apiVersion/kind/metadata) and dispatch to the kinds."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import network, policy, service, workload
from .errors import Reporter, ValidationError, fmt, type_name
from .fields import Fields, annotation_map, dns_label, dns_subdomain, label_map, suggest
from .objects import APPLY_ORDER, KINDS, KindInfo, Obj, resolve_kind
from .shared import SpecContext, SpecValidator

__all__ = ["validate", "validate_all", "SPEC_VALIDATORS"]

SPEC_VALIDATORS: dict[str, SpecValidator] = {
    **network.VALIDATORS, **workload.VALIDATORS, **policy.VALIDATORS, **service.VALIDATORS}
assert set(SPEC_VALIDATORS) == set(KINDS) == set(APPLY_ORDER)

_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
#: metadata fields that Kubernetes fills in; accepted (so `kubectl get -o yaml` pastes work)
#: and dropped.
_METADATA_IGNORED = (
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "ownerReferences", "finalizers", "managedFields",
    "generateName", "selfLink",
)
_ORDER = {kind: i for i, kind in enumerate(APPLY_ORDER)}


def _location(doc: Any, source: str, number: int = 0) -> str:
    """Where a document came from, for message prefixes."""
    loc = getattr(doc, "location", "")
    if loc:
        return loc
    if source and number:
        return f"{source} (document {number})"
    return source


def _lookup_kind(value: Any) -> KindInfo | None:
    return KINDS.get(value) if isinstance(value, str) else None


def _ref(doc: Mapping, info: KindInfo | None) -> str:
    """``Kind/name`` or ``Kind/namespace/name`` from raw input, for message prefixes."""
    kind = doc.get("kind")
    kind_text = info.kind if info else (kind if isinstance(kind, str) and kind else "<no kind>")
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name")
    name_text = name if isinstance(name, str) and name else "<no name>"
    if info is not None and info.namespaced:
        ns = meta.get("namespace")
        return f"{kind_text}/{ns if isinstance(ns, str) and ns else 'default'}/{name_text}"
    return f"{kind_text}/{name_text}"


def _check_kind(r: Reporter, doc: Mapping) -> KindInfo | None:
    kind = doc.get("kind")
    info = _lookup_kind(kind)
    if kind is None:
        r.missing("kind")
    elif info is None:
        try:
            alias = resolve_kind(kind) if isinstance(kind, str) else None
        except ValidationError:
            alias = None
        hint = (f"; did you mean {alias.kind!r}?" if alias else
                f"; valid kinds: {', '.join(APPLY_ORDER)}")
        r.bad("kind", kind, f"is not a known kind{hint}")
    return info


def _check_api_version(r: Reporter, doc: Mapping, info: KindInfo | None) -> None:
    version = doc.get("apiVersion")
    if version is None:
        r.missing("apiVersion")
    elif info is not None and version not in info.api_versions:
        r.bad("apiVersion", version, f"is not a supported apiVersion for {info.kind}; use "
                                     f"{' or '.join(info.api_versions)}")


def _check_metadata(r: Reporter, doc: Mapping, info: KindInfo | None) -> tuple:
    meta = doc.get("metadata")
    if meta is None:
        r.missing("metadata")
        return None, None, {}, {}
    if not isinstance(meta, dict):
        r.wrong_type("metadata", meta, "a mapping")
        return None, None, {}, {}
    f = Fields(r, meta, "metadata")
    name_check = dns_label if info is not None and info.kind == "Namespace" else dns_subdomain
    name = f.get("name", name_check, required=True)
    namespace: str | None = ""
    if info is not None and info.namespaced:
        namespace = f.get("namespace", dns_label, default="default")
        if meta.get("namespace") == "":
            namespace = "default"
    elif meta.get("namespace") not in (None, ""):
        r.bad("metadata.namespace", meta["namespace"],
              f"is not allowed: {info.kind if info else 'this kind'} is cluster-scoped")
    f.ignore("namespace")
    labels = f.get("labels", label_map, default={})
    annotations = f.get("annotations", annotation_map, default={})
    f.ignore(*_METADATA_IGNORED)
    f.done()
    return name, namespace, labels, annotations


def _spec_fields(r: Reporter, doc: Mapping, info: KindInfo) -> Fields | None:
    spec = doc.get("spec")
    if spec is None:
        spec = {}
    elif not isinstance(spec, dict):
        r.wrong_type("spec", spec, "a mapping")
        return None
    if info.kind == "Endpoints" and "subsets" in doc:
        # core/v1 Endpoints carry `subsets` at the top level; accept that shape too.
        if "subsets" in spec:
            r.error("subsets", "give subsets either at the top level or in spec, not both")
            return None
        return Fields(r, {"subsets": doc["subsets"]}, "")
    return Fields(r, spec, "spec")


def _validate_into(r: Reporter, doc: Any, location: str) -> Obj | None:
    if not isinstance(doc, Mapping):
        r.prefix = location
        r.error("", f"a document must be a mapping, not {type_name(doc)}")
        return None
    info = _lookup_kind(doc.get("kind"))
    r.prefix = ": ".join(p for p in (location, _ref(doc, info)) if p)
    _check_kind(r, doc)
    _check_api_version(r, doc, info)
    allowed = _TOP_LEVEL + (("subsets",) if info is not None and info.kind == "Endpoints" else ())
    for key in doc:
        if key not in allowed:
            r.error("", f"unknown top-level field {fmt(key)}"
                        f"{suggest(key, allowed) if isinstance(key, str) else ''}")
    name, namespace, labels, annotations = _check_metadata(r, doc, info)
    if info is None:
        return None
    ctx = SpecContext(info.kind, name or "", namespace or "", dict(annotations or {}))
    f = _spec_fields(r, doc, info)
    spec = SPEC_VALIDATORS[info.kind](f, ctx) if f is not None else None
    if r.errors or name is None or namespace is None or spec is None:
        return None
    return Obj(kind=info.kind, name=name, namespace=namespace, labels=labels,
               annotations=ctx.annotations, spec=spec)


def _run(doc: Any, location: str) -> tuple[Obj | None, list[str]]:
    r = Reporter()
    try:
        obj = _validate_into(r, doc, location)
    except RecursionError:
        r.error("", "document is too deeply nested")
        obj = None
    return (obj if not r.errors else None), r.errors


def validate(doc: dict, source: str = "") -> Obj:
    """Validate and normalise one document; raises :class:`ValidationError` listing every
    problem found in it."""
    obj, errors = _run(doc, _location(doc, source))
    if errors or obj is None:
        raise ValidationError(errors or ["document did not validate"])
    return obj


def validate_all(docs: Iterable[dict], source: str = "") -> list[Obj]:
    """Validate a set of documents, collecting every error from every document (including
    duplicates of one kind/namespace/name) into one :class:`ValidationError`.

    The objects come back in :data:`APPLY_ORDER` (stable within a kind).
    """
    if isinstance(docs, (str, bytes, Mapping)) or not isinstance(docs, Iterable):
        raise ValidationError(f"{source or 'documents'}: expected a list of documents, not "
                              f"{type_name(docs)}")
    docs = list(docs)
    errors: list[str] = []
    objs: list[Obj] = []
    first: dict[tuple[str, str, str], tuple[str, int]] = {}
    for i, doc in enumerate(docs):
        number = i + 1 if len(docs) > 1 else 0
        location = _location(doc, source, number)
        obj, errs = _run(doc, location)
        errors.extend(errs)
        if obj is None:
            continue
        where = location or f"document {i + 1}"
        if obj.key in first:
            prev, _ = first[obj.key]
            errors.append(f"{obj.ref}: defined more than once: at {prev} and at {where}")
            continue
        first[obj.key] = (where, i)
        objs.append(obj)
    if errors:
        raise ValidationError(errors)
    return sorted(objs, key=lambda o: _ORDER[o.kind])
