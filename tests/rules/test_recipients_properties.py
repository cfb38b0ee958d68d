"""Property tests of the recipients ledger: for any sequence of decisions and transfers (ids that
repeat included), money is conserved, nothing outstanding goes negative, the state survives its
JSON form, and replaying the same records changes nothing."""
from __future__ import annotations

from datetime import date, timedelta

import orjson
from hypothesis import HealthCheck, event, given, settings, strategies as st

from models.fund import DecisionResult, Overpayment, PostedSocialPayment, RecipientAccount
from rules.money import parse_amount
from rules.recipients import TRANSITIONS, RecipientState, decide_decision, decide_transfer, new_state
from tests.fund_cases import IIN, PERSON, TYPE, decision, recipient, transfer

AT = "2025-01-01T00:00:00.000+05:00"
MODELS = {"fund.decision-results": DecisionResult, "recipients.accounts": RecipientAccount,
          "posted.social-payments": PostedSocialPayment, "fund.overpayments": Overpayment}
# One year, so that decisions and transfers meet: most payments fall within some assignment.
DAYS = st.dates(date(2025, 1, 1), date(2025, 12, 31))
PERIODS = st.builds(lambda m: f"2025-{m:02d}", st.integers(1, 12))
KINDS = ["assign"] * 3 + ["recalculate"] * 2 + ["suspend"] * 2 + ["resume"] * 2 + ["terminate", "refuse"]
AMOUNTS = st.sampled_from(["0.00", "10000.00", "60000.00", "65000.50", "99999.99"])


@st.composite
def decisions(draw):
    kind = draw(st.sampled_from(KINDS))
    day = draw(DAYS)
    fields = {}
    if kind in ("assign", "recalculate"):
        fields["monthly_amount"] = draw(AMOUNTS)
        fields["pension_contribution_rate"] = draw(st.sampled_from([None, None, "0.10", "0.10", "0.05"]))
        fields["term_months"] = draw(st.none() | st.integers(1, 12))
        fields["end_date"] = None
        if draw(st.integers(0, 4)) == 0:
            fields["end_date"] = (day + timedelta(days=draw(st.integers(-40, 400)))).isoformat()
    if draw(st.integers(0, 9)) == 0:
        fields["recipient"] = recipient(surname="Другой")  # RECIPIENT_MISMATCH on an assign
    return decision(kind, day.isoformat(), decision_id=f"D{draw(st.integers(0, 14))}", **fields)


@st.composite
def transfers(draw):
    kind = draw(st.sampled_from(["payment", "payment", "return"]))
    period = draw(PERIODS)
    gross = draw(st.integers(1, 8_000_000))
    rule = draw(st.sampled_from(["rate"] * 4 + ["zero", "any", "inconsistent"]))
    if rule == "rate":
        withheld = (gross + 5) // 10  # 0.10 half up
    elif rule == "zero":
        withheld = 0
    else:
        withheld = draw(st.integers(0, gross))
    net = gross - withheld + (1 if rule == "inconsistent" else 0)
    y, m = int(period[:4]), int(period[5:])
    lag = draw(st.sampled_from([-1, 0, 0, 0, 1, 2]))  # -1: received the month before the period
    month = y * 12 + m - 1 + lag
    received = f"{month // 12}-{month % 12 + 1:02d}-{draw(st.integers(1, 28)):02d}T11:00:00+05:00"
    knp = draw(st.sampled_from([None] * 15 + ["048", "049", "027"]))
    fmt = lambda t: f"{t // 100}.{t % 100:02d}"  # noqa: E731
    return transfer(period, fmt(gross), kind=kind, withheld=fmt(withheld), net=fmt(net), received_at=received,
                    knp=knp, transfer_id=f"T{draw(st.integers(0, 19))}")


@st.composite
def early_assign(draw):
    day = draw(st.dates(date(2025, 1, 1), date(2025, 3, 31)))
    return decision("assign", day.isoformat(), decision_id=f"D{draw(st.integers(0, 14))}",
                    monthly_amount=draw(AMOUNTS), pension_contribution_rate=draw(st.sampled_from([None, "0.10"])))


# Mostly an assignment first, so that later records meet a state worth judging.
RECORDS = st.builds(lambda n, first, rest: ([first] if n else []) + rest, st.integers(0, 4), early_assign(),
                    st.lists(st.one_of(decisions(), transfers(), transfers()), max_size=25))


def decide(state, record, hold=False):
    if hasattr(record, "decision_id"):
        return decide_decision(state, record, PERSON, AT)
    return decide_transfer(state, record, PERSON, AT, hold=hold)


def roundtrip(state: RecipientState) -> RecipientState:
    return RecipientState.from_json(orjson.loads(orjson.dumps(state.to_json())))


def tiyn(s: str) -> int:
    return parse_amount(s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_money_is_conserved_and_state_is_a_plain_value(records):
    state = new_state(IIN, TYPE)
    overpaid = applied = paid_gross = paid_withheld = paid_net = returned = 0
    covered: dict[str, int] = {}
    for record in records:
        before = state.to_json()
        out = decide(state, record)
        assert state.to_json() == before  # the given state is never changed
        for topic, items in out.emission.records.items():
            for item in items:
                MODELS[topic].model_validate(item["value"])
        state = out.state
        assert roundtrip(state).to_json() == state.to_json()
        if out.repeat:
            assert not out.emission
            continue
        if hasattr(record, "decision_id"):
            result = out.emission.get("fund.decision-results")[0]["value"]
            sources, after = TRANSITIONS[record.decision]
            if result["status"] == "applied":
                assert result["state_before"] in sources
                assert result["state_after"] == (after or result["state_before"]) == state.state
            else:
                assert result["state_after"] == result["state_before"] == state.state
            continue
        entry = out.emission.get("posted.social-payments")[0]["value"]
        event(f"{record.kind}: {entry['overpaid_reason'] or 'covered' if record.kind == 'payment' else 'return'}")
        gross = tiyn(entry["gross_amount"])
        if record.kind == "payment":
            assert tiyn(entry["covered_amount"]) + tiyn(entry["overpaid_amount"]) == gross
            assert tiyn(entry["applied_to_overpayment"]) == tiyn(entry["unmatched_amount"]) == 0
            assert (entry["overpaid_reason"] is None) == (entry["overpaid_amount"] == "0.00")
            overpaid += tiyn(entry["overpaid_amount"])
            covered[record.period] = covered.get(record.period, 0) + tiyn(entry["covered_amount"])
            paid_gross += gross
            paid_withheld += tiyn(entry["pension_contribution_withheld"])
            paid_net += tiyn(entry["net_amount"])
        else:
            assert tiyn(entry["applied_to_overpayment"]) + tiyn(entry["unmatched_amount"]) == gross
            assert tiyn(entry["covered_amount"]) == tiyn(entry["overpaid_amount"]) == 0
            applied += tiyn(entry["applied_to_overpayment"])
            returned += gross
        over = out.emission.get("fund.overpayments")
        if over:
            assert tiyn(over[0]["value"]["amount"]) > 0
            assert tiyn(over[0]["value"]["outstanding_after"]) == state.outstanding
        account = out.emission.get("recipients.accounts")[0]["value"]
        assert tiyn(account["overpaid_outstanding"]) == state.outstanding
        assert state.outstanding == overpaid - applied >= 0
        assert all(o[2] > 0 for o in state.overpayments)
    assert (state.paid_gross, state.paid_withheld, state.paid_net, state.returned) == \
        (paid_gross, paid_withheld, paid_net, returned)
    assert {p: c for p, c in covered.items() if c} == state.covered


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_replaying_the_same_records_changes_nothing(records):
    state = new_state(IIN, TYPE)
    emitted = []
    for record in records:
        out = decide(state, record)
        state = out.state
        emitted.append(out.emission.to_json())
    final = state.to_json()
    for record in records:
        out = decide(state, record)
        assert out.repeat and not out.emission and out.state is state
    assert state.to_json() == final
    # Deciding the same sequence again from scratch gives the same records.
    again = new_state(IIN, TYPE)
    for record, first in zip(records, emitted):
        out = decide(again, record)
        again = out.state
        assert out.emission.to_json() == first
    assert again.to_json() == final


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_a_held_payment_changes_nothing_and_decides_as_without_the_hold(records):
    state = new_state(IIN, TYPE)
    for record in records:
        held = decide(state, record, hold=True)
        if held.held:
            assert held.state is state and not held.emission
            assert record.kind == "payment"
            assert held.outcome.reason in ("NO_ASSIGNMENT", "OUTSIDE_TERM", "EXCEEDS_ASSIGNED")
            continue
        plain = decide(state, record, hold=False)
        assert held.emission.to_json() == plain.emission.to_json()
        assert held.state.to_json() == plain.state.to_json()
        state = held.state
