"""The reversals ledger (contract Part 2, "Refunds of posted contributions") on the keyed-ledger
processor: one state per (IIN, notification), a `PostedIndex` (that person's posted entries of that
notification, which are reversed and by whom, and the record of every refund decision naming it),
in a `KeyedStore` backed by the compacted changelog `esep.reversals-state` (key
`<iin>/<notification_id>`), written with the input's partition.

Inputs: `posted.contributions` and `fund.refund-decisions`, both keyed by IIN with one partition
count, so a person's entries and refund decisions meet in one partition of one worker. The refund
decisions come through a faust agent; the posted entries (one record per posted line, as many as
posting's lines/s) through `streams.ledger_feed.LedgerFeed`, a group-less consumer following the
same assignment, in batches, its position written to the changelog after the entries it gave
(`KeyedLedgerProcessor.process_fed`): a faust event per line took the worker's cores from posting.
Both paths change the state under the processor's lock. `streams.keyed_ledger` gives the rest of
the decision-record pattern: the index is written and acknowledged before any output is sent, a redelivered decision
re-emits its recorded outputs, a repeat (another offset) emits nothing, a crash between a release
and its outputs re-sends them at restore.

The two inputs are read apart, so the index may lag the topic: a decision is decided (or set
waiting) only once the index holds every entry that `posted.contributions` held in its partition
when the decision batch was taken up (`ReversalsWorker.process`), and a cut-off releases waiting
decisions only once the index holds what the topic held at the tick (`ReversalsWorker.tick`); an
entry reaching the index releases only the decisions it completes, never one at its cut-off. So a
decision is never rejected ENTRY_NOT_FOUND for an entry that was posted but not yet indexed.

Faust-free: `streams.reversals_agent` wires it into the app; tests drive it directly."""
from __future__ import annotations

import functools
import logging
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from pydantic import ValidationError

from models.reversals import RefundDecision
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
from .ledger_feed import LedgerFeed
from .observe import knp_label
from .records import InputRecord, Sink
from .settings import Settings, Topics

log = logging.getLogger("esep.reversals")

POSTED = "posted-contributions"
REFUNDS = "refund-decisions"
REFUND_ID_PREFIX = "r"
# Far enough that every cut-off has passed: how waiting decisions are released with the hold off.
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
# Before every cut-off: an entry reaching the index releases only the decisions it completes.
NO_CUTOFF = datetime(1970, 1, 1, tzinfo=timezone.utc)
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


class PostedRecord:
    """A `posted.contributions` record as the index reads it. The topic is the posting path's own
    output (its models check every field before it is sent), and the index gets one record per
    posted line: read with orjson, the shape its key needs checked here, and what the index keeps
    checked once by `rules.reversals.apply_posted` (a failure there is a dead letter of the decide
    step). A strict pydantic model and its dump cost ~20 us a line, a quarter of the feed's time."""

    __slots__ = ("record", "iin", "entry_id")

    def __init__(self, record: dict):
        self.record = record
        self.iin = record["iin"]
        self.entry_id = record["entry_id"]

    @classmethod
    def model_validate_json(cls, data: bytes) -> "PostedRecord":
        """As a pydantic model's (the processor's parse step): a ValidationError names the fault."""
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise _invalid("json_invalid", (), str(exc)) from None
        if not isinstance(record, dict):
            raise _invalid("model_type", (), "a JSON object was expected")
        for name in ("iin", "entry_id"):
            if not isinstance(record.get(name), str):
                raise _invalid("string_type", (name,), "a string was expected")
        return cls(record)


def _invalid(kind: str, loc: tuple, message: str) -> ValidationError:
    return ValidationError.from_exception_data("PostedRecord", [
        {"type": "json_invalid" if kind == "json_invalid" else "value_error", "loc": loc, "input": None,
         "ctx": {"error": message}}])


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
            InputKind(topics.posted_contributions, PostedRecord, POSTED, "p", _iin, _posted_key, lambda m: None),
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
            updated = apply_posted(index, item.value.record)
            if updated is index:
                return Verdict(outcome="known")  # re-emitted by the posting path, or read again: indexed
            # Not at the cut-off: later entries of this key may still be on their way to the index
            # (the tick decides cut-offs once the index caught up with the topic).
            entry.state, released = self._release(updated, NO_CUTOFF, ctx.stamp)
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

    def on_due(self, entry: Entry, ctx: Context, horizon: datetime | None = None) -> dict[str, list[Output]]:
        """A cut-off passed (or the hold is off): decide the waiting decisions with what exists.
        `horizon`: only those whose cut-off passed by then (default: the context's now)."""
        now = (horizon or ctx.now) if self.hold_margin is not None else FAR_FUTURE
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


class PostedEntries:
    """The index as the target of the posted-entry feed (`streams.ledger_feed.FeedTarget`)."""

    def __init__(self, worker: "ReversalsWorker"):
        self.worker = worker

    @property
    def next_offsets(self) -> dict[tuple[str, int], int]:
        return self.worker.processor.next_offsets

    async def restore(self, partitions: Iterable[int]) -> None:
        await self.worker.processor.restore(set(partitions))

    def positions(self, partition: int, topics: list[str]) -> dict[str, int]:
        return self.worker.processor.positions(partition, topics)

    async def process(self, batch: list[InputRecord]) -> LedgerSummary:
        return await self.worker.index_posted(batch)


class ReversalsWorker:
    """The reversals ledger of one worker: its store, changelog reader and processor, the feed of
    posted entries, the timer that releases waiting decisions at their cut-off, and the gauges.

    `before_deciding(partitions)`: awaited before any decision in those partitions (the worker makes
    sure the recipients ledger has restored them, so PERIOD_USED_FOR_PAYMENT reads complete states).
    `feed`: the posted-entry feed (`posted_feed`); None (tests) when the caller puts the entries
    into the processor itself, in the order it wants them seen."""

    def __init__(self, settings: Settings, bootstrap: str, sink: Sink, owned_partitions: Callable[[], Iterable[int]],
                 clock: Callable[[], datetime], risk_months: RiskMonths = no_risk_months,
                 store_path: Path | None = None, changelog=None,
                 before_deciding: Callable[[set[int]], Awaitable[None]] | None = None):
        from tables.changelog import ChangelogReader

        hold = timedelta(minutes=settings.hold_cutoff_min) if settings.pending == "business-day" else None
        self.ledger = ReversalsLedger(settings.topics, hold, risk_months)
        self.posted_topic = settings.topics.posted_contributions
        self.store = open_ledger_store(store_path or settings.worker_dir / "reversals")
        # `changelog(store)`: tests read an in-memory log instead of the topic.
        self.changelog = (changelog(self.store) if changelog is not None
                          else ChangelogReader(self.store, bootstrap, settings.topics.reversals_state))
        self.clock = clock
        self.before_deciding = before_deciding
        self.owned_partitions = owned_partitions
        self.processor = KeyedLedgerProcessor(self.ledger, self.store, self.changelog, sink, clock=clock,
                                              owned_partitions=owned_partitions, name="reversals")
        self.feed = None

    def posted_feed(self, bootstrap: str, max_records: int = 1000,
                    pace: Callable[[], Awaitable[None]] | None = None) -> LedgerFeed:
        """The feed of `posted.contributions` into the index (its `run` is the caller's task);
        `pace`: awaited before each batch (`streams.yielding.PostingActivity.turn`)."""
        self.feed = LedgerFeed(PostedEntries(self), bootstrap, self.owned_partitions, [self.posted_topic],
                               name="reversals", max_records=max_records, pace=pace)
        return self.feed

    async def start(self) -> None:
        await self.changelog.start()

    async def stop(self) -> None:
        await self.changelog.stop()
        self.store.close()

    async def index_posted(self, batch: list[InputRecord]) -> LedgerSummary:
        """Posted entries from the feed into the index; a waiting decision they complete is decided."""
        partitions = {r.partition for r in batch}
        # Only a partition holding waiting decisions can decide here, and only those need the
        # recipients' states: most batches do not wait for that ledger.
        if self.before_deciding is not None and self.processor.totals(partitions).get("waiting"):
            await self.before_deciding(partitions)
        return await self.processor.process_fed(batch)

    async def posted_caught_up(self, partitions: Iterable[int]) -> set[int]:
        """Wait until the index holds every entry `posted.contributions` held in `partitions` now;
        returns those still owned (a partition that left meanwhile is its next owner's)."""
        if self.feed is None:
            return set(partitions)
        return await self.feed.caught_up(partitions)

    async def process(self, batch: list[InputRecord]) -> LedgerSummary:
        """A batch of refund decisions (from the agent): decided against an index caught up with
        the entries posted when it was taken up, so that the feed's lag never rejects a posted entry
        (a decision naming an entry posted later waits for it, with the hold on)."""
        if batch:
            partitions = {r.partition for r in batch}
            ready = await self.posted_caught_up(partitions)
            if ready != partitions:
                log.info("reversals: partitions %s left this worker while their refund decisions waited for the "
                         "posted entries; their next owner decides them", sorted(partitions - ready))
                batch = [r for r in batch if r.partition in ready]
            if self.before_deciding is not None and ready:
                await self.before_deciding(ready)
        return await self.processor.process(batch)

    async def tick(self) -> int:
        """Release the waiting decisions whose cut-off passed (all of them with the hold off, e.g.
        after the hold was switched off with decisions waiting), with the index caught up with the
        entries posted by now; then refresh the gauges."""
        processor = self.processor
        owned = processor.owned_restored()
        now = self.clock()
        keys = processor.due_keys(FAR_FUTURE if self.ledger.hold_margin is None else now, owned)
        changed = 0
        if keys:
            ready = await self.posted_caught_up(owned)
            if self.before_deciding is not None and ready:
                await self.before_deciding(ready)
            # Decisions whose cut-off came while the index caught up are the next tick's.
            changed = await processor.touch(keys, functools.partial(self.ledger.on_due, horizon=now))
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


__all__ = ["FAR_FUTURE", "PostedEntries", "ReversalsLedger", "ReversalsWorker", "RiskMonths", "iin_of_key",
           "no_risk_months", "risk_months_in_store"]
