"""The stall watch (streams/stall_watch.py) and its wiring in the recipients agent: records waiting
on the owned partitions and no batch finished for ESEP_STALL_S, or finished records left
uncommitted that long, fail the worker (/ready says why, the lifecycle stops it); idle with nothing
waiting, starting, rebalancing or broker trouble never do."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

from streams.lifecycle import Lifecycle
from streams.recipients_agent import RecipientsRuntime
from streams.settings import Settings
from streams.stall_watch import StallWatch, check_interval


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def describe(idle, waiting):
    return f"toy agent: nothing for {idle:.0f} s, {waiting} waiting"


def test_waiting_and_no_batch_for_the_limit_is_a_stall():
    clock = Clock()
    watch = StallWatch(60, describe, clock)
    assert watch.check(5) is None
    clock.now += 59
    assert watch.check(5) is None
    clock.now += 1
    assert watch.check(5) == "toy agent: nothing for 60 s, 5 waiting"


def test_a_batch_or_nothing_waiting_restarts_the_count():
    clock = Clock()
    watch = StallWatch(60, describe, clock)
    clock.now += 50
    watch.progressed()
    clock.now += 50
    assert watch.check(3) is None
    clock.now += 50
    assert watch.check(0) is None  # idle, nothing to do: keeping up
    clock.now += 59
    assert watch.check(3) is None


def test_a_limit_of_zero_never_fires():
    clock = Clock()
    watch = StallWatch(0, describe, clock)
    clock.now += 10**6
    assert watch.check(10) is None


def test_check_interval_is_a_tenth_within_bounds():
    assert check_interval(300) == 30
    assert check_interval(60) == 6
    assert check_interval(3) == 1
    assert check_interval(3600) == 30


# ---- the recipients agent's wiring, on fakes of faust's consumer -----------------------------------------


class FakeConsumer:
    def __init__(self, tps, ends, committed=None, positions=None):
        self.tps = set(tps)
        self.ends = ends
        self._committed_offset = committed or {}
        self.positions = positions or {}
        self.fail = None

    def assignment(self):
        return self.tps

    async def highwaters(self, *tps):
        if self.fail:
            raise self.fail
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp):
        return self.positions.get(tp)


def make_runtime(tmp_path, consumer, clock, next_offsets=None, stall_s="60"):
    settings = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path), "ESEP_WORKER_ID": "t", "ESEP_STALL_S": stall_s,
                                  "ESEP_COMMIT_INTERVAL_S": "30"})
    app = SimpleNamespace(consumer=consumer, rebalancing=False)
    runtime = SimpleNamespace(ready=asyncio.Event(), lifecycle=Lifecycle())
    runtime.ready.set()
    rt = RecipientsRuntime(app, settings, "127.0.0.1:1", runtime)
    for watch in (rt.watch, rt.commit_watch):
        watch.clock = clock
        watch.progressed()
    rt.processor = SimpleNamespace(next_offsets=dict(next_offsets or {}))
    return rt, settings


def topics(settings):
    t = settings.topics
    return TP(t.payment_decisions, 0), TP(t.payment_transfers, 0), TP(t.credit_notifications, 0)


@pytest.mark.asyncio
async def test_records_waiting_and_no_batch_fail_the_worker_with_the_reason(tmp_path):
    clock = Clock()
    probe = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    dec, tra, credit = topics(probe)
    consumer = FakeConsumer({dec, tra, credit}, {dec: 10, tra: 30, credit: 999})
    rt, _ = make_runtime(tmp_path, consumer, clock, {(dec.topic, 0): 10, (tra.topic, 0): 25})
    # The posting agent's input is not the recipients agent's.
    assert sorted(await rt.input_offsets()) == [(10, 10, None), (30, 25, None)]
    await rt.check_stall()
    clock.now += 61
    await rt.check_stall()
    lifecycle = rt.runtime.lifecycle
    assert lifecycle.failure is not None and "recipients agent finished no batch" in lifecycle.failure
    ok, reason = lifecycle.readiness(True)
    assert not ok and reason.startswith("failed: the recipients agent")


@pytest.mark.asyncio
async def test_caught_up_it_may_idle_forever(tmp_path):
    clock = Clock()
    probe = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    dec, tra, _ = topics(probe)
    consumer = FakeConsumer({dec, tra}, {dec: 10, tra: 30})
    rt, _ = make_runtime(tmp_path, consumer, clock, {(dec.topic, 0): 10, (tra.topic, 0): 30})
    for _ in range(5):
        clock.now += 1000
        await rt.check_stall()
    assert rt.runtime.lifecycle.failure is None


@pytest.mark.asyncio
async def test_no_batch_yet_counts_from_the_committed_offset_then_the_position(tmp_path):
    clock = Clock()
    probe = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    dec, tra, _ = topics(probe)
    consumer = FakeConsumer({dec, tra}, {dec: 10, tra: 30}, committed={dec: 4}, positions={tra: 30})
    rt, _ = make_runtime(tmp_path, consumer, clock)
    rt.processor = None  # its start never finished: the same rule holds
    assert sorted(await rt.input_offsets()) == [(10, None, 4), (30, 30, None)]
    await rt.check_stall()
    clock.now += 61
    await rt.check_stall()
    assert "6 input records waited" in rt.runtime.lifecycle.failure


@pytest.mark.asyncio
async def test_starting_rebalancing_or_without_the_broker_it_does_not_fire(tmp_path):
    clock = Clock()
    probe = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    dec, tra, _ = topics(probe)
    consumer = FakeConsumer({dec, tra}, {dec: 10, tra: 30})
    rt, _ = make_runtime(tmp_path, consumer, clock, {(dec.topic, 0): 0, (tra.topic, 0): 0})
    rt.runtime.ready.clear()
    clock.now += 1000
    await rt.check_stall()
    rt.runtime.ready.set()
    rt.app.rebalancing = True
    clock.now += 1000
    await rt.check_stall()
    rt.app.rebalancing = False
    consumer.fail = ConnectionError("broker down")
    clock.now += 1000
    await rt.check_stall()
    assert rt.runtime.lifecycle.failure is None
    consumer.fail = None
    await rt.check_stall()  # the count restarted when rebalancing ended: not yet
    assert rt.runtime.lifecycle.failure is None


@pytest.mark.asyncio
async def test_zero_switches_it_off(tmp_path):
    clock = Clock()
    probe = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    dec, tra, _ = topics(probe)
    consumer = FakeConsumer({dec, tra}, {dec: 10, tra: 30})
    rt, settings = make_runtime(tmp_path, consumer, clock, {}, stall_s="0")
    assert settings.stall_s == 0
    clock.now += 10**6
    await rt.check_stall()
    assert rt.runtime.lifecycle.failure is None


@pytest.mark.asyncio
async def test_finished_records_left_uncommitted_fail_it_after_three_commit_intervals(tmp_path):
    """Faust skipped a record: the agent goes on past it, but the commit stays before it."""
    clock = Clock()
    probe = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    dec, tra, _ = topics(probe)
    consumer = FakeConsumer({dec, tra}, {dec: 10, tra: 30}, committed={dec: 4, tra: 30})
    rt, _ = make_runtime(tmp_path, consumer, clock, {(dec.topic, 0): 10, (tra.topic, 0): 30})
    await rt.check_stall()
    clock.now += 80  # past ESEP_STALL_S, not past three commit intervals of 30 s
    await rt.check_stall()
    assert rt.runtime.lifecycle.failure is None
    consumer._committed_offset[dec] = 5  # it moved: the count restarts
    await rt.check_stall()
    clock.now += 89
    await rt.check_stall()
    assert rt.runtime.lifecycle.failure is None
    clock.now += 2
    await rt.check_stall()
    assert "5 input records the recipients agent finished stayed uncommitted for 91 s" in rt.runtime.lifecycle.failure


@pytest.mark.asyncio
async def test_committed_up_to_what_it_finished_it_may_idle_forever(tmp_path):
    clock = Clock()
    probe = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    dec, tra, _ = topics(probe)
    consumer = FakeConsumer({dec, tra}, {dec: 10, tra: 30}, committed={dec: 10, tra: 30})
    rt, _ = make_runtime(tmp_path, consumer, clock, {(dec.topic, 0): 10, (tra.topic, 0): 30})
    for _ in range(5):
        clock.now += 1000
        await rt.check_stall()
    assert rt.runtime.lifecycle.failure is None
