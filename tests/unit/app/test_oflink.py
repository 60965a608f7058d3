"""app/oflink.py: bundles as byte chunks through Datapath.send, with os-ken's own bytes for each
message, every xid registered before it is sent, errors and barrier replies found, raw dumps."""
from __future__ import annotations

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from vpcnet.app import ofcompare, ofencode, oflink, ofwire
from vpcnet.app.oflink import DatapathLink, LinkError
from vpcnet.flows.model import IP, Flow, Goto, Match, Output

from .fakeswitch import HEADER, FakeDatapath, split_messages
from .ofwire_cases import extra_flows

FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED


def link_of(dp: FakeDatapath, timeout: float = 5.0) -> DatapathLink:
    link = DatapathLink(dp, timeout)
    dp.link = link
    return link


def flows(n: int) -> list[Flow]:
    return [Flow("l2_fwd", 100, Match(reg2=i + 1), (Output(i % 50 + 1), Goto("ingress_policy")), 0x42)
            for i in range(n)]


def osken_bundle_add(dp, bundle_id: int, msg, xid: int) -> bytes:
    add = parser.ONFBundleAddMsg(dp, bundle_id, FLAGS, msg, [])
    add.set_xid(xid)
    add.serialize()
    return bytes(add.buf)


def test_bundle_sends_what_os_ken_would_in_one_chunk():
    dp = FakeDatapath()
    link = link_of(dp)
    fs = extra_flows()
    items = [ofencode.encode_flow_mod(f) if i % 2 else ofwire._DEFAULT_WIRE.flow_mod(f) for i, f in enumerate(fs)]
    items.append(ofwire._DEFAULT_WIRE.delete_by_cookie(5 << 48, 0xFFFF << 48))
    link.bundle(items)
    assert len(dp.sent) == 1 and dp.commits == 1
    msgs = split_messages(dp.sent[0])
    assert len(msgs) == len(items) + 3          # open, adds, commit, barrier
    xids = [HEADER.unpack_from(m, 0)[3] for m in msgs]
    assert len(set(xids)) == len(xids) and all(x & oflink.XID_BASE for x in xids)
    bundle_id = int.from_bytes(msgs[0][16:20], "big")
    for f, m, xid in zip(fs, msgs[1:], xids[1:]):
        assert m == osken_bundle_add(dp, bundle_id, ofwire._DEFAULT_WIRE.flow_mod(f), xid)
    assert msgs[-3] == osken_bundle_add(dp, bundle_id, ofwire._DEFAULT_WIRE.delete_by_cookie(5 << 48, 0xFFFF << 48),
                                        xids[-3])
    assert HEADER.unpack_from(msgs[-1], 0)[1] == ofp.OFPT_BARRIER_REQUEST
    assert link._pending == {}


def test_large_bundles_go_in_chunks_of_whole_messages_with_xids_registered_first():
    dp = FakeDatapath()
    link = link_of(dp)
    send = dp.send

    def checked(buf, close_socket=False):
        for m in split_messages(bytes(buf)):      # whole messages only
            assert HEADER.unpack_from(m, 0)[3] in link._pending, "sent before its xid was registered"
        return send(buf, close_socket)

    dp.send = checked
    fs = flows(8000)
    link.bundle(ofencode.encode_flow_mod(f) for f in fs)
    assert len(dp.sent) > 2
    assert all(len(b) < oflink.CHUNK + 1000 for b in dp.sent)
    assert len(dp.flows) == len(fs) and dp.commits == 1
    assert link._pending == {}


def test_errors_of_bundled_messages_fail_the_bundle():
    dp = FakeDatapath()
    link = link_of(dp)
    dp.refuse = lambda m: int.from_bytes(m[30:32], "big") == 7     # priority 7
    bad = Flow("l2_fwd", 7, Match(reg2=1), (Output(1),), 1)
    with pytest.raises(LinkError, match=r"refused: type=1 code=1; type=1 code=2"):
        link.bundle([ofencode.encode_flow_mod(f) for f in flows(3)] + [ofencode.encode_flow_mod(bad)])
    assert dp.flows == {} and link._pending == {}
    link.bundle([ofencode.encode_flow_mod(f) for f in flows(3)])    # the link is still usable
    assert len(dp.flows) == 3


def test_a_failing_generator_discards_the_bundle():
    dp = FakeDatapath()
    link = link_of(dp)

    def gen():
        yield from (ofencode.encode_flow_mod(f) for f in flows(5000))
        raise ofwire.UnsupportedFlow("nope")

    with pytest.raises(ofwire.UnsupportedFlow):
        link.bundle(gen())
    assert dp.discards == 1 and dp.commits == 0 and dp.flows == {} and dp.bundles == {}
    assert link._pending == {}
    with pytest.raises(ValueError):   # before anything was sent: nothing to discard
        link.bundle([b"\x04\x0e\x00\x10"])
    assert dp.discards == 1 and link._pending == {}


def test_closed_connection_and_timeout():
    dp = FakeDatapath()
    link = link_of(dp)
    dp.alive = False
    with pytest.raises(LinkError, match="connection closed"):
        link.bundle([ofencode.encode_flow_mod(f) for f in flows(2)])
    assert link.closed and link._pending == {}
    dp = FakeDatapath()
    link = link_of(dp, timeout=0.2)
    dp.link = None                                  # the switch never answers
    with pytest.raises(LinkError, match="no answer"):
        link.bundle([ofencode.encode_flow_mod(f) for f in flows(2)])
    assert link._pending == {}


def test_send_and_barrier_take_bytes_or_objects():
    dp = FakeDatapath()
    link = link_of(dp)
    f = Flow("l2_fwd", 100, Match(reg2=1), (Output(1),), 1)
    link.send(ofencode.encode_flow_mod(f))
    link.send(ofwire._DEFAULT_WIRE.flow_mod(Flow("l2_fwd", 100, Match(reg2=2), (Output(1),), 1)))
    link.barrier()
    assert len(dp.flows) == 2
    assert HEADER.unpack_from(dp.messages[0], 0)[3] & oflink.XID_BASE


def test_dump_flows_raw_pairs_each_entry_with_its_bytes():
    dp = FakeDatapath()
    link = link_of(dp)
    fs = extra_flows() + [Flow("l3_fwd", 10, Match(IP, nw_dst=f"10.0.{i}.0/24"), (Output(2),), 9) for i in range(30)]
    link.bundle([ofencode.encode_flow_mod(f) for f in fs])
    entries = link.dump_flows()
    pairs = link.dump_flows(raw=True)
    assert len(entries) == len(pairs) == len(fs)
    for e, raw in pairs:
        assert raw is not None and len(raw) == e.length
        assert ofcompare.entry_identity(raw) == (ofcompare.stats_key(e), ofcompare.stats_signature(e))
    assert {ofcompare.stats_signature(e) for e in entries} == {ofcompare.desired_signature(f) for f in fs}


@pytest.mark.parametrize("lazy", [True, False])
def test_dump_flows_in_slices_sees_every_flow_once(lazy):
    assert oflink.use_lazy_flow_stats(lazy) == lazy
    try:
        _dump_in_slices()
        _slices_back_to_back_only_when_lazy(lazy)
    finally:
        assert oflink.use_lazy_flow_stats(True)


def _slices_back_to_back_only_when_lazy(lazy: bool):
    """With lazy entries all slices are requested before the first reply is read; with os-ken's
    eager parser one after the other (each reply parsed before the next request)."""
    import threading
    import time
    dp = FakeDatapath()
    link = link_of(dp)
    link.bundle([ofencode.encode_flow_mod(Flow("l2_fwd", 10, Match(reg2=i), (Output(1),), i)) for i in range(40)])
    dp.deferred = []
    seen, done = [], threading.Event()

    def flusher():
        while not done.is_set():
            time.sleep(0.02)
            if dp.deferred:
                seen.append(len(dp.dumps))
                dp.flush()

    t = threading.Thread(target=flusher)
    t.start()
    try:
        assert len(link.dump_flows(slices=8)) == 40
    finally:
        done.set()
        t.join()
    assert seen[0] == (8 if lazy else 1)


def _dump_in_slices():
    dp = FakeDatapath()
    link = link_of(dp)
    fs = [Flow("l3_fwd", 10, Match(IP, nw_dst=f"10.0.{i}.0/24"), (Output(2),), i * 7919) for i in range(200)]
    link.bundle([ofencode.encode_flow_mod(f) for f in fs])
    whole = sorted(ofcompare.stats_signature(e) for e in link.dump_flows())
    for slices in (2, 16):
        dp.dumps.clear()
        pairs = link.dump_flows(raw=True, slices=slices)
        assert sorted(ofcompare.entry_identity(raw)[1] for _, raw in pairs) == whole
        assert dp.dumps == [(i, slices - 1) for i in range(slices)]
    assert sorted(ofcompare.stats_signature(e) for e in link.dump_flows(slices=4)) == whole
    with pytest.raises(ValueError):
        link.dump_flows(slices=3)
    assert link._pending == {}


def test_flow_stats_entries_are_parsed_on_first_use_and_equal_os_kens():
    from os_ken.ofproto import ofproto_v1_3_parser as p13
    from .fakeswitch import parse
    assert p13.OFPFlowStatsReply.cls_stats_body_cls is oflink.OFPFlowStats
    dp = FakeDatapath()
    link = link_of(dp)
    fs = extra_flows()
    link.bundle([ofencode.encode_flow_mod(f) for f in fs])
    pairs = link.dump_flows(raw=True)
    for e, raw in pairs:
        assert type(e) is oflink.OFPFlowStats and isinstance(e, p13.OFPFlowStats)
        assert "match" not in e.__dict__ and raw is e.raw            # nothing parsed yet
        eager = p13.OFPFlowStats.parser(raw, 0)
        assert str(e) == str(eager) and e.to_jsondict() == eager.to_jsondict()
        assert ofcompare.stats_signature(e) == ofcompare.stats_signature(eager)
        for k, v in vars(eager).items():
            assert str(getattr(e, k)) == str(v), k
    # a whole reply through os-ken's own parser, both ways
    body = pairs[0][1] + pairs[1][1]
    buf = HEADER.pack(4, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), 9) + bytes([0, 1, 0, 0, 0, 0, 0, 0]) + body
    lazy = parse(buf, dp)
    oflink.use_lazy_flow_stats(False)
    try:
        eager = parse(buf, dp)
    finally:
        assert oflink.use_lazy_flow_stats(True)
    assert [type(e) for e in eager.body] == [p13.OFPFlowStats] * 2
    assert str(lazy) == str(eager) and lazy.to_jsondict() == eager.to_jsondict()


def test_meanwhile_runs_after_everything_is_queued_and_before_the_wait():
    dp = FakeDatapath()
    link = link_of(dp)
    dp.deferred = []                     # the switch answers only when flushed
    calls = []

    def meanwhile():
        calls.append((len(dp.sent), dp.commits, len(link._pending)))
        dp.flush()

    link.bundle([ofencode.encode_flow_mod(f) for f in flows(3000)], meanwhile=meanwhile)
    sent = len(dp.sent)
    assert calls == [(sent, 1, 3000 + 3)] and len(dp.flows) == 3000   # all queued, reply not read yet
    dp.deferred = None

    def boom():
        raise RuntimeError("meanwhile failed")

    with pytest.raises(RuntimeError, match="meanwhile failed"):
        link.bundle([ofencode.encode_flow_mod(f) for f in flows(3)], meanwhile=boom)
    assert dp.commits == 2 and link._pending == {}
    dp.refuse = lambda m: True
    with pytest.raises(LinkError):       # the switch's refusal comes first
        link.bundle([ofencode.encode_flow_mod(f) for f in flows(3)], meanwhile=boom)
    assert link._pending == {}
