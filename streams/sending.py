"""Getting records to the broker: sending a set and waiting for every acknowledgement (retrying
until the broker takes them all: ids are deterministic, so a consumer de-duplicates what a retry
sends twice), and writing decision records to their changelog before the local store."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from monitoring import metrics
from rules import entries
from rules.posting import OrderDecision, OrderSummary
from tables.decisions import DecisionRecord, DecisionStore

from .observe import Decided
from .records import InputRecord, OutputRecord, Sink
from .settings import Topics

log = logging.getLogger("esep.sending")


@dataclass(slots=True)
class Outcome:
    """One order on its way out: its decision record (`encoded` when it must be written) and its
    outputs, encoded and ready to send; `decided` says what was decided now (for the metrics)."""

    source: InputRecord
    record: DecisionRecord
    encoded: bytes | None
    outputs: list[OutputRecord]
    decided: Decided | None


def render_outputs(order, decision: OrderDecision, summary: OrderSummary, at: str, topics: Topics,
                   lines=None) -> list[OutputRecord]:
    """A decision's output records (rules/entries.py), encoded, on their topics and keys."""
    rendered = entries.render(order, decision, summary, at, lines)
    out = [OutputRecord(topics.posted_contributions, key.encode(), orjson.dumps(entry))
           for key, entry in rendered.posted]
    out += [OutputRecord(topics.deceased_alerts, key.encode(), orjson.dumps(alert)) for key, alert in rendered.alerts]
    nid = order.notification_id.encode()
    if rendered.refund is not None:
        out.append(OutputRecord(topics.refunds, nid, orjson.dumps(rendered.refund)))
    if rendered.result is not None:
        out.append(OutputRecord(topics.order_results, nid, orjson.dumps(rendered.result)))
    return out


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


async def write_changelog(sink: Sink, records: list[OutputRecord], stage: str,
                          backoff_s: float = 0.5) -> dict[int, int]:
    """State changes to their compacted changelog, acknowledged. Returns the next changelog offset
    per partition, which the caller writes into its local store with the changes (so that a restore
    resumes exactly after them)."""
    metas = await send_all(sink, records, stage, backoff_s)
    if len(metas) != len(records):
        raise RuntimeError(f"{stage}: {len(metas)} acknowledgements for {len(records)} records")
    next_offsets: dict[int, int] = {}
    for meta in metas:
        next_offsets[meta.partition] = max(next_offsets.get(meta.partition, 0), meta.offset + 1)
    return next_offsets


async def record_decisions(sink: Sink, store: DecisionStore, topic: str, outcomes: Sequence[Outcome],
                           backoff_s: float = 0.5) -> None:
    """Decision records to the changelog (partition = the notification's input partition),
    acknowledged, then into the local store with the changelog offsets they got."""
    if not outcomes:
        return
    out = [OutputRecord(topic, o.record.notification_id.encode(), o.encoded, o.record.partition) for o in outcomes]
    next_offsets = await write_changelog(sink, out, "decisions", backoff_s)
    store.put([o.record for o in outcomes], [o.encoded for o in outcomes], next_offsets)
