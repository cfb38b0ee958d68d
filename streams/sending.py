"""Getting records to the broker: sending a set and waiting for every acknowledgement, and writing
decision records to their changelog before the local store.

What the broker cannot take now (it is down, a leader moves) is retried until it can: ids are
deterministic, so a consumer de-duplicates what a retry sends twice. What it will never take (a
record too large, a value that cannot be encoded) costs only its own group of records: the set is
split in halves until the refused groups are found (`send_isolated`); their input becomes a dead
letter and everything else goes on."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import errors as kafka_errors

from monitoring import metrics
from rules import entries
from rules.posting import OrderDecision, OrderSummary
from rules import json_bytes
from tables.decisions import DecisionRecord, DecisionStore

from .observe import Decided
from .records import InputRecord, OutputRecord, Sink, without_value
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
    out = [OutputRecord(topics.posted_contributions, key.encode(), json_bytes.dumps(entry))
           for key, entry in rendered.posted]
    out += [OutputRecord(topics.deceased_alerts, key.encode(), json_bytes.dumps(alert)) for key, alert in rendered.alerts]
    nid = order.notification_id.encode()
    if rendered.refund is not None:
        out.append(OutputRecord(topics.refunds, nid, json_bytes.dumps(rendered.refund)))
    if rendered.result is not None:
        out.append(OutputRecord(topics.order_results, nid, json_bytes.dumps(rendered.result)))
    return out


# The broker cannot take records now, but will: retried, never a dead letter. aiokafka marks most
# such errors `retriable`; a delivery timeout (the broker is unreachable) it does not.
TRANSIENT = (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaUnavailableError, kafka_errors.KafkaConnectionError)
# Errors that belong to a record itself: its size, its encoding, its content.
RECORD_ERRORS = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError,
                 kafka_errors.RecordTooLargeError, kafka_errors.CorruptRecordException,
                 kafka_errors.InvalidTimestampError, kafka_errors.UnsupportedForMessageFormatError,
                 TypeError, ValueError, OverflowError, UnicodeError)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT) or (isinstance(exc, kafka_errors.KafkaError) and exc.retriable)


async def send_all(sink: Sink, records: list[OutputRecord], stage: str, backoff_s: float = 0.5) -> list:
    """Send every record and await every acknowledgement; transient errors are retried with
    back-off until the broker takes them, any other error is raised."""
    attempt = 0
    while True:
        try:
            futures = [await sink.send(r) for r in records]
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            metrics.output_retries.labels(stage).inc()
            delay = min(30.0, backoff_s * 2 ** min(attempt, 6))
            log.error("sending %d %s records failed (%s); retry %d in %.1f s", len(records), stage, exc, attempt,
                      delay)
            await asyncio.sleep(delay)


async def send_isolated(sink: Sink, groups: Sequence[Sequence[OutputRecord]], stage: str,
                        backoff_s: float = 0.5) -> tuple[list[list | None], dict[int, Exception]]:
    """Send groups of records (one group per input record) and await them. A group the broker
    refuses for good is found by splitting the set in halves and sending each on its own; it is
    returned with its error, and every other group is sent. Returns the acknowledgements of each
    group (None for a refused one) and {group index: error}.

    A refusal is a record's own fault when its error says so (size, encoding) or when other groups
    went through; when nothing went through and the error is of no record, nothing is a record's
    fault and the error is raised (the worker stops rather than dead-letter everything)."""
    acks: list[list | None] = [None] * len(groups)
    refused: dict[int, Exception] = {}

    async def attempt(indexes: list[int]) -> None:
        try:
            metas = await send_all(sink, [r for i in indexes for r in groups[i]], stage, backoff_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if len(indexes) == 1:
                refused[indexes[0]] = exc
                return
            middle = len(indexes) // 2
            await attempt(indexes[:middle])
            await attempt(indexes[middle:])
            return
        position = 0
        for i in indexes:
            acks[i] = metas[position:position + len(groups[i])]
            position += len(groups[i])

    await attempt(list(range(len(groups))))
    if refused:
        went_through = any(acks[i] is not None and groups[i] for i in range(len(groups)))
        unexplained = [exc for exc in refused.values() if not isinstance(exc, RECORD_ERRORS)]
        if unexplained and not went_through:
            raise unexplained[0]
        log.error("%s: the broker refused %d of %d groups of records for good (%s)", stage, len(refused),
                  len(groups), ", ".join(sorted({type(e).__name__ for e in refused.values()})))
    return acks, refused


async def send_dead_letters(sink: Sink, letters: Sequence[OutputRecord], backoff_s: float = 0.5) -> None:
    """Dead letters, acknowledged. One the broker refuses (a value near the size limit grows by a
    third in base64) goes again without its value; if even that is refused, the error is raised:
    the worker cannot go on without losing a record."""
    if not letters:
        return
    _, refused = await send_isolated(sink, [[letter] for letter in letters], "dead-letters", backoff_s)
    if refused:
        bare = [without_value(letters[i], exc) for i, exc in sorted(refused.items())]
        _, still = await send_isolated(sink, [[letter] for letter in bare], "dead-letters", backoff_s)
        if still:
            raise next(iter(still.values()))


def next_offsets_of(metas) -> dict[int, int]:
    """The next offset per partition after acknowledged records (their changelog position)."""
    out: dict[int, int] = {}
    for meta in metas:
        out[meta.partition] = max(out.get(meta.partition, 0), meta.offset + 1)
    return out


async def record_decisions(sink: Sink, store: DecisionStore, topic: str, outcomes: Sequence[Outcome],
                           backoff_s: float = 0.5) -> dict[int, Exception]:
    """Decision records to the changelog (partition = the notification's input partition),
    acknowledged, then into the local store with the changelog offsets they got. Returns the
    records the broker refused for good ({index in `outcomes`: error}): those orders are not decided."""
    if not outcomes:
        return {}
    groups = [[OutputRecord(topic, o.record.notification_id.encode(), o.encoded, o.record.partition)]
              for o in outcomes]
    acks, refused = await send_isolated(sink, groups, "decisions", backoff_s)
    written = [i for i in range(len(outcomes)) if i not in refused]
    store.put([outcomes[i].record for i in written], [outcomes[i].encoded for i in written],
              next_offsets_of(meta for i in written for meta in acks[i]))
    return refused


async def write_changelog(sink: Sink, records: list[OutputRecord], store, stage: str,
                          backoff_s: float = 0.5) -> None:
    """State changes of a keyed ledger: to their compacted changelog first, acknowledged, then into
    the local store (its `apply`) with the changelog offsets they got, so a restore resumes exactly
    after them."""
    metas = await send_all(sink, records, stage, backoff_s)
    store.apply([(r.key.decode(), r.value) for r in records], next_offsets_of(metas))
