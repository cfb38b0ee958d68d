"""Records the worker emits (contract v1). The worker encodes them on a fast path; tests check every
emitted record against these models, so the models stay the single source of the contract."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Iin, OutputAmount, OutputModel, Period

OrderReason = Literal["KNP_NOT_ACCEPTED", "TOTAL_MISMATCH", "CURRENCY_NOT_ACCEPTED", "DUPLICATE_LINE_NO"]
LineReason = Literal[
    "INVALID_IIN",
    "IIN_NOT_FOUND",
    "NAME_MISMATCH",
    "BIRTH_DATE_MISMATCH",
    "DECEASED",
    "PERIOD_INVALID",
    "AMOUNT_INVALID",
]


class PostedContribution(OutputModel):
    """`posted.contributions` (key: IIN): one entry per posted line."""

    schema_version: Literal[1]
    entry_id: str = Field(description="<notification_id>/<line_no>: deterministic, for de-duplication")
    iin: Iin
    surname: str
    name: str
    patronymic: str | None
    birth_date: str
    kind: Literal["contribution", "penalty"]
    knp: Literal["012", "017"]
    amount: OutputAmount
    period: Period
    document_number: str
    document_date: str
    sent_date: str
    received_at: str
    posted_at: str
    payer_name: str
    payer_bin_iin: str
    recipient_name: str
    total_amount: OutputAmount
    status: Literal["posted"]


class RefundPayer(OutputModel):
    name: str
    bin_iin: str
    iban: str


class RefundLine(OutputModel):
    line_no: int
    iin: str = Field(description="as received")
    surname: str
    name: str
    patronymic: str | None
    birth_date: str
    period: str | None
    amount: str = Field(description="two decimals; an amount that cannot be read is echoed as received")
    reason: LineReason | OrderReason


class Refund(OutputModel):
    """`refunds.to-payers` (key: notification_id): at most one refund order per notification."""

    schema_version: Literal[1]
    refund_id: str = Field(description="<notification_id>/refund")
    notification_id: str
    payer: RefundPayer
    document_number: str
    document_date: str
    knp: str
    refund_knp: Literal["026", "094"] | None
    scope: Literal["order", "lines"]
    reason: OrderReason | None
    amount: OutputAmount
    lines: list[RefundLine]
    created_at: str


class OrderResult(OutputModel):
    """`orders.results` (key: notification_id): one per notification once every line is decided."""

    schema_version: Literal[1]
    notification_id: str
    status: Literal["posted", "partially_refunded", "refunded"]
    lines_total: int
    lines_posted: int
    lines_refunded: int
    amount_posted: OutputAmount
    amount_refunded: OutputAmount
    decided_at: str


class DeadLetter(OutputModel):
    """`errors.dead-letters` (key: as received)."""

    schema_version: Literal[1]
    source_topic: str
    partition: int
    offset: int
    key: str | None = Field(description="base64 of the key as received, or null")
    value: str | None = Field(description="base64 of the value as received (null for a tombstone)")
    error: str
    error_kind: Literal["not_json", "not_utf8", "schema"]
    received_at: str = Field(description="when the worker dead-lettered the record")


class DeceasedContribution(OutputModel):
    """`alerts.deceased-contributions` (key: IIN): a contribution line for a person the registry
    records as dead, posted (a period before the death) or refunded DECEASED; the Fund suspends
    survivor payments on it (Social Code art. 241)."""

    schema_version: Literal[1]
    alert_id: str = Field(description="<notification_id>/<line_no>: deterministic")
    iin: Iin
    death_date: str
    notification_id: str
    line_no: int
    knp: str
    period: Period
    amount: OutputAmount
    outcome: Literal["posted", "refunded"]
    reason: Literal["DECEASED"] | None
    payer_bin_iin: str
    received_at: str
    created_at: str


class FieldChange(OutputModel):
    field: Literal["surname", "name", "patronymic", "birth_date", "sex", "citizenship", "death_date", "document",
                   "address"]
    before: str | dict | None
    after: str | dict | None


class ChangeSource(OutputModel):
    partition: int
    offset: int


class PersonChange(OutputModel):
    """`registry.changes` (key: IIN): one change of a person's data (Rules, clause 6), published once."""

    schema_version: Literal[1]
    change_id: str = Field(description="<iin>/<version>: deterministic")
    iin: Iin
    version: int
    kind: Literal["created", "updated", "deleted"]
    changes: list[FieldChange]
    changed_at: str | None = Field(description="the registry record's updated_at; null for a deletion")
    source: ChangeSource
    recorded_at: str
