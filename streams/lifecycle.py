"""Crash-only: a worker is either working or gone, never half-alive.

- When a part of the worker dies (the posting agent, the start-up task, the registry replica, the
  change publisher, the hold re-checks), the worker stops being ready (/ready answers 503 with the
  reason), logs it at critical, and stops with exit code 70 so that its supervisor restarts it.
  Records it had not acknowledged come again to whichever worker gets their partition.
- SIGTERM (or SIGINT) stops the worker gracefully while it can, and in any case within
  `STOP_DEADLINE_S`: a watchdog thread, armed by the signal handler itself, ends the process even
  if the event loop is stuck (a task that never returns, a blocked call, faust waiting for events
  that will never be acknowledged). The handler is a plain `signal.signal` handler, which runs
  even while the event loop is blocked."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

log = logging.getLogger("esep.worker")

EXIT_FAILED = 70  # EX_SOFTWARE: a part of the worker died; the supervisor restarts it
EXIT_FORCED = 128 + signal.SIGTERM  # asked to stop, and had to be ended at the deadline
STOP_DEADLINE_S = 12.0  # SIGTERM to exit, at most (the contract with the supervisor is 15 s)
FAILED_LINGER_S = 2.0  # a failed worker answers /ready 503 with its reason this long, then stops
# A failed worker has little to finish (with static membership it does not even leave its group):
# it gets less time to stop gracefully before it is ended.
FAILED_STOP_DEADLINE_S = 5.0


class Lifecycle:
    """The worker's state as a process: working, failed (with a reason) or stopping."""

    def __init__(self, exits: bool = False, stop_deadline_s: float = STOP_DEADLINE_S):
        # Only the worker process exits on its own; in tests a failure is only recorded.
        self.exits = exits
        self.stop_deadline_s = stop_deadline_s
        self.failure: str | None = None
        self.stopping = False
        self._watchdog: threading.Timer | None = None
        self._lock = threading.Lock()

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failure else 0

    def fail(self, reason: str, exc: BaseException | None = None) -> None:
        """A part of the worker died: not ready any more, said loudly, and the process stops.
        Once a stop was requested, a part that ends because faust's services stop under it (its
        producer gone: `NotReady`) is the stop itself, not a failure: the exit code stays the stop's."""
        with self._lock:
            if self.failure is not None:
                return
            if self.stopping:
                log.warning("while stopping: %s", reason)
                return
            self.failure = reason
        log.critical("worker failed: %s; it stops (exit %d) for its supervisor to restart it", reason, EXIT_FAILED,
                     exc_info=exc)
        if self.exits:
            # Linger briefly so that /ready can be seen saying why, then stop as on SIGTERM.
            self._arm(FAILED_LINGER_S + FAILED_STOP_DEADLINE_S)
            stop = threading.Timer(FAILED_LINGER_S, os.kill, (os.getpid(), signal.SIGTERM))
            stop.daemon = True
            stop.start()

    def stop_requested(self, signum: int) -> None:
        """A stop signal arrived: whatever happens next, the process ends by the deadline."""
        self.stopping = True
        if self._arm(self.stop_deadline_s):
            log.info("stop requested (%s): stopping within %.0f s", signal.Signals(signum).name,
                     self.stop_deadline_s)

    def _arm(self, deadline_s: float) -> bool:
        """Start the watchdog that ends the process in `deadline_s`, unless one runs already."""
        with self._lock:
            if self._watchdog is not None or not self.exits:
                return False
            self._watchdog = threading.Timer(deadline_s, self._hard_exit, (deadline_s,))
            self._watchdog.daemon = True
            self._watchdog.start()
            return True

    def _hard_exit(self, deadline_s: float) -> None:
        code = EXIT_FAILED if self.failure else EXIT_FORCED
        log.critical("the worker did not stop within %.0f s: exiting now (exit %d)", deadline_s, code)
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        sys.stderr.flush()
        os._exit(code)

    def readiness(self, ready: bool) -> tuple[bool, str]:
        """(ready, reason) for /ready."""
        if self.failure is not None:
            return False, f"failed: {self.failure}"
        if self.stopping:
            return False, "stopping"
        if not ready:
            return False, "starting: the registry replica is catching up and decisions are restored"
        return True, "posting"
