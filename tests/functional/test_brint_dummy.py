"""br-int on real Open vSwitch (dummy datapath), driven by a real controller process over TCP.

Where packets go is asked of OVS itself (ofproto/trace); the flows are read back with ovs-ofctl.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.functional.brint import VPCS, Fabric, final_action
from vpcnet.flows import cookies, inputs

ROUTER_MAC_RE = re.compile(r"0e:76:70:ff:[0-9a-f]{2}:[0-9a-f]{2}")


@pytest.fixture
def fabric(tmp_path):
    fab = Fabric(tmp_path, dummy=True, audit_interval=1.0)
    try:
        yield fab
    finally:
        fab.stop()


def setup_cluster(fab: Fabric) -> dict:
    fab.apply(VPCS + [fab.node_doc("node-1", 1), fab.node_doc("node-2", 2)])
    fab.add_bridges()
    fab.add_uplinks()
    pods = {
        "a": fab.add_pod("trading", "a", "node-1", "10.10.0.11", 11),
        "b": fab.add_pod("trading", "b", "node-1", "10.10.0.12", 12),
        "c": fab.add_pod("trading", "c", "node-2", "10.10.0.13", 13),
        "p": fab.add_pod("payments", "p", "node-2", "10.20.0.21", 21),
        "x": fab.add_pod("shop", "x", "node-1", "10.30.0.31", 31),
    }
    fab.settle()
    return pods


def ip_packet(src: dict, dst_mac: str, dst_ip: str) -> str:
    return (f"in_port={src['ofport']},dl_src={src['mac']},dl_dst={dst_mac},"
            f"icmp,nw_src={src['ip']},nw_dst={dst_ip},nw_ttl=64,icmp_type=8,icmp_code=0")


def router_mac(fab: Fabric, node: str) -> str:
    for line in fab.flows(node):
        m = ROUTER_MAC_RE.search(line)
        if m and not m.group(0).endswith(":00:00"):
            return m.group(0)
    raise AssertionError("no router MAC in flows")


def test_unknown_datapath_drops_everything_until_its_node_is_applied(fabric):
    fabric.nodes["node-1"].add_bridge("br-int", 0x77, controller=f"tcp:127.0.0.1:{fabric.of_port}")
    flows = fabric.wait_flows("node-1", lambda f: len(f) == 1)
    assert flows == ["priority=0 actions=drop"], flows
    log = open(fabric.ctl.log.name).read()
    assert "0000000000000077 is not any Node's datapathId" in log
    fabric.apply(VPCS + [fabric.node_doc("node-1", 0x77)])
    fabric.nodes["node-1"].add_port("br-int", fabric.uplink["node-1"], ofport=100, type_="dummy")
    flows = fabric.wait_flows("node-1", lambda f: len(f) > 5)
    assert "priority=0 actions=drop" not in flows


def test_pods_switch_route_and_stay_isolated_per_vpc(fabric):
    pods = setup_cluster(fabric)
    a, b, c, p, x = (pods[k] for k in "abcpx")
    up = fabric.uplink["node-1"]
    where = fabric.where
    # same subnet, same node: straight to b's port
    assert where("node-1", ip_packet(a, b["mac"], b["ip"])) == b["port"]
    # same subnet, other node: out of the uplink with the subnet's VLAN tag
    out = where("node-1", ip_packet(a, c["mac"], c["ip"]))
    assert re.fullmatch(rf"push_vlan\(vid=\d+,pcp=0\),{up}", out), out
    vlan = int(re.search(r"vid=(\d+)", out).group(1))
    gw = router_mac(fabric, "node-1")
    # other subnet of the same VPC (payments-a, pod on node-2): routed, MAC rewritten, TTL down, tagged;
    # the source MAC is node-1's node router MAC (from its datapath id 1), never the VPC router MAC
    # that every node shares (the EVPN leaves would see it move between nodes)
    out = where("node-1", ip_packet(a, gw, p["ip"]))
    assert p["mac"] in out and "ttl=63" in out and out.endswith(f",{up}"), out
    node_mac = inputs.node_router_mac(1)
    assert node_mac == "02:00:00:00:00:01"
    # (read from the trace itself: ``where`` names ports, and would rename a MAC's "01" too)
    raw = final_action(fabric.trace("node-1", ip_packet(a, gw, p["ip"])))
    assert f"eth(src={node_mac},dst={p['mac']})" in raw and gw not in raw, raw
    # and node-2 routes back to a with its own MAC (datapath id 2)
    back = final_action(fabric.trace("node-2", ip_packet(p, gw, a["ip"])))
    assert f"eth(src={inputs.node_router_mac(2)},dst={a['mac']})" in back and "ttl=63" in back, back
    # the gateway still answers with the VPC router MAC
    arp_gw = (f"in_port={a['ofport']},dl_src={a['mac']},dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,"
              f"arp_spa={a['ip']},arp_tpa=10.10.0.1,arp_sha={a['mac']},arp_tha=00:00:00:00:00:00")
    out = final_action(fabric.trace("node-1", arp_gw))
    assert f"eth(src={gw},dst={a['mac']})" in out and "arp(" in out, out
    assert where("node-1", arp_gw).endswith(a["port"])
    # other VPC: no route, dropped (x's address is not even known to finance's router)
    assert where("node-1", ip_packet(a, gw, x["ip"])) == "drop"
    # and x cannot reach a by L2 either: a's MAC is unknown in shop-a, so the frame stays in shop-a's
    # own broadcast domain (its VLAN towards the fabric), never on a's port
    out = where("node-1", ip_packet(x, a["mac"], a["ip"]))
    assert a["port"] not in out and f"vid={vlan}," not in out, out
    # spoofing: a claims another address
    spoof = ip_packet(a, b["mac"], b["ip"]).replace(f"nw_src={a['ip']}", "nw_src=10.10.0.99")
    assert where("node-1", spoof) == "drop"
    # ARP for a known pod is answered on the node (back out of a's port), not flooded to the fabric
    arp = (f"in_port={a['ofport']},dl_src={a['mac']},dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,"
           f"arp_spa={a['ip']},arp_tpa={b['ip']},arp_sha={a['mac']},arp_tha=00:00:00:00:00:00")
    out = where("node-1", arp)
    assert out.endswith(a["port"]) and up not in out, out
    # traffic arriving from the fabric tagged with trading-a's VLAN reaches b
    inbound = (f"in_port=100,dl_vlan={vlan},dl_src={c['mac']},dl_dst={b['mac']},icmp,nw_src={c['ip']},"
               f"nw_dst={b['ip']},nw_ttl=64,icmp_type=8")
    assert where("node-1", inbound).endswith(b["port"])
    # ...but the same frame tagged with shop-a's VLAN (another VPC) never reaches b
    shop_vlan = fabric.api("GET", "/v1/objects/subnets/shop-a")["status"]["vlan"]
    assert shop_vlan != vlan
    assert b["port"] not in where("node-1", inbound.replace(f"dl_vlan={vlan}", f"dl_vlan={shop_vlan}"))


def test_pod_delete_removes_only_its_flows(fabric):
    pods = setup_cluster(fabric)
    b = pods["b"]
    before = fabric.flows("node-1")
    assert any(b["mac"] in f for f in before)
    status, payload = fabric.client.request("POST", "/v1/delete", {"refs": [{"kind": "Pod", "namespace": "trading",
                                                                          "name": "b"}]})
    assert status == 200, payload
    after = fabric.wait_flows("node-1", lambda f: not any(b["mac"] in line or b["port"] in line for line in f))
    changed = set(after) - set(before)   # only the subnet's flood list loses b's port
    assert len(changed) == 1 and "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00" in changed.pop()
    assert len(after) < len(before)
    a = pods["a"]   # b's MAC is now unknown: the frame goes to the fabric (BUM), not to b's old port
    assert b["port"] not in fabric.where("node-1", ip_packet(a, b["mac"], b["ip"]))


def test_audit_repairs_deleted_and_altered_flows(fabric):
    setup_cluster(fabric)
    ovs = fabric.nodes["node-1"]
    before = fabric.flows("node-1")
    victim = next(f for f in before if "table=51" in f and fabric.pods[("trading", "b")]["mac"] in f)
    match = victim.split(" actions=")[0].split("priority=")
    prio_and_match = "priority=" + match[1]
    table = re.search(r"table=(\d+)", victim).group(1)
    ovs.ofctl("--strict", "del-flows", "br-int", f"table={table},{prio_and_match}")
    ovs.ofctl("add-flow", "br-int", "table=40,priority=5,ip,nw_dst=10.99.0.1,actions=drop")
    altered = next(f for f in before if "table=10" in f and fabric.pods[("trading", "a")]["mac"] in f)
    ovs.ofctl("--strict", "mod-flows", "br-int",
              "table=10," + "priority=" + altered.split(" actions=")[0].split("priority=")[1] + ",actions=drop")
    after = fabric.wait_flows("node-1", lambda f: sorted(f) == sorted(before), timeout=20)
    assert sorted(after) == sorted(before)
    deadline = time.monotonic() + 10
    while fabric.metric("vpcnet_drift_repaired_total") < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fabric.metric("vpcnet_drift_repaired_total", kind="missing") >= 1
    assert fabric.metric("vpcnet_drift_repaired_total", kind="extra") >= 1
    assert fabric.metric("vpcnet_drift_repaired_total", kind="altered") >= 1


def test_restart_installs_a_new_round_and_leaves_no_old_flows(fabric):
    setup_cluster(fabric)
    strip = lambda flows: sorted(re.sub(r"cookie=0x[0-9a-f]+, ?", "", f) for f in flows)  # noqa: E731
    before = fabric.flows("node-1")
    round_before = fabric.nodes["node-1"].vsctl("get", "Bridge", "br-int", "external_ids:vpcnet-round").strip()
    fabric.restart_controller(kill=True)
    key = 'external_ids:vpcnet-round'
    deadline = time.monotonic() + 30
    while fabric.nodes["node-1"].vsctl("get", "Bridge", "br-int", key).strip() == round_before:
        assert time.monotonic() < deadline, "round never advanced"
        time.sleep(0.1)
    round_after = int(fabric.nodes["node-1"].vsctl("get", "Bridge", "br-int", key).strip().strip('"'))
    assert round_after == int(round_before.strip('"')) + 1
    after = fabric.flows("node-1")
    assert strip(after) == strip(before)
    cookies = {int(m, 16) >> 48 for m in re.findall(r"cookie=(0x[0-9a-f]+)", " ".join(after))}
    assert cookies == {round_after}, cookies


def test_flows_cli_compiled_equals_installed(fabric):
    pods = setup_cluster(fabric)

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "vpcnet.app.cli", "--state-dir", str(fabric.state), "flows", *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    compiled = cli("node-1")
    installed = cli("node-1", "--installed")
    strip = lambda lines: [re.sub(r"cookie=0x[0-9a-f]+, ?", "", x) for x in lines]  # noqa: E731
    assert strip(compiled) == strip(installed)
    assert len(compiled) == len(fabric.flows("node-1"))
    l2 = cli("node-1", "--table", "l2_fwd")
    assert l2 and all("table=l2_fwd" in line for line in l2)
    mine = cli("node-1", "--owner", "pod/trading/b")
    assert mine and all(pods["b"]["mac"] in line or pods["b"]["ip"] in line or str(pods["b"]["ofport"]) in line
                        for line in mine), mine
    r = subprocess.run([sys.executable, "-m", "vpcnet.app.cli", "--state-dir", str(fabric.state), "flows", "node-1",
                        "--table", "nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "table: 'nope' is not a br-int table" in r.stderr


def test_a_cookie_mask_dumps_one_feature_and_one_owner_from_the_bridge(fabric):
    """The cookie layout at work on a real bridge: ``ovs-ofctl dump-flows cookie=C/M`` shows one
    feature's flows (all the pods'), or one owner's, exactly as many as the compiler made."""
    setup_cluster(fabric)
    ovs = fabric.nodes["node-1"]

    def dump(c: int, m: int) -> list[str]:
        out = ovs.ofctl("dump-flows", "br-int", f"cookie={c:#x}/{m:#x}")
        return [line for line in out.splitlines() if "cookie=" in line]
    compiled = fabric.api("GET", "/v1/flows/node-1")["flows"]
    pod_feature = dump(cookies.cookie(0, cookies.Feature.POD, "pod/trading/b"), cookies.mask_feature())
    assert pod_feature and all(cookies.feature_of(int(re.search(r"cookie=(0x[0-9a-f]+)", f).group(1), 16))
                               == cookies.Feature.POD for f in pod_feature)
    assert len(pod_feature) == sum(1 for f in compiled if "cookie=" in f and cookies.feature_of(
        int(re.search(r"cookie=(0x[0-9a-f]+)", f).group(1), 16)) == cookies.Feature.POD)
    owner = "pod/trading/b"
    one = dump(cookies.cookie(0, cookies.Feature.POD, owner), cookies.mask_feature() | cookies.mask_owner())
    want = fabric.api("GET", f"/v1/flows/node-1?owner={owner}")["flows"]
    assert one and len(one) == len(want) < len(pod_feature)


# --- the gateway answers ping (IPv6: and neighbour solicitations) ----------------------------
OPS = [  # a third VPC, dual stack, for the IPv6 gateway
    {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "ops"}, "spec": {"namespaces": ["ops"]}},
    {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "ops-a"},
     "spec": {"vpc": "ops", "cidrBlock": "10.40.0.0/24,fd00:40::/64", "namespaces": ["ops"]}},
]


def vpc_router_mac(fab: Fabric, vpc: str) -> str:
    return inputs.router_mac(fab.api("GET", f"/v1/objects/vpcs/{vpc}")["status"]["id"])


def datapath_actions(fab: Fabric, node: str, flow: str) -> str:
    """What the datapath does with ``flow`` (conntrack recirculation skipped), output ports by name."""
    out = re.sub(r"ct\([^)]*\),recirc\(0x[0-9a-f]+\)", "", final_action(fab.trace(node, flow))) or "drop"
    names = fab.odp_ports(node)
    return re.sub(r"(?:(?<=,)|^)(\d+)$", lambda m: names[int(m.group(1))], out)


def test_gateway_answers_ping_from_its_own_subnet_only(fabric):
    pods = setup_cluster(fabric)
    a, b, x = pods["a"], pods["b"], pods["x"]
    fin, ret = vpc_router_mac(fabric, "finance"), vpc_router_mac(fabric, "retail")
    act = lambda src, mac, ip: datapath_actions(fabric, "node-1", ip_packet(src, mac, ip))  # noqa: E731
    # the echo reply, from the router, straight back to the pod that asked (and nowhere else)
    for pod, router, gw in ((a, fin, "10.10.0.1"), (b, fin, "10.10.0.1"), (x, ret, "10.30.0.1")):
        assert act(pod, router, gw) == (f"set(eth(src={router},dst={pod['mac']})),"
                                        f"set(ipv4(src={gw},dst={pod['ip']})),set(icmp(type=0,code=0)),{pod['port']}")
    # another subnet's gateway is routed like any address there (nobody has it: dropped), another
    # VPC's gateway has no route, and the other router's MAC is not a's router
    for router, gw in ((fin, "10.20.0.1"), (fin, "10.30.0.1"), (ret, "10.30.0.1"), (ret, "10.10.0.1")):
        assert act(a, router, gw) == "drop", (router, gw)
    # from the fabric: each node answers its own pods only
    c = pods["c"]
    vlan = fabric.api("GET", "/v1/objects/subnets/trading-a")["status"]["vlan"]
    inbound = ip_packet(c, fin, "10.10.0.1").replace(f"in_port={c['ofport']}", f"in_port=100,dl_vlan={vlan}")
    assert datapath_actions(fabric, "node-1", inbound) == "drop"


def test_gateway_answers_ipv6_neighbour_solicitation_and_ping(fabric):
    setup_cluster(fabric)
    fabric.apply(OPS)
    z = fabric.add_pod("ops", "z", "node-1", "10.40.0.41", 41)
    fabric.settle()
    status = fabric.api("GET", "/v1/objects/pods/z?namespace=ops")["status"]
    ip6 = next(i for i in status["ips"] if ":" in i)
    gw6 = next(g for g in status["gateway"].split(",") if ":" in g)
    rmac = vpc_router_mac(fabric, "ops")
    pod = f"in_port={z['ofport']},dl_src={z['mac']}"
    solicit = (f"{pod},dl_dst=33:33:ff:00:00:01,icmp6,ipv6_src={ip6},ipv6_dst=ff02::1:ff00:1,nw_ttl=255,"
               f"icmpv6_type=135,icmpv6_code=0,nd_target={gw6}")
    # the advertisement: flags R|S|O, the source option retyped to a target option first, then
    # given the router MAC (the order model.nd_solicit_to_advert relies on), type 136, to the pod
    assert datapath_actions(fabric, "node-1", f"{solicit},nd_sll={z['mac']}") == (
        f"set(eth(src={rmac},dst={z['mac']})),set(ipv6(src={gw6},dst={ip6})),"
        f"set(nd_ext(nd_reserved=0xe0000000,nd_options_type=2)),set(nd(tll={rmac})),set(icmpv6(type=136,code=0)),"
        f"{z['port']}")
    # no source link-layer option (e.g. DAD from ::): no option to answer with, not answered
    assert datapath_actions(fabric, "node-1", solicit) == "drop"
    echo = (f"{pod},dl_dst={rmac},icmp6,ipv6_src={ip6},ipv6_dst={gw6},nw_ttl=64,icmpv6_type=128,icmpv6_code=0")
    assert datapath_actions(fabric, "node-1", echo) == (
        f"set(eth(src={rmac},dst={z['mac']})),set(ipv6(src={gw6},dst={ip6})),set(icmpv6(type=129,code=0)),"
        f"{z['port']}")
    # a finance pod cannot reach ops' gateway, even with ops' router MAC
    a = fabric.pods[("trading", "a")]
    assert datapath_actions(fabric, "node-1", ip_packet(a, rmac, "10.40.0.1")) == "drop"
