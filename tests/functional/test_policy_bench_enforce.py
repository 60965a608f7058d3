"""Smoke test of bench/policy_bench.py, part 2 (enforce) at --smoke sizes: real controller, two
dummy-datapath OVS nodes; the policy verdicts on real OVS are checked before anything is timed."""
from __future__ import annotations

import re

from vpcnet.bench import policy_bench


def test_policy_bench_enforce_smoke(capsys):
    rc = policy_bench.main(["--smoke", "--part", "enforce"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert re.search(r"verdicts checked on real OVS: \d+ probes .* all as expected", out), out
    assert re.search(r"policy change -> enforced on every node: p50 [\d.]+ ms, max [\d.]+ ms", out), out
    assert re.search(r"resolution: \d+ traces in \d+ rounds", out), out
    assert re.search(r"pod add -> forwarded on every node: p50 [\d.]+ ms", out), out
