"""Fixtures of the functional tests."""
from __future__ import annotations

import pytest

from vpcnet.sim.ovs import PrivateOvs


@pytest.fixture
def ovs(tmp_path):
    """A private ovsdb-server + ovs-vswitchd with the dummy datapath, stopped after the test."""
    switch = PrivateOvs(tmp_path / "ovs", dummy=True).start()
    try:
        yield switch
    finally:
        switch.stop()
