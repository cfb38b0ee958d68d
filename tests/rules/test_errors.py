"""The one classification of dead letters' error kinds, for every input topic."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.notifications import CreditNotification
from models.registry import RegistryPerson
from rules import codes
from rules.errors import classify, unprocessable


def rejection(model, value: bytes) -> tuple[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(value)
    return classify(value, info.value.errors(include_url=False, include_input=False))


@pytest.mark.parametrize("model", [CreditNotification, RegistryPerson])
@pytest.mark.parametrize("value,kind,fragment", [
    (b"{not json", codes.NOT_JSON, "JSON"),
    (b"\xff\xfe\x00{}", codes.NOT_UTF8, "UTF-8"),
    (b'{"surname": 5}', codes.SCHEMA, "field required"),
    (b"[1, 2]", codes.SCHEMA, "object"),
])
def test_same_value_same_kind_whatever_the_topic(model, value, kind, fragment):
    got_kind, error = rejection(model, value)
    assert got_kind == kind
    assert fragment.lower() in error.lower()


def test_a_tombstone_is_not_json():
    assert classify(None, [])[0] == codes.NOT_JSON


def test_errors_never_echo_the_input():
    kind, error = rejection(RegistryPerson, b'{"iin": "870314312348", "surname": 5}')
    assert kind == codes.SCHEMA and "870314312348" not in error


def test_unprocessable_names_the_step_and_the_cause():
    kind, error = unprocessable("deciding", OverflowError("Integer exceeds 64-bit range"))
    assert kind == codes.UNPROCESSABLE and kind in codes.ERROR_KINDS
    assert error == "deciding: OverflowError: Integer exceeds 64-bit range"
