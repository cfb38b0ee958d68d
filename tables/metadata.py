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
