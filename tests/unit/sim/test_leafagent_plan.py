"""The leaf agent's pure parts: parse_config (vpcnet-leaf XML -> desired), plan(current, desired)."""
from __future__ import annotations

from vpcnet.sim import leafagent as la
from vpcnet.sim.leafagent import parse_config, plan

NS = "urn:vpcnet:yang:leaf"
LOCAL = "198.19.255.1"


def doc(body: str) -> str:
    return (f'<data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><leaf xmlns="{NS}">{body}</leaf></data>')


FULL = doc(f"""
  <vtep><source-address>{LOCAL}</source-address></vtep>
  <anycast-gateway-mac>00:00:5e:00:01:01</anycast-gateway-mac>
  <interface><name>swp1</name><allowed-vlan>100</allowed-vlan><allowed-vlan>101</allowed-vlan></interface>
  <interface><name>swp2</name><allowed-vlan>100</allowed-vlan></interface>
  <mac-vrf><name>trading-a</name><vlan>100</vlan><vni>10100</vni><ip-vrf>finance</ip-vrf></mac-vrf>
  <mac-vrf><name>payments-a</name><vlan>101</vlan><vni>10101</vni>
    <rd>198.19.255.1:101</rd><import-rt>65000:10101</import-rt><export-rt>65000:10101</export-rt></mac-vrf>
  <ip-vrf><name>finance</name><l3vni>50001</l3vni>
    <gateway><vlan>100</vlan><address>10.10.0.1/24</address></gateway></ip-vrf>
  <bgp><asn>65001</asn><neighbor><address>198.19.1.0</address><remote-as>65000</remote-as></neighbor></bgp>
""")


def vni(v, x, complete=True, local=LOCAL, port=4789):
    return {"vni": x, "local": local, "port": port, "complete": complete, "dev": f"vx{x}"}


def current(l2=None, trunks=None, stray=(), frr=None):
    return {"local": LOCAL, "l2vnis": l2 or {}, "stray": list(stray),
            "trunks": trunks if trunks is not None else {"swp1": [], "swp2": []}, "frr_vnis": frr or {}}


def test_parse_full_document():
    d = parse_config(FULL)
    assert d["present"] and d["vtep"] == LOCAL and d["udp_port"] == 4789
    assert d["interfaces"] == {"swp1": [100, 101], "swp2": [100]}
    assert d["mac_vrfs"][100]["vni"] == 10100 and d["mac_vrfs"][100]["ip_vrf"] == "finance"
    assert d["mac_vrfs"][101]["rd"] == "198.19.255.1:101"
    assert d["ip_vrfs"] == {"finance": {"l3vni": 50001, "gateways": {100: ["10.10.0.1/24"]}}}
    assert d["bgp"] == {"asn": 65001, "router_id": None, "neighbors": {"198.19.1.0": 65000}}


def test_parse_empty_and_absent():
    for xml in (None, "", '<data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>'):
        assert parse_config(xml) == la.empty_desired()


def test_from_scratch_builds_then_opens_trunks_last():
    steps = plan(current(), parse_config(FULL))
    assert steps == [
        ("add-l2vni", 100, 10100, LOCAL, 4789),
        ("add-l2vni", 101, 10101, LOCAL, 4789),
        ("frr-vni", 10101, "198.19.255.1:101", ("65000:10101",), ("65000:10101",)),
        ("trunk", "swp1", (100, 101)),
        ("trunk", "swp2", (100,)),
    ]


def test_converged_is_empty():
    d = parse_config(FULL)
    cur = current({100: vni(100, 10100), 101: vni(101, 10101)}, {"swp1": [100, 101], "swp2": [100]},
                  frr={10101: {"rd": "198.19.255.1:101", "import_rt": ["65000:10101"], "export_rt": ["65000:10101"]}})
    assert plan(cur, d) == []


def test_removing_everything_closes_trunks_first():
    cur = current({100: vni(100, 10100), 101: vni(101, 10101)}, {"swp1": [100, 101], "swp2": [100]},
                  frr={10101: {"rd": "x:1", "import_rt": [], "export_rt": []}})
    assert plan(cur, parse_config(None)) == [
        ("trunk", "swp1", ()), ("trunk", "swp2", ()),
        ("frr-del-vni", 10101),
        ("del-l2vni", 100, 10100), ("del-l2vni", 101, 10101),
    ]


def test_changed_vni_is_rebuilt_and_trunk_narrowed_then_widened():
    d = parse_config(doc("""<interface><name>swp1</name><allowed-vlan>100</allowed-vlan><allowed-vlan>300</allowed-vlan></interface>
      <mac-vrf><name>a</name><vlan>100</vlan><vni>20100</vni></mac-vrf>
      <mac-vrf><name>c</name><vlan>300</vlan><vni>10300</vni></mac-vrf>"""))
    cur = current({100: vni(100, 10100), 200: vni(200, 10200)}, {"swp1": [100, 200], "swp2": [200]})
    assert plan(cur, d) == [
        ("trunk", "swp1", (100,)), ("trunk", "swp2", ()),
        ("del-l2vni", 100, 10100), ("del-l2vni", 200, 10200),
        ("add-l2vni", 100, 20100, LOCAL, 4789), ("add-l2vni", 300, 10300, LOCAL, 4789),
        ("trunk", "swp1", (100, 300)),
    ]


def test_incomplete_plumbing_and_strays_are_repaired():
    d = parse_config(doc("<mac-vrf><name>a</name><vlan>100</vlan><vni>10100</vni></mac-vrf>"))
    cur = current({100: vni(100, 10100, complete=False), 7: {"vni": None, "complete": False}},
                  trunks={}, stray=["vx999"])
    assert plan(cur, d) == [
        ("del-l2vni", 7, None), ("del-l2vni", 100, 10100), ("del-dev", "vx999"),
        ("add-l2vni", 100, 10100, LOCAL, 4789),
    ]


def test_vtep_and_port_changes_rebuild():
    d = parse_config(doc("""<vtep><source-address>198.19.255.9</source-address><udp-port>4790</udp-port></vtep>
                            <mac-vrf><name>a</name><vlan>100</vlan><vni>10100</vni></mac-vrf>"""))
    steps = plan(current({100: vni(100, 10100)}, trunks={}), d)
    assert steps == [("del-l2vni", 100, 10100), ("add-l2vni", 100, 10100, "198.19.255.9", 4790)]


def test_vni_moving_between_vlans():
    d = parse_config(doc("<mac-vrf><name>a</name><vlan>200</vlan><vni>10100</vni></mac-vrf>"))
    steps = plan(current({100: vni(100, 10100)}, trunks={}), d)
    assert steps.index(("del-l2vni", 100, 10100)) < steps.index(("add-l2vni", 200, 10100, LOCAL, 4789))


def test_unknown_ports_are_not_planned_but_reported():
    d = parse_config(doc("""<interface><name>swp9</name><allowed-vlan>100</allowed-vlan></interface>
                            <mac-vrf><name>a</name><vlan>100</vlan><vni>10100</vni></mac-vrf>"""))
    cur = current({100: vni(100, 10100)}, {"swp1": []})
    assert plan(cur, d) == []
    assert {"interface": "swp9", "reason": "no such trunk port on this leaf's fabric bridge"} in la.unrealised(d, cur)


def test_unrealised_lists_ip_vrfs():
    notes = la.unrealised(parse_config(FULL), current())
    assert notes[0]["ip-vrf"] == "finance" and notes[0]["l3vni"] == 50001
    assert "no VRF on this kernel" in notes[0]["reason"]
    assert any("anycast-gateway-mac" in n for n in notes)


def test_all_vlans_trunk_is_narrowed():
    """An OVS trunk with empty `trunks` carries every VLAN; read_current reports 1..4094."""
    d = parse_config(doc("""<interface><name>swp1</name><allowed-vlan>100</allowed-vlan></interface>
                            <mac-vrf><name>a</name><vlan>100</vlan><vni>10100</vni></mac-vrf>"""))
    steps = plan(current({100: vni(100, 10100)}, {"swp1": list(range(1, 4095))}), d)
    assert steps == [("trunk", "swp1", (100,))]


def test_bgp_report():
    d = parse_config(FULL)
    assert la.bgp_report(d, {"asn": 65001, "neighbors": {"198.19.1.0": 65000}}) == \
        "matches the lab's FRR configuration"
    text = la.bgp_report(d, {"asn": 65009, "neighbors": {}})
    assert text.startswith("differs, not applied") and "asn 65001 (FRR runs 65009)" in text
    assert "absent" in text
    assert la.bgp_report(la.empty_desired(), {}).startswith("not configured")


def test_frr_vni_parsing():
    ex = la.Executor("ns", "unix:/x", "ps")
    ex.frr_running = lambda: """router bgp 65001
 address-family l2vpn evpn
  neighbor 198.19.1.0 activate
  vni 10101
   rd 198.19.255.1:101
   route-target import 65000:10101
   route-target export 65000:10101
  exit-vni
  vni 10102
   route-target both 65000:10102
  exit-vni
  advertise-all-vni
 exit-address-family
exit
"""
    assert ex.frr_vnis() == {
        10101: {"rd": "198.19.255.1:101", "import_rt": ["65000:10101"], "export_rt": ["65000:10101"]},
        10102: {"rd": None, "import_rt": ["65000:10102"], "export_rt": ["65000:10102"]}}
    assert ex.frr_bgp() == {"asn": 65001, "neighbors": {}}


class FakeExecutor(la.Executor):
    """No system access: FRR hides route targets equal to the auto-derived ones, like FRR 8.4."""

    def __init__(self):
        super().__init__("ns", "unix:/x", "ps")
        self.blocks: dict[int, str] = {}
        self.commands: list[tuple] = []

    def ip(self, *args, check=True):
        return "[]"

    def vsctl(self, *args, check=True):
        return "" if args[0] == "list-ports" else '{"data": []}'

    def vtysh(self, *commands):
        self.commands.append(commands)
        if commands == ("show running-config",):
            body = "".join(f"  vni {v}\n{b}  exit-vni\n" for v, b in self.blocks.items())
            return f"router bgp 65001\n address-family l2vpn evpn\n{body} exit-address-family\nexit\n"
        vni = int(commands[3].split()[-1])
        if commands[3].startswith("no "):
            self.blocks.pop(vni, None)
        else:   # only the RD is shown back; the RTs equal 65001:<vni> (auto) and are hidden
            self.blocks[vni] = "".join(f"   {c}\n" for c in commands[4:] if c.startswith("rd "))
        return ""


def test_frr_settings_converge_although_frr_hides_auto_route_targets():
    ex = FakeExecutor()
    d = parse_config(doc("""<mac-vrf><name>a</name><vlan>100</vlan><vni>10100</vni><rd>198.19.255.1:10100</rd>
        <import-rt>65001:10100</import-rt><export-rt>65001:10100</export-rt></mac-vrf>"""))
    cur = ex.read_current()
    cur["local"] = LOCAL
    steps = [s for s in plan(cur, d) if s[0].startswith("frr")]
    assert steps == [("frr-vni", 10100, "198.19.255.1:10100", ("65001:10100",), ("65001:10100",))]
    ex.execute(steps)
    assert [s for s in plan(ex.read_current(), d) if s[0].startswith("frr")] == []
    ex.blocks.clear()     # FRR restarted: the block is gone, so it is configured again
    assert [s[0] for s in plan(ex.read_current(), d) if s[0].startswith("frr")] == ["frr-vni"]
