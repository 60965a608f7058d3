"""Random malformed calls against the real plugin, daemon, controller and bridge: whatever comes
in, the answer is one CNI error (or success), and nothing is left behind — no veth, OVS port,
address or record beyond what was there before. (The pure parser gets 1,000+ cases per property
in tests/unit/cni/test_cni_fuzz.py; here each case execs the plugin, so fewer.)"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.functional.cni_env import CniNode

VALID_CODES = {1, 2, 3, 4, 5, 6, 7, 8, 11, 100, 101, 102, 103, 999}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = CniNode(tmp_path_factory.mktemp("cnifuzz"))
    try:
        yield n
    finally:
        n.stop()


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
maybe = lambda good: st.one_of(st.just(good), st.none(), st.just(""), text)  # noqa: E731


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_calls_answer_cleanly_and_leak_nothing(node, data):
    if not hasattr(node, "baseline"):
        node.baseline = node.inventory()
        node.netns_path = node.new_netns("fuzz")
    command = data.draw(st.sampled_from(["ADD", "ADD", "ADD", "DEL", "CHECK"]))
    env = {
        "CNI_CONTAINERID": data.draw(maybe("fuzz0000000000001")),
        "CNI_NETNS": data.draw(maybe(node.netns_path)),
        "CNI_IFNAME": data.draw(maybe("eth0")),
        "CNI_ARGS": data.draw(maybe("IgnoreUnknown=1;K8S_POD_NAMESPACE=trading;K8S_POD_NAME=fuzz")),
    }
    config = {"cniVersion": data.draw(st.sampled_from(["1.1.0", "1.0.0", "0.4.0", "0.3.1", "2.0.0", ""])),
              "name": data.draw(st.sampled_from(["vpcnet", "", "bad name!"])), "type": "vpcnet-cni",
              "daemonSocket": str(node.socket)}
    stdin = data.draw(st.one_of(st.just(json.dumps(config)), text, st.just(json.dumps(config)[:-3])))
    rc, out, err = node.cni(command, env_override=env, stdin=stdin, ifname="")
    assert rc in (0, 1), err
    if rc == 1:
        assert out["code"] in VALID_CODES and isinstance(out["msg"], str) and out["msg"], out
    if command == "ADD" and rc == 0:   # everything happened to be valid: take it down again
        rc2, out2, err2 = node.cni("DEL", env_override=env, stdin=stdin, ifname="")
        assert rc2 == 0, (out2, err2)
    assert node.inventory() == node.baseline
