"""Smoke test of bench/policy_bench.py, part 1 (compile) at --smoke sizes: it runs, its
incremental results agree with compile_node (the bench asserts that), and it prints its figures."""
from __future__ import annotations

import re

from vpcnet.bench import policy_bench


def test_policy_bench_compile_smoke(capsys):
    assert policy_bench.main(["--smoke", "--part", "compile"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"flows per node: policy owner mean (\d+), max (\d+); all owners mean (\d+), max (\d+)", out)
    assert m, out
    pol_mean, pol_max, all_mean, all_max = map(int, m.groups())
    assert 0 < pol_mean <= pol_max and pol_mean < all_mean <= all_max, out
    m = re.search(r"naive cross-product \(policy.naive_flow_count\) per node: mean (\d+), max (\d+); "
                  r"naive / policy flows: mean x([\d.]+)", out)
    assert m and int(m.group(1)) > pol_mean and float(m.group(3)) > 1, out
    assert re.search(r"conjunction pieces: egress [1-9]\d*, ingress [1-9]\d*", out), out
    assert re.search(r"compile_node on all 3 nodes \(cold caches\): [\d.]+ ms wall", out), out
    assert re.search(r"per node: first [\d.]+ ms \(builds vpc_policy for the VPC\), then p50 [\d.]+ ms, max", out), out
    np_block, pod_block = out.split("one NetworkPolicy change", 1)[1].split("one pod label change", 1)
    for block in (np_block, pod_block):
        assert re.search(r"incremental: [\d.]+ ms wall .*compile_owner x\d+ [\d.]+ ms \(per node p50", block), out
        assert re.search(r"flows changed \(added \+ deleted\) on all nodes together: median [1-9]", block), out
        assert re.search(r"peer, compile_node on every node of the new value: [\d.]+ ms .*results agree", block), out
