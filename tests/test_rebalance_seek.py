"""streams/rebalance_seek.py on a fake of faust's consumer: at every completed rebalance each assigned
partition is put at its earliest offset (in the consumer's thread: `seek_wait`), and faust's view of
its commit at that start (-1 for 0, which faust's gap check would take for "none"), before faust's own
seek to the group's commits; a failure stops the worker rather than letting records be skipped."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.types import TP

from streams.lifecycle import Lifecycle
from streams.rebalance_seek import install_rebalance_seek

A, B = TP("fund.payment-decisions", 0), TP("fund.payment-transfers", 1)


class Signal:
    def __init__(self):
        self.receivers = []

    def connect(self, fn):
        self.receivers.append(fn)
        return fn

    async def send(self):
        for fn in self.receivers:
            await fn(None)


class Consumer:
    def __init__(self, earliest, fail=None):
        self.earliest = earliest
        self.fail = fail
        self.sought = None
        self._committed_offset = {}

    def assignment(self):
        return set(self.earliest)

    async def earliest_offsets(self, *tps):
        if self.fail:
            raise self.fail
        return {tp: self.earliest[tp] for tp in tps}

    async def seek_wait(self, offsets):
        self.sought = dict(offsets)


def install(consumer):
    app = SimpleNamespace(on_rebalance_complete=Signal(), consumer=consumer)
    lifecycle = Lifecycle()
    install_rebalance_seek(app, lifecycle)
    return app, lifecycle


@pytest.mark.asyncio
async def test_every_assigned_partition_starts_at_its_earliest_offset():
    consumer = Consumer({A: 0, B: 17})
    app, lifecycle = install(consumer)
    await app.on_rebalance_complete.send()
    assert consumer.sought == {A: 0, B: 17}
    assert consumer._committed_offset == {A: -1, B: 17}
    assert lifecycle.failure is None


@pytest.mark.asyncio
async def test_a_failure_stops_the_worker():
    app, lifecycle = install(Consumer({A: 0}, fail=ConnectionError("broker gone")))
    await app.on_rebalance_complete.send()
    assert "cannot seek the assigned partitions after a rebalance: ConnectionError" in lifecycle.failure


@pytest.mark.asyncio
async def test_nothing_assigned_nothing_to_do():
    consumer = Consumer({})
    app, lifecycle = install(consumer)
    await app.on_rebalance_complete.send()
    assert consumer.sought is None and lifecycle.failure is None
