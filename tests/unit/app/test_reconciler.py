"""app/reconciler.py against the in-process fake switch (real DatapathLink, real bytes): one
atomic bundle per resync/apply/repair, hitless round swap, cache changed only after a commit,
per-owner retry, audits by cached signatures, and the cache's form (``installed``/``_rounded``)."""
from __future__ import annotations

import dataclasses
import struct
import threading

import pytest

from vpcnet.app import ofcompare, ofencode, ofwire
from vpcnet.app.metrics import Metrics
from vpcnet.app.oflink import DatapathLink, LinkError
from vpcnet.app.reconciler import Reconciler, dump_slices, next_round
from vpcnet.flows import cookies
from vpcnet.flows.compile import compile_node
from vpcnet.flows.model import Controller, Flow, Match, Output
from vpcnet.flows.pipeline import PIPELINE

from .fakeswitch import FakeDatapath
from .ofwire_cases import extra_flows, two_vpcs


def setup(**kw):
    dp = FakeDatapath()
    link = DatapathLink(dp, 5.0)
    dp.link = link
    metrics = Metrics()
    return dp, link, Reconciler("node-1", link, metrics, **kw), metrics


def desired() -> dict[str, frozenset[Flow]]:
    out = dict(compile_node(two_vpcs(), "node-1"))
    out["pod/test/extras"] = frozenset(extra_flows())
    return out


def n_flows(d) -> int:
    return sum(len(f) for f in d.values())


def switch_signatures(dp) -> set:
    return {ofcompare.entry_identity(dp.entry_bytes(k))[1] for k in dp.flows}


def expected_signatures(d, rnd: int) -> set:
    return {ofcompare.desired_signature(dataclasses.replace(f, cookie=cookies.with_round(f.cookie, rnd)))
            for flows in d.values() for f in flows}


def full_count(rec) -> dict:
    """The flows snapshot as it was computed before: every installed flow counted."""
    out: dict = {}
    for owner, flows in rec.installed.items():
        feature = cookies.feature_of_owner(owner).name.lower()
        for f in flows.values():
            out[(f.table, feature)] = out.get((f.table, feature), 0) + 1
    return out


def metric(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_resync_installs_everything_in_one_bundle_and_caches_it():
    dp, link, rec, metrics = setup()
    d = desired()
    rec.resync(d)
    assert rec.round == 1 and rec.synced
    assert dp.commits == 1 and len(dp.flows) == n_flows(d)
    assert switch_signatures(dp) == expected_signatures(d, 1)
    assert dp.cookies() == {cookies.with_round(f.cookie, 1) for fl in d.values() for f in fl}
    # the cache: compiled flows per owner, equal to _rounded() of the compiler's output
    assert set(rec.installed) == set(d)
    for owner, flows in d.items():
        assert rec.installed[owner] == rec._rounded(flows) == {f.key: f for f in flows}
    assert sorted(rec.flows(), key=hash) == sorted(
        (dataclasses.replace(f, cookie=cookies.with_round(f.cookie, 1)) for fl in d.values() for f in fl), key=hash)
    assert metric(metrics, "vpcnet_bundles_total", node="node-1") == 1
    assert metrics.snapshots.flows["node-1"] == full_count(rec)
    assert metric(metrics, "vpcnet_flow_mods_total", node="node-1", op="add") == n_flows(d)
    assert rec.audit() == {}


def test_restart_swaps_rounds_hitlessly_in_one_bundle():
    dp, link, rec, _ = setup()
    d = desired()
    rec.resync(d)
    before = len(dp.messages)
    rec2 = Reconciler("node-1", link, Metrics())
    rec2.resync(d)
    assert rec2.round == 2 and dp.commits == 2
    assert switch_signatures(dp) == expected_signatures(d, 2)
    assert {cookies.round_of(c) for c in dp.cookies()} == {2}
    # one bundle: open, adds, the delete of round 1 by cookie mask, commit (and a barrier)
    new = dp.messages[before:]
    kinds = [struct.unpack_from("!I", m, 12)[0] if m[1] == 4 else m[1] for m in new]
    assert kinds.count(2300) == 2 and kinds.count(2301) == n_flows(d) + 1
    assert next_round(65535) == 1


def test_apply_changes_only_the_changed_owners_and_updates_the_cache():
    dp, link, rec, metrics = setup()
    d = desired()
    rec.resync(d)
    owner = next(o for o in d if o.startswith("pod/"))
    gone = next(o for o in d if o.startswith("pod/") and o != owner)
    old = sorted(d[owner], key=lambda f: (f.table, f.priority))
    changed = {dataclasses.replace(old[0], actions=(Output(77),)), *old[1:]}
    new_owner = "pod/test/new"
    new_flows = frozenset({Flow("l2_fwd", 123, Match(reg2=4242), (Output(5),), cookies.cookie(0, 5, new_owner))})
    failed = rec.apply({owner: frozenset(changed), gone: frozenset(), new_owner: new_flows,
                        "base": d["base"]})   # unchanged: filtered out
    assert failed == []
    assert dp.commits == 2
    assert rec.installed[owner] == rec._rounded(changed)
    assert gone not in rec.installed and rec.installed[new_owner] == rec._rounded(new_flows)
    want = dict(d)
    want[owner], want[new_owner] = frozenset(changed), new_flows
    del want[gone]
    assert switch_signatures(dp) == expected_signatures(want, 1)
    assert metric(metrics, "vpcnet_flow_mods_total", node="node-1", op="add") == n_flows(d) + 2
    assert metric(metrics, "vpcnet_flow_mods_total", node="node-1", op="delete") == len(d[gone])
    assert rec.apply({owner: frozenset(changed)}) == [] and dp.commits == 2   # nothing differs
    assert rec.audit() == {}
    assert metrics.snapshots.flows["node-1"] == full_count(rec)
    rec.apply({o: frozenset() for o in list(rec.installed) if o.startswith("pod/")})
    assert metrics.snapshots.flows["node-1"] == full_count(rec)


def test_a_refused_owner_is_retried_alone_and_the_others_go_in():
    dp, link, rec, metrics = setup()
    rec.resync(desired())
    dp.refuse = lambda m: int.from_bytes(m[30:32], "big") == 666
    bad = frozenset({Flow("l2_fwd", 666, Match(reg2=1), (Output(1),), cookies.cookie(0, 5, "pod/x/bad"))})
    good = frozenset({Flow("l2_fwd", 665, Match(reg2=1), (Output(1),), cookies.cookie(0, 5, "pod/x/good"))})
    failed = rec.apply({"pod/x/bad": bad, "pod/x/good": good})
    assert failed == ["pod/x/bad"]
    assert "pod/x/bad" not in rec.installed and rec.installed["pod/x/good"] == rec._rounded(good)
    assert metric(metrics, "vpcnet_bundle_failures_total", node="node-1") == 2
    assert rec.audit() == {}


def test_audit_finds_and_repairs_drift_and_reuses_what_it_learnt():
    dp, link, rec, metrics = setup()
    d = desired()
    rec.resync(d)
    assert rec.audit() == {} and rec._sent == {}
    l2 = PIPELINE.id("l2_fwd")
    altered = dp.key_of(l2, 50)
    dp.set_instructions(altered, ofencode.ENCODER.instructions_bytes((Output(99),)))
    deleted = dp.key_of(PIPELINE.id("l3_neigh"), 200)
    del dp.flows[deleted]
    extra = ofencode.encode_flow_mod(Flow("canary", 7, Match(reg1=3), (), 0x5))
    link.send(extra)
    calls = []
    real = ofcompare.entry_identity
    ofcompare.entry_identity = lambda raw: calls.append(raw) or real(raw)
    try:
        drift = rec.audit()
    finally:
        ofcompare.entry_identity = real
    assert drift == {"altered": 1, "missing": 1, "extra": 1}
    assert len(calls) == 2          # only the altered and the extra entry were new to it
    assert switch_signatures(dp) == expected_signatures(d, 1)
    assert metric(metrics, "vpcnet_drift_repaired_total", node="node-1", kind="altered") == 1
    assert metric(metrics, "vpcnet_flow_mods_total", node="node-1", op="repair") == 3
    assert rec.audit() == {}
    tables = metrics.snapshots.tables["node-1"]
    assert tables["l2_fwd"][0] == 3 * sum(1 for k in dp.flows if k[0] == l2)


def test_audit_looks_again_under_the_lock_if_a_bundle_went_in_meanwhile():
    dp, link, rec, _ = setup()
    d = desired()
    rec.resync(d)
    extra_owner = "pod/late/one"
    late = frozenset({Flow("l2_fwd", 321, Match(reg2=99), (Output(3),), cookies.cookie(0, 5, extra_owner))})
    dump = link.dump_flows
    done = []

    def racing_dump(*a, **kw):
        out = dump(*a, **kw)
        if not done:    # another thread applies a change after the dump was taken
            done.append(1)
            t = threading.Thread(target=rec.apply, args=({extra_owner: late},))
            t.start()
            t.join()
        return out

    link.dump_flows = racing_dump
    assert rec.audit() == {}        # no false "extra"/"missing" from the stale dump
    assert rec.installed[extra_owner] == rec._rounded(late)


def test_an_unsupported_owner_is_left_out_and_the_others_go_in():
    dp, link, rec, metrics = setup()
    d = desired()
    rec.resync(d)
    flows_before, commits = dict(dp.flows), dp.commits
    bad = frozenset({Flow("classifier", 10, Match(vlan_tci=(0x3064, 0x3FFF)), (Controller(max_len=100),),
                          cookies.cookie(0, 6, "policy/x"))})
    good = frozenset({Flow("l2_fwd", 665, Match(reg2=1), (Output(1),), cookies.cookie(0, 5, "pod/x/good"))})
    assert rec.apply({"policy/x": bad}) == ["policy/x"]
    assert "policy/x" not in rec.installed and dp.flows == flows_before and dp.commits == commits
    assert rec.apply({"policy/x": bad, "pod/x/good": good}) == ["policy/x"]
    assert "policy/x" not in rec.installed and rec.installed["pod/x/good"] == rec._rounded(good)
    assert len(dp.flows) == len(flows_before) + 1
    assert metric(metrics, "vpcnet_handler_errors_total", where="plan") == 2
    # a resync takes a node's whole state at once: it refuses it, and names the owner at fault
    fresh = Reconciler("node-1", link, Metrics())
    with pytest.raises(ofwire.UnsupportedFlow):
        fresh.resync({**d, "policy/x": bad})
    assert dp.bundles == {}
    assert set(fresh.uninstallable({**d, "policy/x": bad})) == {"policy/x"}


def test_refused_resync_keeps_the_previous_round_and_cache():
    dp, link, rec, _ = setup()
    d = desired()
    rec.resync(d)
    dp.refuse = lambda m: True
    with pytest.raises(LinkError):
        rec.resync(d)
    assert rec.round == 1 and rec.installed == {o: rec._rounded(f) for o, f in d.items()}
    dp.refuse = lambda m: False
    assert rec.audit() == {}


def test_big_bridges_are_dumped_in_slices(monkeypatch):
    assert [dump_slices(n) for n in (0, 4096, 4097, 50000, 10 ** 7)] == [1, 1, 2, 16, 256]
    monkeypatch.setattr("vpcnet.app.reconciler.DUMP_SLICE_FLOWS", 50)
    dp, link, rec, _ = setup()
    d = desired()
    rec.resync(d)
    n = n_flows(d)
    assert len(dp.dumps) == dump_slices(n) > 1            # resync: as many as it will install
    dp.dumps.clear()
    l2 = PIPELINE.id("l2_fwd")
    dp.set_instructions(dp.key_of(l2, 50), ofencode.ENCODER.instructions_bytes((Output(99),)))
    assert rec.audit() == {"altered": 1}
    assert len(dp.dumps) == dump_slices(n)
    assert rec.audit() == {}


def test_two_owners_with_one_flow_key_are_not_drift():
    dp, link, rec, _ = setup()
    f = Flow("l2_fwd", 321, Match(reg2=99), (Output(3),), cookies.cookie(0, 5, "pod/a/one"))
    rec.resync({"pod/a/one": frozenset({f}), "pod/a/two": frozenset({f})})
    assert len(dp.flows) == 1
    assert rec.audit() == {} and rec.audit() == {}
    del dp.flows[next(iter(dp.flows))]
    assert rec.audit() == {"missing": 2} and len(dp.flows) == 1


def test_read_back_equals_the_per_flow_signature_comparison():
    dp, link, rec, _ = setup()
    d = desired()
    rec.resync(d)
    dp.set_instructions(dp.key_of(PIPELINE.id("l2_fwd"), 50), ofencode.ENCODER.instructions_bytes((Output(99),)))
    link.send(ofencode.encode_flow_mod(Flow("canary", 7, Match(reg1=3), (), 0x5)))
    # what FlowEngine.installed computes today
    wanted = {ofcompare.desired_signature(f): f for f in rec.flows()}
    ours, other = [], []
    for s in link.dump_flows():
        flow = wanted.get(ofcompare.stats_signature(s))
        (ours.append(flow) if flow is not None else other.append(ofcompare.describe_stats(s)))
    got_ours, got_other = rec.read_back()
    assert got_ours == ours and len(ours) == n_flows(d) - 1
    assert sorted(ofcompare.describe_stats(s) for s in got_other) == sorted(other) and len(other) == 2


def test_table_counters_never_go_down_when_flows_leave():
    """vpcnet_table_packets/bytes_total are counters: a deleted flow keeps what it counted, a new
    one adds its counts (the fake switch reports 3 packets / 300 bytes for every flow)."""
    dp, link, rec, metrics = setup()
    d = desired()
    rec.resync(d)
    rec.audit()
    l2 = PIPELINE.id("l2_fwd")
    first = metrics.snapshots.tables["node-1"]["l2_fwd"]
    assert first == (3 * sum(1 for k in dp.flows if k[0] == l2), 300 * sum(1 for k in dp.flows if k[0] == l2))
    pod = next(o for o, fs in d.items() if o.startswith("pod/") and any(f.table == "l2_fwd" for f in fs))
    assert rec.apply({pod: frozenset()}) == []
    rec.audit()
    assert metrics.snapshots.tables["node-1"]["l2_fwd"] == first, "the deleted flows' counts stay"
    new = frozenset({Flow("l2_fwd", 665, Match(reg2=1), (Output(1),), cookies.cookie(0, 5, "pod/x/new"))})
    assert rec.apply({"pod/x/new": new}) == []
    rec.audit()
    assert metrics.snapshots.tables["node-1"]["l2_fwd"] == (first[0] + 3, first[1] + 300)
