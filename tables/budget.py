"""One memory budget for all the rocksdict stores of a worker.

RocksDB's defaults give every store its own 8 MiB block cache, 64 MiB memtables (two of them) and
index and filter blocks held outside any cache, so a worker's memory grew with its registry. Here
every store of the process shares ONE block cache (data, index and filter blocks, so reads of a
20-million-person registry stay inside it) and ONE write-buffer manager (memtables of all stores
together): RocksDB's memory is about `cache_mb + write_buffer_mb` whatever the data size, and
the data itself stays on disk."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from rocksdict import BlockBasedOptions, Cache, DBCompressionType, Options, WriteBufferManager

DEFAULT_CACHE_MB = 64
DEFAULT_WRITE_BUFFER_MB = 32
MIN_WRITE_BUFFER_MB = 4  # below this a memtable flushes every few thousand records
MAX_OPEN_FILES = 256  # table files open at once; a 20M-person registry has about 30
MiB = 1024 * 1024


@dataclass(eq=False)
class StoreBudget:
    """The shared cache and write-buffer manager; pass the same instance to every store."""

    cache_mb: int = DEFAULT_CACHE_MB
    write_buffer_mb: int = DEFAULT_WRITE_BUFFER_MB
    cache: Cache = field(init=False, repr=False)
    write_buffers: WriteBufferManager = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cache_mb < 1:
            raise ValueError(f"the store cache must be at least 1 MiB, not {self.cache_mb}")
        if self.write_buffer_mb < MIN_WRITE_BUFFER_MB:
            raise ValueError(f"the store write buffer must be at least {MIN_WRITE_BUFFER_MB} MiB, "
                             f"not {self.write_buffer_mb}")
        # RocksDB requires both to outlive every store opened with them: the budget keeps them.
        self.cache = Cache(self.cache_mb * MiB)
        # allow_stall=False: over budget, RocksDB flushes the largest memtable early instead of
        # blocking writers (a stalled write would block the event loop).
        self.write_buffers = WriteBufferManager(self.write_buffer_mb * MiB, False)

    @property
    def memtable_bytes(self) -> int:
        """One store's memtable size: half the budget, so one memtable can flush while the next
        fills without exceeding the budget; the manager flushes earlier when stores together exceed it."""
        return self.write_buffer_mb * MiB // 2

    def options(self) -> Options:
        """Options for one store, bound to this budget."""
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        table = BlockBasedOptions()
        table.set_block_cache(self.cache)
        # Index and filter blocks in the shared cache, not on the heap per open file: otherwise
        # they grow with the data (about 1.5 MiB per million keys for the filters alone).
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        # Most registry look-ups of a payment order hit; the filter makes misses (unknown IINs,
        # new notification ids) cost no disk read.
        table.set_bloom_filter(10, False)
        opts.set_block_based_table_factory(table)
        opts.set_write_buffer_manager(self.write_buffers)
        opts.set_write_buffer_size(self.memtable_bytes)
        opts.set_max_write_buffer_number(2)
        opts.set_compression_type(DBCompressionType.lz4())
        opts.set_max_open_files(MAX_OPEN_FILES)
        # RocksDB's own LOG files otherwise pile up in the store's folder, one per open.
        opts.set_keep_log_file_num(2)
        opts.set_max_log_file_size(4 * MiB)
        return opts

    def usage(self) -> dict[str, int]:
        """Bytes in use now: the block cache and the memtables of all stores."""
        return {"cache": int(self.cache.get_usage()), "write_buffers": int(self.write_buffers.get_usage())}


_lock = threading.Lock()
_shared: StoreBudget | None = None


def shared_budget() -> StoreBudget:
    """The process's budget: the one installed by `use_budget`, or one of the default sizes."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = StoreBudget()
        return _shared


def use_budget(budget: StoreBudget) -> StoreBudget:
    """Make `budget` the process's budget for stores opened from now on (the worker installs one
    from its settings before it opens any store). Stores already open keep the budget they had."""
    global _shared
    with _lock:
        _shared = budget
    return budget
