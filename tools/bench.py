"""`esep bench`: throughput and latency of one posting worker, against two references measured in
the same run on the same broker.

Phases (each on run-scoped topics, deleted at the end):
1. raw ceiling: a trivial aiokafka consume-decode-encode-produce loop (`bench_raw.py`) over as many
   line messages as the run has lines;
2. naive faust: a one-event-per-line faust agent with one table update and one awaited send per
   event (`bench_naive.py`, memory store), run as a subprocess worker over the same line messages;
   rate from its first to its last output record (Kafka timestamps);
3. esep: a synthetic registry and `orders` notifications of `lines` lines pre-produced, then ONE
   `esep worker` subprocess; rate from its first to its last `orders.results` record, every order
   must get a result;
4. latency: the same worker, fresh notifications paced at half the phase-3 rate; latency is the
   result record's timestamp minus the moment the notification was sent;
5. the cost of the monthly report: phase 3 runs with the report streams on (ESEP_REPORTS=on, the
   default, and the time they take to catch up after the last result is noted); this phase runs it
   again on fresh topics with ESEP_REPORTS=off (skip it with --no-report-compare);
6. the recipients ledger (contract Part 2): one worker on topics of its own decides every
   recipient's assign (decisions/s), then six monthly payments each (transfers/s), each phase
   preloaded and rated from its first output record to its last (`bench_recipients.measure`;
   skip it with --recipients 0).

A measurement, not a test: it returns 0 when the run completed, whether targets were met or not.
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from streams.settings import Settings

from .process import ChildError, descendants
from .reading import TopicReader
from .runner import WorkerProcess, free_port, metric_value, percentile
from .scope import RunScope

TARGET_VS_NAIVE = 5.0
TARGET_VS_RAW = 0.3
TARGET_P99_MS = 250.0
RAW_PASSES = 3  # the ceiling is the median of this many passes of the raw loop over the same messages
NAIVE_TIME_LIMIT_S = 180.0  # the naive reference stops here and is rated over what it did
LATENCY_SECONDS = 15.0
SETTLED_CORES = 0.15  # the worker counts as idle below this many cores...
SETTLED_WINDOWS = 5  # ...for this many seconds in a row
BUSY_CORES = 0.25  # other processes using more than this many cores during a phase: a warning
SEED = 430
PREFIX = "bench"  # run ids start with it; every topic of a run carries its run id


class BenchError(RuntimeError):
    """The run could not complete (a worker died, results never came): exit code 1."""


def say(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BenchError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise BenchError(f"{name}={value} must be at least 1")
    return value


def _process_cpu(pid: int, tick: int | None = None, reaped: bool = False) -> float | None:
    """user+system CPU seconds of one process (Linux /proc), or None; with `reaped`, also those of
    its children that exited and were waited for."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rfind(b")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
        return ticks / (tick or os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _tree_cpu(pid: int) -> float | None:
    """CPU seconds of a worker and of every process it started (the report process, the registry's
    loaders), live or exited: the worker's whole cost."""
    own = _process_cpu(pid, reaped=True)
    if own is None:
        return None
    return own + sum(_process_cpu(child, reaped=True) or 0.0 for child in descendants(pid))


def _cpu_seconds_by_pid() -> dict[int, float]:
    """user+system CPU seconds of every process (Linux /proc); empty elsewhere."""
    out: dict[int, float] = {}
    try:
        tick = os.sysconf("SC_CLK_TCK")
        names = os.listdir("/proc")
    except (OSError, ValueError, AttributeError):
        return out
    for name in names:
        if name.isdigit():
            cpu = _process_cpu(int(name), tick)
            if cpu is not None:
                out[int(name)] = cpu
    return out


class CpuWatch:
    """How much CPU the rest of the machine took during a phase: on 2 cores, anything else running
    (another test suite, another broker) moves every figure here, so the run says so."""

    def __init__(self, res: "Resources"):
        self.res = res
        self.start_cpu = _cpu_seconds_by_pid()
        self.start = time.monotonic()

    def others_cores(self) -> float | None:
        """Average number of cores used by processes that are not this run's (bench, its children,
        the broker it started), since the watch started."""
        if not self.start_cpu:
            return None
        end_cpu = _cpu_seconds_by_pid()
        ours = self.res.own_pids()
        others = sum(max(0.0, cpu - self.start_cpu.get(pid, 0.0)) for pid, cpu in end_cpu.items() if pid not in ours)
        return others / max(1e-3, time.monotonic() - self.start)

    def report(self, phase: str, r: "RunResult") -> None:
        cores = self.others_cores()
        if cores is None:
            return
        r.others_cores[phase] = round(cores, 2)
        if cores > BUSY_CORES:
            say(f"  warning: other processes used {cores:.2f} of {os.cpu_count()} cores during this phase "
                f"(not this run's): its figures are not reliable")


# ------------------------------------------------------------------------------------------------
# What a run holds and must release

@dataclass
class Resources:
    """Everything started or created by the run, released by `close()` whatever happened."""

    bootstrap: str = ""
    run_id: str = ""
    scopes: list[RunScope] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)
    broker_dir: Path | None = None  # set only if this run started the local broker
    broker_pid: int | None = None  # the local broker's process, when the run uses one

    def own_pids(self) -> set[int]:
        pids = {os.getpid(), *([self.broker_pid] if self.broker_pid else [])}
        for scope in self.scopes:
            pids |= scope.pids()
        return pids | {child for pid in pids for child in descendants(pid)}

    def scope(self, run_id: str, workdir: Path, settings: Settings) -> RunScope:
        """The topics, groups and processes of one repetition, deleted and stopped by `close()`."""
        scope = RunScope(self.bootstrap, run_id, workdir / "esep", partitions=settings.partitions, log_dir=workdir,
                         env=_worker_env(settings))
        self.scopes.append(scope)
        return scope

    def close(self) -> None:
        for scope in self.scopes:
            scope.close(delete_topics=True, log=say)
        for d in self.temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if self.broker_dir is not None:
            from tools import localkafka

            localkafka.stop(self.broker_dir)
            say(f"stopped the local Kafka broker this run started ({self.broker_dir})")
            self.broker_dir = None


def _worker_env(settings: Settings) -> dict[str, str]:
    """The bench's worker: the caller's tuning, on 127.0.0.1."""
    return {
        "ESEP_WEB_BIND": "127.0.0.1",
        "ESEP_REPLICATION": str(settings.replication),
        "ESEP_BATCH_SIZE": str(settings.batch_size),
        "ESEP_BATCH_WITHIN_MS": repr(settings.batch_within_s * 1000.0),
        "ESEP_SESSION_TIMEOUT_S": repr(settings.session_timeout_s),
        "ESEP_COMMIT_INTERVAL_S": repr(settings.commit_interval_s),
        "ESEP_LOG_LEVEL": settings.log_level,
        # Decide at once: with the registry-lag hold on, an order with a line waiting for the
        # registry gets its result only at the business-day cut-off, hours after the benchmark.
        "ESEP_PENDING": "off",
    }


# ------------------------------------------------------------------------------------------------
# Kafka helpers (asyncio)

async def _produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]], what: str) -> float:
    """Produce everything and await the acknowledgements; returns the seconds it took."""
    from aiokafka import AIOKafkaProducer

    started = time.monotonic()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        pending = []
        count = 0
        for topic, key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            count += 1
            if len(pending) >= 10000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.monotonic() - started
    say(f"  produced {count:,} {what} in {seconds:.1f} s")
    return seconds


# ------------------------------------------------------------------------------------------------
# Options and results

@dataclass
class Options:
    orders: int
    lines: int
    persons: int
    runs: int
    naive_lines: int | None
    latency_orders: int | None
    latency_seconds: float
    profile_dir: Path | None
    compare_reports: bool = True
    latency_rate: float | None = None  # orders/s of the latency phase (None: half the measured rate)
    recipients: int = 3000  # recipients of phase 6 (0: skip it)
    # Issue 14: the same-work reference (tools/bench_samework.py) and the first start (tools/bench_scale.py).
    samework: bool = True
    first_start: bool = True


@dataclass
class RunResult:
    raw_lines: int = 0
    raw_seconds: float = 0.0
    raw_lines_per_s: float = 0.0
    raw_passes_lines_per_s: list = field(default_factory=list)
    naive_lines: int = 0
    naive_seconds: float = 0.0
    naive_lines_per_s: float = 0.0
    naive_capped: str = ""
    esep_orders: int = 0
    esep_lines: int = 0
    esep_seconds: float = 0.0
    esep_lines_per_s: float = 0.0
    esep_lines_per_s_from_first_send: float = 0.0
    lines_posted: int = 0
    lines_refunded: int = 0
    results: int = 0
    results_match_expected: bool = False
    registry_persons: int = 0
    registry_load_s: float | None = None
    worker_ready_s: float = 0.0
    worker_settle_s: float = 0.0
    worker_settle_cpu_s: float = 0.0
    latency_orders: int = 0
    latency_rate_orders_per_s: float = 0.0
    latency_sent_seconds: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    # Cores used by processes outside this run, per phase (an external broker counts as outside).
    others_cores: dict = field(default_factory=dict)
    # Phase 3 runs with the report streams; phase 5 without (0 when skipped).
    report_catch_up_s: float | None = None
    esep_without_reports_lines_per_s: float = 0.0
    # CPU seconds of the worker and of the broker from the first notification sent to the last
    # result (with the report streams: until they read every posted entry): on a shared machine a
    # steadier measure of a cost than lines/s.
    esep_worker_cpu_s: float | None = None
    esep_broker_cpu_s: float | None = None
    esep_without_reports_worker_cpu_s: float | None = None
    esep_without_reports_broker_cpu_s: float | None = None
    # Phase 6: the recipients agent (bench_recipients.RecipientsRate.to_json()), None when skipped.
    recipients: dict | None = None
    samework: dict = field(default_factory=dict)  # tools/bench_samework.py
    first_start: dict = field(default_factory=dict)  # tools/bench_scale.py


# ------------------------------------------------------------------------------------------------
# The phases

def _line_messages(order_records) -> list[tuple[bytes, bytes]]:
    """One small message per line of every well-formed order: the line plus its notification id."""
    out = []
    for rec in order_records:
        order = orjson.loads(rec.value)
        nid = order["notification_id"]
        for line in order["lines"]:
            out.append((rec.key, orjson.dumps({"notification_id": nid, **line})))
    return out


async def phase_raw(res: Resources, scope: RunScope, messages: list[tuple[bytes, bytes]], r: RunResult) -> None:
    from tables.metadata import topic_partitions

    say(f"phase 1/6 raw aiokafka ceiling: {len(messages):,} line messages, {RAW_PASSES} passes")
    src, dst = scope.topic("raw-in"), scope.topic("raw-out")
    scope.create_extra_topics([src, dst])
    await _produce(res.bootstrap, ((src, k, v) for k, v in messages), "line messages")
    parts = await topic_partitions(res.bootstrap, src)
    # In a process of its own, like the workers: this one holds the generated data, and its garbage
    # collections would slow the loop down. A few seconds of work is at the mercy of anything else on
    # the machine: the ceiling is the median of a few passes.
    watch = CpuWatch(res)
    child = scope.spawn([sys.executable, "-m", "tools.bench_raw", "--bootstrap", res.bootstrap, "--in-topic", src,
                         "--out-topic", dst, "--partitions", ",".join(map(str, parts)),
                         "--expected", str(len(messages)), "--passes", str(RAW_PASSES)], "raw", stdout=subprocess.PIPE)
    passes = []
    try:
        while len(passes) < RAW_PASSES:
            line = await asyncio.to_thread(child.proc.stdout.readline)
            if not line:
                child.wait(10)
                raise BenchError(f"the raw loop exited ({child.returncode}) after {len(passes)} passes:\n"
                                 f"{child.log_tail()}")
            result = json.loads(line)
            passes.append(result)
            say(f"  raw pass {len(passes)}/{RAW_PASSES}: {result['messages']:,} messages in {result['seconds']:.2f} s "
                f"= {result['per_s']:,.0f} lines/s")
    finally:
        child.stop(20.0)
    watch.report("raw", r)
    result = sorted(passes, key=lambda x: x["per_s"])[len(passes) // 2]
    r.raw_lines, r.raw_seconds, r.raw_lines_per_s = result["messages"], result["seconds"], result["per_s"]
    r.raw_passes_lines_per_s = [round(x["per_s"], 1) for x in passes]


async def phase_naive(res: Resources, scope: RunScope, messages: list[tuple[bytes, bytes]], limit: int | None,
                      r: RunResult) -> None:
    n = len(messages) if limit is None else min(limit, len(messages))
    capped = f"capped at {n:,} of {len(messages):,} lines (naive_lines)" if n < len(messages) else ""
    say(f"phase 2/6 naive faust (1 event/line, 1 table update, memory store): {n:,} line messages"
        + (f", {capped}" if capped else ""))
    src, dst = scope.topic("naive-in"), scope.topic("naive-out")
    app_id = f"{scope.settings.app_id}-naive"
    scope.groups.append(app_id)
    scope.create_extra_topics([src, dst])
    await _produce(res.bootstrap, ((src, k, v) for k, v in messages[:n]), "line messages")
    env = {
        **os.environ,
        "ESEP_BENCH_BROKER": res.bootstrap, "ESEP_BENCH_APP_ID": app_id, "ESEP_BENCH_IN": src,
        "ESEP_BENCH_OUT": dst, "ESEP_BENCH_PARTITIONS": str(scope.settings.partitions),
        "ESEP_BENCH_DATA_DIR": str(scope.log_dir / "naive"), "ESEP_BENCH_WEB_PORT": str(free_port()),
    }
    tail = TopicReader(res.bootstrap, [dst])
    watch = CpuWatch(res)
    child = scope.spawn([sys.executable, "-m", "tools.bench_naive"], "naive", env)
    try:
        count, first_ts, last_ts = 0, None, None
        spawned = time.monotonic()
        first_seen = None
        last_report = time.monotonic()
        while count < n:
            if not child.running:
                raise BenchError(f"the naive faust worker exited ({child.returncode}):\n{child.log_tail()}")
            now = time.monotonic()
            if first_seen is None and now - spawned > 120:
                raise BenchError(f"the naive faust worker produced nothing in 120 s:\n{child.log_tail()}")
            if first_seen is not None and now - first_seen > NAIVE_TIME_LIMIT_S:
                capped = (f"stopped after {NAIVE_TIME_LIMIT_S:.0f} s at {count:,} of {n:,} lines "
                          f"(rate over those)")
                say(f"  naive: {capped}")
                break
            for rec in await tail.apoll(1000):
                count += 1
                first_ts = rec.timestamp if first_ts is None else min(first_ts, rec.timestamp)
                last_ts = rec.timestamp if last_ts is None else max(last_ts, rec.timestamp)
                if first_seen is None:
                    first_seen = time.monotonic()
            if first_seen is not None and time.monotonic() - last_report >= 5.0:
                last_report = time.monotonic()
                seconds = max(1e-3, (last_ts - first_ts) / 1000)
                say(f"  naive: {count:,}/{n:,} ({(count - 1) / seconds:,.0f}/s)")
    finally:
        tail.close()
        child.stop(20.0)
    watch.report("naive", r)
    seconds = max(1e-3, (last_ts - first_ts) / 1000) if count > 1 else 0.0
    r.naive_lines, r.naive_seconds = count, seconds
    r.naive_lines_per_s = (count - 1) / seconds if seconds else 0.0
    r.naive_capped = capped
    say(f"  naive: {count:,} lines in {seconds:.2f} s = {r.naive_lines_per_s:,.0f} lines/s")


async def wait_settled(worker: WorkerProcess, timeout: float = 300.0, idle_cores: float = SETTLED_CORES,
                       window: float = 1.0, windows: int = SETTLED_WINDOWS) -> tuple[float, float]:
    """Until the worker idles (its own CPU below `idle_cores` for `windows` windows in a row):
    whatever it does after /ready on its own (e.g. publishing the history of a freshly loaded
    registry, which starts only once its consumer group has joined) is done before the orders
    arrive. Returns (seconds waited, worker CPU seconds spent meanwhile)."""
    started = time.monotonic()
    first = _tree_cpu(worker.pid)
    idle = 0
    while time.monotonic() - started < timeout:
        worker.check_alive()
        before = _tree_cpu(worker.pid)
        await asyncio.sleep(window)
        after = _tree_cpu(worker.pid)
        if before is None or after is None:
            return time.monotonic() - started, 0.0
        idle = idle + 1 if (after - before) / window < idle_cores else 0
        if idle >= windows:
            return time.monotonic() - started, after - (first or 0.0)
    raise BenchError(f"the esep worker was still busy {timeout:.0f} s after /ready:\n{worker.log_tail()}")


def registry_load_s(worker: WorkerProcess) -> float | None:
    """The replica's own figure, from its log line `registry replica ready: N records in X s`."""
    try:
        text = worker.log_path.read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"registry replica ready: (\d+) records in ([0-9.]+) s", text)
    return float(m.group(2)) if m else None


class Results:
    """The `orders.results` records seen so far: first record per notification id, Kafka timestamp."""

    def __init__(self):
        self.first: dict[str, tuple[int, dict]] = {}
        self.records = 0

    def add(self, recs) -> list[tuple[str, int, dict]]:
        new = []
        for rec in recs:
            self.records += 1
            value = orjson.loads(rec.value)
            nid = value["notification_id"]
            if nid not in self.first:
                self.first[nid] = (rec.timestamp, value)
                new.append((nid, rec.timestamp, value))
        return new


async def phase_esep(res: Resources, scope: RunScope, opts: Options, registry: list[dict], records,
                     r: RunResult, reports: bool = True, phase: str = "phase 3/6 esep worker"
                     ) -> tuple[WorkerProcess, TopicReader, Results]:
    from .synthetic import summary_of

    orders = [rec for rec in records if rec.kind == "order"]
    expected_ids = {rec.expect["notification_id"] for rec in orders}
    line_count = {rec.expect["notification_id"]: rec.expect["line_count"] for rec in orders}
    total_lines = sum(line_count.values())
    say(f"{phase} (report streams {'on' if reports else 'off'}): {len(registry):,} registry persons, "
        f"{len(orders):,} orders of {opts.lines} lines = {total_lines:,} lines "
        f"(+{len(records) - len(orders)} repeats/malformed records)")
    worker = scope.worker("w1", ESEP_REPORTS="on" if reports else "off")
    scope.create_topics()
    topics = scope.topics
    await _produce(res.bootstrap, ((topics.registry_persons, p["iin"].encode(), orjson.dumps(p)) for p in registry),
                   "registry persons")
    tail = TopicReader(res.bootstrap, [topics.order_results])
    results = Results()
    worker.start()
    ready_s = await asyncio.to_thread(worker.wait_ready, 300.0)
    r.worker_ready_s = ready_s
    r.registry_load_s = registry_load_s(worker)
    say(f"  worker ready in {ready_s:.1f} s (registry replica loaded in "
        f"{r.registry_load_s if r.registry_load_s is not None else float('nan'):.1f} s)")
    # A fresh registry keeps the worker busy after /ready (the registry-change publisher records a
    # first version of every person): the orders come once it idles, so that the rate is posting's.
    r.worker_settle_s, r.worker_settle_cpu_s = await wait_settled(worker)
    say(f"  worker idle {r.worker_settle_s:.1f} s after ready ({r.worker_settle_cpu_s:.1f} s of CPU on its own "
        f"start-up work meanwhile)")
    watch = CpuWatch(res)
    profiler = _start_profiler(scope, worker, opts.profile_dir) if opts.profile_dir is not None else None
    cpu_at_send = _cpu_of(worker.pid), _cpu_of(res.broker_pid)
    sent_at_ms = time.time() * 1000
    await _produce(res.bootstrap, ((topics.credit_notifications, rec.key, rec.value) for rec in records),
                   "notification records")
    last_new = time.monotonic()
    last_report = time.monotonic()
    first_ts = last_ts = None
    done_lines = 0
    while not expected_ids.issubset(results.first):
        worker.check_alive()
        new = results.add(await tail.apoll(500))
        for nid, ts, value in new:
            first_ts = ts if first_ts is None else min(first_ts, ts)
            last_ts = ts if last_ts is None else max(last_ts, ts)
            done_lines += value["lines_total"]
        now = time.monotonic()
        if new:
            last_new = now
        elif now - last_new > 120:
            missing = len(expected_ids - set(results.first))
            raise BenchError(f"no new result in 120 s, {missing:,} orders without one:\n{worker.log_tail()}")
        if now - last_report >= 2.0 and first_ts is not None:
            last_report = now
            seconds = max(1e-3, (last_ts - first_ts) / 1000)
            say(f"  esep: {len(results.first):,}/{len(expected_ids):,} orders, {done_lines:,} lines "
                f"({done_lines / seconds:,.0f} lines/s)")
    watch.report("esep" if reports else "esep-without-reports", r)
    if profiler is not None:
        _stop_profiler(profiler)
    if reports:
        r.report_catch_up_s = await report_catch_up(worker)
    r.esep_worker_cpu_s = _cpu_since(worker.pid, cpu_at_send[0])
    r.esep_broker_cpu_s = _cpu_since(res.broker_pid, cpu_at_send[1])
    firsts = sorted((ts, value["lines_total"]) for nid, (ts, value) in results.first.items() if nid in expected_ids)
    seconds = max(1e-3, (firsts[-1][0] - firsts[0][0]) / 1000)
    r.esep_orders = sum(1 for nid in expected_ids if nid in results.first)
    r.esep_lines = total_lines
    r.esep_seconds = seconds
    # The first result's lines were decided before the clock started: leave them out of the rate.
    r.esep_lines_per_s = (total_lines - firsts[0][1]) / seconds
    r.esep_lines_per_s_from_first_send = total_lines / max(1e-3, (firsts[-1][0] - sent_at_ms) / 1000)
    ours = [value for nid, (ts, value) in results.first.items() if nid in expected_ids]
    r.lines_posted = sum(v["lines_posted"] for v in ours)
    r.lines_refunded = sum(v["lines_refunded"] for v in ours)
    r.results = results.records
    expected = summary_of(records)
    r.results_match_expected = (r.lines_posted == expected["lines_posted"]
                                and r.lines_refunded == expected["lines_refunded"]
                                and len(ours) == expected["orders"])
    r.registry_persons = len(registry)
    check = ("as expected" if r.results_match_expected else
             f"NOT the expected {expected['lines_posted']:,} + {expected['lines_refunded']:,}")
    say(f"  esep: {len(ours):,} orders, {total_lines:,} lines ({r.lines_posted:,} posted + {r.lines_refunded:,} "
        f"refunded, {check}) in {seconds:.2f} s = {r.esep_lines_per_s:,.0f} lines/s")
    return worker, tail, results


def _cpu_of(pid: int | None) -> float | None:
    return _tree_cpu(pid) if pid else None


def _cpu_since(pid: int | None, start: float | None) -> float | None:
    end = _cpu_of(pid)
    return None if end is None or start is None else round(end - start, 2)


async def report_catch_up(worker: WorkerProcess, timeout: float = 120.0) -> float | None:
    """Seconds from the last result until the report streams counted every entry the worker posted
    (its own metrics: entries posted, entries the report read); None when they did not in time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        worker.check_alive()
        text = await asyncio.to_thread(worker.metrics_text)
        posted = metric_value(text, "esep_lines_total", 'outcome="posted"')
        read = metric_value(text, "esep_report_records_total", 'source="contributions"')
        if posted and read >= posted:
            seconds = time.monotonic() - started
            say(f"  report streams caught up {seconds:.1f} s after the last result ({read:,.0f} entries read)")
            return seconds
        await asyncio.sleep(0.2)
    say(f"  report streams had not read every posted entry {timeout:.0f} s after the last result")
    return None


def _start_profiler(scope: RunScope, worker: WorkerProcess, out_dir: Path):
    """py-spy on the worker while it posts (phase 3), as collapsed stacks (one sampler: it costs CPU)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{scope.run_id}-worker.collapsed.txt"
    child = scope.spawn([spy, "record", "--pid", str(worker.pid), "--rate", "200", "--format", "raw",
                         "--nonblocking", "-o", str(path)], "py-spy")
    return child, path


def _stop_profiler(profiler) -> None:
    child, path = profiler
    child.signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    child.wait(30)
    child.stop(20.0)
    if path.exists():
        say(f"  profile of the worker (py-spy, collapsed stacks) written to {path}")
        for line in profile_summary(path):
            say(f"    {line}")


def profile_summary(path: Path, top: int = 15) -> list[str]:
    """The functions with the most samples, inclusive and self, from py-spy's collapsed stacks."""
    inclusive: dict[str, int] = {}
    self_: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        self_[frames[-1]] = self_.get(frames[-1], 0) + n
    if not total:
        return ["(no samples)"]
    out = [f"{total:,} samples; top by self time:"]
    out += [f"{100 * n / total:5.1f}%  {f}" for f, n in sorted(self_.items(), key=lambda x: -x[1])[:top]]
    out.append("top by inclusive time:")
    out += [f"{100 * n / total:5.1f}%  {f}" for f, n in sorted(inclusive.items(), key=lambda x: -x[1])[:top]]
    return out


async def phase_latency(res: Resources, scope: RunScope, opts: Options, registry: list[dict], worker: WorkerProcess,
                        tail: TopicReader, results: Results, rep: int, r: RunResult) -> None:
    from aiokafka import AIOKafkaProducer

    from rules.calendar import ALMATY

    from .synthetic import Scenario, make_orders

    orders_per_s = r.esep_orders / r.esep_seconds if r.esep_seconds else r.esep_lines_per_s / opts.lines
    rate = opts.latency_rate or max(0.5, orders_per_s / 2.0)
    n = opts.latency_orders or max(1, round(rate * opts.latency_seconds))
    say(f"phase 4/6 latency: {n:,} fresh orders at {rate:,.1f} orders/s "
        f"({'--latency-rate; phase 3 ran' if opts.latency_rate else 'half of'} {orders_per_s:,.1f}), "
        f"~{n / rate:.0f} s")
    now = datetime.now(ALMATY)
    batch = [rec for rec in make_orders(registry, n, opts.lines, SEED + 1000 + rep, Scenario.benchmark(),
                                        received_at=lambda: now, id_prefix=f"LAT{rep}")
             if rec.kind == "order"]
    topic = scope.topics.credit_notifications
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def collect() -> None:
        while True:
            for nid, ts, _ in results.add(await tail.apoll(200)):
                t0 = sent.get(nid)
                if t0 is not None:
                    latencies.append(ts - t0 * 1000.0)

    producer = AIOKafkaProducer(bootstrap_servers=res.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    watch = CpuWatch(res)
    collector = asyncio.ensure_future(collect())
    try:
        tick = 0.05
        start = time.monotonic()
        i = 0
        last_report = start
        pending = []
        while i < len(batch):
            due = min(len(batch), int((time.monotonic() - start) * rate) + 1)
            while i < due:
                rec = batch[i]
                sent[rec.expect["notification_id"]] = time.time()
                pending.append(await producer.send(topic, rec.value, key=rec.key))
                i += 1
            if time.monotonic() - last_report >= 3.0:
                last_report = time.monotonic()
                done = sorted(latencies)
                say(f"  latency: sent {i:,}/{len(batch):,}, {len(done):,} results, p50 {percentile(done, 50):.0f} ms "
                    f"p99 {percentile(done, 99):.0f} ms")
            worker.check_alive()
            await asyncio.sleep(tick)
        r.latency_sent_seconds = time.monotonic() - start
        await asyncio.gather(*pending)
        deadline = time.monotonic() + 60
        while len(latencies) < len(batch):
            worker.check_alive()
            if collector.done():
                collector.result()
            if time.monotonic() > deadline:
                raise BenchError(f"latency phase: {len(batch) - len(latencies)} orders without a result after 60 s")
            await asyncio.sleep(0.1)
    finally:
        collector.cancel()
        try:
            await collector
        except (asyncio.CancelledError, Exception):
            pass
        await producer.stop()
    watch.report("latency", r)
    done = sorted(latencies)
    r.latency_orders = len(done)
    r.latency_rate_orders_per_s = rate
    r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms = (percentile(done, 50), percentile(done, 90), percentile(done, 99),
                                              done[-1])
    say(f"  latency over {len(done):,} orders: p50 {r.p50_ms:.0f} ms, p90 {r.p90_ms:.0f} ms, "
        f"p99 {r.p99_ms:.0f} ms, max {r.max_ms:.0f} ms")


# ------------------------------------------------------------------------------------------------
# The run

async def _bench(res: Resources, settings: Settings, opts: Options) -> list[RunResult]:
    from rules.calendar import ALMATY

    from .synthetic import Scenario, make_orders, make_registry

    from .bench_scale import SAMPLE_PERSONS

    t = time.monotonic()
    # At most SAMPLE_PERSONS synthetic persons (the ones the orders name): beyond, the first-start
    # phase fills the registry up to --persons with cheap persons (tools/bench_scale.py).
    registry = make_registry(min(opts.persons, SAMPLE_PERSONS), SEED)
    now = datetime.now(ALMATY)
    records = make_orders(registry, opts.orders, opts.lines, SEED, Scenario.benchmark(), received_at=lambda: now,
                          id_prefix="BENCH")
    messages = _line_messages([rec for rec in records if rec.kind == "order"])
    say(f"generated {len(registry):,} persons and {opts.orders:,} orders ({len(messages):,} lines) "
        f"in {time.monotonic() - t:.1f} s")
    # The generated data lives until the end: keep it out of every later collection in this process.
    gc.collect()
    gc.freeze()
    runs = []
    for rep in range(opts.runs):
        if opts.runs > 1:
            say(f"=== run {rep + 1} of {opts.runs}")
        run_id = f"{res.run_id}-{rep}"
        workdir = Path(tempfile.mkdtemp(prefix=f"esep-{run_id}-"))
        res.temp_dirs.append(workdir)
        scope = res.scope(run_id, workdir, settings)
        r = RunResult()
        await phase_raw(res, scope, messages, r)
        await phase_naive(res, scope, messages, opts.naive_lines, r)
        if rep > 0:  # fresh ids and received_at for the next worker
            now = datetime.now(ALMATY)
            records = make_orders(registry, opts.orders, opts.lines, SEED + rep, Scenario.benchmark(),
                                  received_at=lambda: now, id_prefix=f"BENCH{rep}")
        worker, tail, results = await phase_esep(res, scope, opts, registry, records, r)
        try:
            await phase_latency(res, scope, opts, registry, worker, tail, results, rep, r)
        finally:
            tail.close()
            worker.stop()
        if opts.compare_reports:
            await phase_without_reports(res, settings, opts, registry, rep, r)
        if opts.recipients:
            await phase_recipients(res, settings, opts, rep, r)
        if opts.samework:
            from .bench_samework import phase_samework

            registry_dir = Settings.from_env(worker.env).worker_dir / "registry"
            await phase_samework(res, scope, settings, records, registry_dir, r)
        if opts.first_start:
            from .bench_scale import phase_first_start

            await phase_first_start(res, settings, opts, registry, rep, r)
        runs.append(r)
    return runs


async def phase_without_reports(res: Resources, settings: Settings, opts: Options, registry: list[dict], rep: int,
                                r: RunResult) -> None:
    """Phase 3 again, on topics of its own, with ESEP_REPORTS=off: the report streams' cost."""
    from rules.calendar import ALMATY

    from .synthetic import Scenario, make_orders

    workdir = Path(tempfile.mkdtemp(prefix=f"esep-{res.run_id}-{rep}-off-"))
    res.temp_dirs.append(workdir)
    scope = res.scope(f"{res.run_id}-{rep}-off", workdir, settings)
    now = datetime.now(ALMATY)
    records = make_orders(registry, opts.orders, opts.lines, SEED + 500 + rep, Scenario.benchmark(),
                          received_at=lambda: now, id_prefix=f"OFF{rep}")
    off = RunResult()
    worker, tail, _ = await phase_esep(res, scope, opts, registry, records, off, reports=False,
                                       phase="phase 5/6 esep worker again")
    tail.close()
    worker.stop()
    r.esep_without_reports_lines_per_s = off.esep_lines_per_s
    r.esep_without_reports_worker_cpu_s = off.esep_worker_cpu_s
    r.esep_without_reports_broker_cpu_s = off.esep_broker_cpu_s
    r.others_cores.update(off.others_cores)
    cost = 1 - r.esep_lines_per_s / off.esep_lines_per_s if off.esep_lines_per_s else float("nan")
    say(f"  report streams: {r.esep_lines_per_s:,.0f} lines/s with, {off.esep_lines_per_s:,.0f} without "
        f"({cost:+.1%} of posting throughput); worker CPU {_per_line(r.esep_worker_cpu_s, r.esep_lines)} with, "
        f"{_per_line(off.esep_worker_cpu_s, off.esep_lines)} without")


async def phase_recipients(res: Resources, settings: Settings, opts: Options, rep: int, r: RunResult) -> None:
    """The recipients agent's throughput on topics of its own, one worker (bench_recipients.measure)."""
    from .bench_recipients import MONTHS, measure

    say(f"phase 6/6 recipients agent: {opts.recipients:,} recipients' assigns, then {MONTHS} payments each "
        f"({opts.recipients * MONTHS:,} transfers), one worker")
    workdir = Path(tempfile.mkdtemp(prefix=f"esep-{res.run_id}-{rep}-rcp-"))
    res.temp_dirs.append(workdir)
    scope = res.scope(f"{res.run_id}-{rep}-rcp", workdir, settings)
    watch = CpuWatch(res)
    try:
        rate = await asyncio.to_thread(measure, scope, opts.recipients, say)
    except RuntimeError as exc:
        raise BenchError(f"recipients phase: {exc}") from None
    watch.report("recipients", r)
    r.recipients = rate.to_json()
    say(f"  recipients agent: {rate.decisions_per_s:,.0f} decisions/s, {rate.transfers_per_s:,.0f} transfers/s "
        f"({rate.records_per_batch:.1f} records per batch)")


def _per_line(cpu_s: float | None, lines: int) -> str:
    return "n/a" if cpu_s is None or not lines else f"{cpu_s / lines * 1e6:.0f} us/line"


def _median(runs: list[RunResult], name: str) -> float:
    return statistics.median(getattr(r, name) for r in runs)


def summarize(runs: list[RunResult], opts: Options, settings: Settings, broker: str,
              load_at_start: list[float] | None = None) -> dict:
    lines_per_s = _median(runs, "esep_lines_per_s")
    raw = _median(runs, "raw_lines_per_s")
    naive = _median(runs, "naive_lines_per_s")
    p50, p99 = _median(runs, "p50_ms"), _median(runs, "p99_ms")
    vs_naive = lines_per_s / naive if naive else float("inf")
    vs_raw = lines_per_s / raw if raw else 0.0
    summary = {
        "lines_per_s": round(lines_per_s, 1),
        "raw_ceiling_lines_per_s": round(raw, 1),
        "naive_faust_lines_per_s": round(naive, 1),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "ratio_vs_naive": round(vs_naive, 2),
        "ratio_vs_raw": round(vs_raw, 3),
        "targets": {"vs_naive": TARGET_VS_NAIVE, "vs_raw": TARGET_VS_RAW, "p99_ms": TARGET_P99_MS},
        "pass": {"vs_naive": vs_naive >= TARGET_VS_NAIVE, "vs_raw": vs_raw >= TARGET_VS_RAW,
                 "p99_ms": p99 <= TARGET_P99_MS},
        "orders": opts.orders,
        "lines_per_order": opts.lines,
        "lines": runs[-1].esep_lines,
        "persons": opts.persons,
        "runs": len(runs),
        "all_orders_have_results": all(r.esep_orders == opts.orders for r in runs),
        "results_match_expected": all(r.results_match_expected for r in runs),
        "lines_posted": runs[-1].lines_posted,
        "lines_refunded": runs[-1].lines_refunded,
        "registry_load_s": (statistics.median(x.registry_load_s for x in runs if x.registry_load_s is not None)
                            if any(x.registry_load_s is not None for x in runs) else None),
        "worker_ready_s": round(_median(runs, "worker_ready_s"), 2),
        "worker_settle_s": round(_median(runs, "worker_settle_s"), 2),
        "worker_settle_cpu_s": round(_median(runs, "worker_settle_cpu_s"), 2),
        "naive_store": "memory",
        "naive_lines": runs[-1].naive_lines,
        "naive_capped": runs[-1].naive_capped,
        "latency_orders": runs[-1].latency_orders,
        "latency_rate_orders_per_s": round(runs[-1].latency_rate_orders_per_s, 1),
        "worker": {"batch_size": settings.batch_size, "batch_within_ms": settings.batch_within_s * 1000,
                   "partitions": settings.partitions, "pending": "off"},
        "broker": broker,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_start": load_at_start},
        "others_cores_max": max((c for r in runs for c in r.others_cores.values()), default=None),
        "reports": _reports_summary(runs, opts),
        "recipients": _recipients_summary(runs),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "per_run": [asdict(r) for r in runs],
    }
    _scale_summary(summary, runs)
    return summary


def _scale_summary(summary: dict, runs: list[RunResult]) -> None:
    """Issue 14's keys: the same-work reference and the first start, with their targets."""
    from . import bench_samework, bench_scale

    same = bench_samework.summary_keys(runs)
    if same:
        summary.update(same)
        summary["targets"]["vs_same_work"] = same["same_work_target"]
        summary["pass"]["vs_same_work"] = same["same_work_pass"]
    first = bench_scale.summary_keys(runs)
    if first:
        summary.update(first)
        targets, passed = bench_scale.targets(first["first_start"])
        summary["targets"].update(targets)
        summary["pass"].update(passed)


def _recipients_summary(runs: list[RunResult]) -> dict | None:
    """Phase 6, the median of the runs; None when it was skipped."""
    got = [r.recipients for r in runs if r.recipients]
    if not got:
        return None
    med = lambda key: statistics.median(g[key] for g in got)  # noqa: E731
    return {"persons": got[-1]["persons"], "decisions": got[-1]["decisions"], "transfers": got[-1]["transfers"],
            "decisions_s": round(med("decisions_s"), 2), "transfers_s": round(med("transfers_s"), 2),
            "decisions_per_s": round(med("decisions_per_s"), 1), "transfers_per_s": round(med("transfers_per_s"), 1),
            "records_per_batch": round(med("records_per_batch"), 1), "workers": 1}


def _reports_summary(runs: list[RunResult], opts: Options) -> dict:
    with_ = _median(runs, "esep_lines_per_s")
    catch_up = [r.report_catch_up_s for r in runs if r.report_catch_up_s is not None]
    out = {"lines_per_s_with_reports": round(with_, 1),
           "report_catch_up_s": round(statistics.median(catch_up), 2) if catch_up else None}
    if opts.compare_reports:
        without = _median(runs, "esep_without_reports_lines_per_s")
        out["lines_per_s_without_reports"] = round(without, 1)
        out["cost_of_reports"] = round(1 - with_ / without, 3) if without else None
    for key, name in (("worker_cpu_us_per_line_with_reports", "esep_worker_cpu_s"),
                      ("broker_cpu_us_per_line_with_reports", "esep_broker_cpu_s"),
                      ("worker_cpu_us_per_line_without_reports", "esep_without_reports_worker_cpu_s"),
                      ("broker_cpu_us_per_line_without_reports", "esep_without_reports_broker_cpu_s")):
        values = [getattr(r, name) / r.esep_lines * 1e6 for r in runs if getattr(r, name) is not None and r.esep_lines]
        out[key] = round(statistics.median(values), 1) if values else None
    return out


def render(summary: dict, runs: list[RunResult]) -> str:
    med = f" (median of {len(runs)} runs)" if len(runs) > 1 else ""
    raw, naive, esep = (summary["raw_ceiling_lines_per_s"], summary["naive_faust_lines_per_s"],
                        summary["lines_per_s"])
    mark = {True: "PASS", False: "MISS"}
    rows = [
        (f"raw aiokafka loop (ceiling, median of {RAW_PASSES})", runs[-1].raw_lines, _median(runs, "raw_seconds"), raw,
         f"esep needs >= {TARGET_VS_RAW}x = {TARGET_VS_RAW * raw:,.0f}"),
        ("naive faust, 1 event/line, memory store", runs[-1].naive_lines, _median(runs, "naive_seconds"), naive,
         f"esep needs >= {TARGET_VS_NAIVE:.0f}x = {TARGET_VS_NAIVE * naive:,.0f}"
         + (f"; {runs[-1].naive_capped}" if runs[-1].naive_capped else "")),
        ("esep worker (1 worker)", runs[-1].esep_lines, _median(runs, "esep_seconds"), esep,
         f"{summary['ratio_vs_naive']:.1f}x naive {mark[summary['pass']['vs_naive']]}, "
         f"{summary['ratio_vs_raw']:.2f}x raw {mark[summary['pass']['vs_raw']]}"),
    ]
    rcp = summary.get("recipients")
    ledger = [] if not rcp else [
        ("recipients agent: decisions (1 worker)", rcp["decisions"], rcp["decisions_s"], rcp["decisions_per_s"],
         "decisions/s: assign -> fund.decision-results + recipients.accounts"),
        ("recipients agent: transfers (1 worker)", rcp["transfers"], rcp["transfers_s"], rcp["transfers_per_s"],
         "transfers/s: payment -> posted.social-payments + recipients.accounts")]
    w = max(len(r[0]) for r in rows + ledger)
    rule = f"{'-' * w}-+-{'-' * 9}-+-{'-' * 8}-+-{'-' * 9}-+-{'-' * 40}"
    out = [f"esep bench{med}: {summary['orders']:,} orders x {summary['lines_per_order']} lines, "
           f"{runs[-1].registry_persons:,} registry persons, broker {summary['broker']}, "
           f"{summary['machine']['cores']} cores",
           "",
           f"{'implementation':<{w}} | {'lines':>9} | {'seconds':>8} | {'lines/s':>9} | vs target",
           rule]
    for name, lines, seconds, rate, note in rows:
        out.append(f"{name:<{w}} | {lines:>9,} | {seconds:>8.2f} | {rate:>9,.0f} | {note}")
    if ledger:
        out += [rule, f"{'second ledger (Part 2)':<{w}} | {'records':>9} | {'seconds':>8} | {'records/s':>9} | what"]
        for name, n, seconds, rate, note in ledger:
            out.append(f"{name:<{w}} | {n:>9,} | {seconds:>8.2f} | {rate:>9,.0f} | {note}")
    out += [
        "",
        f"latency at half rate ({summary['latency_orders']:,} orders at {summary['latency_rate_orders_per_s']:,.1f}"
        f" orders/s): p50 {summary['p50_ms']:.0f} ms, p99 {summary['p99_ms']:.0f} ms "
        f"(target <= {TARGET_P99_MS:.0f} ms: {mark[summary['pass']['p99_ms']]})",
        f"lines_per_s / naive = {summary['ratio_vs_naive']:.2f} (target >= {TARGET_VS_NAIVE:.0f}: "
        f"{mark[summary['pass']['vs_naive']]})",
        f"lines_per_s / raw   = {summary['ratio_vs_raw']:.3f} (target >= {TARGET_VS_RAW}: "
        f"{mark[summary['pass']['vs_raw']]})",
        f"results: every order got one: {'yes' if summary['all_orders_have_results'] else 'NO'}; "
        f"{summary['lines_posted']:,} lines posted + {summary['lines_refunded']:,} refunded "
        f"({'as expected by construction' if summary['results_match_expected'] else 'NOT as expected'})",
        f"registry: {runs[-1].registry_persons:,} persons loaded in "
        f"{summary['registry_load_s'] or float('nan'):.1f} s; "
        f"worker ready {summary['worker_ready_s']:.1f} s after start, idle {summary['worker_settle_s']:.1f} s later "
        f"({summary['worker_settle_cpu_s']:.1f} CPU s of start-up work; orders sent after it)",
        f"worker: ESEP_BATCH_SIZE={summary['worker']['batch_size']}, "
        f"ESEP_BATCH_WITHIN_MS={summary['worker']['batch_within_ms']:g}, {summary['worker']['partitions']} partitions, "
        f"ESEP_PENDING=off (lines decided at once, no registry-lag hold)",
    ]
    reports = summary["reports"]
    if "lines_per_s_without_reports" in reports:
        cost = reports["cost_of_reports"]
        out.append(f"monthly report streams (ESEP_REPORTS): {reports['lines_per_s_with_reports']:,.0f} lines/s with, "
                   f"{reports['lines_per_s_without_reports']:,.0f} without"
                   + (f" ({cost:.1%} of posting throughput)" if cost is not None else ""))
    if reports.get("worker_cpu_us_per_line_without_reports") is not None:
        out.append(f"CPU per line, worker + broker: {reports['worker_cpu_us_per_line_with_reports']:.0f} + "
                   f"{reports['broker_cpu_us_per_line_with_reports'] or 0:.0f} us with the report streams, "
                   f"{reports['worker_cpu_us_per_line_without_reports']:.0f} + "
                   f"{reports['broker_cpu_us_per_line_without_reports'] or 0:.0f} us without")
    if reports["report_catch_up_s"] is not None:
        out.append(f"report streams caught up {reports['report_catch_up_s']:.1f} s after the last result")
    busiest = summary["others_cores_max"]
    if busiest is not None:
        out.append(f"machine: other processes used at most {busiest:.2f} cores during a phase"
                   + (" -- the figures are NOT reliable, run again on a quiet machine" if busiest > BUSY_CORES
                      else " (quiet)"))
    from .bench_scale import render_rows

    out += render_rows(summary, runs)
    if not all(summary["pass"].values()):
        out.append("a target was missed: profile the worker (ESEP_BENCH_PROFILE=<dir> esep bench runs py-spy on it)")
    return "\n".join(out)


def _resolve_broker(settings: Settings, res: Resources) -> tuple[str, str]:
    if settings.broker:
        from streams.settings import strip_scheme

        bootstrap = strip_scheme(settings.broker)
        host, _, port = bootstrap.split(",")[0].rpartition(":")
        if host in ("127.0.0.1", "localhost") and port.isdigit():
            res.broker_pid = _listening_pid(int(port))  # on this machine: its CPU is part of the run
        return bootstrap, "external (ESEP_BROKER)"
    from tools import localkafka

    running = localkafka.status(settings.kafka_dir)
    if running is not None:
        say(f"using the local Kafka {running.version} already running at {running.bootstrap} (left running)")
        res.broker_pid = running.pid
        return running.bootstrap, f"local Kafka {running.version}"
    say(f"starting a local Kafka {settings.kafka_version} under {settings.kafka_dir}")
    info = localkafka.start(settings.kafka_dir, version=settings.kafka_version, log=lambda m: say(m))
    res.broker_dir = settings.kafka_dir
    res.broker_pid = info.pid
    return info.bootstrap, f"local Kafka {info.version}"


def run_bench(settings: Settings, orders: int = 5000, lines: int = 20, persons: int = 100_000,
              out: str | os.PathLike | None = "bench-results/bench.json", runs: int = 1, *,
              naive_lines: int | None = None, latency_orders: int | None = None,
              latency_seconds: float = LATENCY_SECONDS, profile_dir: str | os.PathLike | None = None,
              samework: bool = True, first_start: bool = True,
              compare_reports: bool = True, recipients: int = 3000, latency_rate: float | None = None) -> int:
    """Run the benchmark, print the table, write the JSON to `out`. 0 when the run completed (targets
    met or not), 1 when it could not. Unset keyword options fall back to ESEP_BENCH_NAIVE_LINES,
    ESEP_BENCH_LATENCY_ORDERS and ESEP_BENCH_PROFILE."""
    for name, value in (("orders", orders), ("lines", lines), ("persons", persons), ("runs", runs)):
        if value < 1:
            say(f"error: {name} must be at least 1, not {value}")
            return 2
    if recipients < 0:
        say(f"error: recipients must be 0 (skip phase 6) or more, not {recipients}")
        return 2
    try:
        opts = Options(
            orders=orders, lines=lines, persons=persons, runs=runs,
            naive_lines=naive_lines if naive_lines is not None else _env_int("ESEP_BENCH_NAIVE_LINES"),
            latency_orders=latency_orders if latency_orders is not None else _env_int("ESEP_BENCH_LATENCY_ORDERS"),
            latency_seconds=latency_seconds,
            profile_dir=_profile_dir(profile_dir),
            samework=samework, first_start=first_start,
            compare_reports=compare_reports,
            recipients=recipients,
            latency_rate=latency_rate,
        )
    except BenchError as exc:
        say(f"error: {exc}")
        return 2
    res = Resources(run_id=f"{PREFIX}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}")
    previous_term = _sigterm_as_interrupt()
    # aiokafka warns on every retried produce while a new topic's leaders settle: noise here.
    client_log = logging.getLogger("aiokafka")
    previous_level = client_log.level
    client_log.setLevel(logging.ERROR)
    try:
        bootstrap, broker = _resolve_broker(settings, res)
        res.bootstrap = bootstrap
        say(f"run {res.run_id} on {bootstrap}; worker batch {settings.batch_size} within "
            f"{settings.batch_within_s * 1000:g} ms")
        # Recorded only: the load average lags (it still shows a run that just ended); the per-phase
        # CPU of other processes is what tells whether the figures can be trusted.
        load_at_start = _load_avg()
        results = asyncio.run(_bench(res, settings, opts))
        summary = summarize(results, opts, settings, broker, load_at_start)
        print()
        print(render(summary, results), flush=True)
        if out:
            path = Path(out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
            print(f"\nJSON written to {path}", flush=True)
        return 0
    except (BenchError, ChildError) as exc:
        say(f"error: {exc}")
        return 1
    finally:
        res.close()
        client_log.setLevel(previous_level)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def _listening_pid(port: int) -> int | None:
    """The local process listening on TCP `port` (Linux /proc), or None."""
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for row in f.read().splitlines()[1:]:
                    cols = row.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                        inodes.add(cols[9])
        if not inodes:
            return None
        targets = {f"socket:[{i}]" for i in inodes}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        return int(pid)
            except OSError:
                continue
    except (OSError, ValueError, IndexError):
        return None
    return None


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _profile_dir(given) -> Path | None:
    chosen = given or os.environ.get("ESEP_BENCH_PROFILE")
    return Path(chosen) if chosen else None


def _sigterm_as_interrupt():
    """SIGTERM stops the run like Ctrl-C does, so that `finally` stops what it started."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def add_scale_flags(p) -> None:
    """Issue 14's flags, shared by `esep bench` and `python -m tools.bench`."""
    import argparse

    p.add_argument("--same-work", action=argparse.BooleanOptionalAction, default=True,
                   help="the same-work reference: this workload's work in a plain aiokafka loop (default on)")
    p.add_argument("--first-start", action=argparse.BooleanOptionalAction, default=True,
                   help="a fresh worker with --persons persons and its orders already in Kafka, then restarts "
                        "after SIGKILL on the same and on a new port (default on)")


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.bench`: the same as `esep bench`, with the options the CLI does not have yet."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=5000)
    p.add_argument("--lines", type=int, default=20, help="lines per order")
    p.add_argument("--persons", type=int, default=100_000,
                   help="registry size (up to 5,000,000; the warm phases use at most 100,000 of them)")
    p.add_argument("--runs", type=int, default=1, help="repeat each measurement and keep the median")
    p.add_argument("--json", default="bench-results/bench.json", help="where to write the results")
    p.add_argument("--naive-lines", type=int, default=None, help="cap the naive faust reference at this many lines")
    p.add_argument("--latency-orders", type=int, default=None, help="orders of the latency phase (default ~15 s)")
    p.add_argument("--latency-seconds", type=float, default=LATENCY_SECONDS)
    p.add_argument("--latency-rate", type=float, default=None,
                   help="orders/s of the latency phase (default: half the rate measured in phase 3)")
    p.add_argument("--profile", default=None, help="folder for a py-spy profile of the worker during phase 3")
    p.add_argument("--no-report-compare", dest="report_compare", action="store_false",
                   help="skip phase 5 (the worker again with ESEP_REPORTS=off)")
    p.add_argument("--recipients", type=int, default=3000,
                   help="recipients of phase 6, the recipients agent's throughput (0: skip it)")
    add_scale_flags(p)
    args = p.parse_args(argv)
    settings = Settings.from_env()
    try:
        return run_bench(settings, orders=args.orders, lines=args.lines, persons=args.persons, out=args.json,
                         runs=args.runs, naive_lines=args.naive_lines, latency_orders=args.latency_orders,
                         latency_seconds=args.latency_seconds, profile_dir=args.profile,
                         samework=args.same_work, first_start=args.first_start,
                         compare_reports=args.report_compare, recipients=args.recipients,
                         latency_rate=args.latency_rate)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
