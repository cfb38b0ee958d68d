"""Watching the posting path from beside it: metrics, the periodic summary and per-order debug lines.

The path hands over what it did (a batch's counts, the orders it decided with their summaries) and
goes on; nothing here decides anything, and nothing here is needed to post."""
from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from monitoring import metrics
from rules.holds import PendingView
from rules.iin import mask_iin
from rules.posting import POSTED, REFUNDED, OrderDecision, OrderSummary, paired_lines

if TYPE_CHECKING:
    from rules.calendar import BusinessCalendar

    from .records import InputRecord

log = logging.getLogger("esep.posting")

COUNTS = ("notifications", "new", "redelivered", "repeats", "rerouted", "dead_letters", "lines_posted",
          "lines_refunded", "lines_held")


@dataclass
class BatchSummary:
    """What one batch (or one hold re-check) did."""

    notifications: int = 0
    new: int = 0
    redelivered: int = 0
    repeats: int = 0
    rerouted: int = 0
    dead_letters: int = 0
    lines_posted: int = 0
    lines_refunded: int = 0
    lines_held: int = 0
    reasons: Tally = field(default_factory=Tally)

    def add(self, other: "BatchSummary") -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons.update(other.reasons)


@dataclass(frozen=True, slots=True)
class Decided:
    """An order decided now: all its lines (`newly` None), or only the lines in `newly` (a re-check)."""

    order: object
    decision: OrderDecision
    summary: OrderSummary
    newly: Collection[int] | None = None


class Observer:
    def __init__(self, calendar: BusinessCalendar):
        self.calendar = calendar
        self.totals = BatchSummary()  # since the last periodic summary

    def batch(self, batch: Sequence[InputRecord], summary: BatchSummary) -> None:
        """A batch of notifications went through: outcomes, batch size, latency from ingest."""
        metrics.batches.observe(len(batch))
        notif = metrics.notifications
        for outcome, n in (("decided", summary.new), ("redelivered", summary.redelivered),
                           ("duplicate", summary.repeats), ("rerouted", summary.rerouted),
                           ("dead_letter", summary.dead_letters)):
            if n:
                notif.labels(outcome).inc(n)
        end = time.time()
        for rec in batch:
            if rec.timestamp_ms:
                metrics.latency_ingest.observe(max(0.0, end - rec.timestamp_ms / 1000.0))
        self.totals.add(summary)

    def dead_letter(self, source: str, error_kind: str) -> None:
        metrics.dead_letters.labels(source, error_kind).inc()

    def decided(self, decided: Sequence[Decided], summary: BatchSummary, now: datetime) -> None:
        """Lines decided now: counts into `summary`, amounts per KNP, statuses, deadline breaches."""
        posted_tiyn: Tally = Tally()
        refunded_tiyn: Tally = Tally()
        statuses: Tally = Tally()
        for d in decided:
            knp = d.order.knp
            decided_now = 0
            for line in d.decision.lines:
                if d.newly is not None and line.line_no not in d.newly:
                    continue
                if line.outcome == POSTED:
                    summary.lines_posted += 1
                    posted_tiyn[knp] += line.tiyn
                elif line.outcome == REFUNDED:
                    summary.lines_refunded += 1
                    summary.reasons[line.reason] += 1
                else:
                    summary.lines_held += 1
                    continue
                decided_now += 1
            if d.summary.status is not None:
                refunded_tiyn[knp] += d.summary.refunded_tiyn
                statuses[d.summary.status] += 1
                metrics.latency_received.observe(max(0.0, now.timestamp() - d.order.received_at.timestamp()))
            if decided_now and now > self.calendar.receipt_deadline(d.order.received_at):
                metrics.deadline_breaches.inc(decided_now)
        if summary.lines_posted:
            metrics.lines.labels("posted", "").inc(summary.lines_posted)
        for reason, n in summary.reasons.items():
            metrics.lines.labels("refunded", reason).inc(n)
        if summary.lines_held:
            metrics.lines.labels("held", "").inc(summary.lines_held)
        # Tenge as floats: a metric is an observation, never money the engine computes with.
        for knp, tiyn in posted_tiyn.items():
            metrics.amount_posted.labels(knp_label(knp)).inc(tiyn / 100)
        for knp, tiyn in refunded_tiyn.items():
            if tiyn:
                metrics.amount_refunded.labels(knp_label(knp)).inc(tiyn / 100)
        for status, n in statuses.items():
            metrics.orders.labels(status).inc(n)
        if decided and log.isEnabledFor(logging.DEBUG):
            for d in decided:
                log.debug("decided %s", describe_decision(d.order, d.decision, d.summary))

    def rechecked(self, summary: BatchSummary) -> None:
        self.totals.add(summary)

    def pending(self, view: PendingView) -> None:
        metrics.pending_lines.set(view.lines)
        metrics.pending_oldest_age.set(view.oldest_age_s)
        metrics.pending_next_cutoff.set(view.next_cutoff_s)

    def take_totals(self) -> BatchSummary:
        """Totals since the previous call, for the periodic summary log line."""
        totals, self.totals = self.totals, BatchSummary()
        return totals


def describe_decision(order, decision: OrderDecision, summary: OrderSummary) -> str:
    """One line per order for debug logs: counts and reasons, refunded IINs masked."""
    refunded = [f"{d.line_no}:{d.reason}:{mask_iin(line.iin)}"
                for line, d in paired_lines(order, decision) if d.outcome == REFUNDED]
    head = (f"{order.notification_id} {summary.status or 'open'}: {summary.lines_posted} posted, "
            f"{summary.lines_refunded} refunded, {summary.lines_held} held")
    if decision.order_reason:
        return f"{head} ({decision.order_reason})"
    return head + (f" [{', '.join(refunded)}]" if refunded else "")


def knp_label(knp: str) -> str:
    """KNP as a metric label: only the accepted codes, anything else folded (bounded cardinality)."""
    return knp if knp in ("012", "017") else "other"


__all__ = ["BatchSummary", "Decided", "Observer", "describe_decision", "knp_label"]
