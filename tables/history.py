"""Person histories: every recorded version of a person, kept per IIN in rocksdict and backed by
the compacted topic `esep.registry-history` (co-partitioned with `registry.persons`), so that the
history follows its registry partition to whichever worker publishes that partition's changes."""
from __future__ import annotations

from pathlib import Path

import orjson

from rules import json_bytes

from .budget import StoreBudget
from .rocks import new_batch, open_store, put_offset, read_offsets

HISTORY_PREFIX = b"y/"


def decode_history(raw: bytes | None) -> list[dict]:
    return [] if raw is None else orjson.loads(raw)["versions"]


def encode_history(iin: str, versions: list[dict]) -> bytes:
    return json_bytes.dumps({"schema_version": 1, "iin": iin, "versions": versions})


class HistoryStore:
    def __init__(self, path: Path, budget: StoreBudget | None = None):
        self.db = open_store(path, budget)

    def get_many(self, iins: list[str]) -> dict[str, list[dict]]:
        if not iins:
            return {}
        values = self.db.get([HISTORY_PREFIX + i.encode() for i in iins])
        return {i: decode_history(v) for i, v in zip(iins, values)}

    def next_offset(self, partition: int) -> int | None:
        return read_offsets(self.db, [partition]).get(partition)

    def apply(self, entries: list[tuple[str, bytes]], next_offsets: dict[int, int]) -> None:
        batch = new_batch()
        for iin, raw in entries:
            batch.put(HISTORY_PREFIX + iin.encode(), raw)
        for partition, offset in next_offsets.items():
            put_offset(batch, partition, offset)
        self.db.write(batch)

    def close(self) -> None:
        self.db.close()
