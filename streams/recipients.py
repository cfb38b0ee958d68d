"""The recipients ledger (contract, Part 2): the Fund's decisions and transfers, decided by the pure
rules of `rules/recipients` over one state per (IIN, payment_type), driven by the keyed-ledger
processor (streams/keyed_ledger.py: parse, reroute, restore, idempotency by `decision_id` and
`transfer_id`, changelog before outputs).

What this module adds to the rules:
- the registry: the replica's full record of the IIN (RECIPIENT_MISMATCH, the clause 12 record);
- the lag hold: a payment failing only on NO_ASSIGNMENT, OUTSIDE_TERM or EXCEEDS_ASSIGNED waits in
  its state (raw bytes, cut-off) while the cut-off is ahead (part 1's `ESEP_PENDING` and
  `ESEP_HOLD_CUTOFF_MIN`); it is re-checked after every applied decision of its (IIN, type) and
  decided with what exists at the cut-off (the processor's timer). Decided after its business
  deadline counts in part 1's breach metric;
- metrics with bounded labels (payment type, decision, status, reason, kind, outcome)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from models.fund import PaymentDecision, PaymentTransfer
from monitoring import metrics
from rules import codes
from rules import recipients as rr
from rules.calendar import BusinessCalendar, default_calendar
from rules.holds import HoldPolicy
from rules.recipients import records as rec_records

from .keyed_ledger import Context, Entry, InputKind, Item, LedgerSummary, Output, Verdict
from .settings import Topics

log = logging.getLogger("esep.recipients")

PersonViews = Callable[[list[str]], dict[str, dict | None]]


@dataclass(slots=True)
class Held:
    rid: str  # the processor's id of the input ("t:<transfer_id>"), its outbox entry once decided
    raw: str  # the transfer as received
    cutoff: float  # epoch seconds: decided with what exists from then on
    deadline: float  # epoch seconds: the business deadline (a breach when decided after it)

    def to_json(self) -> list:
        return [self.rid, self.raw, self.cutoff, self.deadline]


@dataclass(slots=True)
class KeyState:
    """What is stored per `<iin>/<payment_type>`: the rules' state and the payments held for it."""

    state: rr.RecipientState
    held: list[Held] = field(default_factory=list)


def state_key(iin: str, payment_type: str) -> str:
    return f"{iin}/{payment_type}"


class RecipientsLedger:
    def __init__(self, topics: Topics, persons: PersonViews, hold: HoldPolicy,
                 calendar: BusinessCalendar | None = None):
        self.topics = topics
        self.persons = persons
        self.hold = hold
        self.calendar = calendar or default_calendar()
        self.changelog_topic = topics.recipients_state
        self.dead_letter_topic = topics.dead_letters
        self.decisions = InputKind(topics.payment_decisions, PaymentDecision, "payment-decisions", "d",
                                   lambda m: m.iin, lambda m: state_key(m.iin, m.payment_type),
                                   lambda m: m.decision_id)
        self.transfers = InputKind(topics.payment_transfers, PaymentTransfer, "payment-transfers", "t",
                                   lambda m: m.iin, lambda m: state_key(m.iin, m.payment_type),
                                   lambda m: m.transfer_id)
        self.kinds = [self.decisions, self.transfers]
        # The account is the recipient's latest state: a redelivery never re-sends an older one.
        self.snapshot_topics = frozenset({topics.recipient_accounts})
        # The rules name the contract's topics; the deployment may rename them.
        self.topic_of = {rec_records.DECISION_RESULTS: topics.decision_results,
                         rec_records.ACCOUNTS: topics.recipient_accounts,
                         rec_records.POSTED: topics.social_payments,
                         rec_records.OVERPAYMENTS: topics.overpayments}

    # ---- state --------------------------------------------------------------------------------------

    def load(self, key: str, body) -> KeyState:
        if body is None:
            iin, payment_type = key.split("/", 1)
            return KeyState(rr.new_state(iin, payment_type))
        return KeyState(rr.RecipientState.from_json(body["st"]), [Held(*h) for h in body["held"]])

    def dump(self, ks: KeyState) -> dict:
        return {"st": ks.state.to_json(), "held": [h.to_json() for h in ks.held]}

    def due(self, ks: KeyState) -> float | None:
        return min((h.cutoff for h in ks.held), default=None)

    def facts(self, ks: KeyState) -> dict[str, int]:
        out = {}
        if ks.state.overpayments:
            out[f"outstanding:{ks.state.payment_type}"] = ks.state.outstanding
        if ks.held:
            out["held"] = len(ks.held)
        return out

    # ---- deciding -----------------------------------------------------------------------------------

    def prepare(self, items: list[Item], ctx: Context) -> None:
        ctx.scratch["persons"] = self.persons(sorted({it.value.iin for it in items}))

    def decide(self, entry: Entry, item: Item, ctx: Context) -> Verdict:
        ks: KeyState = entry.state
        person = ctx.scratch["persons"].get(item.value.iin)
        if item.kind is self.decisions:
            decision: PaymentDecision = item.value
            decided = rr.decide_decision(ks.state, decision, person, ctx.stamp)
            if decided.repeat:
                return Verdict(outcome="duplicate")
            ks.state = decided.state
            outcome = decided.outcome
            metrics.fund_decisions.labels(decision.payment_type, decision.decision, outcome.status,
                                          outcome.reason or "").inc()
            released = self._recheck(ks, person, ctx, due_only=False) if outcome.status == "applied" else {}
            return Verdict(self._outputs(decided.emission), released, outcome=outcome.status)
        transfer: PaymentTransfer = item.value
        cutoff = self.hold.cutoff(transfer.received_at, self.calendar) if transfer.kind == "payment" else None
        may_wait = cutoff is not None and ctx.now < cutoff
        decided = rr.decide_transfer(ks.state, transfer, person, ctx.stamp, hold=may_wait)
        if decided.repeat:
            return Verdict(outcome="duplicate")
        if decided.held:
            deadline = self.calendar.receipt_deadline(transfer.received_at)
            ks.held.append(Held(item.rid, item.record.value.decode("utf-8"), cutoff.timestamp(), deadline.timestamp()))
            metrics.fund_transfers.labels(transfer.payment_type, transfer.kind, "held", decided.outcome.reason).inc()
            return Verdict(outcome="held")
        ks.state = decided.state
        self._observe_transfer(transfer, decided, ctx)
        return Verdict(self._outputs(decided.emission), outcome="posted")

    def on_due(self, entry: Entry, ctx: Context) -> dict[str, list[Output]]:
        """The timer: held payments whose cut-off passed are decided with what exists."""
        ks: KeyState = entry.state
        person = self.persons([ks.state.iin]).get(ks.state.iin)
        released = self._recheck(ks, person, ctx, due_only=True)
        entry.changed = entry.changed or bool(released)
        return released

    def _recheck(self, ks: KeyState, person, ctx: Context, due_only: bool) -> dict[str, list[Output]]:
        """Held payments of this (IIN, type), in arrival order: decided when the state now covers
        them, or when their cut-off passed; the others keep waiting."""
        released: dict[str, list[Output]] = {}
        keep: list[Held] = []
        now = ctx.now.timestamp()
        for h in ks.held:
            # With the hold switched off since they were held, nothing waits any longer.
            final = now >= h.cutoff or not self.hold.enabled
            if due_only and not final:
                keep.append(h)
                continue
            transfer = PaymentTransfer.model_validate_json(h.raw)
            decided = rr.decide_transfer(ks.state, transfer, person, ctx.stamp, hold=not final)
            if decided.held:
                keep.append(h)
                continue
            if not decided.repeat:
                ks.state = decided.state
                self._observe_transfer(transfer, decided, ctx)
                released[h.rid] = self._outputs(decided.emission)
        ks.held = keep
        return released

    def registry_change(self, entry: Entry, ctx: Context) -> dict[str, list[Output]]:
        """A change of the person in `registry.persons`: the account again, when the record shows it."""
        ks: KeyState = entry.state
        person = self.persons([ks.state.iin]).get(ks.state.iin)
        before = ks.state.person.to_json()
        decided = rr.decide_registry_change(ks.state, person, ctx.stamp)
        ks.state = decided.state
        if decided.emission or ks.state.person.to_json() != before:
            entry.changed = True
        if not decided.emission:
            return {}
        return {f"r:{ctx.stamp}": self._outputs(decided.emission)}

    def _outputs(self, emission: rr.Emission) -> list[Output]:
        out = []
        for topic, items in emission.records.items():
            stamp = rec_records.STAMP_FIELDS[topic]
            for i in items:
                out.append(Output(self.topic_of[topic], i["key"], i["value"], stamp))
        return out

    # ---- observation --------------------------------------------------------------------------------

    def _observe_transfer(self, transfer: PaymentTransfer, decided: rr.Decided, ctx: Context) -> None:
        split = decided.outcome
        ptype = transfer.payment_type
        if isinstance(split, rr.PaymentSplit):
            outcome = "covered" if not split.overpaid else ("overpaid" if not split.covered else "partly_overpaid")
            metrics.social_paid.labels(ptype).inc(_tenge(split.covered + split.overpaid))
            if split.overpaid:
                metrics.social_overpaid.labels(ptype).inc(_tenge(split.overpaid))
        else:
            outcome = "applied" if not split.unmatched else ("unmatched" if not split.applied else "partly_unmatched")
            metrics.social_returned.labels(ptype).inc(_tenge(split.applied + split.unmatched))
        metrics.fund_transfers.labels(ptype, transfer.kind, outcome, split.reason or "").inc()
        if ctx.now > self.calendar.receipt_deadline(transfer.received_at):
            metrics.deadline_breaches.inc()

    def observe(self, summary: LedgerSummary) -> None:
        pass


def _tenge(tiyn: int) -> float:
    return tiyn / 100


def state_keys_of(iins) -> list[str]:
    """Every state key an IIN can have (one per payment type)."""
    return [state_key(iin, t) for iin in iins for t in codes.PAYMENT_TYPES]


__all__ = ["Held", "KeyState", "RecipientsLedger", "state_key", "state_keys_of"]
