"""The `esep` command line."""
from __future__ import annotations

import argparse
import sys

from .settings import Settings, SettingsError


def _kafka(args, settings: Settings) -> int:
    import localkafka

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


def _topics(args, settings: Settings) -> int:
    from .topics import ensure_topics, topic_specs

    created = ensure_topics(settings, settings.resolve_broker())
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        policy = "compact" if spec.compacted else "delete"
        print(f"{spec.name:<32} {spec.partitions:>3} partitions  {policy:<8} {state}")
    return 0


def _worker(args, settings: Settings) -> int:
    from .worker import run_worker

    run_worker(settings)
    return 0


def _demo(args, settings: Settings) -> int:
    from .demo import run_demo

    return run_demo(settings, orders=args.orders, seed=args.seed, out_dir=args.out)


def _simulate(args, settings: Settings) -> int:
    from .simulate import run_simulation

    return run_simulation(settings, orders=args.orders, persons=args.persons, rate=args.rate, seed=args.seed)


def _bench(args, settings: Settings) -> int:
    from .bench import run_bench

    return run_bench(settings, orders=args.orders, lines=args.lines, persons=args.persons, out=args.json,
                     runs=args.runs, naive_lines=args.naive_lines, latency_orders=args.latency_orders,
                     profile_dir=args.profile)


def _person(args, settings: Settings) -> int:
    import asyncio

    from rules.iin import is_valid_iin

    from .registry_changes import format_history, read_history

    if not is_valid_iin(args.iin):
        print(f"esep: {args.iin!r} is not a valid IIN (12 digits with a matching check digit)", file=sys.stderr)
        return 2
    versions = asyncio.run(read_history(settings.resolve_broker(), settings.topics.registry_history, args.iin))
    for line in format_history(args.iin, versions):
        print(line)
    return 0 if versions else 1


def _config(args, settings: Settings) -> int:
    for name, value in settings.describe():
        print(f"{name:<28} {value}")
    return 0


def _schemas(args, settings: Settings) -> int:
    from models.schemas import write_schemas

    for path in write_schemas():
        print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="esep", description="Real-time posting of social contributions (Order No. 430).")
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("kafka", help="a local single-node Apache Kafka (KRaft) from Maven Central jars")
    k.add_argument("action", choices=["start", "stop", "status"])
    k.set_defaults(func=_kafka)
    t = sub.add_parser("topics", help="create the missing topics with the configured partitions")
    t.add_argument("action", choices=["create"])
    t.set_defaults(func=_topics)
    sub.add_parser("worker", help="run a posting worker (faust) until interrupted").set_defaults(func=_worker)
    d = sub.add_parser("demo", help="a simulated business day end to end, with a reconciled summary")
    d.add_argument("--orders", type=int, default=1500, help="notifications to send (default 1500)")
    d.add_argument("--seed", type=int, default=430, help="random seed of the synthetic data")
    d.add_argument("--out", default="demo-output", help="folder for the summary JSON and chart")
    d.set_defaults(func=_demo)
    sim = sub.add_parser("simulate", help="the bank and the registry feed, simulated, into the configured topics")
    sim.add_argument("--orders", type=int, default=1000, help="notifications to send (default 1000)")
    sim.add_argument("--persons", type=int, default=20_000, help="synthetic registry size (default 20000)")
    sim.add_argument("--rate", type=float, default=50.0, help="notifications per second (default 50)")
    sim.add_argument("--seed", type=int, default=430)
    sim.set_defaults(func=_simulate)
    b = sub.add_parser("bench", help="throughput and latency against the raw and naive-faust references")
    b.add_argument("--orders", type=int, default=5000)
    b.add_argument("--lines", type=int, default=20, help="lines per order")
    b.add_argument("--persons", type=int, default=100_000, help="registry size")
    b.add_argument("--runs", type=int, default=1, help="repeat each measurement and keep the median")
    b.add_argument("--json", default="bench-results/bench.json", help="where to write the results")
    b.add_argument("--naive-lines", type=int, default=None,
                   help="cap the naive faust reference's lines (default: as many as the run has)")
    b.add_argument("--latency-orders", type=int, default=None, help="orders of the half-rate latency phase")
    b.add_argument("--profile", default=None, help="folder for a py-spy profile of the worker")
    b.set_defaults(func=_bench)
    person = sub.add_parser("person", help="a person's recorded data changes (full IIN shown only here)")
    person_sub = person.add_subparsers(dest="action", required=True)
    history = person_sub.add_parser("history", help="print every recorded version of a person")
    history.add_argument("iin")
    history.set_defaults(func=_person)
    sub.add_parser("config", help="print the configuration in force").set_defaults(func=_config)
    sub.add_parser("schemas", help="regenerate the JSON Schemas from the models").set_defaults(func=_schemas)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return args.func(args, settings) or 0
    except SettingsError as exc:
        print(f"esep: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("esep: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from localkafka import BrokerError

        if isinstance(exc, BrokerError):
            print(f"esep: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
