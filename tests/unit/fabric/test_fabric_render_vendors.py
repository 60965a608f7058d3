"""NX-OS (Cisco-NX-OS-device) and Huawei (VRP schema) renderers: goldens and structure."""
from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from vpcnet.fabric import InputError, compile_fabric
from vpcnet.fabric.model import PortBinding
from vpcnet.fabric.render import RENDERERS, render, render_text
from vpcnet.fabric.render_huawei import NS as HW, port_type, vlan_bitmap
from vpcnet.fabric.render_nxos import NS as NX, dotted_mac, rd_value, rt_value

from .fabric_cases import examples_fabric, fabric_mode
from .golden_util import assert_golden

SCENARIOS = {"examples": examples_fabric, "fabric": fabric_mode}
CASES = [(m, s, lf) for m in ("nxos", "huawei") for s in SCENARIOS for lf in ("leaf-1", "leaf-2")]


@pytest.fixture(scope="module")
def states():
    return {name: compile_fabric(make()) for name, make in SCENARIOS.items()}


def nx(path: str) -> str:
    return "/".join(f"{{{NX}}}{p}" for p in path.split("/"))


def hw(path: str) -> str:
    return "/".join(f"{{{HW}}}{p}" for p in path.split("/"))


@pytest.mark.parametrize("model,scenario,leaf", CASES, ids=["-".join(c) for c in CASES])
def test_golden(states, model, scenario, leaf):
    assert_golden(f"{model}-{leaf}-{scenario}.xml", render_text(states[scenario][leaf], model))


def test_registry_and_unknown_model(states):
    assert sorted(RENDERERS) == ["huawei", "nxos", "openconfig", "vpcnet-leaf"]
    with pytest.raises(InputError, match="leaf leaf-1: model='junos' has no renderer"):
        render(states["examples"]["leaf-1"], "junos")


# ---------------------------------------------------------------------------- NX-OS
def test_nxos_vlan_vni_nve_evi(states):
    system = render(states["fabric"]["leaf-1"], "nxos").find(nx("System"))
    bds = {b.findtext(nx("fabEncap")): b.findtext(nx("accEncap"))
           for b in system.iterfind(nx("bd-items/bd-items/BD-list"))}
    assert bds == {"vlan-100": "vxlan-10100", "vlan-101": "vxlan-10101", "vlan-102": "vxlan-10102"}
    nws = {n.findtext(nx("vni")): (n.findtext(nx("associateVrfFlag")),
                                   n.findtext(nx("IngRepl-items/proto")))
           for n in system.iter(nx("Nw-list"))}
    assert nws == {"10100": (None, "bgp"), "10101": (None, "bgp"), "10102": (None, "bgp"),
                   "50001": ("true", None), "50002": ("true", None)}
    ep = system.find(nx("eps-items/epId-items/Ep-list"))
    assert (ep.findtext(nx("epId")), ep.findtext(nx("hostReach")),
            ep.findtext(nx("sourceInterface"))) == ("1", "bgp", "lo1")
    evi = next(e for e in system.iter(nx("BDEvi-list")) if e.findtext(nx("encap")) == "vxlan-10100")
    assert evi.findtext(nx("rd")) == "rd:ipv4-nn2:10.0.0.1:10100"
    assert [r.text for r in evi.iter(nx("rtt"))] == ["route-target:as2-nn2:65001:10100"] * 2
    vrf = next(i for i in system.iter(nx("Inst-list")) if i.findtext(nx("name")) == "vpcnet-finance")
    assert (vrf.findtext(nx("encap")), vrf.findtext(nx("l3vni"))) == ("vxlan-50001", "true")
    assert system.findtext(nx("hmm-items/fwdinst-items/amac")) == "0e76.70ff.0000"
    trunk = system.find(nx("intf-items/phys-items/PhysIf-list"))
    assert (trunk.findtext(nx("id")), trunk.findtext(nx("mode")), trunk.findtext(nx("trunkVlans"))) \
        == ("swp1", "trunk", "100,101,102")


def test_nxos_distributed_mode_has_no_svi(states):
    system = render(states["examples"]["leaf-1"], "nxos").find(nx("System"))
    assert system.find(nx("intf-items/svi-items")) is None
    assert system.find(nx("hmm-items")) is None
    assert system.find(nx("fm-items/ifvlan-items")) is None
    assert system.find(nx("inst-items/Inst-list")) is not None      # L3VNI stays


def test_nxos_typed_values():
    assert rd_value("10.0.0.1:10100") == "rd:ipv4-nn2:10.0.0.1:10100"
    assert rt_value("65001:10100") == "route-target:as2-nn2:65001:10100"
    assert rt_value("65001:100000") == "route-target:as2-nn4:65001:100000"
    assert rt_value("4200000000:10100") == "route-target:as4-nn2:4200000000:10100"
    assert dotted_mac("0e:76:70:ff:00:00") == "0e76.70ff.0000"


def test_nxos_needs_one_vlan_per_vni(states):
    s = states["examples"]["leaf-1"]
    odd = dataclasses.replace(s, bindings=s.bindings + (PortBinding("swp2", 300, 10100, "trading-a"),))
    with pytest.raises(InputError, match="vni=10100 uses VLAN 100 and 300"):
        render(odd, "nxos")


# ---------------------------------------------------------------------------- Huawei
def test_huawei_per_port_vlan_binding(states):
    config = render(states["fabric"]["leaf-1"], "huawei")
    assert {c.get("content-version") for c in config} == {"1.0"}
    subifs = {i.findtext(hw("ifName")): (i.findtext(hw("ifParentIfName")), i.findtext(hw("ifNumber")))
              for i in config.iter(hw("interface")) if i.findtext(hw("l2SubIfFlag")) == "true"}
    assert subifs == {"swp1.100": ("swp1", "100"), "swp1.101": ("swp1", "101"),
                      "swp1.102": ("swp1", "102")}
    sp = {s.findtext(hw("ifName")): s.findtext(hw("flowDot1qs/dot1qVids"))
          for s in config.find(hw("ethernet")).iter(hw("servicePoint"))}
    assert sp["swp1.101"] == vlan_bitmap([101])
    bds = {b.findtext(hw("bdId")): [s.findtext(hw("ifName")) for s in b.iter(hw("servicePoint"))]
           for b in config.iter(hw("bd"))}
    assert bds == {"10100": ["swp1.100"], "10101": ["swp1.101"], "10102": ["swp1.102"]}
    vni2bd = {e.findtext(hw("vniId")): e.findtext(hw("bdId")) for e in config.iter(hw("nvo3Vni2Bd"))}
    assert vni2bd == {"10100": "10100", "10101": "10101", "10102": "10102"}
    vni2vrf = {e.findtext(hw("vniId")): e.findtext(hw("vrfName")) for e in config.iter(hw("nvo3Vni2Vrf"))}
    assert vni2vrf == {"50001": "vpcnet-finance", "50002": "vpcnet-retail"}
    evpn = next(e for e in config.iter(hw("evpnInstance")) if e.findtext(hw("bdId")) == "10100")
    assert evpn.findtext(hw("evpnRD")) == "10.0.0.1:10100"
    assert [(r.findtext(hw("vrfRTType")), r.findtext(hw("vrfRTValue"))) for r in evpn.iter(hw("evpnRT"))] \
        == [("export_extcommunity", "65001:10100"), ("import_extcommunity", "65001:10100")]
    vbdif = next(i for i in config.iter(hw("interface")) if i.findtext(hw("ifName")) == "Vbdif10102")
    assert vbdif.findtext(hw("ifmAm4/am4CfgAddrs/am4CfgAddr/subnetMask")) == "255.255.255.0"
    assert vbdif.findtext(hw("ifmAm6/am6CfgAddrs/am6CfgAddr/ifIp6Addr")) == "fd00:30::1"
    assert [e.findtext(hw("distriEnable")) for e in config.iter(hw("arpInterface"))] == ["true"] * 3


def test_huawei_vlan_bitmap_and_port_type():
    text = vlan_bitmap([1, 100, 4094])
    value, mask = text.split(":")
    assert value == mask and len(value) == 1024
    bits = bin(int(value, 16))[2:].zfill(4096)
    assert [i for i, b in enumerate(bits) if b == "1"] == [1, 100, 4094]
    assert vlan_bitmap([100]).startswith("0" * 25 + "8")     # FaaS buildHexString layout
    assert [port_type(p) for p in ("10GE1/0/1", "GE1/0/3", "Eth-Trunk10", "swp1")] == \
        ["10GE", "GE", "Eth-Trunk", "swp"]


def test_all_documents_are_well_formed_xml(states):
    for scenario in states.values():
        for state in scenario.values():
            for model in RENDERERS:
                etree.fromstring(render_text(state, model).encode())
