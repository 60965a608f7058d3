"""Validation errors and the collector the validators report into.

Every message has the shape ``[location: ]Kind/name: field.path: <problem>`` where the problem
quotes the offending value with :func:`fmt`, e.g.::

    Subnet/web: spec.cidrBlock: '10.0.0.0/33' is not a valid CIDR
"""
from __future__ import annotations

from typing import Iterable

__all__ = ["ValidationError", "Reporter", "fmt"]

_MAX_REPR = 80


class ValidationError(Exception):
    """One or more problems with user-supplied manifests.

    ``errors`` is the list of messages; ``str(e)`` joins them with newlines.
    """

    def __init__(self, errors: str | Iterable[str]):
        if isinstance(errors, str):
            errors = [errors]
        self.errors: list[str] = [str(e) for e in errors]
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "\n".join(self.errors)

    def __repr__(self) -> str:
        return f"ValidationError({self.errors!r})"


def fmt(value: object) -> str:
    """Quote a user-supplied value for an error message (``'abc'``, ``70000``, ``None``)."""
    try:
        text = repr(value)
    except Exception:  # pragma: no cover - exotic objects from custom loaders
        text = f"<{type(value).__name__}>"
    if len(text) > _MAX_REPR:
        quote = text[0] if text[0] in "'\"" else ""
        text = text[: _MAX_REPR - 4] + "..." + quote
    return text


def type_name(value: object) -> str:
    """A user-facing (YAML/JSON-ish) name for the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


class Reporter:
    """Collects error messages for one document, prefixing each with its location/ref."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        """Record ``message`` about field ``path`` (``path`` may be empty for the document)."""
        parts = [p for p in (self.prefix, path) if p]
        parts.append(message)
        self.errors.append(": ".join(parts))

    def bad(self, path: str, value: object, problem: str) -> None:
        """Record ``path: 'value' problem``."""
        self.error(path, f"{fmt(value)} {problem}")

    def wrong_type(self, path: str, value: object, expected: str) -> None:
        self.error(path, f"{fmt(value)} must be {expected}, not {type_name(value)}")

    def missing(self, path: str) -> None:
        self.error(path, "required field is missing")

    def __bool__(self) -> bool:  # truthy when errors were recorded
        return bool(self.errors)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


def sub(path: str, key: str) -> str:
    """``spec`` + ``cidrBlock`` -> ``spec.cidrBlock``."""
    return f"{path}.{key}" if path else key


def idx(path: str, i: int) -> str:
    """``spec.rules`` + 2 -> ``spec.rules[2]``."""
    return f"{path}[{i}]"


def mkey(path: str, key: object) -> str:
    """``metadata.labels`` + ``app`` -> ``metadata.labels["app"]``."""
    text = key if isinstance(key, str) else repr(key)
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'{path}["{text}"]'
