"""The refund-decision input and the reversal outputs (contract Part 2): what parses, what is a dead
letter, and that the contract's example outputs are exactly what the output models describe."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.reversals import (
    MAX_ENTRY_IDS,
    MAX_ID_LENGTH,
    RefundDecision,
    RefundDecisionResult,
    ReversalEntry,
    ReversalRefund,
)
from models.schemas import TOPIC_MODELS

DATA = Path(__file__).parent / "data"
CLOCK = "2026-11-30T15:00:00.120+05:00"


def example() -> dict:
    return json.loads((DATA / "fund-refund-decisions.json").read_text(encoding="utf-8"))


def decision() -> dict:
    return copy.deepcopy(example()["inputs"][0]["value"])


def stamped(value):
    """The example with the worker's clock filled in."""
    if isinstance(value, dict):
        return {k: stamped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stamped(v) for v in value]
    return CLOCK if value == "<worker clock>" else value


def test_the_topics_have_their_models():
    assert TOPIC_MODELS["fund.refund-decisions"] is RefundDecision
    assert TOPIC_MODELS["posted.reversals"] is ReversalEntry
    assert TOPIC_MODELS["refunds.reversals"] is ReversalRefund


def test_the_examples_decisions_parse_and_unknown_fields_are_ignored():
    for item in example()["inputs"]:
        parsed = RefundDecision.model_validate_json(json.dumps(item["value"]))
        assert parsed.iin == item["key"]
    parsed = RefundDecision.model_validate_json(json.dumps({**decision(), "channel": {"x": 1}}))
    assert parsed.entry_ids == ["HSBK-20261126-000421/3"]


@pytest.mark.parametrize("change", [
    {"iin": "010630534572"},  # check digit
    {"iin": "01063053457"},
    {"iin": 10630534571},
    {"entry_ids": []},
    {"entry_ids": "HSBK-20261126-000421/3"},
    {"entry_ids": [3]},
    {"entry_ids": [""]},
    {"entry_ids": ["x" * 200]},
    {"entry_ids": ["N/1"] * (MAX_ENTRY_IDS + 1)},
    {"refund_decision_id": ""},
    {"refund_decision_id": "R" * (MAX_ID_LENGTH + 1)},
    {"notification_id": None},
    {"reason": ""},
    {"reason": "x" * 5000},
    {"decided_on": "2026-02-30"},
    {"decided_on": "30.11.2026"},
    {"received_at": "2026-11-30T15:00:00"},  # no offset
    {"received_at": "2026-11-31T15:00:00+05:00"},
    {"payer": {"name": "ТОО", "bin_iin": "18044000001", "iban": "KZ86125KZT5004100100"}},
    {"payer": {"name": "ТОО", "bin_iin": "180440000019"}},
])
def test_what_the_contract_dead_letters_is_rejected(change):
    with pytest.raises(ValidationError):
        RefundDecision.model_validate_json(json.dumps({**decision(), **change}))


@pytest.mark.parametrize("missing", ["refund_decision_id", "iin", "notification_id", "entry_ids", "reason",
                                     "decided_on", "received_at", "payer"])
def test_every_field_is_required(missing):
    value = decision()
    del value[missing]
    with pytest.raises(ValidationError):
        RefundDecision.model_validate_json(json.dumps(value))


def test_the_examples_outputs_are_exactly_the_output_models():
    seen = set()
    for step in example()["steps"]:
        outputs = step["outputs"]
        for model, topic in ((ReversalEntry, "posted.reversals"), (ReversalRefund, "refunds.reversals"),
                             (RefundDecisionResult, "fund.decision-results")):
            for item in outputs[topic]:
                value = stamped(item["value"])
                assert model.model_validate(value).model_dump(mode="json") == value
                seen.add(topic)
    assert seen == {"posted.reversals", "refunds.reversals", "fund.decision-results"}


@pytest.mark.parametrize("model, topic, change", [
    (ReversalEntry, "posted.reversals", {"status": "posted"}),
    (ReversalEntry, "posted.reversals", {"amount": "-4250.00"}),
    (ReversalEntry, "posted.reversals", {"amount": "0.00"}),
    (ReversalRefund, "refunds.reversals", {"amount": "4250"}),
    (ReversalEntry, "posted.reversals", {"extra": 1}),
    (ReversalRefund, "refunds.reversals", {"scope": "lines"}),
    (ReversalRefund, "refunds.reversals", {"refund_knp": None}),
    (ReversalRefund, "refunds.reversals", {"lines": []}),
    (RefundDecisionResult, "fund.decision-results", {"payment_type": "loss_of_job"}),
    (RefundDecisionResult, "fund.decision-results", {"reason": "ILLEGAL_TRANSITION"}),
    (RefundDecisionResult, "fund.decision-results", {"rejected_entries": [{"entry_id": "x", "reason": "NOPE"}]}),
])
def test_the_output_models_hold_the_refund_shape(model, topic, change):
    value = stamped(example()["steps"][0]["outputs"][topic][0]["value"])
    model.model_validate(value)
    with pytest.raises(ValidationError):
        model.model_validate({**value, **change})


def test_refund_lines_have_no_reason_of_their_own():
    value = stamped(example()["steps"][0]["outputs"]["refunds.reversals"][0]["value"])
    value["lines"][0]["reason"] = "INVALID_IIN"
    with pytest.raises(ValidationError):
        ReversalRefund.model_validate(value)
