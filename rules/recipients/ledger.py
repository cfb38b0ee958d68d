"""One input of the recipients ledger decided: the new state and what it emits.

`Emission` is the decision record's payload: what an input emitted, by topic, so that a
redelivery re-emits it (restamped) without deciding again, whatever happened since."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..calendar import local_date
from ..money import parse_amount
from . import records
from .person import REGISTRY, observe, person_view, registry_changed_on
from .state import RecipientState
from .transfers import PaymentSplit, ReturnSplit, apply_to_overpayments, classify_payment, classify_return, held
from .transitions import DecisionOutcome, apply_decision


@dataclass(slots=True)
class Emission:
    """Output records by topic (contract default names), each {"key": ..., "value": {...}}."""

    records: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, topic: str, key: str, value: dict) -> None:
        self.records.setdefault(topic, []).append({"key": key, "value": value})

    def get(self, topic: str) -> list[dict]:
        return self.records.get(topic, [])

    def __bool__(self) -> bool:
        return any(self.records.values())

    def restamped(self, at: str) -> Emission:
        """The same records with the worker's stamp `at` (a redelivery's re-emission)."""
        out = Emission()
        for topic, items in self.records.items():
            stamp = records.STAMP_FIELDS[topic]
            for item in items:
                out.add(topic, item["key"], {**item["value"], stamp: at})
        return out

    def to_json(self) -> dict:
        return {t: [{"key": i["key"], "value": dict(i["value"])} for i in items] for t, items in self.records.items()}

    @classmethod
    def from_json(cls, obj: dict) -> Emission:
        return cls({t: [{"key": i["key"], "value": dict(i["value"])} for i in items] for t, items in obj.items()})


@dataclass(slots=True)
class Decided:
    state: RecipientState
    emission: Emission
    outcome: DecisionOutcome | PaymentSplit | ReturnSplit | None = None
    held: bool = False  # a payment waiting for a decision: nothing emitted, state unchanged
    repeat: bool = False  # its id was decided before: nothing emitted, state unchanged


def decide_decision(state: RecipientState, decision, registry_person, at: str) -> Decided:
    """A `fund.payment-decisions` record: its result, and the account when it was applied."""
    outcome, new = apply_decision(state, decision, registry_person)
    if outcome is None:
        return Decided(state, Emission(), repeat=True)
    out = Emission()
    end = new.current.end if new.current is not None else None
    out.add(records.DECISION_RESULTS, decision.iin, records.decision_result(decision, outcome, at, end))
    if outcome.status == "applied":
        new.has_record = True
        out.add(records.ACCOUNTS, records.account_key(new), records.account(new, at))
    return Decided(new, out, outcome)


def decide_transfer(state: RecipientState, transfer, registry_person, at: str, hold: bool = False) -> Decided:
    """A `fund.payment-transfers` record: posted, with its overpaid or unmatched part. With `hold`,
    a payment failing only on a decision-lag reason is held instead (call again at each decision
    of its (IIN, payment_type), and with hold=False at the cut-off)."""
    if transfer.transfer_id in state.transfers_seen:
        return Decided(state, Emission(), repeat=True)
    if transfer.kind == "payment":
        split = classify_payment(state, transfer)
        if hold and held(split):
            return Decided(state, Emission(), split, held=True)
    else:
        split = classify_return(state, transfer)
    new = state.copy()
    new.transfers_seen.add(transfer.transfer_id)
    new.has_record = True
    if registry_person is not None:
        fallback = local_date(transfer.received_at).isoformat()
        observe(new.person, REGISTRY, person_view(registry_person), registry_changed_on(registry_person, fallback))
    out = Emission()
    if isinstance(split, PaymentSplit):
        new.paid_gross += parse_amount(transfer.gross_amount)
        new.paid_withheld += parse_amount(transfer.pension_contribution_withheld)
        new.paid_net += parse_amount(transfer.net_amount)
        if split.covered:
            new.covered[transfer.period] = new.covered.get(transfer.period, 0) + split.covered
        if split.overpaid:
            new.overpayments.append([transfer.transfer_id, transfer.period, split.overpaid])
        out.add(records.POSTED, transfer.iin, records.posted_entry(transfer, new, split, None, at))
        if split.overpaid:
            out.add(records.OVERPAYMENTS, transfer.iin, records.overpayment(
                transfer, "overpaid", split.reason, split.overpaid, new.outstanding, at))
    else:
        new.returned += split.applied + split.unmatched
        new.overpayments = apply_to_overpayments(new.overpayments, split.applied)
        out.add(records.POSTED, transfer.iin, records.posted_entry(transfer, new, None, split, at))
        if split.unmatched:
            out.add(records.OVERPAYMENTS, transfer.iin, records.overpayment(
                transfer, "unmatched_return", split.reason, split.unmatched, new.outstanding, at))
    out.add(records.ACCOUNTS, records.account_key(new), records.account(new, at))
    return Decided(new, out, split)


def decide_registry_change(state: RecipientState, registry_person, at: str) -> Decided:
    """A change of the person in `registry.persons` (None: deleted, which keeps the record as it
    is): the account again when its personal data changed and it was emitted before."""
    if registry_person is None:
        return Decided(state, Emission())
    new = state.copy()
    fallback = state.decided_on or at[:10]  # only for a record without updated_at
    if not observe(new.person, REGISTRY, person_view(registry_person), registry_changed_on(registry_person, fallback)):
        # Nothing the record shows changed; the source's last word is still worth keeping.
        return Decided(new, Emission())
    out = Emission()
    if new.has_record:
        out.add(records.ACCOUNTS, records.account_key(new), records.account(new, at))
    return Decided(new, out)


def risk_months(states: Iterable[RecipientState]) -> set[tuple[int, int]]:
    """(year, month) of `risk_occurred_on` of every applied assignment of an IIN (all its payment
    types): what PERIOD_USED_FOR_PAYMENT of a refund decision is judged against."""
    out = set()
    for state in states:
        for a in state.assignments:
            for day in a.risk_dates:
                if day is not None:
                    out.add((int(day[:4]), int(day[5:7])))
    return out


def period_used_for_payment(period: tuple[int, int], risks: Iterable[tuple[int, int]]) -> bool:
    """Social Code art. 247: the period lies within the 24 months up to and including a month of
    risk."""
    index = period[0] * 12 + period[1] - 1
    return any(0 <= (y * 12 + m - 1) - index < 24 for y, m in risks)


__all__ = ["Decided", "Emission", "decide_decision", "decide_transfer", "decide_registry_change", "risk_months",
           "period_used_for_payment"]
