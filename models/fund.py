"""The Fund's topics (contract, Part 2): decisions on social payments and transfers in, the recipients
ledger out.

Unlike part 1's order lines, nothing here has a reason code for a malformed value: an IIN without a
valid check digit, an unknown enum value, a date or period that is not real, a bad amount or a value
beyond the bounds below is a dead letter naming the field. KNP and amount consistency are judged by
the rules (overpayment reasons), so `knp` is a plain bounded string.

Bounds (what a real record can have): ids 1-100 characters, names 1-200, free text up to 2000;
business dates in years 1990-2100, birth dates 1900-2100, `received_at` 2000-2100; amounts at most
12 integer digits; `term_months` 1-1200, `participation_months` 0-1200, `disability_degree` 0-100,
`dependants` 0-30, `sick_leave_days` 0-366, `child_birth_order` 1-30, `pension_contribution_rate`
0-1 with at most 4 decimals.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from rules.dates import parse_period
from rules.iin import is_valid_iin
from rules.money import parse_amount

from .common import InputModel, OutputAmount, OutputModel

PaymentType = Literal[
    "loss_of_working_capacity", "loss_of_breadwinner", "loss_of_job", "pregnancy_and_childbirth", "adoption",
    "child_care",
]
DecisionKind = Literal["assign", "recalculate", "suspend", "resume", "terminate", "refuse"]
RecipientStateName = Literal["none", "active", "suspended", "terminated", "refused"]
TransferKind = Literal["payment", "return"]
OverpaidReason = Literal[
    "KNP_MISMATCH", "AMOUNT_INCONSISTENT", "REFUSED", "NO_ASSIGNMENT", "OUTSIDE_TERM", "TERMINATED", "SUSPENDED",
    "EXCEEDS_ASSIGNED",
]
UnmatchedReason = Literal["KNP_MISMATCH", "AMOUNT_INCONSISTENT", "RETURN_EXCEEDS_OUTSTANDING"]

MAX_AMOUNT_TIYN = 10**14 - 1  # 999 999 999 999.99 tenge: 12 integer digits


def _valid_iin(value: str) -> str:
    if not is_valid_iin(value):
        raise ValueError("must be 12 digits with a valid check digit")
    return value


def _amount(positive: bool):
    def check(value: str) -> str:
        tiyn = parse_amount(value)
        if tiyn is None:
            raise ValueError("must be a decimal string with at most two decimals, e.g. \"4250.00\"")
        if tiyn > MAX_AMOUNT_TIYN:
            raise ValueError("must be below 1000000000000")
        if positive and tiyn == 0:
            raise ValueError("must be above zero")
        return value
    return check


def _years(low: int, high: int):
    def check(value: date | datetime) -> date | datetime:
        if not low <= value.year <= high:
            raise ValueError(f"year must be within {low}-{high}")
        return value
    return check


def _period(value: str) -> str:
    p = parse_period(value)
    if p is None:
        raise ValueError("must be a real month YYYY-MM")
    if not 2000 <= p[0] <= 2100:
        raise ValueError("year must be within 2000-2100")
    return value


def _rate(value: str) -> str:
    # A decimal string, never a float: withholding is computed exactly from it.
    whole, dot, frac = value.partition(".")
    if not (value.isascii() and whole in ("0", "1") and (not dot or (frac.isdigit() and len(frac) <= 4))):
        raise ValueError("must be a decimal string from 0 to 1 with at most 4 decimals, e.g. \"0.10\"")
    if whole == "1" and dot and int(frac) != 0:
        raise ValueError("must not exceed 1")
    return value


FundIin = Annotated[str, Field(pattern=r"^[0-9]{12}$"), AfterValidator(_valid_iin),
                    Field(description="12 digits with a valid check digit", examples=["870314312348"])]
_AMOUNT_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
Amount = Annotated[str, Field(max_length=20, pattern=_AMOUNT_PATTERN), AfterValidator(_amount(positive=False)),
                   Field(description="tenge, a non-negative decimal string with at most two decimals",
                         examples=["60000.00"])]
GrossAmount = Annotated[str, Field(max_length=20, pattern=_AMOUNT_PATTERN), AfterValidator(_amount(positive=True)),
                        Field(description="tenge, a decimal string above zero with at most two decimals",
                              examples=["65000.00"])]
BusinessDate = Annotated[date, AfterValidator(_years(1990, 2100))]
BirthDate = Annotated[date, AfterValidator(_years(1900, 2100))]
ReceivedAt = Annotated[AwareDatetime, AfterValidator(_years(2000, 2100))]
FundPeriod = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}$"), AfterValidator(_period),
                       Field(description="YYYY-MM", examples=["2025-04"])]
Rate = Annotated[str, Field(pattern=r"^[01](\.[0-9]{1,4})?$"), AfterValidator(_rate),
                 Field(description="decimal string from 0 to 1", examples=["0.10"])]
Id = Annotated[str, Field(min_length=1, max_length=100)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=2000)]


class RecipientAddress(InputModel):
    text: Annotated[str, Field(min_length=1, max_length=500)]
    postal_index: Annotated[str, Field(max_length=12)] | None = None


class RecipientDocument(InputModel):
    kind: Annotated[str, Field(min_length=1, max_length=50)]
    series: Annotated[str, Field(max_length=20)] | None = None
    number: Annotated[str, Field(min_length=1, max_length=50)]
    issued_on: BirthDate | None = None
    issuer: Annotated[str, Field(max_length=200)] | None = None


class Recipient(InputModel):
    """The recipient as the Fund's decision names them (clause 12's personal data)."""

    surname: Name
    name: Name
    patronymic: Name | None = None
    birth_date: BirthDate
    sex: Literal["M", "F"]
    address: RecipientAddress | None = None
    document: RecipientDocument | None = None
    citizenship: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2")]


# Fields an assign or recalculate must carry (contract, `fund.payment-decisions`).
ASSIGNMENT_REQUIRED = ("applied_on", "risk_occurred_on", "monthly_amount", "participation_months",
                       "average_monthly_income")


class PaymentDecision(InputModel):
    """`fund.payment-decisions` (key: IIN): a decision of the Fund on one recipient's social payment."""

    decision_id: Id = Field(description="the idempotency key")
    iin: FundIin
    payment_type: PaymentType
    decision: DecisionKind
    decided_on: BusinessDate
    effective_from: BusinessDate
    applied_on: BusinessDate | None = None
    risk_occurred_on: BusinessDate | None = None
    end_date: BusinessDate | None = None
    monthly_amount: Amount | None = None
    term_months: Annotated[int, Field(ge=1, le=1200)] | None = None
    participation_months: Annotated[int, Field(ge=0, le=1200)] | None = None
    average_monthly_income: Amount | None = None
    disability_degree: Annotated[int, Field(ge=0, le=100, description="percent")] | None = None
    dependants: Annotated[int, Field(ge=0, le=30)] | None = None
    unemployed_registered_on: BusinessDate | None = None
    sick_leave_days: Annotated[int, Field(ge=0, le=366)] | None = None
    child_birth_order: Annotated[int, Field(ge=1, le=30)] | None = None
    pension_contribution_rate: Rate | None = None
    recipient: Recipient
    reason: Text | None = None

    @model_validator(mode="after")
    def _assignment_fields(self) -> PaymentDecision:
        if self.decision in ("assign", "recalculate"):
            missing = [f for f in ASSIGNMENT_REQUIRED if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)}: required for {self.decision}")
        return self


class PaymentTransfer(InputModel):
    """`fund.payment-transfers` (key: IIN): a social payment made, or a return of one."""

    transfer_id: Id = Field(description="the idempotency key; the posted entry's id")
    iin: FundIin
    payment_type: PaymentType
    kind: TransferKind
    knp: Annotated[str, Field(min_length=1, max_length=16,
                              description="judged by the rules: not the type's KNP is KNP_MISMATCH")]
    period: FundPeriod
    gross_amount: GrossAmount
    pension_contribution_withheld: Amount
    net_amount: Amount
    document_number: Annotated[str, Field(min_length=1, max_length=64)]
    document_date: BusinessDate
    sent_date: BusinessDate
    received_at: ReceivedAt = Field(description="RFC 3339 with offset; business time of the transfer")
    sender_name: Name
    sender_bin: Annotated[str, Field(pattern=r"^[0-9]{12}$")]
    recipient_name: Name
    total_amount: Amount


# --- outputs ----------------------------------------------------------------------------------------

class RejectedEntry(OutputModel):
    entry_id: str
    reason: Literal["ENTRY_NOT_FOUND", "ALREADY_REVERSED", "PERIOD_USED_FOR_PAYMENT"]


class DecisionResult(OutputModel):
    """`fund.decision-results` (key: IIN): one per decision of `fund.payment-decisions` or
    `fund.refund-decisions`, for the Fund's reconciliation."""

    schema_version: Literal[1]
    decision_id: str = Field(description="the refund_decision_id for refund decisions")
    iin: str
    decision: Literal["assign", "recalculate", "suspend", "resume", "terminate", "refuse", "refund"]
    payment_type: PaymentType | None = Field(description="null for refunds")
    status: Literal["applied", "rejected"]
    reason: Literal["ILLEGAL_TRANSITION", "RECIPIENT_MISMATCH", "NOTHING_REVERSED"] | None
    state_before: RecipientStateName | None = Field(description="null for refunds")
    state_after: RecipientStateName | None = Field(description="null for refunds")
    assignment_no: int | None
    decided_on: str
    effective_from: str | None = Field(description="null for refunds")
    end_date: str | None = Field(default=None, description=(
        "product addition: the end of the recipient's current assignment after the decision (the last day paid "
        "for), as recipients.accounts shows it; null when open, when there is none, and for refunds"))
    rejected_entries: list[RejectedEntry] = Field(description="refunds only; else []")
    decided_at: str


class AccountAddress(OutputModel):
    text: str
    postal_index: str | None


class AccountDocument(OutputModel):
    kind: str
    series: str | None
    number: str
    issued_on: str | None
    issuer: str | None


class DocumentChange(OutputModel):
    number: str
    issued_on: str | None
    changed_on: str


class CitizenshipChange(OutputModel):
    citizenship: str
    changed_on: str


class Paid(OutputModel):
    gross: OutputAmount
    withheld: OutputAmount
    net: OutputAmount


class RecipientAccount(OutputModel):
    """`recipients.accounts` (key: `<iin>/<payment_type>`; compacted): the recipient record of
    clause 12, latest version. Personal data are null only while neither a decision nor the
    registry has named the person."""

    iin: str
    surname: str | None
    name: str | None
    patronymic: str | None
    birth_date: str | None
    sex: Literal["M", "F"] | None
    address: AccountAddress | None
    document: AccountDocument | None
    document_history: list[DocumentChange]
    citizenship: str | None
    citizenship_history: list[CitizenshipChange]
    applied_on: str | None
    risk_occurred_on: str | None
    decided_on: str | None
    end_date: str | None = Field(description="the assignment's end in force (after a termination), or null")
    participation_months: int | None
    average_monthly_income: OutputAmount | None
    payment_type: PaymentType
    disability_degree: int | None
    dependants: int | None
    unemployed_registered_on: str | None
    sick_leave_days: int | None
    child_birth_order: int | None
    monthly_amount: OutputAmount | None = Field(description="the amount last decided")
    term_months: int | None
    pension_contribution_rate: str | None
    state: RecipientStateName
    state_since: str | None = Field(description="effective_from of the last applied decision")
    assignment_no: int | None
    paid: Paid
    overpaid_outstanding: OutputAmount
    returned_total: OutputAmount
    updated_at: str
    schema_version: Literal[1]


class PostedSocialPayment(OutputModel):
    """`posted.social-payments` (key: IIN): every transfer, posted once (entry_id = transfer_id)."""

    schema_version: Literal[1]
    entry_id: str
    iin: str
    surname: str | None
    name: str | None
    patronymic: str | None
    birth_date: str | None
    payment_type: PaymentType
    kind: TransferKind
    knp: str
    period: str
    gross_amount: OutputAmount
    pension_contribution_withheld: OutputAmount
    net_amount: OutputAmount
    covered_amount: OutputAmount
    overpaid_amount: OutputAmount
    overpaid_reason: OverpaidReason | None
    applied_to_overpayment: OutputAmount
    unmatched_amount: OutputAmount
    assignment_no: int | None
    document_number: str
    document_date: str
    sent_date: str
    received_at: str
    sender_name: str
    sender_bin: str
    recipient_name: str
    total_amount: OutputAmount
    posted_at: str


class Overpayment(OutputModel):
    """`fund.overpayments` (key: IIN): one per transfer with an overpaid or unmatched amount."""

    schema_version: Literal[1]
    overpayment_id: str = Field(description="= transfer_id")
    iin: str
    payment_type: PaymentType
    period: str
    kind: Literal["overpaid", "unmatched_return"]
    reason: OverpaidReason | UnmatchedReason
    amount: OutputAmount
    outstanding_after: OutputAmount
    created_at: str
