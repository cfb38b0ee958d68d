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
outputs again from the record. An order that a step fails on (it cannot be read, decided, encoded
or written) becomes a dead letter, once per worker run, and is left alone; the others go on."""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime

from models.notifications import CreditNotification
from rules import entries
from rules.errors import unprocessable
from rules.holds import due_for_recheck, pending_view
from rules.posting import iins_to_look_up, recheck_held, summarize, with_amounts
from tables.decisions import DecisionStore
from tables.registry import RegistryStore

from .observe import BatchSummary, Decided, Observer
from .records import InputRecord, OutputRecord, Sink, dead_letter
from .sending import Outcome, record_decisions, render_outputs, send_dead_letters, send_isolated
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
        # Orders a step failed on: dead-lettered once, then left out of the re-checks of this run.
        self.poisoned: set[str] = set()

    async def recheck_locked(self, changed_iins: set[str], owned: Collection[int], restoring: bool = False) -> int:
        """Re-check the held orders of the `owned` partitions; returns the number of orders updated."""
        now = self.clock()
        dead: list[OutputRecord] = []
        due = self.due(changed_iins, owned, now, restoring)                           # 1
        updated = self.redecide(due, now, dead) if due else []                        # 2
        updated = await self.record(updated, now, dead)                               # 3
        updated = await self.send(updated, now, dead)                                 # 4
        await self.settle(updated, now, dead)                                         # 5
        await send_dead_letters(self.sink, dead, self.retry_backoff_s)
        if not updated:
            return 0
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
        return sorted(due_for_recheck(open_orders, owned, touched, now.timestamp(), restoring) - self.poisoned)

    def redecide(self, due: Sequence[str], now: datetime, dead: list[OutputRecord]) -> list[Outcome]:
        """2. Held lines decided again against the registry; outputs of what changed (all of an
        order's outputs again when a crash kept them from being acknowledged)."""
        records = self.decisions.get_many(list(due))
        orders = {}
        for nid, record in records.items():
            try:
                orders[nid] = CreditNotification.model_validate_json(record.order_raw)
            except Exception as exc:  # noqa: BLE001 - a copy this version cannot read costs only its order
                dead.append(self._unprocessable(self._source(record), "reading the held order", exc, now))
        persons = self.registry.get_many(sorted({iin for o in orders.values() for iin in iins_to_look_up(o)}))
        stamp = entries.stamp(self.clock())
        updated: list[Outcome] = []
        for nid, order in orders.items():
            record = records[nid]
            try:
                outcome = self._redecide_one(order, record, persons, now, stamp)
            except Exception as exc:  # noqa: BLE001 - one order's failure must not stop the others
                dead.append(self._unprocessable(self._source(record), "re-checking held lines", exc, now))
                continue
            if outcome is not None:
                updated.append(outcome)
        return updated

    def _redecide_one(self, order, record, persons, now: datetime, stamp: str) -> Outcome | None:
        source = self._source(record)
        before = with_amounts(order, record.decision)
        decision = recheck_held(order, before, persons, final=now.timestamp() >= record.cutoff)
        newly = {d.line_no for d, old in zip(decision.lines, before.lines) if d.outcome != old.outcome}
        summary = summarize(decision)
        if newly:
            changed = replace(record, decision=decision, emit_pending=True)
            outputs = render_outputs(order, decision, summary, stamp, self.topics, lines=newly)
            return Outcome(source, changed, changed.encode(), outputs, Decided(order, decision, summary, newly))
        if record.emit_pending:  # a crash came between the decision and its outputs
            return Outcome(source, record, None, render_outputs(order, decision, summary, stamp, self.topics), None)
        return None

    async def record(self, updated: list[Outcome], now: datetime, dead: list[OutputRecord]) -> list[Outcome]:
        """3. Changed records, still marked as having outputs pending, written and acknowledged."""
        changed = [o for o in updated if o.encoded is not None]
        refused = await record_decisions(self.sink, self.decisions, self.topics.decisions, changed,
                                         self.retry_backoff_s)
        lost = {changed[i].record.notification_id for i in refused}
        for i, exc in refused.items():
            dead.append(self._unprocessable(changed[i].source, "recording its re-checked decision", exc, now))
        return [o for o in updated if o.record.notification_id not in lost]

    async def send(self, updated: list[Outcome], now: datetime, dead: list[OutputRecord]) -> list[Outcome]:
        """4. The outputs of each order, acknowledged; an order whose outputs are refused for good
        is a dead letter and keeps its mark (it is not re-checked again in this run)."""
        _, refused = await send_isolated(self.sink, [o.outputs for o in updated], "outputs", self.retry_backoff_s)
        for i, exc in refused.items():
            dead.append(self._unprocessable(updated[i].source, "sending its re-checked outputs", exc, now))
        return [o for i, o in enumerate(updated) if i not in refused]

    async def settle(self, updated: Sequence[Outcome], now: datetime, dead: list[OutputRecord]) -> None:
        """5. Outputs acknowledged: the records need no re-emission; a finished order drops its copy."""
        settled = []
        for o in updated:
            record = replace(o.record, emit_pending=False, order_raw=o.record.order_raw if o.record.open else None)
            settled.append(Outcome(o.source, record, record.encode(), [], None))
        refused = await record_decisions(self.sink, self.decisions, self.topics.decisions, settled,
                                         self.retry_backoff_s)
        for i, exc in refused.items():
            dead.append(self._unprocessable(settled[i].source, "settling its re-checked decision", exc, now))

    def _source(self, record) -> InputRecord:
        """The held order's input record, as its decision record keeps it."""
        return InputRecord(self.topics.credit_notifications, record.partition, record.offset,
                           record.notification_id.encode(), record.order_raw)

    def _unprocessable(self, source: InputRecord, step: str, exc: Exception, now: datetime) -> OutputRecord:
        log.error("%s for the held order at %s[%d]@%d failed (%s): dead-lettered as unprocessable", step,
                  source.topic, source.partition, source.offset, type(exc).__name__)
        self.poisoned.add(source.key.decode())
        kind, message = unprocessable(step, exc)
        self.observe.dead_letter("credit-notifications", kind)
        return dead_letter(source, kind, message, now, self.topics.dead_letters)
