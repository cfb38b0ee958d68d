"""Fuzzing at scale on the real broker (issue 9): over 10,000 generated and mutated notifications
(the kinds of tests/test_fuzz.py) to a real worker. Each must end as exactly one dead letter (its
own, naming its partition and offset) or one decided order with its amounts conserved (a re-keyed
record after its re-keyed copy); the worker must stay up and decide a valid order afterwards."""
from __future__ import annotations

import base64
import random
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from models.outputs import DeadLetter, OrderResult, PostedContribution, Refund
from rules.calendar import default_calendar, local_date

from ..cases import example_notification, registry_persons
from ..fuzzing import KINDS, FuzzRecord, fuzz_record, judge
from .harness import Outputs, Stack

pytestmark = pytest.mark.integration

RECORDS = 10_200
# Larger records (nesting 100,000 deep, an order of 10,001 lines, which the broker's 1 MB default
# refuses anyway) are the in-process test's business: here they would only make the run slow.
MAX_RECORD_BYTES = 64_000
STAMPS = ("posted_at", "created_at", "decided_at")


def tiyn(amount: str) -> int:
    return int(Decimal(amount) * 100)


def _distinct(records: list[dict], key) -> dict:
    """One record per id; a re-emission (after a redelivery) must equal the first but for its stamp."""
    first: dict = {}
    for r in records:
        k = key(r)
        if k in first:
            assert {f: v for f, v in first[k].items() if f not in STAMPS} == \
                   {f: v for f, v in r.items() if f not in STAMPS}, f"two different emissions of {k}"
        else:
            first[k] = r
    return first


def _generate() -> list[FuzzRecord]:
    rng = random.Random("esep.fuzz-broker")
    records = []
    while len(records) < RECORDS:
        i = len(records)
        record = fuzz_record(rng, f"FB-{i:06d}-{rng.getrandbits(32):08x}", rng.choice(KINDS))
        if record.value is None or len(record.value) <= MAX_RECORD_BYTES:
            records.append(record)
    return records


def test_ten_thousand_fuzzed_records_each_end_once_and_the_worker_goes_on(broker, tmp_path):
    records = _generate()
    stack = Stack(broker, tmp_path, ESEP_PENDING="off")
    outputs = Outputs(stack)
    topic = stack.topics.credit_notifications
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        futures = [stack.producer.send(topic, key=r.key, value=r.value) for r in records]
        stack.flush()
        placed = [(f.get(timeout=60).partition, f.get(timeout=60).offset) for f in futures]

        letters_due: dict[tuple[int, int], FuzzRecord] = {}
        rerouted: list[tuple[FuzzRecord, str]] = []
        candidates: dict[str, list] = defaultdict(list)  # nid -> [(line numbers, total tiyn)] of valid records
        kinds = Counter()
        for record, where in zip(records, placed):
            outcome, order = judge(record)
            kinds[outcome] += 1
            if outcome == "dead_letter":
                letters_due[where] = record
                continue
            candidates[order.notification_id].append(
                (sorted(line.line_no for line in order.lines), tiyn(order.total_amount)))
            if outcome == "rerouted":
                rerouted.append((record, order.notification_id))

        outputs.wait_for(lambda o: len({(d["partition"], d["offset"]) for d in o.dead_letters}) >= len(letters_due)
                         and o.result_ids() >= set(candidates),
                         timeout=600, what="a dead letter or a result for every record", workers=[worker])
        outputs.drain(quiet_s=2.0)

        # Exactly one dead letter per invalid record, none for a valid one.
        letters = _distinct(outputs.dead_letters, lambda d: (d["partition"], d["offset"]))
        assert set(letters) == set(letters_due), "dead letters and invalid records differ"
        error_kinds = Counter()
        for where, letter in letters.items():
            DeadLetter.model_validate(letter)
            record = letters_due[where]
            assert letter["source_topic"] == topic
            assert letter["value"] == (None if record.value is None else base64.b64encode(record.value).decode())
            assert letter["error_kind"] in ("not_json", "not_utf8", "schema") and letter["error"]
            error_kinds[letter["error_kind"]] += 1

        # Re-keyed records: one copy under their id, then decided like the rest.
        copies = Counter((k, v) for k, v in outputs.records[topic])
        for record, nid in rerouted:
            assert copies[(nid.encode(), record.value)] >= 1, f"{nid}: no re-keyed copy"

        # One decided order per valid id; every line ends once; amounts conserved.
        results = _distinct(outputs.results, lambda r: r["notification_id"])
        assert set(results) == set(candidates)
        posted = _distinct(outputs.posted, lambda e: e["entry_id"])
        refunds = _distinct(outputs.refunds, lambda r: r["notification_id"])
        posted_by_order: dict[str, list[dict]] = defaultdict(list)
        for entry in posted.values():
            PostedContribution.model_validate(entry)
            posted_by_order[entry["entry_id"].rsplit("/", 1)[0]].append(entry)
        assert set(posted_by_order) <= set(results) and set(refunds) <= set(results)
        for nid, result in results.items():
            OrderResult.model_validate(result)
            entries, refund = posted_by_order.get(nid, []), refunds.get(nid)
            if refund is not None:
                Refund.model_validate(refund)
            total = tiyn(result["amount_posted"]) + tiyn(result["amount_refunded"])
            ended = sorted([int(e["entry_id"].rsplit("/", 1)[1]) for e in entries]
                           + [ln["line_no"] for ln in (refund["lines"] if refund else [])])
            assert (ended, total) in candidates[nid], f"{nid}: lines or amounts differ from the order"
            assert sum(tiyn(e["amount"]) for e in entries) == tiyn(result["amount_posted"])
            assert tiyn(refund["amount"] if refund else "0") == tiyn(result["amount_refunded"])
            assert result["lines_posted"] == len(entries)
            assert result["lines_total"] == result["lines_posted"] + result["lines_refunded"] == len(ended)

        # Still alive, still ready, still deciding; and the calendar gauge set at start (issue 9 item 7).
        assert worker.proc.poll() is None, worker.log_tail()
        def known_ahead() -> int:
            return default_calendar().days_known_ahead(local_date(datetime.now(timezone.utc)))

        before, gauge, after = known_ahead(), worker.metric("esep_calendar_days_known_ahead"), known_ahead()
        assert gauge in (before, after)  # two values only when the day turned while reading
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=5) as r:
            assert r.status == 200
        after = {**example_notification(), "notification_id": "FB-AFTER"}
        stack.send_notification(after)
        stack.flush()
        outputs.wait_for(lambda o: "FB-AFTER" in o.result_ids(), what="the order sent after the fuzz",
                         workers=[worker])
        last = next(r for r in outputs.results if r["notification_id"] == "FB-AFTER")
        assert (last["status"], last["lines_posted"], last["amount_posted"]) == ("partially_refunded", 2, "34000.00")
        print(f"\nfuzz (broker): {len(records)} records; {len(letters)} dead letters {dict(error_kinds)}; "
              f"{len(results)} decided ({len(rerouted)} after re-keying); outcomes {dict(kinds)}; "
              f"worker crashes 0")
    finally:
        outputs.close()
        stack.close()
