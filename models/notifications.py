"""`bank.credit-notifications`: one payment order credited to the State Corporation's account.

Fields whose bad values have a refund reason (line IIN, period, amount, birth date, KNP, currency)
are plain strings here: judging them is the rules' job, not the parser's (contract, Clarifications).
"""
from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, Field

from .common import InputModel, Iin, Period, PositiveAmount


class Payer(InputModel):
    name: str
    bin_iin: str
    iban: str


class OrderLine(InputModel):
    line_no: int
    iin: str = Field(description="as sent; INVALID_IIN when not 12 digits with a valid check digit")
    surname: str
    name: str
    patronymic: str | None = None
    birth_date: str = Field(description="YYYY-MM-DD; a date that is not real is BIRTH_DATE_MISMATCH")
    amount: str = Field(description="decimal string; zero is AMOUNT_INVALID, unparseable is TOTAL_MISMATCH")
    period: Period | None = None


class CreditNotification(InputModel):
    notification_id: str = Field(min_length=1, description="unique per bank message; the idempotency key")
    bank_bic: str
    document_number: str
    document_date: date
    sent_date: date
    received_at: AwareDatetime = Field(description="credited to the State Corporation's account; RFC 3339 with offset")
    knp: str = Field(description="payment purpose code; 012 contributions, 017 penalties")
    payer: Payer
    recipient_name: str
    total_amount: PositiveAmount
    currency: str
    period: Period | None = None
    lines: list[OrderLine]


__all__ = ["CreditNotification", "OrderLine", "Payer", "Iin"]
