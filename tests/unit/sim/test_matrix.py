"""The connectivity matrix judges each pair against the intent (same VPC reaches, others don't)."""
from __future__ import annotations

from vpcnet.sim.matrix import PodRef, render_matrix, run_matrix

A = PodRef("trading", "a", "10.10.0.11", "finance", "trading-a", "n1")
B = PodRef("payments", "b", "10.20.0.21", "finance", "payments-a", "n2")
X = PodRef("shop", "x", "10.30.0.31", "retail", "shop-a", "n2")


def test_intended_network_is_all_ok():
    reach = {("trading/a", B.ip), ("payments/b", A.ip)}
    cells = run_matrix([A, B, X], lambda s, ip: (s.key, ip) in reach)
    assert len(cells) == 6 and all(c.ok for c in cells)
    table = render_matrix([A, B, X], cells)
    assert "6/6 pairs as intended" in table and "FAIL" not in table.splitlines()[1]


def test_leak_and_blackhole_are_failures_named_in_the_table():
    cells = run_matrix([A, B, X], lambda s, ip: ip == X.ip)   # everyone reaches x only
    bad = {(c.src.name, c.dst.name) for c in cells if not c.ok}
    assert bad == {("a", "x"), ("b", "x"), ("a", "b"), ("b", "a")}
    table = render_matrix([A, B, X], cells)
    assert "FAIL+" in table and "FAIL-" in table and "2/6 pairs as intended" in table
