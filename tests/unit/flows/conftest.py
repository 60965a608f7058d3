"""Shared fixtures for the flow tests. Goldens: ``VPCNET_UPDATE_GOLDENS=1 pytest tests/unit/flows``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # helpers (walker, flow_*) import as top-level modules
    sys.path.insert(0, str(HERE))

from flow_invariants import all_flows, check_flowset, compile_checked  # noqa: E402
from vpcnet.flows import compile as _compile  # noqa: E402
from flow_scenarios import two_vpcs  # noqa: E402
from walker import Walker  # noqa: E402


@pytest.fixture(scope="session")
def cluster():
    return two_vpcs()


@pytest.fixture(scope="session")
def compiled(cluster):
    return {n.name: compile_checked(cluster, n.name) for n in cluster.nodes}


@pytest.fixture
def walkers(compiled):
    """Fresh walkers (fresh conntrack) per test, one per node."""
    return {node: Walker(all_flows(owners)) for node, owners in compiled.items()}


@pytest.fixture(autouse=True)
def every_compile_is_checked(request, monkeypatch):
    """The invariants hold for every node any flow test compiles: a module's ``compile_node``
    (imported from vpcnet.flows) checks its result with flow_invariants.check_flowset: the
    pipeline declaration and cookies of every flow, groups, no two flows with one key, no
    ambiguous overlap, re-applying changes nothing. (The checks that need a complete node,
    e.g. every register bit read is written upstream, stay with compile_checked: a node
    without pods has base flows that read bits only pod flows write.)"""
    module = request.module
    if getattr(module, "compile_node", None) is not _compile.compile_node:
        return

    def compile_node(cluster, node):
        out = _compile.compile_node(cluster, node)
        check_flowset(out, complete=False)
        return out
    monkeypatch.setattr(module, "compile_node", compile_node)
