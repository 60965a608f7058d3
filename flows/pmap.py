"""A small persistent (copy-on-write) hash map for ClusterIn's indexes.

Deriving a new cluster value with one pod changed must not copy 150,000-entry dicts (a copy
costs milliseconds). ``PMap`` is a radix tree over the key hash: ``depth`` levels of 16-slot
lists (1 to 4, chosen from the size so that buckets hold about 8 entries; 4 levels give 65,536
buckets), the last level holding buckets (plain dicts), plus a small *tail*: a dict of the
latest changes (key -> value, or DELETE) that lookups consult first.

``evolve`` only copies the tail and adds the changes to it; once the tail holds more than
``TAIL_MAX`` keys it is folded into the tree, copying just the lists and buckets on the paths
of those keys (shared between them). So a change costs a few microseconds whatever the size,
and old and new maps share everything else. Copying a list or dict increments the reference
count of everything in it, a cache miss each on a large heap: hence the small fan-out and
buckets, and the tail, which turns one path copy per change into a fraction of one.

A lookup is one dict lookup in the tail (when not empty), ``depth`` list indexes and one dict
lookup. Iteration order is unspecified. Nothing reachable from a built map is ever mutated.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

_W = 16          # slots per list
_M = _W - 1      # mask for one level (4 bits)
_FILL = 8        # entries per bucket a map is sized for
_MAX_DEPTH = 4
TAIL_MAX = 32    # pending changes kept in the tail before they are folded into the tree
_DELETE = object()
_NOTHING: dict = {}


def _depth_for(n: int) -> int:
    d = 1
    while d < _MAX_DEPTH and n > (_W ** d) * _FILL:
        d += 1
    return d


class PMap(Mapping):
    __slots__ = ("_root", "_n", "_depth", "_tail")

    def __init__(self, items: Mapping | Iterable[tuple[Any, Any]] = ()):
        pairs = dict(items.items() if isinstance(items, Mapping) else items)
        depth = _depth_for(len(pairs))
        mask = (1 << (4 * depth)) - 1
        buckets: dict[int, dict] = {}          # bucket number (the low 4*depth hash bits) -> bucket
        for k, v in pairs.items():
            i = hash(k) & mask
            d = buckets.get(i)
            if d is None:
                buckets[i] = {k: v}
            else:
                d[k] = v
        root: list = [None] * _W
        for i, d in buckets.items():
            node = root
            for shift in range(0, 4 * depth - 4, 4):
                child = node[(i >> shift) & _M]
                if child is None:
                    child = node[(i >> shift) & _M] = [None] * _W
                node = child
            node[(i >> (4 * depth - 4)) & _M] = d
        self._root, self._n, self._depth, self._tail = root, len(pairs), depth, _NOTHING

    @classmethod
    def _make(cls, root: list, n: int, depth: int, tail: dict) -> "PMap":
        m = object.__new__(cls)
        m._root, m._n, m._depth, m._tail = root, n, depth, tail
        return m

    # --- Mapping ---
    def _tree_get(self, key, default):
        h = hash(key)
        node = self._root
        depth = self._depth
        if depth > 1:
            node = node[h & _M]
            if node is None:
                return default
            if depth > 2:
                node = node[(h >> 4) & _M]
                if node is None:
                    return default
                if depth > 3:
                    node = node[(h >> 8) & _M]
                    if node is None:
                        return default
        d = node[(h >> (4 * depth - 4)) & _M]
        return default if d is None else d.get(key, default)

    def get(self, key, default=None):
        tail = self._tail
        if tail:
            v = tail.get(key, tail)
            if v is not tail:
                return default if v is _DELETE else v
        return self._tree_get(key, default)

    def __getitem__(self, key):
        v = self.get(key, _DELETE)
        if v is _DELETE:
            raise KeyError(key)
        return v

    def __contains__(self, key) -> bool:
        return self.get(key, _DELETE) is not _DELETE

    def __len__(self) -> int:
        return self._n

    def _buckets(self) -> Iterator[dict]:
        level = [self._root]
        for _ in range(self._depth - 1):
            level = [child for node in level for child in node if child is not None]
        for node in level:
            for d in node:
                if d:
                    yield d

    def items(self):
        tail = self._tail
        if not tail:
            return [kv for d in self._buckets() for kv in d.items()]
        out = [kv for d in self._buckets() for kv in d.items() if kv[0] not in tail]
        out += [kv for kv in tail.items() if kv[1] is not _DELETE]
        return out

    def values(self):
        return [v for _, v in self.items()]

    def __iter__(self) -> Iterator:
        return iter([k for k, _ in self.items()])

    def __eq__(self, other) -> bool:
        if isinstance(other, PMap):
            if self._n != other._n:
                return False
            if self._depth == other._depth and not self._tail and not other._tail:
                return _eq(self._root, other._root, self._depth - 1)   # skip shared subtrees
            return dict(self.items()) == dict(other.items())
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PMap({dict(self.items())!r})"

    def __reduce__(self):   # rebuild: str hashes differ between processes
        return (PMap, (dict(self.items()),))

    # --- persistent updates ---
    def evolve(self, changes: Mapping) -> "PMap":
        """A new map with ``changes`` applied: key -> value, or key -> PMap.DELETE to remove it
        (absent keys are ignored). Shares everything the changes do not touch."""
        if not changes:
            return self
        tail = dict(self._tail)
        n = self._n
        for k, v in changes.items():
            present = self.get(k, _DELETE) is not _DELETE if k not in tail else tail[k] is not _DELETE
            if v is _DELETE:
                if present:
                    n -= 1
                    tail[k] = _DELETE
            else:
                if not present:
                    n += 1
                tail[k] = v
        if len(tail) <= TAIL_MAX:
            return PMap._make(self._root, n, self._depth, tail)
        if self._depth < _MAX_DEPTH and n > (_W ** self._depth) * _FILL * 4:
            return PMap(PMap._make(self._root, n, self._depth, tail).items())   # outgrown: rebuild
        root = self._root.copy()
        self._fold(root, tail, {})
        return PMap._make(root, n, self._depth, _NOTHING)

    def _fold(self, root: list, changes: dict, made: dict) -> None:
        """Write ``changes`` into the tree under ``root`` (a list this call may mutate), copying
        every list and bucket it changes that is not in ``made`` (those it created itself)."""
        last = 4 * (self._depth - 1)
        for k, v in changes.items():
            h = hash(k)
            node = root
            for shift in range(0, last, 4):
                tag = (shift + 4) << 24 | (h & ((1 << (shift + 4)) - 1))
                child = made.get(tag)
                if child is None:
                    i = (h >> shift) & _M
                    child = node[i]
                    if child is None:
                        if v is _DELETE:
                            break
                        child = [None] * _W
                    else:
                        child = child.copy()
                    made[tag] = node[i] = child
                node = child
            else:
                tag = (last + 4) << 24 | (h & ((1 << (last + 4)) - 1))
                d = made.get(tag)
                if d is None:
                    i = (h >> last) & _M
                    d = node[i]
                    if d is None:
                        if v is _DELETE:
                            continue
                        d = {}
                    else:
                        d = d.copy()
                    made[tag] = node[i] = d
                if v is _DELETE:
                    d.pop(k, None)
                else:
                    d[k] = v

    def set(self, key, value) -> "PMap":
        return self.evolve({key: value})

    def delete(self, key) -> "PMap":
        return self.evolve({key: _DELETE})


def _eq(a: list | None, b: list | None, depth: int) -> bool:
    """Equal subtrees of the same layout (compare slot by slot, skipping shared ones)."""
    if a is b:
        return True
    for x, y in zip(a or (None,) * _W, b or (None,) * _W):
        if x is y:
            continue
        if depth:
            if not _eq(x, y, depth - 1):
                return False
        elif (x or {}) != (y or {}):
            return False
    return True


PMap.DELETE = _DELETE  # type: ignore[attr-defined]
EMPTY = PMap()
