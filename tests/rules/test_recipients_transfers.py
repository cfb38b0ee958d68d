"""Transfers: month coverage and its reasons in the contract's order, the withholding check, the cap,
returns applied oldest first, the lag hold, and the records a transfer emits."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, strategies as st

from models.fund import Overpayment, PostedSocialPayment, RecipientAccount
from rules import codes
from rules.recipients import (
    amounts_consistent,
    apply_decision,
    apply_to_overpayments,
    classify_payment,
    classify_return,
    decide_transfer,
    held,
    new_state,
    withheld_at,
)
from rules.recipients.months import month_index
from tests.fund_cases import IIN, PERSON, TYPE, decision, transfer

AT = "2025-01-01T00:00:00.000+05:00"


def run(*decisions, state=None):
    state = state or new_state(IIN, TYPE)
    for d in decisions:
        outcome, state = apply_decision(state, d, PERSON)
        assert outcome.status == "applied", outcome
    return state


def post(state, t, hold=False):
    return decide_transfer(state, t, PERSON, AT, hold=hold)


def reason(state, period, gross="1000.00", **kw):
    return classify_payment(state, transfer(period, gross, **kw)).reason


# --- coverage ------------------------------------------------------------------------------------------

def test_no_assignment_and_refused():
    assert reason(new_state(IIN, TYPE), "2025-03") == codes.NO_ASSIGNMENT
    refused = run(decision("refuse", "2025-03-01"))
    assert reason(refused, "2025-03") == codes.REFUSED


def test_refused_after_an_assignment_is_judged_by_the_assignment():
    state = run(decision("assign", "2025-03-01", end_date="2025-04-30"), decision("terminate", "2025-04-01"),
                decision("refuse", "2025-05-01"))
    assert reason(state, "2025-03") is None
    assert reason(state, "2025-05") == codes.TERMINATED


def test_a_period_after_the_month_of_receipt_is_outside_the_term_first():
    state = run(decision("assign", "2025-03-01"), decision("terminate", "2025-04-01"))
    # Received in April for June: OUTSIDE_TERM comes before TERMINATED.
    assert reason(state, "2025-06", received_at="2025-04-25T11:00:00+05:00") == codes.OUTSIDE_TERM
    assert reason(state, "2025-06", received_at="2025-06-25T11:00:00+05:00") == codes.TERMINATED


def test_month_of_receipt_is_almaty():
    state = run(decision("assign", "2025-03-01"))
    # 2025-03-31T20:00Z is April 1st 01:00 in Almaty: April is not after the month of receipt.
    assert reason(state, "2025-04", received_at="2025-03-31T20:00:00+00:00") is None
    assert reason(state, "2025-04", received_at="2025-03-31T18:00:00+00:00") == codes.OUTSIDE_TERM


def test_before_the_first_month_and_after_the_end_are_outside_the_term():
    state = run(decision("assign", "2025-03-15", term_months=2))
    assert reason(state, "2025-02") == codes.OUTSIDE_TERM
    assert reason(state, "2025-03") is None  # becomes active during the month
    assert reason(state, "2025-04") is None
    assert reason(state, "2025-05") == codes.OUTSIDE_TERM  # natural end: not TERMINATED


def test_terminated_month_after_the_end():
    state = run(decision("assign", "2025-03-01"), decision("terminate", "2025-05-16"))
    assert reason(state, "2025-05") is None  # ends on the 15th: the month is still in the term
    assert reason(state, "2025-06") == codes.TERMINATED
    assert reason(state, "2025-02") == codes.OUTSIDE_TERM


def test_suspended_on_the_first_day():
    state = run(decision("assign", "2025-03-01"), decision("suspend", "2025-05-15"),
                decision("resume", "2025-07-10"))
    assert reason(state, "2025-05") is None  # active on May 1st
    assert reason(state, "2025-06") == codes.SUSPENDED
    assert reason(state, "2025-07") is None  # becomes active during July
    assert reason(state, "2025-08") is None


def test_suspended_then_terminated_month_reasons():
    state = run(decision("assign", "2025-03-01"), decision("suspend", "2025-04-01"),
                decision("terminate", "2025-06-01"))
    assert reason(state, "2025-05") == codes.SUSPENDED
    assert reason(state, "2025-06") == codes.TERMINATED


def test_decisions_take_effect_in_arrival_order_each_from_its_date():
    # A resume arriving after a suspend but effective before it wins from its own date on.
    state = run(decision("assign", "2025-03-01"), decision("suspend", "2025-06-01"),
                decision("resume", "2025-05-20"))
    assert reason(state, "2025-06") is None
    state = run(decision("assign", "2025-03-01"), decision("suspend", "2025-06-01"))
    assert reason(state, "2025-06") == codes.SUSPENDED


def test_the_judged_assignment_is_the_latest_whose_term_holds_the_period():
    state = run(decision("assign", "2025-01-01", monthly_amount="10000.00"), decision("terminate", "2025-04-01"),
                decision("assign", "2025-06-01", monthly_amount="20000.00"))
    split = classify_payment(state, transfer("2025-02", "15000.00"))
    assert (split.covered, split.overpaid, split.reason, split.assignment_no) == (1000000, 500000,
                                                                                  codes.EXCEEDS_ASSIGNED, 1)
    split = classify_payment(state, transfer("2025-07", "15000.00"))
    assert (split.covered, split.assignment_no) == (1500000, 2)
    # Between the two: no term holds it; judged by the latest (before its first month).
    split = classify_payment(state, transfer("2025-05", "15000.00"))
    assert (split.reason, split.assignment_no) == (codes.OUTSIDE_TERM, None)


# --- KNP, amounts, withholding -------------------------------------------------------------------------

def test_knp_mismatch_comes_first():
    state = run(decision("assign", "2025-03-01"))
    t = transfer("2025-03", "1000.00", knp="049", withheld="1.00", net="5.00")  # also inconsistent
    assert classify_payment(state, t).reason == codes.KNP_MISMATCH
    assert classify_payment(state, transfer("2025-03", "1000.00", knp="027")).reason == codes.KNP_MISMATCH


@pytest.mark.parametrize("payment_type", list(codes.SOCIAL_PAYMENT_KNPS))
def test_each_types_knp(payment_type):
    state = run(decision("assign", "2025-03-01", payment_type=payment_type), state=new_state(IIN, payment_type))
    t = transfer("2025-03", "1000.00", payment_type=payment_type)
    assert classify_payment(state, t).reason is None
    pay, ret = codes.SOCIAL_PAYMENT_KNPS[payment_type]
    assert t.knp == pay
    assert classify_payment(state, transfer("2025-03", "1000.00", payment_type=payment_type, knp=ret)).reason \
        == codes.KNP_MISMATCH


@pytest.mark.parametrize("gross, withheld, ok", [
    ("65000.05", "6500.01", True),  # 6500.005 rounds half up
    ("65000.05", "6500.00", False),  # half-even would give this
    ("32903.23", "3290.32", True),
    ("32903.23", "3290.33", False),
    ("100.00", "0.00", False),
])
def test_withheld_at_the_rate_half_up(gross, withheld, ok):
    state = run(decision("assign", "2025-03-01", monthly_amount="70000.00", pension_contribution_rate="0.10"))
    split = classify_payment(state, transfer("2025-04", gross, withheld=withheld))
    assert (split.reason is None) == ok
    if not ok:
        assert split.reason == codes.AMOUNT_INCONSISTENT and split.overpaid == int(Decimal(gross) * 100)


def test_gross_must_equal_withheld_plus_net():
    state = run(decision("assign", "2025-03-01"))
    assert reason(state, "2025-03", withheld="10.00", net="900.00") == codes.AMOUNT_INCONSISTENT


@pytest.mark.parametrize("withheld", ["0.00", "100.00", "1000.00"])
def test_without_a_rate_any_withheld_up_to_gross_passes(withheld):
    state = run(decision("assign", "2025-03-01"))
    assert reason(state, "2025-03", withheld=withheld) is None


def test_amount_inconsistent_comes_before_coverage():
    assert reason(new_state(IIN, TYPE), "2025-03", withheld="1.00", net="1.00") == codes.AMOUNT_INCONSISTENT


@given(st.integers(1, 10**14 - 1), st.integers(0, 10000))
def test_withheld_at_matches_decimal_half_up(gross, rate_bp):
    rate = str(Decimal(rate_bp) / 10000)
    expected = (Decimal(gross) / 100 * Decimal(rate)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100
    assert withheld_at(gross, rate) == int(expected)
    w = withheld_at(gross, rate)
    assert amounts_consistent(gross, w, gross - w, rate)


# --- the cap -------------------------------------------------------------------------------------------

def test_cap_counts_covered_gross_already_posted_for_the_period():
    state = run(decision("assign", "2025-03-01"))
    first = post(state, transfer("2025-04", "40000.00"))
    second = post(first.state, transfer("2025-04", "30000.00"))
    assert (second.outcome.covered, second.outcome.overpaid, second.outcome.reason) == (2000000, 1000000,
                                                                                       codes.EXCEEDS_ASSIGNED)
    third = post(second.state, transfer("2025-04", "5.00"))
    assert (third.outcome.covered, third.outcome.overpaid) == (0, 500)
    # Another period has its own cap.
    assert post(third.state, transfer("2025-05", "60000.00")).outcome.overpaid == 0


def test_overpaid_payments_do_not_use_the_cap():
    state = run(decision("assign", "2025-03-01"), decision("suspend", "2025-05-01"))
    s = post(state, transfer("2025-05", "60000.00")).state  # SUSPENDED: all overpaid
    s = run(decision("resume", "2025-05-10"), state=s)
    split = post(s, transfer("2025-05", "60000.00")).outcome
    assert (split.covered, split.overpaid) == (6000000, 0)


def test_cap_against_the_amount_in_force_for_the_month():
    state = run(decision("assign", "2025-03-01"), decision("recalculate", "2025-05-10", monthly_amount="65000.00"))
    assert classify_payment(state, transfer("2025-05", "65000.00")).overpaid == 500000
    assert classify_payment(state, transfer("2025-06", "65000.00")).overpaid == 0


# --- returns -------------------------------------------------------------------------------------------

def overpaid_twice():
    state = run(decision("assign", "2025-03-01"), decision("suspend", "2025-06-01"))
    state = post(state, transfer("2025-04", "61000.00")).state  # 1000.00 over
    state = post(state, transfer("2025-06", "500.00")).state  # suspended: 500.00
    assert state.outstanding == 150000
    return state


def test_return_applied_oldest_first():
    state = overpaid_twice()
    out = post(state, transfer("2025-06", "1200.00", kind="return"))
    assert (out.outcome.applied, out.outcome.unmatched, out.outcome.reason) == (120000, 0, None)
    assert [o[0:3:2] for o in out.state.overpayments] == [[state.overpayments[1][0], 30000]]
    assert out.emission.get("fund.overpayments") == []


def test_return_beyond_outstanding_is_unmatched():
    state = overpaid_twice()
    out = post(state, transfer("2025-06", "2000.00", kind="return"))
    assert (out.outcome.applied, out.outcome.unmatched, out.outcome.reason) == (150000, 50000,
                                                                                codes.RETURN_EXCEEDS_OUTSTANDING)
    assert out.state.outstanding == 0 and out.state.overpayments == []
    rec = out.emission.get("fund.overpayments")[0]["value"]
    assert (rec["kind"], rec["amount"], rec["outstanding_after"]) == ("unmatched_return", "500.00", "0.00")


@pytest.mark.parametrize("changes, why", [
    ({"knp": "048"}, codes.KNP_MISMATCH),
    ({"withheld": "1.00", "net": "1.00"}, codes.AMOUNT_INCONSISTENT),
])
def test_bad_return_is_wholly_unmatched(changes, why):
    state = overpaid_twice()
    out = post(state, transfer("2025-06", "100.00", kind="return", **changes))
    assert (out.outcome.applied, out.outcome.unmatched, out.outcome.reason) == (0, 10000, why)
    assert out.state.outstanding == 150000 and out.state.returned == 10000


def test_return_has_no_rate_check():
    state = run(decision("assign", "2025-03-01", pension_contribution_rate="0.10"))
    assert classify_return(state, transfer("2025-04", "100.00", kind="return")).reason == \
        codes.RETURN_EXCEEDS_OUTSTANDING


def test_apply_to_overpayments():
    assert apply_to_overpayments([["a", "2025-01", 5], ["b", "2025-02", 7]], 6) == [["b", "2025-02", 6]]
    assert apply_to_overpayments([["a", "2025-01", 5]], 0) == [["a", "2025-01", 5]]
    with pytest.raises(ValueError):
        apply_to_overpayments([["a", "2025-01", 5]], 6)


# --- the lag hold ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("setup, period, is_held", [
    ([], "2025-04", True),  # NO_ASSIGNMENT
    ([("refuse", "2025-03-01")], "2025-04", False),  # REFUSED
    ([("assign", "2025-05-01")], "2025-04", True),  # OUTSIDE_TERM
    ([("assign", "2025-03-01"), ("terminate", "2025-04-01")], "2025-04", False),  # TERMINATED
    ([("assign", "2025-03-01"), ("suspend", "2025-04-01")], "2025-04", False),  # SUSPENDED
    ([("assign", "2025-03-01")], "2025-04", False),  # covered
])
def test_which_payments_wait(setup, period, is_held):
    state = run(*[decision(k, d) for k, d in setup])
    out = post(state, transfer(period, "1000.00"), hold=True)
    assert out.held == is_held
    if is_held:
        assert not out.emission and out.state is state


def test_exceeding_payment_waits_and_knp_mismatch_does_not():
    state = run(decision("assign", "2025-03-01"))
    assert post(state, transfer("2025-04", "60000.01"), hold=True).held
    assert not post(state, transfer("2025-04", "60000.01", knp="027"), hold=True).held


def test_returns_never_wait():
    out = post(new_state(IIN, TYPE), transfer("2025-04", "100.00", kind="return"), hold=True)
    assert not out.held and out.outcome.unmatched == 10000


def test_held_payment_posts_when_its_decision_arrives():
    t = transfer("2025-04", "1000.00")
    state = new_state(IIN, TYPE)
    assert post(state, t, hold=True).held
    state = run(decision("assign", "2025-04-01"), state=state)
    out = post(state, t, hold=True)
    assert not out.held and out.outcome.covered == 100000


def test_held_reasons():
    assert held(classify_payment(new_state(IIN, TYPE), transfer("2025-04", "1.00")))
    assert codes.DECISION_LAG_REASONS == {codes.NO_ASSIGNMENT, codes.OUTSIDE_TERM, codes.EXCEEDS_ASSIGNED}


# --- records ---------------------------------------------------------------------------------------------

def test_payment_records():
    state = run(decision("assign", "2025-03-01"))
    out = post(state, transfer("2025-04", "61000.00", transfer_id="T-1"))
    entry = out.emission.get("posted.social-payments")[0]
    PostedSocialPayment.model_validate(entry["value"])
    assert entry["key"] == IIN
    v = entry["value"]
    assert (v["entry_id"], v["covered_amount"], v["overpaid_amount"], v["overpaid_reason"]) == \
        ("T-1", "60000.00", "1000.00", "EXCEEDS_ASSIGNED")
    assert (v["applied_to_overpayment"], v["unmatched_amount"], v["assignment_no"]) == ("0.00", "0.00", 1)
    assert (v["surname"], v["birth_date"]) == ("Ахметов", "1987-03-14")
    over = out.emission.get("fund.overpayments")[0]
    Overpayment.model_validate(over["value"])
    assert (over["value"]["overpayment_id"], over["value"]["amount"], over["value"]["outstanding_after"]) == \
        ("T-1", "1000.00", "1000.00")
    account = out.emission.get("recipients.accounts")[0]
    RecipientAccount.model_validate(account["value"])
    assert account["value"]["paid"] == {"gross": "61000.00", "withheld": "0.00", "net": "61000.00"}


def test_return_records_carry_payment_fields_as_zero():
    out = post(overpaid_twice(), transfer("2025-06", "100.00", kind="return"))
    v = out.emission.get("posted.social-payments")[0]["value"]
    assert (v["covered_amount"], v["overpaid_amount"], v["overpaid_reason"], v["assignment_no"]) == \
        ("0.00", "0.00", None, None)
    assert (v["applied_to_overpayment"], v["unmatched_amount"]) == ("100.00", "0.00")
    assert out.emission.get("recipients.accounts")[0]["value"]["paid"]["gross"] == "61500.00"


def test_transfer_without_any_decision_takes_the_person_from_the_registry():
    out = post(new_state(IIN, TYPE), transfer("2025-04", "100.00"))
    v = out.emission.get("posted.social-payments")[0]["value"]
    assert (v["surname"], v["overpaid_reason"], v["assignment_no"]) == ("Ахметов", "NO_ASSIGNMENT", None)
    account = out.emission.get("recipients.accounts")[0]["value"]
    RecipientAccount.model_validate(account)
    assert (account["state"], account["assignment_no"], account["monthly_amount"]) == ("none", None, None)
    unknown = decide_transfer(new_state(IIN, TYPE), transfer("2025-04", "100.00"), None, AT)
    assert unknown.emission.get("posted.social-payments")[0]["value"]["surname"] is None


def test_amounts_echo_with_two_decimals():
    state = run(decision("assign", "2025-03-01"))
    out = post(state, transfer("2025-04", "100", withheld="0", net="100"))
    v = out.emission.get("posted.social-payments")[0]["value"]
    assert (v["gross_amount"], v["pension_contribution_withheld"], v["net_amount"], v["total_amount"]) == \
        ("100.00", "0.00", "100.00", "100.00")


def test_received_at_echoed_in_almaty():
    state = run(decision("assign", "2025-03-01"))
    out = post(state, transfer("2025-04", "100.00", received_at="2025-04-25T06:00:00Z"))
    assert out.emission.get("posted.social-payments")[0]["value"]["received_at"] == "2025-04-25T11:00:00+05:00"


def test_month_index():
    assert month_index(2025, 1) == 2025 * 12
