"""NodeDaemon.cmd_add's orchestration with stand-ins for the controller, OVS and netlink: what
runs in parallel, what is durable before what, and that a failed ADD cleans up without waiting
for a long poll that changes nothing.

Stand-ins here because these are questions of order and timing that real components cannot be
made to answer on demand (a controller that fails exactly after the veth exists, a flows wait
that is still running when configuration fails). The same ADD against the real controller, OVS,
netns and plugin is tested in tests/functional/test_cni.py, test_cni_fuzz.py and
test_crash_restart.py."""
from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import defaultdict

import pytest

from vpcnet.app.api import GroupCommit
from vpcnet.cni import daemon as daemon_mod
from vpcnet.cni import plumbing, spec
from vpcnet.cni.records import Records

STATUS = {"ip": "10.10.0.7", "ips": ["10.10.0.7"], "mac": "0e:76:70:0a:00:07", "cidrs": ["10.10.0.7/24"],
          "gateway": "10.10.0.1", "subnet": "trading-a", "vpc": "finance"}


class World:
    """The controller, the switch and netlink, recording what happened when."""

    def __init__(self, records: Records):
        self.records = records
        self.events: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.ensure_delay = 0.05
        self.ensure_error = None
        self.flows = {"ready": True, "reason": "ok"}
        self.flows_delay = 0.0
        self.configure_error = None
        self.created = set()
        self.ports = set()
        self.released = []

    def log(self, what: str) -> None:
        with self.lock:
            self.events.append((time.monotonic(), what))

    def at(self, what: str) -> float:
        return next(t for t, w in self.events if w == what)

    # the controller API client
    def request(self, method, path, body=None):
        if path == "/v1/pods/ensure":
            self.log("ensure-sent")
            assert list(self.records.dir.glob("*.json")), "record not durable before the ensure"
            time.sleep(self.ensure_delay)
            self.log("ensure-done")
            if self.ensure_error:
                return 422, {"errors": [self.ensure_error]}
            return 200, {"status": dict(STATUS)}
        if "/flows?" in path:
            self.log("flows-sent:" + path.split("?", 1)[1])
            time.sleep(self.flows_delay)
            return 200, dict(self.flows)
        if path == "/v1/pods/release":
            self.log("release")
            self.released.append(body["name"])
            return 200, {"released": True}
        raise AssertionError(path)


class FakePending:
    def __init__(self, world, host_ifname):
        self.world, self.host_ifname = world, host_ifname

    def configure(self, mac, cidrs, gateways):
        self.world.log("configure")
        if self.world.configure_error:
            self.abandon()
            raise plumbing.PlumbingError(self.world.configure_error)
        assert mac == STATUS["mac"] and cidrs == STATUS["cidrs"] and gateways == ["10.10.0.1"]

    def abandon(self):
        self.world.created.discard(self.host_ifname)


class FakeSwitch:
    def __init__(self, world):
        self.world = world

    def ofport(self, port):
        return 42 if port in self.world.ports else None

    def del_port(self, port):
        self.world.ports.discard(port)


@pytest.fixture
def node(tmp_path, monkeypatch):
    records = Records(tmp_path / "attachments")
    world = World(records)
    d = object.__new__(daemon_mod.NodeDaemon)
    d.node, d.bridge, d.host_netns, d.mtu, d.flows_wait = "node-1", "br-int", None, 1500, 10.0
    d.client = world
    d.records = records
    d.switch = FakeSwitch(world)
    d._locks, d._locks_guard = defaultdict(threading.Lock), threading.Lock()
    d._pool = concurrent.futures.ThreadPoolExecutor(16)

    def add_ports(items):
        world.log("port-added")
        world.ports.update(p for p, _ in items)
        return [None] * len(items)

    def set_macs(items):
        world.log("mac-set")
        return [None] * len(items)
    d._port_adds, d._port_macs = GroupCommit(add_ports), GroupCommit(set_macs)

    def create(host_netns, host_ifname, pod_netns, ifname, mtu=1500):
        world.log("veth")
        world.created.add(host_ifname)
        return FakePending(world, host_ifname)
    monkeypatch.setattr(plumbing, "create", create)
    monkeypatch.setattr(plumbing, "detach", lambda ns, name: world.created.discard(name))
    yield d, world
    d._pool.shutdown(wait=False, cancel_futures=True)


def request(name="web-0"):
    return spec.Request(command="ADD", container_id="c" * 20, netns="/var/run/netns/x", ifname="eth0",
                        args={"K8S_POD_NAMESPACE": "trading", "K8S_POD_NAME": name}, path="", config={},
                        cni_version="1.1.0")


def test_address_and_plumbing_run_at_the_same_time_and_flows_are_asked_for_exactly_this_port(node):
    d, world = node
    result, timings = d.cmd_add(request())
    # the veth and the port were made while the controller was allocating
    assert world.at("veth") < world.at("ensure-done") and world.at("port-added") < world.at("ensure-done")
    flows = next(w for _, w in world.events if w.startswith("flows-sent:"))
    assert "ofport=42" in flows and "mac=0e%3A76%3A70%3A0a%3A00%3A07" in flows and "ips=10.10.0.7" in flows
    assert result["ips"][0]["address"] == "10.10.0.7/24" and result["interfaces"][1]["mac"] == STATUS["mac"]
    rec = d.records.load("c" * 20, "eth0")
    assert rec.state == "ready" and rec.result == result
    assert {"address", "plumbing", "flows", "total"} <= timings.keys()


def test_a_refused_address_removes_the_pair_and_the_port(node):
    d, world = node
    world.ensure_error = "namespace 'x' belongs to no VPC"
    with pytest.raises(spec.CniError):
        d.cmd_add(request())
    assert not world.created and not world.ports and world.released == ["web-0"]
    assert d.records.load("c" * 20, "eth0") is None


def test_a_failing_pod_end_does_not_wait_for_the_flows_long_poll(node):
    d, world = node
    world.configure_error = "adding address 10.10.0.7/24: File exists"
    world.flows_delay = 3.0                 # the long poll would still be waiting
    t0 = time.monotonic()
    with pytest.raises(plumbing.PlumbingError):
        d.cmd_add(request())
    assert time.monotonic() - t0 < 2.0
    assert not world.created and not world.ports and world.released == ["web-0"]
    assert d.records.load("c" * 20, "eth0") is None


def test_flows_not_ready_fails_the_add_and_cleans_up(node):
    d, world = node
    world.flows = {"ready": False, "reason": "flows for ofport 42 not installed on node-1 yet"}
    with pytest.raises(spec.CniError) as info:
        d.cmd_add(request())
    assert info.value.code == spec.ERR_FLOWS_NOT_READY
    assert world.at("release") > world.at("mac-set")     # waited for what was still changing state
    assert not world.created and not world.ports and d.records.load("c" * 20, "eth0") is None


def test_the_release_never_overtakes_a_slow_ensure(node, monkeypatch):
    d, world = node
    world.ensure_delay = 0.3

    def create(*args, **kw):
        world.log("veth")
        raise plumbing.PlumbingError("CNI_IFNAME eth0 already exists in /var/run/netns/x")
    monkeypatch.setattr(plumbing, "create", create)
    with pytest.raises(plumbing.PlumbingError):
        d.cmd_add(request())
    assert world.at("release") > world.at("ensure-done")
