"""Partition discovery for the plain (group-less) consumers of the stores.

aiokafka's `partitions_for_topic()` answers None for a topic the client does not follow, even right
after `topics()`: ask the cluster directly instead."""
from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient


class TopicMissing(RuntimeError):
    pass


async def topic_partitions(bootstrap: str, topic: str, wait_s: float = 30.0) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            described = await admin.describe_topics([topic])
            parts = sorted(p["partition"] for d in described for p in d.get("partitions", []))
            if parts:
                return parts
            if asyncio.get_running_loop().time() > deadline:
                raise TopicMissing(f"topic {topic!r} not found: create it with `esep topics create`")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def latest_of_key_partition(bootstrap: str, topic: str, key: bytes, wanted) -> dict[bytes, bytes]:
    """The latest value of every key `wanted(key)` accepts in the partition `key` maps to, read from
    its beginning to its end at the start (a plain consumer, no group); a tombstone forgets a key.
    For the commands that show one person's records of a compacted topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.partitioner import DefaultPartitioner

    partitions = await topic_partitions(bootstrap, topic)
    tp = TopicPartition(topic, DefaultPartitioner()(key, partitions, partitions))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: dict[bytes, bytes | None] = {}
        while await consumer.position(tp) < end:
            for rec in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                if rec.key is not None and wanted(rec.key):
                    latest[rec.key] = rec.value
        return {k: v for k, v in latest.items() if v is not None}
    finally:
        await consumer.stop()
