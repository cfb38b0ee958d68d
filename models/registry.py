"""`registry.persons`: the state registry of individuals (compacted, keyed by IIN, null deletes).
Every field has the bounds of models/bounds.py: beyond them a record is a dead letter."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from . import bounds as b
from .bounds import PersonDate, Timestamp
from .common import InputModel, Iin

# A registry clerk dates a birth or death in local time; `updated_at` may be written in UTC.
_ZONE_SLACK = timedelta(days=1)


class IdentityDocument(InputModel):
    kind: str = Field(max_length=b.MAX_DOCUMENT_KIND_CHARS)
    series: str | None = Field(None, max_length=b.MAX_DOCUMENT_SERIES_CHARS)
    number: str = Field(max_length=b.MAX_DOCUMENT_ID_CHARS)
    issued_on: PersonDate | None = None
    issuer: str | None = Field(None, max_length=b.MAX_ISSUER_CHARS)


class Address(InputModel):
    text: str = Field(max_length=b.MAX_ADDRESS_CHARS)
    postal_index: str | None = Field(None, max_length=b.MAX_POSTAL_INDEX_CHARS)


class RegistryPerson(InputModel):
    iin: Iin
    # Declared before the dates so that their validators can bound them by it: a person is not born,
    # nor dead, after the registry's own record of them (the "today" of a record, without a clock).
    updated_at: Timestamp
    surname: str = Field(max_length=b.MAX_PERSON_NAME_CHARS)
    name: str = Field(max_length=b.MAX_PERSON_NAME_CHARS)
    patronymic: str | None = Field(None, max_length=b.MAX_PERSON_NAME_CHARS)
    birth_date: PersonDate
    sex: Literal["M", "F"]
    citizenship: str = Field(max_length=b.MAX_CITIZENSHIP_CHARS, description="ISO 3166 alpha-2")
    death_date: PersonDate | None = None
    document: IdentityDocument | None = None
    address: Address | None = None

    @field_validator("birth_date", "death_date")
    @classmethod
    def _not_after_the_record(cls, value: date | None, info: ValidationInfo) -> date | None:
        updated = info.data.get("updated_at")
        if value is not None and updated is not None and value > updated.date() + _ZONE_SLACK:
            raise ValueError("is after updated_at (bounds)")
        born = info.data.get("birth_date")
        if info.field_name == "death_date" and value is not None and born is not None and value < born:
            raise ValueError("is before birth_date")
        return value
