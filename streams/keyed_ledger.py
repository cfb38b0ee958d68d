"""A faust-free batch processor for ledgers whose inputs are keyed by IIN and whose state lives per
key in a `tables.keyed.KeyedStore` backed by a compacted changelog (the recipients ledger; the
reversals ledger reuses it).

One batch, as numbered steps (the posting agent's shape):
1. parse each record once (pydantic); a bad record is a dead letter naming the field; a record whose
   Kafka key is not its IIN is sent again, unchanged, keyed by its IIN, and skipped here (its IIN's
   partition decides it);
2. restore the changelog partitions not yet restored (state follows its partition), then re-send
   what a crash left unsent (entries marked pending);
3. load the touched entries with one multi-get; records of one key later in the batch see the
   earlier ones;
4. tell redeliveries and repeats apart by record id (the entry's `src`: id -> first position):
   same position = a redelivery, which re-emits the outputs recorded for it (restamped) without
   deciding again; another position = a repeat, which emits nothing; else `Ledger.decide`;
5. write the changed entries (state, positions, outbox in ONE changelog record per key) and await
   the acknowledgements, then apply them to the local store;
6. send the outputs and await them; entries that carried outputs of records other than the batch's
   own inputs (released by a decision or a timer) are written once more with the pending mark off;
7. return: the caller acknowledges the input offsets.

A crash before 5 decides the batch again from the same state; between 5 and 6 the redelivery
re-emits from the outbox. A write of a key drops from its outbox only the outputs of inputs known to
be acknowledged (`KeyedLedgerProcessor.acknowledged`): finished in a batch of this worker, or below
the committed offset. A later write of the key is NOT proof enough: the two inputs of a key (two
topics, one partition number) are committed apart, and faust can hand a partition's records out of
order after a rebalance, so after a crash another record can write the key before the crashed
batch's record comes again; had that write dropped the record's outputs, its redelivery would find
none and they would never be sent. A redelivery whose outbox entry is gone had its outputs
delivered and emits nothing more.

Outputs that are a key's latest state rather than events (`Ledger.snapshot_topics`, e.g. the
recipient's account) are kept once per (topic, key) in the outbox, under the latest input: an
older input's redelivery must not re-send an older state after a newer one.

Entry encoding: `[version, partition, due_ms, pending, facts]` + b"\\n" + body JSON, so that the
store's index reads the small header only. Index keys: `t/<due_ms:015>/<partition>/<key>` (timer),
`e/<partition>/<key>` (pending emission). `facts` (`Ledger.facts(state)`, named integers) are summed
per partition by the store (`<partition>/<name>`), e.g. for gauges of what the owned partitions hold."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, ValidationError

from monitoring import metrics
from rules import entries as stamps
from rules.errors import classify, unprocessable
from rules import json_bytes
from tables.keyed import KeyedStore

from .finished_offsets import FinishedOffsets
from .records import InputRecord, OutputRecord, Sink, dead_letter
from .sending import next_offsets_of, send_all, send_dead_letters

log = logging.getLogger("esep.ledger")

ENTRY_VERSION = 1
DUE_PREFIX = b"t/"
PENDING_PREFIX = b"e/"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ---- what an application of the processor gives it ---------------------------------------------------


@dataclass(frozen=True)
class InputKind:
    """One input topic: its model, how to find the IIN (partitioning), the state key and the
    idempotency id of a parsed record. `id_prefix` keeps the ids of two inputs apart in `src`."""

    topic: str
    model: type[BaseModel]
    label: str  # bounded: metric label and dead-letter source
    id_prefix: str
    iin: Callable[[Any], str]
    state_key: Callable[[Any], str]
    record_id: Callable[[Any], str | None]


@dataclass(slots=True)
class Item:
    record: InputRecord
    kind: InputKind
    value: Any  # the parsed model
    key: str  # the state key
    rid: str | None  # namespaced record id, None when the input is not idempotent by id here


@dataclass(slots=True)
class Output:
    """One output record as the outbox keeps it: re-emitted equal but for `stamp` (the field that
    holds the worker's clock), which a re-emission sets to its own time."""

    topic: str
    key: str
    value: dict
    stamp: str | None = None

    def to_json(self) -> list:
        return [self.topic, self.key, self.value, self.stamp]

    @classmethod
    def from_json(cls, obj: list) -> "Output":
        return cls(obj[0], obj[1], obj[2], obj[3])

    def restamped(self, at: str) -> "Output":
        if self.stamp is None:
            return self
        return Output(self.topic, self.key, {**self.value, self.stamp: at}, self.stamp)

    def record(self) -> OutputRecord:
        return OutputRecord(self.topic, self.key.encode(), json_bytes.dumps(self.value))


@dataclass(slots=True)
class Entry:
    """One key's stored value while a batch works on it: the application's state and the
    processor's bookkeeping."""

    key: str
    partition: int
    state: Any
    src: dict[str, list] = field(default_factory=dict)  # rid -> [topic, partition, offset]
    outbox: dict[str, list[Output]] = field(default_factory=dict)
    due: float | None = None  # epoch seconds: when `Ledger.on_due` wants to see this key
    pending: bool = False  # outbox not known to be acknowledged: re-send at restore
    changed: bool = False
    fresh_outbox: bool = False  # the outbox was reset in this write
    resent: set[str] = field(default_factory=set)  # ids re-emitted from the outbox in this batch

    def emit(self, rid: str, outputs: list[Output], acknowledged: Callable[[list], bool],
             snapshots: frozenset[str] = frozenset()) -> None:
        """Record `outputs` under `rid`. The first emission of a write drops the outputs of earlier
        inputs that `acknowledged(position)` knows were acknowledged; the others stay for their
        redelivery. A pending entry keeps everything: the restore re-sends its whole outbox.
        Outputs to `snapshots` topics supersede the same (topic, key) under other ids."""
        if not self.fresh_outbox:
            if not self.pending:
                self.outbox = {k: v for k, v in self.outbox.items()
                               if k in self.resent or not self._acknowledged(k, acknowledged)}
            self.fresh_outbox = True
        latest = {(o.topic, o.key) for o in outputs if o.topic in snapshots}
        if latest:
            for other in list(self.outbox):
                kept = [o for o in self.outbox[other] if (o.topic, o.key) not in latest]
                if kept:
                    self.outbox[other] = kept
                else:
                    del self.outbox[other]
        if outputs:
            self.outbox[rid] = list(outputs)
        self.changed = True

    def _acknowledged(self, rid: str, acknowledged: Callable[[list], bool]) -> bool:
        position = self.src.get(rid)
        # Not in `src`: an input without an id, decided again when it comes again; its outbox
        # entry is never re-emitted, so keeping it would serve nothing.
        return position is None or acknowledged(position)


@dataclass(slots=True)
class Context:
    now: datetime
    stamp: str  # the batch's worker-clock stamp
    batch: list[Item] = field(default_factory=list)
    scratch: dict = field(default_factory=dict)  # per batch, for the application (registry look-ups)


@dataclass(slots=True)
class Verdict:
    """What deciding one new record gave: outputs recorded under the record's id, and outputs of
    other ids the record released (held items decided now; they have no input to redeliver, so
    the entry is marked pending until they are acknowledged)."""

    outputs: list[Output] = field(default_factory=list)
    released: dict[str, list[Output]] = field(default_factory=dict)
    outcome: str = "decided"  # bounded: counted by the processor (decided, held, ...)


class Ledger(Protocol):
    """The application: pure decisions over its own state type."""

    changelog_topic: str
    dead_letter_topic: str
    kinds: list[InputKind]
    # Optional (read with getattr): `snapshot_topics`, the topics whose records are a key's latest
    # state, not events (re-sent only as the latest one).

    def load(self, key: str, body: Any | None) -> Any: ...

    def dump(self, state: Any) -> Any: ...

    def due(self, state: Any) -> float | None: ...

    def facts(self, state: Any) -> dict[str, int]: ...

    def prepare(self, items: list[Item], ctx: Context) -> None: ...

    def decide(self, entry: Entry, item: Item, ctx: Context) -> Verdict: ...

    def on_due(self, entry: Entry, ctx: Context) -> dict[str, list[Output]]: ...

    def observe(self, summary: "LedgerSummary") -> None: ...


class Changelog(Protocol):
    async def catch_up(self, partitions: list[int]) -> int: ...


# ---- encoding and the store's index ---------------------------------------------------------------------


def encode_entry(entry: Entry, body: Any, facts: dict[str, int] | None = None) -> bytes:
    due_ms = None if entry.due is None else int(entry.due * 1000)
    header = json_bytes.dumps([ENTRY_VERSION, entry.partition, due_ms, entry.pending, facts or {}])
    payload = {"s": body, "src": entry.src,
               "out": {rid: [o.to_json() for o in outs] for rid, outs in entry.outbox.items()}}
    return header + b"\n" + json_bytes.dumps(payload)


def decode_header(raw: bytes) -> tuple[int, int | None, bool, dict[str, int]]:
    """(partition, due_ms, pending, facts) from an entry's first line."""
    version, partition, due_ms, pending, facts = orjson.loads(raw[:raw.index(b"\n")])
    if version != ENTRY_VERSION:
        raise ValueError(f"ledger entry version {version!r} is not {ENTRY_VERSION}")
    return partition, due_ms, pending, facts


def decode_entry(key: str, raw: bytes) -> tuple[Entry, Any]:
    cut = raw.index(b"\n")
    partition, due_ms, pending, _ = decode_header(raw)
    payload = orjson.loads(raw[cut + 1:])
    outbox = {rid: [Output.from_json(o) for o in outs] for rid, outs in payload["out"].items()}
    entry = Entry(key, partition, None, payload["src"], outbox, None if due_ms is None else due_ms / 1000.0, pending)
    return entry, payload["s"]


# Where a feed (streams/ledger_feed.py) read an input partition to: `\x00pos/<partition>/<topic>` ->
# the next offset, as ASCII digits; written after the state it gave, in the same changelog
# partition, so it follows the partition with that state. Not an entry: no index, no facts.
POSITION_PREFIX = "\x00pos/"


def position_key(partition: int, topic: str) -> str:
    return f"{POSITION_PREFIX}{partition}/{topic}"


def entry_index(key: str, raw: bytes) -> list[bytes]:
    """Index keys of a stored entry (for `KeyedStore(index=entry_index)`)."""
    if key.startswith(POSITION_PREFIX):
        return []
    partition, due_ms, pending, _ = decode_header(raw)
    out = []
    if due_ms is not None:
        out.append(DUE_PREFIX + f"{due_ms:015d}/{partition}/{key}".encode())
    if pending:
        out.append(PENDING_PREFIX + f"{partition}/{key}".encode())
    return out


def entry_aggregate(key: str, raw: bytes) -> dict[str, int]:
    """Per-partition sums of the entries' facts (for `KeyedStore(aggregate=entry_aggregate)`)."""
    if key.startswith(POSITION_PREFIX):
        return {}
    partition, _, _, facts = decode_header(raw)
    return {f"{partition}/{name}": value for name, value in facts.items()}


def open_ledger_store(path) -> KeyedStore:
    return KeyedStore(path, index=entry_index, aggregate=entry_aggregate)


async def write_changelog(sink: Sink, records: list[OutputRecord], store, stage: str, backoff_s: float = 0.5) -> None:
    """State changes: to their compacted changelog first, acknowledged, then into the local store
    with the changelog offsets they got (so a restore resumes exactly after them)."""
    metas = await send_all(sink, records, stage, backoff_s)
    store.apply([(r.key.decode(), r.value) for r in records], next_offsets_of(metas))


async def send_outputs(sink: Sink, records: list[OutputRecord], dead_letter_topic: str, stage: str,
                       backoff_s: float) -> None:
    """Outputs, acknowledged; dead letters apart, so that one too large for the broker goes again
    without its value (streams/sending.py) instead of stopping the batch."""
    letters = [r for r in records if r.topic == dead_letter_topic]
    others = [r for r in records if r.topic != dead_letter_topic]
    await send_all(sink, others, stage, backoff_s)
    await send_dead_letters(sink, letters, backoff_s)


# ---- the processor --------------------------------------------------------------------------------------


@dataclass
class LedgerSummary:
    records: int = 0
    outcomes: Tally = field(default_factory=Tally)  # (label, outcome) -> n
    outputs: int = 0
    released: int = 0


class KeyedLedgerProcessor:
    def __init__(self, ledger: Ledger, store, changelog: Changelog, sink: Sink, clock: Clock = utc_now,
                 owned_partitions: Callable[[], Iterable[int]] = tuple, retry_backoff_s: float = 0.5,
                 name: str = "ledger", committed: Callable[[str, int], int | None] | None = None):
        self.ledger = ledger
        self.store = store
        self.changelog = changelog
        self.sink = sink
        self.clock = clock
        self.owned_partitions = owned_partitions
        self.retry_backoff_s = retry_backoff_s
        self.name = name
        self.kinds = {k.topic: k for k in ledger.kinds}
        self.snapshots = frozenset(getattr(ledger, "snapshot_topics", ()))
        self.restored: set[int] = set()
        self.lock = asyncio.Lock()  # batches, timers and restores all change entries: one at a time
        self.next_offsets: dict[tuple[str, int], int] = {}  # after the highest finished offset: the lag
        # The inputs of this worker's finished batches (outputs acknowledged), exactly.
        self.finished = FinishedOffsets()
        # The consumer group's committed offset of an input partition, when known: below it, every
        # input's outputs were acknowledged before it was committed.
        self.committed = committed or (lambda topic, partition: None)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Revoked: another worker may write these partitions' entries before we get them back."""
        self.restored.difference_update(partitions)

    def acknowledged(self, position: list) -> bool:
        """Whether the outputs of the input at `position` ([topic, partition, offset]) are known to
        be acknowledged: a batch of this worker that held it finished, or the group committed past
        it (an offset is committed only after its batch finished). Stays true when the partition
        leaves and comes back: a position names one record, decided once."""
        topic, partition, offset = position
        if (topic, partition, offset) in self.finished:
            return True
        committed = self.committed(topic, partition)
        return committed is not None and offset < committed

    # ---- the input path ---------------------------------------------------------------------------

    async def process(self, batch: list[InputRecord]) -> LedgerSummary:
        async with self.lock:
            return await self._process(batch)

    async def _process(self, batch: list[InputRecord]) -> LedgerSummary:
        summary = LedgerSummary(records=len(batch))
        now = self.clock()
        outputs: list[OutputRecord] = []
        items: list[Item] = []
        for rec in batch:  # 1. parse
            item = self._parse(rec, now, outputs, summary)
            if item is not None:
                items.append(item)

        needed = {it.record.partition for it in items} - self.restored
        if needed:  # 2. restore
            await self._restore(needed)

        ctx = Context(now, stamps.stamp(now), items)
        entries = self._load([it.key for it in items], {it.key: it.record.partition for it in items})  # 3.
        if items:
            self.ledger.prepare(items, ctx)
        for it in items:  # 4. decide, in arrival order
            entry = entries[it.key]
            pos = [it.record.topic, it.record.partition, it.record.offset]
            if it.rid is not None and it.rid in entry.src:
                if entry.src[it.rid] == pos:
                    again = entry.outbox.get(it.rid)
                    if again:
                        entry.resent.add(it.rid)
                    outputs.extend(o.restamped(ctx.stamp).record() for o in again or ())
                    summary.outcomes[(it.kind.label, "redelivered" if again else "redelivered_acked")] += 1
                else:
                    summary.outcomes[(it.kind.label, "duplicate")] += 1
                continue
            try:
                verdict = self.ledger.decide(entry, it, ctx)
            except Exception as exc:  # a bug must not stop the stream: the operator gets the record
                log.exception("cannot decide %s[%d]@%d", it.record.topic, it.record.partition, it.record.offset)
                error_kind, message = unprocessable("decide", exc)
                outputs.append(dead_letter(it.record, error_kind, message, now, self.ledger.dead_letter_topic))
                summary.outcomes[(it.kind.label, "dead_letter")] += 1
                continue
            if it.rid is not None:
                entry.src[it.rid] = pos
            entry.changed = True
            entry.emit(it.rid or f"@{it.record.partition}/{it.record.offset}", verdict.outputs, self.acknowledged,
                       self.snapshots)
            for rid, outs in verdict.released.items():
                entry.emit(rid, outs, self.acknowledged, self.snapshots)
                entry.pending = True
                summary.released += 1
            outputs.extend(o.record() for o in verdict.outputs)
            outputs.extend(o.record() for outs in verdict.released.values() for o in outs)
            summary.outcomes[(it.kind.label, verdict.outcome)] += 1

        changed = [e for e in entries.values() if e.changed]
        await self._write(changed)  # 5.
        await send_outputs(self.sink, outputs, self.ledger.dead_letter_topic, self.name, self.retry_backoff_s)  # 6.
        await self._settle([e for e in changed if e.pending])
        summary.outputs = len(outputs)
        finished: dict[tuple[str, int], list[int]] = {}
        for rec in batch:
            k = (rec.topic, rec.partition)
            self.next_offsets[k] = max(self.next_offsets.get(k, 0), rec.offset + 1)
            finished.setdefault(k, []).append(rec.offset)
        for (topic, partition), offsets in finished.items():
            self.finished.add(topic, partition, offsets)
        metrics.ledger_batches.labels(self.name).observe(len(batch))
        for (label, outcome), n in summary.outcomes.items():
            metrics.ledger_records.labels(label, outcome).inc(n)
        self.ledger.observe(summary)
        return summary

    async def process_fed(self, batch: list[InputRecord]) -> LedgerSummary:
        """A batch read by a feed (streams/ledger_feed.py) instead of a faust agent, which has no
        committed offsets: the position reached in each input partition is written to the
        changelog once the batch's state and outputs are acknowledged (a crash re-reads from the
        last position: the ledger must decide a record read twice as once, e.g. by its own id).
        Records of a partition not restored here (revoked while the batch waited for the lock)
        are dropped: the partition's next owner reads them from its position."""
        async with self.lock:
            batch = [r for r in batch if r.partition in self.restored]
            if not batch:
                return LedgerSummary()
            summary = await self._process(batch)
            reached: dict[tuple[str, int], int] = {}
            for r in batch:
                reached[(r.topic, r.partition)] = max(reached.get((r.topic, r.partition), 0), r.offset + 1)
            records = [OutputRecord(self.ledger.changelog_topic, position_key(p, topic).encode(),
                                    str(offset).encode(), p) for (topic, p), offset in sorted(reached.items())]
            await write_changelog(self.sink, records, self.store, f"{self.name}-changelog", self.retry_backoff_s)
            return summary

    def positions(self, partition: int, topics: list[str]) -> dict[str, int]:
        """The next offset a feed reads, by topic, for the topics with a position in `partition`."""
        raw = self.store.get_many([position_key(partition, t) for t in topics])
        return {t: int(raw[position_key(partition, t)]) for t in topics if raw[position_key(partition, t)] is not None}

    def _parse(self, rec: InputRecord, now: datetime, outputs: list, summary: LedgerSummary) -> Item | None:
        kind = self.kinds[rec.topic]
        error = None
        try:
            value = kind.model.model_validate_json(rec.value) if rec.value is not None else None
        except ValidationError as exc:
            value, error = None, exc
        if value is None:
            errors = error.errors(include_url=False, include_input=False) if error is not None else []
            error_kind, message = classify(rec.value, errors)
            outputs.append(dead_letter(rec, error_kind, message, now, self.ledger.dead_letter_topic))
            metrics.dead_letters.labels(kind.label, error_kind).inc()
            summary.outcomes[(kind.label, "dead_letter")] += 1
            return None
        iin = kind.iin(value)
        if rec.key != iin.encode():
            # Its IIN owns a partition (and so its state): move the record there, unchanged.
            outputs.append(OutputRecord(rec.topic, iin.encode(), rec.value))
            summary.outcomes[(kind.label, "rerouted")] += 1
            return None
        rid = kind.record_id(value)
        return Item(rec, kind, value, kind.state_key(value), None if rid is None else f"{kind.id_prefix}:{rid}")

    def _load(self, keys: list[str], partitions: dict[str, int]) -> dict[str, Entry]:
        unique = list(dict.fromkeys(keys))
        out = {}
        for key, raw in self.store.get_many(unique).items():
            if raw is None:
                out[key] = Entry(key, partitions[key], self.ledger.load(key, None))
            else:
                entry, body = decode_entry(key, raw)
                entry.state = self.ledger.load(key, body)
                out[key] = entry
        return out

    async def _write(self, changed: list[Entry]) -> None:
        if not changed:
            return
        records = []
        for e in changed:
            e.due = self.ledger.due(e.state)
            records.append(OutputRecord(self.ledger.changelog_topic, e.key.encode(),
                                        encode_entry(e, self.ledger.dump(e.state), self.ledger.facts(e.state)),
                                        e.partition))
        await write_changelog(self.sink, records, self.store, f"{self.name}-changelog", self.retry_backoff_s)

    async def _settle(self, sent: list[Entry]) -> None:
        """Outputs of entries marked pending were acknowledged: record that (the outbox stays for the
        redelivery of this batch's own inputs)."""
        if not sent:
            return
        for e in sent:
            e.pending = False
        await self._write(sent)

    # ---- restore, timers and other changes ---------------------------------------------------------

    async def restore(self, partitions: set[int]) -> None:
        async with self.lock:
            needed = set(partitions) - self.restored
            if needed:
                await self._restore(needed)

    async def reassigned(self, partitions: set[int]) -> None:
        """A rebalance gave this worker `partitions` (its whole assignment). Anything else counts
        as not restored, whatever revocations were seen: a partition that went to another worker
        and came back must be read again. Under the lock, so that a restore in flight (begun with
        the assignment before this one) cannot mark a partition restored after this call."""
        async with self.lock:
            self.restored &= set(partitions)
            needed = set(partitions) - self.restored
            if needed:
                await self._restore(needed)

    async def _restore(self, needed: set[int]) -> None:
        # Every owned partition at once: each restore round costs the consumer a fetch round.
        partitions = sorted(needed | (set(self.owned_partitions()) - self.restored))
        started = time.monotonic()
        await self.changelog.catch_up(partitions)
        metrics.recovery_seconds.labels(self.name).observe(time.monotonic() - started)
        self.restored.update(partitions)
        # Outputs that a crash kept from being acknowledged, released outside an input: send now.
        keys = []
        for ik in self.store.index_scan(PENDING_PREFIX):
            partition, key = ik[len(PENDING_PREFIX):].decode().split("/", 1)
            if int(partition) in partitions:
                keys.append(key)
        if keys:
            entries = self._load(keys, {})
            now = self.clock()
            stamp = stamps.stamp(now)
            outputs = [o.restamped(stamp).record() for e in entries.values() for outs in e.outbox.values()
                       for o in outs]
            await send_all(self.sink, outputs, self.name, self.retry_backoff_s)
            await self._settle(list(entries.values()))
            log.info("%s: re-sent %d outputs of %d entries left pending", self.name, len(outputs), len(keys))

    def due_keys(self, now: datetime, partitions: set[int]) -> list[str]:
        upto = DUE_PREFIX + f"{int(now.timestamp() * 1000) + 1:015d}".encode()
        keys = []
        for ik in self.store.index_scan(DUE_PREFIX, upto=upto):
            _, partition, key = ik[len(DUE_PREFIX):].decode().split("/", 2)
            if int(partition) in partitions:
                keys.append(key)
        return keys

    def totals(self, partitions: Iterable[int]) -> dict[str, int]:
        """The facts summed over `partitions` (the owned ones, for gauges)."""
        wanted = {str(p) for p in partitions}
        out: dict[str, int] = {}
        for name, value in self.store.aggregates().items():
            partition, fact = name.split("/", 1)
            if partition in wanted:
                out[fact] = out.get(fact, 0) + value
        return out

    def due_times(self, partitions: set[int]) -> list[float]:
        """Due times (epoch seconds) of the entries in `partitions` that wait for one."""
        out = []
        for ik in self.store.index_scan(DUE_PREFIX):
            due_ms, partition, _ = ik[len(DUE_PREFIX):].decode().split("/", 2)
            if int(partition) in partitions:
                out.append(int(due_ms) / 1000.0)
        return out

    def owned_restored(self) -> set[int]:
        return self.restored & set(self.owned_partitions())

    async def tick(self, horizon: datetime | None = None) -> int:
        """Give `Ledger.on_due` the entries due by `horizon` (default: now), in owned partitions."""
        async with self.lock:
            keys = self.due_keys(horizon or self.clock(), self.owned_restored())
            if not keys:
                return 0
            return await self._touch(keys, self.ledger.on_due)

    async def touch(self, keys: list[str], fn: Callable[[Entry, Context], dict[str, list[Output]]]) -> int:
        """Apply `fn` to the existing entries of `keys` in owned partitions (a registry change, a
        timer): it may change the state (setting `entry.changed`) and return outputs by id, which are
        recorded, sent and settled here."""
        async with self.lock:
            return await self._touch(keys, fn)

    async def _touch(self, keys: list[str], fn) -> int:
        owned = self.owned_restored()
        raw = self.store.get_many(list(dict.fromkeys(keys)))
        entries = {}
        for key, value in raw.items():
            if value is None:
                continue
            entry, body = decode_entry(key, value)
            if entry.partition not in owned:
                continue
            entry.state = self.ledger.load(key, body)
            entries[key] = entry
        if not entries:
            return 0
        now = self.clock()
        ctx = Context(now, stamps.stamp(now))
        outputs: list[OutputRecord] = []
        for entry in entries.values():
            before_due = entry.due
            released = fn(entry, ctx)
            for rid, outs in released.items():
                entry.emit(rid, outs, self.acknowledged, self.snapshots)
                entry.pending = True
                outputs.extend(o.record() for o in outs)
            if entry.changed or self.ledger.due(entry.state) != before_due:
                entry.changed = True
        changed = [e for e in entries.values() if e.changed]
        await self._write(changed)
        await send_all(self.sink, outputs, self.name, self.retry_backoff_s)
        await self._settle([e for e in changed if e.pending])
        return len(changed)


__all__ = ["POSITION_PREFIX", "Context", "Entry", "InputKind", "Item", "KeyedLedgerProcessor", "Ledger",
           "LedgerSummary", "Output", "Verdict", "decode_entry", "encode_entry", "entry_aggregate", "entry_index",
           "open_ledger_store", "position_key"]
