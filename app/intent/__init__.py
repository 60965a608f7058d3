"""The intent model: parse and validate vpcnet's Kubernetes-style manifests.

Typical use::

    from vpcnet.app.intent import load_path, validate_all
    objs = validate_all(load_path("examples/"))   # -> list[Obj] in APPLY_ORDER

Everything raises :class:`ValidationError` (with ``.errors``, one message per problem) on bad
input; no other exception escapes ``validate``/``validate_all`` for JSON/YAML-shaped input.
"""
from .envelope import validate, validate_all
from .errors import ValidationError
from .manifest import Document, load_path, parse_documents
from .objects import API_VERSION, APPLY_ORDER, KINDS, KindInfo, Obj, resolve_kind

__all__ = [
    "API_VERSION",
    "APPLY_ORDER",
    "Document",
    "KINDS",
    "KindInfo",
    "Obj",
    "ValidationError",
    "load_path",
    "parse_documents",
    "resolve_kind",
    "validate",
    "validate_all",
]
