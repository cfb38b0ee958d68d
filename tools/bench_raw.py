"""The raw ceiling of `esep bench`: the trivial one-in, one-out aiokafka loop.

No consumer group: every partition of the input topic is assigned by hand and read from the
beginning in `getmany` batches; each message is decoded and encoded with orjson and sent with
`producer.send` (one future per message); the futures are awaited once per batch. The producer is
configured like the worker's (acks=all, linger 5 ms, 256 KiB batches), so the comparison is fair.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


@dataclass
class RawResult:
    messages: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


async def raw_loop(bootstrap: str, in_topic: str, partitions: list[int], out_topic: str, expected: int,
                   progress: Callable[[int, float], None] | None = None, timeout_s: float = 300.0,
                   max_records: int = 2000) -> RawResult:
    """Consume `expected` messages of `in_topic`, produce one output each; time from the first
    batch received to the last acknowledgement."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(in_topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = 0
        started: float | None = None
        last_report = time.monotonic()
        give_up = time.monotonic() + timeout_s
        loads, dumps, send = orjson.loads, orjson.dumps, producer.send
        while done < expected:
            if time.monotonic() > give_up:
                raise TimeoutError(f"raw loop: {done} of {expected} messages after {timeout_s:.0f} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            if not batches:
                continue
            if started is None:
                started = time.monotonic()
            futures = []
            for records in batches.values():
                for rec in records:
                    line = loads(rec.value)
                    line["posted"] = True
                    futures.append(await send(out_topic, dumps(line), key=rec.key))
            await asyncio.gather(*futures)
            done += len(futures)
            now = time.monotonic()
            if progress is not None and now - last_report >= 2.0:
                progress(done, now - started)
                last_report = now
        return RawResult(done, time.monotonic() - started)
    finally:
        await producer.stop()
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.bench_raw`: run the loop `--passes` times over the same input (each pass
    re-reads it from the beginning) in a process of its own, as the workers run; one JSON line per
    pass on stdout: {"messages": n, "seconds": s, "per_s": r}."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m tools.bench_raw")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--in-topic", required=True)
    p.add_argument("--out-topic", required=True)
    p.add_argument("--partitions", required=True, help="comma-separated partition numbers of the input topic")
    p.add_argument("--expected", type=int, required=True)
    p.add_argument("--passes", type=int, default=1)
    args = p.parse_args(argv)
    partitions = [int(x) for x in args.partitions.split(",")]

    async def run() -> None:
        for _ in range(args.passes):
            result = await raw_loop(args.bootstrap, args.in_topic, partitions, args.out_topic, args.expected)
            print(json.dumps({"messages": result.messages, "seconds": result.seconds, "per_s": result.per_s}),
                  flush=True)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
