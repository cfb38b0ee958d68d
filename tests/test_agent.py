"""The posting agent through faust's test_context: the adapter hands batches of raw records to the
processor, and the input is acknowledged only after the decision records and then every output
were acknowledged by the broker. Fast, no broker: the real stores (rocksdict) with an in-memory
sink standing in for the producer, whose acknowledgements the test holds back and releases."""
from __future__ import annotations

import asyncio
import json

import pytest

from .cases import example_notification

NID = b"HSBK-20261126-000421"


class Acknowledged:
    """Watches the processor's last step: which input records it acknowledged, in order."""

    def __init__(self, processor):
        self.records = []
        self.changed = asyncio.Condition()
        step = processor.acknowledge

        async def acknowledge(batch, summary, ack):
            await step(batch, summary, ack)
            async with self.changed:
                self.records.extend(batch)
                self.changed.notify_all()

        processor.acknowledge = acknowledge

    async def wait_for(self, n: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.records) >= n)


@pytest.mark.asyncio
async def test_agent_posts_a_notification_and_ignores_its_repeat(agent_app, memory_sink):
    app, settings, processor, _ = agent_app
    acknowledged = Acknowledged(processor)
    raw = json.dumps(example_notification(), ensure_ascii=False).encode()
    async with app.agents["post-orders"].test_context() as ctx:
        first = await ctx.put(raw, key=NID, partition=0, wait=False)
        repeat = await ctx.put(raw, key=NID, partition=0, wait=False)
        await acknowledged.wait_for(2)
    assert [r.offset for r in acknowledged.records] == [first.message.offset, repeat.message.offset]
    assert first.message.acked and repeat.message.acked
    t = settings.topics
    assert [e["entry_id"] for e in memory_sink.values(t.posted_contributions)] == [
        "HSBK-20261126-000421/1", "HSBK-20261126-000421/3"]
    assert len(memory_sink.values(t.order_results)) == 1
    assert len(memory_sink.values(t.decisions)) == 1
    assert memory_sink.values(t.refunds)[0]["amount"] == "25000.00"


@pytest.mark.asyncio
async def test_input_is_acknowledged_only_after_decisions_and_outputs_are(agent_app, memory_sink):
    app, settings, processor, _ = agent_app
    t = settings.topics
    acknowledged = Acknowledged(processor)
    raw = json.dumps(example_notification(), ensure_ascii=False).encode()
    memory_sink.hold()
    async with app.agents["post-orders"].test_context() as ctx:
        event = await ctx.put(raw, key=NID, partition=0, wait=False)
        await memory_sink.wait_for(t.decisions)
        assert [r.topic for r in memory_sink.sent] == [t.decisions], "outputs wait for the decision record"
        assert not event.message.acked
        memory_sink.release(keep_holding=True)  # the broker took the decision record
        await memory_sink.wait_for(t.order_results)
        assert not event.message.acked, "outputs sent but not yet acknowledged: the input stays unacknowledged"
        assert acknowledged.records == []
        memory_sink.release()  # the broker took every output
        await acknowledged.wait_for(1)
    assert event.message.acked
    assert [r.offset for r in acknowledged.records] == [event.message.offset]


@pytest.mark.asyncio
async def test_an_agent_that_cannot_go_on_fails_the_worker_instead_of_idling(agent_app, memory_sink):
    app, settings, processor, runtime = agent_app
    memory_sink.refuse = lambda record: RuntimeError("the producer is gone")  # nothing gets through
    failed = asyncio.Event()
    fail = runtime.lifecycle.fail

    def recording_fail(reason, exc=None):
        fail(reason, exc)
        failed.set()

    runtime.lifecycle.fail = recording_fail
    raw = json.dumps(example_notification(), ensure_ascii=False).encode()
    async with app.agents["post-orders"].test_context() as ctx:
        event = await ctx.put(raw, key=NID, partition=0, wait=False)
        await failed.wait()
    assert not event.message.acked
    ready, reason = runtime.lifecycle.readiness(runtime.ready.is_set())
    assert not ready and reason == "failed: the posting agent died: RuntimeError: the producer is gone"


def test_the_readers_of_postings_output_take_turns_with_posting(agent_app):
    """The accounts feed and the report streams wait for posting's turn, as the reversals' index
    feed does (streams/yielding.py): during a burst posting keeps the event loop."""
    _, _, _, runtime = agent_app
    turn = runtime.posting.turn
    assert runtime.accounts.feed.pace == turn
    # In their own process they need no turn; the pace is for when no process can start.
    streams = [part for part in runtime.reports if type(part).__name__ in ("ReportStreams", "ReportProcess")]
    assert len(streams) == 1 and streams[0].pace == turn


def test_the_registry_load_processes_follow_the_setting(tmp_path):
    from streams.app import build_app
    from streams.settings import Settings, usable_cpus

    base = {"ESEP_DATA_DIR": str(tmp_path), "ESEP_WORKER_ID": "t", "ESEP_BROKER": "kafka://x:1"}
    assert Settings.from_env(base).registry_load_processes == usable_cpus(4) >= 1
    settings = Settings.from_env({**base, "ESEP_REGISTRY_LOAD_PROCESSES": "0"})
    _, runtime = build_app(settings, "127.0.0.1:1")
    assert runtime.replica.load_processes == 0


def test_the_heap_settings_take_effect_on_glibc_and_zero_keeps_its_default(tmp_path):
    from streams import heap
    from streams.settings import Settings

    base = {"ESEP_DATA_DIR": str(tmp_path), "ESEP_WORKER_ID": "t"}
    assert Settings.from_env(base).malloc_arenas == 2
    assert Settings.from_env({**base, "ESEP_MALLOC_ARENAS": "0"}).malloc_arenas == 0
    assert heap.limit_arenas(0) is False  # 0: nothing is changed
    if heap._LIBC is not None:  # Linux with glibc (CI and the Docker image)
        assert heap.limit_arenas(8) is True
    heap.trim()
