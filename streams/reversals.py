"""The reversals ledger (contract Part 2, "Refunds of posted contributions") on the keyed-ledger
processor: one state per (IIN, notification), a `PostedIndex` (that person's posted entries of that
notification, which are reversed and by whom, and the record of every refund decision naming it),
in a `KeyedStore` backed by the compacted changelog `esep.reversals-state` (key
`<iin>/<notification_id>`), written with the input's partition.

Inputs: `posted.contributions` and `fund.refund-decisions`, both keyed by IIN with one partition
count, consumed by one agent, so a person's entries and refund decisions meet in one partition and
one coroutine, in arrival order. `streams.keyed_ledger` gives the rest of the decision-record
pattern: the index is written and acknowledged before any output is sent, a redelivered decision
re-emits its recorded outputs, a repeat (another offset) emits nothing, a crash between a release
and its outputs re-sends them at restore.

Faust-free: `streams.reversals_agent` wires it into the app; tests drive it directly."""
from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from models.reversals import PostedEntryInput, RefundDecision
from monitoring import metrics
from rules.reversals import (
    DECIDED,
    REDELIVERED,
    WAITING,
    PostedIndex,
    RefundRecord,
    RefundRequest,
    apply_posted,
    receive,
    release,
    render,
    settle,
)
from rules.recipients import risk_months as recipients_risk_months
from tables.keyed import KeyedStore

from .keyed_ledger import (
    DUE_PREFIX,
    Context,
    Entry,
    InputKind,
    Item,
    KeyedLedgerProcessor,
    LedgerSummary,
    Output,
    Verdict,
    decode_entry,
    open_ledger_store,
)
from .observe import knp_label
from .records import Sink
from .settings import Settings, Topics

log = logging.getLogger("esep.reversals")

POSTED = "posted-contributions"
REFUNDS = "refund-decisions"
REFUND_ID_PREFIX = "r"
# Far enough that every cut-off has passed: how waiting decisions are released with the hold off.
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
# The output topic (contract default name) -> the field holding the worker's clock.
STAMP_FIELDS = {"fund.decision-results": "decided_at", "posted.reversals": "posted_at",
                "refunds.reversals": "created_at"}

# The month of risk_occurred_on of every applied assignment of an IIN (all payment types), for
# PERIOD_USED_FOR_PAYMENT. In the worker: `risk_months_in_store` over the recipients ledger's store.
RiskMonths = Callable[[str], Iterable[tuple[int, int]]]


def no_risk_months(iin: str) -> tuple:
    return ()


def risk_months_in_store(store: KeyedStore, load: Callable, iin: str) -> set[tuple[int, int]]:
    """From the recipients ledger's states of `iin` (keys `<iin>/<payment_type>`) in this worker's
    store: `fund.payment-decisions` is keyed by IIN with the same partition count, so the person's
    states are in the partition this worker decides the refund in. `load(key, body)` is the
    recipients ledger's (a `.state` per key)."""
    states = []
    for key, raw in store.scan(f"{iin}/"):
        _, body = decode_entry(key, raw)
        states.append(load(key, body).state)
    return recipients_risk_months(states)


class ReversalTally:
    """Metrics of what was decided, kept until the batch (or tick) is through: a batch that dies
    before its outputs were sent is decided again and must not be counted twice."""

    def __init__(self):
        self.results: Tally = Tally()
        self.entries: Tally = Tally()
        self.tiyn: Tally = Tally()

    def count(self, record: RefundRecord, index: PostedIndex) -> None:
        outcome = record.outcome
        self.results[outcome.status] += 1
        for entry_id in outcome.reversed:
            e = index.entries[entry_id]
            self.entries[("reversed", "")] += 1
            self.tiyn[knp_label(e.knp)] += e.amount
        for _, reason in outcome.rejected:
            self.entries[("rejected", reason)] += 1

    def flush(self) -> None:
        for status, n in self.results.items():
            metrics.refund_results.labels(status).inc(n)
        for (outcome, reason), n in self.entries.items():
            metrics.reversal_entries.labels(outcome, reason).inc(n)
        for knp, tiyn in self.tiyn.items():
            metrics.amount_reversed.labels(knp).inc(tiyn / 100)
        self.results.clear()
        self.entries.clear()
        self.tiyn.clear()


def _iin(value) -> str:
    return value.iin


# The state key is `<iin>/<notification_id>`, not the IIN: a decision names entries of one
# notification, so it still reads and writes one small value, while a person's whole history is
# never loaded, re-encoded and re-sent to the changelog on every entry (measured: 1.4 ms an entry at
# 50 entries a person with one value per IIN, growing with the history). The IIN comes first, so the
# person's values sit together and the partition is still the IIN's.
def _posted_key(entry) -> str:
    return f"{entry.iin}/{entry.entry_id.rpartition('/')[0]}"


def _decision_key(decision) -> str:
    return f"{decision.iin}/{decision.notification_id}"


def iin_of_key(key: str) -> str:
    return key.partition("/")[0]


class ReversalsLedger:
    """The `streams.keyed_ledger.Ledger` of reversals: pure decisions from `rules.reversals`."""

    def __init__(self, topics: Topics, hold_margin: timedelta | None, risk_months: RiskMonths = no_risk_months):
        self.changelog_topic = topics.reversals_state
        self.dead_letter_topic = topics.dead_letters
        self.hold_margin = hold_margin
        self.risk_months = risk_months
        self.kinds = [
            # Posted entries are idempotent in the index itself (by entry_id): no per-record position.
            InputKind(topics.posted_contributions, PostedEntryInput, POSTED, "p", _iin, _posted_key, lambda m: None),
            InputKind(topics.refund_decisions, RefundDecision, REFUNDS, REFUND_ID_PREFIX, _iin, _decision_key,
                      lambda m: m.refund_decision_id),
        ]
        self.out_topics = {"fund.decision-results": topics.decision_results,
                           "posted.reversals": topics.posted_reversals,
                           "refunds.reversals": topics.refunds_reversals}
        self.tally = ReversalTally()

    # ---- state --------------------------------------------------------------------------------------

    def load(self, key: str, body) -> PostedIndex:
        return PostedIndex(iin_of_key(key)) if body is None else PostedIndex.from_obj(body)

    def dump(self, state: PostedIndex) -> dict:
        return state.to_obj()

    def due(self, state: PostedIndex) -> float | None:
        return state.next_cutoff()

    def facts(self, state: PostedIndex) -> dict[str, int]:
        waiting = sum(1 for r in state.decisions.values() if r.waiting)
        return {"waiting": waiting} if waiting else {}

    def prepare(self, items: list[Item], ctx: Context) -> None:
        pass

    # ---- deciding -----------------------------------------------------------------------------------

    def decide(self, entry: Entry, item: Item, ctx: Context) -> Verdict:
        index: PostedIndex = entry.state
        if item.kind.label == POSTED:
            updated = apply_posted(index, item.value.model_dump())
            if updated is index:
                return Verdict(outcome="known")  # re-emitted by the posting path: already indexed
            entry.state, released = self._release(updated, ctx.now, ctx.stamp)
            return Verdict(released=released, outcome="indexed")
        request = RefundRequest.from_decision(item.value)
        source = (item.record.partition, item.record.offset)
        index, what, record = receive(index, request, source, risk_months=self.risk_months(request.iin),
                                      hold_margin=self.hold_margin, now=ctx.now)
        entry.state = index
        if what == WAITING:
            return Verdict(outcome="waiting")
        if what not in (DECIDED, REDELIVERED):  # REPEAT: the processor tells repeats apart before this
            return Verdict(outcome="duplicate")
        if what == DECIDED:
            self.tally.count(record, index)
        return Verdict(self._render(record, index, ctx.stamp), outcome="decided")

    def on_due(self, entry: Entry, ctx: Context) -> dict[str, list[Output]]:
        """A cut-off passed (or the hold is off): decide the waiting decisions with what exists."""
        now = ctx.now if self.hold_margin is not None else FAR_FUTURE
        entry.state, released = self._release(entry.state, now, ctx.stamp)
        if released:
            entry.changed = True
        return released

    def _release(self, index: PostedIndex, now: datetime, stamp: str) -> tuple[PostedIndex, dict[str, list[Output]]]:
        if not any(r.waiting for r in index.decisions.values()):
            return index, {}
        index, records = release(index, now=now, risk_months=self.risk_months(index.iin))
        if not records:
            return index, {}
        # The processor keeps these outputs pending in its own entry until they are acknowledged.
        index = settle(index, [r.request.refund_decision_id for r in records])
        released = {}
        for record in records:
            self.tally.count(record, index)
            released[f"{REFUND_ID_PREFIX}:{record.request.refund_decision_id}"] = self._render(record, index, stamp)
        return index, released

    def _render(self, record: RefundRecord, index: PostedIndex, stamp: str) -> list[Output]:
        return [Output(self.out_topics[topic], key, value, STAMP_FIELDS[topic])
                for topic, pairs in render(record, index, stamp).items() for key, value in pairs]

    def observe(self, summary: LedgerSummary) -> None:
        self.tally.flush()


class ReversalsWorker:
    """The reversals ledger of one worker: its store, changelog reader and processor, the timer
    that releases waiting decisions at their cut-off, and the waiting gauges.

    `before_deciding(partitions)`: awaited before any decision in those partitions (the worker makes
    sure the recipients ledger has restored them, so PERIOD_USED_FOR_PAYMENT reads complete states)."""

    def __init__(self, settings: Settings, bootstrap: str, sink: Sink, owned_partitions: Callable[[], Iterable[int]],
                 clock: Callable[[], datetime], risk_months: RiskMonths = no_risk_months,
                 store_path: Path | None = None, changelog=None,
                 before_deciding: Callable[[set[int]], Awaitable[None]] | None = None):
        from tables.changelog import ChangelogReader

        hold = timedelta(minutes=settings.hold_cutoff_min) if settings.pending == "business-day" else None
        self.ledger = ReversalsLedger(settings.topics, hold, risk_months)
        self.store = open_ledger_store(store_path or settings.worker_dir / "reversals")
        # `changelog(store)`: tests read an in-memory log instead of the topic.
        self.changelog = (changelog(self.store) if changelog is not None
                          else ChangelogReader(self.store, bootstrap, settings.topics.reversals_state))
        self.clock = clock
        self.before_deciding = before_deciding
        self.processor = KeyedLedgerProcessor(self.ledger, self.store, self.changelog, sink, clock=clock,
                                              owned_partitions=owned_partitions, name="reversals")

    async def start(self) -> None:
        await self.changelog.start()

    async def stop(self) -> None:
        await self.changelog.stop()
        self.store.close()

    async def process(self, batch) -> LedgerSummary:
        if self.before_deciding is not None and batch:
            await self.before_deciding({r.partition for r in batch})
        return await self.processor.process(batch)

    async def tick(self) -> int:
        """Release the waiting decisions whose cut-off passed (all of them with the hold off, e.g.
        after the hold was switched off with decisions waiting); then refresh the gauges."""
        processor = self.processor
        owned = processor.owned_restored()
        if self.before_deciding is not None and owned:
            await self.before_deciding(owned)
        if self.ledger.hold_margin is None:
            keys = processor.due_keys(FAR_FUTURE, owned)
            changed = await processor.touch(keys, self.ledger.on_due) if keys else 0
        else:
            changed = await processor.tick()
        self.ledger.tally.flush()
        self.observe_waiting()
        return changed

    def observe_waiting(self) -> None:
        """Waiting decisions of the owned partitions (the store's per-partition totals), and the age
        of the oldest since its received_at: among the values of the earliest cut-off (a cut-off
        never comes before that of an earlier receipt), so only those are loaded."""
        processor = self.processor
        owned = processor.owned_restored()
        metrics.refund_decisions_waiting.set(processor.totals(owned).get("waiting", 0))
        first: list[str] = []
        earliest = None
        for ik in self.store.index_scan(DUE_PREFIX):  # in due order
            due_ms, partition, key = ik[len(DUE_PREFIX):].decode().split("/", 2)
            if int(partition) not in owned:
                continue
            if earliest is not None and due_ms != earliest:
                break
            earliest = due_ms
            first.append(key)
        oldest: float | None = None
        for key, raw in self.store.get_many(first).items():
            if raw is None:
                continue
            _, body = decode_entry(key, raw)
            for record in self.ledger.load(key, body).waiting():
                received = record.request.received_at.timestamp()
                oldest = received if oldest is None else min(oldest, received)
        now = self.clock().timestamp()
        metrics.refund_oldest_wait.set(0.0 if oldest is None else max(0.0, now - oldest))


__all__ = ["FAR_FUTURE", "ReversalsLedger", "ReversalsWorker", "RiskMonths", "iin_of_key", "no_risk_months",
           "risk_months_in_store"]
