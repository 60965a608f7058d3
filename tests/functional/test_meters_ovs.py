"""Meters and ``controller(userdata=..,meter_id=..)`` on a real, private Open vSwitch (dummy
datapath) driven by a real os-ken controller process (``tests/functional/meter_probe_app.py``):

* ``Reconciler(meters=...)`` brings the bridge's meters to exactly the listed settings (adding
  the new one, modifying the one set by hand), leaves an unlisted meter alone, and installs the
  flows naming them; the bridge then dumps exactly like one set up with ``ovs-ofctl add-meter``
  / ``add-flows`` from ``render_meter`` / ``render_for_ofctl``, and audits as zero drift;
* running it again on a switch that has the meters (a new Reconciler: a reconnect) works;
* packets hitting the flow reach the controller as NXT_PACKET_IN2 with the userdata, rate-limited
  by the meter in the datapath (the band drops the rest).
(Also covered by test_ofwire_ovs.py: the controller actions of ``ofwire_cases.extra_flows``.)
"""
from __future__ import annotations

import dataclasses
import re
import time

from tests.functional.meter_probe_app import FLOWS, METERS, USERDATA
from tests.functional.test_ofwire_ovs import Probe, _dump, _free_port
from vpcnet.flows import cookies
from vpcnet.flows.model import Meter
from vpcnet.flows.render import render_for_ofctl, render_meter
from vpcnet.sim.ovs import PrivateOvs

UNLISTED = Meter(9, 7)
PACKET = ("in_port(1),eth(src=50:54:00:00:00:05,dst=50:54:00:00:00:07),eth_type(0x0800),"
          "ipv4(src=192.168.0.1,dst=192.168.0.2,proto=6,tos=0,ttl=64,frag=no),tcp(src=8,dst=9)")


def _meters(ovs: PrivateOvs, bridge: str) -> list[str]:
    """One line per meter of ``dump-meters`` (OVS prints each band on a line of its own), sorted."""
    out: list[str] = []
    for line in ovs.ofctl("dump-meters", bridge).splitlines():
        line = line.strip()
        if line.startswith("meter="):
            out.append(line)
        elif line and out and "reply" not in line:
            out[-1] += " " + line
    return sorted(out)


def _meter_stats(ovs: PrivateOvs, bridge: str, meter_id: int) -> tuple[int, int]:
    """(packets in, packets the drop band dropped) of one meter."""
    text = " ".join(ovs.ofctl("meter-stats", bridge, f"meter={meter_id}").split())
    m = re.search(r"packet_in_count:(\d+) .*bands: 0: packet_count:(\d+)", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_reconciler_meters_and_metered_controller_userdata(ovs, tmp_path):
    # the reference bridge: what ovs-ofctl makes of the same meters and flows (round 1 cookies)
    flows = [f for fl in FLOWS.values() for f in fl]
    ovs.add_bridge("br-ref", 0x2)
    for m in (*METERS, UNLISTED):
        ovs.ofctl("add-meter", "br-ref", render_meter(m))
    (tmp_path / "ref.txt").write_text(render_for_ofctl(
        dataclasses.replace(f, cookie=cookies.with_round(f.cookie, 1)) for f in flows))
    ovs.ofctl("--bundle", "add-flows", "br-ref", str(tmp_path / "ref.txt"))

    port = _free_port()
    probe = Probe(port, tmp_path / "probe.log", "tests.functional.meter_probe_app")
    try:
        # the controller is configured with the bridge: OVS flushes flows and meters when a
        # bridge gets its first controller. Before the probe starts: meter 1 set otherwise by
        # hand, meter 9 that nobody lists.
        ovs.add_bridge("br-m", 0x5, controller=f"tcp:127.0.0.1:{port}")
        ovs.add_port("br-m", "p1", 1, "dummy")
        assert probe.result()["kind"] == "connected"
        ovs.ofctl("add-meter", "br-m", "meter=1,kbps,band=type=drop,rate=999")
        ovs.ofctl("add-meter", "br-m", render_meter(UNLISTED))
        assert _meters(ovs, "br-m") != _meters(ovs, "br-ref") and len(_meters(ovs, "br-m")) == 2
        probe.send("start")
        first = probe.result()
        assert first["kind"] == "resync" and first["round"] == 1
        assert first["installed"] == [1, 2] and first["failed"] == {}
        assert first["drift"] == {} and first["errors"] == []
        assert _meters(ovs, "br-m") == _meters(ovs, "br-ref")
        assert any(line.startswith("meter=9 ") for line in _meters(ovs, "br-m"))
        dumped = _dump(ovs, "dump-flows", "br-m")
        assert dumped == _dump(ovs, "dump-flows", "br-ref") and len(dumped) == len(flows)
        text = ".".join(f"{b:02x}" for b in USERDATA)
        assert any(f"actions=controller(userdata={text},meter_id=1)" in line for line in dumped), dumped
        assert any("actions=controller(max_len=128,userdata=00.01,meter_id=2)" in line for line in dumped), dumped

        # again, on a switch that has every meter already: no error, nothing else changes
        probe.send("resync")
        again = probe.result()
        assert again["round"] == 2 and again["installed"] == [1, 2] and again["failed"] == {}
        assert again["drift"] == {} and again["errors"] == []
        assert _meters(ovs, "br-m") == _meters(ovs, "br-ref")

        # denied packets: packet-ins with the userdata, at most the meter's rate (1/s, burst 1)
        sent = 10
        for _ in range(sent):
            ovs.appctl("netdev-dummy/receive", "p1", PACKET)
        deadline = time.monotonic() + 10
        while _meter_stats(ovs, "br-m", 1)[0] < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        seen, dropped = _meter_stats(ovs, "br-m", 1)
        assert seen == sent and 0 < dropped < sent
        deadline = time.monotonic() + 10
        while True:
            probe.send("packetins")
            got = probe.result()
            if len(got["packet_ins"]) >= sent - dropped or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got["errors"] == []
        assert len(got["packet_ins"]) == sent - dropped <= 3, got["packet_ins"]
        for pin in got["packet_ins"]:
            assert pin["format"] == "NXT_PACKET_IN2" and pin["userdata"] == USERDATA.hex()
            assert pin["reason"] == 1 and pin["table_id"] == 0 and pin["packet_len"] == 118   # OFPR_ACTION
    finally:
        probe.stop()
