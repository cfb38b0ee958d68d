"""A keyed state store backed by a compacted changelog: key -> state bytes, the changelog's next
offset per partition, and derived indexes kept in the same write batch.

It implements `tables.changelog.ChangelogStore`, so a worker that is assigned a partition reads the
changelog from the store's offset to the end (`ChangelogReader.catch_up`) and the state follows its
partition; `streams.sending.write_changelog` writes the changelog first, awaits the broker, then
applies here with the offsets the records got. A null value (a tombstone) deletes the key.

Indexes are derived from each value as it is applied (locally, never on the changelog), so that a
restore rebuilds them: `index(key, value)` returns the index keys (bytes, under their own prefix)
that the value wants; on every apply the old value's index keys are removed and the new ones put.
The recipients ledger indexes due times (`t/<epoch>/<key>`) and pending emissions (`e/<key>`).

Aggregates are sums over the stored values, kept the same way: `aggregate(key, value)` gives named
integers, and every apply adds new - old to their totals (`a/<name>`). A restore replays the
changelog through the same apply, so a total always equals the sum over the values in the store
(e.g. the outstanding overpayments of a partition, for a gauge, without a scan)."""
from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from .rocks import new_batch, open_store, put_offset, read_offsets, scan_prefix

STATE_PREFIX = b"k/"
INDEX_PREFIX = b"x/"
AGGREGATE_PREFIX = b"a/"

Indexer = Callable[[str, bytes], list[bytes]]
Aggregator = Callable[[str, bytes], dict[str, int]]


def _no_index(key: str, value: bytes) -> list[bytes]:
    return []


def _no_aggregate(key: str, value: bytes) -> dict[str, int]:
    return {}


class KeyedStore:
    def __init__(self, path: Path, index: Indexer | None = None, aggregate: Aggregator | None = None):
        self.db = open_store(path)
        self.index = index or _no_index
        self.aggregate = aggregate or _no_aggregate

    # ---- reads --------------------------------------------------------------------------------------

    def get_many(self, keys: list[str]) -> dict[str, bytes | None]:
        """One multi-get for the keys of a batch."""
        if not keys:
            return {}
        values = self.db.get([STATE_PREFIX + k.encode() for k in keys])
        return dict(zip(keys, values))

    def get(self, key: str) -> bytes | None:
        return self.db.get(STATE_PREFIX + key.encode())

    def scan(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """(key, value) of every state key starting with `prefix`, in key order."""
        start = STATE_PREFIX + prefix.encode()
        for k, v in self._scan(start):
            yield k[len(STATE_PREFIX):].decode(), v

    def index_scan(self, prefix: bytes, upto: bytes | None = None) -> Iterator[bytes]:
        """Index keys (without INDEX_PREFIX) starting with `prefix`, below `upto` when given."""
        start = INDEX_PREFIX + prefix
        stop = INDEX_PREFIX + upto if upto is not None else None
        for k, _ in self._scan(start):
            if stop is not None and k >= stop:
                return
            yield k[len(INDEX_PREFIX):]

    def aggregates(self, prefix: str = "") -> dict[str, int]:
        """Totals whose name starts with `prefix`."""
        start = AGGREGATE_PREFIX + prefix.encode()
        return {k[len(AGGREGATE_PREFIX):].decode(): struct.unpack(">q", v)[0] for k, v in self._scan(start)}

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return scan_prefix(self.db, prefix)

    # ---- the ChangelogStore protocol ----------------------------------------------------------------

    def next_offset(self, partition: int) -> int | None:
        return read_offsets(self.db, [partition]).get(partition)

    def apply(self, entries: list[tuple[str, bytes | None]], next_offsets: dict[int, int]) -> None:
        """Values (None deletes) and the changelog's next offsets, in one write batch: the store
        and its offsets never disagree after a crash. A key twice in `entries`: the last wins."""
        batch = new_batch()
        last: dict[str, bytes | None] = {}
        for key, value in entries:
            last[key] = value
        keys = list(last)
        old_values = self.db.get([STATE_PREFIX + k.encode() for k in keys]) if keys else []
        deltas: Counter = Counter()
        for key, old in zip(keys, old_values):
            new = last[key]
            if old is not None:
                deltas.subtract(self.aggregate(key, old))
            if new is not None:
                deltas.update(self.aggregate(key, new))
            old_index = set(self.index(key, old)) if old is not None else set()
            new_index = set(self.index(key, new)) if new is not None else set()
            for ik in old_index - new_index:
                batch.delete(INDEX_PREFIX + ik)
            for ik in new_index - old_index:
                batch.put(INDEX_PREFIX + ik, b"")
            if new is None:
                batch.delete(STATE_PREFIX + key.encode())
            else:
                batch.put(STATE_PREFIX + key.encode(), new)
        changed = [name for name, d in deltas.items() if d]
        if changed:
            current = self.db.get([AGGREGATE_PREFIX + n.encode() for n in changed])
            for name, raw in zip(changed, current):
                total = (struct.unpack(">q", raw)[0] if raw is not None else 0) + deltas[name]
                if total:
                    batch.put(AGGREGATE_PREFIX + name.encode(), struct.pack(">q", total))
                else:  # a total back at zero is absent, like one never moved
                    batch.delete(AGGREGATE_PREFIX + name.encode())
        for partition, offset in next_offsets.items():
            put_offset(batch, partition, offset)
        self.db.write(batch)

    def close(self) -> None:
        self.db.close()
