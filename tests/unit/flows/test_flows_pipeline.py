"""The table declaration and the checked builder: bad flows fail at build time."""
from __future__ import annotations

import pytest

from flow_golden import assert_golden
from vpcnet.flows.fields import FROM_POD, SUBNET_ID, VPC_ID
from vpcnet.flows.model import ARP, IP, Ct, DecTtl, Flow, FlowError, Goto, Match, Output, Resubmit, SetField
from vpcnet.flows.learn import Learn
from vpcnet.flows.pipeline import PIPELINE, Pipeline, Stage, Table

EXPECTED_IDS = {
    "classifier": 0, "svc_external": 1, "port_sec": 10, "svc_unsnat": 11, "ct_zone": 20, "ct_state": 21, "svc_lb": 22,
    "svc_affinity": 23, "svc_aff_lb": 24, "svc_aff_learn": 25, "svc_slot": 26, "egress_policy": 30, "l3_fwd": 40,
    "l3_neigh": 41, "arp_responder": 50, "l2_fwd": 51, "ingress_policy": 60, "ct_commit": 70,
    "output": 71, "svc_ext_neigh": 72, "canary": 250,
}


def test_table_numbers_are_pinned():
    assert {t.name: t.id for t in PIPELINE.tables} == EXPECTED_IDS


def test_pipeline_description_golden():
    assert_golden("pipeline.txt", PIPELINE.describe())


def test_builder_accepts_a_good_flow_and_sets_the_cookie():
    f = PIPELINE.flow("l2_fwd", 200, Match(SUBNET_ID.eq(5), dl_dst="0E:76:70:00:00:05"),
                      (Output(3),), owner="pod/ns/a")
    assert f.key == ("l2_fwd", 200, Match(("reg2", 5), dl_dst="0e:76:70:00:00:05"))
    assert f.cookie >> 40 == 5  # feature POD, round 0


def test_backward_goto_rejected():
    with pytest.raises(FlowError, match="backward"):
        PIPELINE.flow("l2_fwd", 10, Match(SUBNET_ID.eq(5)), (Goto("classifier"),), owner="base")


def test_goto_to_undeclared_next_table_rejected():
    with pytest.raises(FlowError, match="not a declared next table"):
        PIPELINE.flow("classifier", 10, Match(in_port=3), (Goto("l2_fwd"),), owner="base")


def test_ct_recirculation_is_checked_like_goto():
    with pytest.raises(FlowError, match="backward"):
        PIPELINE.flow("ct_commit", 10, Match(IP), (Ct(table="ct_state"),), owner="base")


@pytest.mark.parametrize("target", ["nope", "l2_fwd"])
def test_a_learn_into_an_undeclared_or_not_learned_table_is_rejected_when_built(target):
    PIPELINE.flow("output", 10, Match(), (Output(1),), owner="base")   # the table's fast path is warm
    with pytest.raises(FlowError, match="learn into"):
        PIPELINE.flow("output", 10, Match(), (Learn(table=target, priority=1, loads=(VPC_ID,)),), owner="base")


def test_undeclared_table_rejected():
    with pytest.raises(FlowError, match="undeclared table"):
        PIPELINE.flow("nope", 10, Match(in_port=3), (), owner="base")
    with pytest.raises(FlowError, match="undeclared table"):
        PIPELINE.flow("classifier", 10, Match(in_port=3), (Goto("nope"),), owner="base")


def test_undeclared_match_field_rejected():
    with pytest.raises(FlowError, match="not declared for this table"):
        PIPELINE.flow("l2_fwd", 10, Match(in_port=3), (), owner="base")
    with pytest.raises(FlowError, match="not declared"):
        PIPELINE.flow("classifier", 10, Match(VPC_ID.eq(7)), (), owner="base")


def test_priority_zero_with_match_rejected():
    with pytest.raises(FlowError, match="priority-0"):
        PIPELINE.flow("l2_fwd", 0, Match(SUBNET_ID.eq(5)), (), owner="base")


def test_undeclared_resubmit_rejected():
    with pytest.raises(FlowError, match="resubmit"):
        PIPELINE.flow("output", 10, Match(SUBNET_ID.eq(5)), (Resubmit("classifier"),), owner="base")


def test_declared_backward_resubmit_allowed():
    tables = (Table("a", Stage.CLASSIFY, ("b",), "next", frozenset({"in_port"})),
              Table("b", Stage.OUTPUT, (), "drop", frozenset({"in_port"}), resubmit_tables=("a",)))
    p = Pipeline(tables)
    assert p.check(Flow("b", 5, Match(in_port=1), (Resubmit("a"),))).table == "b"
    with pytest.raises(FlowError, match="backward"):
        p.check(Flow("b", 5, Match(in_port=1), (Goto("a"),)))


def test_bad_declarations_rejected():
    with pytest.raises(FlowError, match="not forward"):
        Pipeline((Table("a", Stage.CLASSIFY, (), "drop", frozenset()),
                  Table("b", Stage.OUTPUT, ("a",), "drop", frozenset())))
    with pytest.raises(FlowError, match="miss target"):
        Pipeline((Table("a", Stage.CLASSIFY, (), "next", frozenset()),
                  Table("b", Stage.OUTPUT, (), "drop", frozenset())))


def test_numbers_do_not_depend_on_other_stages():
    # dropping a whole stage leaves the other tables' numbers alone
    without_routing = Pipeline(tuple(
        Table(t.name, t.stage, tuple(n for n in t.next_tables if n not in ("l3_fwd", "l3_neigh")) or
              (("arp_responder",) if t.name == "egress_policy" else ()),
              t.miss, t.match_fields) for t in PIPELINE.tables if t.stage != Stage.ROUTING))
    assert {t.name: t.id for t in without_routing.tables} == {
        k: v for k, v in EXPECTED_IDS.items() if k not in ("l3_fwd", "l3_neigh")}


def test_action_prerequisites_checked():
    with pytest.raises(FlowError, match="requires arp"):
        PIPELINE.flow("l3_fwd", 10, Match(FROM_POD), (SetField("arp_op", 2),), owner="base")
    with pytest.raises(FlowError, match="requires ip or ipv6"):
        PIPELINE.flow("l3_fwd", 10, Match(FROM_POD), (DecTtl(),), owner="base")
    assert PIPELINE.flow("l3_fwd", 10, Match(ARP, FROM_POD), (SetField("arp_op", 2),), owner="base")
