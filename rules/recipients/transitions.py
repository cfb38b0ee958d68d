"""The recipient state machine (contract, Part 2, "Recipient state"): one decision of the Fund
applied to the state of one (IIN, payment_type)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .. import codes
from ..money import parse_amount
from .months import ACTIVE, SUSPENDED, first_month_on_or_after, last_day, month_of_iso
from .person import DECISION, REGISTRY, observe, person_view, recipient_mismatch, registry_changed_on
from .state import Assignment, RecipientState

# decision -> (states it is allowed from, state after; None = unchanged)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "assign": (frozenset({"none", "terminated", "refused"}), "active"),
    "recalculate": (frozenset({"active", "suspended"}), None),
    "suspend": (frozenset({"active"}), "suspended"),
    "resume": (frozenset({"suspended"}), "active"),
    "terminate": (frozenset({"active", "suspended"}), "terminated"),
    "refuse": (frozenset({"none", "terminated", "refused"}), "refused"),
}
# Fields of the record an assign sets and a recalculation replaces when it gives them.
TERM_FIELDS = ("applied_on", "risk_occurred_on", "end_date", "participation_months", "average_monthly_income",
               "disability_degree", "dependants", "unemployed_registered_on", "sick_leave_days",
               "child_birth_order", "monthly_amount", "term_months", "pension_contribution_rate")
_DATES = ("applied_on", "risk_occurred_on", "end_date", "unemployed_registered_on")
_AMOUNTS = ("average_monthly_income", "monthly_amount")


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    status: str  # "applied" | "rejected"
    reason: str | None
    state_before: str
    state_after: str
    assignment_no: int | None


def allowed(decision: str, state: str) -> bool:
    sources, _ = TRANSITIONS[decision]
    return state in sources


def _terms_of(decision) -> dict:
    out = {}
    for f in TERM_FIELDS:
        value = getattr(decision, f, None)
        if value is not None and f in _DATES:
            value = value.isoformat()
        elif value is not None and f in _AMOUNTS:
            value = parse_amount(value)
        out[f] = value
    return out


def _end_of(first_month: int, end_date: str | None, term_months: int | None) -> str | None:
    if end_date is not None:
        return end_date
    if term_months is not None:
        return last_day(first_month + term_months - 1)
    return None


def apply_decision(state: RecipientState, decision, registry_person) -> tuple[DecisionOutcome | None, RecipientState]:
    """(outcome, new state). A decision_id seen before is a repeat: (None, state unchanged).
    A rejected decision changes nothing but remembers its id. `registry_person` is the registry's
    record of the IIN (None: not in the registry)."""
    if decision.decision_id in state.decisions_seen:
        return None, state
    new = state.copy()
    new.decisions_seen.add(decision.decision_id)
    before = state.state
    kind = decision.decision
    reason = None
    if kind == "assign" and recipient_mismatch(decision.recipient, registry_person):
        reason = codes.RECIPIENT_MISMATCH
    elif not allowed(kind, before):
        reason = codes.ILLEGAL_TRANSITION
    if reason is not None:
        return DecisionOutcome("rejected", reason, before, before, state.assignment_no), new

    effective = decision.effective_from.isoformat()
    terms = _terms_of(decision)
    if kind == "assign":
        first = month_of_iso(effective)
        end = _end_of(first, terms["end_date"], terms["term_months"])
        a = Assignment(len(new.assignments) + 1, first, end)
        a.events.append([effective, ACTIVE])
        a.amounts.append([first, terms["monthly_amount"], terms["pension_contribution_rate"]])
        a.risk_dates.append(terms["risk_occurred_on"])
        new.assignments.append(a)
        new.terms = terms
        new.terms["end_date"] = end
    elif kind == "recalculate":
        a = new.current
        a.amounts.append([first_month_on_or_after(effective), terms["monthly_amount"],
                          terms["pension_contribution_rate"]])
        if terms["end_date"] is not None or terms["term_months"] is not None:
            a.end = _end_of(a.first_month, terms["end_date"], terms["term_months"])
        if terms["risk_occurred_on"] not in a.risk_dates:
            a.risk_dates.append(terms["risk_occurred_on"])
        # Null keeps what was decided before (the end, the rate, a type-specific field).
        new.terms.update({f: v for f, v in terms.items() if v is not None})
        new.terms["end_date"] = a.end
    elif kind in ("suspend", "resume"):
        new.current.events.append([effective, SUSPENDED if kind == "suspend" else ACTIVE])
    elif kind == "terminate":
        a = new.current
        day_before = _day_before(effective)
        if a.end is None or day_before <= a.end:
            a.end = day_before
            a.terminated = True
        new.terms["end_date"] = a.end
    # refuse: nothing is assigned; the earlier assignment and its fields stay.
    _, after = TRANSITIONS[kind]
    new.state = after or before
    new.state_since = effective
    new.decided_on = decision.decided_on.isoformat()
    decided_on = new.decided_on
    observe(new.person, DECISION, person_view(decision.recipient), decided_on)
    if registry_person is not None:
        observe(new.person, REGISTRY, person_view(registry_person), registry_changed_on(registry_person, decided_on))
    return DecisionOutcome("applied", None, before, new.state, new.assignment_no), new


def _day_before(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()
