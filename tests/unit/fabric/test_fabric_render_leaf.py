"""vpcnet-leaf renderer: goldens, structure, and the real yanglint accepts what we render against
fabric/yang (and refuses deliberately broken documents)."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from vpcnet.fabric import InputError, compile_fabric
from vpcnet.fabric.inputs import LEAF_MODELS
from vpcnet.fabric.render import RENDERERS, render, render_text
from vpcnet.fabric.render_leaf import NS
from vpcnet.fabric.xmlutil import NC_NS, data_text, parse, to_text

from .fabric_cases import examples_fabric, fabric_mode, replace_leaf
from .golden_util import assert_golden
from .yanglint_util import IETF_NETCONF

YANG_DIR = Path(__file__).resolve().parents[3] / "fabric" / "yang"
MODULE = YANG_DIR / "vpcnet-leaf@2026-11-22.yang"
SCENARIOS = {"examples": examples_fabric, "fabric": fabric_mode}
CASES = [(s, leaf) for s in SCENARIOS for leaf in ("leaf-1", "leaf-2")]


def leaf_yanglint(*xml_files: Path, mode: str = "config", fmt: str | None = None
                  ) -> subprocess.CompletedProcess:
    """``yanglint -p fabric/yang vpcnet-leaf.yang -t MODE FILE...`` (libyang2-tools, installed by
    install.sh: a missing tool fails the test). ``mode="edit"`` also loads ietf-netconf so that
    ``nc:operation`` attributes are checked."""
    cmd = [shutil.which("yanglint") or "yanglint", "-p", str(YANG_DIR), str(MODULE)]
    if mode == "edit":
        cmd += ["-p", str(IETF_NETCONF.parent), str(IETF_NETCONF)]
    if fmt:
        cmd += ["-f", fmt]
    cmd += ["-t", mode, *map(str, xml_files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def states():
    return {name: compile_fabric(make()) for name, make in SCENARIOS.items()}


def q(path: str) -> str:
    return "/".join(f"{{{NS}}}{p}" for p in path.split("/"))


def rendered(states, scenario="fabric", leaf="leaf-1"):
    return render(states[scenario][leaf], "vpcnet-leaf")


@pytest.mark.parametrize("scenario,leaf", CASES, ids=[f"{s}-{lf}" for s, lf in CASES])
def test_golden(states, scenario, leaf):
    assert_golden(f"vpcnet-leaf-{leaf}-{scenario}.xml",
                  render_text(states[scenario][leaf], "vpcnet-leaf"))


def test_registered_and_accepted_as_a_leaf_model(states):
    assert "vpcnet-leaf" in RENDERERS and "vpcnet-leaf" in LEAF_MODELS
    fabric = replace_leaf(fabric_mode(), "leaf-1", model="vpcnet-leaf")
    state = compile_fabric(fabric)["leaf-1"]
    assert state.model == "vpcnet-leaf"
    assert to_text(render(state)) == to_text(rendered(states))   # the leaf's own model by default


def test_render_is_deterministic(states):
    again = compile_fabric(fabric_mode())["leaf-1"]
    assert render_text(again, "vpcnet-leaf") == \
        render_text(states["fabric"]["leaf-1"], "vpcnet-leaf")


def test_what_is_rendered(states):
    config = rendered(states)
    assert config.tag == f"{{{NC_NS}}}config"
    (top,) = list(config)
    assert top.tag == q("leaf")
    assert [etree.QName(c).localname for c in top] == [
        "vtep", "anycast-gateway-mac", "interface", "mac-vrf", "mac-vrf", "mac-vrf",
        "ip-vrf", "ip-vrf", "bgp"]
    assert (top.findtext(q("vtep/source-address")), top.findtext(q("vtep/source-interface"))) == \
        ("10.0.0.1", "lo")
    assert top.findtext(q("anycast-gateway-mac")) == "0e:76:70:ff:00:00"
    port = top.find(q("interface"))
    assert port.findtext(q("name")) == "swp1"
    assert [v.text for v in port.iterfind(q("allowed-vlan"))] == ["100", "101", "102"]
    mvs = {m.findtext(q("name")): m for m in top.iterfind(q("mac-vrf"))}
    assert sorted(mvs) == ["vpcnet-L2-payments-a", "vpcnet-L2-shop-a", "vpcnet-L2-trading-a"]
    trading = mvs["vpcnet-L2-trading-a"]
    assert [(etree.QName(c).localname, c.text) for c in trading] == [
        ("name", "vpcnet-L2-trading-a"), ("description", "vpcnet: subnet trading-a (vpc finance)"),
        ("vlan", "100"), ("vni", "10100"), ("rd", "10.0.0.1:10100"),
        ("import-rt", "65001:10100"), ("export-rt", "65001:10100"), ("ip-vrf", "vpcnet-finance")]
    vrfs = {v.findtext(q("name")): v for v in top.iterfind(q("ip-vrf"))}
    retail = vrfs["vpcnet-retail"]
    assert retail.findtext(q("l3vni")) == "50002"
    assert [a.text for a in retail.iterfind(q("address-family"))] == ["ipv4", "ipv6"]
    gws = {g.findtext(q("vlan")): [a.text for a in g.iterfind(q("address"))]
           for v in vrfs.values() for g in v.iterfind(q("gateway"))}
    assert gws == {"100": ["10.10.0.1/24"], "101": ["10.20.0.1/24"],
                   "102": ["10.30.0.1/24", "fd00:30::1/64"]}
    nb = top.find(q("bgp/neighbor"))
    assert (top.findtext(q("bgp/asn")), top.findtext(q("bgp/router-id"))) == ("65001", "10.0.0.1")
    assert [(etree.QName(c).localname, c.text) for c in nb] == [
        ("address", "10.0.0.2"), ("remote-as", "65002"), ("description", "vpcnet: leaf leaf-2"),
        ("ebgp-multihop", "3")]


def test_distributed_mode_has_no_gateways(states):
    top = rendered(states, "examples")[0]
    assert not list(top.iter(q("gateway")))
    assert top.findtext(q("anycast-gateway-mac")) == "0e:76:70:ff:00:00"   # constant, no flapping
    assert [v.findtext(q("name")) for v in top.iterfind(q("ip-vrf"))] == \
        ["vpcnet-finance", "vpcnet-retail"]


def test_vtep_interface_and_router_id_come_from_the_leaf():
    fabric = replace_leaf(fabric_mode(), "leaf-1", vtep_interface="lo1", router_id="192.0.2.1")
    top = render(compile_fabric(fabric)["leaf-1"], "vpcnet-leaf")[0]
    assert top.findtext(q("vtep/source-interface")) == "lo1"
    assert top.findtext(q("vtep/source-address")) == "10.0.0.1"
    assert top.findtext(q("bgp/router-id")) == "192.0.2.1"
    assert top.findtext(q("mac-vrf/rd")).startswith("192.0.2.1:")


def test_leaf_without_ports_has_bgp_only():
    f = fabric_mode()
    f = dataclasses.replace(f, nodes=tuple(n for n in f.nodes if n.name != "node-1"))
    top = render(compile_fabric(f)["leaf-1"], "vpcnet-leaf")[0]
    assert [etree.QName(c).localname for c in top] == ["vtep", "anycast-gateway-mac", "bgp"]


def test_mac_vrf_without_its_ip_vrf_is_pure_l2(states):
    s = states["fabric"]["leaf-1"]
    only_retail = dataclasses.replace(s, ip_vrfs=tuple(v for v in s.ip_vrfs if v.vpc == "retail"))
    top = render(only_retail, "vpcnet-leaf")[0]
    refs = {m.findtext(q("name")): m.findtext(q("ip-vrf")) for m in top.iterfind(q("mac-vrf"))}
    assert refs == {"vpcnet-L2-payments-a": None, "vpcnet-L2-shop-a": "vpcnet-retail",
                    "vpcnet-L2-trading-a": None}


def test_a_second_gateway_mac_is_refused(states):
    s = states["fabric"]["leaf-1"]
    vrf = s.ip_vrfs[0]
    odd = dataclasses.replace(vrf, gateways=(dataclasses.replace(vrf.gateways[0],
                                                                mac="0e:76:70:ff:00:09"),))
    with pytest.raises(InputError, match=r"leaf leaf-1: subnet trading-a: gateway "
                                         r"mac=0e:76:70:ff:00:09 differs from the leaf's "
                                         r"anycast-gateway-mac=0e:76:70:ff:00:00"):
        render(dataclasses.replace(s, ip_vrfs=(odd,) + s.ip_vrfs[1:]), "vpcnet-leaf")


# ---------------------------------------------------------------------------- yanglint
def test_yanglint_accepts_rendered_config(states, tmp_path):
    docs = []
    for scenario, leaf in CASES:
        docs.append(tmp_path / f"{scenario}-{leaf}.xml")
        docs[-1].write_text(data_text(render(states[scenario][leaf], "vpcnet-leaf")))
    res = leaf_yanglint(*docs)
    assert res.returncode == 0, res.stderr


def test_yanglint_keeps_the_gateway_host_address(states, tmp_path):
    """Regression for the model: with ``inet:ip-prefix`` libyang printed 10.10.0.0/24."""
    doc = tmp_path / "leaf.xml"
    doc.write_text(data_text(rendered(states)))
    res = leaf_yanglint(doc, fmt="xml")
    assert res.returncode == 0, res.stderr
    out = parse(res.stdout)
    assert sorted(a.text for a in out.iter(q("address")) if a.getparent().tag == q("gateway")) \
        == ["10.10.0.1/24", "10.20.0.1/24", "10.30.0.1/24", "fd00:30::1/64"]


def _vlan_5000(top):
    top.find(q("mac-vrf/vlan")).text = "5000"


def _dangling_ip_vrf(top):
    top.find(q("mac-vrf/ip-vrf")).text = "vpcnet-nope"


def _duplicate_vni(top):
    mvs = top.findall(q("mac-vrf"))
    mvs[1].find(q("vni")).text = mvs[0].findtext(q("vni"))


def _bad_gateway_address(top):
    top.find(q("ip-vrf/gateway/address")).text = "10.10.0.1/33"


def _port_vlan_without_mac_vrf(top):
    etree.SubElement(top.find(q("interface")), q("allowed-vlan")).text = "999"


def _unknown_leaf(top):
    etree.SubElement(top.find(q("mac-vrf")), q("l2-vni")).text = "10100"


BROKEN = {
    "vlan-out-of-range": (_vlan_5000, "value \"5000\" is out of the allowed range"),
    "ip-vrf-leafref-dangling": (_dangling_ip_vrf, "Invalid leafref value \"vpcnet-nope\""),
    "duplicate-vni": (_duplicate_vni, "Unique data leaf(s) \"vni\" not satisfied"),
    "gateway-address-33": (_bad_gateway_address, "Invalid union value \"10.10.0.1/33\""),
    "allowed-vlan-leafref": (_port_vlan_without_mac_vrf, "Invalid leafref value \"999\""),
    "unknown-leaf": (_unknown_leaf, "Node \"l2-vni\" not found"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_yanglint_refuses_a_broken_document(states, tmp_path, case):
    breaker, message = BROKEN[case]
    config = parse(to_text(rendered(states)))
    breaker(config[0])
    doc = tmp_path / "broken.xml"
    doc.write_text(data_text(config))
    res = leaf_yanglint(doc)
    assert res.returncode != 0, f"yanglint accepted a broken document ({case})"
    assert message in res.stderr
