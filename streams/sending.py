"""Sending a set of records and waiting for every acknowledgement, retrying until the broker takes
them all (ids are deterministic, so a consumer de-duplicates what a retry sends twice)."""
from __future__ import annotations

import asyncio
import logging

from monitoring import metrics

from .records import OutputRecord, Sink

log = logging.getLogger("esep.sending")


async def send_all(sink: Sink, records: list[OutputRecord], stage: str, backoff_s: float = 0.5) -> list:
    attempt = 0
    while True:
        try:
            futures = [await sink.send(r) for r in records]
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt += 1
            metrics.output_retries.labels(stage).inc()
            delay = min(30.0, backoff_s * 2 ** min(attempt, 6))
            log.error("sending %d %s records failed (%s); retry %d in %.1f s", len(records), stage, exc, attempt,
                      delay)
            await asyncio.sleep(delay)


async def write_changelog(sink: Sink, records: list[OutputRecord], store, stage: str,
                          backoff_s: float = 0.5) -> None:
    """State changes: to their compacted changelog first, acknowledged, then into the local store
    with the changelog offsets they got (so a restore resumes exactly after them)."""
    metas = await send_all(sink, records, stage, backoff_s)
    next_offsets: dict[int, int] = {}
    for meta in metas:
        next_offsets[meta.partition] = max(next_offsets.get(meta.partition, 0), meta.offset + 1)
    store.apply([(r.key.decode(), r.value) for r in records], next_offsets)
