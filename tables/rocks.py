"""Opening rocksdict stores and keeping Kafka offsets in them.

Every store that mirrors a topic writes each record and the partition's next offset in one write
batch, so that after a crash the store and its offsets never disagree."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from rocksdict import Rdict, WriteBatch

from .budget import StoreBudget, shared_budget

OFFSET_PREFIX = b"\x00offset/"


class StoreError(RuntimeError):
    pass


def open_store(path: Path, budget: StoreBudget | None = None) -> Rdict:
    """Open (or create) the store at `path` within `budget`, by default the process's shared one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return Rdict(str(path), (budget or shared_budget()).options())
    except Exception as exc:  # rocksdict raises a bare Exception
        if "lock" in str(exc).lower():
            raise StoreError(
                f"the store {path} is open in another process: give each worker its own "
                f"ESEP_WORKER_ID (or ESEP_DATA_DIR)"
            ) from exc
        raise StoreError(f"cannot open the store {path}: {exc}") from exc


def offset_key(partition: int) -> bytes:
    return OFFSET_PREFIX + str(partition).encode()


def put_offset(batch: WriteBatch, partition: int, next_offset: int) -> None:
    batch.put(offset_key(partition), struct.pack(">q", next_offset))


def read_offsets(db: Rdict, partitions: list[int]) -> dict[int, int]:
    """Next offset to read per partition, for the partitions the store has seen."""
    values = db.get([offset_key(p) for p in partitions])
    return {p: struct.unpack(">q", v)[0] for p, v in zip(partitions, values) if v is not None}


def scan_prefix(db: Rdict, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every key of `db` starting with `prefix`, in key order."""
    it = db.iter()
    it.seek(prefix)
    while it.valid():
        key = it.key()
        if not key.startswith(prefix):
            break
        yield key, it.value()
        it.next()


def new_batch() -> WriteBatch:
    return WriteBatch(raw_mode=True)
