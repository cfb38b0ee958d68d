"""Throughput of the recipients agent, one worker: `python -m tools.bench_recipients [persons]`.

Two phases on run-scoped topics, each preloaded before it is timed: every person's assign
(decisions/s), then six monthly payments per person (transfers/s). Timed from the first output
record of the phase to its last (their timestamps: the worker's producer stamps them as it sends),
so neither the feeder nor the polling is measured. The local broker of
ESEP_DATA_DIR is used (started if needed), or ESEP_BROKER."""
from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from streams.settings import Settings
from tools.fund_synthetic import decision, transfer
from tools.runner import WorkerProcess, broker_for, metric_value
from tools.scope import RunScope
from tools.synthetic import make_registry
from rules.codes import PAYMENT_TYPES


def _decided(worker: WorkerProcess, input_label: str) -> float:
    text = worker.metrics_text()
    return sum(metric_value(text, "esep_ledger_records_total", f'input="{input_label}",outcome="{o}"')
               for o in ("applied", "rejected", "posted", "held", "duplicate", "dead_letter"))


def _wait(worker: WorkerProcess, label: str, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while _decided(worker, label) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: {_decided(worker, label):.0f} of {total} decided after {timeout} s")
        time.sleep(0.2)


def _span(bootstrap: str, topic: str) -> tuple[float, int]:
    """(seconds from the first to the last record of `topic`, records): the worker's producer stamps
    each record when it sends it."""
    reader = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                           enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    stamps = [m.timestamp for m in reader]
    reader.close()
    return (max(stamps) - min(stamps)) / 1000.0, len(stamps)


def main(argv: list[str]) -> int:
    persons_n = int(argv[0]) if argv else 3000
    base = Settings.from_env()
    with broker_for(base) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        scope = RunScope(bootstrap, f"rb-{uuid.uuid4().hex[:6]}", Path(tmp), partitions=base.partitions,
                         env={"ESEP_PENDING": "off"})
        scope.create_topics()
        settings = scope.settings
        t = settings.topics
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
        persons = make_registry(persons_n, seed=5, deceased_ratio=0.0)
        for p in persons:
            producer.send(t.registry_persons, key=p["iin"].encode(), value=json.dumps(p, ensure_ascii=False).encode())
        for n, p in enumerate(persons):
            ptype = PAYMENT_TYPES[n % len(PAYMENT_TYPES)]
            value = decision(p, ptype, "assign", "2025-01-01", f"B-{n}-A", monthly_amount="60000.00")
            producer.send(t.payment_decisions, key=p["iin"].encode(), value=json.dumps(value, ensure_ascii=False).encode())
        producer.flush()
        worker = scope.worker("bench").start()
        try:
            worker.wait_ready()
            _wait(worker, "payment-decisions", persons_n)
            d_s, d_n = _span(bootstrap, t.decision_results)
            months = 6
            for n, p in enumerate(persons):
                ptype = PAYMENT_TYPES[n % len(PAYMENT_TYPES)]
                for m in range(1, months + 1):
                    value = transfer(p, ptype, f"2025-{m:02d}", "60000.00", f"B-{n}-P{m}")
                    producer.send(t.payment_transfers, key=p["iin"].encode(),
                                  value=json.dumps(value, ensure_ascii=False).encode())
            producer.flush()
            _wait(worker, "payment-transfers", persons_n * months)
            t_s, t_n = _span(bootstrap, t.social_payments)
            text = worker.metrics_text()
            batches = metric_value(text, "esep_ledger_batch_records_count")
            records = metric_value(text, "esep_ledger_batch_records_sum")
        finally:
            worker.stop()
            producer.close()
            scope.close(delete_topics=True)
        print(f"recipients agent, one worker, {settings.partitions} partitions, batch {settings.batch_size}:")
        print(f"  decisions: {d_n:.0f} in {d_s:.1f} s = {d_n / d_s:,.0f}/s")
        print(f"  transfers: {t_n:.0f} in {t_s:.1f} s = {t_n / t_s:,.0f}/s")
        print(f"  {records / max(batches, 1):.1f} records per batch on average")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
