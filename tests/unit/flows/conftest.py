"""Shared fixtures for the flow tests. Goldens: ``VPCNET_UPDATE_GOLDENS=1 pytest tests/unit/flows``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # helpers (walker, flow_*) import as top-level modules
    sys.path.insert(0, str(HERE))

from flow_invariants import all_flows, compile_checked  # noqa: E402
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
