"""Small typed-field helpers shared by the per-kind validators.

A *check* is a function ``check(r, path, value) -> normalised | None``: it reports every problem
with ``value`` into the :class:`~.errors.Reporter` ``r`` and returns ``None`` if the value is
unusable.  :class:`Fields` wraps one user mapping, hands out typed values and remembers which
keys were read so that :meth:`Fields.done` can reject unknown (typo'd) keys.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import Reporter, fmt, idx, mkey, sub

__all__ = [
    "MISSING", "Check", "Fields", "is_int", "check_str", "check_bool", "check_map", "check_list",
    "int_range",
    "one_of", "list_of", "dns_label", "dns_subdomain", "iana_svc_name", "iface_name",
    "label_key", "label_value", "label_map", "annotation_map", "comma_list",
]

MISSING: Any = object()
Check = Callable[[Reporter, str, Any], Any]


def is_int(value: object) -> bool:
    """True for real integers (``bool`` is an ``int`` subclass in Python but not here)."""
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------- scalar checks
def check_str(r: Reporter, path: str, value: Any) -> str | None:
    if not isinstance(value, str):
        r.wrong_type(path, value, "a string")
        return None
    return value


def check_nonempty_str(r: Reporter, path: str, value: Any) -> str | None:
    """A string without whitespace (port names, driver-specific identifiers)."""
    if check_str(r, path, value) is None:
        return None
    if not value or len(value) > 64 or any(c.isspace() for c in value):
        r.bad(path, value, "must be 1-64 characters without whitespace")
        return None
    return value


def check_bool(r: Reporter, path: str, value: Any) -> bool | None:
    if not isinstance(value, bool):
        r.wrong_type(path, value, "true or false")
        return None
    return value


def check_map(r: Reporter, path: str, value: Any) -> dict | None:
    if not isinstance(value, dict):
        r.wrong_type(path, value, "a mapping")
        return None
    return value


def check_list(r: Reporter, path: str, value: Any) -> list | None:
    if not isinstance(value, list):
        r.wrong_type(path, value, "a list")
        return None
    return value


def int_range(lo: int, hi: int) -> Check:
    def check(r: Reporter, path: str, value: Any) -> int | None:
        if not is_int(value):
            r.wrong_type(path, value, "an integer")
            return None
        if not lo <= value <= hi:
            r.bad(path, value, f"is out of range {lo}..{hi}")
            return None
        return value
    return check


def one_of(choices: Sequence[str], *, fold_case: bool = False) -> Check:
    """An enumerated string; with ``fold_case`` any capitalisation is accepted and normalised."""
    folded = {c.lower(): c for c in choices}

    def check(r: Reporter, path: str, value: Any) -> str | None:
        if isinstance(value, str):
            if value in choices:
                return value
            if fold_case and value.lower() in folded:
                return folded[value.lower()]
        r.bad(path, value, "must be one of " + ", ".join(choices))
        return None
    return check


def list_of(item: Check, *, unique: bool = False, what: str = "") -> Check:
    """A list whose items pass ``item``; ``unique`` rejects repeated (normalised) items."""
    def check(r: Reporter, path: str, value: Any) -> list | None:
        if not isinstance(value, list):
            r.wrong_type(path, value, "a list")
            return None
        out, ok, seen = [], True, {}
        for i, v in enumerate(value):
            n = item(r, idx(path, i), v)
            if n is None:
                ok = False
                continue
            if unique:
                marker = _hashable(n)
                if marker in seen:
                    r.bad(idx(path, i), v, f"is a duplicate of {idx(path, seen[marker])}")
                    ok = False
                    continue
                seen[marker] = i
            out.append(n)
        return out if ok else None
    return check


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def comma_list(r: Reporter, path: str, value: Any) -> list[str] | None:
    """Split ``"a, b,c"`` into stripped items; empty items are errors."""
    if check_str(r, path, value) is None:
        return None
    if not value.strip():
        r.bad(path, value, "must not be empty")
        return None
    items = [p.strip() for p in value.split(",")]
    if any(not p for p in items):
        r.bad(path, value, "has an empty item in its comma-separated list")
        return None
    return items


# ---------------------------------------------------------------------------- names
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(_LABEL)
_DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_IANA_SVC = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")


def dns_label(r: Reporter, path: str, value: Any) -> str | None:
    """RFC 1123 label: lowercase alphanumerics and '-', start/end alphanumeric, at most 63."""
    if check_str(r, path, value) is None:
        return None
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        r.bad(path, value, "is not a valid DNS-1123 label (lowercase letters, digits and '-', "
                           "starting and ending with a letter or digit, at most 63 characters)")
        return None
    return value


def dns_subdomain(r: Reporter, path: str, value: Any) -> str | None:
    """RFC 1123 subdomain: dot-separated labels, at most 253 characters."""
    if check_str(r, path, value) is None:
        return None
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        r.bad(path, value, "is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' "
                           "and '.', starting and ending with a letter or digit, at most 253 "
                           "characters)")
        return None
    return value


def iana_svc_name(r: Reporter, path: str, value: Any) -> str | None:
    """A named port (IANA_SVC_NAME): at most 15 of [a-z0-9-], with at least one letter."""
    if check_str(r, path, value) is None:
        return None
    if (len(value) > 15 or not _IANA_SVC.fullmatch(value) or "--" in value
            or not any(c.isalpha() for c in value)):
        r.bad(path, value, "is not a valid port name (at most 15 lowercase letters, digits and "
                           "'-', at least one letter, no leading, trailing or double '-')")
        return None
    return value


def iface_name(r: Reporter, path: str, value: Any) -> str | None:
    """A Linux/OVS interface name: 1-15 characters, no '/', ':' or whitespace."""
    if check_str(r, path, value) is None:
        return None
    if (not value or len(value) > 15 or value in (".", "..")
            or any(c in "/:" or c.isspace() or not c.isprintable() for c in value)):
        r.bad(path, value, "is not a valid interface name (1-15 characters, no '/', ':' or "
                           "whitespace)")
        return None
    return value


def label_key(r: Reporter, path: str, value: Any) -> str | None:
    """Kubernetes qualified name: ``[dns-subdomain/]name`` with name at most 63 characters."""
    if not isinstance(value, str):
        r.error(path, f"key {fmt(value)} must be a string, not {type(value).__name__}")
        return None
    prefix, slash, name = value.rpartition("/")
    ok = bool(_QUALIFIED_NAME.fullmatch(name)) and len(name) <= 63
    if slash:
        ok = ok and len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix))
    if not ok:
        r.error(path, f"key {fmt(value)} is not a valid label key (optional DNS subdomain "
                      "prefix and '/', then at most 63 of [A-Za-z0-9._-] starting and ending "
                      "alphanumeric)")
        return None
    return value


def label_value(r: Reporter, path: str, value: Any) -> str | None:
    if not isinstance(value, str):
        r.wrong_type(path, value, "a string (quote numbers and booleans)")
        return None
    if value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
        r.bad(path, value, "is not a valid label value (empty, or at most 63 of [A-Za-z0-9._-] "
                           "starting and ending alphanumeric)")
        return None
    return value


def _string_map(r: Reporter, path: str, value: Any, value_check: Check) -> dict | None:
    if check_map(r, path, value) is None:
        return None
    out, ok = {}, True
    for k, v in value.items():
        at = mkey(path, k)
        key = label_key(r, at, k)
        val = value_check(r, at, v)
        if key is None or val is None:
            ok = False
        else:
            out[key] = val
    return out if ok else None


def label_map(r: Reporter, path: str, value: Any) -> dict[str, str] | None:
    """``metadata.labels`` / selectors: label key -> label value."""
    return _string_map(r, path, value, label_value)


def annotation_map(r: Reporter, path: str, value: Any) -> dict[str, str] | None:
    """``metadata.annotations``: label-syntax key -> any string."""
    def any_string(r: Reporter, p: str, v: Any) -> str | None:
        if not isinstance(v, str):
            r.wrong_type(p, v, "a string (quote numbers and booleans)")
            return None
        return v
    return _string_map(r, path, value, any_string)


# ---------------------------------------------------------------------------- Fields
class Fields:
    """Typed access to one user mapping; tracks the keys read so unknown ones can be rejected.

    Every getter returns the normalised value, ``default`` when the key is absent (or null),
    or ``None`` when the value was invalid (the error is already reported).
    """

    def __init__(self, r: Reporter, data: Mapping, path: str):
        self.r = r
        self.data = data
        self.path = path
        self.read: list[str] = []

    def at(self, key: str) -> str:
        return sub(self.path, key)

    def has(self, key: str) -> bool:
        """True if ``key`` is present and not null (does not count as a read)."""
        return self.data.get(key) is not None

    def ignore(self, *keys: str) -> None:
        """Accept ``keys`` without using them (e.g. real Kubernetes fields we drop)."""
        self.read.extend(keys)

    def get(self, key: str, check: Check, *, required: bool = False, default: Any = None) -> Any:
        self.read.append(key)
        value = self.data.get(key)
        if value is None:
            if required:
                self.r.missing(self.at(key))
            return default
        return check(self.r, self.at(key), value)

    def str(self, key: str, *, required: bool = False, default: Any = None) -> Any:
        return self.get(key, check_str, required=required, default=default)

    def int(self, key: str, lo: int, hi: int, *, required: bool = False,
            default: Any = None) -> Any:
        return self.get(key, int_range(lo, hi), required=required, default=default)

    def bool(self, key: str, default: Any = None) -> Any:
        return self.get(key, check_bool, default=default)

    def enum(self, key: str, choices: Sequence[str], *, default: Any = None,
             required: bool = False, fold_case: bool = False) -> Any:
        return self.get(key, one_of(choices, fold_case=fold_case), required=required,
                        default=default)

    def list(self, key: str, item: Check, *, unique: bool = False, required: bool = False,
             default: Any = MISSING) -> Any:
        return self.get(key, list_of(item, unique=unique), required=required,
                        default=[] if default is MISSING else default)

    def map(self, key: str, *, required: bool = False, default: Any = None) -> Any:
        return self.get(key, check_map, required=required, default=default)

    def done(self, allow_unknown: bool = False) -> None:
        """Report keys that were never read (unless ``allow_unknown``)."""
        known = set(self.read)
        for key in self.data:
            if not isinstance(key, str):
                self.r.error(self.path, f"field name {fmt(key)} must be a string")
            elif key not in known and not allow_unknown:
                self.r.error(self.path, f"unknown field {fmt(key)}{suggest(key, known)}")


def suggest(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'cidrBlock'?"`` for a near miss, else ``""``."""
    known = sorted(set(known))
    lowered = {k.lower(): k for k in known}
    match = lowered.get(word.lower())
    if match is None:
        close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
        match = close[0] if close else None
    return f"; did you mean {match!r}?" if match else ""
