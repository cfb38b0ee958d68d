"""Reading topics from their beginning: what the demo, the bench, the tests and `esep reconcile`
see of a run. A consumer of no group, assigned every partition: it commits nothing and never takes
partitions away from the workers."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator

from kafka import KafkaConsumer, TopicPartition


class TopicReader:
    """Every partition of `topics` from the beginning, or from the first record at or after
    `since_ms` (Kafka timestamp, ms since the epoch)."""

    def __init__(self, bootstrap: str, topics: Iterable[str], since_ms: int | None = None,
                 client_id: str = "esep-reader"):
        self.bootstrap = bootstrap
        self.since_ms = since_ms
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      auto_offset_reset="earliest", client_id=client_id,
                                      max_partition_fetch_bytes=4 * 1024 * 1024,
                                      reconnect_backoff_ms=50, reconnect_backoff_max_ms=1000)
        self.topics: list[str] = []
        self.subscribe(topics)

    def subscribe(self, topics: Iterable[str]) -> None:
        """Read these topics instead, from their beginning (or `since_ms`)."""
        self.topics = list(topics)
        tps = [TopicPartition(t, p) for t in self.topics for p in sorted(self._partitions(t))]
        self.consumer.assign(tps)
        if not tps:
            return
        if self.since_ms is None:
            self.consumer.seek_to_beginning(*tps)
            return
        found = self.consumer.offsets_for_times({tp: self.since_ms for tp in tps})
        ends = self.consumer.end_offsets(tps)
        for tp in tps:
            at = found.get(tp)
            # No record at or after the time: start at the end (nothing of this partition is in range).
            self.consumer.seek(tp, at.offset if at is not None else ends[tp])

    def _partitions(self, topic: str, timeout_s: float = 30.0) -> set[int]:
        """A topic just created may not be in the metadata yet: ask again until it is."""
        deadline = time.monotonic() + timeout_s
        while True:
            parts = self.consumer.partitions_for_topic(topic)
            if parts or time.monotonic() > deadline:
                if not parts:
                    raise RuntimeError(f"topic {topic} not found on {self.bootstrap}")
                return parts
            time.sleep(0.2)

    def poll(self, timeout_ms: int = 100, max_records: int = 10000) -> list:
        """The records that have arrived (at most `max_records`), in partition order."""
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return [rec for records in batches.values() for rec in records]

    def poll_for(self, budget_s: float) -> list:
        """What has arrived, reading for at most about `budget_s` (the topics may never pause)."""
        out: list = []
        end = time.monotonic() + budget_s
        while time.monotonic() < end:
            batch = self.poll(timeout_ms=100)
            if not batch:
                break
            out.extend(batch)
        return out

    async def apoll(self, timeout_ms: int = 500, max_records: int = 10000) -> list:
        """`poll` off the event loop, for the asyncio tools (the bench)."""
        return await asyncio.to_thread(self.poll, timeout_ms, max_records)

    def read_to_end(self, timeout_s: float = 600.0) -> Iterator:
        """Every record up to the end of each partition as it was when called, then stop."""
        tps = list(self.consumer.assignment())
        ends = self.consumer.end_offsets(tps)
        left = {tp for tp in tps if self.consumer.position(tp) < ends[tp]}
        deadline = time.monotonic() + timeout_s
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(left)} partitions not read to their end in {timeout_s:.0f} s")
            for rec in self.poll(timeout_ms=500):
                tp = TopicPartition(rec.topic, rec.partition)
                if rec.offset < ends[tp]:
                    yield rec
            # Transaction markers and compacted gaps: the position, not the last record, says where we are.
            left = {tp for tp in left if self.consumer.position(tp) < ends[tp]}

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> "TopicReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
