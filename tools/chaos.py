"""`esep chaos`: nothing lost and nothing doubled while things break. Two workers decide a stream
of synthetic notifications on a Kafka broker of the run's own; meanwhile workers are SIGKILLed
(and restarted, as a supervisor would), the broker is stopped and started again on the same data
dir and ports, persons reach the registry late and others change (renamed, deceased, deleted)
under orders already decided. Then `esep reconcile`'s checks must find 0 orders and 0 lines lost,
0 lines with two outcomes, every re-emission identical, and the amounts conserved to the tiyn.

Recovery is measured from each restart (a killed worker started again, the broker ready again) to
the first result again on every partition of `orders.results`, i.e. to every partition being
decided again (results are keyed like the notifications, so they share their partitions).

A measurement with a verdict: exit 0 when everything reconciled, 1 when not."""
from __future__ import annotations

import json
import logging
import random
import shutil
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from rules.calendar import ALMATY
from rules.money import format_tiyn
from streams.settings import Settings

from .reading import TopicReader
from .reconcile import Report, reconcile_topics, render
from .scope import RunScope
from .synthetic import Scenario, make_orders, make_registry, registry_changes, split_late, summary_of


def say(msg: str) -> None:
    print(f"chaos: {msg}", flush=True)


@dataclass
class ChaosOptions:
    orders: int = 5100  # over 100,000 lines: a few synthetic orders have fewer than 20
    lines: int = 20
    persons: int = 20_000
    kills: int = 5
    broker_restarts: int = 1
    rate: float = 40.0  # notifications per second: the stream must outlast the events
    seed: int = 430
    out: str | None = "chaos-results/chaos.json"
    workers: int = 2
    partitions: int = 4
    late_ratio: float = 0.01  # share of lines naming a person who reaches the registry mid-run
    changes_per_kill: int = 40  # registry changes published at each kill
    hold: bool = True  # the registry-lag hold on, its cut-off compressed into the run
    settle_timeout_s: float = 600.0
    work_dir: Path | None = None
    keep: bool = False  # keep the broker's data and the logs even when everything reconciled


@dataclass
class Event:
    kind: str  # "kill" or "broker"
    at_s: float  # since the feed started
    fed: float  # share of the records sent by then
    what: str
    restarted_at: float = 0.0  # wall clock (s) when it was running again
    first_result_s: float | None = None  # to the first result on any partition
    recovered_s: float | None = None  # to a result on every partition


@dataclass
class ChaosResult:
    orders: int = 0
    lines: int = 0
    records: int = 0
    workers: int = 0
    kills: int = 0
    broker_restarts: int = 0
    worker_exits: int = 0  # exits nobody asked for (the supervisor restarted them)
    registry_changes: int = 0
    late_persons: int = 0
    lost_orders: int = 0
    lost_lines: int = 0
    doubled_lines: int = 0
    reemissions: int = 0
    reemissions_differing: int = 0
    amount_sent_tiyn: int = 0
    amount_received_tiyn: int = 0
    amount_posted_tiyn: int = 0
    amount_refunded_tiyn: int = 0
    dead_letters_expected: int = 0
    dead_letters: int = 0
    breaches: int = 0
    seconds: float = 0.0
    events: list[Event] = field(default_factory=list)
    passed: bool = False


class Feeder(threading.Thread):
    """Sends the records at `rate` per second, like a bank, waiting for the acknowledgements every
    tenth of a second: while the broker is down the feed waits (and retries), as a bank's would,
    instead of buffering the rest of the stream."""

    def __init__(self, bootstrap: str, topic: str, records, rate: float):
        super().__init__(daemon=True, name="chaos-feeder")
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                      delivery_timeout_ms=600_000, max_block_ms=600_000,
                                      reconnect_backoff_ms=100, reconnect_backoff_max_ms=2000)
        self.topic = topic
        self.records = records
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None
        self.started_at = 0.0

    def run(self) -> None:
        try:
            self.started_at = time.monotonic()
            every = max(1, int(self.rate / 10))
            due = self.started_at
            for i, rec in enumerate(self.records):
                self.producer.send(self.topic, key=rec.key, value=rec.value)
                if (i + 1) % every == 0:
                    self.producer.flush()
                self.sent = i + 1
                # After a stall the stream goes on at its rate: what was due meanwhile comes later.
                due = max(due + 1 / self.rate, time.monotonic())
                time.sleep(max(0.0, due - time.monotonic()))
            self.producer.flush()
        except BaseException as exc:  # reported by the driver
            self.error = exc

    @property
    def fed(self) -> float:
        return self.sent / max(1, len(self.records))


class Results:
    """Results as they come (Kafka time and partition): progress, and recovery after each restart."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.reader = TopicReader(bootstrap, [topic], client_id="esep-chaos")
        self.partitions = partitions
        self.ids: set[str] = set()
        self.seen: list[tuple[float, int]] = []  # (timestamp s, partition)

    def poll(self) -> None:
        try:
            records = self.reader.poll_for(0.3)
        except Exception:  # the broker is restarting: read again later
            return
        for rec in records:
            self.ids.add(json.loads(rec.value)["notification_id"])
            self.seen.append((rec.timestamp / 1000.0, rec.partition))

    def recovery(self, since: float) -> tuple[float | None, float | None]:
        """Seconds from `since` (wall clock) to the first result, and to a result on every partition."""
        first: float | None = None
        per_partition: dict[int, float] = {}
        for ts, partition in self.seen:
            if ts >= since:
                first = ts if first is None else min(first, ts)
                per_partition[partition] = min(per_partition.get(partition, ts), ts)
        every = max(per_partition.values()) if len(per_partition) == self.partitions else None
        return (None if first is None else first - since), (None if every is None else every - since)

    def close(self) -> None:
        self.reader.close()


def _schedule(opts: ChaosOptions) -> list[tuple[float, str]]:
    """(share of the feed sent, event): kills and broker restarts spread over 10 %..90 % of the
    feed, the broker restarts in the middle slots."""
    n = opts.kills + opts.broker_restarts
    if n == 0:
        return []
    slots = [0.1 + 0.8 * i / max(1, n - 1) for i in range(n)] if n > 1 else [0.5]
    middle = sorted(range(n), key=lambda i: abs(i - (n - 1) / 2))[:opts.broker_restarts]
    return [(at, "broker" if i in middle else "kill") for i, at in enumerate(slots)]


STARTUP_S = 40.0  # about: the registry published and the workers ready before the feed starts


def _hold_env(opts: ChaosOptions, received: datetime, feed_s: float) -> dict[str, str]:
    """The hold on, its cut-off ~60 % into the feed: orders of the first part wait for late persons
    (posted when they arrive) or for the cut-off, those of the rest are decided at once."""
    if not opts.hold:
        return {"ESEP_PENDING": "off"}
    from .demo import hold_margin_minutes

    margin = hold_margin_minutes(received, STARTUP_S + 0.6 * feed_s)
    return {"ESEP_PENDING": "business-day", "ESEP_HOLD_CHECK_S": "1", "ESEP_HOLD_CUTOFF_MIN": f"{margin:.4f}"}


def run_chaos(settings: Settings, opts: ChaosOptions) -> int:
    from tools import localkafka

    run_id = f"chaos-{time.strftime('%Y%m%d%H%M%S')}-{random.randrange(16**4):04x}"
    work = Path(opts.work_dir) if opts.work_dir else settings.data_dir / "chaos" / run_id
    work.mkdir(parents=True, exist_ok=True)
    kafka_dir = work / "kafka"
    if settings.broker:
        say("ESEP_BROKER is ignored: the run restarts its broker, so it starts one of its own")
    result = ChaosResult(workers=opts.workers)
    scope = results = feeder = None
    # The clients log every refused connection while the broker restarts: expected here.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    started = time.monotonic()
    try:
        info = localkafka.start(kafka_dir, version=settings.kafka_version, log=say)
        bootstrap = info.bootstrap
        feed_s = opts.orders / opts.rate
        now = datetime.now(ALMATY)  # every order's received_at: one business day, one deadline
        scope = RunScope(bootstrap, run_id, work / "data", partitions=opts.partitions, log_dir=work,
                         env={"ESEP_SESSION_TIMEOUT_S": "6", "ESEP_LOG_LEVEL": "info",
                              **_hold_env(opts, now, feed_s)})
        scope.create_topics()
        t = scope.topics

        registry = make_registry(opts.persons, opts.seed)
        early, late = split_late(registry, 0.02, opts.seed)
        records = make_orders(early, opts.orders, opts.lines, opts.seed, Scenario(), received_at=lambda: now,
                              id_prefix=run_id.upper(), late=late, late_ratio=opts.late_ratio)
        expected = summary_of(records, late_arrives=True)
        order_ids = {r.expect["notification_id"] for r in records if r.kind == "order"}
        result.orders, result.lines, result.records = len(order_ids), expected["lines"], len(records)
        result.amount_sent_tiyn = expected["amount_total_tiyn"]
        result.dead_letters_expected = expected["dead_letters"]
        result.late_persons = len(late)

        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, batch_size=256 * 1024,
                                 delivery_timeout_ms=600_000, max_block_ms=600_000)
        for p in early:
            producer.send(t.registry_persons, key=p["iin"].encode(), value=json.dumps(p, ensure_ascii=False).encode())
        producer.flush()
        say(f"run {run_id} on {bootstrap}: {len(early):,} registry persons, {result.orders:,} orders x {opts.lines} "
            f"lines = {result.lines:,} lines ({len(records) - result.orders} repeats and malformed records), "
            f"{opts.workers} workers, {opts.partitions} partitions, hold {'on' if opts.hold else 'off'}")

        workers = [scope.worker(f"w{i + 1}") for i in range(opts.workers)]
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(300)
        time.sleep(3)  # every member joined: the group has split the partitions
        say("workers ready: " + ", ".join(f"{w.worker_id} pid {w.pid}" for w in workers))

        results = Results(bootstrap, t.order_results, opts.partitions)
        feeder = Feeder(bootstrap, t.credit_notifications, records, opts.rate)
        feeder.start()
        schedule = _schedule(opts)
        late_sent = False
        kills = 0
        while feeder.is_alive() or schedule:
            results.poll()
            _supervise(workers, result)
            if feeder.error is not None:
                raise RuntimeError(f"the feed failed: {feeder.error!r}")
            if not late_sent and feeder.fed >= 0.4:
                for p in late:
                    producer.send(t.registry_persons, key=p["iin"].encode(),
                                  value=json.dumps(p, ensure_ascii=False).encode())
                producer.flush()
                late_sent = True
                say(f"  {feeder.fed:4.0%} fed: {len(late):,} late persons reached the registry")
            if schedule and feeder.fed >= schedule[0][0]:
                _, kind = schedule.pop(0)
                at, fed = time.monotonic() - feeder.started_at, feeder.fed
                if kind == "kill":
                    victim = workers[kills % len(workers)]
                    kills += 1
                    changed = registry_changes(early, opts.changes_per_kill, f"{opts.seed}-{kills}",
                                               datetime.now(ALMATY))
                    pid = victim.pid
                    victim.kill()
                    for iin, person in changed:
                        producer.send(t.registry_persons, key=iin.encode(),
                                      value=None if person is None else json.dumps(person, ensure_ascii=False).encode())
                    producer.flush()
                    victim.start()
                    result.kills += 1
                    result.registry_changes += len(changed)
                    ev = Event("kill", at, fed, f"SIGKILL {victim.worker_id} (pid {pid}), "
                                                       f"{len(changed)} registry changes, restarted (pid {victim.pid})")
                else:
                    t0 = time.monotonic()
                    localkafka.stop(kafka_dir)
                    stopped = time.monotonic() - t0
                    info = localkafka.start(kafka_dir, version=settings.kafka_version, log=lambda m: None)
                    if info.bootstrap != bootstrap:
                        raise RuntimeError(f"the broker came back at {info.bootstrap}, not {bootstrap}")
                    result.broker_restarts += 1
                    ev = Event("broker", at, fed, f"broker stopped in {stopped:.1f} s, started again on the "
                                                         f"same data dir and ports in {time.monotonic() - t0 - stopped:.1f} s")
                ev.restarted_at = time.time()
                result.events.append(ev)
                say(f"  {ev.fed:4.0%} fed, t+{ev.at_s:5.1f} s: {ev.what}")
            time.sleep(0.05)
        say(f"fed {feeder.sent:,} records in {time.monotonic() - feeder.started_at:.1f} s; waiting for every result")

        deadline = time.monotonic() + opts.settle_timeout_s
        last_report = time.monotonic()
        while not order_ids <= results.ids:
            if time.monotonic() > deadline:
                break
            results.poll()
            _supervise(workers, result)
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                say(f"  {len(order_ids & results.ids):,}/{len(order_ids):,} orders decided")
        time.sleep(2.0)  # a last re-emission in flight lands before the check
        for w in workers:
            w.stop()
        results.poll()
        for ev in result.events:
            ev.first_result_s, ev.recovered_s = results.recovery(ev.restarted_at)

        say("reconciling the output topics (esep reconcile --strict)")
        report, read = reconcile_topics(bootstrap, t, strict=True)
        _figures(result, report)
        result.seconds = time.monotonic() - started
        result.passed = (report.ok and result.lost_orders == 0 and result.lost_lines == 0
                         and result.doubled_lines == 0 and result.reemissions_differing == 0
                         and result.amount_received_tiyn == result.amount_sent_tiyn
                         and report.figures["orders"] == result.orders
                         and result.dead_letters == result.dead_letters_expected)
        print()
        print(render_result(result, opts, bootstrap), flush=True)
        print()
        print(render(report, f"esep reconcile --strict after the run ({read.seconds:.1f} s to read "
                             f"{len(read.notifications) + len(read.posted) + len(read.refunds) + len(read.results):,}"
                             f" records)\n"), flush=True)
        if opts.out:
            path = Path(opts.out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"options": {k: str(v) if isinstance(v, Path) else v
                                                    for k, v in asdict(opts).items()},
                                        **asdict(result), "reconcile": report.to_json()},
                                       indent=2, ensure_ascii=False) + "\n")
            print(f"\nJSON written to {path}", flush=True)
        return 0 if result.passed else 1
    finally:
        if feeder is not None:
            feeder.producer.close(timeout=5)
        if results is not None:
            results.close()
        if scope is not None:
            scope.close()
        localkafka.stop(kafka_dir)
        if result.passed and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"logs and the broker's data kept in {work}")


RESTART_BACKOFF_S = 5.0


def _supervise(workers, result: ChaosResult) -> None:
    """A worker that exited on its own (crash-only: it exits when something is really broken) is
    started again, as its supervisor would, at most every RESTART_BACKOFF_S; counted."""
    for w in workers:
        if not w.running and time.monotonic() - w.child.started_at >= RESTART_BACKOFF_S:
            result.worker_exits += 1
            say(f"  worker {w.worker_id} exited (code {w.child.returncode}); restarting it")
            w.start()


def _figures(result: ChaosResult, report: Report) -> None:
    f = report.figures
    result.lost_orders = f["lost"] + report.count("unreadable")
    result.lost_lines = f["lines_lost"]
    result.doubled_lines = f["lines_doubled"]
    result.reemissions = f["reemissions"] - f["reemissions_differing"]
    result.reemissions_differing = f["reemissions_differing"]
    result.amount_received_tiyn = f["received_tiyn"]
    result.amount_posted_tiyn = f["posted_tiyn"]
    result.amount_refunded_tiyn = f["refunded_tiyn"]
    result.dead_letters = f["dead_lettered"]
    result.breaches = len(report.breaches)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def render_result(r: ChaosResult, opts: ChaosOptions, bootstrap: str) -> str:
    recovered = [e.recovered_s for e in r.events if e.recovered_s is not None]
    rows = [
        ("lines", f"{r.lines:,}", f"{r.orders:,} orders x {opts.lines}, {r.records:,} records with repeats and "
                                  f"malformed ones"),
        ("workers", f"{r.workers}", f"{opts.partitions} partitions"),
        ("SIGKILLs of a worker", f"{r.kills}", "each followed by registry changes and a restart"),
        ("broker restarts", f"{r.broker_restarts}", "stop and start on the same data dir and ports"),
        ("worker exits on their own", f"{r.worker_exits}", "restarted by the run, as a supervisor would"),
        ("registry changes mid-run", f"{r.registry_changes:,}", f"+ {r.late_persons:,} persons arriving late"),
        ("orders lost", f"{r.lost_orders}", "no result and not dead-lettered"),
        ("lines lost", f"{r.lost_lines}", "neither posted nor refunded"),
        ("lines doubled", f"{r.doubled_lines}", "posted and refunded, or refunded twice"),
        ("re-emissions identical", f"{r.reemissions:,}", "equal except posted_at/created_at/decided_at"),
        ("re-emissions differing", f"{r.reemissions_differing}", ""),
        ("amount sent", f"{format_tiyn(r.amount_sent_tiyn)} ₸", "by construction"),
        ("amount received", f"{format_tiyn(r.amount_received_tiyn)} ₸",
         f"= {format_tiyn(r.amount_posted_tiyn)} posted + {format_tiyn(r.amount_refunded_tiyn)} refunded"
         + (" (conserved)" if r.amount_received_tiyn == r.amount_posted_tiyn + r.amount_refunded_tiyn
            else " NOT CONSERVED")),
        ("notifications dead-lettered", f"{r.dead_letters}", f"{r.dead_letters_expected} malformed records sent"),
        ("recovery after a restart", (f"median {statistics.median(recovered):.1f} s, max {max(recovered):.1f} s"
                                      if recovered else "-"), "to a result on every partition again"),
        ("reconcile breaches", f"{r.breaches}", ""),
    ]
    w = max(len(x[0]) for x in rows)
    v = max(len(x[1]) for x in rows)
    out = [f"esep chaos on {bootstrap}: {r.seconds:.0f} s in all", ""]
    out += [f"{label:<{w}}  {value:>{v}}  {note}" for label, value, note in rows]
    if r.events:
        out += ["", "events (recovery: from the restart to the first result, and to a result on every partition)"]
        for e in r.events:
            out.append(f"  t+{e.at_s:6.1f} s  {e.fed:4.0%} fed  {e.what}; first result after "
                       f"{_seconds(e.first_result_s)}, every partition after {_seconds(e.recovered_s)}")
    out += ["", "CHAOS PASSED: 0 lost, 0 doubled, re-emissions identical, amounts conserved" if r.passed
            else "CHAOS FAILED: see the figures above and the reconcile breaches below"]
    if r.worker_exits:
        out.append(f"note: workers exited {r.worker_exits} times on their own (nothing was lost, but no valid "
                   f"input should make a worker exit): see their logs")
    return "\n".join(out)
