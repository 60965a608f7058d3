"""Golden text per feature (owner kind), compared as sorted lines. See flow_scenarios.two_vpcs."""
from __future__ import annotations

import pytest

from flow_golden import assert_golden
from flow_invariants import all_flows
from vpcnet.flows.render import render, render_for_ofctl

CASES = [
    # golden file,                 node,     owner
    ("base.txt",                   "node-1", "base"),
    ("node-node-1.txt",            "node-1", "node/node-1"),
    ("vpc-finance.txt",            "node-1", "vpc/finance"),
    ("subnet-web-node-1.txt",      "node-1", "subnet/web"),        # two local pods in the flood list
    ("subnet-db-node-1.txt",       "node-1", "subnet/db"),         # private, dual stack, no local pod
    ("subnet-lab-b-node-1.txt",    "node-1", "subnet/lab-b"),      # VPC without L3: no routes
    ("pod-a-local.txt",            "node-1", "pod/finance/a"),
    ("pod-d-remote-node-1.txt",    "node-1", "pod/finance/d"),     # ARP + neighbour entries only
    ("pod-d-local-node-2.txt",     "node-2", "pod/finance/d"),     # IPv6 port security
]


@pytest.mark.parametrize("golden,node,owner", CASES, ids=[c[0] for c in CASES])
def test_owner_golden(compiled, golden, node, owner):
    assert_golden(golden, render(compiled[node][owner]))


def test_node_golden(compiled):
    assert_golden("node-1-full.txt", render(all_flows(compiled["node-1"])))
    assert_golden("node-1-ofctl.txt", render_for_ofctl(all_flows(compiled["node-1"])))


def test_owners_present_per_node(compiled):
    assert sorted(compiled["node-1"]) == [
        "base", "node/node-1",
        "pod/finance/a", "pod/finance/b", "pod/finance/c", "pod/finance/d", "pod/finance/e", "pod/finance/r",
        "pod/lab/l1", "pod/lab/l2", "pod/retail/x",
        "subnet/app", "subnet/cart", "subnet/db", "subnet/lab-a", "subnet/lab-b", "subnet/shop", "subnet/web",
        "vpc/finance", "vpc/lab", "vpc/retail",
    ]
    assert "pod/retail/x" not in compiled["node-2"]  # retail has no pod on node-2
    assert "vpc/retail" not in compiled["node-2"]
    assert "pod/finance/p" not in compiled["node-1"]  # not wired yet
