"""Fixtures for the CNI unit tests (helpers live in cni_testlib, imported as a top-level module)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cni_testlib import rmtree, short_tmp  # noqa: E402


@pytest.fixture
def sockdir():
    """A private short directory for unix sockets."""
    path = short_tmp()
    yield path
    rmtree(path)
