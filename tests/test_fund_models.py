"""Models of the Fund's topics (contract, Part 2): what they accept, and that every malformed or
out-of-bounds value is a validation error naming its field (the worker dead-letters it)."""
from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from models.fund import DecisionResult, Overpayment, PaymentDecision, PaymentTransfer, PostedSocialPayment, \
    RecipientAccount

from .cases import EXAMPLES


def _inputs(topic: str) -> list[dict]:
    inputs = json.loads((EXAMPLES / "fund-inputs.json").read_text(encoding="utf-8"))
    return [i["value"] for i in inputs if i["topic"] == topic]


def decision(**changes) -> dict:
    value = copy.deepcopy(_inputs("fund.payment-decisions")[0])
    value.update(changes)
    return value


def transfer(**changes) -> dict:
    value = copy.deepcopy(_inputs("fund.payment-transfers")[0])
    value.update(changes)
    return value


def error_fields(model, value: dict) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(value, ensure_ascii=False))
    return [".".join(str(x) for x in e["loc"]) + ": " + e["msg"] for e in info.value.errors()]


def test_every_example_input_parses():
    for value in _inputs("fund.payment-decisions"):
        PaymentDecision.model_validate_json(json.dumps(value))
    for value in _inputs("fund.payment-transfers"):
        PaymentTransfer.model_validate_json(json.dumps(value))


def test_unknown_fields_ignored_and_amount_forms_accepted():
    parsed = PaymentTransfer.model_validate_json(json.dumps(transfer(
        future={"x": 1}, gross_amount="32903.2", net_amount="29612", pension_contribution_withheld="0")))
    assert parsed.gross_amount == "32903.2"


@pytest.mark.parametrize("field, value", [
    ("iin", "870314312349"),  # check digit
    ("iin", "87031431234"),
    ("iin", "８７０３１４３１２３４８"),  # full-width digits
    ("iin", 870314312348),
    ("payment_type", "old_age"),
    ("decision", "cancel"),
    ("decided_on", "2025-02-30"),
    ("decided_on", "1899-01-01"),
    ("effective_from", "2025-03-15T00:00:00+05:00"),
    ("monthly_amount", "-1.00"),
    ("monthly_amount", "60000.001"),
    ("monthly_amount", 60000),
    ("monthly_amount", "1e5"),
    ("monthly_amount", "1000000000000.00"),
    ("average_monthly_income", "abc"),
    ("term_months", 0),
    ("term_months", 100000),
    ("participation_months", -1),
    ("participation_months", "48"),
    ("disability_degree", 101),
    ("dependants", 31),
    ("sick_leave_days", 367),
    ("child_birth_order", 0),
    ("pension_contribution_rate", "1.5"),
    ("pension_contribution_rate", "0.123456"),
    ("pension_contribution_rate", 0.1),
    ("decision_id", ""),
    ("decision_id", "x" * 101),
    ("reason", "x" * 2001),
])
def test_bad_decision_field_is_named(field, value):
    errors = error_fields(PaymentDecision, decision(**{field: value}))
    assert any(e.startswith(field) for e in errors), errors


@pytest.mark.parametrize("path, value", [
    (("surname",), ""),
    (("surname",), "x" * 201),
    (("birth_date",), "1987-02-29"),
    (("sex",), "X"),
    (("citizenship",), "kz"),
    (("document", "number"), ""),
    (("address", "text"), None),
])
def test_bad_recipient_field_is_named(path, value):
    value_ = decision()
    target = value_["recipient"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    errors = error_fields(PaymentDecision, value_)
    assert any(e.startswith("recipient." + ".".join(path)) for e in errors), errors


@pytest.mark.parametrize("field", ["applied_on", "risk_occurred_on", "monthly_amount", "participation_months",
                                   "average_monthly_income"])
@pytest.mark.parametrize("kind", ["assign", "recalculate"])
def test_assignment_fields_required_for_assign_and_recalculate(field, kind):
    value = decision(decision=kind)
    del value[field]
    errors = error_fields(PaymentDecision, value)
    assert any(field in e for e in errors), errors


def test_suspend_needs_no_assignment_fields():
    value = _inputs("fund.payment-decisions")[2]
    assert value["decision"] == "suspend"
    PaymentDecision.model_validate_json(json.dumps(value))


@pytest.mark.parametrize("field", ["decision_id", "iin", "payment_type", "decision", "decided_on", "effective_from",
                                   "recipient"])
def test_required_decision_fields(field):
    value = decision()
    del value[field]
    assert any(e.startswith(field) for e in error_fields(PaymentDecision, value))


@pytest.mark.parametrize("field, value", [
    ("iin", "870314312340"),
    ("payment_type", "pension"),
    ("kind", "refund"),
    ("period", "2025-13"),
    ("period", "1999-12"),
    ("period", "2025-3"),
    ("gross_amount", "0.00"),
    ("gross_amount", "0"),
    ("gross_amount", "-5"),
    ("gross_amount", 32903.23),
    ("pension_contribution_withheld", "-0.01"),
    ("net_amount", "1.234"),
    ("total_amount", "٣"),
    ("knp", ""),
    ("knp", "0" * 17),
    ("received_at", "2025-03-28T11:00:00"),  # no offset
    ("received_at", "8025-03-28T11:00:00+05:00"),
    ("received_at", "2025-02-30T11:00:00+05:00"),
    ("document_date", "2025-13-01"),
    ("sender_bin", "05034000045"),
    ("sender_name", ""),
    ("document_number", "x" * 65),
])
def test_bad_transfer_field_is_named(field, value):
    errors = error_fields(PaymentTransfer, transfer(**{field: value}))
    assert any(e.startswith(field) for e in errors), errors


def test_return_may_withhold_nothing():
    PaymentTransfer.model_validate_json(json.dumps(_inputs("fund.payment-transfers")[2]))


@pytest.mark.parametrize("model", [DecisionResult, RecipientAccount, PostedSocialPayment, Overpayment])
def test_output_models_forbid_unknown_fields(model):
    with pytest.raises(ValidationError):
        model.model_validate({"unexpected": 1})


def test_refund_decision_result_shape_is_accepted():
    DecisionResult.model_validate({
        "schema_version": 1, "decision_id": "GFSS-RFD-2026-000302", "iin": "010630534571", "decision": "refund",
        "payment_type": None, "status": "rejected", "reason": "NOTHING_REVERSED", "state_before": None,
        "state_after": None, "assignment_no": None, "decided_on": "2026-12-01", "effective_from": None,
        "rejected_entries": [{"entry_id": "HSBK-20261126-000421/3", "reason": "ALREADY_REVERSED"}],
        "decided_at": "2026-12-01T10:00:00.000+05:00",
    })
