"""Decisions: the durable record of how every line of a notification was decided.

A line is decided once. The record is written to a compacted changelog topic (partition = the
notification's input partition) and acknowledged before any output is sent; outputs are a pure
function of the order and its record, so a redelivery re-emits them from the record instead of
deciding again, whatever the registry says by then. The same record is the de-duplication entry:
it names the input partition and offset of the notification's first record, which tells a
redelivery (same offset: emit again) from a repeat (another offset: emit nothing).

The local rocksdict is a cache of the changelog: when a worker gets a partition it first reads the
changelog from the cache's offset to the end, so state follows its partition after a rebalance."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from rules.posting import POSTED, LineDecision, OrderDecision, Person

from .rocks import new_batch, open_store, put_offset, read_offsets

log = logging.getLogger("esep.decisions")
DECISION_PREFIX = b"d/"
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    notification_id: str
    partition: int
    offset: int
    decision: OrderDecision

    def encode(self) -> bytes:
        lines = []
        for d in self.decision.lines:
            if d.outcome == POSTED:
                p = d.person
                lines.append([d.line_no, d.outcome, p.surname, p.name, p.patronymic, p.birth_date, p.death_date])
            else:
                lines.append([d.line_no, d.outcome, d.reason])
        return orjson.dumps(
            {"v": RECORD_VERSION, "src": [self.partition, self.offset], "r": self.decision.order_reason, "l": lines}
        )

    @classmethod
    def decode(cls, notification_id: str, raw: bytes) -> "DecisionRecord":
        obj = orjson.loads(raw)
        if obj.get("v") != RECORD_VERSION:
            raise ValueError(f"decision record version {obj.get('v')!r} is not {RECORD_VERSION}")
        lines = []
        for item in obj["l"]:
            if item[1] == POSTED:
                lines.append(LineDecision(item[0], POSTED, None, Person(*item[2:7])))
            else:
                lines.append(LineDecision(item[0], item[1], item[2]))
        partition, offset = obj["src"]
        return cls(notification_id, partition, offset, OrderDecision(obj["r"], tuple(lines)))


class DecisionStore:
    """Local cache of the decisions changelog: records by notification_id, plus changelog offsets."""

    def __init__(self, path: Path):
        self.db = open_store(path)

    def get_many(self, nids: list[str]) -> dict[str, DecisionRecord]:
        if not nids:
            return {}
        values = self.db.get([DECISION_PREFIX + n.encode() for n in nids])
        return {n: DecisionRecord.decode(n, v) for n, v in zip(nids, values) if v is not None}

    def next_offset(self, partition: int) -> int | None:
        return read_offsets(self.db, [partition]).get(partition)

    def apply(self, entries: list[tuple[str, bytes]], next_offsets: dict[int, int]) -> None:
        batch = new_batch()
        for nid, raw in entries:
            batch.put(DECISION_PREFIX + nid.encode(), raw)
        for partition, offset in next_offsets.items():
            put_offset(batch, partition, offset)
        self.db.write(batch)

    def close(self) -> None:
        self.db.close()


class ChangelogReader:
    """Brings the local cache up to the end of a changelog partition (on first use after an
    assignment). A plain consumer with manual assignment: no group, no committed offsets."""

    def __init__(self, store: DecisionStore, bootstrap: str, topic: str):
        self.store = store
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def catch_up(self, partitions: list[int]) -> int:
        """Read the changelog `partitions` to their ends into the store; returns the records applied.
        All at once: every assign() costs the consumer a fetch round (~0.5 s) before it settles."""
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
        log.info("decisions partitions %s restored: %d records applied", sorted(partitions), applied)
        return applied
