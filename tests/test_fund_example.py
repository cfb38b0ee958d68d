"""The acceptance test of the recipients rules: the contract's Part 2 example (tests/data/fund-*.json)
reproduced in process, every input giving exactly the expected records on every topic.

The refund decisions of the example (fund.refund-decisions -> posted.reversals, refunds.reversals,
their fund.decision-results) belong to the refunds ledger and are skipped here. `<worker clock>`
fields are stamped with that very string, so records compare whole."""
from __future__ import annotations

import json

import pytest

from models.fund import DecisionResult, Overpayment, PaymentDecision, PaymentTransfer, PostedSocialPayment, \
    RecipientAccount
from rules import recipients

from .cases import EXAMPLES

CLOCK = "<worker clock>"
OUR_TOPICS = {"fund.decision-results": DecisionResult, "recipients.accounts": RecipientAccount,
              "posted.social-payments": PostedSocialPayment, "fund.overpayments": Overpayment}
OTHER_TOPICS = ("posted.reversals", "refunds.reversals")
# Fields the product adds to a topic (the contract allows additions), which the example predates.
ADDED_FIELDS = {"fund.decision-results": ("end_date",)}


def contract_fields(topic: str, value: dict) -> dict:
    """`value` without the product's additions to `topic`."""
    return {k: v for k, v in value.items() if k not in ADDED_FIELDS.get(topic, ())}


def _load(name: str):
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def registry() -> dict[str, dict]:
    return {p["iin"]: p for p in _load("registry-persons.json")}


def steps():
    inputs = _load("fund-inputs.json")
    expected = _load("fund-expected-outputs.json")["steps"]
    assert [s["input"] for s in expected] == list(range(1, len(inputs) + 1))
    return [(inp, step) for inp, step in zip(inputs, expected)]


def run_example(hold: bool = False):
    """Feed the example's recipient inputs in order; yield (step, emission) for each."""
    persons = registry()
    states: dict[tuple[str, str], recipients.RecipientState] = {}
    for inp, step in steps():
        if inp["topic"] == "fund.refund-decisions":
            continue
        raw = json.dumps(inp["value"], ensure_ascii=False)
        model = PaymentDecision if inp["topic"] == "fund.payment-decisions" else PaymentTransfer
        record = model.model_validate_json(raw)
        key = (record.iin, record.payment_type)
        state = states.get(key) or recipients.new_state(*key)
        if model is PaymentDecision:
            decided = recipients.decide_decision(state, record, persons.get(record.iin), CLOCK)
        else:
            decided = recipients.decide_transfer(state, record, persons.get(record.iin), CLOCK, hold=hold)
        states[key] = decided.state
        yield step, decided, states


def test_every_recipient_input_gives_exactly_the_expected_records():
    seen = 0
    for step, decided, _ in run_example():
        seen += 1
        emission = decided.emission
        for topic in OTHER_TOPICS:
            assert step["outputs"][topic] == [], step["input"]
        for topic, model in OUR_TOPICS.items():
            want = step["outputs"][topic]
            got = emission.get(topic)
            assert len(got) == len(want), (step["input"], topic)
            for g, w in zip(got, want):
                model.model_validate(g["value"])  # every field of the contract, with its type
                assert g["key"] == w["key"], (step["input"], topic)
                if topic == "recipients.accounts":
                    # The example shows a subset of the account's fields.
                    assert {f: g["value"][f] for f in w["value"]} == w["value"], step["input"]
                else:
                    assert contract_fields(topic, g["value"]) == w["value"], (step["input"], topic)
    assert seen == 11


def test_account_carries_the_recipient_record():
    *_, (step, decided, states) = run_example()
    state = states[("870314312348", "loss_of_job")]
    record = recipients.records.account(state, CLOCK)
    assert record["surname"] == "Ахметов" and record["sex"] == "M" and record["citizenship"] == "KZ"
    assert record["document"]["number"] == "041234567"
    assert record["document_history"] == [{"number": "041234567", "issued_on": "2019-04-02",
                                           "changed_on": "2025-03-20"}]
    assert record["citizenship_history"] == [{"citizenship": "KZ", "changed_on": "2025-03-20"}]
    assert record["end_date"] == "2025-08-31"
    assert record["unemployed_registered_on"] == "2025-03-12"
    assert record["state_since"] == "2025-07-01"  # the last applied decision (the rejected resume is not)
    assert record["average_monthly_income"] == "144444.44"


def test_with_the_hold_on_only_input_3_waits():
    # Input 10 repeats input 3's transfer_id: the agent's record of the held payment makes it a
    # repeat there; at the pure level it is only held again.
    held = [step["input"] for step, decided, _ in run_example(hold=True) if decided.held]
    assert held == [3, 10]


def test_held_payment_decided_at_the_cutoff_gives_the_same_records():
    """Step 3's note: held, re-checked at input 4 (still over the amount), decided at the cut-off."""
    persons = registry()
    by_id = {}
    for inp, _ in steps():
        if inp["topic"] != "fund.refund-decisions":
            by_id.setdefault(inp["value"].get("decision_id") or inp["value"]["transfer_id"], inp)
    expected = {}
    for _, s in steps():
        expected.setdefault(s["id"], s)
    state = recipients.new_state("870314312348", "loss_of_job")
    decision = PaymentDecision.model_validate_json(json.dumps(by_id["GFSS-DEC-2025-000101"]["value"]))
    state = recipients.decide_decision(state, decision, persons["870314312348"], CLOCK).state
    for tid in ("GFSS-TRF-2025-000201",):
        t = PaymentTransfer.model_validate_json(json.dumps(by_id[tid]["value"]))
        state = recipients.decide_transfer(state, t, persons["870314312348"], CLOCK, hold=True).state
    waiting = PaymentTransfer.model_validate_json(json.dumps(by_id["GFSS-TRF-2025-000202"]["value"]))
    first = recipients.decide_transfer(state, waiting, persons["870314312348"], CLOCK, hold=True)
    assert first.held and not first.emission and first.state is state
    recalc = PaymentDecision.model_validate_json(json.dumps(by_id["GFSS-DEC-2025-000102"]["value"]))
    after = recipients.decide_decision(state, recalc, persons["870314312348"], CLOCK)
    # The account after the recalculation shows input 2's figures: the held payment is not posted.
    assert after.emission.get("recipients.accounts")[0]["value"]["paid"]["gross"] == "32903.23"
    again = recipients.decide_transfer(after.state, waiting, persons["870314312348"], CLOCK, hold=True)
    assert again.held
    final = recipients.decide_transfer(after.state, waiting, persons["870314312348"], CLOCK, hold=False)
    want = expected["GFSS-TRF-2025-000202"]["outputs"]
    assert final.emission.get("posted.social-payments") == want["posted.social-payments"]
    assert final.emission.get("fund.overpayments") == want["fund.overpayments"]


@pytest.mark.parametrize("hold", [False, True])
def test_replaying_every_record_changes_nothing(hold):
    for step, decided, states in run_example(hold=hold):
        pass
    persons = registry()
    before = {k: s.to_json() for k, s in states.items()}
    for inp, _ in steps():
        if inp["topic"] == "fund.refund-decisions":
            continue
        raw = json.dumps(inp["value"])
        if inp["topic"] == "fund.payment-decisions":
            record = PaymentDecision.model_validate_json(raw)
            again = recipients.decide_decision(states[(record.iin, record.payment_type)], record,
                                               persons.get(record.iin), CLOCK)
        else:
            record = PaymentTransfer.model_validate_json(raw)
            again = recipients.decide_transfer(states[(record.iin, record.payment_type)], record,
                                               persons.get(record.iin), CLOCK, hold=hold)
        if again.held:
            continue  # never decided (its cut-off is the agent's): a hold is not a decision
        assert again.repeat and not again.emission
    assert {k: s.to_json() for k, s in states.items()} == before
