"""No record can stop posting: an exception while deciding, encoding or writing one record costs
only that record (a dead letter `unprocessable` with the cause), on the posting path, in the hold's
re-checks, in the registry replica and in the change publisher. What is not a record's fault (a
broker that is down) is retried, and what nothing gets through at all stops the batch instead of
dead-lettering everything. In process: real stores, an in-memory sink with injected refusals."""
from __future__ import annotations

import asyncio
import json
import base64
from datetime import datetime, timezone
from types import SimpleNamespace

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

import streams.holding
import tables.registry
from rules import codes
from rules.holds import HoldPolicy
from streams.records import InputRecord
from tables.decisions import DecisionRecord

from .cases import A, B, C, F_UNKNOWN, _line, _order, example_notification, registry_persons

HUGE = 1000000000000000000000000000000  # the reported line_no: valid JSON, beyond 64 bits


def notification(processor, nid: str, offset: int, **changes) -> InputRecord:
    order = {**_order(nid, [_line(1, A), _line(2, B), _line(3, C)]), **changes}
    return InputRecord(processor.topics.credit_notifications, 0, offset, nid.encode(),
                       json.dumps(order, ensure_ascii=False).encode())


def results(sink, processor) -> list[str]:
    """Decided orders, in order; finding a refused record may send others twice (identical)."""
    return list(dict.fromkeys(r["notification_id"] for r in sink.values(processor.topics.order_results)))


def dead_letters(sink, processor) -> list[dict]:
    return sink.values(processor.topics.dead_letters)


def test_the_reported_defect_a_huge_line_number_costs_only_its_notification(make_processor, memory_sink):
    processor = make_processor()
    order = example_notification()
    order["lines"][0]["line_no"] = HUGE
    poison = InputRecord(processor.topics.credit_notifications, 0, 1, order["notification_id"].encode(),
                         json.dumps(order, ensure_ascii=False).encode())
    batch = [notification(processor, "OK-1", 0), poison, notification(processor, "OK-2", 2)]
    summary = asyncio.run(processor.process(batch))
    assert results(memory_sink, processor) == ["OK-1", "OK-2"]
    [letter] = dead_letters(memory_sink, processor)
    assert letter["offset"] == 1
    # Bounds in the models make it a schema error; without them, writing its record fails: either
    # way one dead letter, and the batch goes on.
    assert letter["error_kind"] in (codes.SCHEMA, codes.UNPROCESSABLE)
    if letter["error_kind"] == codes.UNPROCESSABLE:
        assert "64-bit" in letter["error"]
    assert (summary.new, summary.dead_letters) == (2, 1)
    assert processor.next_offsets == {0: 3}
    assert processor.decisions.get_many([order["notification_id"]]) == {}


def test_a_record_the_parser_chokes_on_costs_only_itself(make_processor, memory_sink, monkeypatch):
    import streams.processor

    validate = streams.processor.CreditNotification.model_validate_json

    def choking(raw):
        if b"BAD-1" in raw:
            raise RecursionError("injected: maximum recursion depth exceeded")
        return validate(raw)

    monkeypatch.setattr(streams.processor.CreditNotification, "model_validate_json", choking)
    processor = make_processor()
    batch = [notification(processor, "OK-0", 0), notification(processor, "BAD-1", 1), notification(processor, "OK-2", 2)]
    summary = asyncio.run(processor.process(batch))
    assert results(memory_sink, processor) == ["OK-0", "OK-2"]
    [letter] = dead_letters(memory_sink, processor)
    assert (letter["offset"], letter["error_kind"]) == (1, "unprocessable")
    assert letter["error"].startswith("reading: RecursionError") and summary.dead_letters == 1


def test_a_record_that_cannot_be_encoded_costs_only_its_order(make_processor, memory_sink, monkeypatch):
    encode = DecisionRecord.encode

    def failing(self):
        if self.notification_id == "BAD-2":
            raise OverflowError("injected: cannot encode this one")
        return encode(self)

    monkeypatch.setattr(DecisionRecord, "encode", failing)
    processor = make_processor()
    batch = [notification(processor, f"{'BAD' if i == 2 else 'OK'}-{i}", i) for i in range(5)]
    summary = asyncio.run(processor.process(batch))
    assert results(memory_sink, processor) == ["OK-0", "OK-1", "OK-3", "OK-4"]
    [letter] = dead_letters(memory_sink, processor)
    assert (letter["offset"], letter["error_kind"]) == (2, "unprocessable")
    assert letter["error"] == "deciding: OverflowError: injected: cannot encode this one"
    assert (summary.new, summary.dead_letters, summary.notifications) == (4, 1, 5)


def test_a_decision_record_the_broker_refuses_leaves_its_order_undecided(make_processor, memory_sink):
    processor = make_processor()
    t = processor.topics
    memory_sink.refuse = lambda r: (MessageSizeTooLargeError("too large") if r.topic == t.decisions and r.key == b"BAD-1"
                                    else None)
    batch = [notification(processor, "OK-0", 0), notification(processor, "BAD-1", 1), notification(processor, "OK-2", 2)]
    summary = asyncio.run(processor.process(batch))
    assert results(memory_sink, processor) == ["OK-0", "OK-2"]
    assert not any(r.key == b"BAD-1" for r in memory_sink.sent if r.topic != t.dead_letters), "no output of BAD-1"
    [letter] = dead_letters(memory_sink, processor)
    assert letter["error"].startswith("recording its decision: MessageSizeTooLargeError")
    assert summary.new == 2
    # Not decided, so not used up: the corrected resend is decided like any new order.
    memory_sink.refuse = lambda r: None
    again = asyncio.run(processor.process([notification(processor, "BAD-1", 3)]))
    assert again.new == 1 and results(memory_sink, processor)[-1] == "BAD-1"


def test_outputs_the_broker_refuses_cost_only_their_order(make_processor, memory_sink):
    processor = make_processor()
    t = processor.topics
    memory_sink.refuse = lambda r: (MessageSizeTooLargeError("too large")
                                    if r.topic == t.order_results and b'"BAD-1"' in r.value else None)
    batch = [notification(processor, "OK-0", 0), notification(processor, "BAD-1", 1), notification(processor, "OK-2", 2)]
    summary = asyncio.run(processor.process(batch))
    assert results(memory_sink, processor) == ["OK-0", "OK-2"]
    [letter] = dead_letters(memory_sink, processor)
    assert letter["offset"] == 1 and letter["error"].startswith("sending its outputs: MessageSizeTooLargeError")
    assert (summary.new, summary.dead_letters) == (2, 1)
    assert processor.next_offsets == {0: 3}


def test_a_broker_that_is_down_is_waited_for_never_dead_lettered(make_processor, memory_sink):
    processor = make_processor(retry_backoff_s=0.001)
    failures = iter([KafkaConnectionError("down")] * 3)
    memory_sink.refuse = lambda r: next(failures, None)
    summary = asyncio.run(processor.process([notification(processor, "OK-0", 0)]))
    assert summary.new == 1 and results(memory_sink, processor) == ["OK-0"]
    assert dead_letters(memory_sink, processor) == []


def test_when_nothing_gets_through_the_batch_fails_instead_of_dead_lettering_everything(make_processor, memory_sink):
    processor = make_processor()
    memory_sink.refuse = lambda r: RuntimeError("producer is gone")
    with pytest.raises(RuntimeError, match="producer is gone"):
        asyncio.run(processor.process([notification(processor, f"OK-{i}", i) for i in range(3)]))
    assert processor.next_offsets == {}, "nothing acknowledged: the batch comes again"


def test_a_refused_dead_letter_goes_again_without_its_value(make_processor, memory_sink):
    processor = make_processor()
    t = processor.topics
    memory_sink.refuse = lambda r: (MessageSizeTooLargeError("too large")
                                    if r.topic == t.dead_letters and b'"value":"' in r.value else None)
    bad = InputRecord(t.credit_notifications, 0, 0, b"X", b"{not json" + b"x" * 1000)
    summary = asyncio.run(processor.process([bad]))
    [letter] = dead_letters(memory_sink, processor)
    assert letter["value"] is None and letter["error_kind"] == "not_json"
    assert "value omitted" in letter["error"] and summary.dead_letters == 1


@pytest.mark.asyncio
async def test_the_agent_survives_a_poison_record(agent_app, memory_sink):
    app, settings, processor, runtime = agent_app
    order = example_notification()
    order["lines"][0]["line_no"] = HUGE
    good = _order("OK-1", [_line(1, A)])
    done = asyncio.Event()
    step = processor.acknowledge

    async def acknowledge(batch, summary, ack):
        await step(batch, summary, ack)
        if processor.next_offsets.get(0) == 2:
            done.set()

    processor.acknowledge = acknowledge
    async with app.agents["post-orders"].test_context() as ctx:
        poison = await ctx.put(json.dumps(order).encode(), key=order["notification_id"].encode(), wait=False)
        after = await ctx.put(json.dumps(good, ensure_ascii=False).encode(), key=b"OK-1", wait=False)
        await done.wait()
    assert poison.message.acked and after.message.acked
    assert runtime.lifecycle.failure is None
    assert [r["notification_id"] for r in memory_sink.values(settings.topics.order_results)] == ["OK-1"]
    assert len(memory_sink.values(settings.topics.dead_letters)) == 1


# ---- the hold's re-checks -----------------------------------------------------------------------------

LATE = {"iin": F_UNKNOWN, "surname": "Жұмабаев", "name": "Дәурен", "patronymic": None, "birth_date": "1990-05-05",
        "sex": "M", "citizenship": "KZ", "death_date": None, "updated_at": "2026-11-27T09:00:00+05:00"}


def held(processor, nid: str, offset: int) -> InputRecord:
    late_line = {"line_no": 2, "iin": F_UNKNOWN, "surname": LATE["surname"], "name": LATE["name"],
                 "patronymic": None, "birth_date": LATE["birth_date"], "amount": "5000.00"}
    raw = json.dumps(_order(nid, [_line(1, A), late_line]), ensure_ascii=False).encode()
    return InputRecord(processor.topics.credit_notifications, 0, offset, nid.encode(), raw)


def test_a_held_order_a_recheck_fails_on_is_dead_lettered_once_and_the_others_go_on(
        make_processor, memory_sink, registry_store, monkeypatch):
    received = datetime.fromisoformat("2026-11-26T10:20:00+05:00").astimezone(timezone.utc)
    processor = make_processor(hold=HoldPolicy(), clock=lambda: received, owned_partitions=lambda: [0])
    asyncio.run(processor.process([held(processor, "HOLD-BAD", 0), held(processor, "HOLD-OK", 1)]))
    recheck = streams.holding.recheck_held

    def failing(order, decision, persons, final):
        if order.notification_id == "HOLD-BAD":
            raise KeyError("injected")
        return recheck(order, decision, persons, final)

    monkeypatch.setattr(streams.holding, "recheck_held", failing)
    from tables.registry import judge_record

    iin, value, _ = judge_record(F_UNKNOWN.encode(), json.dumps(LATE).encode())
    registry_store.apply({iin: value}, {0: 99})
    assert asyncio.run(processor.recheck({F_UNKNOWN})) == 1
    assert asyncio.run(processor.recheck({F_UNKNOWN})) == 0
    assert results(memory_sink, processor) == ["HOLD-OK"]
    [letter] = dead_letters(memory_sink, processor)
    assert (letter["offset"], letter["error_kind"]) == (0, "unprocessable")
    assert letter["error"].startswith("re-checking held lines: KeyError")
    assert orjson.loads(base64.b64decode(letter["value"]))["notification_id"] == "HOLD-BAD"


# ---- the registry replica ----------------------------------------------------------------------------

def registry_fetch(topic: str, persons: list[dict], partition: int = 0) -> dict:
    records = [SimpleNamespace(key=p["iin"].encode(), value=json.dumps(p, ensure_ascii=False).encode(), offset=i)
               for i, p in enumerate(persons)]
    return {TopicPartition(topic, partition): records}


def test_the_replica_skips_a_record_it_cannot_read_or_store(tmp_path, monkeypatch):
    store = tables.registry.RegistryStore(tmp_path / "registry")
    replica = tables.registry.RegistryReplica(store, "127.0.0.1:1", "registry.persons")
    persons = registry_persons()
    judge = tables.registry.judge_record

    def failing_judge(key, value):
        if key == persons[1]["iin"].encode():
            raise OverflowError("injected")
        return judge(key, value)

    monkeypatch.setattr(tables.registry, "judge_record", failing_judge)
    apply = store.apply

    def failing_apply(puts, next_offsets):
        if persons[3]["iin"] in puts:
            raise RuntimeError("injected: the store refuses this one")
        return apply(puts, next_offsets)

    monkeypatch.setattr(store, "apply", failing_apply)
    next_offsets = replica.apply_batch(registry_fetch("registry.persons", persons))
    assert next_offsets == {0: len(persons)}
    assert store.offsets([0]) == {0: len(persons)}
    found = store.get_many([p["iin"] for p in persons])
    assert [iin for iin, person in found.items() if person is None] == [persons[1]["iin"], persons[3]["iin"]]
    assert replica.stats.rejected == 2
    store.close()


# ---- the change publisher ----------------------------------------------------------------------------

def test_the_change_publisher_dead_letters_a_record_it_fails_on_and_publishes_the_others(
        tmp_path, memory_sink, monkeypatch):
    import streams.registry_changes as publishing
    from streams.settings import Settings
    from tables.history import HistoryStore

    settings = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path)})
    history = HistoryStore(tmp_path / "history")
    publisher = publishing.RegistryChangePublisher(settings, "127.0.0.1:1", history, memory_sink,
                                                   lambda: datetime(2026, 11, 27, tzinfo=timezone.utc))
    publisher.restored.add(0)  # nothing to restore: a fresh history
    persons = registry_persons()
    diff = publishing.diff_person

    def failing(before, after):
        if after and after.get("surname") == persons[2]["surname"]:
            raise ValueError("injected")
        return diff(before, after)

    monkeypatch.setattr(publishing, "diff_person", failing)
    asyncio.run(publisher._process(registry_fetch(settings.topics.registry_persons, persons)))
    t = settings.topics
    events = memory_sink.values(t.registry_changes)
    assert sorted(e["iin"] for e in events) == sorted(p["iin"] for i, p in enumerate(persons) if i != 2)
    [letter] = memory_sink.values(t.dead_letters)
    assert (letter["offset"], letter["error_kind"]) == (2, "unprocessable")
    assert history.get_many([persons[2]["iin"]]) == {persons[2]["iin"]: []}, "no version for the failed record"
    assert len(history.get_many([persons[0]["iin"]])[persons[0]["iin"]]) == 1
    history.close()

