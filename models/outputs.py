"""Records the worker emits (contract v1). The worker encodes them on a fast path; tests check every
emitted record against these models, so the models stay the single source of the contract."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from rules import codes
from rules.person_changes import TRACKED_FIELDS

from .common import Iin, OutputAmount, OutputModel, Period

# The enumerations come from the rules' one home of each code (rules/codes.py, rules/person_changes.py).
SchemaVersion = Literal[codes.SCHEMA_VERSION]
OrderReason = Literal[codes.ORDER_REASONS]
LineReason = Literal[codes.LINE_REASONS]
ErrorKind = Literal[codes.ERROR_KINDS]
TrackedField = Literal[TRACKED_FIELDS]
EntryKind = Literal[tuple(codes.CONTRIBUTION_KNPS.values())]
ContributionKnp = Literal[tuple(codes.CONTRIBUTION_KNPS)]
RefundKnp = Literal[tuple(codes.REFUND_KNPS.values())]
OrderStatus = Literal[codes.ORDER_STATUSES]


class PostedContribution(OutputModel):
    """`posted.contributions` (key: IIN): one entry per posted line."""

    schema_version: SchemaVersion
    entry_id: str = Field(description="<notification_id>/<line_no>: deterministic, for de-duplication")
    iin: Iin
    surname: str
    name: str
    patronymic: str | None
    birth_date: str
    kind: EntryKind
    knp: ContributionKnp
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
    status: Literal[codes.STATUS_POSTED]


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

    schema_version: SchemaVersion
    refund_id: str = Field(description="<notification_id>/refund")
    notification_id: str
    payer: RefundPayer
    document_number: str
    document_date: str
    knp: str
    refund_knp: RefundKnp | None
    scope: Literal["order", "lines"]
    reason: OrderReason | None
    amount: OutputAmount
    lines: list[RefundLine]
    received_at: str = Field(description="the notification's (contract Part 2: the monthly report's month)")
    created_at: str


class OrderResult(OutputModel):
    """`orders.results` (key: notification_id): one per notification once every line is decided."""

    schema_version: SchemaVersion
    notification_id: str
    status: OrderStatus
    lines_total: int
    lines_posted: int
    lines_refunded: int
    amount_posted: OutputAmount
    amount_refunded: OutputAmount
    received_at: str = Field(description="the notification's (contract Part 2: the monthly report's month)")
    decided_at: str


class DeadLetter(OutputModel):
    """`errors.dead-letters` (key: as received)."""

    schema_version: SchemaVersion
    source_topic: str
    partition: int
    offset: int
    key: str | None = Field(description="base64 of the key as received, or null")
    value: str | None = Field(description="base64 of the value as received (null for a tombstone)")
    error: str
    error_kind: ErrorKind
    received_at: str = Field(description="when the worker dead-lettered the record")


class DeceasedContribution(OutputModel):
    """`alerts.deceased-contributions` (key: IIN): a contribution line for a person the registry
    records as dead, posted (a period before the death) or refunded DECEASED; the Fund suspends
    survivor payments on it (Social Code art. 241)."""

    schema_version: SchemaVersion
    alert_id: str = Field(description="<notification_id>/<line_no>: deterministic")
    iin: Iin
    death_date: str
    notification_id: str
    line_no: int
    knp: str
    period: Period
    amount: OutputAmount
    outcome: Literal["posted", "refunded"]
    reason: Literal[codes.DECEASED] | None
    payer_bin_iin: str
    received_at: str
    created_at: str


class FieldChange(OutputModel):
    field: TrackedField
    before: str | dict | None
    after: str | dict | None


class ChangeSource(OutputModel):
    partition: int
    offset: int


class PersonChange(OutputModel):
    """`registry.changes` (key: IIN): one change of a person's data (Rules, clause 6), published once."""

    schema_version: SchemaVersion
    change_id: str = Field(description="<iin>/<version>: deterministic")
    iin: Iin
    version: int
    kind: Literal["created", "updated", "deleted"]
    changes: list[FieldChange]
    changed_at: str | None = Field(description="the registry record's updated_at; null for a deletion")
    source: ChangeSource
    recorded_at: str
