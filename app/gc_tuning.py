"""The cyclic garbage collector's thresholds for processes that compile flows (the controller,
and the benchmarks that measure what it does).

The controller holds large, long-lived immutable values (compiled flows, the cluster input) and
allocates many short-lived ones per pass; with Python's default thresholds (700, 10, 10) full
collections keep re-walking the long-lived heap: bench/policy_bench.py measured cyclic GC at over
half of a policy recompile (1.6 s of 3.0 s for 20 nodes x 1,000 pods x 500 policies) and the cause
of 0.6 s per-node outliers; with these thresholds the same change took 1.16 s. Flow values hold no
reference cycles (reference counting frees them), so collecting less often loses nothing.
"""
from __future__ import annotations

import gc

GC_THRESHOLDS = (50000, 20, 100)


def tune_gc() -> tuple[int, int, int]:
    """Set vpcnet's thresholds; returns the previous ones."""
    old = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return old
