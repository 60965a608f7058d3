"""Drift diff (vpcnet-leaf): desired LeafState vs the running config read back from the leaf.

Every case also checks convergence: applying the plan's edit-config to the running document
(this file's merge/delete/replace applier) leaves nothing to change. The same round trips run
against a real netconfd in tests/functional/test_netconf_leaf.py.
"""
from __future__ import annotations

import copy
import dataclasses

import pytest
from lxml import etree

from vpcnet.fabric import compile_fabric
from vpcnet.fabric.diff import plan_text
from vpcnet.fabric.diff_leaf import LEAF_LISTS, LIST_KEYS, diff_leaf, inventory
from vpcnet.fabric.render_leaf import NS, render
from vpcnet.fabric.xmlutil import NC_NS, data_text, parse, to_text

from .fabric_cases import examples_fabric, fabric_mode
from .golden_util import assert_golden
from .test_fabric_render_leaf import leaf_yanglint

EMPTY = f'<data xmlns="{NC_NS}"/>'
OP = f"{{{NC_NS}}}operation"


# ---------------------------------------------------------------------------- applier
def _match(target: etree._Element, edit: etree._Element) -> etree._Element | None:
    for c in target:
        if c.tag != edit.tag:
            continue
        if edit.tag in LEAF_LISTS:
            if (c.text or "").strip() == (edit.text or "").strip():
                return c
            continue
        keys = LIST_KEYS.get(edit.tag)
        if keys and not all(c.findtext(k) == edit.findtext(k) for k in keys):
            continue
        return c
    return None


def _clean(elem: etree._Element) -> etree._Element:
    new = copy.deepcopy(elem)
    for e in new.iter():
        e.attrib.pop(OP, None)
    return new


def _apply(target: etree._Element, edit: etree._Element) -> None:
    for child in edit:
        op = child.get(OP, "merge")
        found = _match(target, child)
        if op == "delete":
            assert found is not None, f"delete of missing {etree.QName(child).localname}"
            target.remove(found)
        elif op == "replace":
            if found is None:
                target.append(_clean(child))
            else:
                target.replace(found, _clean(child))
        elif found is None:
            target.append(_clean(child))
        elif len(child):
            _apply(found, child)
        else:
            found.text = child.text


def apply_edit(running: etree._Element, edit_config: etree._Element) -> etree._Element:
    """A copy of ``running`` with the edit (merge/delete/replace, RFC 6241 7.2) applied."""
    out = copy.deepcopy(running)
    _apply(out, edit_config)
    return out


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def desired():
    return compile_fabric(fabric_mode())["leaf-1"]


@pytest.fixture
def running(desired):
    """A fresh copy of what the leaf holds after vpcnet configured it (fabric mode)."""
    return parse(to_text(render(desired)))


def q(path: str) -> str:
    return "/".join(f"{{{NS}}}{p}" for p in path.split("/"))


def top(config):
    return config.find(q("leaf"))


def entry(config, kind, name):
    key = LIST_KEYS[q(kind)][0]
    return next(e for e in config.iter(q(kind)) if e.findtext(key) == str(name))


def add(config, xml: str):
    top(config).append(etree.fromstring(f'<wrap xmlns="{NS}">{xml}</wrap>')[0])


def set_vlans(config, values, port="swp1"):
    itf = entry(config, "interface", port)
    for v in itf.findall(q("allowed-vlan")):
        itf.remove(v)
    for v in values:
        etree.SubElement(itf, q("allowed-vlan")).text = str(v)


def lines(plan):
    return [c.text() for c in plan.changes]


def assert_converges(state, running_doc):
    plan = diff_leaf(state, running_doc)
    after = apply_edit(running_doc, plan.edit_config())
    again = diff_leaf(state, after)
    assert again.empty, again.text()
    return plan, after


def ops(edit):
    return sorted((etree.QName(e).localname, e.get(OP), e.findtext("*") or e.text)
                  for e in edit.iter() if e.get(OP))


# ---------------------------------------------------------------------------- cases
def test_in_sync(desired, running):
    plan, _ = assert_converges(desired, running)
    assert plan.empty and plan.text() == "leaf leaf-1 (vpcnet-leaf): in sync\n"
    assert plan.model == "vpcnet-leaf" and len(plan.edit_config()) == 0


def test_empty_leaf_gets_everything(desired):
    plan, after = assert_converges(desired, parse(EMPTY))
    assert [(c.op, c.kind) for c in plan.changes] == [
        ("+", "bgp"), ("+", "vtep"), ("+", "bgp-neighbor"), ("+", "ip-vrf"), ("+", "ip-vrf"),
        ("+", "mac-vrf"), ("+", "mac-vrf"), ("+", "mac-vrf"), ("+", "port")]
    assert ops(plan.edit_config()) == []          # all merge: nothing to delete or replace
    assert diff_leaf(desired, after).empty


def test_reads_a_get_config_reply_with_other_modules(desired):
    reply = (f'<rpc-reply xmlns="{NC_NS}" message-id="1"><data>'
             + data_text(render(desired))
             + '<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"/></data></rpc-reply>')
    assert diff_leaf(desired, reply).empty


def test_changed_route_target_is_a_replace_of_the_entry(desired, running):
    for rt in entry(running, "mac-vrf", "vpcnet-L2-trading-a").iter(q("export-rt")):
        rt.text = "65000:10100"
    plan, _ = assert_converges(desired, running)
    assert lines(plan) == ["~ mac-vrf vpcnet-L2-trading-a: +export-rt 65001:10100, "
                           "-export-rt 65000:10100"]
    edit = plan.edit_config()
    assert ops(edit) == [("mac-vrf", "replace", "vpcnet-L2-trading-a")]
    replaced = next(edit.iter(q("mac-vrf")))
    assert sorted(etree.QName(c).localname for c in replaced) == [
        "description", "export-rt", "import-rt", "ip-vrf", "name", "rd", "vlan", "vni"]
    assert replaced[0].tag == q("name")          # the key first


def test_gateway_removed_and_address_changed_by_hand(desired, running):
    finance = entry(running, "ip-vrf", "vpcnet-finance")
    finance.remove(entry(finance, "gateway", 101))
    entry(finance, "gateway", 100).find(q("address")).text = "10.10.0.254/24"
    plan, after = assert_converges(desired, running)
    assert lines(plan) == ["~ ip-vrf vpcnet-finance: +gateway[101], "
                           "+gateway[100]/address 10.10.0.1/24, "
                           "-gateway[100]/address 10.10.0.254/24"]
    gws = {g.findtext(q("vlan")): [a.text for a in g.iterfind(q("address"))]
           for g in entry(after, "ip-vrf", "vpcnet-finance").iter(q("gateway"))}
    assert gws == {"100": ["10.10.0.1/24"], "101": ["10.20.0.1/24"]}


def test_missing_subnet(desired, running):
    top(running).remove(entry(running, "mac-vrf", "vpcnet-L2-shop-a"))
    retail = entry(running, "ip-vrf", "vpcnet-retail")
    retail.remove(entry(retail, "gateway", 102))
    set_vlans(running, [100, 101])
    plan, _ = assert_converges(desired, running)
    assert lines(plan) == [
        "~ ip-vrf vpcnet-retail: +gateway[102]",
        "+ mac-vrf vpcnet-L2-shop-a  vlan=102, vni=10102, rd=10.0.0.1:10102, "
        "export-rt=65001:10102, ip-vrf=vpcnet-retail",
        "~ port swp1: +allowed-vlan 102",
    ]


def test_stale_owned_mac_vrf_is_removed_with_its_vlan(desired, running):
    add(running, "<mac-vrf><name>vpcnet-L2-old</name><vlan>999</vlan><vni>10999</vni></mac-vrf>")
    set_vlans(running, [100, 101, 102, 999])
    plan, after = assert_converges(desired, running)
    assert lines(plan) == ["- mac-vrf vpcnet-L2-old", "~ port swp1: -allowed-vlan 999"]
    assert ops(plan.edit_config()) == [("interface", "replace", "swp1"),
                                       ("mac-vrf", "delete", "vpcnet-L2-old")]
    assert "vpcnet-L2-old" not in to_text(after)


FOREIGN = [
    # outside every range, no prefix
    "<mac-vrf><name>corp-mgmt</name><vlan>50</vlan><vni>30050</vni></mac-vrf>",
    # vpcnet-like name, but VLAN and VNI outside the ranges: still never vpcnet's
    "<mac-vrf><name>vpcnet-L2-lab</name><vlan>60</vlan><vni>30060</vni></mac-vrf>",
    # inside the ranges, but no prefix: not vpcnet's either (and neither is VLAN 200 on a port)
    "<mac-vrf><name>corp-200</name><vlan>200</vlan><vni>10200</vni>"
    "<ip-vrf>corp-vrf</ip-vrf></mac-vrf>",
    "<ip-vrf><name>corp-vrf</name><l3vni>30001</l3vni></ip-vrf>",
    "<ip-vrf><name>vpcnet-lab</name><l3vni>30002</l3vni></ip-vrf>",
    "<interface><name>swp9</name><description>uplink (operator)</description>"
    "<allowed-vlan>50</allowed-vlan><allowed-vlan>200</allowed-vlan></interface>",
]
FOREIGN_NEIGHBOR = ("<neighbor><address>10.9.9.9</address><remote-as>65100</remote-as>"
                    "<description>spine-1 (operator)</description></neighbor>")


def add_foreign(running):
    for xml in FOREIGN:
        add(running, xml)
    top(running).find(q("bgp")).append(etree.fromstring(
        f'<wrap xmlns="{NS}">{FOREIGN_NEIGHBOR}</wrap>')[0])
    set_vlans(running, [50, 60, 100, 101, 102, 200])
    etree.SubElement(entry(running, "interface", "swp1"), q("description")).text = "node-1 trunk"


def test_foreign_objects_are_invisible(desired, running):
    add_foreign(running)
    plan, _ = assert_converges(desired, running)
    assert plan.empty, plan.text()
    kinds = sorted(inventory(running, desired.ownership))
    assert ("mac-vrf", "corp-mgmt") not in kinds and ("mac-vrf", "vpcnet-L2-lab") not in kinds
    assert ("mac-vrf", "corp-200") not in kinds and ("ip-vrf", "vpcnet-lab") not in kinds
    assert ("port", "swp9") not in kinds and ("bgp-neighbor", "10.9.9.9") not in kinds


def test_foreign_objects_survive_a_real_change(desired, running):
    add_foreign(running)
    other = compile_fabric(examples_fabric())["leaf-1"]     # distributed: the gateways go
    plan, after = assert_converges(other, running)
    assert plan.changes
    edit = to_text(plan.edit_config())
    for foreign in ("corp-", "vpcnet-L2-lab", "vpcnet-lab", "swp9", "10.9.9.9"):
        assert foreign not in edit
    text = to_text(after)
    for foreign in ("corp-mgmt", "corp-200", "corp-vrf", "vpcnet-L2-lab", "vpcnet-lab", "swp9",
                    "uplink (operator)", "10.9.9.9"):
        assert foreign in text


def test_node_gone_takes_back_vlans_but_keeps_the_port(desired, running):
    add_foreign(running)
    f = fabric_mode()
    f = dataclasses.replace(f, nodes=tuple(n for n in f.nodes if n.name != "node-1"))
    bare = compile_fabric(f)["leaf-1"]
    plan, after = assert_converges(bare, running)
    assert "~ port swp1: -allowed-vlan 100, -allowed-vlan 101, -allowed-vlan 102" in lines(plan)
    assert {c.op for c in plan.changes if c.kind != "port"} == {"-"}
    port = entry(after, "interface", "swp1")
    assert sorted(int(v.text) for v in port.iterfind(q("allowed-vlan"))) == [50, 60, 200]
    assert port.findtext(q("description")) == "node-1 trunk"
    assert not [e for e in plan.edit_config().iter(q("interface")) if e.get(OP) == "delete"]


def test_existing_neighbour_is_adopted_not_duplicated(desired, running):
    entry(running, "neighbor", "10.0.0.2").find(q("description")).text = "manual"
    plan, _ = assert_converges(desired, running)
    assert lines(plan) == ["~ bgp-neighbor 10.0.0.2: description manual -> vpcnet: leaf leaf-2"]


def test_stale_tagged_neighbour_is_removed(desired, running):
    stale = FOREIGN_NEIGHBOR.replace("spine-1 (operator)", "vpcnet: leaf leaf-9")
    top(running).find(q("bgp")).append(etree.fromstring(f'<wrap xmlns="{NS}">{stale}</wrap>')[0])
    plan, _ = assert_converges(desired, running)
    assert lines(plan) == ["- bgp-neighbor 10.9.9.9"]


def test_vtep_and_bgp_globals(desired, running):
    vtep = top(running).find(q("vtep"))
    vtep.find(q("source-interface")).text = "lo9"
    etree.SubElement(vtep, q("udp-port")).text = "4790"
    top(running).find(q("bgp/asn")).text = "65009"
    plan, _ = assert_converges(desired, running)
    assert lines(plan) == ["~ bgp global: asn 65009 -> 65001",
                           "~ vtep leaf: vtep/source-interface lo9 -> lo, -vtep/udp-port 4790"]
    assert ops(plan.edit_config()) == [("udp-port", "delete", "4790")]


def test_equal_values_in_another_spelling_are_in_sync(desired, running):
    top(running).find(q("anycast-gateway-mac")).text = "0E:76:70:FF:00:00"
    retail = entry(running, "ip-vrf", "vpcnet-retail")
    for a in retail.iter(q("address")):
        a.text = a.text.replace("fd00:30::1", "FD00:0030:0::1")
    assert diff_leaf(desired, running).empty


def test_plan_text_golden(desired, running):
    add_foreign(running)
    top(running).remove(entry(running, "mac-vrf", "vpcnet-L2-shop-a"))
    set_vlans(running, [50, 60, 100, 101, 200])
    for rt in entry(running, "mac-vrf", "vpcnet-L2-trading-a").iter(q("import-rt")):
        rt.text = "65000:10100"
    other = compile_fabric(fabric_mode())["leaf-2"]
    plans = [diff_leaf(desired, running), diff_leaf(other, parse(EMPTY))]
    assert_golden("vpcnet-leaf-plan.txt", plan_text(plans))
    assert_golden("vpcnet-leaf-edit-leaf-1.xml", to_text(plans[0].edit_config()))


def test_edit_config_payloads_pass_yanglint_edit_mode(desired, running, tmp_path):
    """nc:operation (merge/delete/replace) and every value are checked by libyang."""
    add_foreign(running)
    top(running).remove(entry(running, "mac-vrf", "vpcnet-L2-shop-a"))
    for rt in entry(running, "mac-vrf", "vpcnet-L2-trading-a").iter(q("export-rt")):
        rt.text = "65000:10100"
    docs = []
    for i, (state, run) in enumerate([
            (desired, running), (desired, parse(EMPTY)),
            (compile_fabric(examples_fabric())["leaf-1"], running)]):
        docs.append(tmp_path / f"edit-{i}.xml")
        docs[-1].write_text(data_text(diff_leaf(state, run).edit_config()))
    res = leaf_yanglint(*docs, mode="edit")
    assert res.returncode == 0, res.stderr
