"""The first-start phase of `esep bench` (issue 14, items 1-4 and 6): a fresh worker against a
registry of `--persons` persons with its notifications already in Kafka, as a deployment begins and
as every new worker of a growing group begins.

On topics of its own (a second run scope), in this order:
1. the registry: the bench's synthetic persons (the ones the orders name) plus cheap valid persons
   (`tools.scale_probe.person`) up to `--persons`, produced in hand-made batches;
2. the broker's raw read rate of that registry (a plain consumer that stores nothing: the limit the
   replica's load approaches), in a child process;
3. the notifications (as many as phase 3's, fresh ids) produced BEFORE the worker starts;
4. a worker with an empty data dir: ready after start (/ready), its RSS at ready and at its peak
   with the processes it started (the report process, the registry's loaders: VmRSS summed, sampled
   from /proc), and the worker process's alone (with its VmHWM), the lines/s of the orders it posts during its first start
   (the registry-change publisher records every person's first version meanwhile), and its cores;
5. once it idles: the disk of its data dir (per million persons), then as many fresh orders again:
   the warm rate of the same worker, registry and run; the first-start rate is judged against it;
6. SIGKILL, restart on the same web port (the replica is on disk): ready, and posting again (the
   results of a few orders sent while it was down);
7. SIGKILL, restart with the same worker id on a NEW web port: the same two figures.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

SAMPLE_PERSONS = 100_000  # synthetic persons the orders name (tools.synthetic); the rest are filler
TARGET_READY_S = 60.0  # issue 14, item 2: a 5-million-person registry ready within 60 s of a first start
TARGET_RSS_MIB = 300.0  # item 1: at any registry size
TARGET_FIRST_VS_WARM = 0.9  # item 3: posting during a first start against the warm rate of the same run
TARGET_RESTART_S = 15.0  # item 2: ready after a SIGKILL, the replica on disk, at any size
NEW_ADDRESS_SLACK_S = 5.0  # item 4: "as fast as the same address": within this of it
PROBE_ORDERS = 3  # orders sent while the worker is down, to time "posting again" after a restart
SAMPLE_S = 0.2
MiB = 1024 * 1024


# ------------------------------------------------------------------------------------------------
# The registry, cheaply

async def fill_registry(bootstrap: str, topic: str, sample: list[dict], total: int) -> tuple[int, float]:
    """`sample` then valid filler persons (none with an IIN of the sample) until `total` persons,
    in hand-made batches (send() costs ~25 µs a record, too slow for millions). Returns (persons,
    seconds). Partition = crc32(IIN): the replica reads every partition, any spread will do."""
    from aiokafka import AIOKafkaProducer

    from tables.metadata import topic_partitions

    from .scale_probe import person

    started = time.monotonic()
    partitions = len(await topic_partitions(bootstrap, topic))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_batch_size=1024 * 1024,
                                max_request_size=8 * 1024 * 1024, linger_ms=20)
    await producer.start()
    made = 0
    try:
        batches = [producer.create_batch() for _ in range(partitions)]
        pending: list = []

        async def add(key: bytes, value: bytes) -> None:
            p = zlib.crc32(key) % partitions
            if batches[p].append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=key, value=value, timestamp=None)
                if len(pending) > 32:
                    await asyncio.gather(*pending)
                    pending.clear()

        taken = set()
        for p in sample[:total]:
            taken.add(p["iin"])
            await add(p["iin"].encode(), orjson.dumps(p))
            made += 1
        i = 0
        while made < total:
            rec = person(i)
            i += 1
            if rec is None or rec[0].decode() in taken:
                continue
            await add(*rec)
            made += 1
        for p, b in enumerate(batches):
            if b.record_count():
                pending.append(await producer.send_batch(b, topic, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return made, time.monotonic() - started


async def raw_read(scope, topic: str) -> dict:
    """The broker's raw read of `topic` (tools.scale_probe's child: fetch everything, store nothing)."""
    child = scope.spawn([sys.executable, "-m", "tools.scale_probe", "--child", "raw", scope.bootstrap, topic],
                        "raw-registry-read", stdout=subprocess.PIPE)
    try:
        line = await asyncio.to_thread(child.proc.stdout.readline)
    finally:
        child.stop(20.0)
    if not line:
        from .bench import BenchError

        raise BenchError(f"the raw registry read exited ({child.returncode}):\n{child.log_tail()}")
    return json.loads(line)


# ------------------------------------------------------------------------------------------------
# Watching the worker process

def read_status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB (Linux /proc); empty when it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    out[name] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


@dataclass
class ProcessWatch:
    """RSS and CPU of a worker with the processes it started (the report process, the registry's
    loaders), sampled every SAMPLE_S in the background; the worker process's own RSS beside."""

    pid: int
    # (wall time, RSS KiB of the tree, CPU s of the tree, RSS KiB of the worker process)
    samples: list[tuple[float, int, float, int]] = field(default_factory=list)
    task: asyncio.Task | None = None

    def start(self) -> "ProcessWatch":
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    def sample(self) -> tuple[float, int, float, int] | None:
        from .bench import _tree_cpu
        from .process import descendants

        own = read_status_kib(self.pid).get("VmRSS")
        cpu = _tree_cpu(self.pid)
        if own is None or cpu is None:
            return None
        rss = own + sum(read_status_kib(child).get("VmRSS", 0) for child in descendants(self.pid))
        s = (time.time(), rss, cpu, own)
        self.samples.append(s)
        return s

    def rss_mib(self) -> float:
        s = self.sample()
        return (s or self.samples[-1])[1] / 1024 if (s or self.samples) else 0.0

    def worker_rss_mib(self) -> float:
        return self.samples[-1][3] / 1024 if self.samples else 0.0

    def peak_mib(self) -> float:
        """The sampled maximum of the tree's RSS, and at least the worker process's own high-water mark."""
        hwm = read_status_kib(self.pid).get("VmHWM", 0)
        return max([hwm] + [s[1] for s in self.samples]) / 1024

    def worker_peak_mib(self) -> float:
        """The worker process alone: the kernel's high-water mark (between samples too)."""
        hwm = read_status_kib(self.pid).get("VmHWM", 0)
        return max([hwm] + [s[3] for s in self.samples]) / 1024

    def cores_between(self, t0: float, t1: float) -> float | None:
        """Average cores used between two wall times (the samples nearest inside them)."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.5:
            return None
        return (inside[-1][2] - inside[0][2]) / (inside[-1][0] - inside[0][0])

    def cpu_s(self) -> float | None:
        return self.samples[-1][2] if self.samples else None

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


def disk_mib(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total / MiB


# ------------------------------------------------------------------------------------------------
# Results of a set of orders

@dataclass
class Posted:
    orders: int
    lines: int
    first_ms: int
    last_ms: int
    lines_per_s: float
    posted: int
    refunded: int


async def await_orders(tail, results, ids: set[str], line_count: dict[str, int], worker, what: str,
                       quiet_s: float = 180.0) -> Posted:
    """Until every id in `ids` has a result; the rate from its first result to its last (the first
    result's lines were decided before the clock started: left out, as in phase 3)."""
    from .bench import BenchError, say

    last_new = time.monotonic()
    last_report = time.monotonic()
    while not ids.issubset(results.first):
        worker.check_alive()
        new = results.add(await tail.apoll(500))
        now = time.monotonic()
        if any(nid in ids for nid, _, _ in new):
            last_new = now
        elif now - last_new > quiet_s:
            missing = len(ids - set(results.first))
            raise BenchError(f"{what}: no new result in {quiet_s:.0f} s, {missing:,} orders without one:\n"
                             f"{worker.log_tail()}")
        if now - last_report >= 5.0:
            last_report = now
            done = ids & set(results.first)
            say(f"  {what}: {len(done):,}/{len(ids):,} orders")
    firsts = sorted((results.first[nid][0], line_count[nid]) for nid in ids)
    seconds = max(1e-3, (firsts[-1][0] - firsts[0][0]) / 1000)
    total = sum(n for _, n in firsts)
    values = [results.first[nid][1] for nid in ids]
    return Posted(len(ids), total, firsts[0][0], firsts[-1][0],
                  (total - firsts[0][1]) / seconds if len(firsts) > 1 else 0.0,
                  sum(v["lines_posted"] for v in values), sum(v["lines_refunded"] for v in values))


def _orders_of(records) -> tuple[set[str], dict[str, int]]:
    orders = [rec for rec in records if rec.kind == "order"]
    return ({rec.expect["notification_id"] for rec in orders},
            {rec.expect["notification_id"]: rec.expect["line_count"] for rec in orders})


# ------------------------------------------------------------------------------------------------
# The phase

async def phase_first_start(res, settings, opts, registry: list[dict], rep: int, r) -> None:
    from rules.calendar import ALMATY
    from streams.settings import Settings

    from .bench import (SEED, BenchError, CpuWatch, Results, _produce, _start_profiler, _stop_profiler,
                        registry_load_s, say, wait_settled)
    from .reading import TopicReader
    from .synthetic import Scenario, make_orders, summary_of

    persons = opts.persons
    fs: dict = {"persons": persons}
    r.first_start = fs
    say(f"phase first start: a fresh worker, {persons:,} registry persons and {opts.orders:,} orders "
        f"already in Kafka")
    run_id = f"{res.run_id}-{rep}-fs"
    workdir = Path(tempfile.mkdtemp(prefix=f"esep-{run_id}-"))
    res.temp_dirs.append(workdir)
    scope = res.scope(run_id, workdir, settings)
    scope.create_topics()
    topics = scope.topics

    made, fill_s = await fill_registry(res.bootstrap, topics.registry_persons, registry, persons)
    fs.update(registry_fill_s=round(fill_s, 1))
    say(f"  registry: {made:,} persons produced in {fill_s:.1f} s ({len(registry):,} that the orders name)")
    raw = await raw_read(scope, topics.registry_persons)
    fs.update(raw_read_s=round(raw["seconds"], 2), raw_read_cpu_s=round(raw["cpu_s"], 2),
              registry_topic_mib=round(raw["bytes"] / MiB, 1))
    say(f"  broker's raw read of the registry: {raw['records']:,} records, {raw['bytes'] / MiB:.0f} MiB "
        f"in {raw['seconds']:.1f} s ({raw['cpu_s']:.1f} CPU s)")

    now = datetime.now(ALMATY)
    first = make_orders(registry, opts.orders, opts.lines, SEED + 500 + rep, Scenario.benchmark(),
                        received_at=lambda: now, id_prefix=f"FS{rep}")
    warm = make_orders(registry, opts.orders, opts.lines, SEED + 600 + rep, Scenario.benchmark(),
                       received_at=lambda: now, id_prefix=f"FW{rep}")
    first_ids, line_count = _orders_of(first)
    warm_ids, warm_count = _orders_of(warm)
    line_count.update(warm_count)
    await _produce(res.bootstrap, ((topics.credit_notifications, rec.key, rec.value) for rec in first),
                   "notification records (before the worker starts)")

    tail = TopicReader(res.bootstrap, [topics.order_results])
    results = Results()
    worker = scope.worker("w1")
    worker_dir = Settings.from_env(worker.env).worker_dir
    load_timeout = 300.0 + persons * 120e-6  # 120 µs a person: ~8x the replica's CPU cost, for a loaded machine
    watch = CpuWatch(res)
    worker.start()
    proc = ProcessWatch(worker.pid).start()
    profiler = None
    try:
        ready_s = await asyncio.to_thread(worker.wait_ready, load_timeout)
        ready_wall = time.time()
        fs.update(ready_s=round(ready_s, 2), rss_at_ready_mib=round(proc.rss_mib(), 1),
                  worker_process_rss_at_ready_mib=round(proc.worker_rss_mib(), 1),
                  cpu_s_at_ready=round(proc.cpu_s() or 0.0, 1), replica_load_s=registry_load_s(worker))
        if fs["replica_load_s"]:
            fs["replica_vs_raw_read"] = round(raw["seconds"] / fs["replica_load_s"], 3)
        say(f"  ready {ready_s:.1f} s after start (replica loaded in {fs['replica_load_s'] or float('nan'):.1f} s, "
            f"{fs['cpu_s_at_ready']:.1f} CPU s), RSS {fs['rss_at_ready_mib']:.0f} MiB")
        if opts.profile_dir is not None:
            profiler = _start_profiler(scope, worker, opts.profile_dir)
        broker = _Cores(res.broker_pid)
        got = await await_orders(tail, results, first_ids, line_count, worker, "first start")
        fs["first_start_broker_cores"] = broker.cores()
        changes_then = _metric(worker, "esep_registry_changes_total")
        if profiler is not None:
            _stop_profiler(profiler)
            profiler = None
        expected = summary_of(first)
        fs.update(first_start_orders=got.orders, first_start_lines=got.lines,
                  first_start_seconds=round((got.last_ms - got.first_ms) / 1000, 2),
                  first_start_lines_per_s=round(got.lines_per_s, 1),
                  first_result_after_ready_s=round(got.first_ms / 1000 - ready_wall, 2),
                  first_start_worker_cores=_round(proc.cores_between(got.first_ms / 1000, got.last_ms / 1000)),
                  registry_changes_at_last_result=changes_then,
                  first_start_results_match_expected=(got.posted == expected["lines_posted"]
                                                      and got.refunded == expected["lines_refunded"]))
        say(f"  first start: {got.lines:,} lines in {fs['first_start_seconds']:.2f} s = {got.lines_per_s:,.0f} "
            f"lines/s (worker {fs['first_start_worker_cores'] or float('nan'):.2f} cores, broker "
            f"{fs['first_start_broker_cores'] or float('nan'):.2f}; "
            f"{changes_then or 0:,.0f} of {persons:,} first versions recorded by the last result)")

        # The publisher records every person's first version: ~120 CPU µs a person, several times that in
        # wall time on a loaded machine.
        settle_s, settle_cpu = await wait_settled(worker, timeout=300.0 + persons * 800e-6)
        fs.update(settle_after_ready_s=round(time.time() - ready_wall, 1), settle_cpu_s=round(settle_cpu, 1),
                  peak_rss_first_start_mib=round(proc.peak_mib(), 1),
                  registry_changes_at_settle=_metric(worker, "esep_registry_changes_total"))
        parts = {p.name: disk_mib(p) for p in worker_dir.iterdir() if p.is_dir()} if worker_dir.exists() else {}
        total_disk = disk_mib(worker_dir) if worker_dir.exists() else 0.0
        per_m = max(persons, 1) / 1e6
        fs.update(disk_mib=round(total_disk, 1), disk_by_store_mib={k: round(v, 1) for k, v in sorted(parts.items())},
                  registry_disk_mib_per_million=round(parts.get("registry", 0.0) / per_m, 1),
                  disk_mib_per_million=round(total_disk / per_m, 1))
        say(f"  idle {fs['settle_after_ready_s']:.0f} s after ready ({settle_cpu:.0f} CPU s of start-up work); "
            f"peak RSS {fs['peak_rss_first_start_mib']:.0f} MiB; data dir {total_disk:.0f} MiB "
            f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(parts.items()))})")

        await _produce(res.bootstrap, ((topics.credit_notifications, rec.key, rec.value) for rec in warm),
                       "notification records (warm)")
        broker = _Cores(res.broker_pid)
        got = await await_orders(tail, results, warm_ids, line_count, worker, "warm")
        fs["warm_broker_cores"] = broker.cores()
        fs.update(warm_lines=got.lines, warm_seconds=round((got.last_ms - got.first_ms) / 1000, 2),
                  warm_lines_per_s=round(got.lines_per_s, 1),
                  warm_worker_cores=_round(proc.cores_between(got.first_ms / 1000, got.last_ms / 1000)),
                  peak_rss_mib=round(proc.peak_mib(), 1), worker_process_peak_rss_mib=round(proc.worker_peak_mib(), 1))
        fs["first_vs_warm"] = round(fs["first_start_lines_per_s"] / got.lines_per_s, 3) if got.lines_per_s else 0.0
        # On a shared machine the worker gets more or less of a core from one minute to the next: lines
        # per second of the worker's own CPU compare the two phases' costs whatever it got.
        if fs["first_start_worker_cores"] and fs["warm_worker_cores"]:
            first_per_cpu = fs["first_start_lines_per_s"] / fs["first_start_worker_cores"]
            warm_per_cpu = got.lines_per_s / fs["warm_worker_cores"]
            fs.update(first_start_lines_per_cpu_s=round(first_per_cpu, 1), warm_lines_per_cpu_s=round(warm_per_cpu, 1),
                      first_vs_warm_per_cpu=round(first_per_cpu / warm_per_cpu, 3))
        say(f"  warm, same worker: {got.lines:,} lines in {fs['warm_seconds']:.2f} s = {got.lines_per_s:,.0f} lines/s "
            f"(worker {fs['warm_worker_cores'] or float('nan'):.2f} cores, broker "
            f"{fs['warm_broker_cores'] or float('nan'):.2f}); first start / warm = "
            f"{fs['first_vs_warm']:.2f}")
        watch.report("first-start", r)

        await proc.stop()
        for label, new_port in (("restart", False), ("new_address", True)):
            worker = await _restart(res, scope, worker, tail, results, label, new_port, rep, registry, fs)
    finally:
        if profiler is not None:
            _stop_profiler(profiler)
        await proc.stop()
        tail.close()
        for w in scope.workers:
            w.stop()
    if not fs.get("first_start_results_match_expected", False):
        raise BenchError("first start: the results are not the expected ones (see the log above)")


async def _restart(res, scope, worker, tail, results, label: str, new_port: bool, rep: int, registry, fs: dict):
    """SIGKILL, a few orders sent while it is down, then the same worker id started again (on a new
    web port when `new_port`): seconds to /ready, and to the results of those orders."""
    from rules.calendar import ALMATY

    from .bench import SEED, _produce, say
    from .synthetic import Scenario, make_orders

    worker.kill()
    old_port = worker.port
    if new_port:
        worker = scope.worker(worker.worker_id)  # same id and data dir, another free port
    now = datetime.now(ALMATY)
    probe = make_orders(registry, PROBE_ORDERS, 2, SEED + 700 + rep + (1 if new_port else 0), Scenario.clean(),
                        received_at=lambda: now, id_prefix=f"K{'N' if new_port else 'S'}{rep}")
    ids, count = _orders_of(probe)
    await _produce(res.bootstrap, ((scope.topics.credit_notifications, rec.key, rec.value) for rec in probe),
                   f"probe orders (worker down, {label})")
    started = time.time()
    worker.start()
    ready_s = await asyncio.to_thread(worker.wait_ready, 300.0)
    await await_orders(tail, results, ids, count, worker, label)
    posting_s = max(results.first[nid][0] for nid in ids) / 1000 - started
    fs[f"{label}_ready_s"] = round(ready_s, 2)
    fs[f"{label}_posting_s"] = round(posting_s, 2)
    say(f"  {label.replace('_', ' ')} after SIGKILL (web port {old_port} -> {worker.port}): ready in {ready_s:.1f} s, "
        f"posting again (results of {len(ids)} orders sent while it was down) {posting_s:.1f} s after start")
    return worker


class _Cores:
    """Cores a process (the broker) used from now until `cores()` is called."""

    def __init__(self, pid: int | None):
        from .bench import _process_cpu

        self.pid, self.cpu_of = pid, _process_cpu
        self.at, self.cpu = time.monotonic(), (_process_cpu(pid) if pid else None)

    def cores(self) -> float | None:
        now = self.cpu_of(self.pid) if self.pid else None
        if now is None or self.cpu is None:
            return None
        return round((now - self.cpu) / max(1e-3, time.monotonic() - self.at), 2)


def _metric(worker, name: str) -> float | None:
    try:
        return worker.metric(name)
    except OSError:
        return None


def _round(x: float | None, n: int = 2) -> float | None:
    return None if x is None else round(x, n)


# ------------------------------------------------------------------------------------------------
# Summary and table

def summary_keys(runs) -> dict:
    """The first-start keys of the bench JSON: the last run's figures (one first start per run;
    rates are the median over runs)."""
    measured = [x.first_start for x in runs if x.first_start.get("warm_lines_per_s")]
    if not measured:
        return {}
    out = dict(measured[-1])
    for key in ("first_start_lines_per_s", "warm_lines_per_s", "first_vs_warm", "ready_s", "restart_ready_s",
                "new_address_ready_s", "restart_posting_s", "new_address_posting_s"):
        values = [m[key] for m in measured if m.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 3)
    return {"first_start": out}


def targets(fs: dict) -> tuple[dict, dict]:
    """(targets, pass) of the first-start figures."""
    t = {"first_start_ready_s": TARGET_READY_S, "rss_mib": TARGET_RSS_MIB, "first_vs_warm": TARGET_FIRST_VS_WARM,
         "restart_ready_s": TARGET_RESTART_S, "new_address_slack_s": NEW_ADDRESS_SLACK_S}
    p = {
        "first_start_ready_s": fs["ready_s"] <= TARGET_READY_S,
        "rss_mib": max(fs["rss_at_ready_mib"], fs["peak_rss_mib"]) < TARGET_RSS_MIB,
        "first_vs_warm": fs["first_vs_warm"] >= TARGET_FIRST_VS_WARM,
        "restart_ready_s": fs.get("restart_ready_s", float("inf")) <= TARGET_RESTART_S,
        "new_address": (fs.get("new_address_ready_s", float("inf"))
                        <= fs.get("restart_ready_s", 0.0) + NEW_ADDRESS_SLACK_S
                        and fs.get("new_address_posting_s", float("inf"))
                        <= fs.get("restart_posting_s", 0.0) + NEW_ADDRESS_SLACK_S),
    }
    return t, p


def table_rows(summary: dict, runs) -> list[tuple[str, str, str, bool | None]]:
    """(figure, measured, target, met or None) for every figure of the run, with its target."""
    rows: list[tuple[str, str, str, bool | None]] = []
    p = summary["pass"]
    warm_persons = runs[-1].registry_persons
    rows.append((f"esep worker, warm, {warm_persons:,} persons (lines/s)", f"{summary['lines_per_s']:,.0f}",
                 f">= {summary['targets']['vs_naive']:.0f}x naive = "
                 f"{summary['targets']['vs_naive'] * summary['naive_faust_lines_per_s']:,.0f}", p["vs_naive"]))
    rows.append(("  vs raw aiokafka ceiling",
                 f"{summary['ratio_vs_raw']:.2f}x of {summary['raw_ceiling_lines_per_s']:,.0f}",
                 f">= {summary['targets']['vs_raw']}x", p["vs_raw"]))
    if "same_work_lines_per_s" in summary:
        rows.append(("  vs same-work reference (aiokafka loop, same rules and registry)",
                     f"{summary['ratio_vs_same_work']:.2f}x of {summary['same_work_lines_per_s']:,.0f}",
                     f">= {summary['same_work_target']}x", p.get("vs_same_work")))
        if summary.get("esep_worker_cpu_us_per_line"):
            rows.append(("  CPU per line: esep worker / same-work reference (us)",
                         f"{summary['esep_worker_cpu_us_per_line']:.0f} / {summary['same_work_cpu_us_per_line']:.0f}",
                         "", None))
    rows.append(("latency p99 at half rate (ms)", f"{summary['p99_ms']:.0f} (p50 {summary['p50_ms']:.0f})",
                 f"<= {summary['targets']['p99_ms']:.0f}", p["p99_ms"]))
    fs = summary.get("first_start")
    if fs:
        n = fs["persons"]
        rows += [
            (f"first start, {n:,} persons: ready after start (s)",
             f"{fs['ready_s']:.1f} (replica {fs.get('replica_load_s') or float('nan'):.1f}; "
             f"raw read {fs['raw_read_s']:.1f})", f"<= {TARGET_READY_S:.0f} (issue: at 5M)", p["first_start_ready_s"]),
            ("  replica load vs broker's raw read rate", f"{fs.get('replica_vs_raw_read') or float('nan'):.2f}x",
             "-> 1x", None),
            ("  RSS at ready / peak, with its processes (MiB)",
             f"{fs['rss_at_ready_mib']:.0f} / {fs['peak_rss_mib']:.0f}", f"< {TARGET_RSS_MIB:.0f}", p["rss_mib"]),
            ("  the worker process alone (MiB)",
             f"{fs.get('worker_process_rss_at_ready_mib', 0):.0f} / {fs.get('worker_process_peak_rss_mib', 0):.0f}",
             "", None),
            ("  posting during first start (lines/s; worker, broker cores)",
             f"{fs['first_start_lines_per_s']:,.0f} ({_cores(fs, 'first_start')})", "", None),
            (f"  warm, same worker, {n:,} persons (lines/s; worker, broker cores)",
             f"{fs['warm_lines_per_s']:,.0f} ({_cores(fs, 'warm')})", "", None),
            ("  first start / warm (per worker CPU second)",
             f"{fs['first_vs_warm']:.2f}x ({fs.get('first_vs_warm_per_cpu') or float('nan'):.2f}x)",
             f">= {TARGET_FIRST_VS_WARM}x", p["first_vs_warm"]),
            ("  start-up work done (idle) after ready (s)", f"{fs['settle_after_ready_s']:.0f} "
             f"({fs['settle_cpu_s']:.0f} CPU s)", "", None),
            ("  data dir per million persons (MiB)", f"{fs['disk_mib_per_million']:.0f} (registry "
             f"{fs['registry_disk_mib_per_million']:.0f})", "stated", None),
            ("restart after SIGKILL, same port: ready / posting (s)",
             f"{fs['restart_ready_s']:.1f} / {fs['restart_posting_s']:.1f}", f"<= {TARGET_RESTART_S:.0f}",
             p["restart_ready_s"]),
            ("restart after SIGKILL, new web port: ready / posting (s)",
             f"{fs['new_address_ready_s']:.1f} / {fs['new_address_posting_s']:.1f}",
             f"same port + {NEW_ADDRESS_SLACK_S:.0f}", p["new_address"]),
        ]
    return rows


def _cores(fs: dict, phase: str) -> str:
    worker, broker = fs.get(f"{phase}_worker_cores"), fs.get(f"{phase}_broker_cores")
    return ", ".join("-" if c is None else f"{c:.2f}" for c in (worker, broker))


def render_rows(summary: dict, runs) -> list[str]:
    rows = table_rows(summary, runs)
    mark = {True: "PASS", False: "MISS", None: ""}
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len("target"), *(len(r[2]) for r in rows))
    out = ["", f"{'figure':<{w0}} | {'measured':>{w1}} | {'target':<{w2}} | met",
           f"{'-' * w0}-+-{'-' * w1}-+-{'-' * w2}-+-----"]
    out += [f"{a:<{w0}} | {b:>{w1}} | {c:<{w2}} | {mark[d]}" for a, b, c, d in rows]
    return out
