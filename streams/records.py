"""What the posting path reads and writes, independent of faust: input records, output records,
dead letters and the sink."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Protocol

import orjson

from rules.codes import SCHEMA_VERSION
from rules.entries import stamp
from rules import json_bytes


@dataclass(frozen=True, slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


class Sink(Protocol):
    """Schedules a record for sending; the returned awaitable resolves when the broker acknowledged it."""

    async def send(self, record: OutputRecord) -> Awaitable: ...


def b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def dead_letter(source: InputRecord, error_kind: str, error: str, at: datetime, topic: str) -> OutputRecord:
    """The dead letter of `source` (contract: errors.dead-letters), keyed as received."""
    value = {
        "schema_version": SCHEMA_VERSION,
        "source_topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "key": b64(source.key),
        "value": b64(source.value),
        "error": error,
        "error_kind": error_kind,
        "received_at": stamp(at),
    }
    return OutputRecord(topic, source.key, json_bytes.dumps(value))


def without_value(letter: OutputRecord, cause: BaseException) -> OutputRecord:
    """A dead letter the broker refused (a value near the size limit grows by a third in base64),
    again without the value: its source topic, partition and offset still lead to it."""
    value = orjson.loads(letter.value)
    value["value"] = None
    value["error"] += f" (value omitted from this dead letter: {type(cause).__name__}: {cause})"
    return OutputRecord(letter.topic, letter.key, json_bytes.dumps(value))
