"""The registry replica's stored format 2: posting reads the matching fields as before, the
recipients ledger reads the clause 12 fields too, and a store of format 1 is read again."""
from __future__ import annotations

import json

import orjson

from models.registry import RegistryPerson
from tables.registry import RegistryStore, decode_person, decode_person_view, encode_person

from .fund_cases import PERSON


def test_format_2_keeps_what_posting_reads_and_adds_the_record_fields():
    raw = encode_person(RegistryPerson.model_validate_json(json.dumps(PERSON)))
    p = decode_person(raw)
    assert (p.surname, p.name, p.patronymic, p.birth_date, p.death_date) == (
        "Ахметов", "Ерлан", "Серикович", "1987-03-14", None)
    view = decode_person_view(raw)
    assert view["sex"] == "M" and view["citizenship"] == "KZ"
    assert view["document"] == PERSON["document"] and view["address"] == PERSON["address"]
    assert view["updated_at"] == "2025-01-10T09:00:00+05:00"


def test_a_format_1_record_says_nothing_of_the_other_fields():
    view = decode_person_view(orjson.dumps(["A", "B", None, "1990-01-01", None]))
    assert set(view) == {"surname", "name", "patronymic", "birth_date", "death_date"}


def test_a_partition_stored_in_format_1_is_read_again(tmp_path):
    store = RegistryStore(tmp_path / "r")
    from tables.rocks import new_batch, put_offset

    batch = new_batch()
    put_offset(batch, 0, 40)  # as a format 1 replica left it
    put_offset(batch, 1, 12)
    store.db.write(batch)
    assert store.offsets([0, 1]) == {}
    store.apply({}, {1: 15})
    assert store.offsets([0, 1]) == {1: 15}
    store.close()
