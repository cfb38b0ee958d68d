"""The report streams' state: one rocksdict of changelog keys -> bytes, backed by the compacted
topic `esep.report-changelog` (partition p holds the state of input partition p), so that a
partition's month aggregates follow it to whichever worker is assigned it.

Keys (`<p>` the input partition, `<stream>` persons | orders | payers):
    <p>/<stream>/c                   covers: {topic: next offset} of the partition's inputs
    <p>/<stream>/m/<month>           the month's counters and distinct counts (JSON)
    <p>/<stream>/s/<month>|<src>|<id> an id already counted (value b"1")
    <p>/<stream>/i/<month>/<set>/<v> a member of a distinct set (participants, payers)
    <p>/persons/t/<iin>/<type>       a recipient's timeline for the month-end figures (JSON)
    <p>/persons/e                    the partition's month-end diffs by month (JSON)
On the changelog the ids and members a batch added travel packed in one record,
`<p>/<stream>/a/<unique>` -> JSON list of key suffixes, which `apply` unpacks into the keys above
(one Kafka record per batch instead of one or two per posted line); the timelines a batch changed
likewise, `<p>/<stream>/v/<unique>` -> JSON {key suffix: value}.
Sets and seen ids live on disk, not in memory: a month of 8 million participants costs the
process nothing and the store a few bytes a key (prefix-compressed).

Every change reaches the changelog first (in the batch's Kafka transaction), then this store with
the changelog's next offsets in one write batch: store and offsets never disagree after a crash."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from rules import json_bytes

from .rocks import new_batch, open_store, put_offset, read_offsets

STATE_PREFIX = b"r/"
PRESENT = b"1"  # a compacted topic needs a non-empty value; the changelog reader skips empty ones
ADDED = "a/"
VALUES = "v/"


class ReportStore:
    def __init__(self, path: Path):
        self.db = open_store(path)

    def get(self, key: str) -> bytes | None:
        return self.db.get(STATE_PREFIX + key.encode())

    def has(self, key: str) -> bool:
        return self.db.get(STATE_PREFIX + key.encode()) is not None

    def present(self, keys: list[str]) -> dict[str, bool]:
        """Which of `keys` the store holds: one multi-get."""
        if not keys:
            return {}
        values = self.db.get([STATE_PREFIX + k.encode() for k in keys])
        return {k: v is not None for k, v in zip(keys, values)}

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of `keys` (None: absent), in order: one multi-get."""
        if not keys:
            return []
        return list(self.db.get([STATE_PREFIX + k.encode() for k in keys]))

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """(key, value) of every key starting with `prefix`, in key order."""
        start = STATE_PREFIX + prefix.encode()
        it = self.db.iter()
        it.seek(start)
        while it.valid():
            key = it.key()
            if not key.startswith(start):
                break
            yield key[len(STATE_PREFIX):].decode(), it.value()
            it.next()

    # ---- the ChangelogStore protocol (tables/changelog.py) -------------------------------------------

    def next_offset(self, partition: int) -> int | None:
        return read_offsets(self.db, [partition]).get(partition)

    def apply(self, entries: list[tuple[str, bytes | None]], next_offsets: dict[int, int]) -> None:
        batch = new_batch()
        for key, value in entries:
            p, stream, rest = key.split("/", 2)
            if rest.startswith(ADDED) and value is not None:
                base = f"{p}/{stream}/"
                for suffix in orjson.loads(value):
                    batch.put(STATE_PREFIX + (base + suffix).encode(), PRESENT)
                continue
            if rest.startswith(VALUES) and value is not None:
                base = f"{p}/{stream}/"
                for suffix, item in orjson.loads(value).items():
                    batch.put(STATE_PREFIX + (base + suffix).encode(), json_bytes.dumps(item))
                continue
            if value is None:
                batch.delete(STATE_PREFIX + key.encode())
            else:
                batch.put(STATE_PREFIX + key.encode(), value)
        for partition, offset in next_offsets.items():
            put_offset(batch, partition, offset)
        self.db.write(batch)

    def close(self) -> None:
        self.db.close()
