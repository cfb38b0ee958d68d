"""The assembler: one report per month and version, exactly once whatever the number of workers
(docs/report-pipeline.md, sections 2 and 3).

Every worker is a member of one consumer group over reports.partials, which has one partition: the
group gives it to one member at a time, and that member assembles. On taking it, the member starts a
producer with the deployment's one transactional id (which fences a previous owner still writing),
reads reports.monthly to its end (the last record of a month is its state), and reads the partials
from the beginning. Then, at each tick of the report clock, once it has read the partials to their
end:
1. the merged figures of each month are noted (`rules.report.observe`) and the due versions asked
   (`rules.report.due`);
2. barrier: the end offsets of the output topics are noted, and the assembler waits until every
   partition's progress covers them; then the same for esep.report-payers (what the persons stream
   forwarded up to there);
3. each due version is built from the figures and covers as they are now, published in a
   transaction, and becomes the month's state.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from models.report import MonthlyReport
from monitoring import metrics
from rules.calendar import BusinessCalendar
from rules import json_bytes

from .report_assembly import Assembly
from .report_clock import ClockUnreadable
from .report_partitions import report_inputs
from .report_streams import RESTART_BACKOFF_S, TRANSACTION_TIMEOUT_MS
from .settings import Settings

log = logging.getLogger("esep.report")


async def read_versions(bootstrap: str, topic: str) -> list[dict]:
    """Every committed record of reports.monthly, in order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out = []
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            for rec in batches.get(tp, []):
                if rec.offset < end and rec.value is not None:
                    out.append(orjson.loads(rec.value))
        return out
    finally:
        await consumer.stop()


class ReportAssembler:
    def __init__(self, settings: Settings, bootstrap: str, calendar: BusinessCalendar,
                 clock: Callable[[], datetime]):
        self.settings = settings
        self.bootstrap = bootstrap
        self.calendar = calendar
        self.clock = clock
        t = settings.topics
        inputs = report_inputs(t)
        self.output_topics = sorted({i.topic for i in inputs if i.stream != "payers"})
        self.payers_topic = t.report_payers
        self.tp = TopicPartition(t.report_partials, 0)
        self.owner = False
        self.assembly: Assembly | None = None
        self.producer: AIOKafkaProducer | None = None
        # (phase, end offsets to cover, the months' figures but payers when phase 2 began)
        self.barrier: tuple[int, dict[tuple[str, int], int], dict] | None = None

    async def run(self) -> None:
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - versions are read back from reports.monthly on restart
                log.exception("the report assembler failed; starting again in %.0f s", RESTART_BACKOFF_S)
            await self._lose()
            await asyncio.sleep(RESTART_BACKOFF_S)

    async def _run_once(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=f"{s.app_id}-report-assembler", group_instance_id=s.worker_id,
            isolation_level="read_committed", enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(max(0.5, s.session_timeout_s / 5) * 1000),
        )
        await consumer.start()
        try:
            consumer.subscribe([self.tp.topic])
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=10000)
                if self.tp not in consumer.assignment():
                    if self.assembly is not None:
                        await self._lose()  # another member assembles now (its producer fenced ours)
                    continue
                if self.assembly is None:
                    await self._take(consumer)
                    continue
                received = 0
                for rec in batches.get(self.tp, []):
                    if rec.key is not None and self.assembly.receive(
                            rec.key.decode(), orjson.loads(rec.value) if rec.value is not None else None):
                        received += 1
                metrics.report_partials_received.inc(received)
                end = (await consumer.end_offsets([self.tp]))[self.tp]
                if await consumer.position(self.tp) >= end:
                    await self._tick(consumer)
        finally:
            await consumer.stop()

    # ---- ownership ---------------------------------------------------------------------------------

    async def _take(self, consumer: AIOKafkaConsumer) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap,
                                         transactional_id=f"{s.app_id}-report-assembler",
                                         transaction_timeout_ms=TRANSACTION_TIMEOUT_MS)
        await self.producer.start()  # fences the previous owner's producer
        assembly = Assembly(self.calendar, s.report_final_business_days, internal_topics=[self.payers_topic])
        for report in await read_versions(self.bootstrap, s.topics.reports_monthly):
            assembly.restore_version(report)
        await consumer.seek_to_beginning(self.tp)
        self.assembly = assembly
        self.barrier = None
        metrics.report_assembler.set(1)
        log.info("report assembler: this worker assembles (%d months published so far)", len(assembly.states))

    async def _lose(self) -> None:
        self.assembly = None
        self.barrier = None
        # Another worker assembles now: its gauges count, not this one's last values.
        metrics.report_assembler.set(0)
        metrics.report_version_late.set(0)
        metrics.report_months_open.set(0)
        metrics.report_last_version_age.set(0)
        metrics.report_partials_held.clear()
        metrics.report_last_version.clear()
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001
                log.debug("stopping the assembler's producer failed", exc_info=True)

    # ---- the schedule ------------------------------------------------------------------------------

    async def _tick(self, consumer: AIOKafkaConsumer) -> None:
        try:
            now = self.clock()
        except ClockUnreadable:
            return
        a = self.assembly
        due = a.tick(now)
        self._observe(now)
        if not due:
            self.barrier = None
            return
        months = [m for m, _ in due]
        if self.barrier is None:
            self.barrier = (1, await self._ends(consumer, self.output_topics), {})
        phase, targets, before = self.barrier
        if not a.covered(targets):
            return
        if phase == 1:
            # Every output record up to the ends is counted, and every payer it forwarded is in
            # esep.report-payers before its end (forwards commit with the persons partials).
            self.barrier = (2, await self._ends(consumer, [self.payers_topic]), a.without_payers(months))
            return
        self.barrier = None
        if a.without_payers(months) != before:
            # Entries of these months arrived during the barrier: their payers may not be counted
            # yet. Start over (a late entry is rare once a month has ended).
            return
        for month, d in due:
            report = a.build(month, d, now)
            if report is None:
                continue
            MonthlyReport.model_validate(report)  # the contract's model: never publish what it rejects
            async with self.producer.transaction():
                await (await self.producer.send(self.settings.topics.reports_monthly, value=json_bytes.dumps(report),
                                                key=month.encode(), partition=0))
            a.published(report)
            metrics.report_versions.labels(report["version"]).inc()
            log.info("report %s %s (revision %d) published", month, report["version"], report["revision"])
        self._observe(now)

    async def _ends(self, consumer: AIOKafkaConsumer, topics: list[str]) -> dict[tuple[str, int], int]:
        tps = [TopicPartition(t, p) for t in topics for p in range(self.settings.partitions)]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    def _observe(self, now: datetime) -> None:
        a = self.assembly
        open_months = a.open_months()
        metrics.report_months_open.set(len(open_months))
        metrics.report_version_late.set(a.lateness(now))
        counts = a.partial_counts()
        metrics.report_partials_held.clear()
        for month in open_months:
            metrics.report_partials_held.labels(month).set(counts.get(month, 0))
        if a.last is not None:
            metrics.report_last_version.clear()
            metrics.report_last_version.labels(a.last.month, a.last.version).set(a.last.generated_at.timestamp())
            metrics.report_last_version_age.set(max(0.0, (now - a.last.generated_at).total_seconds()))
