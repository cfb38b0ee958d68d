"""Responses of the statement API (`/v1/accounts/...`): the shapes that rules.accounts renders and
that the OpenAPI document (/v1/openapi.json) publishes; a test validates rendered views against both."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .audit import AuditAccess
from .common import OutputAmount, OutputModel

# Stricter than the topic models' annotations: the API only ever answers for a valid IIN, and every
# month it shows is real.
Iin = Annotated[str, Field(pattern=r"^[0-9]{12}$", description="IIN: 12 digits", examples=["870314312348"])]
Period = Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM", examples=["2026-10"])]


class Person(OutputModel):
    """As the latest posted record spells the person (the registry's spelling at posting)."""

    surname: str | None
    name: str | None
    patronymic: str | None
    birth_date: str | None


class MonthsCovered(OutputModel):
    count: int
    first: Period | None
    last: Period | None
    periods: list[Period] = Field(description="periods with a positive net of KNP 012 contributions after reversals")


class KindTotals(OutputModel):
    entries: int
    posted: OutputAmount
    reversed: OutputAmount
    net: OutputAmount


class RefundTotals(OutputModel):
    lines: int
    amount: OutputAmount
    unreadable_lines: int = Field(description="refund lines whose amount could not be read (echoed as received); "
                                              "not in amount")


class ReversalTotals(OutputModel):
    entries: int
    amount: OutputAmount


class PaymentTotals(OutputModel):
    count: int
    gross: OutputAmount
    withheld: OutputAmount
    net: OutputAmount
    covered: OutputAmount
    overpaid: OutputAmount


class ReturnTotals(OutputModel):
    count: int
    gross: OutputAmount
    applied_to_overpayment: OutputAmount
    unmatched: OutputAmount


class OverpaymentTotals(OutputModel):
    count: int
    overpaid: OutputAmount
    unmatched_returns: OutputAmount


class SocialTotals(OutputModel):
    payments: PaymentTotals
    returns: ReturnTotals
    overpayments: OverpaymentTotals
    overpaid_outstanding: OutputAmount = Field(description="overpaid amounts posted less what returns matched")


class AccountTotals(OutputModel):
    """GET /v1/accounts/{iin}."""

    iin: Iin
    person: Person | None
    as_of: str | None = Field(description="the latest business time (received_at) of anything in the account")
    months_covered: MonthsCovered
    contributions: KindTotals
    penalties: KindTotals
    refunds: RefundTotals
    reversals: ReversalTotals
    social_payments: SocialTotals


class StatementEntry(OutputModel):
    entry_id: str
    kind: Literal["contribution", "penalty"]
    knp: str
    amount: OutputAmount
    document_number: str
    document_date: str
    received_at: str
    reversed_by: str | None = Field(description="the entry_id of its reversal, if reversed")


class PayerGroup(OutputModel):
    bin_iin: str
    name: str
    contributions: OutputAmount
    penalties: OutputAmount
    entries: list[StatementEntry]


class PeriodGroup(OutputModel):
    period: Period
    contributions: OutputAmount
    penalties: OutputAmount
    reversed: OutputAmount
    net: OutputAmount
    payers: list[PayerGroup]


class StatementReversal(OutputModel):
    entry_id: str
    reverses: str
    refund_decision_id: str
    kind: Literal["contribution", "penalty"]
    knp: str
    period: Period
    amount: OutputAmount
    payer_bin_iin: str | None
    payer_name: str | None
    document_number: str
    document_date: str
    received_at: str


class StatementRefund(OutputModel):
    refund_id: str
    notification_id: str | None
    line_no: int
    period: Period | None
    period_as_sent: str | None = Field(description="the line's period as sent when it is not a real month")
    month: Period | None = Field(description="the month the line counts in: its period, else the Asia/Almaty "
                                             "month of the notification's receipt")
    amount: OutputAmount | None
    amount_as_sent: str | None = Field(description="the line's amount as sent when it cannot be read")
    reason: str | None
    scope: Literal["order", "lines"] | None
    knp: str | None
    refund_knp: str | None
    payer_bin_iin: str | None
    payer_name: str | None
    document_number: str | None
    document_date: str | None
    received_at: str | None


class StatementSocialPayment(OutputModel):
    entry_id: str
    payment_type: str
    kind: Literal["payment", "return"]
    knp: str
    period: Period
    gross_amount: OutputAmount
    pension_contribution_withheld: OutputAmount
    net_amount: OutputAmount
    covered_amount: OutputAmount
    overpaid_amount: OutputAmount
    overpaid_reason: str | None
    applied_to_overpayment: OutputAmount
    unmatched_amount: OutputAmount
    assignment_no: int | None
    document_number: str
    document_date: str
    received_at: str
    sender_name: str | None
    sender_bin: str | None


class StatementOverpayment(OutputModel):
    overpayment_id: str
    payment_type: str
    period: Period
    kind: Literal["overpaid", "unmatched_return"]
    reason: str
    amount: OutputAmount
    outstanding_after: OutputAmount


class StatementTotals(OutputModel):
    contributions: OutputAmount
    penalties: OutputAmount
    reversed: OutputAmount
    refunded: OutputAmount
    social_payments: SocialTotals


class Statement(OutputModel):
    """GET /v1/accounts/{iin}/statement?from=YYYY-MM&to=YYYY-MM: items whose month is in the range."""

    iin: Iin
    person: Person | None
    from_: Period | None = Field(alias="from")
    to: Period | None
    periods: list[PeriodGroup]
    reversals: list[StatementReversal]
    refunds: list[StatementRefund]
    social_payments: list[StatementSocialPayment]
    overpayments: list[StatementOverpayment]
    totals: StatementTotals


class AuditList(OutputModel):
    """GET /v1/audit: the audit trail for an auditor, newest last."""

    records: list[AuditAccess]


class ApiError(OutputModel):
    error: str = Field(description="the outcome code, as in the audit record")
    message: str
