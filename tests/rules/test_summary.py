"""An order's decision counted once (`summarize`), its status, and its amounts read once."""
from __future__ import annotations

import json

import pytest

from models.notifications import CreditNotification
from rules import codes
from rules.posting import (
    POSTED, REFUNDED, LineDecision, OrderDecision, decide_order, order_status, paired_lines, read_amounts,
    summarize, with_amounts,
)

from ..cases import A, B, _line, _order


def parse(order: dict) -> CreditNotification:
    return CreditNotification.model_validate_json(json.dumps(order, ensure_ascii=False))


@pytest.mark.parametrize("total,posted,whole,status", [
    (3, 3, False, "posted"), (3, 0, False, "refunded"), (3, 1, False, "partially_refunded"),
    (2, 0, True, "refunded"), (0, 0, True, "refunded"), (1, 1, False, "posted"),
])
def test_order_status_counts_lines(total, posted, whole, status):
    assert order_status(total, posted, whole) == status
    assert status in codes.ORDER_STATUSES


def test_a_refunded_zero_line_still_makes_the_order_partially_refunded():
    decision = OrderDecision(None, (LineDecision(1, POSTED, tiyn=500), LineDecision(2, REFUNDED, "AMOUNT_INVALID", tiyn=0)),
                             500)
    s = summarize(decision)
    assert (s.status, s.posted_tiyn, s.refunded_tiyn, s.lines_refunded) == ("partially_refunded", 500, 0, 1)


def test_whole_order_refund_returns_the_total_even_with_unreadable_lines(persons, calendar):
    order = parse(_order("W-1", [_line(1, A), _line(2, B, "-100.00")], total="4150.00"))
    decision = decide_order(order, persons, calendar)
    assert decision.order_reason == codes.TOTAL_MISMATCH
    assert [d.tiyn for d in decision.lines] == [425000, None]
    s = summarize(decision)
    assert (s.status, s.posted_tiyn, s.refunded_tiyn, s.total_tiyn) == ("refunded", 0, 415000, 415000)


def test_amounts_are_read_once_into_tiyn():
    order = parse(_order("M-1", [_line(1, A, "4250.5"), _line(2, B, "12")]))
    assert read_amounts(order).lines == (425050, 1200)
    assert read_amounts(order).total == 426250


def test_a_broken_conservation_is_refused():
    decision = OrderDecision(None, (LineDecision(1, POSTED, tiyn=100),), 101)
    with pytest.raises(ValueError, match="not conserved"):
        summarize(decision)


def test_a_decision_of_another_order_is_refused(persons, calendar):
    order = parse(_order("X-1", [_line(1, A), _line(2, B)]))
    other = parse(_order("X-2", [_line(1, A), _line(3, B)]))
    with pytest.raises(ValueError, match="does not belong"):
        list(paired_lines(order, decide_order(other, persons, calendar)))


def test_a_format_1_decision_gets_its_amounts_from_the_order(persons, calendar):
    order = parse(_order("V-1", [_line(1, A, "10.50"), _line(2, B, "0.50")]))
    decision = decide_order(order, persons, calendar)
    stripped = OrderDecision(decision.order_reason,
                             tuple(LineDecision(d.line_no, d.outcome, d.reason, d.person) for d in decision.lines))
    assert with_amounts(order, stripped) == decision
    assert with_amounts(order, decision) is decision
