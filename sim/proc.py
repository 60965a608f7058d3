"""Process helpers shared by the lab's daemons: a process tree from /proc, liveness that sees
zombies as gone, and bounded polling."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from vpcnet.ovsdb.server import pid_alive  # noqa: F401  (one definition, re-exported for the lab)

T = TypeVar("T")


def process_tree(pids: Iterable[int]) -> list[int]:
    """``pids`` and all their descendants (from /proc/*/stat), parents first."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop(0)
        if pid in out:
            continue
        out.append(pid)
        todo.extend(p for p, pp in parent.items() if pp == pid)
    return out


def wait_until(what: str, predicate: Callable[[], T], timeout: float, interval: float = 0.1,
               error: type[Exception] = TimeoutError) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned); ``error`` naming ``what``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)

__all__ = ["process_tree", "pid_alive", "wait_until"]
