"""Payment purpose codes (KNP) and reason codes, kept as data so that a correction is a data change.

The KNP meanings are our reading of the national classifier (domain brief)."""
from __future__ import annotations

# Accepted on the contributions account, and what kind of entry each posts.
CONTRIBUTION_KNPS: dict[str, str] = {"012": "contribution", "017": "penalty"}
# Refund of an accepted KNP back to the payer.
REFUND_KNPS: dict[str, str] = {"012": "026", "017": "094"}
ACCEPTED_CURRENCY = "KZT"

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

# Refunds of posted contributions (contract Part 2): why a named entry is not reversed, in the order
# they are checked, and the decision's reason when no entry is.
ENTRY_NOT_FOUND = "ENTRY_NOT_FOUND"
ALREADY_REVERSED = "ALREADY_REVERSED"
PERIOD_USED_FOR_PAYMENT = "PERIOD_USED_FOR_PAYMENT"
REVERSAL_ENTRY_REASONS = (ENTRY_NOT_FOUND, ALREADY_REVERSED, PERIOD_USED_FOR_PAYMENT)
NOTHING_REVERSED = "NOTHING_REVERSED"
# Social Code art. 247: contributions of the months that made up a payment's base stay in the Fund.
PAYMENT_BASE_MONTHS = 24
