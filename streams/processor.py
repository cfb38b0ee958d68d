"""The posting path for a batch of credit notifications, step by step. Faust-free so that the agent,
the tests and the benchmarks drive the same code; the rules it applies live in `rules/`.

    1. parse        every record becomes an order, a dead letter or a re-keyed copy
    2. restore      the decision records of the batch's partitions are local
    3. triage       each order is new, a redelivery or a repeat (rules/triage.py)
    4. decide       new orders are decided (rules/posting.py) and every output rendered
                    (rules/entries.py), redeliveries from their records
    5. record       the new decision records are written to their changelog and acknowledged
    6. send         every output is sent and acknowledged
    7. acknowledge  only now are the input offsets acknowledged

A crash anywhere before 7 redelivers the batch: orders decided in 4-5 are then redeliveries and
are emitted again from their records, identical. Each step checks what it promises and stops the
batch with `InvariantBroken` when it does not hold."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import ValidationError

from models.notifications import CreditNotification
from monitoring import metrics
from rules import entries
from rules.errors import classify, unprocessable
from rules.holds import HoldPolicy
from rules.posting import decide_order, iins_to_look_up, summarize, with_amounts
from rules.triage import NEW, REDELIVERED, triage
from tables.changelog import ChangelogReader
from tables.decisions import DecisionRecord, DecisionStore
from tables.registry import RegistryStore

from .holding import HoldRechecker
from .observe import BatchSummary, Decided, Observer
from .records import InputRecord, OutputRecord, Sink, dead_letter
from .sending import Outcome, record_decisions, render_outputs, send_dead_letters, send_isolated
from .settings import Topics

if TYPE_CHECKING:
    from rules.calendar import BusinessCalendar

log = logging.getLogger("esep.posting")

Clock = Callable[[], datetime]
Acknowledge = Callable[[Sequence[InputRecord]], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class InvariantBroken(RuntimeError):
    """A step of the posting path found what it promises broken: a bug. The batch is not
    acknowledged, and the worker stops rather than post on from a wrong state."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A notification that parsed, with the record it came in."""

    source: InputRecord
    order: CreditNotification


@dataclass(slots=True)
class Parsed:
    orders: list[Arrival]
    dead_letters: list[OutputRecord]
    rerouted: list[tuple[InputRecord, OutputRecord]]  # (as received, the copy keyed by its id)


@dataclass(slots=True)
class Triaged:
    new: list[Arrival]
    redelivered: list[tuple[Arrival, DecisionRecord]]
    repeats: int


class PostingProcessor:
    def __init__(
        self,
        topics: Topics,
        registry: RegistryStore,
        decisions: DecisionStore,
        changelog: ChangelogReader,
        sink: Sink,
        calendar: BusinessCalendar,
        hold: HoldPolicy,
        clock: Clock = utc_now,
        retry_backoff_s: float = 0.5,
        owned_partitions: Callable[[], Iterable[int]] = tuple,
        observer: Observer | None = None,
    ):
        self.topics = topics
        self.registry = registry
        self.decisions = decisions
        self.changelog = changelog
        self.sink = sink
        self.calendar = calendar
        self.hold = hold
        self.clock = clock
        self.retry_backoff_s = retry_backoff_s
        self.owned_partitions = owned_partitions
        self.observe = observer or Observer(calendar)
        self.restored: set[int] = set()
        # Revocations per partition: a restore that a revocation overtook must not mark it restored
        # (another worker may write its decisions before this one gets it back).
        self.revocations: dict[int, int] = {}
        # Batches and hold re-checks both change decision records: one at a time.
        self.lock = asyncio.Lock()
        # Next input offset per partition once a batch is through: consumer lag is measured from it.
        self.next_offsets: dict[int, int] = {}
        self.holds = HoldRechecker(topics, registry, decisions, sink, clock, retry_backoff_s, self.observe)

    # ---- one batch ---------------------------------------------------------------------------------

    async def process(self, batch: list[InputRecord], acknowledge: Acknowledge | None = None) -> BatchSummary:
        async with self.lock:
            summary = BatchSummary(notifications=len(batch))
            now = self.clock()
            parsed = self.parse(batch, now)                                            # 1
            await self.restore_for(parsed.orders)                                      # 2
            triaged = self.triage(parsed.orders)                                       # 3
            stamp = entries.stamp(now)
            fresh = self.decide(triaged.new, now, stamp, parsed.dead_letters)          # 4
            again = self.re_emit(triaged.redelivered, stamp, parsed.dead_letters)
            fresh = await self.record(fresh, now, parsed.dead_letters)                 # 5
            sent = await self.send(fresh + again, parsed, now)                         # 6
            summary.new = sum(1 for o in sent if o.encoded is not None)
            summary.redelivered = len(sent) - summary.new
            summary.repeats, summary.rerouted = triaged.repeats, len(parsed.rerouted)
            summary.dead_letters = len(parsed.dead_letters)
            await self.acknowledge(batch, summary, acknowledge)                        # 7
            self.observe.decided([o.decided for o in sent if o.decided is not None], summary, self.clock())
            self.observe.batch(batch, summary)
            return summary

    def parse(self, batch: Sequence[InputRecord], now: datetime) -> Parsed:
        """1. Every record is a notification keyed by its id, a dead letter, or a record keyed by
        something else, which is moved (unchanged) to the partition its id owns."""
        parsed = Parsed([], [], [])
        for rec in batch:
            try:
                order, moved = self._read(rec)
            except ValidationError as exc:
                kind, message = classify(rec.value, exc.errors(include_url=False, include_input=False))
            except Exception as exc:  # noqa: BLE001 - a record the parser chokes on costs only itself
                kind, message = unprocessable("reading", exc)
            else:
                if moved is not None:
                    parsed.rerouted.append((rec, moved))
                else:
                    parsed.orders.append(Arrival(rec, order))
                continue
            parsed.dead_letters.append(dead_letter(rec, kind, message, now, self.topics.dead_letters))
            self.observe.dead_letter("credit-notifications", kind)
        accounted = len(parsed.orders) + len(parsed.dead_letters) + len(parsed.rerouted)
        if accounted != len(batch):
            raise InvariantBroken(f"parse: {accounted} outcomes for {len(batch)} records")
        return parsed

    @staticmethod
    def _read(rec: InputRecord) -> tuple[CreditNotification, OutputRecord | None]:
        """The notification, and its copy keyed by its id when the record was keyed otherwise: the
        id owns a partition (and so its decisions), so the record moves there, unchanged."""
        if rec.value is None:
            raise ValidationError.from_exception_data("CreditNotification", [])
        order = CreditNotification.model_validate_json(rec.value)
        key = order.notification_id.encode()
        return order, (OutputRecord(rec.topic, key, rec.value) if rec.key != key else None)

    async def restore_for(self, orders: Sequence[Arrival]) -> None:
        """2. The decision records of every partition in the batch are in the local store."""
        needed = {a.source.partition for a in orders}
        for _ in range(3):  # a revocation that overtakes a restore makes it read the changelog again
            if not needed - self.restored:
                break
            await self._restore(needed - self.restored)
        if not needed <= self.restored:
            raise InvariantBroken(f"restore: partitions {sorted(needed - self.restored)} not restored")

    def triage(self, orders: Sequence[Arrival]) -> Triaged:
        """3. New, redelivered (same input position as the record: emit again) or repeat (nothing)."""
        known = self.decisions.get_many([a.order.notification_id for a in orders])
        first_seen = {nid: (r.partition, r.offset) for nid, r in known.items()}
        kinds = triage([(a.order.notification_id, (a.source.partition, a.source.offset)) for a in orders],
                       first_seen)
        out = Triaged([], [], 0)
        for arrival, kind in zip(orders, kinds, strict=True):
            if kind == NEW:
                out.new.append(arrival)
            elif kind == REDELIVERED:
                out.redelivered.append((arrival, known[arrival.order.notification_id]))
            else:
                out.repeats += 1
        return out

    def decide(self, new: Sequence[Arrival], now: datetime, stamp: str,
               dead_letters: list[OutputRecord]) -> list[Outcome]:
        """4. Decide each new order against one batched registry read, and render its outputs and
        its decision record. An order this fails on is a dead letter (`unprocessable`), alone."""
        if not new:
            return []
        iins = sorted({iin for a in new for iin in iins_to_look_up(a.order)})
        persons = self.registry.get_many(iins)
        fresh = []
        for arrival in new:
            order, source = arrival.order, arrival.source
            try:
                cutoff = self.hold.cutoff(order.received_at, self.calendar)
                decision = decide_order(order, persons, self.calendar, hold=cutoff is not None and now < cutoff)
                record = DecisionRecord(order.notification_id, source.partition, source.offset, decision)
                if record.open:
                    record = replace(record, order_raw=source.value, cutoff=cutoff.timestamp(),
                                     received=order.received_at.timestamp())
                summary = summarize(decision)
                outputs = render_outputs(order, decision, summary, stamp, self.topics)
                fresh.append(Outcome(source, record, record.encode(), outputs, Decided(order, decision, summary)))
            except Exception as exc:  # noqa: BLE001 - one order's failure must not stop the others
                dead_letters.append(self._unprocessable(source, "deciding", exc, now))
        return fresh

    def re_emit(self, redelivered: Sequence[tuple[Arrival, DecisionRecord]], stamp: str,
                dead_letters: list[OutputRecord]) -> list[Outcome]:
        """4'. A redelivery's outputs again, from its record: whatever the registry says by now."""
        out = []
        for arrival, record in redelivered:
            try:
                decision = with_amounts(arrival.order, record.decision)
                outputs = render_outputs(arrival.order, decision, summarize(decision), stamp, self.topics)
            except Exception as exc:  # noqa: BLE001
                dead_letters.append(self._unprocessable(arrival.source, "re-emitting", exc, self.clock()))
                continue
            out.append(Outcome(arrival.source, record, None, outputs, None))
        return out

    async def record(self, fresh: list[Outcome], now: datetime, dead_letters: list[OutputRecord]) -> list[Outcome]:
        """5. New decision records written to their changelog, acknowledged, and stored locally:
        from here on the orders are decided, whatever happens to their outputs. An order whose
        record the broker refuses for good stays undecided: a dead letter, and nothing else."""
        refused = await record_decisions(self.sink, self.decisions, self.topics.decisions, fresh,
                                         self.retry_backoff_s)
        for i, exc in refused.items():
            dead_letters.append(self._unprocessable(fresh[i].source, "recording its decision", exc, now))
        return [o for i, o in enumerate(fresh) if i not in refused]

    async def send(self, outcomes: list[Outcome], parsed: Parsed, now: datetime) -> list[Outcome]:
        """6. Every output of the batch sent and acknowledged by the broker, one group per input
        record, then the dead letters. A group the broker refuses for good makes its input a dead
        letter. Returns the orders whose outputs went out."""
        n_orders = len(outcomes)
        groups = [o.outputs for o in outcomes] + [[copy] for _, copy in parsed.rerouted]
        _, refused = await send_isolated(self.sink, groups, "outputs", self.retry_backoff_s)
        for i, exc in sorted(refused.items()):
            if i < n_orders:
                parsed.dead_letters.append(self._unprocessable(outcomes[i].source, "sending its outputs", exc, now))
            else:
                source = parsed.rerouted[i - n_orders][0]
                parsed.dead_letters.append(self._unprocessable(source, "moving it to its id's partition", exc, now))
        await send_dead_letters(self.sink, parsed.dead_letters, self.retry_backoff_s)
        parsed.rerouted = [r for j, r in enumerate(parsed.rerouted) if n_orders + j not in refused]
        return [o for i, o in enumerate(outcomes) if i not in refused]

    async def acknowledge(self, batch: Sequence[InputRecord], summary: BatchSummary,
                          acknowledge: Acknowledge | None) -> None:
        """7. Every record is accounted for exactly once, and within the batch each partition's
        offsets increase; then the input offsets are acknowledged."""
        accounted = summary.new + summary.redelivered + summary.repeats + summary.dead_letters + summary.rerouted
        if accounted != len(batch):
            raise InvariantBroken(f"acknowledge: {accounted} outcomes for {len(batch)} records")
        last: dict[int, int] = {}
        for rec in batch:
            if rec.offset <= last.get(rec.partition, -1):
                raise InvariantBroken(f"acknowledge: offset {rec.offset} of partition {rec.partition} "
                                      f"comes after offset {last[rec.partition]} in one batch")
            last[rec.partition] = rec.offset
        for partition, offset in last.items():
            self.next_offsets[partition] = max(self.next_offsets.get(partition, 0), offset + 1)
        if acknowledge is not None:
            await acknowledge(batch)

    def _unprocessable(self, source: InputRecord, step: str, exc: Exception, now: datetime) -> OutputRecord:
        """The dead letter of a valid notification a step failed on: only this record is lost to the
        stream. The cause goes to the dead letter; the log names only the position (no personal data)."""
        log.error("%s for the notification at %s[%d]@%d failed (%s): dead-lettered as unprocessable", step,
                  source.topic, source.partition, source.offset, type(exc).__name__)
        kind, message = unprocessable(step, exc)
        self.observe.dead_letter("credit-notifications", kind)
        return dead_letter(source, kind, message, now, self.topics.dead_letters)

    # ---- partitions --------------------------------------------------------------------------------

    async def restore(self, partitions: set[int]) -> None:
        async with self.lock:
            needed = partitions - self.restored
            if needed:
                await self._restore(needed)

    async def _restore(self, needed: set[int]) -> None:
        # Restore every partition we own now, not only this batch's: each restore round is costly.
        partitions = sorted(needed | (set(self.owned_partitions()) - self.restored))
        started = time.monotonic()
        before = {p: self.revocations.get(p, 0) for p in partitions}
        await self.changelog.catch_up(partitions)
        metrics.recovery_seconds.labels("decisions").observe(time.monotonic() - started)
        partitions = [p for p in partitions if self.revocations.get(p, 0) == before[p]]
        self.restored.update(partitions)
        # Held lines are re-checked on restore: a registry change whose re-check a crash lost
        # must still post its line, and outputs a crash kept from being sent are sent now.
        await self.holds.recheck_locked(set(), set(partitions), restoring=True)

    def forget_partitions(self, partitions) -> None:
        """Revoked partitions: another worker may write their decisions before we get them back."""
        partitions = list(partitions)
        for p in partitions:
            self.revocations[p] = self.revocations.get(p, 0) + 1
        self.restored.difference_update(partitions)

    async def recheck(self, changed_iins: set[str]) -> int:
        """Re-check held lines of the orders this worker owns (see streams/holding.py)."""
        async with self.lock:
            owned = self.restored & set(self.owned_partitions())
            return await self.holds.recheck_locked(changed_iins, owned)


__all__ = ["PostingProcessor", "BatchSummary", "InvariantBroken", "utc_now"]
