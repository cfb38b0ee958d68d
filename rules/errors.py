"""Why a record cannot be read: the one classification of dead letters' `error_kind` for every input
topic (contract, Clarifications: Dead letters). Pure: it sees the raw value and the parser's error list
(pydantic's `exc.errors(include_url=False, include_input=False)`), never the parser itself."""
from __future__ import annotations

from collections.abc import Sequence

from .codes import NOT_JSON, NOT_UTF8, SCHEMA, UNPROCESSABLE

__all__ = ["classify", "describe", "unprocessable"]


def classify(value: bytes | None, errors: Sequence[dict]) -> tuple[str, str]:
    """(error_kind, error) of a value the model rejected: not UTF-8, not JSON, or JSON of the wrong
    shape (a missing field, a wrong type, a value out of range: `schema`, naming the fields)."""
    if value is None:
        return NOT_JSON, "empty value (tombstone): a JSON object was expected"
    invalid_json = [e for e in errors if e["type"] == "json_invalid"]
    if invalid_json:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as err:
            return NOT_UTF8, f"value is not UTF-8 (byte {err.start}: {err.reason})"
        return NOT_JSON, invalid_json[0]["msg"]
    return SCHEMA, describe(errors)


def describe(errors: Sequence[dict]) -> str:
    """One line naming each bad field; never echoes the input (it may hold personal data)."""
    parts = []
    for err in errors:
        where = ".".join(str(x) for x in err["loc"]) or "<record>"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def unprocessable(step: str, exc: BaseException) -> tuple[str, str]:
    """(error_kind, error) of a valid record that a processing step failed on: the step and the cause."""
    return UNPROCESSABLE, f"{step}: {type(exc).__name__}: {exc}"
