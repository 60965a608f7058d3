"""Connectivity matrix: every pod pings every other pod; the result is compared with what the
intent says (same VPC: reachable; other VPC: isolated) and printed as a table.

The probing is injected (``probe(src, dst_ip) -> bool``) so the lab runs real pings in the pods'
network namespaces and the table logic stays testable without a lab.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    ip: str
    vpc: str
    subnet: str
    node: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Cell:
    src: PodRef
    dst: PodRef
    expected: bool
    reached: bool

    @property
    def ok(self) -> bool:
        return self.expected == self.reached


def expected_reachable(src: PodRef, dst: PodRef) -> bool:
    """vpcnet's default policy: pods in one VPC reach each other, other VPCs are isolated."""
    return src.vpc == dst.vpc


def run_matrix(pods: Sequence[PodRef], probe: Callable[[PodRef, str], bool], parallel: int = 4,
               progress: Callable[[str], None] | None = None) -> list[Cell]:
    pairs = [(s, d) for s in pods for d in pods if s != d]

    def one(pair):
        s, d = pair
        return Cell(s, d, expected_reachable(s, d), probe(s, d.ip))

    cells = []
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for i, cell in enumerate(pool.map(one, pairs), start=1):
            cells.append(cell)
            if progress and (i % max(1, len(pairs) // 4) == 0 or i == len(pairs)):
                progress(f"  probed {i}/{len(pairs)} pairs")
    return cells


def render_matrix(pods: Sequence[PodRef], cells: Sequence[Cell]) -> str:
    """Rows = source pod, columns = destination pod. ``ok``/``--`` = reached/isolated as intended,
    ``FAIL`` = not as intended (the cell says which way)."""
    by_pair = {(c.src.key, c.dst.key): c for c in cells}
    labels = [f"{p.key} ({p.ip}, {p.vpc}, {p.node})" for p in pods]
    width = max(len(x) for x in labels)
    cols = [str(i + 1) for i in range(len(pods))]
    colw = 6
    lines = [" " * (width + 4) + "".join(c.center(colw) for c in cols)]
    for i, (p, label) in enumerate(zip(pods, labels), start=1):
        row = []
        for q in pods:
            if q == p:
                row.append("·".center(colw))
                continue
            c = by_pair[(p.key, q.key)]
            mark = ("ok" if c.reached else "--") if c.ok else ("FAIL+" if c.reached else "FAIL-")
            row.append(mark.center(colw))
        lines.append(f"{i:>2}. {label.ljust(width)}" + "".join(row))
    bad = [c for c in cells if not c.ok]
    lines.append("")
    lines.append("ok = reached (same VPC), -- = isolated (other VPC), FAIL+ = reached but should be isolated, "
                 "FAIL- = should reach but did not")
    lines.append(f"{len(cells) - len(bad)}/{len(cells)} pairs as intended" + ("" if not bad else
                 ": " + ", ".join(f"{c.src.key}->{c.dst.key}" for c in bad[:10])))
    return "\n".join(lines)
