"""Reading a compacted changelog topic into the local store it backs (decisions, person histories),
so that state follows its partition to whichever worker is assigned it."""
from __future__ import annotations

import logging
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("esep.changelog")


class ChangelogStore(Protocol):
    def next_offset(self, partition: int) -> int | None: ...

    def apply(self, entries: list[tuple[str, bytes]], next_offsets: dict[int, int]) -> None: ...


class ChangelogReader:
    """Brings a local store up to the end of its changelog partitions (on first use after an
    assignment). A plain consumer with manual assignment: no group, no committed offsets."""

    def __init__(self, store: ChangelogStore, bootstrap: str, topic: str,
                 isolation_level: str = "read_uncommitted"):
        self.store = store
        self.bootstrap = bootstrap
        self.topic = topic
        # read_committed for a changelog written in transactions (the report streams'): an aborted
        # batch's state must never be restored.
        self.isolation_level = isolation_level
        self.consumer: AIOKafkaConsumer | None = None  # made in start(): aiokafka needs the running loop

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level=self.isolation_level,
        )
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def catch_up(self, partitions: list[int]) -> int:
        """Read the changelog `partitions` to their ends into the store; returns the records applied.
        All at once: every assign() costs the consumer a fetch round (~0.5 s) before it settles."""
        if self.consumer is None:
            raise RuntimeError(f"the {self.topic} reader is not started")
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self.consumer.assign(tps)
        starts = {}
        for tp in tps:
            start = self.store.next_offset(tp.partition)
            starts[tp.partition] = start
            if start is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, start)
        ends = await self.consumer.end_offsets(tps)
        pending = {tp for tp in tps if await self.consumer.position(tp) < ends[tp]}
        applied = 0
        while pending:
            batches = await self.consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                entries = [(r.key.decode("utf-8"), r.value) for r in records if r.key and r.value]
                self.store.apply(entries, {tp.partition: records[-1].offset + 1})
                applied += len(entries)
            pending = {tp for tp in pending if await self.consumer.position(tp) < ends[tp]}
        log.info("%s partitions %s restored: %d records applied", self.topic, sorted(partitions), applied)
        return applied
