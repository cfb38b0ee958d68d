"""`python -m tools.statement_load`: statement requests at once while the worker posts (issue 13).

On run-scoped topics of the configured broker (or a local one started for the run, as `esep bench`
does): a synthetic registry, a warm-up day of orders (posted, and every account caught up), then
notifications fed at `--lines-per-s` (default: half the full-speed rate of the warm-up day, which
is sent all at once and measured in the same run, like `esep bench`'s worker phase) while
`--requests` statement requests (default 1,000) are sent all at once to the worker(s) on
127.0.0.1, over at most `--connections` connections. Reported: the statements' latency (from the
moment all were sent; p50, p99, max) and statuses, and the posting rate (lines decided per second
while the requests were in flight, from the results' Kafka timestamps) with the posting latency of
the orders sent meanwhile (result timestamp minus send time). A measurement, not a test: exit 0 when
the run completed, whatever the figures."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from streams.access import add_token
from streams.settings import Settings

from .bench import _cpu_seconds_by_pid
from .reading import TopicReader
from .runner import broker_for, metric_value, percentile
from .scope import RunScope
from .synthetic import Scenario, make_orders, make_registry

def say(msg: str) -> None:
    print(f"statement-load: {msg}", flush=True)


async def _produce(bootstrap: str, topic: str, records, paced_lines_per_s: float | None = None,
                   lines: int = 20, sent_at: dict | None = None, stop: asyncio.Event | None = None) -> int:
    """Send records (all at once, or paced in 20 ms ticks); returns how many were sent."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    sent = 0
    try:
        if paced_lines_per_s is None:
            await asyncio.gather(*[await producer.send(topic, r.value, key=r.key) for r in records])
            return len(records)
        per_tick = paced_lines_per_s / lines * 0.02
        started = time.monotonic()
        pending = []
        for r in records:
            if stop is not None and stop.is_set():
                break
            due = started + sent / per_tick * 0.02
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(await producer.send(topic, r.value, key=r.key))
            if sent_at is not None and r.kind == "order":
                sent_at[r.expect["notification_id"]] = time.time()
            sent += 1
        await asyncio.gather(*pending)
        return sent
    finally:
        await producer.stop()


async def _requests(ports: list[int], iins: list[str], token: str, connections: int) -> list[tuple[int, float]]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()

        async def one(i: int, iin: str) -> tuple[int, float]:
            url = f"http://127.0.0.1:{ports[i % len(ports)]}/v1/accounts/{iin}/statement"
            try:
                async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0
            return status, time.perf_counter() - started

        return await asyncio.gather(*[one(i, iin) for i, iin in enumerate(iins)])


def _posted_iins(bootstrap: str, topic: str) -> list[str]:
    with TopicReader(bootstrap, [topic], client_id="esep-load") as reader:
        return sorted({json.loads(r.value)["iin"] for r in reader.read_to_end()})


def _results(bootstrap: str, topic: str) -> list[tuple[str, int, int]]:
    """(notification_id, lines_total, Kafka timestamp ms) of every result."""
    with TopicReader(bootstrap, [topic], client_id="esep-load") as reader:
        out = []
        for r in reader.read_to_end():
            v = json.loads(r.value)
            out.append((v["notification_id"], v["lines_total"], r.timestamp))
        return out


def _broker_pid(settings: Settings) -> set[int]:
    """The local broker's pid when the run uses one (its CPU is the run's, not another's)."""
    if settings.broker:
        return set()
    from . import localkafka

    info = localkafka.status(settings.kafka_dir)
    return {info.pid} if info is not None else set()


def _wait(predicate, timeout_s: float, what: str, workers) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}\n" + "\n".join(w.log_tail(15) for w in workers))


def run_load(settings: Settings, *, requests: int = 1000, connections: int = 1000, workers: int = 1,
             persons: int = 50_000, warmup_orders: int = 3000, lines: int = 20,
             lines_per_s: float | None = None, lead_s: float = 5.0, seed: int = 430, accounts: bool = True,
             work_dir: Path | None = None, log=say) -> dict:
    """Run the measurement; returns the figures (also printed by `main`)."""
    run_id = f"load-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    work = Path(work_dir) if work_dir else Path(settings.data_dir) / "statement-load" / run_id
    work.mkdir(parents=True, exist_ok=True)
    tokens_file = work / "tokens.json"
    token = add_token(tokens_file, "load", "operator")
    with broker_for(settings, log=log) as bootstrap:
        scope = RunScope(bootstrap, run_id, work / "data", partitions=settings.partitions, log_dir=work,
                         env={"ESEP_PENDING": "off", "ESEP_TOKENS_FILE": str(tokens_file), "ESEP_LOG_LEVEL": "info",
                              "ESEP_API_RATE": str(max(requests, 1) * 10), "ESEP_API_BURST": str(requests * 2),
                              "ESEP_SESSION_TIMEOUT_S": "10",
                              # Without accounts (a reference for the posting rate) every statement is a 501.
                              **({} if accounts else {"ESEP_ACCOUNT_SOURCES": "none"})})
        try:
            scope.create_topics()
            t = scope.topics
            registry = make_registry(persons, seed=seed)
            log(f"run {run_id} on {bootstrap}: registry of {persons:,}, {workers} worker(s)")

            class Rec:  # what _produce needs of a record
                def __init__(self, key, value):
                    self.key, self.value, self.kind = key, value, "registry"

            reg = [Rec(p["iin"].encode(), json.dumps(p, ensure_ascii=False).encode()) for p in registry]
            asyncio.run(_produce(bootstrap, t.registry_persons, reg))
            procs = [scope.worker(f"w{i + 1}").start() for i in range(workers)]
            for w in procs:
                w.wait_ready(300)
            warm = make_orders(registry, warmup_orders, lines, seed=seed, scenario=Scenario.clean(), id_prefix="WARM")
            warm_sent = time.time()
            asyncio.run(_produce(bootstrap, t.credit_notifications, warm))

            def settled() -> bool:
                texts = [w.metrics_text() for w in procs]
                decided = sum(metric_value(x, "esep_notifications_total", 'outcome="decided"') for x in texts)
                posted = sum(metric_value(x, "esep_lines_total", 'outcome="posted"') for x in texts)
                applied = sum(metric_value(x, "esep_account_records_total", 'source="contributions"') for x in texts)
                return decided >= warmup_orders and (applied >= posted or not accounts)

            _wait(settled, 600, "the warm-up day posted and in the accounts", procs)
            warm_results = _results(bootstrap, t.order_results)
            # The full-speed rate of this run: the warm-up day was offered all at once.
            full_rate = sum(r[1] for r in warm_results) / max(max(r[2] for r in warm_results) / 1000 - warm_sent, 1e-3)
            if lines_per_s is None:
                lines_per_s = full_rate / 2
            iins = _posted_iins(bootstrap, t.posted_contributions)
            rng = random.Random(seed)
            asked = [rng.choice(iins) for _ in range(requests)]
            window = max(30.0, lead_s * 4)
            feed = make_orders(registry, int(lines_per_s / lines * window) + 1, lines, seed=seed + 1,
                               scenario=Scenario.clean(), id_prefix="LOAD")
            log(f"warm-up done ({warmup_orders} orders, {len(iins):,} accounts); feeding {lines_per_s:,.0f} lines/s, "
                f"{requests} statement requests after {lead_s:g} s over at most {connections} connections")
            sent_at: dict[str, float] = {}

            own = scope.pids() | {os.getpid()} | _broker_pid(settings)
            cpu_before = _cpu_seconds_by_pid()

            async def measure():
                stop = asyncio.Event()
                feeder = asyncio.ensure_future(_produce(bootstrap, t.credit_notifications, feed, lines_per_s, lines,
                                                        sent_at, stop))
                await asyncio.sleep(lead_s)
                began = time.time()
                answers = await _requests([w.port for w in procs], asked, token, connections)
                ended = time.time()
                await asyncio.sleep(2.0)
                stop.set()
                fed = await feeder
                return began, ended, answers, fed

            window_started = time.monotonic()
            began, ended, answers, fed = asyncio.run(measure())
            cpu_after = _cpu_seconds_by_pid()
            cpu_span = time.monotonic() - window_started
            others = sum(max(0.0, c - cpu_before.get(pid, 0.0)) for pid, c in cpu_after.items() if pid not in own)
            worker_cores = sum(max(0.0, cpu_after.get(w.pid, 0.0) - cpu_before.get(w.pid, 0.0)) for w in procs)
            load_ids = set(sent_at)
            _wait(lambda: sum(metric_value(w.metrics_text(), "esep_notifications_total", 'outcome="decided"')
                              for w in procs) >= warmup_orders + len(load_ids), 300, "every fed order decided", procs)
            results = [r for r in _results(bootstrap, t.order_results) if r[0] in load_ids]
            in_window = [r for r in results if began * 1000 <= r[2] <= ended * 1000]
            span = max(ended - began, 1e-3)
            latencies_ms = [r[2] - sent_at[r[0]] * 1000 for r in results]
            statuses = Counter(s for s, _ in answers)
            seconds = [d for s, d in answers if s == 200]
            figures = {
                "accounts": accounts,
                "requests": requests,
                "connections": min(connections, requests),
                "workers": workers,
                "statuses": dict(sorted(statuses.items())),
                "statement_p50_ms": round(percentile(seconds, 50) * 1000, 1),
                "statement_p99_ms": round(percentile(seconds, 99) * 1000, 1),
                "statement_max_ms": round(max(seconds) * 1000, 1) if seconds else None,
                "requests_span_s": round(span, 2),
                "full_speed_lines_per_s": round(full_rate),
                "offered_lines_per_s": round(lines_per_s),
                "posted_lines_per_s_during_requests": round(sum(r[1] for r in in_window) / span),
                "posted_lines_per_s_whole_feed": round(sum(r[1] for r in results) / max(
                    (max(r[2] for r in results) - min(r[2] for r in results)) / 1000, 1e-3)) if results else 0,
                "orders_fed": len(load_ids),
                "posting_p50_ms": round(percentile(latencies_ms, 50), 1),
                "posting_p99_ms": round(percentile(latencies_ms, 99), 1),
                "worker_cores": round(worker_cores / cpu_span, 2),
                # On a shared machine the figures move with what else runs: the run says how much did.
                "other_processes_cores": round(others / cpu_span, 2),
                "cpus": os.cpu_count(),
            }
            return figures
        finally:
            scope.close(delete_topics=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.statement_load", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--connections", type=int, default=1000, help="at most this many open at once")
    p.add_argument("--workers", type=int, default=1, help="requests spread over them (a share routed)")
    p.add_argument("--persons", type=int, default=50_000)
    p.add_argument("--warmup-orders", type=int, default=3000,
                   help="the warm-up day, sent at once: its rate is the full-speed rate")
    p.add_argument("--lines-per-s", type=float, default=None,
                   help="the feed's rate during the requests (default: half the warm-up day's full-speed rate)")
    p.add_argument("--no-accounts", action="store_true", help="workers keep no accounts: the posting rate's reference")
    p.add_argument("--json", default="bench-results/statement-load.json")
    args = p.parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    settings = Settings.from_env()
    figures = run_load(settings, requests=args.requests, connections=args.connections, workers=args.workers,
                       persons=args.persons, warmup_orders=args.warmup_orders, lines_per_s=args.lines_per_s,
                       accounts=not args.no_accounts)
    print(json.dumps(figures, indent=2))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
