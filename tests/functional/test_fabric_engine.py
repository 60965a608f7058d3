"""The controller's fabric engine on a real state database: intent rows -> per-leaf desired state,
and the errors a user gets before any NETCONF session is opened (the sessions themselves are
tested against a real netconfd in test_netconf_leaf.py and the lab tests)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpcnet.app import intent
from vpcnet.app.fabric import FabricEngine, FabricError
from vpcnet.app.intent.manifest import load_path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def apply_examples(store, extra=()):
    docs = [d for f in sorted(EXAMPLES.glob("*.yaml")) for d in load_path(f)] + list(extra)
    store.apply(intent.validate_all(docs))


@pytest.fixture
def engine(store, state_api, tmp_path):
    apply_examples(store)
    return FabricEngine(state_api, credentials_dir=str(tmp_path / "creds"))


def test_examples_compile_to_one_state_per_netconf_leaf(engine):
    states, specs = engine.desired()
    assert sorted(states) == ["leaf-1", "leaf-2"]
    leaf1 = states["leaf-1"]
    # every subnet of the examples gets a MAC-VRF (VLAN -> L2VNI) on the leaf its nodes hang off
    vnis = {mv.subnet: (mv.vlan, mv.vni) for mv in leaf1.mac_vrfs}
    assert set(vnis) == {"trading-a", "payments-a", "shop-a"}
    assert all(10000 <= vni <= 19999 and 100 <= vlan for vlan, vni in vnis.values())
    assert {v.vpc: v.l3vni for v in leaf1.ip_vrfs} == {"finance": 50001, "retail": 50002}
    assert [p.name for p in leaf1.ports] == ["swp1"]
    assert specs["leaf-1"]["managementAddress"] == "172.30.0.1:830"


def test_missing_credentials_are_named_per_leaf_and_nothing_is_sent(engine, tmp_path):
    reports = engine.sync(["leaf-1"])
    assert len(reports) == 1 and not reports[0].applied
    assert "leaf leaf-1" in reports[0].error and "default.json" in reports[0].error
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "default.json").write_text("{not json")
    assert "is not JSON" in engine.plan(["leaf-2"])[0].error
    (tmp_path / "creds" / "default.json").write_text(json.dumps({"username": "root"}))
    assert "must hold username and keyFile" in engine.plan(["leaf-2"])[0].error


def test_unknown_leaf_is_refused_with_the_known_ones(engine):
    with pytest.raises(FabricError, match=r"leaf leaf-9: not a NETCONF Leaf \(known: leaf-1, leaf-2\)"):
        engine.plan(["leaf-9"])
