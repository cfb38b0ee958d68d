"""The models are the single source of the contract: committed JSON Schemas must match them, and
the parser must accept what the contract allows and reject what it sends to dead letters."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from models.notifications import CreditNotification
from models.schemas import SCHEMA_DIR, TOPIC_MODELS, render

from .cases import example_notification


@pytest.mark.parametrize("topic", sorted(TOPIC_MODELS))
def test_committed_schema_matches_the_model(topic):
    committed = (SCHEMA_DIR / f"{topic}.json").read_text(encoding="utf-8")
    assert committed == render(topic), f"models/schemas/{topic}.json is stale: run `esep schemas`"


def test_unknown_fields_are_ignored_and_amount_forms_accepted():
    order = {**example_notification(), "future_field": {"x": 1}, "total_amount": "59000"}
    parsed = CreditNotification.model_validate_json(json.dumps(order))
    assert parsed.total_amount == "59000"


@pytest.mark.parametrize("change", [
    {"total_amount": 59000}, {"total_amount": "-5"}, {"total_amount": "5.001"}, {"lines": "x"},
    {"received_at": "2026-11-26 10:15:00"}, {"sent_date": "2026-13-01"}, {"knp": 12},
])
def test_contract_violations_are_rejected(change):
    with pytest.raises(ValidationError):
        CreditNotification.model_validate_json(json.dumps({**example_notification(), **change}))


def test_line_fields_with_refund_reasons_are_not_parse_errors():
    order = example_notification()
    order["lines"][0].update(birth_date="1987-02-30", amount="abc", period="2026-13", iin="123")
    parsed = CreditNotification.model_validate_json(json.dumps(order))
    assert parsed.lines[0].birth_date == "1987-02-30"
