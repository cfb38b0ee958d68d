"""The models are the single source of the contract: committed JSON Schemas must match them, and
the parser must accept what the contract allows and reject what it sends to dead letters."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from models import bounds as b
from models.notifications import CreditNotification
from models.registry import RegistryPerson
from models.schemas import SCHEMA_DIR, TOPIC_MODELS, render

from .cases import example_notification, registry_persons


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


# ---- bounds (contract, Clarification "Bounds"; models/bounds.py) -------------------------------------

def _set(record: dict, path: str, value) -> dict:
    """A deep copy of `record` with the dotted `path` (list indexes as numbers) set to `value`."""
    record = json.loads(json.dumps(record))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = record
    for p in parents:
        target = target[p]
    target[last] = value
    return record


def _error_locs(model, record: dict) -> list[str]:
    try:
        model.model_validate_json(json.dumps(record))
    except ValidationError as exc:
        return [".".join(str(x) for x in e["loc"]) for e in exc.errors()]
    return []


def _lines(n: int) -> list[dict]:
    line = example_notification()["lines"][0]
    return [{**line, "line_no": i, "amount": "1.00"} for i in range(1, n + 1)]


# (path, the last value inside the bound, the first value beyond it); each is a dead letter field.
NOTIFICATION_BOUNDS = [
    ("lines.1.line_no", 1, 0),
    ("lines.1.line_no", b.MAX_LINE_NO, b.MAX_LINE_NO + 1),
    ("lines.1.line_no", b.MAX_LINE_NO, 10**30),  # the reported poison record
    ("lines.1.line_no", b.MAX_LINE_NO, -(10**30)),
    ("notification_id", "N" * b.MAX_ID_CHARS, "N" * (b.MAX_ID_CHARS + 1)),
    ("bank_bic", "HSBKKZKXXXX", "HSBKKZKXXXXX"),
    ("document_number", "9" * b.MAX_DOCUMENT_NUMBER_CHARS, "9" * (b.MAX_DOCUMENT_NUMBER_CHARS + 1)),
    ("document_date", "2000-01-01", "1999-12-31"),
    ("document_date", "2099-12-31", "2100-01-01"),
    ("sent_date", "2000-01-01", "1999-12-31"),
    ("sent_date", "2099-12-31", "8026-11-25"),
    ("received_at", "2000-01-01T05:00:00+05:00", "2000-01-01T04:59:59+05:00"),
    ("received_at", "2099-12-31T23:59:59Z", "2100-01-01T00:00:00Z"),
    ("received_at", "2099-12-31T23:59:59Z", "8026-11-26T10:15:00+05:00"),
    ("knp", "0" * b.MAX_CODE_CHARS, "0" * (b.MAX_CODE_CHARS + 1)),
    ("currency", "K" * b.MAX_CODE_CHARS, "K" * (b.MAX_CODE_CHARS + 1)),
    ("period", "2" * b.MAX_CODE_CHARS, "2" * (b.MAX_CODE_CHARS + 1)),
    ("payer.name", "Т" * b.MAX_ORG_NAME_CHARS, "Т" * (b.MAX_ORG_NAME_CHARS + 1)),
    ("payer.bin_iin", "180440000019", "1804400000190"),
    ("payer.iban", "KZ" + "8" * 32, "KZ" + "8" * 33),
    ("recipient_name", "Н" * b.MAX_ORG_NAME_CHARS, "Н" * (b.MAX_ORG_NAME_CHARS + 1)),
    ("lines.1.iin", "8" * b.MAX_LINE_IIN_CHARS, "8" * (b.MAX_LINE_IIN_CHARS + 1)),
    ("lines.1.surname", "А" * b.MAX_PERSON_NAME_CHARS, "А" * (b.MAX_PERSON_NAME_CHARS + 1)),
    ("lines.1.name", "Е" * b.MAX_PERSON_NAME_CHARS, "Е" * (b.MAX_PERSON_NAME_CHARS + 1)),
    ("lines.1.patronymic", "С" * b.MAX_PERSON_NAME_CHARS, "С" * (b.MAX_PERSON_NAME_CHARS + 1)),
    ("lines.1.birth_date", "1" * b.MAX_LINE_DATE_CHARS, "1" * (b.MAX_LINE_DATE_CHARS + 1)),
    ("lines.1.amount", "1" * b.MAX_AMOUNT_CHARS, "1" * (b.MAX_AMOUNT_CHARS + 1)),
    ("lines.1.period", "2" * b.MAX_CODE_CHARS, "2" * (b.MAX_CODE_CHARS + 1)),
    ("total_amount", "1000000000000.00", "1000000000000.01"),
    ("total_amount", "0" * 19 + "1000000000000", "0" * 20 + "1000000000000"),  # 32 chars, 33
    ("lines", _lines(b.MAX_LINES), _lines(b.MAX_LINES + 1)),
]


@pytest.mark.parametrize("path,inside,beyond", NOTIFICATION_BOUNDS,
                         ids=[f"{p}={str(v)[:24]}" for p, _, v in NOTIFICATION_BOUNDS])
def test_a_notification_beyond_a_bound_is_rejected_naming_the_field(path, inside, beyond):
    order = example_notification()
    assert _error_locs(CreditNotification, _set(order, path, inside)) == []
    assert _error_locs(CreditNotification, _set(order, path, beyond)) == [path]


def test_an_empty_line_list_is_not_a_bound_but_a_refund():
    # Contract: an empty `lines` list is TOTAL_MISMATCH, so it must parse.
    assert _error_locs(CreditNotification, {**example_notification(), "lines": []}) == []


def test_the_poison_line_number_is_a_schema_dead_letter_naming_the_line():
    from rules.errors import classify

    order = example_notification()
    order["lines"][3]["line_no"] = 10**30
    raw = json.dumps(order).encode()
    with pytest.raises(ValidationError) as caught:
        CreditNotification.model_validate_json(raw)
    kind, error = classify(raw, caught.value.errors(include_url=False, include_input=False))
    assert kind == "schema"
    assert error == "lines.3.line_no: Input should be less than or equal to 100000"


def _person() -> dict:
    person = registry_persons()[4]  # deceased: has a death_date
    person["document"] = {"kind": "id_card", "series": None, "number": "012345678", "issued_on": "2015-05-05",
                          "issuer": "МВД РК"}
    person["address"] = {"text": "г. Астана, ул. Кенесары, 1", "postal_index": "010000"}
    return person


PERSON_BOUNDS = [
    ("iin", "581225356784", "5812253567845"),
    ("iin", "581225356784", "58122535678"),
    ("surname", "О" * b.MAX_PERSON_NAME_CHARS, "О" * (b.MAX_PERSON_NAME_CHARS + 1)),
    ("name", "Б" * b.MAX_PERSON_NAME_CHARS, "Б" * (b.MAX_PERSON_NAME_CHARS + 1)),
    ("patronymic", "Қ" * b.MAX_PERSON_NAME_CHARS, "Қ" * (b.MAX_PERSON_NAME_CHARS + 1)),
    ("birth_date", "1900-01-01", "1899-12-31"),
    ("birth_date", "2026-08-15", "2026-09-03"),  # updated_at is 2026-09-01 (+1 day of zone slack)
    ("death_date", "2026-09-02", "2026-09-03"),
    ("death_date", "1958-12-25", "1958-12-24"),  # before the birth
    ("citizenship", "KAZ", "KAZA"),
    ("updated_at", "2099-12-31T23:59:59Z", "2100-01-01T00:00:00Z"),
    ("document.kind", "k" * b.MAX_DOCUMENT_KIND_CHARS, "k" * (b.MAX_DOCUMENT_KIND_CHARS + 1)),
    ("document.series", "s" * b.MAX_DOCUMENT_SERIES_CHARS, "s" * (b.MAX_DOCUMENT_SERIES_CHARS + 1)),
    ("document.number", "0" * b.MAX_DOCUMENT_ID_CHARS, "0" * (b.MAX_DOCUMENT_ID_CHARS + 1)),
    ("document.issued_on", "1900-01-01", "1899-12-31"),
    ("document.issued_on", "2099-12-31", "2100-01-01"),
    ("document.issuer", "М" * b.MAX_ISSUER_CHARS, "М" * (b.MAX_ISSUER_CHARS + 1)),
    ("address.text", "а" * b.MAX_ADDRESS_CHARS, "а" * (b.MAX_ADDRESS_CHARS + 1)),
    ("address.postal_index", "0" * b.MAX_POSTAL_INDEX_CHARS, "0" * (b.MAX_POSTAL_INDEX_CHARS + 1)),
]


@pytest.mark.parametrize("path,inside,beyond", PERSON_BOUNDS,
                         ids=[f"{p}={str(v)[:24]}" for p, _, v in PERSON_BOUNDS])
def test_a_registry_person_beyond_a_bound_is_rejected_naming_the_field(path, inside, beyond):
    person = _person()
    assert _error_locs(RegistryPerson, _set(person, path, inside)) == []
    assert _error_locs(RegistryPerson, _set(person, path, beyond)) == [path]


def test_a_registry_error_message_names_the_field_but_not_the_value():
    from tables.registry import parse_record

    person = _set(_person(), "birth_date", "2030-01-01")
    _, parsed, error = parse_record(person["iin"].encode(), json.dumps(person).encode())
    assert parsed is None
    kind, message = error
    assert kind == "schema"
    assert message.startswith("birth_date: ") and "2030" not in message
