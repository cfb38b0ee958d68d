"""The registry-lag hold's re-checks, step by step: orders with held lines are finished without
their input record, from the copy their decision record keeps.

    1. due        the held orders to look at now (rules/holds.py: a person changed, a cut-off
                  passed, outputs not yet acknowledged, or a restore)
    2. re-decide  their held lines against the registry as it is now (rules/posting.recheck_held),
                  and the outputs of the lines decided now
    3. record     the changed decision records, marked "outputs pending", acknowledged
    4. send       the outputs, acknowledged
    5. settle     the records unmarked; a finished order drops its copy of the order

A crash between 3 and 5 leaves the mark: the next re-check (at the latest on restore) sends the
outputs again from the record."""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime

from models.notifications import CreditNotification
from rules import entries
from rules.holds import due_for_recheck, pending_view
from rules.posting import iins_to_look_up, recheck_held, summarize, with_amounts
from tables.decisions import DecisionStore
from tables.registry import RegistryStore

from .observe import BatchSummary, Decided, Observer
from .records import InputRecord, Sink
from .sending import Outcome, record_decisions, render_outputs, send_all
from .settings import Topics

log = logging.getLogger("esep.hold")


class HoldRechecker:
    """Runs under the posting path's lock (its caller holds it): both change decision records."""

    def __init__(self, topics: Topics, registry: RegistryStore, decisions: DecisionStore, sink: Sink,
                 clock: Callable[[], datetime], retry_backoff_s: float, observer: Observer):
        self.topics = topics
        self.registry = registry
        self.decisions = decisions
        self.sink = sink
        self.clock = clock
        self.retry_backoff_s = retry_backoff_s
        self.observe = observer

    async def recheck_locked(self, changed_iins: set[str], owned: Collection[int], restoring: bool = False) -> int:
        """Re-check the held orders of the `owned` partitions; returns the number of orders updated."""
        now = self.clock()
        due = self.due(changed_iins, owned, now, restoring)                           # 1
        if not due:
            return 0
        updated = self.redecide(due, now)                                             # 2
        if not updated:
            return 0
        await self.record([o for o in updated if o.encoded is not None])              # 3
        await send_all(self.sink, [r for o in updated for r in o.outputs], "outputs", self.retry_backoff_s)  # 4
        await self.settle(updated)                                                    # 5
        summary = BatchSummary()
        self.observe.decided([o.decided for o in updated if o.decided is not None], summary, self.clock())
        self.observe.rechecked(summary)
        self.observe.pending(pending_view(self.decisions.open_orders(), owned, self.clock().timestamp()))
        log.info("registry-lag hold: %d orders updated (%d lines posted, %d refunded), %d changed persons",
                 len(updated), summary.lines_posted, summary.lines_refunded, len(changed_iins))
        return len(updated)

    def due(self, changed_iins: set[str], owned: Collection[int], now: datetime, restoring: bool) -> list[str]:
        """1. Which held orders to look at now."""
        open_orders = self.decisions.open_orders()
        touched = self.decisions.held_by_iin(changed_iins) if changed_iins else set()
        self.observe.pending(pending_view(open_orders, owned, now.timestamp()))
        return sorted(due_for_recheck(open_orders, owned, touched, now.timestamp(), restoring))

    def redecide(self, due: Sequence[str], now: datetime) -> list[Outcome]:
        """2. Held lines decided again against the registry; outputs of what changed (all of an
        order's outputs again when a crash kept them from being acknowledged)."""
        records = self.decisions.get_many(list(due))
        orders = {nid: CreditNotification.model_validate_json(r.order_raw) for nid, r in records.items()}
        persons = self.registry.get_many(sorted({iin for o in orders.values() for iin in iins_to_look_up(o)}))
        stamp = entries.stamp(self.clock())
        updated: list[Outcome] = []
        for nid, record in records.items():
            order = orders[nid]
            source = InputRecord(self.topics.credit_notifications, record.partition, record.offset, nid.encode(),
                                 record.order_raw)
            before = with_amounts(order, record.decision)
            decision = recheck_held(order, before, persons, final=now.timestamp() >= record.cutoff)
            newly = {d.line_no for d, old in zip(decision.lines, before.lines) if d.outcome != old.outcome}
            summary = summarize(decision)
            if newly:
                changed = replace(record, decision=decision, emit_pending=True)
                outputs = render_outputs(order, decision, summary, stamp, self.topics, lines=newly)
                updated.append(Outcome(source, changed, changed.encode(), outputs,
                                       Decided(order, decision, summary, newly)))
            elif record.emit_pending:  # a crash came between the decision and its outputs
                outputs = render_outputs(order, decision, summary, stamp, self.topics)
                updated.append(Outcome(source, record, None, outputs, None))
        return updated

    async def record(self, changed: Sequence[Outcome]) -> None:
        """3. Changed records, still marked as having outputs pending, written and acknowledged."""
        await record_decisions(self.sink, self.decisions, self.topics.decisions, changed, self.retry_backoff_s)

    async def settle(self, updated: Sequence[Outcome]) -> None:
        """5. Outputs acknowledged: the records need no re-emission; a finished order drops its copy."""
        settled = []
        for o in updated:
            record = replace(o.record, emit_pending=False, order_raw=o.record.order_raw if o.record.open else None)
            settled.append(Outcome(o.source, record, record.encode(), [], None))
        await record_decisions(self.sink, self.decisions, self.topics.decisions, settled, self.retry_backoff_s)
