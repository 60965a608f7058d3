"""Reconciler ``meters`` against the in-process fake switch, taught meter mods the way OVS answers
them (OFPMMFC_METER_EXISTS for an add of a meter it has, OFPMMFC_UNKNOWN_METER for a modify of
one it lacks): meters go in before any flow, re-running on a switch that has them modifies them
to the listed settings, meters nobody listed stay, a refused meter is reported and counted.
Also ``DatapathLink.send_checked``, which carries them."""
from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from vpcnet.app import ofwire
from vpcnet.app.metrics import Metrics
from vpcnet.app.oflink import DatapathLink, LinkError
from vpcnet.app.reconciler import Reconciler
from vpcnet.flows import cookies
from vpcnet.flows.model import IP, Controller, Flow, Match, Meter

from .fakeswitch import HEADER, FakeDatapath

METER_MOD = struct.Struct("!HHI")          # command, flags, meter_id (after the OF header)
BAND = struct.Struct("!HHII4x")            # type, len, rate, burst_size

METERS = (Meter(1, 1, "pktps", 1), Meter(2, 1000, "kbps", 100))


class MeterSwitch(FakeDatapath):
    """FakeDatapath + a meter table: meter id -> (flags, ((band type, rate, burst), ...))."""

    def __init__(self, dpid: int = 1):
        super().__init__(dpid)
        self.meters: dict[int, tuple] = {}
        self.meter_mods: list[tuple[int, int]] = []          # (command, meter id), in order
        self.refuse_meter = lambda meter_id: None            # meter id -> error code to answer, or None

    def _meter_error(self, xid: int, code: int) -> None:
        if self.link is not None:
            self.link.on_error(SimpleNamespace(xid=xid, type=ofp.OFPET_METER_MOD_FAILED, code=code))

    def _handle(self, m: bytes) -> None:
        msg_type, xid = HEADER.unpack_from(m, 0)[1], HEADER.unpack_from(m, 0)[3]
        if msg_type != ofp.OFPT_METER_MOD:
            return super()._handle(m)
        command, flags, meter_id = METER_MOD.unpack_from(m, 8)
        self.meter_mods.append((command, meter_id))
        bands = tuple((t, rate, burst) for t, _, rate, burst in
                      (BAND.unpack_from(m, off) for off in range(16, len(m), BAND.size)))
        code = self.refuse_meter(meter_id)
        if code is not None:
            self._meter_error(xid, code)
        elif command == ofp.OFPMC_ADD:
            if meter_id in self.meters:
                self._meter_error(xid, ofp.OFPMMFC_METER_EXISTS)
            else:
                self.meters[meter_id] = (flags, bands)
        elif command == ofp.OFPMC_MODIFY:
            if meter_id not in self.meters:
                self._meter_error(xid, ofp.OFPMMFC_UNKNOWN_METER)
            else:
                self.meters[meter_id] = (flags, bands)
        elif command == ofp.OFPMC_DELETE:
            self.meters.pop(meter_id, None)


def settings(meter: Meter) -> tuple:
    """What MeterSwitch holds for a meter installed with exactly ``meter``'s settings."""
    flags = (ofp.OFPMF_PKTPS if meter.unit == "pktps" else ofp.OFPMF_KBPS) | (ofp.OFPMF_BURST if meter.burst else 0)
    return flags, ((ofp.OFPMBT_DROP, meter.rate, meter.burst),)


def setup(meters=METERS):
    dp = MeterSwitch()
    link = DatapathLink(dp, 5.0)
    dp.link = link
    metrics = Metrics()
    return dp, link, Reconciler("node-1", link, metrics, meters=meters), metrics


def log_flow(meter_id: int = 1) -> dict[str, frozenset[Flow]]:
    deny = Flow("egress_policy", 5, Match(IP), (Controller(userdata=b"deny", meter_id=meter_id),),
                cookies.cookie(0, 6, "policy/deny"))
    return {"policy/deny": frozenset({deny})}


def test_resync_installs_the_meters_before_any_flow():
    dp, _, rec, _ = setup()
    rec.resync(log_flow())
    assert dp.meters == {m.meter_id: settings(m) for m in METERS}
    assert dp.meter_mods == [(ofp.OFPMC_ADD, 1), (ofp.OFPMC_ADD, 2)]
    types = [HEADER.unpack_from(m, 0)[1] for m in dp.messages]
    assert types.index(ofp.OFPT_EXPERIMENTER) > max(i for i, t in enumerate(types) if t == ofp.OFPT_METER_MOD)
    assert len(dp.flows) == 1 and rec.audit() == {}
    assert rec.meters_installed == {m.meter_id: m for m in METERS} and rec.failed_meters == {}


def test_again_on_a_switch_that_has_them_modifies_them_and_leaves_other_meters_alone():
    dp, link, rec, metrics = setup()
    dp.meters[1] = settings(Meter(1, 500, "kbps"))     # set by hand (or an older controller)
    dp.meters[9] = settings(Meter(9, 7))               # nobody lists this one
    rec.resync(log_flow())
    assert dp.meters == {1: settings(METERS[0]), 2: settings(METERS[1]), 9: settings(Meter(9, 7))}
    assert dp.meter_mods == [(ofp.OFPMC_ADD, 1), (ofp.OFPMC_ADD, 2), (ofp.OFPMC_MODIFY, 1)]
    rec.resync(log_flow())                                     # the same reconciler again ...
    again = Reconciler("node-1", link, metrics, meters=METERS)  # ... and a new one (a reconnect)
    again.resync(log_flow())
    assert dp.meters == {1: settings(METERS[0]), 2: settings(METERS[1]), 9: settings(Meter(9, 7))}
    assert again.failed_meters == {} and again.meters_installed == {m.meter_id: m for m in METERS}
    assert again.round == 3 and len(dp.flows) == 1 and again.audit() == {}
    changed = (Meter(1, 10, "pktps"), METERS[1])
    assert Reconciler("node-1", link, metrics, meters=changed).ensure_meters() == []
    assert dp.meters[1] == settings(changed[0]) and all(mod[1] != 9 for mod in dp.meter_mods)
    assert metrics.registry.get_sample_value("vpcnet_handler_errors_total", {"where": "meter"}) is None


def test_a_refused_meter_is_reported_and_the_flows_still_go_in():
    dp, _, rec, metrics = setup()
    dp.refuse_meter = lambda meter_id: ofp.OFPMMFC_OUT_OF_METERS if meter_id == 2 else None
    rec.resync(log_flow())
    assert rec.failed_meters == {2: f"type={ofp.OFPET_METER_MOD_FAILED} code={ofp.OFPMMFC_OUT_OF_METERS}"}
    assert set(rec.meters_installed) == {1} and set(dp.meters) == {1}
    assert len(dp.flows) == 1 and rec.synced
    assert metrics.registry.get_sample_value("vpcnet_handler_errors_total", {"where": "meter"}) == 1
    dp.refuse_meter = lambda meter_id: None
    assert rec.ensure_meters() == [] and set(dp.meters) == {1, 2} and rec.failed_meters == {}


def test_without_meters_nothing_changes_on_the_wire():
    dp, _, rec, _ = setup(meters=())
    rec.resync(log_flow())
    assert dp.meter_mods == [] and rec.ensure_meters() == []
    types = [HEADER.unpack_from(m, 0)[1] for m in dp.messages]
    assert ofp.OFPT_METER_MOD not in types and types[0] == ofp.OFPT_MULTIPART_REQUEST   # the dump comes first


def test_meter_ids_must_be_unique():
    with pytest.raises(ValueError, match="listed twice"):
        setup(meters=(Meter(1, 5), Meter(1, 6)))


def test_send_checked_gives_each_message_its_errors():
    dp, link, _, _ = setup()
    wire = ofwire.Wire(dp)
    got = link.send_checked([wire.meter_mod(METERS[0], "add"), wire.meter_mod(METERS[0], "add"),
                             wire.meter_mod(Meter(5, 1), "modify"), wire.meter_mod(METERS[1], "add")])
    assert got == [[], [(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_METER_EXISTS)],
                   [(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_UNKNOWN_METER)], []]
    assert link.send_checked([]) == [] and not link._pending
    dp.alive = False
    with pytest.raises(LinkError):
        link.send_checked([wire.meter_mod(METERS[0], "modify")])
    assert not link._pending
