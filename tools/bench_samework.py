"""The same-work reference of `esep bench` (issue 14, item 5): this workload's work in a plain aiokafka
loop, to say what the esep worker's engine costs on top of the work itself.

Per batch of `getmany` (as many notifications as the worker's ESEP_BATCH_SIZE):
- every record parsed with orjson into a light object (no pydantic, no contract validation: dates
  read with `fromisoformat`); a record that does not parse becomes a dead letter;
- ONE registry multi-get for the batch's IINs (`RegistryStore.get_many`, tables/registry.py) against
  a copy of the bench worker's own registry store (the same rocksdict, the same budget);
- the same pure rules as the worker: `rules.posting.decide_order`, `summarize`, `rules.entries.render`,
  each output encoded with orjson;
- every output produced and the batch's acknowledgements awaited before the next batch.
What it does not do, and the worker does: decision records (written to their changelog and
acknowledged before the outputs), redelivery/repeat triage, offsets, metrics, faust's per-event
cost, and whatever else runs in the worker (registry-change publisher, the other ledgers' agents).

No consumer group: every partition is assigned by hand and read from the beginning. The producer is
configured like the worker's (acks=all, linger 5 ms, 256 KiB batches). Timed from the first batch
received to the last acknowledgement; rate = lines of the orders decided / seconds.

    python -m tools.bench_samework --bootstrap H:P --in-topic T --partitions 0,1,2,3 --registry DIR \
        --out-prefix P --expected N [--batch-size 200] [--passes 3]
"""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import orjson

# Output topics of the reference, suffixed to --out-prefix (the bench creates them per run).
OUTPUTS = ("posted", "alerts", "refunds", "results", "dead")
TARGET_VS_SAMEWORK = 0.8
PASSES = 3


@dataclass
class SameWorkResult:
    records: int
    orders: int
    lines: int
    seconds: float
    batches: int
    cpu_s: float  # this process's CPU over the same span: steadier than the rate on a shared machine

    @property
    def per_s(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


def read_order(raw: bytes) -> SimpleNamespace:
    """A notification as the rules read it (attribute access, dates parsed), from orjson alone."""
    d = orjson.loads(raw)
    d["lines"] = [SimpleNamespace(**{"patronymic": None, "period": None, **line}) for line in d["lines"]]
    d["payer"] = SimpleNamespace(**d["payer"])
    received = datetime.fromisoformat(d["received_at"])
    if received.tzinfo is None:  # the contract requires an offset: such a record is a dead letter
        raise ValueError("received_at without an offset")
    d["received_at"] = received
    d["document_date"] = date.fromisoformat(d["document_date"])
    d["sent_date"] = date.fromisoformat(d["sent_date"])
    d.setdefault("period", None)
    return SimpleNamespace(**d)


def _dead_letter(rec, exc: Exception, stamp: str) -> bytes:
    import base64

    return orjson.dumps({"source_topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                         "value": base64.b64encode(rec.value or b"").decode("ascii"),
                         "error": f"{type(exc).__name__}: {exc}", "error_kind": "schema", "received_at": stamp})


async def same_work_loop(bootstrap: str, in_topic: str, partitions: list[int], registry_dir: Path,
                         out_prefix: str, expected: int, batch_size: int = 200,
                         timeout_s: float = 600.0) -> SameWorkResult:
    """Consume `expected` records of `in_topic` from the beginning and do the worker's work on them."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from rules import entries
    from rules.calendar import default_calendar
    from rules.posting import decide_order, iins_to_look_up, summarize
    from tables.registry import RegistryStore

    topics = {name: f"{out_prefix}-{name}" for name in OUTPUTS}
    posted_t, alerts_t, refunds_t, results_t, dead_t = (topics[n] for n in OUTPUTS)
    calendar = default_calendar()
    store = RegistryStore(registry_dir)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024,
                                max_request_size=2 * 1024 * 1024)
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(in_topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = orders_n = lines_n = batches_n = 0
        started: float | None = None
        give_up = time.monotonic() + timeout_s
        send, dumps = producer.send, orjson.dumps
        while done < expected:
            if time.monotonic() > give_up:
                raise TimeoutError(f"same-work loop: {done} of {expected} records after {timeout_s:.0f} s")
            fetched = await consumer.getmany(timeout_ms=500, max_records=batch_size)
            if not fetched:
                continue
            if started is None:
                started, cpu_started = time.monotonic(), time.process_time()
            now = datetime.now(timezone.utc)
            stamp = entries.stamp(now)
            orders, futures = [], []
            for records in fetched.values():
                for rec in records:
                    done += 1
                    try:
                        orders.append(read_order(rec.value))
                    except Exception as exc:  # noqa: BLE001 - as the worker: the record costs only itself
                        futures.append(await send(dead_t, _dead_letter(rec, exc, stamp), key=rec.key))
            persons = store.get_many(sorted({iin for o in orders for iin in iins_to_look_up(o)}))  # one multi-get
            for order in orders:
                try:
                    decision = decide_order(order, persons, calendar, hold=False)
                    summary = summarize(decision)
                    rendered = entries.render(order, decision, summary, stamp)
                except Exception as exc:  # noqa: BLE001
                    futures.append(await send(dead_t, dumps({"notification_id": str(getattr(order, "notification_id",
                                                                                                 "")),
                                                              "error": f"{type(exc).__name__}: {exc}"})))
                    continue
                nid = order.notification_id.encode()
                for key, entry in rendered.posted:
                    futures.append(await send(posted_t, dumps(entry), key=key.encode()))
                for key, alert in rendered.alerts:
                    futures.append(await send(alerts_t, dumps(alert), key=key.encode()))
                if rendered.refund is not None:
                    futures.append(await send(refunds_t, dumps(rendered.refund), key=nid))
                if rendered.result is not None:
                    futures.append(await send(results_t, dumps(rendered.result), key=nid))
                orders_n += 1
                lines_n += len(order.lines)
            await asyncio.gather(*futures)  # the batch's outputs acknowledged before the next batch
            batches_n += 1
        return SameWorkResult(done, orders_n, lines_n, time.monotonic() - started, batches_n,
                              time.process_time() - cpu_started)
    finally:
        await producer.stop()
        await consumer.stop()
        store.close()


def main(argv: list[str] | None = None) -> int:
    """One JSON line per pass on stdout: {records, orders, lines, seconds, batches, per_s}."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m tools.bench_samework", description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--in-topic", required=True)
    p.add_argument("--partitions", required=True, help="comma-separated partition numbers of the input topic")
    p.add_argument("--registry", required=True, type=Path, help="a registry store (tables/registry.py) to read")
    p.add_argument("--out-prefix", required=True, help=f"output topics are <prefix>-{{{','.join(OUTPUTS)}}}")
    p.add_argument("--expected", type=int, required=True, help="records in the input topic")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--passes", type=int, default=1)
    args = p.parse_args(argv)
    partitions = [int(x) for x in args.partitions.split(",")]

    async def run() -> None:
        for _ in range(args.passes):
            r = await same_work_loop(args.bootstrap, args.in_topic, partitions, args.registry, args.out_prefix,
                                     args.expected, args.batch_size)
            print(json.dumps({"records": r.records, "orders": r.orders, "lines": r.lines, "seconds": r.seconds,
                              "batches": r.batches, "per_s": r.per_s, "cpu_s": r.cpu_s}), flush=True)

    asyncio.run(run())
    return 0


# ------------------------------------------------------------------------------------------------
# The bench's phase (tools/bench.py calls it once the esep worker of phase 3 has stopped)

async def phase_samework(res, scope, settings, records, registry_dir: Path, r) -> None:
    """The reference over the same notification records as the esep worker (its own copy of them),
    against a copy of that worker's registry store; the median of PASSES passes."""
    import json

    from tables.metadata import topic_partitions

    from .bench import BenchError, CpuWatch, _produce, say

    say(f"phase same-work reference: plain aiokafka loop, orjson, one registry multi-get per batch of "
        f"{settings.batch_size}, the same rules, outputs awaited per batch; {PASSES} passes")
    src = scope.topic("same-in")
    prefix = scope.topic("same-out")
    scope.create_extra_topics([src, *(f"{prefix}-{n}" for n in OUTPUTS)])
    await _produce(res.bootstrap, ((src, rec.key, rec.value) for rec in records), "notification records")
    # The worker's store, stopped: the reference reads the very same registry (RocksDB allows one
    # process per store, so it gets a copy).
    copy = scope.log_dir / "same-work-registry"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(registry_dir, copy)
    parts = await topic_partitions(res.bootstrap, src)
    watch = CpuWatch(res)
    child = scope.spawn([sys.executable, "-m", "tools.bench_samework", "--bootstrap", res.bootstrap,
                         "--in-topic", src, "--partitions", ",".join(map(str, parts)), "--registry", str(copy),
                         "--out-prefix", prefix, "--expected", str(len(records)),
                         "--batch-size", str(settings.batch_size), "--passes", str(PASSES)],
                        "same-work", stdout=subprocess.PIPE)
    passes = []
    try:
        while len(passes) < PASSES:
            line = await asyncio.to_thread(child.proc.stdout.readline)
            if not line:
                child.wait(10)
                raise BenchError(f"the same-work loop exited ({child.returncode}) after {len(passes)} passes:\n"
                                 f"{child.log_tail()}")
            result = json.loads(line)
            passes.append(result)
            say(f"  same-work pass {len(passes)}/{PASSES}: {result['orders']:,} orders, {result['lines']:,} lines "
                f"in {result['seconds']:.2f} s = {result['per_s']:,.0f} lines/s")
    finally:
        child.stop(20.0)
        shutil.rmtree(copy, ignore_errors=True)
    watch.report("same-work", r)
    best = sorted(passes, key=lambda x: x["per_s"])[len(passes) // 2]
    r.samework = {"lines": best["lines"], "orders": best["orders"], "seconds": round(best["seconds"], 3),
                  "lines_per_s": round(best["per_s"], 1), "batch_size": settings.batch_size,
                  "cpu_us_per_line": round(min(x["cpu_s"] / x["lines"] for x in passes) * 1e6, 1),
                  "passes_lines_per_s": [round(x["per_s"], 1) for x in passes]}


def summary_keys(runs) -> dict:
    """The reference's keys of the bench JSON (median over runs)."""
    import statistics

    measured = [x for x in runs if x.samework]
    if not measured:
        return {}
    ref = statistics.median(x.samework["lines_per_s"] for x in measured)
    esep = statistics.median(x.esep_lines_per_s for x in measured)
    ratio = esep / ref if ref else 0.0
    out = {"same_work_lines_per_s": round(ref, 1), "ratio_vs_same_work": round(ratio, 3),
           "same_work_target": TARGET_VS_SAMEWORK, "same_work_pass": ratio >= TARGET_VS_SAMEWORK,
           "same_work_cpu_us_per_line": statistics.median(x.samework["cpu_us_per_line"] for x in measured)}
    # The worker's own CPU per line over phase 3 (tools/bench.py measures it from the first order sent).
    esep_cpu = [x.esep_worker_cpu_s / x.esep_lines * 1e6 for x in measured
                if getattr(x, "esep_worker_cpu_s", None) is not None and x.esep_lines]
    if esep_cpu:
        out["esep_worker_cpu_us_per_line"] = round(statistics.median(esep_cpu), 1)
    return out


if __name__ == "__main__":
    sys.exit(main())
