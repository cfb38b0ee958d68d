"""The posting path in process, step by step: every record accounted for once, redeliveries
re-emitted identically from their records, repeats silent, and the hold's re-checks finishing held
orders from the copy their record keeps. Real rocksdict stores, an in-memory sink."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import orjson

from rules.holds import HoldPolicy
from streams.records import InputRecord
from tables.registry import judge_record

from .cases import A, B, F_UNKNOWN, _line, _order, example_notification

STAMPED = ("posted_at", "created_at", "decided_at")
RECEIVED = datetime.fromisoformat("2026-11-26T10:15:00+05:00")
LATE = {"iin": F_UNKNOWN, "surname": "Жұмабаев", "name": "Дәурен", "patronymic": None, "birth_date": "1990-05-05",
        "sex": "M", "citizenship": "KZ", "death_date": None, "updated_at": "2026-11-27T09:00:00+05:00"}


def record(processor, order: dict, offset: int, key: bytes | None = None, partition: int = 0) -> InputRecord:
    raw = json.dumps(order, ensure_ascii=False).encode()
    return InputRecord(processor.topics.credit_notifications, partition, offset,
                       key if key is not None else order["notification_id"].encode(), raw)


def unstamped(sink, start: int = 0) -> list[tuple[str, dict]]:
    out = []
    for r in sink.sent[start:]:
        value = orjson.loads(r.value)
        out.append((r.topic, {k: v for k, v in value.items() if k not in STAMPED} if isinstance(value, dict) else value))
    return out


def test_every_record_is_accounted_for_once(make_processor, memory_sink):
    processor = make_processor()
    good = example_notification()
    batch = [record(processor, good, 0), record(processor, good, 1),
             InputRecord(processor.topics.credit_notifications, 0, 2, b"X", b"{not json"),
             record(processor, {**good, "notification_id": "OTHER-1"}, 3, key=b"wrong-key")]
    summary = asyncio.run(processor.process(batch))
    assert (summary.new, summary.repeats, summary.dead_letters, summary.rerouted) == (1, 1, 1, 1)
    t = processor.topics
    rerouted = [r for r in memory_sink.sent if r.topic == t.credit_notifications]
    assert [r.key for r in rerouted] == [b"OTHER-1"] and rerouted[0].value == batch[3].value
    assert [d["error_kind"] for d in memory_sink.values(t.dead_letters)] == ["not_json"]
    assert processor.next_offsets == {0: 4}


def test_a_redelivery_is_emitted_again_identically_and_a_repeat_not_at_all(make_processor, memory_sink):
    first = make_processor()
    rec = record(first, example_notification(), 7)
    asyncio.run(first.process([rec]))
    emitted = unstamped(memory_sink)
    # A restart before the offset was committed: the same record again, to a new processor.
    first.decisions.close()
    again = make_processor(name="decisions")  # the same store directory: the same decisions
    before = len(memory_sink.sent)
    summary = asyncio.run(again.process([rec]))
    assert summary.redelivered == 1 and summary.new == 0
    t = again.topics
    assert unstamped(memory_sink, before) == [e for e in emitted if e[0] != t.decisions]
    summary = asyncio.run(again.process([record(again, example_notification(), 8)]))
    assert summary.repeats == 1 and len(memory_sink.sent) == before + len(emitted) - 1


def held_order() -> dict:
    late_line = {"line_no": 2, "iin": F_UNKNOWN, "surname": LATE["surname"], "name": LATE["name"],
                 "patronymic": None, "birth_date": LATE["birth_date"], "amount": "5000.00"}
    return _order("HOLD-1", [_line(1, A), late_line, _line(3, B, iin="921102423451")])


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_late_registry_record_posts_the_held_line(make_processor, memory_sink, registry_store):
    clock = Clock(RECEIVED.astimezone(timezone.utc) + timedelta(minutes=5))
    processor = make_processor(hold=HoldPolicy(), clock=clock, owned_partitions=lambda: [0])
    t = processor.topics
    summary = asyncio.run(processor.process([record(processor, held_order(), 0)]))
    assert (summary.lines_posted, summary.lines_refunded, summary.lines_held) == (1, 1, 1)
    assert [e["entry_id"] for e in memory_sink.values(t.posted_contributions)] == ["HOLD-1/1"]
    assert memory_sink.values(t.order_results) == [] and memory_sink.values(t.refunds) == []
    [held] = processor.decisions.open_orders()
    assert (held.notification_id, held.held_lines, held.emit_pending) == ("HOLD-1", 1, False)

    assert asyncio.run(processor.recheck(set())) == 0, "nothing changed, no cut-off passed"
    iin, value, _ = judge_record(LATE["iin"].encode(), json.dumps(LATE).encode())
    registry_store.apply({iin: value}, {0: 99})
    assert asyncio.run(processor.recheck({F_UNKNOWN})) == 1
    assert [e["entry_id"] for e in memory_sink.values(t.posted_contributions)] == ["HOLD-1/1", "HOLD-1/2"]
    [refund] = memory_sink.values(t.refunds)
    assert [(ln["line_no"], ln["reason"]) for ln in refund["lines"]] == [(3, "INVALID_IIN")]
    [result] = memory_sink.values(t.order_results)
    assert (result["status"], result["amount_posted"], result["amount_refunded"]) == (
        "partially_refunded", "9250.00", "4250.00")
    assert processor.decisions.open_orders() == []
    settled = processor.decisions.get_many(["HOLD-1"])["HOLD-1"]
    assert settled.order_raw is None and not settled.emit_pending


def test_at_the_cutoff_a_still_failing_line_is_refunded_once(make_processor, memory_sink):
    clock = Clock(RECEIVED.astimezone(timezone.utc))
    processor = make_processor(hold=HoldPolicy(margin=timedelta(minutes=30)), clock=clock,
                               owned_partitions=lambda: [0])
    t = processor.topics
    asyncio.run(processor.process([record(processor, held_order(), 0)]))
    clock.now = datetime.fromisoformat("2026-11-27T23:30:00+05:00")  # the cut-off
    assert asyncio.run(processor.recheck(set())) == 1
    assert asyncio.run(processor.recheck(set())) == 0
    [refund] = memory_sink.values(t.refunds)
    assert [(ln["line_no"], ln["reason"]) for ln in refund["lines"]] == [(2, "IIN_NOT_FOUND"), (3, "INVALID_IIN")]
    assert [r["status"] for r in memory_sink.values(t.order_results)] == ["partially_refunded"]
