"""The NETCONF driver against the real thing: netconfd (yuma123) + OpenSSH sshd in a private leaf
network namespace, reached from a private management namespace without a default route.

Needs root (namespaces, veths), netconfd, sshd and yanglint, as on CI (install.sh). Nothing is
skipped: a missing tool fails the test. Namespace names carry a unique suffix; every fixture
cleans up its processes (by PID) and namespaces in ``finally``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, replace

import pytest
from lxml import etree

from vpcnet.fabric import compile_fabric
from vpcnet.fabric.diff_leaf import diff_leaf
from vpcnet.fabric.netconf import (
    NetconfConnectError, NetconfError, apply, connect, read_running,
)
from vpcnet.fabric.render_leaf import NS, render
from vpcnet.fabric.xmlutil import NC_NS, parse, to_text
from vpcnet.sim.netconf import LabError, NetconfLeafServer, create_netns, delete_netns, veth
from vpcnet.tests.unit.fabric.fabric_cases import fabric_mode, replace_leaf

SUFFIX = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
LEAF_FILTER = f'<leaf xmlns="{NS}"/>'
MEASURED: dict[str, list[float]] = {}


@dataclass
class Lab:
    mgmt: str
    leaves: dict[str, tuple[str, str]]      # leaf name -> (netns, management address)


@pytest.fixture(scope="module")
def lab():
    """Two leaf namespaces, each with a /31 veth to one management namespace (no routes)."""
    mgmt = f"vnc-mg-{SUFFIX}"
    leaves = {"lf1": (f"vnc-l1-{SUFFIX}", "172.30.0.1"), "lf2": (f"vnc-l2-{SUFFIX}", "172.30.0.3")}
    made = []
    try:
        for ns in [mgmt] + [ns for ns, _ in leaves.values()]:
            create_netns(ns)
            made.append(ns)
        for i, (name, (ns, addr)) in enumerate(sorted(leaves.items())):
            veth(mgmt, name, f"172.30.0.{2 * i}/31", ns, "mgmt0", f"{addr}/31")
        routes = subprocess.run(["ip", "-n", mgmt, "route", "show", "default"],
                                capture_output=True, text=True, check=True).stdout
        assert routes.strip() == "", f"management netns must have no default route: {routes}"
        yield Lab(mgmt, leaves)
    finally:
        for ns in made:
            delete_netns(ns)


def start_server(lab: Lab, tmp_path_factory, leaf: str = "lf1") -> NetconfLeafServer:
    ns, addr = lab.leaves[leaf]
    run_dir = tmp_path_factory.mktemp(leaf)          # short path: the socket must fit 107 chars
    return NetconfLeafServer(run_dir, ns, addr, name=leaf).start()


@pytest.fixture
def server(lab, tmp_path_factory):
    srv = None
    try:
        srv = start_server(lab, tmp_path_factory)
        MEASURED.setdefault("server start (netconfd+sshd) s", []).append(srv.start_s)
        yield srv
    finally:
        if srv is not None:
            srv.stop()


@pytest.fixture
def target(server, lab):
    return server.client_target(from_netns=lab.mgmt)


@pytest.fixture(scope="module")
def desired():
    return compile_fabric(replace_leaf(fabric_mode(), "leaf-1", model="vpcnet-leaf"))["leaf-1"]


# ---------------------------------------------------------------------------- helpers
def canonical(elem: etree._Element):
    """Order-insensitive form of a tree (NETCONF does not order siblings for us)."""
    children = sorted(canonical(c) for c in elem if isinstance(c.tag, str))
    return (elem.tag, (elem.text or "").strip() if not len(elem) else "", tuple(children))


def leaf_of(data: etree._Element) -> etree._Element | None:
    return data.find(f"{{{NS}}}leaf")


def running_leaf(target):
    return leaf_of(read_running(target, LEAF_FILTER))


def q(path: str) -> str:
    return "/".join(f"{{{NS}}}{p}" for p in path.split("/"))


def cfg(body: str) -> str:
    return f'<config xmlns="{NC_NS}" xmlns:nc="{NC_NS}"><leaf xmlns="{NS}">{body}</leaf></config>'


def hand_commit(target, body: str) -> None:
    """What an operator does in another session: lock, edit the candidate, commit, unlock."""
    with connect(target) as m:
        with m.locked("candidate"):
            m.edit_config(target="candidate", config=cfg(body))
            m.commit()


def assert_unlocked(target) -> None:
    """Another session can take both locks: apply released them."""
    with connect(target) as m:
        m.lock("candidate")
        m.lock("running")
        m.unlock("running")
        m.unlock("candidate")


def broken(desired, breaker) -> etree._Element:
    config = parse(to_text(render(desired)))
    breaker(config[0])
    return config


# ---------------------------------------------------------------------------- tests
def test_apply_a_rendered_state_and_read_it_back(desired, target, server):
    t0 = time.monotonic()
    report = apply(target, render(desired))
    wall = time.monotonic() - t0
    assert report.confirmed_commit and report.rollback_on_error and report.running_locked
    assert report.saved_startup and report.steps == ["committed"]
    MEASURED.setdefault("connect s", []).append(report.connect_s)
    MEASURED.setdefault("apply (lock..unlock) s", []).append(report.apply_s)
    MEASURED.setdefault("apply total s", []).append(wall)
    assert wall < 20, f"apply took {wall:.1f}s"

    got = running_leaf(target)
    assert got is not None
    assert canonical(got) == canonical(render(desired)[0])
    assert diff_leaf(desired, read_running(target)).empty
    # the startup datastore holds it too: a restarted leaf comes back configured
    assert canonical(leaf_of(parse(server.startup.read_bytes()))) == canonical(render(desired)[0])
    assert_unlocked(target)


def test_read_running_over_the_leaf_loopback(desired, server):
    target = server.client_target(host="127.0.0.1", from_netns=server.netns)
    apply(target, render(desired))
    assert canonical(running_leaf(target)) == canonical(render(desired)[0])


def _vlan_5000(top):
    top.find(q("mac-vrf/vlan")).text = "5000"


def _missing_ip_vrf(top):
    top.find(q("mac-vrf/ip-vrf")).text = "vpcnet-nope"


REFUSED = {
    "vlan-5000": (_vlan_5000, "invalid-value",
                  "at /vl:leaf/vl:mac-vrf[vl:name='vpcnet-L2-payments-a']/vl:vlan: "
                  "value not in range (bad-value 5000)"),
    "leafref-to-missing-ip-vrf": (_missing_ip_vrf, "data-missing",
                                  "at /vl:leaf/vl:mac-vrf[vl:name='vpcnet-L2-payments-a']/"
                                  "vl:ip-vrf: required value instance not found"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_malformed_payload_is_refused_and_changes_nothing(desired, target, case):
    breaker, tag, where = REFUSED[case]
    apply(target, render(desired))
    before = running_leaf(target)
    with pytest.raises(NetconfError) as info:
        apply(target, broken(desired, breaker))
    err = info.value
    assert str(err) == f"leaf lf1: netconf edit-config refused: {tag} {where}"
    assert err.leaf == "lf1" and err.step == "edit-config" and err.errors[0].tag == tag
    assert canonical(running_leaf(target)) == canonical(before)
    assert_unlocked(target)
    # a second apply works (the candidate was discarded, the locks released)
    other = replace(desired, anycast_mac="0e:76:70:ff:00:01",
                    ip_vrfs=tuple(replace(v, gateways=tuple(replace(g, mac="0e:76:70:ff:00:01")
                                                            for g in v.gateways))
                                  for v in desired.ip_vrfs))
    apply(target, diff_leaf(other, read_running(target)).edit_config())
    assert running_leaf(target).findtext(q("anycast-gateway-mac")) == "0e:76:70:ff:00:01"


def test_round_trip_from_an_empty_leaf(desired, target):
    plan = diff_leaf(desired, read_running(target))
    assert len(plan.changes) == 9 and {c.op for c in plan.changes} == {"+"}
    apply(target, plan.edit_config())
    assert diff_leaf(desired, read_running(target)).empty
    assert canonical(running_leaf(target)) == canonical(render(desired)[0])


FOREIGN = ("<mac-vrf><name>corp-mgmt</name><vlan>50</vlan><vni>30050</vni></mac-vrf>"
           "<interface><name>swp1</name><description>node-1 trunk</description>"
           "<allowed-vlan>50</allowed-vlan></interface>")


def test_a_hand_change_shows_up_in_the_plan_and_is_repaired(desired, target):
    apply(target, diff_leaf(desired, read_running(target)).edit_config())
    # an operator, in another session: a foreign MAC-VRF on the trunk (kept), and changes
    # inside vpcnet's ranges (repaired): an RT, a gateway address, a neighbour, an extra VLAN
    hand_commit(target, FOREIGN)
    hand_commit(target, """
        <mac-vrf nc:operation="replace"><name>vpcnet-L2-trading-a</name><vlan>100</vlan>
          <vni>10100</vni><rd>10.0.0.1:10100</rd><import-rt>65000:10100</import-rt>
          <export-rt>65001:10100</export-rt><ip-vrf>vpcnet-finance</ip-vrf></mac-vrf>
        <mac-vrf><name>vpcnet-L2-old</name><vlan>999</vlan><vni>10999</vni></mac-vrf>
        <interface><name>swp1</name><allowed-vlan>999</allowed-vlan></interface>
        <ip-vrf><name>vpcnet-finance</name><gateway><vlan>100</vlan>
          <address nc:operation="delete">10.10.0.1/24</address></gateway></ip-vrf>
        <ip-vrf><name>vpcnet-finance</name><gateway><vlan>100</vlan>
          <address>10.10.0.254/24</address></gateway></ip-vrf>
        <bgp><neighbor><address>10.0.0.2</address><description>manual</description></neighbor></bgp>
    """)
    plan = diff_leaf(desired, read_running(target))
    assert [c.text() for c in plan.changes] == [
        "~ bgp-neighbor 10.0.0.2: description manual -> vpcnet: leaf leaf-2",
        "~ ip-vrf vpcnet-finance: +gateway[100]/address 10.10.0.1/24, "
        "-gateway[100]/address 10.10.0.254/24",
        "- mac-vrf vpcnet-L2-old",
        "~ mac-vrf vpcnet-L2-trading-a: +description vpcnet: subnet trading-a (vpc finance), "
        "+import-rt 65001:10100, -import-rt 65000:10100",
        "~ port swp1: -allowed-vlan 999",
    ]
    assert "corp-mgmt" not in plan.text()
    apply(target, plan.edit_config())
    after = read_running(target)
    assert diff_leaf(desired, after).empty, diff_leaf(desired, after).text()
    top = leaf_of(after)
    foreign = [m for m in top.iterfind(q("mac-vrf")) if m.findtext(q("name")) == "corp-mgmt"]
    assert len(foreign) == 1
    port = top.find(q("interface"))
    assert port.findtext(q("description")) == "node-1 trunk"
    assert sorted(int(v.text) for v in port.iterfind(q("allowed-vlan"))) == [50, 100, 101, 102]
    # the leaf keeps committing afterwards (the replace edits do not trip netconfd's
    # leaf-list bug, see test_commit_failure_is_cleaned_up): drift again, repair again
    for rt in ("65000:1", "65000:2"):
        hand_commit(target, f'<mac-vrf nc:operation="replace"><name>vpcnet-L2-shop-a</name>'
                            f'<vlan>102</vlan><vni>10102</vni><export-rt>{rt}</export-rt>'
                            f'</mac-vrf>')
        plan = diff_leaf(desired, read_running(target))
        assert [c.kind for c in plan.changes] == ["mac-vrf"]
        apply(target, plan.edit_config())
        assert diff_leaf(desired, read_running(target)).empty


def test_plan_under_the_lock(desired, target):
    """apply() with a function: the running config is read after both locks are held."""
    plans = []

    def plan(running):
        plans.append(diff_leaf(desired, running))
        return plans[-1].edit_config() if plans[-1].changes else None

    first = apply(target, plan, subtree=LEAF_FILTER)
    assert len(plans[0].changes) == 9 and first.steps == ["committed"]
    again = apply(target, plan, subtree=LEAF_FILTER)
    assert plans[1].empty and again.steps == ["in sync"]
    assert_unlocked(target)

    def boom(running):
        raise ValueError("planner failed")

    with pytest.raises(ValueError, match="planner failed"):     # not wrapped, locks released
        apply(target, boom)
    assert_unlocked(target)
    assert diff_leaf(desired, read_running(target)).empty


def test_commit_failure_is_cleaned_up(desired, target):
    """netconfd 2.13 bug (the reason diff_leaf sends ``replace``): deleting one leaf-list value
    and adding another in one list entry in one commit leaves that entry broken; every later
    commit that does not replace it fails with ``data-exists /commit: duplicate entry``. It
    is the real commit-time failure for the driver's error path: the error names the step, the
    leaf is unchanged, the locks are free. The plan (a replace of the entry) heals the leaf."""
    apply(target, render(desired))
    hand_commit(target, '<mac-vrf><name>vpcnet-L2-shop-a</name>'
                        '<import-rt nc:operation="delete">65001:10102</import-rt>'
                        '<import-rt>65000:1</import-rt></mac-vrf>')
    before = running_leaf(target)
    mac = parse(cfg("<anycast-gateway-mac>0e:76:70:ff:00:02</anycast-gateway-mac>"))
    with pytest.raises(NetconfError) as info:
        apply(target, mac)
    assert str(info.value) == ("leaf lf1: netconf commit (confirmed) refused: "
                               "data-exists at /commit: duplicate entry"), \
        "netconfd no longer shows its leaf-list commit bug: diff_leaf's replace may be revisited"
    assert info.value.step == "commit (confirmed)"
    assert canonical(running_leaf(target)) == canonical(before)
    assert_unlocked(target)
    plan = diff_leaf(desired, read_running(target))
    assert [c.text() for c in plan.changes] == [
        "~ mac-vrf vpcnet-L2-shop-a: +import-rt 65001:10102, -import-rt 65000:1"]
    apply(target, plan.edit_config())            # replace of the broken entry: commits, heals
    apply(target, mac)                           # and unrelated commits work again
    assert running_leaf(target).findtext(q("anycast-gateway-mac")) == "0e:76:70:ff:00:02"


def test_a_dropped_session_reverts_a_confirmed_commit(desired, target):
    """The guarantee apply() builds on: a confirmed commit that is never confirmed (controller
    killed between the two commits) does not stick."""
    apply(target, render(desired))
    before = running_leaf(target)
    m = connect(target)
    m.lock("candidate")
    m.edit_config(target="candidate", config=cfg("<anycast-gateway-mac>0e:00:00:00:00:99"
                                                 "</anycast-gateway-mac>"))
    m.commit(confirmed=True, timeout="60")
    assert running_leaf(target).findtext(q("anycast-gateway-mac")) == "0e:00:00:00:00:99"
    m._session._transport.close()            # the controller dies: no confirming commit
    deadline = time.monotonic() + 10
    while canonical(running_leaf(target)) != canonical(before):
        assert time.monotonic() < deadline, "confirmed commit was not rolled back"
        time.sleep(0.1)


def test_locks_held_by_others(desired, target):
    apply(target, render(desired))
    before = running_leaf(target)
    with connect(target) as other:
        other.lock("candidate")
        t0 = time.monotonic()
        with pytest.raises(NetconfError) as info:
            apply(target, render(replace(desired, vtep_interface="lo1")), lock_wait=0.5)
        assert 0.5 <= time.monotonic() - t0 < 10
        assert str(info.value) == ("leaf lf1: netconf lock candidate refused: lock-denied: "
                                   f"lock denied (held by session {other.session_id})")
        other.unlock("candidate")
        # unlocked edits another session left in the candidate are nobody's: discarded
        other.edit_config(target="candidate", config=cfg("<anycast-gateway-mac>"
                                                         "0e:00:00:00:00:77</anycast-gateway-mac>"))
        report = apply(target, render(replace(desired, vtep_interface="lo1")))
    assert report.discarded_foreign_edits
    got = running_leaf(target)
    assert got.findtext(q("vtep/source-interface")) == "lo1"
    assert got.findtext(q("anycast-gateway-mac")) == before.findtext(q("anycast-gateway-mac"))


def test_two_leaves_at_once(desired, lab, tmp_path_factory, server):
    second = start_server(lab, tmp_path_factory, "lf2")
    try:
        states = {"lf1": desired,
                  "lf2": compile_fabric(replace_leaf(fabric_mode(), "leaf-2",
                                                     model="vpcnet-leaf"))["leaf-2"]}
        targets = {"lf1": server.client_target(from_netns=lab.mgmt),
                   "lf2": second.client_target(from_netns=lab.mgmt)}
        errors = []

        def run(name):
            try:
                apply(targets[name], render(states[name]))
            except Exception as exc:         # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        for name in targets:
            assert canonical(running_leaf(targets[name])) == canonical(render(states[name])[0])
        assert running_leaf(targets["lf2"]).findtext(q("vtep/source-address")) == "10.0.0.2"
        assert second.sock != server.sock and second.pids != server.pids
    finally:
        second.stop()


def test_connection_errors_name_the_leaf_and_address(server, lab):
    t0 = time.monotonic()
    with pytest.raises(NetconfConnectError) as info:     # nothing listens on 831
        read_running(replace(server.client_target(from_netns=lab.mgmt), port=831,
                             connect_timeout=3))
    assert "leaf lf1: cannot connect to 172.30.0.1:831 (from netns " in str(info.value)
    assert "refused" in str(info.value)
    wrong_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    with pytest.raises(NetconfConnectError) as info:
        read_running(replace(server.client_target(from_netns=lab.mgmt), host_key=wrong_key))
    assert str(info.value).startswith("leaf lf1: cannot connect to 172.30.0.1:830")
    with pytest.raises(NetconfConnectError) as info:
        read_running(replace(server.client_target(from_netns=lab.mgmt), netns="vnc-missing"))
    assert "leaf lf1: cannot connect to 172.30.0.1:830 (from netns vnc-missing)" in str(info.value)
    with pytest.raises(NetconfConnectError) as info:      # a /31 peer nobody answers for: bounded
        read_running(replace(server.client_target(from_netns=lab.mgmt), host="172.30.0.5",
                             connect_timeout=1))
    assert "leaf lf1: cannot connect to 172.30.0.5:830" in str(info.value)
    assert time.monotonic() - t0 < 20


def test_stop_kills_only_its_processes_and_a_stale_socket_does_not_block(lab, tmp_path_factory):
    srv = start_server(lab, tmp_path_factory)
    try:
        pids = dict(srv.pids)
        os.kill(pids["netconfd"], signal.SIGKILL)        # leaves its socket behind
        srv.procs["netconfd"].wait(10)
        assert srv.sock.is_socket()
        srv.stop()
        assert not srv.sock.exists()
        for pid in pids.values():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        srv.start()                                       # same run dir, same keys
        assert set(srv.pids.values()).isdisjoint(pids.values())
        assert running_leaf(srv.client_target(from_netns=lab.mgmt)) is None
    finally:
        srv.stop()


def test_missing_namespace_is_a_clear_error(tmp_path_factory):
    with pytest.raises(LabError, match="netns vnc-nowhere does not exist"):
        NetconfLeafServer(tmp_path_factory.mktemp("x"), "vnc-nowhere", "172.30.0.1").start()


def test_zz_report_measurements(capsys):
    """What was measured above, bounded; printed (run with -s to see it)."""
    assert MEASURED.get("connect s") and MEASURED.get("server start (netconfd+sshd) s")
    assert max(MEASURED["connect s"]) < 10 and max(MEASURED["server start (netconfd+sshd) s"]) < 20
    with capsys.disabled():
        for what, values in sorted(MEASURED.items()):
            print(f"\n  netconf lab: {what}: n={len(values)} min={min(values):.2f} "
                  f"max={max(values):.2f}")
