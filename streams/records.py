"""What the posting path reads and writes, independent of faust: input records and the sink."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Awaitable, Protocol


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
