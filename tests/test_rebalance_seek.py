"""streams/rebalance_seek.py on a fake of faust's consumer: faust's `perform_seek` (its seek to the
committed offsets) first puts each assigned partition at its earliest offset (in the consumer's
thread: `seek_wait`) and faust's view of its commit at that start (-1 for 0, which faust's gap check
would take for "none"); then faust's own seek runs. A failure of the first part (mid-rebalance) leaves
faust's seek to run."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.types import TP

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
        self.calls = []
        self._committed_offset = {}

    def assignment(self):
        return set(self.earliest)

    async def earliest_offsets(self, *tps):
        if self.fail:
            raise self.fail
        return {tp: self.earliest[tp] for tp in tps}

    async def seek_wait(self, offsets):
        self.calls.append(("earliest", dict(offsets)))

    async def perform_seek(self):
        self.calls.append(("committed", dict(self._committed_offset)))


async def rebalance(consumer):
    app = SimpleNamespace(on_rebalance_complete=Signal(), consumer=consumer)
    install_rebalance_seek(app)
    await app.on_rebalance_complete.send()
    await app.on_rebalance_complete.send()  # wrapped once
    await consumer.perform_seek()  # what faust's recovery does right after the signal


@pytest.mark.asyncio
async def test_faust_seeks_the_commits_after_every_partition_was_put_at_its_start():
    consumer = Consumer({A: 0, B: 17})
    await rebalance(consumer)
    assert consumer.calls == [("earliest", {A: 0, B: 17}), ("committed", {A: -1, B: 17})]
    await consumer.perform_seek()  # faust's other call (a fetch dropped while the flow stopped)
    assert len(consumer.calls) == 4


@pytest.mark.asyncio
async def test_when_the_start_cannot_be_read_faust_still_seeks():
    consumer = Consumer({A: 0}, fail=ConnectionError("rebalancing"))
    await rebalance(consumer)
    assert consumer.calls == [("committed", {})]


@pytest.mark.asyncio
async def test_nothing_assigned_nothing_to_put():
    consumer = Consumer({})
    await rebalance(consumer)
    assert consumer.calls == [("committed", {})]
