"""Background work yields to posting (issue 14, item 3).

The worker is one event loop: while the registry-change publisher handles a batch (at a first start
it records a first version of every person, ~90 µs of CPU each), posting waits. So while posting is
busy, the publisher takes at most a share of the time: after each of its batches it pauses for
what keeps it to that share. When posting idles, the publisher runs at full speed.

The readers of posting's output (the personal accounts' feed, the reversals' posted-entry index and
the monthly report streams) yield differently: before each batch they wait for posting to be quiet
(`turn`), at most `BUSY_TURN_S`. During a burst each of them takes one batch per turn and catches up
once posting idles: what reads them waits for them correctly (a refund decision waits for the index,
a statement states its lag, a report waits for its streams), while posting has the one-business-day
rule and the latency target. During a burst they then take a few percent of the loop instead of
about 40 % (esep bench, profile of the warm phase)."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

# The publisher's share of the time while posting is busy: posting keeps 95 % of the loop, and a
# first start's registry history still advances (at a twentieth of its idle rate).
BACKGROUND_SHARE = 0.05
# Posting counts as busy for this long after its last batch: between two batches of a backlog the
# agent only waits for the broker's acknowledgements (a few ms to tens of ms).
IDLE_AFTER_S = 0.5
# A pause never exceeds this, whatever one batch took (a slow broker round trip, say).
MAX_PAUSE_S = 2.0
# During a burst, a reader of posting's output takes one batch per this many seconds.
BUSY_TURN_S = 2.0


class PostingActivity:
    """Whether posting is busy: a batch in hand, one handled within `idle_after_s`, or notifications
    waiting (`backlog`). The backlog matters on a loaded machine: there the other agents' turns can
    keep posting's next batch more than `idle_after_s` away although its input is waiting."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, idle_after_s: float = IDLE_AFTER_S,
                 backlog: Callable[[], int] | None = None):
        self.clock = clock
        self.backlog = backlog
        self.idle_after_s = idle_after_s
        self.active = 0
        self.last_end = float("-inf")

    def begin(self) -> None:
        self.active += 1

    def end(self) -> None:
        self.active -= 1
        self.last_end = self.clock()

    @contextlib.contextmanager
    def batch(self):
        """Marks one posting batch (the posting agent wraps each batch in it)."""
        self.begin()
        try:
            yield
        finally:
            self.end()

    def busy(self) -> bool:
        if self.active > 0 or self.clock() - self.last_end < self.idle_after_s:
            return True
        return self.backlog is not None and self.backlog() > 0

    async def turn(self, quiet_s: float = 0.05, max_wait_s: float = BUSY_TURN_S) -> None:
        """A feed's turn: once no batch is in hand and none ended within `quiet_s`, or after
        `max_wait_s` (during a burst a reader takes one batch per `max_wait_s`, and catches up after)."""
        deadline = time.monotonic() + max_wait_s
        while True:
            now = time.monotonic()
            if (not self.active and self.clock() - self.last_end >= quiet_s) or now >= deadline:
                return
            await asyncio.sleep(min(quiet_s, deadline - now))


def pause_after(spent_s: float, share: float = BACKGROUND_SHARE, max_pause_s: float = MAX_PAUSE_S) -> float:
    """Seconds to pause after background work that took `spent_s`, so that it takes `share` of the time."""
    if spent_s <= 0 or share >= 1:
        return 0.0
    return min(max_pause_s, spent_s * (1 - share) / share)
