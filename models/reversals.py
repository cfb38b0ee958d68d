"""Refunds of posted contributions (contract Part 2): the Fund's refund decisions, the reversal
entries and refund orders they give, and the refund variant of `fund.decision-results`.

A decision names entries of one credit notification. Entry ids that are not of that notification,
or not posted, are not parse errors: they have the reason `ENTRY_NOT_FOUND` (judging them is the
rules' job), so `entry_ids` holds plain bounded strings."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field

from rules.iin import is_valid_iin

from .common import InputModel, OutputAmount, OutputModel, Period
from .outputs import PostedContribution

# Bounds (contract, Clarifications "Bounds"): beyond them a record is a schema dead letter. Generous
# for real records: ids are bank/Fund references, a decision names lines of one order.
MAX_ID_LENGTH = 128
MAX_ENTRY_ID_LENGTH = MAX_ID_LENGTH + 12  # "<notification_id>/<line_no>"
MAX_ENTRY_IDS = 10_000
MAX_REASON_LENGTH = 2_000
MAX_NAME_LENGTH = 500
MAX_IBAN_LENGTH = 34  # ISO 13616


def _valid_iin(value: str) -> str:
    if not is_valid_iin(value):
        raise ValueError("must be 12 digits with a valid check digit")
    return value


# Part 2 dead-letters a decision whose IIN is not valid: the Fund decides about a known person.
ValidIin = Annotated[
    str, Field(pattern=r"^[0-9]{12}$", description="12 digits, valid check digit", examples=["010630534571"]),
    AfterValidator(_valid_iin),
]
RecordId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


def _above_zero(value: str) -> str:
    if set(value) <= {"0", "."}:
        raise ValueError("must be above zero")
    return value


# What is reversed or refunded is money that was posted: never zero, never negative.
ReversedAmount = Annotated[
    str, Field(pattern=r"^[0-9]+\.[0-9]{2}$", description="tenge above zero, exactly two decimals",
               examples=["4250.00"]),
    AfterValidator(_above_zero),
]


class DecisionPayer(InputModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    bin_iin: str = Field(pattern=r"^[0-9]{12}$", description="BIN or IIN: 12 digits")
    iban: str = Field(min_length=1, max_length=MAX_IBAN_LENGTH)


class RefundDecision(InputModel):
    """`fund.refund-decisions` (key: IIN): give back contributions or penalties already posted."""

    refund_decision_id: RecordId = Field(description="the idempotency key: a repeat emits nothing")
    iin: ValidIin
    notification_id: RecordId = Field(description="the credit notification whose entries are refunded")
    entry_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ENTRY_ID_LENGTH)]] = Field(
        min_length=1, max_length=MAX_ENTRY_IDS,
        description='"<notification_id>/<line_no>" of posted entries; an entry named twice is one entry')
    reason: str = Field(min_length=1, max_length=MAX_REASON_LENGTH, description="the refund order's reason text")
    decided_on: date
    received_at: AwareDatetime = Field(description="business time of the decision; RFC 3339 with offset")
    payer: DecisionPayer


class PostedEntryInput(PostedContribution):
    """`posted.contributions` as the reversals agent reads it: the contract's entry, with fields a
    later version may add ignored rather than dead-lettered (an input, not an output check)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class ReversalEntry(OutputModel):
    """`posted.reversals` (key: IIN): one per reversed entry, the original's fields plus the link."""

    schema_version: Literal[1]
    entry_id: str = Field(description="<original entry_id>/reversal")
    reverses: str = Field(description="the original entry_id")
    refund_decision_id: str
    iin: str
    surname: str
    name: str
    patronymic: str | None
    birth_date: str
    kind: Literal["contribution", "penalty"]
    knp: Literal["012", "017"]
    amount: ReversedAmount = Field(description="the amount of the entry reversed, positive")
    period: Period
    document_number: str
    document_date: str
    sent_date: str
    received_at: str = Field(description="the refund decision's received_at")
    posted_at: str
    payer_name: str
    payer_bin_iin: str
    recipient_name: str
    total_amount: OutputAmount
    status: Literal["reversed"]


class ReversalRefundPayer(OutputModel):
    name: str
    bin_iin: str
    iban: str


class ReversalRefundLine(OutputModel):
    line_no: int
    iin: str
    surname: str = Field(description="the posted entry's spelling (the registry's), not the line as sent")
    name: str
    patronymic: str | None
    birth_date: str
    period: Period
    amount: ReversedAmount
    reason: None = Field(description="always null: the order's reason is the decision's text")


class ReversalRefund(OutputModel):
    """`refunds.reversals` (key: notification_id): one refund order per decision that reversed an entry."""

    schema_version: Literal[1]
    refund_id: str = Field(description="<refund_decision_id>/refund")
    refund_decision_id: str
    notification_id: str
    payer: ReversalRefundPayer = Field(description="the decision's payer")
    document_number: str
    document_date: str
    knp: Literal["012", "017"]
    refund_knp: Literal["026", "094"]
    scope: Literal["reversal"]
    reason: str = Field(description="the decision's text")
    amount: ReversedAmount = Field(description="sum of the lines: the amount reversed")
    lines: list[ReversalRefundLine] = Field(min_length=1)
    received_at: str = Field(description="the refund decision's received_at")
    created_at: str


class RejectedEntry(OutputModel):
    entry_id: str
    reason: Literal["ENTRY_NOT_FOUND", "ALREADY_REVERSED", "PERIOD_USED_FOR_PAYMENT"]


class RefundDecisionResult(OutputModel):
    """`fund.decision-results` (key: IIN) for a refund decision. The topic also carries payment
    decisions' results (models/fund.py); this is its refund shape, with the fields that are null
    for refunds pinned to null."""

    schema_version: Literal[1]
    decision_id: str = Field(description="the refund_decision_id")
    iin: str
    decision: Literal["refund"]
    payment_type: None
    status: Literal["applied", "rejected"]
    reason: Literal["NOTHING_REVERSED"] | None
    state_before: None
    state_after: None
    assignment_no: None
    decided_on: str
    effective_from: None
    rejected_entries: list[RejectedEntry]
    decided_at: str
