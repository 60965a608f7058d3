"""Smoke test of bench/service_bench.py at --smoke sizes (10 and 200 Services, short runs): the
real controller with one netdev ovs-vswitchd node, and the kube-proxy-style iptables peers in
private network namespaces. Needs root (netns, veth), as on the CI machine."""
from __future__ import annotations

import re

from vpcnet.bench import service_bench

CPS = r"[\d,]+ conn/s \(runs [\d, ]+; p50 [\d.]+ ms, p99 [\d.]+ ms; errors \d+; answered by "


def test_service_bench_smoke(capsys):
    rc = service_bench.main(["--smoke"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for backend in ("iptables-legacy", "iptables-nft"):
        for n in (10, 200):
            assert re.search(rf"{backend} @ {n} Services: [\d,]+ rules loaded in [\d.]+ s", out), out
    assert len(re.findall(rf"\n  VIP    {CPS}\.2/\.3/\.4 \d+/\d+/\d+\)", out)) == 4, "every endpoint answers"
    assert re.search(r"vpcnet setup .*: [\d.]+ s; \d+ flows; its group: \d+ buckets: ", out), out
    for n in (10, 200):
        assert re.search(rf"vpcnet @ {n} Services: [\d,]+ applied in [\d.]+ s .* all flows on the bridge", out), out
    assert len(re.findall(rf"\n  @[\d,]+ +VIP    {CPS}\.12/\.13/\.14 \d+/\d+/\d+\)", out)) == 2, "every endpoint answers"
    assert len(re.findall(rf"\n  @[\d,]+ +direct {CPS}\.12 \d+\)", out)) == 2, out
    assert re.search(r"vpcnet groups on the bridge at the end: 200\n", out), out
    for table in ("conn/s through the Service VIP", "direct reference"):
        block = out.split(table, 1)[1]
        for row in ("vpcnet", "iptables-legacy", "iptables-nft"):
            assert re.search(rf"\n  {row} +[\d,]+ +[\d,]+ +[\d.]+\n", block), block
    assert re.search(r"\ngoal vpcnet@200 >= 0\.9 x vpcnet@10: (met|missed) \(ratio [\d.]+\)\n", out), out
