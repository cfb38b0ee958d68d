"""`reports.monthly` (key: YYYY-MM; every version kept): the monthly information of clause 7, and the
per-partition partial the report is assembled from (contract Part 2)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import OutputAmount, OutputModel, Period

PaymentType = Literal[
    "loss_of_working_capacity", "loss_of_breadwinner", "loss_of_job", "pregnancy_and_childbirth", "adoption",
    "child_care",
]
RefundReason = Literal[
    "KNP_NOT_ACCEPTED", "CURRENCY_NOT_ACCEPTED", "DUPLICATE_LINE_NO", "TOTAL_MISMATCH", "INVALID_IIN",
    "PERIOD_INVALID", "AMOUNT_INVALID", "IIN_NOT_FOUND", "NAME_MISMATCH", "BIRTH_DATE_MISMATCH", "DECEASED",
]
Count = Field(ge=0)


class PeriodFigures(OutputModel):
    period: Period
    lines: int = Count
    amount: OutputAmount


class DayFigures(OutputModel):
    day: str = Field(description="YYYY-MM-DD, Asia/Almaty date of receipt")
    lines: int = Count
    amount: OutputAmount


class Reversals(OutputModel):
    lines: int = Count
    amount: OutputAmount


class Refunds(OutputModel):
    """Part 1 refunds (`refunds.to-payers`) only; reversal refunds are in `reversals`."""

    orders: int = Count
    lines: int = Count
    amount: OutputAmount
    by_reason: dict[RefundReason, int] = Field(description="refunded lines per reason (an order's reason for each "
                                                           "line of a whole-order refund)")


class Contributions(OutputModel):
    participants: int = Field(ge=0, description="distinct IINs with a posted KNP 012 line")
    payers: int = Field(ge=0, description="distinct payer BIN/IIN with a posted line")
    lines_posted: int = Count
    amount_contributions: OutputAmount = Field(description="KNP 012, not net of reversals")
    amount_penalties: OutputAmount = Field(description="KNP 017, not net of reversals")
    by_period: list[PeriodFigures] = Field(description="posted lines by the period paid for, ascending")
    by_day: list[DayFigures] = Field(description="product addition: posted lines by the day of receipt, ascending "
                                                 "(the month's chart)")
    reversals: Reversals
    refunds: Refunds
    deceased_alerts: int = Count
    decided_after_deadline: int = Field(ge=0, description="orders whose result came after the receipt's "
                                                          "business deadline")


class PaymentFigures(OutputModel):
    count: int = Count
    gross: OutputAmount
    withheld: OutputAmount
    net: OutputAmount


class CountAmount(OutputModel):
    count: int = Count
    amount: OutputAmount


class TypeFigures(OutputModel):
    recipients_active_at_month_end: int = Count
    assigned: int = Count
    recalculated: int = Count
    suspended: int = Count
    resumed: int = Count
    terminated: int = Count
    refused: int = Count
    payments: PaymentFigures
    returns: CountAmount
    overpaid: CountAmount
    overpaid_outstanding_at_month_end: OutputAmount


class SocialPayments(OutputModel):
    by_type: dict[PaymentType, TypeFigures]


class MonthlyReport(OutputModel):
    """`reports.monthly` (key: YYYY-MM). A month publishes `preliminary` when it ends, `final` after the
    grace of business days, and `revised` (revision 1, 2 ...) when entries arrive for a final month."""

    schema_version: Literal[1]
    month: Period
    version: Literal["preliminary", "final", "revised"]
    revision: int = Field(ge=0, description="0 for preliminary and final, then 1, 2 ...")
    generated_at: str
    parts: list[Literal["contributions", "social_payments"]] = Field(
        description="the sections this version holds (product addition): social_payments is null until held")
    covers: dict[str, dict[str, int]] = Field(description="topic -> partition -> next offset counted")
    contributions: Contributions
    social_payments: SocialPayments | None
    delta: dict[str, Any] | None = Field(
        description="null for preliminary; else the report's shape holding only the leaves that changed since "
                    "the previous version, each new - old, signed (amounts as signed two-decimal strings); "
                    "{} when nothing changed")


class ReportPartial(OutputModel):
    """`reports.partials` (key: `<YYYY-MM>/<stream>/<partition>`; compacted): one partition's figures of a
    month, the latest replacing the previous; the assembler sums the latest of every partition.
    Key `<stream>/<partition>`: the partition's progress (`month` null, no figures, its covers), which
    tells the assembler how far every partition has counted, months with data or not."""

    schema_version: Literal[1]
    month: Period | None
    stream: Literal["persons", "orders", "payers"]
    partition: int = Field(ge=0)
    figures: dict[str, int] = Field(description="flat leaf path -> count or tiyn, e.g. "
                                                "\"contributions/by_period/2026-01/amount\"")
    covers: dict[str, dict[str, int]] = Field(description="topic -> partition -> next offset counted")
    updated_at: str
