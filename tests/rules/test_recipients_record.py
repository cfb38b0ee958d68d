"""The recipient record of clause 12: personal data from decisions and the registry, the document
and citizenship histories, re-emission on a registry change; the state as a plain value; and what
the refunds ledger reads from it (risk months for PERIOD_USED_FOR_PAYMENT)."""
from __future__ import annotations

import orjson
import pytest

from models.fund import RecipientAccount
from rules.posting import Person as ShortPerson
from rules.recipients import (
    Emission,
    RecipientState,
    apply_decision,
    decide_decision,
    decide_registry_change,
    decide_transfer,
    new_state,
    period_used_for_payment,
    risk_months,
)
from rules.recipients.records import account
from tests.fund_cases import IIN, PERSON, TYPE, decision, recipient, transfer

AT = "2025-06-01T10:00:00.000+05:00"
NEW_DOC = {"kind": "passport", "series": None, "number": "N1234567", "issued_on": "2025-05-01", "issuer": "МВД РК"}


def assigned(**block):
    d = decision("assign", "2025-03-01", decided_on="2025-03-05", recipient=recipient(**block))
    return decide_decision(new_state(IIN, TYPE), d, PERSON, AT).state


def test_first_values_open_the_histories():
    state = assigned()
    rec = account(state, AT)
    RecipientAccount.model_validate(rec)
    assert rec["document_history"] == [{"number": "041234567", "issued_on": "2019-04-02", "changed_on": "2025-03-05"}]
    assert rec["citizenship_history"] == [{"citizenship": "KZ", "changed_on": "2025-03-05"}]
    assert rec["address"] == PERSON["address"] and rec["sex"] == "M"


def test_registry_change_of_document_and_citizenship():
    state = assigned()
    changed = {**PERSON, "document": NEW_DOC, "citizenship": "RU", "updated_at": "2025-05-03T23:30:00+00:00"}
    out = decide_registry_change(state, changed, AT)
    rec = out.emission.get("recipients.accounts")[0]
    assert rec["key"] == f"{IIN}/{TYPE}"
    v = rec["value"]
    # updated_at 2025-05-03T23:30Z is May 4th in Almaty.
    assert v["document_history"][-1] == {"number": "N1234567", "issued_on": "2025-05-01", "changed_on": "2025-05-04"}
    assert v["citizenship_history"] == [{"citizenship": "KZ", "changed_on": "2025-03-05"},
                                        {"citizenship": "RU", "changed_on": "2025-05-04"}]
    assert v["document"]["number"] == "N1234567" and v["citizenship"] == "RU"


def test_registry_record_without_a_change_emits_nothing():
    state = assigned()
    out = decide_registry_change(state, {**PERSON, "updated_at": "2025-07-01T09:00:00+05:00"}, AT)
    assert not out.emission


def test_registry_deletion_keeps_the_record():
    state = assigned()
    out = decide_registry_change(state, None, AT)
    assert not out.emission and out.state.to_json() == state.to_json()


def test_no_account_before_anything_was_decided_or_posted():
    out = decide_registry_change(new_state(IIN, TYPE), {**PERSON, "surname": "Ахметов-Новый"}, AT)
    assert not out.emission


def test_a_stale_recipient_block_does_not_undo_a_registry_change():
    state = assigned()
    registry = {**PERSON, "document": NEW_DOC, "updated_at": "2025-05-04T09:00:00+05:00"}
    state = decide_registry_change(state, registry, AT).state
    # The Fund's next decision still names the old document: the Fund did not change it, so the
    # registry's newer one stays current (and the history does not flip back).
    state = decide_decision(state, decision("suspend", "2025-06-01"), registry, AT).state
    assert state.person.fields["document"]["number"] == "N1234567"
    assert [d["number"] for d in state.person.document_history] == ["041234567", "N1234567"]


def test_a_new_document_in_a_decision_becomes_current():
    state = assigned()
    d = decision("recalculate", "2025-06-01", decided_on="2025-06-02", recipient=recipient(document=NEW_DOC))
    state = decide_decision(state, d, PERSON, AT).state
    assert state.person.document_history[-1] == {"number": "N1234567", "issued_on": "2025-05-01",
                                                 "changed_on": "2025-06-02"}


def test_registry_wins_over_the_first_decision_where_they_differ():
    d = decision("assign", "2025-03-01", decided_on="2025-03-05",
                 recipient=recipient(address={"text": "старый адрес", "postal_index": None}))
    state = decide_decision(new_state(IIN, TYPE), d, PERSON, AT).state
    assert state.person.fields["address"] == PERSON["address"]


def test_the_replicas_short_record_is_enough():
    short = ShortPerson("Ахметов", "Ерлан", "Серикович", "1987-03-14")
    d = decision("assign", "2025-03-01")
    outcome, state = apply_decision(new_state(IIN, TYPE), d, short)
    assert outcome.status == "applied" and state.person.fields["citizenship"] == "KZ"
    assert decide_registry_change(state, short, AT).emission == Emission()


def test_personal_data_from_the_registry_when_no_decision_names_the_person():
    out = decide_transfer(new_state(IIN, TYPE), transfer("2025-04", "100.00"), PERSON, AT)
    rec = out.emission.get("recipients.accounts")[0]["value"]
    assert (rec["surname"], rec["document"]["number"]) == ("Ахметов", "041234567")
    assert rec["document_history"][0]["changed_on"] == "2025-01-10"  # the registry's updated_at


# --- the state as a plain value ----------------------------------------------------------------------

def test_state_round_trips_through_json():
    state = assigned()
    state = decide_transfer(state, transfer("2025-04", "70000.00"), PERSON, AT).state
    raw = orjson.dumps(state.to_json())
    back = RecipientState.from_json(orjson.loads(raw))
    assert back.to_json() == state.to_json() and back.outstanding == 1000000
    assert account(back, AT) == account(state, AT)


def test_unknown_state_version_is_refused():
    obj = new_state(IIN, TYPE).to_json()
    obj["v"] = 99
    with pytest.raises(ValueError):
        RecipientState.from_json(obj)


def test_emission_restamps_and_round_trips():
    out = decide_transfer(assigned(), transfer("2025-04", "70000.00"), PERSON, AT)
    again = Emission.from_json(orjson.loads(orjson.dumps(out.emission.to_json()))).restamped("LATER")
    for topic, items in again.records.items():
        stamp = {"recipients.accounts": "updated_at", "posted.social-payments": "posted_at",
                 "fund.overpayments": "created_at"}[topic]
        for item, first in zip(items, out.emission.get(topic)):
            assert item["value"][stamp] == "LATER"
            assert {**item["value"], stamp: AT} == first["value"]


# --- what refund decisions read ----------------------------------------------------------------------

def test_risk_months_of_applied_assignments_of_every_type():
    job = decide_decision(new_state(IIN, TYPE), decision("assign", "2025-03-15", risk_occurred_on="2025-03-03"),
                          PERSON, AT).state
    care = decide_decision(new_state(IIN, "child_care"), decision(
        "assign", "2024-02-01", payment_type="child_care", risk_occurred_on="2024-01-20"), PERSON, AT).state
    rejected = decide_decision(new_state(IIN, "adoption"), decision(
        "assign", "2024-02-01", payment_type="adoption", risk_occurred_on="2020-01-20",
        recipient=recipient(name="Другой")), PERSON, AT).state
    assert risk_months([job, care, rejected]) == {(2025, 3), (2024, 1)}


@pytest.mark.parametrize("period, used", [
    ((2025, 3), True), ((2023, 4), True), ((2023, 3), False), ((2025, 4), False),
])
def test_period_used_for_payment_is_24_months_up_to_the_risk(period, used):
    assert period_used_for_payment(period, {(2025, 3)}) == used


def test_the_rules_are_pure():
    """No broker, store, model or clock in the rules: the agent brings those."""
    import ast
    from pathlib import Path

    import rules.recipients as package

    forbidden = ("faust", "aiokafka", "kafka", "rocksdict", "models", "streams", "tables", "time")
    found = []
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
        assert "datetime.now" not in path.read_text(encoding="utf-8") and "utcnow" not in path.read_text(encoding="utf-8")
    assert found == []
