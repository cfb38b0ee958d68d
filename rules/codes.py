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

# Refunds of posted contributions (contract Part 2): why a named entry is not reversed, in the order
# they are checked, and the decision's reason when no entry is.
ENTRY_NOT_FOUND = "ENTRY_NOT_FOUND"
ALREADY_REVERSED = "ALREADY_REVERSED"
PERIOD_USED_FOR_PAYMENT = "PERIOD_USED_FOR_PAYMENT"
REVERSAL_ENTRY_REASONS = (ENTRY_NOT_FOUND, ALREADY_REVERSED, PERIOD_USED_FOR_PAYMENT)
NOTHING_REVERSED = "NOTHING_REVERSED"
# Social Code art. 247: contributions of the months that made up a payment's base stay in the Fund.
PAYMENT_BASE_MONTHS = 24

# --- Part 2: recipients of social payments (contract, Part 2) ---------------------------------
PAYMENT_TYPES = (
    "loss_of_working_capacity",
    "loss_of_breadwinner",
    "loss_of_job",
    "pregnancy_and_childbirth",
    "adoption",
    "child_care",
)
# payment_type -> (payment KNP, return KNP)
SOCIAL_PAYMENT_KNPS: dict[str, tuple[str, str]] = {
    "loss_of_working_capacity": ("027", "028"),
    "loss_of_breadwinner": ("046", "047"),
    "loss_of_job": ("048", "049"),
    "pregnancy_and_childbirth": ("096", "097"),
    "adoption": ("096", "097"),
    "child_care": ("091", "092"),
}
FUND_DECISIONS = ("assign", "recalculate", "suspend", "resume", "terminate", "refuse")
RECIPIENT_STATES = ("none", "active", "suspended", "terminated", "refused")
TRANSFER_KINDS = ("payment", "return")

# Decision rejections.
ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
RECIPIENT_MISMATCH = "RECIPIENT_MISMATCH"

# Why (part of) a transfer is overpaid or unmatched. Payments: KNP_MISMATCH, AMOUNT_INCONSISTENT, then
# the coverage reasons in COVERAGE_REASONS' order, then EXCEEDS_ASSIGNED.
KNP_MISMATCH = "KNP_MISMATCH"
AMOUNT_INCONSISTENT = "AMOUNT_INCONSISTENT"
REFUSED = "REFUSED"
NO_ASSIGNMENT = "NO_ASSIGNMENT"
OUTSIDE_TERM = "OUTSIDE_TERM"
TERMINATED = "TERMINATED"
SUSPENDED = "SUSPENDED"
EXCEEDS_ASSIGNED = "EXCEEDS_ASSIGNED"
RETURN_EXCEEDS_OUTSTANDING = "RETURN_EXCEEDS_OUTSTANDING"
OVERPAID_REASONS = (KNP_MISMATCH, AMOUNT_INCONSISTENT, REFUSED, NO_ASSIGNMENT, OUTSIDE_TERM, TERMINATED,
                    SUSPENDED, EXCEEDS_ASSIGNED)
UNMATCHED_RETURN_REASONS = (KNP_MISMATCH, AMOUNT_INCONSISTENT, RETURN_EXCEEDS_OUTSTANDING)
# Reasons a decision still to come can cure: the only ones a payment may be held on.
DECISION_LAG_REASONS = frozenset({NO_ASSIGNMENT, OUTSIDE_TERM, EXCEEDS_ASSIGNED})

