"""Throughput of the recipients agent, one worker: `python -m tools.bench_recipients [persons]`, and
the recipients phase of `esep bench` (tools/bench.py calls `measure`).

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
from dataclasses import asdict, dataclass
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from rules.codes import PAYMENT_TYPES
from streams.settings import Settings
from tools.fund_synthetic import decision, transfer
from tools.runner import WorkerProcess, broker_for, metric_value
from tools.scope import RunScope
from tools.synthetic import make_registry

# Outcomes of esep_ledger_records_total that end a record's first reading (held: it waits, decided later).
DECIDED_OUTCOMES = ("applied", "rejected", "posted", "held", "duplicate", "dead_letter")
MONTHS = 6


def decided_count(metrics_text: str, input_label: str) -> float:
    """Records of one input of the keyed ledgers the worker has read and decided (or held)."""
    return sum(metric_value(metrics_text, "esep_ledger_records_total", f'input="{input_label}",outcome="{o}"')
               for o in DECIDED_OUTCOMES)


def _wait(worker: WorkerProcess, label: str, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while (done := decided_count(worker.metrics_text(), label)) < total:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: {done:.0f} of {total} decided after {timeout} s\n{worker.log_tail()}")
        time.sleep(0.2)


def _span(bootstrap: str, topic: str) -> tuple[float, int]:
    """(seconds from the first to the last record of `topic`, records): the worker's producer stamps
    each record when it sends it."""
    reader = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                           enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    stamps = [m.timestamp for m in reader]
    reader.close()
    return (max(stamps) - min(stamps)) / 1000.0, len(stamps)


@dataclass
class RecipientsRate:
    persons: int
    decisions: int
    decisions_s: float
    transfers: int
    transfers_s: float
    records_per_batch: float
    partitions: int
    batch_size: int

    @property
    def decisions_per_s(self) -> float:
        return (self.decisions - 1) / self.decisions_s if self.decisions_s else 0.0

    @property
    def transfers_per_s(self) -> float:
        return (self.transfers - 1) / self.transfers_s if self.transfers_s else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "decisions_per_s": round(self.decisions_per_s, 1),
                "transfers_per_s": round(self.transfers_per_s, 1)}


def measure(scope: RunScope, persons_n: int, log=print) -> RecipientsRate:
    """Both phases in `scope` (its topics created here), with one worker of the scope, stopped at the
    end. The first output record of a phase was decided before its clock started: the rates leave it out."""
    scope.create_topics()
    bootstrap, settings, t = scope.bootstrap, scope.settings, scope.topics
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    try:
        persons = make_registry(persons_n, seed=5, deceased_ratio=0.0)
        for p in persons:
            producer.send(t.registry_persons, key=p["iin"].encode(), value=json.dumps(p, ensure_ascii=False).encode())
        for n, p in enumerate(persons):
            ptype = PAYMENT_TYPES[n % len(PAYMENT_TYPES)]
            value = decision(p, ptype, "assign", "2025-01-01", f"B-{n}-A", monthly_amount="60000.00")
            producer.send(t.payment_decisions, key=p["iin"].encode(),
                          value=json.dumps(value, ensure_ascii=False).encode())
        producer.flush()
        worker = scope.worker("recipients").start()
        try:
            worker.wait_ready(300)
            _wait(worker, "payment-decisions", persons_n)
            d_s, d_n = _span(bootstrap, t.decision_results)
            log(f"  decisions: {d_n:,} results in {d_s:.2f} s")
            for n, p in enumerate(persons):
                ptype = PAYMENT_TYPES[n % len(PAYMENT_TYPES)]
                for m in range(1, MONTHS + 1):
                    value = transfer(p, ptype, f"2025-{m:02d}", "60000.00", f"B-{n}-P{m}")
                    producer.send(t.payment_transfers, key=p["iin"].encode(),
                                  value=json.dumps(value, ensure_ascii=False).encode())
            producer.flush()
            _wait(worker, "payment-transfers", persons_n * MONTHS)
            t_s, t_n = _span(bootstrap, t.social_payments)
            log(f"  transfers: {t_n:,} postings in {t_s:.2f} s")
            text = worker.metrics_text()
            batches = metric_value(text, "esep_ledger_batch_records_count", 'store="recipients"')
            records = metric_value(text, "esep_ledger_batch_records_sum", 'store="recipients"')
        finally:
            worker.stop()
    finally:
        producer.close()
    return RecipientsRate(persons_n, d_n, d_s, t_n, t_s, records / max(batches, 1), settings.partitions,
                          settings.batch_size)


def main(argv: list[str]) -> int:
    persons_n = int(argv[0]) if argv else 3000
    base = Settings.from_env()
    with broker_for(base) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        scope = RunScope(bootstrap, f"rb-{uuid.uuid4().hex[:6]}", Path(tmp), partitions=base.partitions,
                         env={"ESEP_PENDING": "off"})
        try:
            rate = measure(scope, persons_n)
        finally:
            scope.close(delete_topics=True)
        print(f"recipients agent, one worker, {rate.partitions} partitions, batch {rate.batch_size}:")
        print(f"  decisions: {rate.decisions:.0f} in {rate.decisions_s:.1f} s = {rate.decisions_per_s:,.0f}/s")
        print(f"  transfers: {rate.transfers:.0f} in {rate.transfers_s:.1f} s = {rate.transfers_per_s:,.0f}/s")
        print(f"  {rate.records_per_batch:.1f} records per batch on average")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
