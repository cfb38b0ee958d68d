"""The posting agent through faust's test_context: the adapter hands batches of raw records to the
processor and acknowledges them only after the outputs were sent. Fast, no broker: the real
stores (rocksdict) with an in-memory sink standing in for the producer."""
from __future__ import annotations

import asyncio
import json

import orjson
import pytest

from streams.app import build_app
from streams.processor import PostingProcessor
from streams.settings import Settings
from tables.decisions import DecisionStore
from tables.registry import RegistryStore, judge_record

from .cases import example_notification, registry_persons


class MemorySink:
    def __init__(self):
        self.sent = []
        self.offsets: dict[int, int] = {}

    async def send(self, record):
        partition = record.partition or 0
        offset = self.offsets.get(partition, 0)
        self.offsets[partition] = offset + 1
        self.sent.append(record)
        future = asyncio.get_running_loop().create_future()
        future.set_result(type("Meta", (), {"partition": partition, "offset": offset})())
        return future


class NoChangelog:
    async def catch_up(self, partitions):
        return 0


@pytest.fixture
def agent_app(tmp_path):
    settings = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path), "ESEP_WORKER_ID": "t", "ESEP_BROKER": "kafka://x:1"})
    app, runtime = build_app(settings, "127.0.0.1:1")
    registry = RegistryStore(tmp_path / "registry")
    puts = {}
    for person in registry_persons():
        iin, value, error = judge_record(person["iin"].encode(), json.dumps(person).encode())
        assert error is None
        puts[iin] = value
    registry.apply(puts, {0: len(puts)})
    sink = MemorySink()
    runtime.processor = PostingProcessor(settings.topics, registry, DecisionStore(tmp_path / "decisions"),
                                         NoChangelog(), sink)
    runtime.ready.set()
    yield app, settings, sink
    registry.close()


@pytest.mark.asyncio
async def test_agent_posts_a_notification_and_ignores_its_repeat(agent_app):
    app, settings, sink = agent_app
    agent = app.agents["post-orders"]
    raw = json.dumps(example_notification(), ensure_ascii=False).encode()
    async with agent.test_context() as ctx:
        await ctx.put(raw, key=b"HSBK-20261126-000421", partition=0)
        await ctx.put(raw, key=b"HSBK-20261126-000421", partition=0)
        for _ in range(100):
            if any(r.topic == settings.topics.order_results for r in sink.sent):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    by_topic = {}
    for r in sink.sent:
        by_topic.setdefault(r.topic, []).append(orjson.loads(r.value))
    assert [e["entry_id"] for e in by_topic[settings.topics.posted_contributions]] == [
        "HSBK-20261126-000421/1", "HSBK-20261126-000421/3"]
    assert len(by_topic[settings.topics.order_results]) == 1
    assert len(by_topic[settings.topics.decisions]) == 1
    assert by_topic[settings.topics.refunds][0]["amount"] == "25000.00"
