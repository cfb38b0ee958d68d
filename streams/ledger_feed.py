"""Reading IIN-keyed ledger topics into a batch processor without a faust event per record: a
consumer without a group whose assignment follows this worker's faust assignment. The accounts read
the ledger through it, and the reversals' index of posted entries reads `posted.contributions`.

Why not a faust agent: one faust event costs ~0.2 ms before any work (5,200 events/s measured for an
agent that only acknowledges), and these readers get one record per posted line, where posting gets
one event per order of ~20 lines; an agent per line took the worker's cores from posting.

Ownership: every topic with ESEP_PARTITIONS partitions that all workers subscribe is in one
co-partitioned group of faust's assignor, and the IIN-keyed ledger topics have the same count
(callers check it at start), so partition p of the ledger belongs with the partition p that faust
gives this worker. On each change of assignment the feed asks its target to restore the state of
the owned partitions, then reads each topic from the position the target recorded with that state
(the beginning when none): the target writes its position with (after) the state it applied, so a
crash re-reads a little and the target must apply a record twice the same as once."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from .records import InputRecord

log = logging.getLogger("esep.feed")

# Fetched but not yet read, per partition: a feed that gives way to posting during a burst holds
# this much of every partition it reads (aiokafka keeps one fetch per partition); at 4 MiB the
# accounts' 20 partitions could hold 80 MiB. A record larger than this still comes (one batch at least).
FETCH_PARTITION_BYTES = 1024 * 1024


class FeedStopped(RuntimeError):
    """The feed stopped (the worker is stopping, or the feed failed and stops it): what waited for it
    must not go on as if the target had caught up."""


class FeedTarget(Protocol):
    """What a feed reads into (AccountsProcessor; the reversals' posted-entry index)."""

    # (topic, partition) -> the next input offset applied in this process (a cheaper `positions`).
    next_offsets: dict[tuple[str, int], int]

    async def restore(self, partitions: Iterable[int]) -> None:
        """Bring the state of `partitions` up to its changelog (done once per assignment)."""

    def positions(self, partition: int, topics: list[str]) -> dict[str, int]:
        """The next offset to read, by topic, for the topics with a recorded position in `partition`."""

    async def process(self, batch: list[InputRecord]) -> object:
        """Apply a batch (records of owned partitions, in offset order per partition)."""


class LedgerFeed:
    """Reads `topics`' partitions that `owned()` names into `target`, in batches of up to
    `max_records`. A topic that does not exist yet is looked for again every `rediscover_s`."""

    def __init__(self, target: FeedTarget, bootstrap: str, owned: Callable[[], Iterable[int]], topics: list[str], *,
                 name: str, max_records: int = 1000, rediscover_s: float = 30.0,
                 pace: Callable[[], Awaitable[None]] | None = None):
        self.target = target
        self.pace = pace  # awaited before each batch (PostingActivity.turn, streams/yielding.py): None reads at once
        self.bootstrap = bootstrap
        self.owned = owned
        self.topics = list(topics)
        self.name = name  # in logs
        self.max_records = max_records
        self.rediscover_s = rediscover_s
        self.present: list[str] = []
        self.wake = asyncio.Event()
        self.followed = asyncio.Event()  # the topics that exist are known, the consumer reads them
        self._advanced = asyncio.Event()
        self.stopped = False
        self.consumer = None

    def reassign(self) -> None:
        """The worker's assignment changed: follow it before the next fetch."""
        self.wake.set()

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import KafkaError

        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest", max_partition_fetch_bytes=FETCH_PARTITION_BYTES)
        await self.consumer.start()
        try:
            next_look = 0.0
            while True:
                if self.wake.is_set() or time.monotonic() >= next_look:
                    try:
                        await self._follow()
                        next_look = time.monotonic() + self.rediscover_s
                    except KafkaError as exc:
                        # The broker away (a restart): wait; the ledger is read on its return.
                        log.warning("the %s feed cannot follow the assignment now (%s); again in 1 s", self.name,
                                    type(exc).__name__)
                        self.wake.set()
                        await asyncio.sleep(1.0)
                        continue
                    self.followed.set()
                    self._advance()
                if not self.consumer.assignment():
                    try:
                        await asyncio.wait_for(self.wake.wait(), timeout=max(0.1, next_look - time.monotonic()))
                    except asyncio.TimeoutError:
                        pass
                    continue
                fetched = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if fetched and self.pace is not None:
                    await self.pace()
                owned = set(self.owned())
                # Records of a partition revoked meanwhile are left to its new owner; a partition
                # assigned back is read again from its recorded position.
                batch = [InputRecord(tp.topic, tp.partition, r.offset, r.key, r.value)
                         for tp, records in fetched.items() if tp.partition in owned and not self.wake.is_set()
                         for r in records]
                if batch:
                    await self.target.process(batch)
                    self._advance()
        finally:
            self.stopped = True
            self._advance()
            await self.consumer.stop()

    async def _follow(self) -> None:
        from aiokafka import TopicPartition

        self.wake.clear()
        existing = await self.consumer.topics()
        present = [t for t in self.topics if t in existing]
        if present != self.present:
            missing = sorted(set(self.topics) - set(present))
            log.info("the %s feed reads %s%s", self.name, ", ".join(present) or "nothing",
                     f"; not there yet: {', '.join(missing)}" if missing else "")
            self.present = present
        wanted = sorted(set(self.owned()))
        if wanted:
            await self.target.restore(wanted)
        if self.wake.is_set():
            return  # reassigned again while restoring: follow the latest
        tps = [TopicPartition(t, p) for t in self.present for p in wanted]
        self.consumer.assign(tps)
        for p in wanted:
            positions = self.target.positions(p, self.present)
            for t in self.present:
                tp = TopicPartition(t, p)
                if t in positions:
                    self.consumer.seek(tp, positions[t])
                else:
                    await self.consumer.seek_to_beginning(tp)

    # ---- how far the target is --------------------------------------------------------------------------

    def _advance(self) -> None:
        """Wake whoever waits for the target to get further."""
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def _until_advanced(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._advanced.wait(), timeout=timeout_s)
        except asyncio.TimeoutError:
            pass

    async def caught_up(self, partitions: Iterable[int], poll_s: float = 1.0) -> set[int]:
        """Wait until the target holds every record that the feed's topics held in `partitions` when
        this was called (their end offsets then, read from the broker); returns those of
        `partitions` still owned. A partition that leaves this worker meanwhile is not waited for:
        its new owner reads it. The broker away: waits for it."""
        from aiokafka.errors import KafkaError

        wanted = set(partitions)
        while not self.followed.is_set():
            self._check_running()
            await self._until_advanced(poll_s)
        while True:
            try:
                bounds = await self._bounds(wanted)
                break
            except KafkaError as exc:
                log.warning("the %s feed cannot read the end offsets now (%s); again in 1 s", self.name,
                            type(exc).__name__)
                await asyncio.sleep(1.0)
        while True:
            owned = set(self.owned())
            behind = [(t, p) for (t, p), (start, end) in bounds.items()
                      if p in owned and self.target.positions(p, [t]).get(t, start) < end]
            if not behind:
                return wanted & owned
            self._check_running()
            await self._until_advanced(poll_s)

    def _check_running(self) -> None:
        if self.stopped:
            raise FeedStopped(f"the {self.name} feed stopped")

    async def _bounds(self, partitions: set[int]) -> dict[tuple[str, int], tuple[int, int]]:
        """(topic, partition) -> (first offset, end offset) of the existing topics, now."""
        from aiokafka import TopicPartition

        tps = [TopicPartition(t, p) for t in self.present for p in sorted(partitions)]
        if not tps:
            return {}
        ends = await self.consumer.end_offsets(tps)
        starts = await self.consumer.beginning_offsets(tps)
        return {(tp.topic, tp.partition): (starts[tp], ends[tp]) for tp in tps}

    def highwater(self, topic: str, partition: int) -> int | None:
        from aiokafka import TopicPartition

        tp = TopicPartition(topic, partition)
        # Between faust's assignment and the feed's following it, the feed does not read `tp` yet.
        if self.consumer is None or tp not in self.consumer.assignment():
            return None
        return self.consumer.highwater(tp)

    def lag(self, partition: int) -> int | None:
        """Records of `partition` not yet applied (None while unknown)."""
        total = 0
        for topic in self.present:
            high = self.highwater(topic, partition)
            if high is None:
                return None
            done = self.target.next_offsets.get((topic, partition))
            if done is None:
                done = self.target.positions(partition, [topic]).get(topic, 0)
            total += max(0, high - done)
        return total


__all__ = ["FeedStopped", "FeedTarget", "LedgerFeed"]
