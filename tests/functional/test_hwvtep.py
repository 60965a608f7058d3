"""VtepDriver against a real ovsdb-server serving hardware_vtep 1.7.0 (sim.vtep.PrivateVtep).

What the switch sees is read back with vtep-ctl and ovsdb-client against the private database;
"one transaction" is counted in the database's own log (``ovsdb-tool show-log``: one record per
committed transaction), and "nothing changed" compares full ``ovsdb-client dump`` outputs.
The last test runs the ovs-vtep emulator on a netdev bridge in a network namespace.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from vpcnet.fabric import FabricIn
from vpcnet.fabric.vtep import compile_vtep
from vpcnet.ovsdb.hwvtep import LocalMac, VtepDriver, VtepError
from vpcnet.sim.vtep import PrivateVtep

VPCS = [{"name": "finance", "vni": 50001}]
WEB = {"name": "web", "vpc": "finance", "vlan": 100, "vni": 10100, "cidrBlock": "10.0.0.0/24"}
DB = {"name": "db", "vpc": "finance", "vlan": 101, "vni": 10101, "cidrBlock": "10.1.0.0/24"}
CACHE = {"name": "cache", "vpc": "finance", "vlan": 102, "vni": 10102, "cidrBlock": "10.2.0.0/24"}
LEAVES = [
    {"name": "vtep-1", "driver": "vtep", "vtepIp": "10.99.0.1", "asn": 65101},
    {"name": "leaf-2", "driver": "netconf", "vtepIp": "10.99.0.2", "asn": 65002},
    {"name": "leaf-3", "driver": "netconf", "vtepIp": "10.99.0.3", "asn": 65003},
]
NODES = [
    {"name": "n1", "leaf": "vtep-1", "leafPort": "p1"},
    {"name": "n2", "leaf": "leaf-2", "leafPort": "swp1"},
    {"name": "n3", "leaf": "leaf-3", "leafPort": "swp1"},
]
A, B, C, D, E = (f"02:00:00:00:00:0{x}" for x in "abcde")
PODS = [
    (A, "10.0.0.10", "n1", "web"),     # behind the VTEP itself: learnt locally, no remote row
    (B, "10.0.0.11", "n2", "web"),
    (C, "10.0.0.12", "n3", "web"),
    (D, "10.1.0.13", "n2", "db"),
    (E, "10.1.0.14", "n3", "db"),
]


def desired(subnets=(WEB, DB), nodes=NODES, pods=PODS, **kwargs):
    fabric = FabricIn.from_dicts(vpcs=VPCS, subnets=list(subnets), nodes=nodes, leaves=LEAVES)
    names = {s["name"] for s in subnets}
    return compile_vtep(fabric, [p for p in pods if p[3] in names], **kwargs)["vtep-1"]


@pytest.fixture
def vtep(tmp_path):
    sim = PrivateVtep(tmp_path / "vtep", physical_switch="vtep-1", ports=("p1", "p2"),
                      tunnel_ip="10.99.0.1").start()
    yield sim
    sim.stop()


@pytest.fixture
def driver(vtep):
    drv = VtepDriver(vtep.remote, name="vtep-1")
    yield drv
    drv.close()


def dump(vtep) -> dict:
    """The whole database, rows sorted: equal dumps = nothing changed (UUIDs included)."""
    out = subprocess.run(["ovsdb-client", "dump", "--format=json", vtep.remote, "hardware_vtep"],
                         capture_output=True, text=True, check=True).stdout
    tables = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {t["caption"]: sorted(json.dumps(r) for r in t["data"]) for t in tables}


def log_records(vtep) -> list[str]:
    """One line per committed transaction in the database file."""
    out = subprocess.run(["ovsdb-tool", "show-log", str(vtep.db_file)], capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("record ")]


def remote_macs(vtep, ls: str) -> dict[str, set[str]]:
    """vtep-ctl list-remote-macs, parsed: {"ucast-mac-remote": {"mac -> locator"}, ...}."""
    out, section = {}, None
    for line in vtep.vtep_ctl("list-remote-macs", ls).splitlines():
        if line and not line.startswith(" "):
            section = line.strip()
            out[section] = set()
        elif line.strip():
            out[section].add(line.strip())
    return out


def get(vtep, table, record, column) -> str:
    return vtep.vtep_ctl("get", table, record, column).strip()


def settle(vtep, driver) -> None:
    """Wait until the driver's IDL has seen every change made so far by others (vtep-ctl).

    ovsdb-server sends a monitor its updates in commit order: once a probe written last is
    visible, everything before it is."""
    token = uuid.uuid4().hex
    vtep.vtep_ctl("set", "Global", ".", f"other_config:vpcnet-test-probe={token}")
    vtep.wait(lambda: driver.api.db_get("Global", "global", "other_config").execute(
        check_error=True).get("vpcnet-test-probe") == token, 10, "the driver to see the probe")


def add_foreign(vtep, driver) -> None:
    """Objects vpcnet does not own: another controller's switch, binding and remote MAC, and a
    hand-made switch with vpcnet's prefix but without its tag."""
    v = vtep.vtep_ctl
    v("add-ls", "foreign-ls", "--", "set", "Logical_Switch", "foreign-ls", "tunnel_key=5000",
      "description=ops")
    v("bind-ls", "vtep-1", "p2", "200", "foreign-ls")
    v("add-ucast-remote", "foreign-ls", "00:11:22:33:44:55", "10.50.0.1")
    v("add-ls", "vpcnet-ls-handmade")
    v("bind-ls", "vtep-1", "p2", "201", "vpcnet-ls-handmade")
    settle(vtep, driver)


def assert_foreign_intact(vtep) -> None:
    assert {"foreign-ls", "vpcnet-ls-handmade"} <= set(vtep.vtep_ctl("list-ls").split())
    assert vtep.vtep_ctl("list-bindings", "vtep-1", "p2").split() == \
        ["0200", "foreign-ls", "0201", "vpcnet-ls-handmade"]
    assert remote_macs(vtep, "foreign-ls")["ucast-mac-remote"] == \
        {"00:11:22:33:44:55 -> vxlan_over_ipv4/10.50.0.1"}
    assert get(vtep, "Logical_Switch", "foreign-ls", "tunnel_key") == "5000"


def test_sync_creates_everything_in_one_transaction(vtep, driver):
    add_foreign(vtep, driver)
    want = desired()
    records = log_records(vtep)
    changes = driver.sync(want)
    new = log_records(vtep)[len(records):]
    assert len(new) == 1 and "vpcnet: sync of vtep vtep-1: 10 changes" in new[0], new
    assert [str(c) for c in changes] == [
        "+ Logical_Switch vpcnet-ls-db: tunnel_key=10101 replication_mode=source_node "
        "description='vpcnet: subnet db (vpc finance)'",
        "+ Logical_Switch vpcnet-ls-web: tunnel_key=10100 replication_mode=source_node "
        "description='vpcnet: subnet web (vpc finance)'",
        "+ Physical_Port vtep-1/p1: vlan_bindings 100 -> vpcnet-ls-web",
        "+ Physical_Port vtep-1/p1: vlan_bindings 101 -> vpcnet-ls-db",
        f"+ Ucast_Macs_Remote vpcnet-ls-db {D}: vxlan_over_ipv4/10.99.0.2 ipaddr=10.1.0.13",
        f"+ Ucast_Macs_Remote vpcnet-ls-db {E}: vxlan_over_ipv4/10.99.0.3 ipaddr=10.1.0.14",
        f"+ Ucast_Macs_Remote vpcnet-ls-web {B}: vxlan_over_ipv4/10.99.0.2 ipaddr=10.0.0.11",
        f"+ Ucast_Macs_Remote vpcnet-ls-web {C}: vxlan_over_ipv4/10.99.0.3 ipaddr=10.0.0.12",
        "+ Mcast_Macs_Remote vpcnet-ls-db unknown-dst: "
        "[vxlan_over_ipv4/10.99.0.2, vxlan_over_ipv4/10.99.0.3]",
        "+ Mcast_Macs_Remote vpcnet-ls-web unknown-dst: "
        "[vxlan_over_ipv4/10.99.0.2, vxlan_over_ipv4/10.99.0.3]",
    ]
    # what the switch sees
    assert vtep.vtep_ctl("list-ls").split() == ["foreign-ls", "vpcnet-ls-db", "vpcnet-ls-handmade",
                                                "vpcnet-ls-web"]
    assert vtep.vtep_ctl("list-bindings", "vtep-1", "p1").split() == \
        ["0100", "vpcnet-ls-web", "0101", "vpcnet-ls-db"]
    assert get(vtep, "Logical_Switch", "vpcnet-ls-web", "tunnel_key") == "10100"
    assert get(vtep, "Logical_Switch", "vpcnet-ls-web", "replication_mode") == "source_node"
    assert get(vtep, "Logical_Switch", "vpcnet-ls-db", "description") == \
        '"vpcnet: subnet db (vpc finance)"'
    assert remote_macs(vtep, "vpcnet-ls-web") == {
        "ucast-mac-remote": {f"{B} -> vxlan_over_ipv4/10.99.0.2",
                             f"{C} -> vxlan_over_ipv4/10.99.0.3"},
        "mcast-mac-remote": {"unknown-dst -> vxlan_over_ipv4/10.99.0.2",
                             "unknown-dst -> vxlan_over_ipv4/10.99.0.3"},
    }
    assert vtep.vtep_ctl("--bare", "--columns=ipaddr", "find", "Ucast_Macs_Remote",
                         f'MAC="{B}"').strip() == "10.0.0.11"
    # one locator per remote VTEP, shared by every row that points there; one shared BUM set
    locators = vtep.vtep_ctl("--bare", "--columns=dst_ip", "list", "Physical_Locator").split()
    assert sorted(locators) == ["10.50.0.1", "10.99.0.2", "10.99.0.3"]
    assert len(vtep.vtep_ctl("--bare", "--columns=_uuid", "list",
                             "Physical_Locator_Set").split()) == 1
    assert driver.read() == want
    assert_foreign_intact(vtep)


def test_second_sync_is_a_noop(vtep, driver):
    want = desired()
    assert driver.sync(want)
    before, records = dump(vtep), log_records(vtep)
    assert driver.plan(want) == [] and driver.sync(want) == []
    with VtepDriver(vtep.remote, name="vtep-1") as fresh:     # a restarted controller agrees
        assert fresh.plan(want) == [] and fresh.read() == want
    assert dump(vtep) == before and log_records(vtep) == records


def test_removing_a_subnet_removes_only_its_objects(vtep, driver):
    add_foreign(vtep, driver)
    driver.sync(desired())
    web_uuid = get(vtep, "Logical_Switch", "vpcnet-ls-web", "_uuid")
    web_rows = sorted(vtep.vtep_ctl("--bare", "--columns=_uuid", "find", "Ucast_Macs_Remote",
                                    f"logical_switch={web_uuid}").split())
    changes = [str(c) for c in driver.sync(desired(subnets=(WEB,)))]
    assert changes == ["- Physical_Port vtep-1/p1: vlan_bindings 101 -> vpcnet-ls-db",
                       "- Logical_Switch vpcnet-ls-db: with its 3 remote and 0 local MAC rows"]
    assert "vpcnet-ls-db" not in vtep.vtep_ctl("list-ls").split()
    assert vtep.vtep_ctl("list-bindings", "vtep-1", "p1").split() == ["0100", "vpcnet-ls-web"]
    assert get(vtep, "Logical_Switch", "vpcnet-ls-web", "_uuid") == web_uuid    # untouched
    assert sorted(vtep.vtep_ctl("--bare", "--columns=_uuid", "find", "Ucast_Macs_Remote",
                                f"logical_switch={web_uuid}").split()) == web_rows   # (find: any order)
    assert_foreign_intact(vtep)
    # no subnets at all: every vpcnet object goes, unreferenced locators are collected
    driver.sync(desired(subnets=()))
    assert vtep.vtep_ctl("list-ls").split() == ["foreign-ls", "vpcnet-ls-handmade"]
    assert vtep.vtep_ctl("list-bindings", "vtep-1", "p1").strip() == ""
    assert vtep.vtep_ctl("--bare", "--columns=dst_ip", "list", "Physical_Locator").split() == \
        ["10.50.0.1"]
    assert vtep.vtep_ctl("--bare", "--columns=_uuid", "list", "Physical_Locator_Set").strip() == ""
    assert_foreign_intact(vtep)
    assert driver.read() == desired(subnets=())


def test_failed_sync_midway_leaves_the_database_exactly_as_before(vtep, driver):
    add_foreign(vtep, driver)
    driver.sync(desired())
    before, records = dump(vtep), log_records(vtep)
    # a new subnet (Logical_Switch, MACs: applied first) + a node on a port the switch lacks
    bad = desired(subnets=(WEB, DB, CACHE), nodes=NODES + [
        {"name": "n4", "leaf": "vtep-1", "leafPort": "p9"}],
        pods=PODS + [("02:00:00:00:00:1f", "10.2.0.5", "n2", "cache")])
    plan = [str(c) for c in driver.plan(bad)]
    assert plan.index("+ Physical_Port vtep-1/p9: vlan_bindings 100 -> vpcnet-ls-web") > \
        plan.index("+ Logical_Switch vpcnet-ls-cache: tunnel_key=10102 replication_mode="
                   "source_node description='vpcnet: subnet cache (vpc finance)'")
    with pytest.raises(VtepError) as err:
        driver.sync(bad)
    msg = str(err.value)
    assert msg.startswith("vtep vtep-1: + Physical_Port vtep-1/p9: vlan_bindings ")
    assert "Cannot find Physical_Port with name=p9" in msg and "nothing was changed" in msg
    assert dump(vtep) == before and log_records(vtep) == records
    assert driver.read() == desired()          # the driver's own cache was rolled back too
    assert "vpcnet-ls-cache" not in vtep.vtep_ctl("list-ls").split()


def test_transaction_rejected_by_the_server_changes_nothing(vtep, driver):
    driver.sync(desired())
    ls = get(vtep, "Logical_Switch", "vpcnet-ls-db", "_uuid")
    # someone else's Logical_Router points at vpcnet's switch: the server refuses the delete
    vtep.vtep_ctl("create", "Logical_Router", "name=lr0", f'switch_binding={{"10.1.0.0/24"={ls}}}')
    settle(vtep, driver)
    before, records = dump(vtep), log_records(vtep)
    with pytest.raises(VtepError) as err:
        driver.sync(desired(subnets=(WEB,)))
    msg = str(err.value)
    assert msg.startswith("vtep vtep-1: the server rejected the transaction of 2 changes, "
                          "nothing was changed") and "referential integrity violation" in msg
    assert dump(vtep) == before and log_records(vtep) == records
    assert driver.read() == desired()


@pytest.mark.parametrize("setup, message", [
    (["add-ls", "vpcnet-ls-web"],
     "vtep vtep-1: Logical_Switch vpcnet-ls-web exists but is not vpcnet's (description=''); "
     "refusing to take it over"),
    (["add-ls", "other", "--", "set", "Logical_Switch", "other", "tunnel_key=10101"],
     "vtep vtep-1: Logical_Switch vpcnet-ls-db: tunnel_key=10101 is already used by "
     "Logical_Switch other (not vpcnet's)"),
    (["add-ls", "other", "--", "bind-ls", "vtep-1", "p1", "100", "other"],
     "vtep vtep-1: Physical_Port vtep-1/p1: vlan_bindings 100 -> other is not vpcnet's; "
     "refusing to rebind it to vpcnet-ls-web"),
])
def test_conflicts_with_foreign_objects_are_refused_before_writing(vtep, driver, setup, message):
    vtep.vtep_ctl(*setup)
    settle(vtep, driver)
    before = dump(vtep)
    for call in (driver.plan, driver.sync):
        with pytest.raises(VtepError) as err:
            call(desired())
        assert str(err.value) == message
    assert dump(vtep) == before


def test_drift_is_repaired(vtep, driver):
    want = desired()
    driver.sync(want)
    v = vtep.vtep_ctl
    web = get(vtep, "Logical_Switch", "vpcnet-ls-web", "_uuid")
    loc = v("--bare", "--columns=locator", "find", "Ucast_Macs_Remote", f'MAC="{B}"').strip()
    v("set", "Logical_Switch", "vpcnet-ls-web", "tunnel_key=999")
    v("unbind-ls", "vtep-1", "p1", "101")
    v("del-ucast-remote", "vpcnet-ls-db", D)
    v("add-ucast-remote", "vpcnet-ls-web", "02:00:00:00:00:ee", "10.7.7.7")   # stray
    v("create", "Ucast_Macs_Remote", f'MAC="{B}"', f"logical_switch={web}", f"locator={loc}")
    settle(vtep, driver)
    plan = [str(c) for c in driver.plan(want)]
    assert plan == [
        "~ Logical_Switch vpcnet-ls-web: tunnel_key 999 -> 10100",
        "+ Physical_Port vtep-1/p1: vlan_bindings 101 -> vpcnet-ls-db",
        "- Ucast_Macs_Remote vpcnet-ls-web 02:00:00:00:00:ee: vxlan_over_ipv4/10.7.7.7",
        f"+ Ucast_Macs_Remote vpcnet-ls-db {D}: vxlan_over_ipv4/10.99.0.2 ipaddr=10.1.0.13",
        f"~ Ucast_Macs_Remote vpcnet-ls-web {B}: vxlan_over_ipv4/10.99.0.2 ipaddr=10.0.0.11 "
        "(replacing 2 duplicate rows)",
    ]
    records = log_records(vtep)
    assert [str(c) for c in driver.sync(want)] == plan
    assert len(log_records(vtep)) == len(records) + 1
    assert driver.read() == want and driver.plan(want) == []
    assert "10.7.7.7" not in v("--bare", "--columns=dst_ip", "list", "Physical_Locator").split()


def test_pod_move_and_new_leaf_update_rows_in_place(vtep, driver):
    driver.sync(desired())
    row = vtep.vtep_ctl("--bare", "--columns=_uuid", "find", "Ucast_Macs_Remote",
                        f'MAC="{B}"').strip()
    moved = [(m, ip, "n3" if m == B else n, s) for m, ip, n, s in PODS]
    leaves = LEAVES + [{"name": "leaf-4", "driver": "netconf", "vtepIp": "10.99.0.4", "asn": 65004}]
    nodes = NODES + [{"name": "n5", "leaf": "leaf-4", "leafPort": "swp1"}]
    fabric = FabricIn.from_dicts(vpcs=VPCS, subnets=[WEB, DB], nodes=nodes, leaves=leaves)
    want = compile_vtep(fabric, moved)["vtep-1"]
    changes = [str(c) for c in driver.sync(want)]
    assert f"~ Ucast_Macs_Remote vpcnet-ls-web {B}: vxlan_over_ipv4/10.99.0.3 ipaddr=10.0.0.11 " \
           "(was vxlan_over_ipv4/10.99.0.2 ipaddr=10.0.0.11)" in changes
    assert "~ Mcast_Macs_Remote vpcnet-ls-web unknown-dst: [vxlan_over_ipv4/10.99.0.2, " \
           "vxlan_over_ipv4/10.99.0.3, vxlan_over_ipv4/10.99.0.4] (was [vxlan_over_ipv4/" \
           "10.99.0.2, vxlan_over_ipv4/10.99.0.3])" in changes
    assert vtep.vtep_ctl("--bare", "--columns=_uuid", "find", "Ucast_Macs_Remote",
                         f'MAC="{B}"').strip() == row
    assert f"{B} -> vxlan_over_ipv4/10.99.0.3" in \
        remote_macs(vtep, "vpcnet-ls-web")["ucast-mac-remote"]
    assert "unknown-dst -> vxlan_over_ipv4/10.99.0.4" in \
        remote_macs(vtep, "vpcnet-ls-web")["mcast-mac-remote"]
    assert driver.read() == want


def test_local_macs_are_read_back_and_go_with_their_switch(vtep, driver):
    add_foreign(vtep, driver)
    driver.sync(desired())
    v = vtep.vtep_ctl
    v("add-ucast-local", "vpcnet-ls-web", "02:AA:00:00:00:01", "10.99.0.1")   # the switch learnt it
    v("set", "Ucast_Macs_Local", v("--bare", "--columns=_uuid", "find", "Ucast_Macs_Local",
                                   'MAC="02:AA:00:00:00:01"').strip(), "ipaddr=10.0.0.77")
    v("add-ucast-local", "foreign-ls", "02:bb:00:00:00:01", "10.99.0.1")
    v("add-mcast-local", "vpcnet-ls-db", "unknown-dst", "10.99.0.1")
    settle(vtep, driver)
    assert driver.local_macs() == (
        LocalMac("vpcnet-ls-web", 10100, "02:aa:00:00:00:01", "10.0.0.77", "10.99.0.1"),)
    assert [m.logical_switch for m in driver.local_macs(all_switches=True)] == \
        ["foreign-ls", "vpcnet-ls-web"]
    # the switch's local rows reference vpcnet's switches: deleting one must take them along
    changes = [str(c) for c in driver.sync(desired(subnets=()))]
    assert "- Logical_Switch vpcnet-ls-web: with its 3 remote and 1 local MAC rows" in changes
    assert "- Logical_Switch vpcnet-ls-db: with its 3 remote and 1 local MAC rows" in changes
    assert driver.local_macs() == ()
    assert [m.mac for m in driver.local_macs(all_switches=True)] == ["02:bb:00:00:00:01"]
    assert_foreign_intact(vtep)


def test_errors_name_the_vtep_and_the_row(vtep, driver):
    want = desired(physical_switches={"vtep-1": "tor-9"})
    before = dump(vtep)
    with pytest.raises(VtepError) as err:
        driver.sync(want)
    assert str(err.value).startswith("vtep vtep-1: + Physical_Port tor-9/p1: vlan_bindings 100 -> "
                                     "vpcnet-ls-web: Cannot find Physical_Switch with name=tor-9")
    assert dump(vtep) == before
    with pytest.raises(VtepError, match=r"vtep tor-9: cannot open the hardware_vtep database at "
                                        r"unix:.*/nowhere.sock"):
        VtepDriver(f"unix:{vtep.run_dir}/nowhere.sock", name="tor-9")


def test_scale_50_switches_by_200_remote_macs(vtep, driver):
    subnets = [{"name": f"s{i}", "vpc": "finance", "vlan": 100 + i, "vni": 10100 + i,
                "cidrBlock": f"10.{i}.0.0/16"} for i in range(50)]
    leaves = [LEAVES[0]] + [{"name": f"l{j}", "driver": "netconf", "vtepIp": f"10.99.1.{j + 1}",
                             "asn": 65200 + j} for j in range(10)]
    nodes = [NODES[0]] + [{"name": f"m{j}", "leaf": f"l{j}", "leafPort": "swp1"} for j in range(10)]
    pods = [(f"02:00:00:{i:02x}:{k >> 8:02x}:{k & 255:02x}", f"10.{i}.{k >> 8}.{(k & 255) + 1}",
             f"m{k % 10}", f"s{i}") for i in range(50) for k in range(200)]
    fabric = FabricIn.from_dicts(vpcs=VPCS, subnets=subnets, nodes=nodes, leaves=leaves)
    want = compile_vtep(fabric, pods)["vtep-1"]
    assert len(want.remote_macs) == 10000
    records = log_records(vtep)
    t0 = time.monotonic()
    changes = driver.sync(want)
    took = time.monotonic() - t0
    assert len(changes) == 50 + 50 + 10000 + 50 and len(log_records(vtep)) == len(records) + 1
    t0 = time.monotonic()
    assert driver.plan(want) == []
    noop = time.monotonic() - t0
    assert vtep.vtep_ctl("--bare", "--columns=_uuid", "list", "Ucast_Macs_Remote").count("-") \
        == 10000 * 4
    t0 = time.monotonic()
    driver.sync(compile_vtep(FabricIn.from_dicts(vpcs=VPCS, subnets=[], nodes=nodes,
                                                 leaves=leaves), ())["vtep-1"])
    removal = time.monotonic() - t0
    print(f"\nscale: sync 50 LS x 200 remote MACs: {took:.2f}s; no-op plan {noop:.2f}s; "
          f"remove all: {removal:.2f}s")
    assert took < 120 and removal < 120       # generous: a loaded 2-core CI machine


# --- the ovs-vtep emulator: a netdev OVS bridge in a network namespace realises the config ---

def running(pid: int) -> bool:
    """Alive and not a zombie (daemons' parent is init, which may reap them late)."""
    try:
        os.kill(pid, 0)
        return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def tagged_frame(src: str, vlan: int) -> bytes:
    """A broadcast 802.1Q frame from ``src`` (raw socket: no 8021q module needed)."""
    return (bytes.fromhex("ffffffffffff") + bytes.fromhex(src.replace(":", "")) +
            bytes.fromhex("8100") + vlan.to_bytes(2, "big") + bytes.fromhex("0806") + bytes(46))


def test_ovs_vtep_emulator_realises_the_config(tmp_path):
    emu = PrivateVtep(tmp_path / "emu", emulator=True, physical_switch="vtep-1", ports=("p1",),
                      tunnel_ip="10.99.0.1")
    emu.start()
    pids, netns = {**emu.pids, **{f"ovs {k}": v for k, v in emu.ovs.pids.items()}}, emu.netns
    assert len(pids) == 4 and netns
    try:
        with VtepDriver(emu.remote, name="vtep-1") as drv:
            drv.sync(desired())
            bridges = emu.wait(lambda: (lambda b: b if len(b) == 2 else None)(emu.ls_bridges()),
                               30, "ovs-vtep to create a bridge per Logical_Switch")
            web = bridges["vpcnet-ls-web"]
            # the physical bridge maps VLAN 100/101 on p1 to the switches' patch ports
            emu.wait(lambda: all(f"in_port=1,dl_vlan={vlan} actions=strip_vlan" in
                                 "\n".join(emu.dump_flows("vtep-1")) for vlan in (100, 101)),
                     30, "the VLAN 100/101 flows on the physical bridge")

            def tunnels():
                out = {}
                for port in emu.ovs_vsctl("list-ports", web).split():
                    if emu.ovs_vsctl("get", "Interface", port, "type").strip() == "vxlan":
                        opts = emu.ovs_vsctl("get", "Interface", port, "options").strip()
                        out[port] = opts
                return out if len(out) == 2 else None
            tun = emu.wait(tunnels, 30, "the VXLAN tunnels of vpcnet-ls-web")
            assert sorted(tun.values()) == [
                '{key="10100", remote_ip="10.99.0.2"}', '{key="10100", remote_ip="10.99.0.3"}']
            port_of = {o.split('remote_ip="')[1].rstrip('"}'): emu.ovs_vsctl(
                "get", "Interface", p, "ofport").strip() for p, o in tun.items()}
            emu.wait(lambda: f"dl_dst={B} actions=output:{port_of['10.99.0.2']}" in
                     "\n".join(emu.dump_flows(web)), 30, "the remote MAC flow of pod b")
            assert f"dl_dst={C} actions=output:{port_of['10.99.0.3']}" in \
                "\n".join(emu.dump_flows(web))
            # a frame from pod a (VLAN 100 on p1): the switch learns it, the driver reads it back
            emu.send_frame("p1", tagged_frame(A, 100))
            learnt = emu.wait(drv.local_macs, 30, "ovs-vtep to publish the learnt MAC")
            assert learnt == (LocalMac("vpcnet-ls-web", 10100, A, "", "10.99.0.1"),)
            # the subnet goes: its binding, switch and (for ovs-vtep) its bridge go
            drv.sync(desired(subnets=(WEB,)))
            emu.wait(lambda: list(emu.ls_bridges()) == ["vpcnet-ls-web"], 30,
                     "ovs-vtep to remove the bridge of vpcnet-ls-db")
            assert "dl_vlan=101" not in "\n".join(emu.dump_flows("vtep-1"))
            assert drv.plan(desired(subnets=(WEB,))) == []
    finally:
        emu.stop()
    for name, pid in pids.items():          # stop() ended every process it started ...
        assert not running(pid), name
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                       text=True).stdout       # ... and removed the namespace
