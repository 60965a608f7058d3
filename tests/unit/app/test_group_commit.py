"""api.GroupCommit: concurrent callers share commits, each gets its own result or error, and a
caller never waits for a batch queued after its own."""
from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from vpcnet.app.api import GroupCommit


def test_alone_commits_at_once():
    batches = []
    gc = GroupCommit(lambda items: batches.append(list(items)) or [i * 2 for i in items])
    assert gc.submit(21) == 42
    assert gc.submit(1) == 2
    assert batches == [[21], [1]]


def test_callers_queued_during_a_commit_share_the_next_one():
    batches, gate = [], threading.Event()

    def commit(items):
        batches.append(list(items))
        if len(batches) == 1:
            gate.wait(5)           # the first commit is slow: the others queue meanwhile
        return [f"ok-{i}" for i in items]

    gc = GroupCommit(commit)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        first = pool.submit(gc.submit, 0)
        while not batches:
            time.sleep(0.001)
        rest = [pool.submit(gc.submit, i) for i in range(1, 10)]
        time.sleep(0.2)
        gate.set()
        assert first.result(5) == "ok-0"
        assert [f.result(5) for f in rest] == [f"ok-{i}" for i in range(1, 10)]
    assert batches[0] == [0] and sorted(batches[1]) == list(range(1, 10)) and len(batches) == 2


def test_each_caller_gets_its_own_error_and_a_failing_commit_fails_its_batch_only():
    def commit(items):
        if "boom" in items:
            raise RuntimeError("the whole commit failed")
        return [ValueError(i) if i.startswith("bad") else i.upper() for i in items]

    gc = GroupCommit(commit)
    assert gc.submit("fine") == "FINE"
    with pytest.raises(ValueError):
        gc.submit("bad-1")
    with pytest.raises(RuntimeError):
        gc.submit("boom")
    assert gc.submit("again") == "AGAIN"    # the leadership was handed on: nobody is stuck


def test_many_threads_every_item_committed_once():
    seen, lock = [], threading.Lock()

    def commit(items):
        with lock:
            seen.extend(items)
        time.sleep(0.002)
        return list(items)

    gc = GroupCommit(commit)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        out = list(pool.map(gc.submit, range(400)))
    assert out == list(range(400)) and sorted(seen) == list(range(400))
