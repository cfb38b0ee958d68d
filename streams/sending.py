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
