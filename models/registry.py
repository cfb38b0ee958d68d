"""`registry.persons`: the state registry of individuals (compacted, keyed by IIN, null deletes)."""
from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime

from .common import InputModel, Iin


class IdentityDocument(InputModel):
    kind: str
    series: str | None = None
    number: str
    issued_on: date | None = None
    issuer: str | None = None


class Address(InputModel):
    text: str
    postal_index: str | None = None


class RegistryPerson(InputModel):
    iin: Iin
    surname: str
    name: str
    patronymic: str | None = None
    birth_date: date
    sex: Literal["M", "F"]
    citizenship: str
    death_date: date | None = None
    updated_at: AwareDatetime
    document: IdentityDocument | None = None
    address: Address | None = None
