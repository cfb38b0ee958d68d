"""The report streams on Kafka: one consumer group over the output topics, each batch counted by
`report_partitions` and committed in ONE Kafka transaction (changelog entries, payer forwards,
partials), then written to the local store (docs/report-pipeline.md, sections 1 and 2).

Why not faust agents: a posted line is one record here (faust's per-event cost, ~0.8 ms, would be
paid twenty times per order); a plain aiokafka consumer reads them in batches of thousands.

- Assignment: the range assignor gives a member the same partition numbers of every input topic
  (they all have `settings.partitions` partitions), so partition p of the persons topics, of the
  orders topics and of the payers topic go together, and so does partition p of the changelog.
- Exactly once: the batch's changelog entries (ids counted, set members, month records, covers) and
  what it forwards and publishes commit together or not at all; the store is written after the
  commit. A crash before the commit leaves the store at the previous batch: the consumer seeks to
  its covers and counts the batch again, once. Readers of the changelog, of esep.report-payers and of
  reports.partials read committed records only.
- On assignment the changelog partitions are read to their end into the store (the state follows
  its partition), each input is sought to the store's covers, and every month's partial is
  published again.
- A failure of any kind drops the in-memory state and starts the consumer again (the store holds
  the last committed state): the report never stops the posting worker.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from monitoring import metrics
from rules.calendar import BusinessCalendar
from tables.changelog import ChangelogReader
from tables.report_state import ReportStore

from .report_partitions import Applied, Input, StreamPartition, report_inputs
from .settings import Settings

log = logging.getLogger("esep.report")

# A transaction left open by a killed worker holds back every read_committed reader of its
# partitions (the assembler among them) until it times out or the worker comes back.
TRANSACTION_TIMEOUT_MS = 15_000
RESTART_BACKOFF_S = 2.0
MAX_UNCOMMITTED = 50_000  # records counted before a commit however short the interval
# Records counted per turn: a turn holds the worker's event loop (~22 µs a record), and posting's
# latency waits behind it.
BATCH_RECORDS = 2000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ReportStreams:
    def __init__(self, settings: Settings, bootstrap: str, calendar: BusinessCalendar,
                 clock: Callable[[], datetime] = utc_now, store: ReportStore | None = None,
                 pace: Callable[[], Awaitable[None]] | None = None):
        self.settings = settings
        self.pace = pace  # awaited before each batch (PostingActivity.turn, streams/yielding.py): None reads at once
        self.bootstrap = bootstrap
        self.calendar = calendar
        self.clock = clock
        t = settings.topics
        self.inputs: list[Input] = report_inputs(t)
        self.by_topic = {i.topic: i for i in self.inputs}
        self.store = store or ReportStore(settings.worker_dir / "report")
        self.parts: dict[tuple[str, int], StreamPartition] = {}
        self.lock = asyncio.Lock()
        self.changelog = ChangelogReader(self.store, bootstrap, t.report_changelog, isolation_level="read_committed")
        self.last_commit = 0.0
        self.producer: AIOKafkaProducer | None = None
        # Counted since the last commit: committed together, or dropped together.
        self.forwards: list[tuple[bytes, bytes]] = []
        self.outcomes: Counter = Counter()
        self.uncommitted = 0
        self.group_id = f"{settings.app_id}-report"
        # aiokafka only logs what a rebalance listener raises: the loop re-raises it instead.
        self.failed: BaseException | None = None

    # ---- running -------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the state is in the store; start over from it
                log.exception("the report streams failed; starting again from the store in %.0f s",
                              RESTART_BACKOFF_S)
            await asyncio.sleep(RESTART_BACKOFF_S)

    async def _run_once(self) -> None:
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, transactional_id=f"{s.app_id}-report-streams-{s.worker_id}",
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, linger_ms=5, max_batch_size=256 * 1024,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id, group_instance_id=s.worker_id,
            isolation_level="read_committed", enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(max(0.5, s.session_timeout_s / 5) * 1000),
            # Fetched but not yet counted stays in memory for every input partition (32 at 4
            # partitions): 1 MiB each, not 4 (a larger record still comes whole).
            max_partition_fetch_bytes=1024 * 1024,
            # Commits come every interval anyway: fewer, fuller fetches cost the broker less.
            fetch_min_bytes=256 * 1024, fetch_max_wait_ms=250,
        )
        await producer.start()  # init_transactions: fences a previous incarnation's open transaction
        self.producer = producer
        await self.changelog.start()
        try:
            await consumer.start()
            consumer.subscribe([i.topic for i in self.inputs], listener=_Rebalance(self, consumer))
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH_RECORDS)
                if batches and self.pace is not None:
                    await self.pace()
                if self.failed is not None:
                    failed, self.failed = self.failed, None
                    raise RuntimeError("restoring the assigned partitions failed") from failed
                async with self.lock:
                    await self._batch(consumer, producer, batches)
        finally:
            self.parts.clear()
            self.producer = None
            self.forwards, self.outcomes, self.uncommitted = [], Counter(), 0
            for part in (consumer.stop, self.changelog.stop, producer.stop):
                try:
                    await part()
                except Exception:  # noqa: BLE001 - stopping is best effort; the next start starts clean
                    log.debug("stopping a report client failed", exc_info=True)

    # ---- assignment ------------------------------------------------------------------------------------

    async def assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        started = time.monotonic()
        partitions = sorted({tp.partition for tp in assigned})
        if partitions:
            await self.changelog.catch_up(partitions)
        for tp in assigned:
            inp = self.by_topic[tp.topic]
            key = (inp.stream, tp.partition)
            sp = self.parts.get(key)
            if sp is None:
                sp = self.parts[key] = StreamPartition(inp.stream, tp.partition, self.store, self.calendar)
                sp.republish_all()
            position = sp.covers.get(tp.topic)
            if position is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, position)
        self.last_commit = 0.0  # publish the partitions' months and progress at the next batch
        metrics.recovery_seconds.labels("report").observe(time.monotonic() - started)
        log.info("report streams: partitions %s restored and sought to their covers", partitions)

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        # What was counted is committed before the partitions move: the next owner starts from it.
        if self.producer is not None:
            await self.flush(self.producer)
        for tp in revoked:
            inp = self.by_topic.get(tp.topic)
            if inp is not None:
                self.parts.pop((inp.stream, tp.partition), None)

    # ---- batches -------------------------------------------------------------------------------------

    async def _batch(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, batches: dict) -> None:
        """Count what arrived; commit what was counted since the last commit once the interval has
        passed (or much is waiting). One transaction a second or two, not one per fetch: a
        transaction costs the broker markers on every partition it wrote to."""
        for tp, records in batches.items():
            inp = self.by_topic[tp.topic]
            sp = self.parts.get((inp.stream, tp.partition))
            if sp is None:  # revoked while the batch waited for the lock
                continue
            out = Applied()
            sp.apply(inp.source, [rec.value for rec in records], out)
            self.forwards.extend(out.forwards)
            self.uncommitted += len(records)
            self.outcomes[(inp.source, "counted")] += out.counted
            self.outcomes[(inp.source, "repeat")] += out.repeats
            self.outcomes[(inp.source, "unreadable")] += out.unreadable
        for tp in consumer.assignment():
            inp = self.by_topic.get(tp.topic)
            sp = self.parts.get((inp.stream, tp.partition)) if inp is not None else None
            if sp is not None:
                # The position, not the last record: transaction markers take offsets too.
                sp.advance(tp.topic, await consumer.position(tp))
        if (time.monotonic() - self.last_commit < self.settings.report_partial_interval_s
                and self.uncommitted < MAX_UNCOMMITTED):
            return
        await self.flush(producer)

    async def flush(self, producer: AIOKafkaProducer) -> None:
        """Commit what was counted, with the forwards and the partials, in one transaction."""
        self.last_commit = time.monotonic()
        if not self.forwards and not any(sp.dirty or sp.unpublished or sp.progress_unpublished
                                         for sp in self.parts.values()):
            self.uncommitted = 0
            return
        started = time.monotonic()
        try:
            await self._commit(producer)
        except BaseException:
            for sp in self.parts.values():
                sp.rollback()
            self.forwards, self.outcomes, self.uncommitted = [], Counter(), 0
            raise
        for (source, outcome), n in self.outcomes.items():
            if n:
                metrics.report_records.labels(source, outcome).inc(n)
        if self.uncommitted:
            metrics.report_batch_seconds.observe(time.monotonic() - started)
        self.forwards, self.outcomes, self.uncommitted = [], Counter(), 0

    async def _commit(self, producer: AIOKafkaProducer) -> None:
        t = self.settings.topics
        entries = []
        for sp in self.parts.values():
            entries.extend(sp.take_changes())
        # Every commit publishes the partials it changed: a payer forwarded is counted only after
        # the persons partial that counts its entry (the assembler's barrier relies on it).
        now = self.clock()
        publishing = [sp for sp in self.parts.values() if sp.unpublished or sp.progress_unpublished]
        partials = [kv for sp in publishing for kv in sp.partials(now)]
        async with producer.transaction():
            changelog = [await producer.send(t.report_changelog, value=v, key=k.encode(),
                                             partition=int(k.split("/", 1)[0])) for k, v in entries]
            others = [await producer.send(t.report_payers, value=v, key=k) for k, v in self.forwards]
            others += [await producer.send(t.report_partials, value=v, key=k, partition=0) for k, v in partials]
            metas = await asyncio.gather(*changelog)
            await asyncio.gather(*others)
        next_offsets: dict[int, int] = {}
        for meta in metas:
            next_offsets[meta.partition] = max(next_offsets.get(meta.partition, 0), meta.offset + 1)
        self.store.apply(entries, next_offsets)
        for sp in self.parts.values():
            sp.committed()
        for sp in publishing:
            sp.published()
        metrics.report_partials_published.inc(len(partials))


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, streams: ReportStreams, consumer: AIOKafkaConsumer):
        self.streams = streams
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked) -> None:
        # Under the lock: a batch in flight commits before its partitions move.
        async with self.streams.lock:
            try:
                await self.streams.revoked(set(revoked))
            except Exception as exc:  # noqa: BLE001 - handed to the loop, which starts over
                self.streams.failed = exc

    async def on_partitions_assigned(self, assigned) -> None:
        async with self.streams.lock:
            try:
                await self.streams.assigned(self.consumer, set(assigned))
            except Exception as exc:  # noqa: BLE001 - handed to the loop, which starts over
                self.streams.failed = exc
