"""The tools' commands of `esep` (local broker, demo, simulate, bench, reconcile, chaos), registered through the
`esep.commands` entry points: the engine's command line finds them without importing the tools."""
from __future__ import annotations

import argparse
import functools

from streams.cli import CommandError
from streams.settings import Settings

from .localkafka import BrokerError


def _broker_errors(func):
    @functools.wraps(func)
    def run(args, settings: Settings) -> int:
        try:
            return func(args, settings)
        except BrokerError as exc:
            raise CommandError(str(exc)) from exc
    return run


@_broker_errors
def _kafka(args, settings: Settings) -> int:
    from . import localkafka

    if args.action == "start":
        info = localkafka.start(settings.kafka_dir, version=settings.kafka_version)
        print(f"Kafka {info.version} ready at {info.bootstrap} (pid {info.pid}, data {info.data_dir})")
        print(f"  export ESEP_BROKER={info.url}   # optional: commands find this broker by ESEP_DATA_DIR")
        return 0
    if args.action == "stop":
        stopped = localkafka.stop(settings.kafka_dir)
        print("Kafka stopped" if stopped else f"no local Kafka was running under {settings.kafka_dir}")
        return 0
    info = localkafka.status(settings.kafka_dir)
    if info is None:
        print(f"no local Kafka runs under {settings.kafka_dir} (start one: esep kafka start)")
        return 1
    print(f"Kafka {info.version} running at {info.bootstrap} (pid {info.pid}, log {info.log_path})")
    return 0


@_broker_errors
def _demo(args, settings: Settings) -> int:
    from .demo import run_demo

    return run_demo(settings, orders=args.orders, seed=args.seed, out_dir=args.out, recipients=args.recipients)


@_broker_errors
def _simulate(args, settings: Settings) -> int:
    from .simulate import run_simulation

    return run_simulation(settings, orders=args.orders, persons=args.persons, rate=args.rate, seed=args.seed)


@_broker_errors
def _bench(args, settings: Settings) -> int:
    from .bench import run_bench

    return run_bench(settings, orders=args.orders, lines=args.lines, persons=args.persons, out=args.json,
                     runs=args.runs, naive_lines=args.naive_lines, latency_orders=args.latency_orders,
                     profile_dir=args.profile, samework=args.same_work, first_start=args.first_start,
                     compare_reports=args.report_compare, recipients=args.recipients,
                     latency_rate=args.latency_rate)


@_broker_errors
def _reconcile(args, settings: Settings) -> int:
    from .reconcile import run_reconcile

    return run_reconcile(settings, since=args.since, until=args.until, lookback_days=args.lookback_days,
                         strict=args.strict, out=args.json, max_ids=args.max_ids)


def kafka_command(sub) -> None:
    k = sub.add_parser("kafka", help="a local single-node Apache Kafka (KRaft) from Maven Central jars")
    k.add_argument("action", choices=["start", "stop", "status"])
    k.set_defaults(func=_kafka)


def demo_command(sub) -> None:
    d = sub.add_parser("demo", help="a simulated business day end to end, with a reconciled summary")
    d.add_argument("--orders", type=int, default=1500, help="notifications to send (default 1500)")
    d.add_argument("--seed", type=int, default=430, help="random seed of the synthetic data")
    d.add_argument("--out", default="demo-output", help="folder for the summary JSON, the chart and the month's report")
    d.add_argument("--recipients", type=int, default=120,
                   help="plain recipients of the Fund's day, beside its 11 scripted ones (default 120)")
    d.set_defaults(func=_demo)


def simulate_command(sub) -> None:
    sim = sub.add_parser("simulate", help="the bank and the registry feed, simulated, into the configured topics")
    sim.add_argument("--orders", type=int, default=1000, help="notifications to send (default 1000)")
    sim.add_argument("--persons", type=int, default=20_000, help="synthetic registry size (default 20000)")
    sim.add_argument("--rate", type=float, default=50.0, help="notifications per second (default 50)")
    sim.add_argument("--seed", type=int, default=430)
    sim.set_defaults(func=_simulate)


def bench_command(sub) -> None:
    b = sub.add_parser("bench", help="throughput and latency against the raw and naive-faust references")
    b.add_argument("--orders", type=int, default=5000)
    b.add_argument("--lines", type=int, default=20, help="lines per order")
    b.add_argument("--persons", type=int, default=100_000,
                   help="registry size (up to 5,000,000; the warm phases use at most 100,000 of them)")
    b.add_argument("--runs", type=int, default=1, help="repeat each measurement and keep the median")
    b.add_argument("--json", default="bench-results/bench.json", help="where to write the results")
    b.add_argument("--naive-lines", type=int, default=None,
                   help="cap the naive faust reference's lines (default: as many as the run has)")
    b.add_argument("--latency-orders", type=int, default=None, help="orders of the half-rate latency phase")
    b.add_argument("--latency-rate", type=float, default=None,
                   help="orders/s of the latency phase (default: half the rate measured in phase 3)")
    b.add_argument("--profile", default=None, help="folder for a py-spy profile of the worker")
    b.add_argument("--same-work", action=argparse.BooleanOptionalAction, default=True,
                   help="the same-work reference: this workload's work in a plain aiokafka loop (default on)")
    b.add_argument("--first-start", action=argparse.BooleanOptionalAction, default=True,
                   help="a fresh worker with --persons persons and its orders already in Kafka, then restarts "
                        "after SIGKILL on the same and on a new port (default on)")
    b.add_argument("--no-report-compare", dest="report_compare", action="store_false",
                   help="skip phase 5 (the worker again with ESEP_REPORTS=off: the report streams' cost)")
    b.add_argument("--recipients", type=int, default=3000,
                   help="recipients of phase 6, the recipients agent's decisions/s and transfers/s (0: skip it)")
    b.set_defaults(func=_bench)


def reconcile_command(sub) -> None:
    r = sub.add_parser("reconcile", help="check every output topic against the notifications: nothing lost, "
                                         "nothing doubled, amounts conserved (exit 1 on a breach)")
    r.add_argument("--since", default=None,
                   help="judge only notifications received (Kafka time) from this RFC 3339 time or date")
    r.add_argument("--until", default=None, help="... up to this time or date")
    r.add_argument("--lookback-days", type=float, default=7.0,
                   help="with --since, also read this many days before it (earlier copies of an order)")
    r.add_argument("--strict", action="store_true",
                   help="an order without a result is lost even if its deadline has not passed (held)")
    r.add_argument("--json", default=None, help="also write the report as JSON here")
    r.add_argument("--max-ids", type=int, default=20, help="offending ids listed per kind of breach")
    r.set_defaults(func=_reconcile)


@_broker_errors
def _chaos(args, settings: Settings) -> int:
    from .chaos import ChaosOptions, run_chaos

    return run_chaos(settings, ChaosOptions(orders=args.orders, lines=args.lines, persons=args.persons,
                                            kills=args.kills, broker_restarts=args.broker_restarts,
                                            rate=args.rate, seed=args.seed, out=args.json, keep=args.keep))


def chaos_command(sub) -> None:
    c = sub.add_parser("chaos", help="two workers, SIGKILLs and a broker restart mid-stream, then reconcile")
    c.add_argument("--orders", type=int, default=5100,
                   help="notifications (default 5100: over 100,000 lines, a few orders have fewer than 20)")
    c.add_argument("--lines", type=int, default=20, help="lines per notification (default 20)")
    c.add_argument("--persons", type=int, default=20_000, help="synthetic registry size (default 20000)")
    c.add_argument("--kills", type=int, default=5, help="SIGKILLs of a worker (default 5)")
    c.add_argument("--broker-restarts", type=int, default=1, help="stops and starts of the broker (default 1)")
    c.add_argument("--rate", type=float, default=40.0,
                   help="notifications per second fed (default 40: the stream outlasts the events)")
    c.add_argument("--seed", type=int, default=430)
    c.add_argument("--json", default="chaos-results/chaos.json", help="where to write the figures")
    c.add_argument("--keep", action="store_true", help="keep the logs and the broker's data when it passes too")
    c.set_defaults(func=_chaos)


@_broker_errors
def _report(args, settings: Settings) -> int:
    from rules.dates import parse_period

    from .report_recount import run_files, run_recount

    words = list(args.words)
    recounting = bool(words) and words[0] == "recount"
    if recounting:
        words = words[1:]
    if len(words) != 1 or parse_period(words[0]) is None:
        raise CommandError("usage: esep report YYYY-MM [--out DIR]  |  esep report recount YYYY-MM [--json PATH]")
    month = words[0]
    if recounting:
        return run_recount(settings, settings.resolve_broker(), month, out=args.json)
    return run_files(settings, settings.resolve_broker(), month, args.out, args.version, args.revision)


def report_command(sub) -> None:
    r = sub.add_parser("report", help="the monthly report: `esep report YYYY-MM` writes a published version as CSV, "
                                      "XLSX and PNG; `esep report recount YYYY-MM` recounts the month from the "
                                      "output topics and checks every published version at its covers")
    r.add_argument("words", nargs="+", metavar="[recount] YYYY-MM")
    r.add_argument("--out", default="report-output", help="folder for the CSV, XLSX and PNG (default report-output)")
    r.add_argument("--version", choices=["preliminary", "final", "revised"], default=None,
                   help="which version (default: the last published)")
    r.add_argument("--revision", type=int, default=None, help="which revision of a revised version")
    r.add_argument("--json", default=None, help="recount: write the recounted sections here instead of stdout")
    r.set_defaults(func=_report)
