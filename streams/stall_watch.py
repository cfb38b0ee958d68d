"""Noticing an agent that stopped without dying: it owns input partitions with records waiting and
has finished no batch for `ESEP_STALL_S`, or its finished records stay uncommitted that long (faust
skipped some and will not commit past them until the next assignment). A part that dies says so
itself (streams/lifecycle.py); this catches the ones that cannot: an await that never completes, a
stream faust stopped feeding, a lock left held. The caller fails the worker with the reason (/ready
503, exit 70): a worker never idles half-alive. Faust-free; the agent's wiring counts what waits."""
from __future__ import annotations

import time
from collections.abc import Callable


class StallWatch:
    """`describe(idle_s, waiting)` words the reason when it fires."""

    def __init__(self, limit_s: float, describe: Callable[[float, int], str],
                 clock: Callable[[], float] = time.monotonic):
        self.limit_s = limit_s  # 0: never
        self.describe = describe
        self.clock = clock
        self.since = clock()

    def progressed(self) -> None:
        """Something moved (a batch finished, a commit), or the count restarts (an assignment)."""
        self.since = self.clock()

    def check(self, waiting: int) -> str | None:
        """`waiting`: what should move and did not (records past what the agent finished, or past
        the commit). None while it moves (nothing waiting counts as moving), else why the worker
        must stop."""
        now = self.clock()
        if self.limit_s <= 0 or waiting <= 0:
            self.since = now
            return None
        idle = now - self.since
        if idle < self.limit_s:
            return None
        return self.describe(idle, waiting)


def check_interval(limit_s: float) -> float:
    """How often to look: a tenth of the limit, between 1 s and 30 s."""
    return min(30.0, max(1.0, limit_s / 10.0))


__all__ = ["StallWatch", "check_interval"]
