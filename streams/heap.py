"""The worker's heap under glibc: fewer malloc arenas, and freed memory handed back to the system.

Measured at a first start with 5,000,000 persons (esep bench): the worker's RSS climbed to 720 MiB
while the registry-change publisher recorded first versions, with every store inside its 96 MiB
budget. glibc gives each thread that allocates (RocksDB's flush and compaction threads, the faust
consumer thread, the executor threads) an arena of its own, up to eight per core, and keeps what
was freed in each for reuse. Two arenas, and a periodic `malloc_trim`, keep RSS near what is in use.
Elsewhere than glibc both calls are skipped."""
from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("esep.worker")

M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def limit_arenas(arenas: int) -> bool:
    """At start, before the threads: at most `arenas` malloc arenas (0: glibc's default)."""
    if _LIBC is None or arenas <= 0:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, arenas))


def trim() -> None:
    """Return freed heap memory to the system (a few ms at a few hundred MiB)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
