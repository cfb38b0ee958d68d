"""`bank.credit-notifications`: one payment order credited to the State Corporation's account.

Fields whose bad values have a refund reason (line IIN, period, amount, birth date, KNP, currency)
are plain strings here: judging them is the rules' job, not the parser's (contract, Clarifications).
Every field has the bounds of models/bounds.py: beyond them a record is a dead letter.
"""
from __future__ import annotations

from pydantic import Field

from . import bounds as b
from .bounds import BusinessDate, LineNo, Timestamp
from .common import InputModel, Iin, PositiveAmount


class Payer(InputModel):
    name: str = Field(max_length=b.MAX_ORG_NAME_CHARS)
    bin_iin: str = Field(max_length=b.MAX_BIN_IIN_CHARS)
    iban: str = Field(max_length=b.MAX_IBAN_CHARS)


class OrderLine(InputModel):
    line_no: LineNo
    iin: str = Field(max_length=b.MAX_LINE_IIN_CHARS,
                     description="as sent; INVALID_IIN when not 12 digits with a valid check digit")
    surname: str = Field(max_length=b.MAX_PERSON_NAME_CHARS)
    name: str = Field(max_length=b.MAX_PERSON_NAME_CHARS)
    patronymic: str | None = Field(None, max_length=b.MAX_PERSON_NAME_CHARS)
    birth_date: str = Field(max_length=b.MAX_LINE_DATE_CHARS,
                            description="YYYY-MM-DD; a date that is not real is BIRTH_DATE_MISMATCH")
    amount: str = Field(max_length=b.MAX_AMOUNT_CHARS,
                        description="decimal string; zero is AMOUNT_INVALID, unparseable is TOTAL_MISMATCH")
    period: str | None = Field(None, max_length=b.MAX_CODE_CHARS,
                               description="YYYY-MM; not a real month, or after the receipt, is PERIOD_INVALID")


class CreditNotification(InputModel):
    notification_id: str = Field(min_length=1, max_length=b.MAX_ID_CHARS,
                                 description="unique per bank message; the idempotency key")
    bank_bic: str = Field(max_length=b.MAX_BIC_CHARS)
    document_number: str = Field(max_length=b.MAX_DOCUMENT_NUMBER_CHARS)
    document_date: BusinessDate
    sent_date: BusinessDate
    received_at: Timestamp = Field(description="credited to the State Corporation's account; RFC 3339 with offset")
    knp: str = Field(max_length=b.MAX_CODE_CHARS, description="payment purpose code; 012 contributions, 017 penalties")
    payer: Payer
    recipient_name: str = Field(max_length=b.MAX_ORG_NAME_CHARS)
    total_amount: PositiveAmount
    currency: str = Field(max_length=b.MAX_CODE_CHARS)
    period: str | None = Field(None, max_length=b.MAX_CODE_CHARS,
                               description="YYYY-MM; a line's own period overrides it")
    lines: list[OrderLine] = Field(max_length=b.MAX_LINES,
                                   description="an empty list is TOTAL_MISMATCH, not a dead letter")


__all__ = ["CreditNotification", "OrderLine", "Payer", "Iin"]
