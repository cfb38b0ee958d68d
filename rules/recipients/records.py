"""The output records of the recipients ledger (contract, Part 2), as plain dicts ready to encode.

Each is a function of the input, the recorded outcome and the state after it, so a redelivery can
re-emit them equal except for the worker's stamp (`decided_at`, `updated_at`, `posted_at`,
`created_at`)."""
from __future__ import annotations

from ..entries import business_instant
from ..money import format_tiyn, parse_amount
from .state import RecipientState
from .transfers import PaymentSplit, ReturnSplit
from .transitions import DecisionOutcome

SCHEMA_VERSION = 1
DECISION_RESULTS = "fund.decision-results"
ACCOUNTS = "recipients.accounts"
POSTED = "posted.social-payments"
OVERPAYMENTS = "fund.overpayments"
TOPICS = (DECISION_RESULTS, ACCOUNTS, POSTED, OVERPAYMENTS)
# The worker's stamp in each topic's records.
STAMP_FIELDS = {DECISION_RESULTS: "decided_at", ACCOUNTS: "updated_at", POSTED: "posted_at",
                OVERPAYMENTS: "created_at"}


def _money(tiyn: int | None) -> str | None:
    return None if tiyn is None else format_tiyn(tiyn)


def decision_result(decision, outcome: DecisionOutcome, at: str, end_date: str | None = None) -> dict:
    """`end_date` (a product addition): the end of the current assignment after the decision, as
    recipients.accounts shows it (null when open or when there is none). The monthly report needs
    the term of each assignment from a topic kept forever, and this is the one keyed by IIN."""
    return {
        "schema_version": SCHEMA_VERSION,
        "decision_id": decision.decision_id,
        "iin": decision.iin,
        "decision": decision.decision,
        "payment_type": decision.payment_type,
        "status": outcome.status,
        "reason": outcome.reason,
        "state_before": outcome.state_before,
        "state_after": outcome.state_after,
        "assignment_no": outcome.assignment_no,
        "decided_on": decision.decided_on.isoformat(),
        "effective_from": decision.effective_from.isoformat(),
        "end_date": end_date,
        "rejected_entries": [],
        "decided_at": at,
    }


def account_key(state: RecipientState) -> str:
    return f"{state.iin}/{state.payment_type}"


def account(state: RecipientState, at: str) -> dict:
    """The recipient record of clause 12, latest version."""
    p = state.person.fields
    t = state.terms
    return {
        "iin": state.iin,
        "surname": p.get("surname"),
        "name": p.get("name"),
        "patronymic": p.get("patronymic"),
        "birth_date": p.get("birth_date"),
        "sex": p.get("sex"),
        "address": p.get("address"),
        "document": p.get("document"),
        "document_history": [dict(d) for d in state.person.document_history],
        "citizenship": p.get("citizenship"),
        "citizenship_history": [dict(c) for c in state.person.citizenship_history],
        "applied_on": t.get("applied_on"),
        "risk_occurred_on": t.get("risk_occurred_on"),
        "decided_on": state.decided_on,
        "end_date": t.get("end_date"),
        "participation_months": t.get("participation_months"),
        "average_monthly_income": _money(t.get("average_monthly_income")),
        "payment_type": state.payment_type,
        "disability_degree": t.get("disability_degree"),
        "dependants": t.get("dependants"),
        "unemployed_registered_on": t.get("unemployed_registered_on"),
        "sick_leave_days": t.get("sick_leave_days"),
        "child_birth_order": t.get("child_birth_order"),
        "monthly_amount": _money(t.get("monthly_amount")),
        "term_months": t.get("term_months"),
        "pension_contribution_rate": t.get("pension_contribution_rate"),
        "state": state.state,
        "state_since": state.state_since,
        "assignment_no": state.assignment_no,
        "paid": {"gross": format_tiyn(state.paid_gross), "withheld": format_tiyn(state.paid_withheld),
                 "net": format_tiyn(state.paid_net)},
        "overpaid_outstanding": format_tiyn(state.outstanding),
        "returned_total": format_tiyn(state.returned),
        "updated_at": at,
        "schema_version": SCHEMA_VERSION,
    }


def posted_entry(transfer, state: RecipientState, payment: PaymentSplit | None, ret: ReturnSplit | None,
                 at: str) -> dict:
    """The posted transfer; personal data as the record knows them when it is posted."""
    p = state.person.fields
    zero = "0.00"
    return {
        "schema_version": SCHEMA_VERSION,
        "entry_id": transfer.transfer_id,
        "iin": transfer.iin,
        "surname": p.get("surname"),
        "name": p.get("name"),
        "patronymic": p.get("patronymic"),
        "birth_date": p.get("birth_date"),
        "payment_type": transfer.payment_type,
        "kind": transfer.kind,
        "knp": transfer.knp,
        "period": transfer.period,
        "gross_amount": format_tiyn(parse_amount(transfer.gross_amount)),
        "pension_contribution_withheld": format_tiyn(parse_amount(transfer.pension_contribution_withheld)),
        "net_amount": format_tiyn(parse_amount(transfer.net_amount)),
        "covered_amount": format_tiyn(payment.covered) if payment else zero,
        "overpaid_amount": format_tiyn(payment.overpaid) if payment else zero,
        "overpaid_reason": payment.reason if payment else None,
        "applied_to_overpayment": format_tiyn(ret.applied) if ret else zero,
        "unmatched_amount": format_tiyn(ret.unmatched) if ret else zero,
        "assignment_no": payment.assignment_no if payment else None,
        "document_number": transfer.document_number,
        "document_date": transfer.document_date.isoformat(),
        "sent_date": transfer.sent_date.isoformat(),
        "received_at": business_instant(transfer.received_at),
        "sender_name": transfer.sender_name,
        "sender_bin": transfer.sender_bin,
        "recipient_name": transfer.recipient_name,
        "total_amount": format_tiyn(parse_amount(transfer.total_amount)),
        "posted_at": at,
    }


def overpayment(transfer, kind: str, reason: str, amount: int, outstanding_after: int, at: str) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "overpayment_id": transfer.transfer_id,
        "iin": transfer.iin,
        "payment_type": transfer.payment_type,
        "period": transfer.period,
        "kind": kind,
        "reason": reason,
        "amount": format_tiyn(amount),
        "outstanding_after": format_tiyn(outstanding_after),
        "created_at": at,
    }
