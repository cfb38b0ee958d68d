"""A keyed state store backed by a compacted changelog: key -> state bytes, the changelog's next
offset per partition, and derived indexes kept in the same write batch.

It implements `tables.changelog.ChangelogStore`, so a worker that is assigned a partition reads the
changelog from the store's offset to the end (`ChangelogReader.catch_up`) and the state follows its
partition; `streams.sending.write_changelog` writes the changelog first, awaits the broker, then
applies here with the offsets the records got. A null value (a tombstone) deletes the key.

Indexes are derived from each value as it is applied (locally, never on the changelog), so that a
restore rebuilds them: `index(key, value)` returns the index keys (bytes, under their own prefix)
that the value wants; on every apply the old value's index keys are removed and the new ones put.
The recipients ledger indexes due times (`t/<epoch>/<key>`) and pending emissions (`e/<key>`)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from .rocks import new_batch, open_store, put_offset, read_offsets

STATE_PREFIX = b"k/"
INDEX_PREFIX = b"x/"

Indexer = Callable[[str, bytes], list[bytes]]


def _no_index(key: str, value: bytes) -> list[bytes]:
    return []


class KeyedStore:
    def __init__(self, path: Path, index: Indexer | None = None):
        self.db = open_store(path)
        self.index = index or _no_index

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

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self.db.iter()
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, it.value()
            it.next()

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
        for key, old in zip(keys, old_values):
            new = last[key]
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
        for partition, offset in next_offsets.items():
            put_offset(batch, partition, offset)
        self.db.write(batch)

    def close(self) -> None:
        self.db.close()
