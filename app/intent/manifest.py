"""Reading manifests: YAML (multi-document) or JSON text, files and directories.

Parsed documents are :class:`Document` objects: plain ``dict`` subclasses that also remember
where they came from (``source``, ``line``), so validation errors can say
``examples/20-subnets.yaml:12: Subnet/web: ...``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from .errors import ValidationError, type_name
from .objects import FrozenDict, FrozenList

__all__ = ["Document", "parse_documents", "load_path", "MANIFEST_SUFFIXES"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class Document(dict):
    """A parsed manifest document (a ``dict``) plus its origin."""

    def __init__(self, data: Any = (), source: str = "", line: int | None = None,
                 number: int = 0):
        super().__init__(data)
        self.source = source
        self.line = line
        self.number = number  # 1-based position in its source; 0 when unknown

    @property
    def location(self) -> str:
        """``file.yaml:12`` (YAML), ``file.json (document 3)`` (JSON) or ``file.json``."""
        if self.line:
            return f"{self.source}:{self.line}"
        if self.number:
            return f"{self.source} (document {self.number})"
        return self.source


# Let yaml.safe_dump()/yaml.dump() print Documents and Obj's read-only containers like plain
# mappings/lists (json.dumps handles them natively as dict/list subclasses).
for _dumper in (yaml.SafeDumper, yaml.Dumper):
    _dumper.add_representer(Document, _dumper.represent_dict)
    _dumper.add_representer(FrozenDict, _dumper.represent_dict)
    _dumper.add_representer(FrozenList, _dumper.represent_list)


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (a silent last-one-wins otherwise)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable: the base class reports it
                if duplicate:
                    raise ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r} (first at line "
                        f"{seen[key].start_mark.line + 1})", key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _item_lines(node: Node | None) -> list[int]:
    """Line numbers of a top-level sequence's items, or of a ``kind: List``'s ``items``."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "items":
                node = value
                break
    if isinstance(node, SequenceNode):
        return [item.start_mark.line + 1 for item in node.value]
    return []


def _yaml_documents(text: str, source: str) -> list[tuple[Any, int | None, list[int]]]:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, max(e.position, 0)) + 1
        char = chr(e.character) if isinstance(e.character, int) else e.character
        raise ValidationError(f"{source}:{line}: invalid YAML: character {char!r} is not "
                              "allowed") from None
    out = []
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else None
            out.append((loader.construct_document(node), line, _item_lines(node)))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(p for p in (e.context, e.problem) if p)
        raise ValidationError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as e:  # ReaderError (bad characters) and friends
        raise ValidationError(f"{source}: invalid YAML: {e}") from None
    except RecursionError:
        raise ValidationError(f"{source}: document is too deeply nested") from None
    finally:
        loader.dispose()
    return out


def parse_documents(text: str | bytes, source: str = "<stdin>") -> list[dict]:
    """Parse YAML (multi-document) or JSON into manifest dicts.

    Accepts a single object, a list of objects, or ``{"kind": "List", "items": [...]}``
    (in either syntax).  Empty documents are skipped.  Syntax errors and documents that are
    not mappings raise :class:`ValidationError` naming ``source`` and the line.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValidationError(f"{source}: not UTF-8 text: {e}") from None
    if not isinstance(text, str):
        raise ValidationError(f"{source}: expected text, got {type_name(text)}")
    text = text.lstrip("\ufeff")
    try:
        raw = _parse(text, source)
    except RecursionError:
        raise ValidationError(f"{source}: document is too deeply nested") from None
    docs: list[dict] = []
    errors: list[str] = []
    for value, line, item_lines in raw:
        _expand(value, source, line, item_lines, docs, errors)
    if errors:
        raise ValidationError(errors)
    if len(docs) > 1:
        for number, doc in enumerate(docs, 1):
            doc.number = number  # type: ignore[attr-defined]
    return docs


def _parse(text: str, source: str) -> list[tuple[Any, int | None, list[int]]]:
    if text.lstrip().startswith(("{", "[")):
        try:
            return [(json.loads(text), None, [])]
        except json.JSONDecodeError as e:
            json_error = e
        try:
            return _yaml_documents(text, source)
        except ValidationError:
            raise ValidationError(f"{source}:{json_error.lineno}:{json_error.colno}: invalid "
                                  f"JSON: {json_error.msg}") from None
    return _yaml_documents(text, source)


def _expand(value: Any, source: str, line: int | None, item_lines: list[int],
            docs: list[dict], errors: list[str]) -> None:
    where = f"{source}:{line}" if line else source
    if value is None:
        return
    if isinstance(value, dict) and value.get("kind") == "List" and "items" in value:
        items = value["items"]
        if items is None:
            return
        if not isinstance(items, list):
            errors.append(f"{where}: List items must be a list, not {type_name(items)}")
            return
        if set(value) - {"apiVersion", "kind", "items", "metadata"}:
            extra = sorted(str(k) for k in set(value) - {"apiVersion", "kind", "items",
                                                         "metadata"})
            errors.append(f"{where}: unknown List field(s): {', '.join(extra)}")
    elif isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        docs.append(Document(value, source, line))
        return
    else:
        errors.append(f"{where}: a document must be a mapping, not {type_name(value)}")
        return
    for i, item in enumerate(items):
        item_line = item_lines[i] if i < len(item_lines) else None
        if isinstance(item, dict):
            docs.append(Document(item, source, item_line))
        elif item is not None:
            at = f"{source}:{item_line}" if item_line else f"{where} (item {i})"
            errors.append(f"{at}: a list item must be a mapping, not {type_name(item)}")


def load_path(path: str | Path) -> list[dict]:
    """Documents from a file, or from every ``*.yaml``/``*.yml``/``*.json`` file directly in a
    directory (sorted by name, dotfiles skipped).  Errors name the file."""
    p = Path(path)
    if p.is_dir():
        files = sorted((f for f in p.iterdir()
                        if f.suffix.lower() in MANIFEST_SUFFIXES and f.is_file()
                        and not f.name.startswith(".")), key=lambda f: f.name)
        if not files:
            raise ValidationError(f"{p}: no *.yaml, *.yml or *.json files in directory")
    elif p.exists():
        files = [p]
    else:
        raise ValidationError(f"{p}: no such file or directory")
    docs: list[dict] = []
    errors: list[str] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            errors.append(f"{f}: not UTF-8 text: {e}")
            continue
        except OSError as e:
            errors.append(f"{f}: cannot read: {e.strerror or e}")
            continue
        try:
            docs.extend(parse_documents(text, str(f)))
        except ValidationError as e:
            errors.extend(e.errors)
    if errors:
        raise ValidationError(errors)
    return docs
