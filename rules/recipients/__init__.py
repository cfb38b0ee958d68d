"""The second ledger (contract, Part 2): recipients of social payments, their state per
(IIN, payment_type), transfers, overpayments and returns. Pure: no faust, no kafka, no clock."""
from __future__ import annotations

from .ledger import (
    Decided,
    Emission,
    decide_decision,
    decide_registry_change,
    decide_transfer,
    period_used_for_payment,
    risk_months,
)
from .months import coverage_reason
from .records import ACCOUNTS, DECISION_RESULTS, OVERPAYMENTS, POSTED, STAMP_FIELDS, TOPICS
from .state import Assignment, Person, RecipientState, new_state
from .transfers import (
    PaymentSplit,
    ReturnSplit,
    amounts_consistent,
    apply_to_overpayments,
    classify_payment,
    classify_return,
    held,
    withheld_at,
)
from .transitions import TRANSITIONS, DecisionOutcome, apply_decision

__all__ = [
    "ACCOUNTS", "DECISION_RESULTS", "OVERPAYMENTS", "POSTED", "STAMP_FIELDS", "TOPICS", "TRANSITIONS",
    "Assignment", "Decided", "DecisionOutcome", "Emission", "PaymentSplit", "Person", "RecipientState", "ReturnSplit",
    "amounts_consistent", "apply_decision", "apply_to_overpayments", "classify_payment", "classify_return",
    "coverage_reason", "decide_decision", "decide_registry_change", "decide_transfer", "held", "new_state",
    "period_used_for_payment", "risk_months", "withheld_at",
]
