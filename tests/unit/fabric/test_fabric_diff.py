"""Drift diff (OpenConfig): desired LeafState vs the running config read back from the leaf.

Every case also checks convergence: applying the generated edit-config to the running document
(tests' own merge/delete applier) leaves nothing to change.
"""
from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from vpcnet.fabric import compile_fabric
from vpcnet.fabric.diff import diff_openconfig, plan_text
from vpcnet.fabric.render_openconfig import NS, render
from vpcnet.fabric.xmlutil import NC_NS, data_text, parse, to_text

from .fabric_cases import examples_fabric, fabric_mode
from .golden_util import assert_golden
from .netconf_apply import apply_edit
from .yanglint_util import yanglint

EMPTY = f'<data xmlns="{NC_NS}"/>'
OP = f"{{{NC_NS}}}operation"


@pytest.fixture(scope="module")
def desired():
    return compile_fabric(fabric_mode())["leaf-1"]


@pytest.fixture
def running(desired):
    """A fresh copy of what the leaf would hold after vpcnet configured it (fabric mode)."""
    return parse(to_text(render(desired)))


def q(path: str) -> str:
    return "/".join(f"{{{NS[p.split(':')[0]]}}}{p.split(':')[1]}" for p in path.split("/"))


def ni(config, name):
    return next(e for e in config.iter(q("ni:network-instance")) if e.findtext(q("ni:name")) == name)


def remove(elem):
    elem.getparent().remove(elem)


def vni_entry(config, vni):
    return next(e for e in config.iter(q("ni:local-endpoint-vni")) if e.findtext(q("ni:vni")) == str(vni))


def port(config, name="swp1"):
    return next(e for e in config.iter(q("if:interface")) if e.findtext(q("if:name")) == name)


def set_trunk(config, values, name="swp1"):
    cfg = port(config, name).find(q("eth:ethernet/vlan:switched-vlan/vlan:config"))
    for t in cfg.findall(q("vlan:trunk-vlans")):
        cfg.remove(t)
    for v in values:
        etree.SubElement(cfg, q("vlan:trunk-vlans")).text = str(v)


def add(config, xml: str, under: str):
    """Append the snippet under the top container ``under``; identity values in snippets use
    the prefixes the rendered roots declare (lxml re-maps a snippet's own declarations)."""
    top = config.find(q(under))
    top.append(etree.fromstring(xml))


def lines(plan):
    return [c.text() for c in plan.changes]


def assert_converges(state, running_doc):
    plan = diff_openconfig(state, running_doc)
    after = apply_edit(running_doc if isinstance(running_doc, etree._Element) else parse(running_doc),
                       plan.edit_config())
    again = diff_openconfig(state, after)
    assert again.empty, again.text()
    return plan


def test_in_sync(desired, running):
    plan = assert_converges(desired, running)
    assert plan.empty and plan.text() == "leaf leaf-1 (openconfig): in sync\n"
    assert len(plan.edit_config()) == 0


def test_empty_leaf_gets_everything(desired):
    plan = assert_converges(desired, parse(EMPTY))
    assert [(c.op, c.kind) for c in plan.changes][:3] == [("+", "bgp"), ("+", "vtep"),
                                                         ("+", "bgp-neighbor")]
    assert sum(c.op == "+" for c in plan.changes) == len(plan.changes) == 17


def test_missing_vni(desired, running):
    remove(ni(running, "vpcnet-L2-shop-a"))
    remove(vni_entry(running, 10102))
    set_trunk(running, [100, 101])
    plan = assert_converges(desired, running)
    assert lines(plan) == [
        "+ mac-vrf vpcnet-L2-shop-a  vni=10102, vlan-id=102, route-distinguisher=10.0.0.1:10102, "
        "export-route-target=65001:10102",
        "+ vni 10102  vni-type=L2, bridge-domain=102",
        "~ port swp1: +ethernet/switched-vlan/trunk-vlans 102",
    ]
    edit = to_text(plan.edit_config())
    assert 'operation="delete"' not in edit


def test_extra_vni_inside_the_owned_range_is_removed(desired, running):
    add(running, f"""<network-instance xmlns="{NS['ni']}"><name>vpcnet-L2-old</name>
        <config><name>vpcnet-L2-old</name><type>oc-ni-types:L2VSI</type></config>
        <vlans><vlan><vlan-id>999</vlan-id><config><vlan-id>999</vlan-id></config></vlan></vlans>
        </network-instance>""", "ni:network-instances")
    lst = vni_entry(running, 10100).getparent()
    lst.append(etree.fromstring(f"""<local-endpoint-vni xmlns="{NS['ni']}"><vni>10999</vni>
        <config><vni>10999</vni><vni-type>L2</vni-type><bridge-domain>999</bridge-domain></config>
        </local-endpoint-vni>"""))
    set_trunk(running, [100, 101, 102, 999])
    plan = assert_converges(desired, running)
    assert lines(plan) == ["- mac-vrf vpcnet-L2-old", "- vni 10999",
                           "~ port swp1: -ethernet/switched-vlan/trunk-vlans 999"]
    edit = plan.edit_config()
    deleted = sorted(etree.QName(e).localname + ":" + (e.findtext("*") or e.text or "")
                     for e in edit.iter() if e.get(OP) == "delete")
    assert deleted == ["local-endpoint-vni:10999", "network-instance:vpcnet-L2-old", "trunk-vlans:999"]


FOREIGN = {
    "ni": f"""<network-instance xmlns="{NS['ni']}"><name>corp-mgmt</name>
        <config><name>corp-mgmt</name><type>oc-ni-types:L2VSI</type></config>
        <vlans><vlan><vlan-id>50</vlan-id><config><vlan-id>50</vlan-id></config></vlan></vlans>
        </network-instance>""",
    "irb": f"""<interface xmlns="{NS['if']}"><name>Vlan50</name>
        <config><name>Vlan50</name><type>ianaift:l3ipvlan</type></config>
        </interface>""",
    "uplink": f"""<interface xmlns="{NS['if']}"><name>swp9</name><config><name>swp9</name></config>
        <ethernet xmlns="{NS['eth']}"><switched-vlan xmlns="{NS['vlan']}"><config>
        <interface-mode>TRUNK</interface-mode><trunk-vlans>60</trunk-vlans></config></switched-vlan></ethernet>
        </interface>""",
    "vni": f"""<local-endpoint-vni xmlns="{NS['ni']}"><vni>30050</vni>
        <config><vni>30050</vni><vni-type>L2</vni-type><bridge-domain>50</bridge-domain></config>
        </local-endpoint-vni>""",
    "neighbor": f"""<neighbor xmlns="{NS['ni']}"><neighbor-address>10.9.9.9</neighbor-address>
        <config><neighbor-address>10.9.9.9</neighbor-address><peer-as>65100</peer-as>
        <description>spine-1 (operator)</description></config></neighbor>""",
}


def add_foreign(running):
    add(running, FOREIGN["ni"], "ni:network-instances")
    add(running, FOREIGN["irb"], "if:interfaces")
    add(running, FOREIGN["uplink"], "if:interfaces")
    vni_entry(running, 10100).getparent().append(etree.fromstring(FOREIGN["vni"]))
    next(running.iter(q("ni:neighbors"))).append(etree.fromstring(FOREIGN["neighbor"]))
    set_trunk(running, [50, 100, 101, 102])


def test_foreign_objects_outside_the_owned_ranges_are_untouched(desired, running):
    add_foreign(running)
    plan = assert_converges(desired, running)
    assert plan.empty, plan.text()


def test_foreign_objects_survive_a_real_change(desired, running):
    add_foreign(running)
    other = compile_fabric(examples_fabric())["leaf-1"]     # distributed: IRBs etc. go away
    plan = assert_converges(other, running)
    assert plan.changes
    edit = to_text(plan.edit_config())
    for foreign in ("corp-mgmt", "Vlan50", "swp9", "30050", "10.9.9.9", ">50<"):
        assert foreign not in edit
    after = apply_edit(running, plan.edit_config())
    assert "corp-mgmt" in to_text(after) and "10.9.9.9" in to_text(after)
    assert [t.text for t in port(after).iter(q("vlan:trunk-vlans"))] == ["50", "100", "101", "102"]


def test_changed_route_target(desired, running):
    l2 = ni(running, "vpcnet-L2-trading-a")
    for t in l2.iter(q("ni:export-route-target")):
        t.text = "route-target:65000:10100"
    plan = assert_converges(desired, running)
    assert lines(plan) == [
        "~ mac-vrf vpcnet-L2-trading-a: "
        "+evpn/evpn-instance[10100]/import-export-policy/export-route-target 65001:10100, "
        "-evpn/evpn-instance[10100]/import-export-policy/export-route-target 65000:10100"]
    edit = plan.edit_config()
    ops = [(e.get(OP, "merge"), e.text) for e in edit.iter(q("ni:export-route-target"))]
    assert ops == [("delete", "route-target:65000:10100"), ("merge", "route-target:65001:10100")]


def test_route_target_without_marker_is_the_same_value(desired, running):
    for t in ni(running, "vpcnet-L2-trading-a").iter(q("ni:export-route-target")):
        t.text = "65001:10100"          # the type-0 string form, no "route-target:" marker
    assert diff_openconfig(desired, running).empty


def test_vlan_range_is_split_keeping_foreign_members(desired, running):
    set_trunk(running, ["90..105"])     # foreign 90-99, owned 100-105, vpcnet wants 100-102
    plan = assert_converges(desired, running)
    assert lines(plan) == ["~ port swp1: -ethernet/switched-vlan/trunk-vlans 103, "
                           "-ethernet/switched-vlan/trunk-vlans 104, "
                           "-ethernet/switched-vlan/trunk-vlans 105"]
    after = apply_edit(running, plan.edit_config())
    assert sorted(int(t.text) for t in port(after).iter(q("vlan:trunk-vlans"))) == \
        list(range(90, 103))


def test_node_gone_takes_back_vlans_but_not_the_port(desired, running):
    f = fabric_mode()
    f = dataclasses.replace(f, nodes=tuple(n for n in f.nodes if n.name != "node-1"))
    bare = compile_fabric(f)["leaf-1"]
    plan = assert_converges(bare, running)
    assert "~ port swp1: -ethernet/switched-vlan/trunk-vlans 100, " \
           "-ethernet/switched-vlan/trunk-vlans 101, -ethernet/switched-vlan/trunk-vlans 102" \
        in lines(plan)
    assert {c.op for c in plan.changes if c.kind != "port"} == {"-"}
    assert not [e for e in plan.edit_config().iter(q("if:interface"))
                if e.findtext(q("if:name")) == "swp1" and e.get(OP) == "delete"]


def test_existing_neighbour_is_adopted_not_duplicated(desired, running):
    nb = next(running.iter(q("ni:neighbor")))
    nb.find(q("ni:config/ni:description")).text = "manual"
    plan = assert_converges(desired, running)
    assert lines(plan) == ["~ bgp-neighbor 10.0.0.2: description manual -> vpcnet: leaf leaf-2"]


def test_stale_tagged_neighbour_is_removed(desired, running):
    next(running.iter(q("ni:neighbors"))).append(etree.fromstring(
        FOREIGN["neighbor"].replace("spine-1 (operator)", "vpcnet: leaf leaf-9")))
    plan = assert_converges(desired, running)
    assert lines(plan) == ["- bgp-neighbor 10.9.9.9"]


def test_identity_prefixes_are_resolved_not_compared(desired):
    text = to_text(render(desired)).replace("oc-ni-types", "nit").replace("oc-bgp-types", "bt")
    assert "nit:L2VSI" in text
    assert diff_openconfig(desired, text).empty


def test_reads_a_get_config_reply(desired):
    reply = (f'<rpc-reply xmlns="{NC_NS}" message-id="1"><data>'
             + data_text(render(desired)) + "</data></rpc-reply>")
    assert diff_openconfig(desired, reply).empty


def test_plan_text_golden(desired, running):
    add_foreign(running)
    remove(ni(running, "vpcnet-L2-shop-a"))
    for t in ni(running, "vpcnet-L2-trading-a").iter(q("ni:import-route-target")):
        t.text = "route-target:65000:10100"
    other = compile_fabric(fabric_mode())["leaf-2"]
    plans = [diff_openconfig(desired, running), diff_openconfig(other, parse(EMPTY))]
    assert_golden("plan.txt", plan_text(plans))
    assert_golden("edit-leaf-1.xml", to_text(plans[0].edit_config()))


def test_edit_config_payloads_pass_yanglint_edit_mode(desired, running, tmp_path):
    """nc:operation and every value are checked by libyang (ietf-netconf loaded)."""
    add_foreign(running)
    remove(ni(running, "vpcnet-L2-shop-a"))
    for t in ni(running, "vpcnet-L2-trading-a").iter(q("ni:export-route-target")):
        t.text = "route-target:65000:10100"
    docs = []
    for i, (state, run) in enumerate([
            (desired, running), (desired, parse(EMPTY)),
            (compile_fabric(examples_fabric())["leaf-1"], running)]):
        docs.append(tmp_path / f"edit-{i}.xml")
        docs[-1].write_text(data_text(diff_openconfig(state, run).edit_config()))
    res = yanglint(*docs, mode="edit")
    assert res.returncode == 0, res.stderr
