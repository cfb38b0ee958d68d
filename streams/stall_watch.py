"""Noticing an agent that stopped without dying: it owns input partitions with records waiting and
has finished no batch for `ESEP_STALL_S`. A part that dies says so itself (streams/lifecycle.py);
this catches the ones that cannot: an await that never completes, a stream faust stopped feeding, a
lock left held. The caller fails the worker with the reason (/ready 503, exit 70): a worker never
idles half-alive. Faust-free; the agent's wiring counts what waits."""
from __future__ import annotations

import time
from collections.abc import Callable


class StallWatch:
    def __init__(self, what: str, limit_s: float, clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.limit_s = limit_s  # 0: never
        self.clock = clock
        self.since = clock()

    def progressed(self) -> None:
        """A batch finished, or something restarts the count (an assignment, a restore done)."""
        self.since = self.clock()

    def check(self, waiting: int) -> str | None:
        """`waiting`: the records on the owned partitions past what the agent finished. None while it
        keeps up (nothing waiting counts as keeping up), else why the worker must stop."""
        now = self.clock()
        if self.limit_s <= 0 or waiting <= 0:
            self.since = now
            return None
        idle = now - self.since
        if idle < self.limit_s:
            return None
        return (f"the {self.what} finished no batch in {idle:.0f} s while {waiting} input records waited on "
                f"its partitions (ESEP_STALL_S={self.limit_s:g})")


def check_interval(limit_s: float) -> float:
    """How often to look: a tenth of the limit, between 1 s and 30 s."""
    return min(30.0, max(1.0, limit_s / 10.0))


__all__ = ["StallWatch", "check_interval"]
