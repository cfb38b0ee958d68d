"""The report streams in a process of their own (ESEP_REPORTS=on, the default).

The report streams re-read every posted line and count it: about 125 µs of CPU a line against
posting's 70 (esep bench, ESEP_REPORTS=off against on). In the worker's event loop they share one
core with posting, so a sustained load above ~6,000 lines/s left them behind and posting's p99 at
seconds. In their own process they run on the machine's other core; posting keeps the worker's.

Nothing else changes: they were already self-contained (their own consumer group, transactional
producer and store: streams/report_streams.py). The worker supervises the process: one that exits
is started again after a pause (the report never stops posting), and it dies with the worker
(tables/children.py). What the process records in its metrics reaches the worker through a pipe,
and the worker's /metrics shows it as before. Its stores take a quarter of the store budget; the
worker's take the rest, so the total stays ESEP_STORE_CACHE_MB + ESEP_STORE_WRITE_BUFFER_MB."""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable

from monitoring import metrics
from rules.calendar import BusinessCalendar
from tables.budget import MIN_WRITE_BUFFER_MB

from .settings import Settings

log = logging.getLogger("esep.report")

# The metrics the report streams record (streams/report_streams.py); only these cross the pipe.
RELAYED = ("recovery_seconds", "report_records", "report_batch_seconds", "report_partials_published")
RELAY_METHODS = ("inc", "observe", "set")
RELAY_EVERY_S = 0.25
RESTART_BACKOFF_S = 2.0
MAX_RESTART_BACKOFF_S = 60.0
STOP_GRACE_S = 5.0
REPORT_NICE = 10  # added to the worker's niceness (0-19)


def budget_shares(settings: Settings) -> tuple[tuple[int, int], tuple[int, int]]:
    """((cache MiB, write buffer MiB) of the worker, of the report process): a quarter of each
    budget for the report store, but never a write buffer below RocksDB's useful minimum."""
    cache = settings.store_cache_mb
    buffers = settings.store_write_buffer_mb
    report_cache = max(1, cache // 4)
    report_buffers = max(MIN_WRITE_BUFFER_MB, buffers // 4)
    return ((max(1, cache - report_cache), max(MIN_WRITE_BUFFER_MB, buffers - report_buffers)),
            (report_cache, report_buffers))


class _Relay:
    """A metric of the report process: what is recorded goes to the worker, which applies it."""

    def __init__(self, conn, name: str, labels: tuple[str, ...] = ()):
        self._conn = conn
        self._name = name
        self._labels = labels

    def labels(self, *values: str) -> "_Relay":
        return _Relay(self._conn, self._name, tuple(str(v) for v in values))

    def _send(self, method: str, value: float) -> None:
        self._conn.send((self._name, self._labels, method, value))

    def inc(self, amount: float = 1) -> None:
        self._send("inc", amount)

    def observe(self, value: float) -> None:
        self._send("observe", value)

    def set(self, value: float) -> None:
        self._send("set", value)


def apply_relayed(message) -> None:
    """Apply one message of the report process to the worker's metric; a malformed one is logged."""
    try:
        name, labels, method, value = message
        if name not in RELAYED or method not in RELAY_METHODS:
            raise ValueError(f"{name}.{method} is not relayed")
        metric = getattr(metrics, name)
        getattr(metric.labels(*labels) if labels else metric, method)(value)
    except Exception as exc:  # noqa: BLE001 - a metric is not worth stopping the worker for
        log.error("report process: a metric message could not be applied (%s: %s)", type(exc).__name__, exc)


def report_process_main(settings: Settings, bootstrap: str, conn, parent: int, cache_mb: int,
                        write_buffer_mb: int) -> None:
    """The child: the report streams until SIGTERM (or the worker's death)."""
    from rules.calendar import load_calendar
    from tables.budget import StoreBudget, use_budget
    from tables.children import die_with_parent

    from . import heap, logs
    from .report_streams import ReportStreams

    die_with_parent(parent)
    # Background work: the scheduler gives posting (and the broker) a core first, the report what is
    # left. Without it, on 2 cores the report's counting took CPU from posting during a burst
    # (esep bench: 8,084 lines/s against 12,757 with the report streams paced inside the worker).
    os.nice(REPORT_NICE)
    heap.limit_arenas(settings.malloc_arenas)
    logs.configure(settings.log_level)
    use_budget(StoreBudget(cache_mb, write_buffer_mb))
    for name in RELAYED:
        setattr(metrics, name, _Relay(conn, name))

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def stop() -> None:  # once: a second SIGTERM must not cancel the clean stop the first began
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, stop)
        streams = ReportStreams(settings, bootstrap, load_calendar(settings.calendar_file))
        try:
            await streams.run()
        finally:
            streams.store.close()

    try:
        asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        pass


class ReportProcess:
    """The worker's side: starts the report process, relays its metrics, starts it again when it
    exits, and stops it when the worker stops."""

    def __init__(self, settings: Settings, bootstrap: str, calendar: BusinessCalendar,
                 pace: Callable[[], Awaitable[None]] | None = None, stopping: Callable[[], bool] = lambda: False):
        self.settings = settings
        self.bootstrap = bootstrap
        self.calendar = calendar  # for the report streams in the worker, when no process can be started
        # True once the worker stops: the process exiting then (a SIGTERM to the process group) is no crash.
        self.stopping = stopping
        self.pace = pace  # likewise

    async def run(self) -> None:
        _, (cache_mb, write_buffer_mb) = budget_shares(self.settings)
        ctx = multiprocessing.get_context("spawn")
        backoff = RESTART_BACKOFF_S / 2
        while True:
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=report_process_main, name="esep-report",
                               args=(self.settings, self.bootstrap, sender, os.getpid(), cache_mb, write_buffer_mb))
            try:
                proc.start()
            except OSError as exc:
                sender.close()
                receiver.close()
                await self._run_inline(exc)
                return
            sender.close()  # the child holds the only writer: its exit ends the pipe
            started = time.monotonic()
            log.info("report streams: running in process %d", proc.pid)
            try:
                await self._relay_until_exit(proc, receiver)
            finally:
                receiver.close()
                if proc.exitcode is None:
                    # One SIGTERM, at once (the wait below may not finish if the worker is going down):
                    # a second one would cancel the child's clean stop of its producer.
                    proc.terminate()
                    await asyncio.to_thread(self._stop, proc)
            pid, code = proc.pid, proc.exitcode
            proc.close()
            if self.stopping():
                log.info("report streams: their process %d stopped with the worker (code %s)", pid, code)
                return
            # A process that fails at every start waits longer each time, up to a minute, and says so.
            uptime = time.monotonic() - started
            backoff = RESTART_BACKOFF_S if uptime >= MAX_RESTART_BACKOFF_S else min(MAX_RESTART_BACKOFF_S, backoff * 2)
            metrics.report_process_restarts.inc()
            log.error("report streams: their process %d exited with code %s after %.0f s; starting it again in %.0f s",
                      pid, code, uptime, backoff)
            await asyncio.sleep(backoff)

    async def _relay_until_exit(self, proc, receiver) -> None:
        while True:
            try:
                while receiver.poll():
                    apply_relayed(receiver.recv())
            except (EOFError, OSError):  # the child is gone
                pass
            if proc.exitcode is not None:
                return
            await asyncio.sleep(RELAY_EVERY_S)

    async def _run_inline(self, exc: OSError) -> None:
        from .report_streams import ReportStreams

        log.error("report streams: no process could be started (%s); they run in the worker", exc)
        await ReportStreams(self.settings, self.bootstrap, self.calendar, pace=self.pace).run()

    @staticmethod
    def _stop(proc) -> None:
        proc.join(STOP_GRACE_S)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
