"""Driving real workers against the real broker: isolated topics per test, worker processes that
can be SIGKILLed, and a collector of everything the workers emitted."""
from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from pathlib import Path

from kafka import KafkaProducer

from streams.topics import INPUT_RECORD_MAX_BYTES
from tools.reading import TopicReader
from tools.runner import WorkerProcess as RunnerWorker
from tools.runner import free_port  # noqa: F401  (re-exported for the monitoring tests)
from tools.scope import RunScope

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess(RunnerWorker):
    """A worker of a test stack: the product's own runner; a failure to start fails the test."""

    def wait_ready(self, timeout: float = 60) -> float:
        try:
            return super().wait_ready(timeout)
        except RuntimeError as exc:
            raise AssertionError(f"worker {self.worker_id}: {exc}") from None

    def metric(self, name: str, labels: str = "") -> float:
        # Tests name a sample with its labels: 'esep_notifications_total{outcome="duplicate"}'.
        if "{" in name and not labels:
            name, _, rest = name.partition("{")
            labels = rest.rstrip("}")
        return super().metric(name, labels)


class Stack(RunScope):
    """One isolated deployment on the shared broker: the tools' run scope, with a producer."""

    worker_class = WorkerProcess

    def __init__(self, bootstrap: str, tmp: Path, partitions: int = 4, **extra_env: str):
        super().__init__(bootstrap, f"test-{uuid.uuid4().hex[:8]}", tmp / "data", partitions=partitions,
                         log_dir=tmp, env={"ESEP_SESSION_TIMEOUT_S": "6", "ESEP_LOG_LEVEL": "info", **extra_env})
        self.tmp = tmp
        self.create_topics()
        # Room for the largest input the topics take (streams/topics.py), as a bank's producer needs.
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                      max_request_size=INPUT_RECORD_MAX_BYTES + 64 * 1024)

    def worker(self, worker_id: str = "w1", **env: str) -> WorkerProcess:
        return super().worker(worker_id, **env)

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.send(topic, key=key, value=value)

    def send_registry(self, persons: list[dict]) -> None:
        for p in persons:
            self.send(self.topics.registry_persons, p["iin"].encode(), json.dumps(p, ensure_ascii=False).encode())
        self.producer.flush()

    def send_notification(self, order: dict, key: bytes | None = None) -> None:
        raw = json.dumps(order, ensure_ascii=False).encode()
        self.send(self.topics.credit_notifications, key if key is not None else order["notification_id"].encode(),
                  raw)

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        super().close()
        self.producer.close()


class Outputs:
    """Everything on the output topics, read from the beginning and kept as it arrives.
    `consumer.subscribe([...])` reads other topics instead."""

    def __init__(self, stack: Stack):
        t = stack.topics
        self.topics = [t.posted_contributions, t.refunds, t.order_results, t.dead_letters,
                       t.credit_notifications]
        self.t = t
        self.consumer = TopicReader(stack.bootstrap, self.topics)
        self.records: dict[str, list] = defaultdict(list)

    def poll(self, budget_s: float = 0.5) -> None:
        """Read what has arrived, for at most about `budget_s` (the stream may never pause)."""
        for m in self.consumer.poll_for(budget_s):
            value = json.loads(m.value) if m.topic != self.t.credit_notifications else m.value
            self.records[m.topic].append((m.key, value))

    def drain(self, quiet_s: float = 1.5, max_s: float = 60.0) -> None:
        """Read until nothing new arrived for `quiet_s`: every partition of every topic caught up
        (a result can be read before posted entries of another partition are)."""
        end = time.monotonic() + max_s
        last_new = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last_new < quiet_s:
            before = sum(len(v) for v in self.records.values())
            self.poll(0.5)
            if sum(len(v) for v in self.records.values()) != before:
                last_new = time.monotonic()
            else:
                time.sleep(0.1)

    def wait_for(self, predicate, timeout: float = 90, what: str = "outputs", workers=()) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate(self):
                return
            time.sleep(0.2)
        tails = "\n".join(w.log_tail() for w in workers)
        raise AssertionError(f"timed out waiting for {what}; have {self.counts()}\n{tails}")

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.records.items()}

    @property
    def posted(self) -> list[dict]:
        return [v for _, v in self.records[self.t.posted_contributions]]

    @property
    def refunds(self) -> list[dict]:
        return [v for _, v in self.records[self.t.refunds]]

    @property
    def results(self) -> list[dict]:
        return [v for _, v in self.records[self.t.order_results]]

    @property
    def dead_letters(self) -> list[dict]:
        return [v for _, v in self.records[self.t.dead_letters]]

    def result_ids(self) -> set[str]:
        return {r["notification_id"] for r in self.results}

    def close(self) -> None:
        self.consumer.close()


STAMPS = ("posted_at", "created_at", "decided_at")


def _unstamped(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in STAMPS}


def check_invariants(outputs: Outputs, expect: dict[str, dict]) -> dict[str, dict[int, str | None]]:
    """The contract's invariants over everything emitted, re-emissions included:
    - every emission of an entry, refund or result equals the first one except its stamp;
    - every line of every order ends in exactly one posted entry or one refund line;
    - amount_posted + amount_refunded == total_amount.
    Returns the observed outcome per order: {nid: {line_no: reason or None when posted}}."""
    def distinct(records, key):
        first: dict = {}
        for r in records:
            k = key(r)
            if k in first:
                assert _unstamped(first[k]) == _unstamped(r), f"two different emissions of {k}"
            else:
                first[k] = r
        return first

    posted = distinct(outputs.posted, lambda e: e["entry_id"])
    refunds = distinct(outputs.refunds, lambda r: r["refund_id"])
    results = distinct(outputs.results, lambda r: r["notification_id"])
    observed: dict[str, dict[int, str | None]] = {}
    for nid, exp in expect.items():
        assert nid in results, f"no result for {nid}"
        lines: dict[int, str | None] = {}
        for eid in (e for e in posted if e.startswith(nid + "/")):
            lines[int(eid.rsplit("/", 1)[1])] = None
        refund = refunds.get(f"{nid}/refund")
        refund_lines = refund["lines"] if refund else []
        if refund and refund["scope"] == "lines":
            for ln in refund_lines:
                assert ln["line_no"] not in lines, f"{nid}/{ln['line_no']} posted and refunded"
                lines[ln["line_no"]] = ln["reason"]
        elif refund:
            assert not lines, f"{nid} refunded whole but has posted entries"
            lines = {ln["line_no"]: ln["reason"] for ln in refund_lines}
        result = results[nid]
        assert result["lines_posted"] + result["lines_refunded"] == result["lines_total"] == exp["line_count"]
        if not (refund and refund["scope"] == "order"):
            assert result["lines_posted"] == sum(1 for v in lines.values() if v is None), f"{nid}: entries missing"
        total = int(round(float(result["amount_posted"]) * 100)) + int(round(float(result["amount_refunded"]) * 100))
        assert total == exp["total_tiyn"], f"{nid}: amounts not conserved"
        observed[nid] = lines
    return observed


def until(predicate, timeout: float, what: str, workers=()):
    """`predicate()` once it is truthy, polled every 0.3 s; past `timeout`, an AssertionError with
    the workers' log tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    tails = "\n".join(w.log_tail(20) for w in workers)
    raise AssertionError(f"timed out: {what}\n{tails}")
