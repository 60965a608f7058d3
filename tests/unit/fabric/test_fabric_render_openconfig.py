"""OpenConfig renderer: goldens, and the real yanglint accepts what we render (and refuses a
deliberately broken document)."""
from __future__ import annotations

import pytest
from lxml import etree

from vpcnet.fabric import compile_fabric
from vpcnet.fabric.render import render, render_text
from vpcnet.fabric.render_openconfig import NS
from vpcnet.fabric.xmlutil import NC_NS, data_text, parse, to_text

from .fabric_cases import examples_fabric, fabric_mode
from .golden_util import assert_golden
from .yanglint_util import OPENCONFIG, git_blob_id, yanglint

SCENARIOS = {"examples": examples_fabric, "fabric": fabric_mode}
CASES = [(s, leaf) for s in SCENARIOS for leaf in ("leaf-1", "leaf-2")]


@pytest.fixture(scope="module")
def states():
    return {name: compile_fabric(make()) for name, make in SCENARIOS.items()}


def q(path: str) -> str:
    """'ni:network-instance/ni:name' -> Clark-notation ElementPath."""
    return "/".join(f"{{{NS[p.split(':')[0]]}}}{p.split(':')[1]}" for p in path.split("/"))


@pytest.mark.parametrize("scenario,leaf", CASES, ids=[f"{s}-{lf}" for s, lf in CASES])
def test_golden(states, scenario, leaf):
    assert_golden(f"openconfig-{leaf}-{scenario}.xml", render_text(states[scenario][leaf]))


def test_render_is_deterministic(states):
    again = compile_fabric(examples_fabric())
    assert render_text(again["leaf-1"]) == render_text(states["examples"]["leaf-1"])


def test_config_wrapper_and_top_level(states):
    config = render(states["examples"]["leaf-1"])
    assert config.tag == f"{{{NC_NS}}}config"
    assert [etree.QName(c).localname for c in config] == ["interfaces", "network-instances"]


def test_what_is_rendered(states):
    config = render(states["fabric"]["leaf-1"])
    nis = {ni.findtext(q("ni:name")): ni for ni in config.iter(q("ni:network-instance"))}
    assert sorted(nis) == ["default", "vpcnet-L2-payments-a", "vpcnet-L2-shop-a",
                           "vpcnet-L2-trading-a", "vpcnet-finance", "vpcnet-retail"]
    l2 = nis["vpcnet-L2-trading-a"]
    assert l2.findtext(q("ni:config/ni:type")) == "oc-ni-types:L2VSI"
    assert l2.findtext(q("ni:vlans/ni:vlan/ni:vlan-id")) == "100"
    evi = l2.find(q("ni:evpn/ni:evpn-instances/ni:evpn-instance"))
    assert evi.findtext(q("ni:vxlan/ni:config/ni:vni")) == "10100"
    assert evi.findtext(q("ni:config/ni:route-distinguisher")) == "10.0.0.1:10100"
    assert evi.findtext(q("ni:import-export-policy/ni:config/ni:export-route-target")) == \
        "route-target:65001:10100"
    assert l2.findtext(q("ni:fdb/ni:config/ni:anycast-gateway-mac")) == "0e:76:70:ff:00:00"
    l3 = nis["vpcnet-finance"]
    assert [i.findtext(q("ni:id")) for i in l3.iterfind(q("ni:interfaces/ni:interface"))] == \
        ["Vlan100", "Vlan101"]
    vnis = {e.findtext(q("ni:vni")): (e.findtext(q("ni:config/ni:vni-type")),
                                       e.findtext(q("ni:config/ni:bridge-domain")),
                                       e.findtext(q("ni:config/ni:l3-vrf-name")))
            for e in nis["default"].iter(q("ni:local-endpoint-vni"))}
    assert vnis == {"10100": ("L2", "100", None), "10101": ("L2", "101", None),
                    "10102": ("L2", "102", None), "50001": ("L3", None, "vpcnet-finance"),
                    "50002": ("L3", None, "vpcnet-retail")}
    port = next(i for i in config.iter(q("if:interface")) if i.findtext(q("if:name")) == "swp1")
    assert [t.text for t in port.iter(q("vlan:trunk-vlans"))] == ["100", "101", "102"]


def test_distributed_mode_has_no_irb(states):
    config = render(states["examples"]["leaf-1"])
    names = [i.findtext(q("if:name")) for i in config.iter(q("if:interface"))]
    assert names == ["swp1"]
    assert not list(config.iter(q("ni:anycast-gateway-mac")))


def test_yanglint_accepts_rendered_config(states, tmp_path):
    docs = []
    for scenario, leaf in CASES:   # one yanglint run (schema loading dominates), one file each
        docs.append(tmp_path / f"{scenario}-{leaf}.xml")
        docs[-1].write_text(data_text(render(states[scenario][leaf])))
    res = yanglint(*docs, mode="config")
    assert res.returncode == 0, res.stderr


def _break_vni(config):
    config.find(".//" + q("ni:vxlan/ni:config/ni:vni")).text = "16777216"


def _drop_service_type(config):
    e = config.find(".//" + q("ni:evpn-instance/ni:config/ni:service-type"))
    e.getparent().remove(e)


def _dangling_irb(config):
    itfs = config.find(q("if:interfaces"))
    irb = next(i for i in itfs if i.findtext(q("if:name")) == "Vlan100")
    itfs.remove(irb)


def _unknown_leaf(config):
    cfg = config.find(".//" + q("ni:vxlan/ni:config"))
    etree.SubElement(cfg, f"{{{NS['ni']}}}l2-vni").text = "10100"


BROKEN = {
    "vni-out-of-range": (_break_vni, "out of the allowed range"),
    "vni-without-service-type": (_drop_service_type, "When condition"),
    "irb-leafref-dangling": (_dangling_irb, "Invalid leafref value"),
    "unknown-leaf": (_unknown_leaf, 'Node "l2-vni" not found'),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_yanglint_refuses_a_broken_document(states, tmp_path, case):
    breaker, message = BROKEN[case]
    config = parse(to_text(render(states["fabric"]["leaf-1"])))
    breaker(config)
    doc = tmp_path / "broken.xml"
    doc.write_text(data_text(config))
    res = yanglint(doc, mode="config")
    assert res.returncode != 0, f"yanglint accepted a broken document ({case})"
    assert message in res.stderr


def test_vendored_modules_match_upstream_blobs():
    rows = [line.split("\t") for line in (OPENCONFIG / "MANIFEST.tsv").read_text().splitlines()
            if line and not line.startswith("#")]
    assert sum(name.endswith(".yang") for name, _, _ in rows) == 104
    bad = [name for name, _, blob in rows if git_blob_id(OPENCONFIG / name) != blob.strip()]
    assert not bad
