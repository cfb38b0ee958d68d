"""The registry-lag hold as pure functions: `hold_cutoff`, `decide_order` with the hold on,
`recheck_held`, which held orders are due for a re-check, and the pending gauges."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.notifications import CreditNotification
from rules import codes
from rules.calendar import ALMATY
from rules.holds import (
    DEFAULT_MODE, NO_HOLD, HeldOrder, HoldPolicy, due_for_recheck, hold_cutoff, pending_view,
)
from rules.posting import HELD, POSTED, REFUNDED, Person, decide_order, recheck_held, summarize

from ..cases import A, B, F_UNKNOWN, _line, _order
from ..strategies import orders

THURSDAY = datetime.fromisoformat("2026-11-26T10:15:00+05:00")
LATE = Person("Жұмабаев", "Дәурен", None, "1990-05-05")


def parse(order: dict) -> CreditNotification:
    return CreditNotification.model_validate_json(json.dumps(order, ensure_ascii=False))


def late_order() -> CreditNotification:
    """Line 1 matches; line 2 names a person not in the registry yet; line 3 has a bad check digit."""
    late = {"line_no": 2, "iin": F_UNKNOWN, "surname": LATE.surname, "name": LATE.name, "patronymic": None,
            "birth_date": LATE.birth_date, "amount": "5000.00"}
    return parse(_order("HOLD-1", [_line(1, A), late, _line(3, B, iin="921102423451")]))


# ---- hold_cutoff ---------------------------------------------------------------------------------

def test_cutoff_is_the_margin_before_the_end_of_the_next_business_day(calendar):
    cutoff = hold_cutoff(THURSDAY, timedelta(minutes=30), calendar)
    assert cutoff == datetime.fromisoformat("2026-11-27T23:30:00+05:00")


def test_friday_receipt_waits_for_monday(calendar):
    friday = datetime.fromisoformat("2026-11-27T23:59:00+05:00")
    assert hold_cutoff(friday, timedelta(0), calendar) == datetime.fromisoformat("2026-12-01T00:00:00+05:00")


def test_policy_off_has_no_cutoff_and_the_default_is_on_with_30_minutes(calendar):
    assert NO_HOLD.cutoff(THURSDAY, calendar) is None
    default = HoldPolicy.from_mode(DEFAULT_MODE, 30.0)
    assert default == HoldPolicy()
    assert default.cutoff(THURSDAY, calendar) == hold_cutoff(THURSDAY, timedelta(minutes=30), calendar)
    with pytest.raises(ValueError):
        HoldPolicy.from_mode("sometimes", 30.0)


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(ALMATY)),
       margin_min=st.integers(min_value=0, max_value=24 * 60))
def test_cutoff_properties(calendar, moment, margin_min):
    margin = timedelta(minutes=margin_min)
    cutoff = hold_cutoff(moment, margin, calendar)
    deadline = calendar.receipt_deadline(moment)
    assert cutoff == deadline - margin
    # The deadline ends a business day after the receipt's day: a margin of up to a day still leaves
    # the hold some time, and more margin never makes it longer.
    assert cutoff > moment
    assert hold_cutoff(moment, margin + timedelta(minutes=1), calendar) < cutoff
    assert deadline.astimezone(ALMATY).time() == datetime.min.time()


# ---- decide_order with the hold on -----------------------------------------------------------------

def test_hold_holds_only_what_a_late_registry_record_can_cure(persons, calendar):
    decision = decide_order(late_order(), persons, calendar, hold=True)
    assert [(d.line_no, d.outcome, d.reason) for d in decision.lines] == [
        (1, POSTED, None), (2, HELD, codes.IIN_NOT_FOUND), (3, REFUNDED, codes.INVALID_IIN)]
    assert not decision.complete
    assert summarize(decision).status is None
    assert [d.tiyn for d in decision.lines] == [425000, 500000, 425000]


def test_without_the_hold_the_same_line_is_refunded_at_once(persons, calendar):
    decision = decide_order(late_order(), persons, calendar, hold=False)
    assert decision.complete
    assert decision.lines[1].outcome == REFUNDED and decision.lines[1].reason == codes.IIN_NOT_FOUND


@settings(max_examples=300, deadline=None)
@given(order=orders())
def test_holding_then_refunding_at_the_cutoff_equals_deciding_at_once(persons, calendar, order):
    parsed = parse(order)
    held = decide_order(parsed, persons, calendar, hold=True)
    at_once = decide_order(parsed, persons, calendar, hold=False)
    for h, now in zip(held.lines, at_once.lines):
        if h.outcome == HELD:
            assert h.reason in codes.REGISTRY_LAG_REASONS and h.reason == now.reason and now.outcome == REFUNDED
        else:
            assert h == now
    # Nothing changed in the registry: the final re-check gives what deciding at once gave.
    assert recheck_held(parsed, held, persons, final=True) == at_once


# ---- recheck_held ----------------------------------------------------------------------------------

def test_a_late_registry_record_posts_the_held_line(persons, calendar):
    order = late_order()
    held = decide_order(order, persons, calendar, hold=True)
    now_known = {**persons, F_UNKNOWN: LATE}
    after = recheck_held(order, held, now_known, final=False)
    assert [(d.line_no, d.outcome) for d in after.lines] == [(1, POSTED), (2, POSTED), (3, REFUNDED)]
    assert after.lines[1].person == LATE
    assert after.lines[0] is held.lines[0] and after.lines[2] is held.lines[2]
    result = summarize(after)
    assert (result.status, result.posted_tiyn, result.refunded_tiyn) == ("partially_refunded", 925000, 425000)


def test_a_still_failing_line_stays_held_until_the_cutoff_then_is_refunded(persons, calendar):
    order = late_order()
    held = decide_order(order, persons, calendar, hold=True)
    assert recheck_held(order, held, persons, final=False) == held
    final = recheck_held(order, held, persons, final=True)
    assert final.lines[1].outcome == REFUNDED and final.lines[1].reason == codes.IIN_NOT_FOUND
    assert final.complete


def test_a_name_fixed_in_the_registry_still_fails_on_another_lag_reason(persons, calendar):
    order = late_order()
    held = decide_order(order, persons, calendar, hold=True)
    wrong_birth = replace(LATE, birth_date="1990-05-06")
    after = recheck_held(order, held, {**persons, F_UNKNOWN: wrong_birth}, final=False)
    assert after.lines[1].outcome == HELD and after.lines[1].reason == codes.BIRTH_DATE_MISMATCH


person_views = st.fixed_dictionaries({}, optional={F_UNKNOWN: st.sampled_from([LATE, replace(LATE, name="Other")])})


@settings(max_examples=300, deadline=None)
@given(order=orders(), late=person_views, final=st.booleans())
def test_recheck_never_changes_a_decided_line_and_conserves_amounts(persons, calendar, order, late, final):
    parsed = parse(order)
    held = decide_order(parsed, persons, calendar, hold=True)
    after = recheck_held(parsed, held, {**persons, **late}, final=final)
    assert len(after.lines) == len(held.lines)
    for before, now in zip(held.lines, after.lines):
        if before.outcome != HELD:
            assert now == before
        assert now.tiyn == before.tiyn
    if final:
        assert after.complete
    if after.complete:
        s = summarize(after)
        assert s.posted_tiyn + s.refunded_tiyn == s.total_tiyn


# ---- which held orders are due -----------------------------------------------------------------------

NOW = 1_800_000_000.0


def held(nid: str, partition: int = 0, cutoff: float = NOW + 3600, emit: bool = False) -> HeldOrder:
    return HeldOrder(nid, partition, cutoff, NOW - 600, 2, emit)


def test_due_are_touched_past_cutoff_and_unsent_orders_of_owned_partitions():
    open_orders = [held("touched"), held("past", cutoff=NOW - 1), held("at", cutoff=NOW), held("unsent", emit=True),
                   held("waiting"), held("elsewhere", partition=3, cutoff=NOW - 1)]
    due = due_for_recheck(open_orders, owned={0, 1}, touched={"touched", "elsewhere"}, now=NOW)
    assert due == {"touched", "past", "at", "unsent"}


def test_on_restore_every_held_order_of_the_restored_partitions_is_due():
    open_orders = [held("a"), held("b", partition=1), held("c", partition=2)]
    assert due_for_recheck(open_orders, owned={0, 1}, touched=set(), now=NOW, restoring=True) == {"a", "b"}


held_orders = st.lists(st.builds(
    HeldOrder, st.text(min_size=1, max_size=6), st.integers(0, 3), st.floats(NOW - 100, NOW + 100),
    st.floats(NOW - 1000, NOW), st.integers(0, 5), st.booleans()), max_size=12)


@settings(max_examples=200, deadline=None)
@given(open_orders=held_orders, owned=st.sets(st.integers(0, 3)), touched=st.sets(st.text(max_size=6)),
       restoring=st.booleans())
def test_due_is_a_subset_of_the_owned_open_orders_and_restore_adds_only(open_orders, owned, touched, restoring):
    due = due_for_recheck(open_orders, owned, touched, NOW, restoring)
    assert due <= {o.notification_id for o in open_orders if o.partition in owned}
    assert due <= due_for_recheck(open_orders, owned, touched, NOW, restoring=True)
    for o in open_orders:
        if o.partition in owned and (o.cutoff <= NOW or o.emit_pending or o.notification_id in touched):
            assert o.notification_id in due


def test_pending_view_counts_the_owned_partitions_only():
    open_orders = [held("a", cutoff=NOW + 60), held("b", partition=1, cutoff=NOW + 30), held("c", partition=2)]
    view = pending_view(open_orders, owned={0, 1}, now=NOW)
    assert (view.lines, view.oldest_age_s, view.next_cutoff_s) == (4, 600.0, 30.0)
    assert pending_view([], owned={0}, now=NOW) == type(view)(0, 0.0, 0.0)
