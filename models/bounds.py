"""Bounds of the input records: the ranges a real record can have (contract, Clarification "Bounds").

A value beyond them is a dead letter naming the field (`error_kind` "schema"), like a wrong type.
Only a broken or hostile producer sends one, and letting it in moves the failure to where it costs
more: an integer no encoder can write (a `line_no` of 10**30 once stopped posting for everyone), a
year the calendar cannot compute in, a string that bloats every record derived from it.

The bounds are generous on purpose. Fields whose bad values have a refund reason (a line's IIN,
period, birth date and amount; the KNP; the currency) are bounded in length only, far above any
mistyped value, so that the reason code still judges every value a bank could plausibly send.
Dates and timestamps have fixed windows, not windows around the wall clock: the same record gets
the same verdict whenever it is read (a redelivery, a replay years later), and the window is in
the JSON Schema.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated

from pydantic import AwareDatetime, Field

# Lines per order. A line is 150-250 bytes of JSON, so 10,000 lines is 1.5-2.5 MB: beyond the
# broker's default record limit (1 MB) already, and beyond any payment order an employer files
# (the largest employers pay per branch). Zero lines is not a bound but TOTAL_MISMATCH (contract).
MAX_LINES = 10_000
# Line numbers are 1.. in the bank's order; ten times the line limit leaves room for gaps.
MAX_LINE_NO = 100_000

# One trillion tenge: more than the Social Insurance Fund receives in a year, so no single order
# reaches it; it keeps every amount below 2**53 tiyn, exact in float64 consumers (Prometheus, JS).
MAX_TOTAL_TIYN = 1_000_000_000_000 * 100
MAX_AMOUNT_CHARS = 32  # a line amount that is not a decimal is TOTAL_MISMATCH up to this length

MAX_ID_CHARS = 128  # notification_id: a UUID is 36, bank references 16-35
MAX_BIC_CHARS = 11  # ISO 9362: 8 or 11
MAX_DOCUMENT_NUMBER_CHARS = 64
MAX_BIN_IIN_CHARS = 12  # the payer's BIN or IIN: 12 digits (no refund reason judges it)
MAX_IBAN_CHARS = 34  # ISO 13616 (Kazakhstan: 20)
MAX_ORG_NAME_CHARS = 500  # payer and recipient names of legal entities, in full
MAX_PERSON_NAME_CHARS = 200  # surname, name, patronymic: real ones are under 60
MAX_CODE_CHARS = 16  # knp, currency, period: a wrong value within it gets its reason code
MAX_LINE_IIN_CHARS = 32  # a mistyped IIN ("870314-312348 ") is INVALID_IIN up to this length
MAX_LINE_DATE_CHARS = 32  # a line's birth_date that is not a date is BIRTH_DATE_MISMATCH
MAX_CITIZENSHIP_CHARS = 3  # ISO 3166 alpha-2 (alpha-3 tolerated)
MAX_DOCUMENT_KIND_CHARS = 64
MAX_DOCUMENT_SERIES_CHARS = 16
MAX_DOCUMENT_ID_CHARS = 32
MAX_ISSUER_CHARS = 500
MAX_ADDRESS_CHARS = 1000
MAX_POSTAL_INDEX_CHARS = 16

# Compulsory social insurance began in 2005: no contribution is credited before 2000, and the
# product will not outlive 2099. A receipt in year 8026 or 20260 is a typo or an attack.
FIRST_BUSINESS_DATE = date(2000, 1, 1)
LAST_BUSINESS_DATE = date(2099, 12, 31)
FIRST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_BEFORE = datetime(2100, 1, 1, tzinfo=timezone.utc)
# Registry dates of people: births and identity documents since 1900. A birth (or death) after the
# registry's own record of the person is checked against `updated_at` in models/registry.py.
FIRST_PERSON_DATE = date(1900, 1, 1)


BusinessDate = Annotated[date, Field(
    ge=FIRST_BUSINESS_DATE, le=LAST_BUSINESS_DATE,
    json_schema_extra={"formatMinimum": FIRST_BUSINESS_DATE.isoformat(),
                       "formatMaximum": LAST_BUSINESS_DATE.isoformat()},
)]
PersonDate = Annotated[date, Field(
    ge=FIRST_PERSON_DATE, le=LAST_BUSINESS_DATE,
    json_schema_extra={"formatMinimum": FIRST_PERSON_DATE.isoformat(),
                       "formatMaximum": LAST_BUSINESS_DATE.isoformat()},
)]
Timestamp = Annotated[AwareDatetime, Field(
    ge=FIRST_TIMESTAMP, lt=TIMESTAMP_BEFORE,
    json_schema_extra={"formatMinimum": "2000-01-01T00:00:00Z", "formatExclusiveMaximum": "2100-01-01T00:00:00Z"},
)]
LineNo = Annotated[int, Field(ge=1, le=MAX_LINE_NO)]
