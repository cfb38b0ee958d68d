"""An in-memory broker for the keyed-ledger tests: a sink that numbers offsets per (topic,
partition) and a changelog reader over what it kept, so restores, crashes and a second worker
are played without a broker."""
from __future__ import annotations

import asyncio

import orjson


class Meta:
    def __init__(self, partition, offset):
        self.partition, self.offset = partition, offset


class MemorySink:
    """Numbers records per (topic, partition) like a broker; `crash_before` makes the first send to
    that topic raise SystemExit (not retried: the process dies there)."""

    def __init__(self):
        self.sent = []
        self.logs: dict[tuple[str, int], list] = {}
        self.crash_before: str | None = None

    async def send(self, record):
        if self.crash_before is not None and record.topic == self.crash_before:
            self.crash_before = None
            raise SystemExit("crash")  # not retried by send_all: stands for the process dying
        partition = record.partition if record.partition is not None else 0
        log = self.logs.setdefault((record.topic, partition), [])
        log.append(record)
        self.sent.append(record)
        future = asyncio.get_running_loop().create_future()
        future.set_result(Meta(partition, len(log) - 1))
        return future

    def values(self, topic):
        return [orjson.loads(r.value) for r in self.sent if r.topic == topic]


class MemoryChangelog:
    def __init__(self, sink: MemorySink, store, topic: str):
        self.sink, self.store, self.topic = sink, store, topic
        self.rounds = []

    async def catch_up(self, partitions):
        self.rounds.append(list(partitions))
        applied = 0
        for p in partitions:
            log = self.sink.logs.get((self.topic, p), [])
            start = self.store.next_offset(p) or 0
            entries = [(r.key.decode(), r.value) for r in log[start:]]
            if entries:
                self.store.apply(entries, {p: len(log)})
                applied += len(entries)
        return applied
