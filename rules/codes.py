"""The contract's codes, in one place: payment purpose codes (KNP), reason codes, error kinds and the
version every output record carries. Kept as data so that a correction is a data change; the models
(`models/outputs.py`) derive their enumerations from here.

The KNP meanings are our reading of the national classifier (domain brief)."""
from __future__ import annotations

# Carried by every output record (contract v1).
SCHEMA_VERSION = 1

# Accepted on the contributions account, and what kind of entry each posts.
CONTRIBUTION_KNPS: dict[str, str] = {"012": "contribution", "017": "penalty"}
# Refund of an accepted KNP back to the payer.
REFUND_KNPS: dict[str, str] = {"012": "026", "017": "094"}
ACCEPTED_CURRENCY = "KZT"

# Order status (contract, Clarifications: Order status).
STATUS_POSTED = "posted"
STATUS_PARTIAL = "partially_refunded"
STATUS_REFUNDED = "refunded"
ORDER_STATUSES = (STATUS_POSTED, STATUS_PARTIAL, STATUS_REFUNDED)

# Whole-order checks, in the order they are applied (contract, Clarifications).
KNP_NOT_ACCEPTED = "KNP_NOT_ACCEPTED"
CURRENCY_NOT_ACCEPTED = "CURRENCY_NOT_ACCEPTED"
DUPLICATE_LINE_NO = "DUPLICATE_LINE_NO"
TOTAL_MISMATCH = "TOTAL_MISMATCH"
ORDER_REASONS = (KNP_NOT_ACCEPTED, CURRENCY_NOT_ACCEPTED, DUPLICATE_LINE_NO, TOTAL_MISMATCH)

# Line checks, in the order they are applied.
INVALID_IIN = "INVALID_IIN"
PERIOD_INVALID = "PERIOD_INVALID"
AMOUNT_INVALID = "AMOUNT_INVALID"
IIN_NOT_FOUND = "IIN_NOT_FOUND"
NAME_MISMATCH = "NAME_MISMATCH"
BIRTH_DATE_MISMATCH = "BIRTH_DATE_MISMATCH"
DECEASED = "DECEASED"
LINE_REASONS = (
    INVALID_IIN,
    PERIOD_INVALID,
    AMOUNT_INVALID,
    IIN_NOT_FOUND,
    NAME_MISMATCH,
    BIRTH_DATE_MISMATCH,
    DECEASED,
)
# Reasons a late registry record can cure: the only ones a registry-lag hold may wait on.
REGISTRY_LAG_REASONS = frozenset({IIN_NOT_FOUND, NAME_MISMATCH, BIRTH_DATE_MISMATCH})

# Why a record became a dead letter (contract, Clarifications: Dead letters).
NOT_JSON = "not_json"
NOT_UTF8 = "not_utf8"
SCHEMA = "schema"
UNPROCESSABLE = "unprocessable"  # valid by the model, but a processing step failed on it
ERROR_KINDS = (NOT_JSON, NOT_UTF8, SCHEMA, UNPROCESSABLE)
