"""The recipients ledger through the keyed-ledger processor, in process (real rocksdict stores, an
in-memory broker): the contract's fund example record for record, the lag hold with its cut-off,
redelivery and repeats, registry changes, and the per-partition gauges' totals."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from models.registry import RegistryPerson
from streams.keyed_ledger import KeyedLedgerProcessor, open_ledger_store
from rules.holds import HoldPolicy
from streams.records import InputRecord
from streams.recipients import RecipientsLedger
from streams.settings import Settings
from tables.registry import decode_person_view, encode_person

from .fund_cases import IIN, PERSON, decision, transfer
from .ledger_fakes import MemoryChangelog, MemorySink
from .test_fund_example import CLOCK, OUR_TOPICS, contract_fields, registry, steps

TOPICS = Settings.from_env({}).topics
STAMPS = {"decided_at", "updated_at", "posted_at", "created_at"}


class Registry:
    """The replica's view: what `RegistryStore.get_views` gives, through the stored encoding."""

    def __init__(self, persons: dict[str, dict]):
        self.persons = dict(persons)

    def get_views(self, iins):
        out = {}
        for iin in iins:
            p = self.persons.get(iin)
            out[iin] = None if p is None else decode_person_view(
                encode_person(RegistryPerson.model_validate_json(json.dumps(p))))
        return out


class Worker:
    def __init__(self, tmp, sink, clock, hold=False, name="w1", persons=None):
        self.registry = Registry(persons or registry())
        self.store = open_ledger_store(tmp / name)
        self.ledger = RecipientsLedger(TOPICS, self.registry.get_views,
                                       HoldPolicy(enabled=hold, margin=timedelta(minutes=30)))
        self.clock = clock
        self.proc = KeyedLedgerProcessor(self.ledger, self.store,
                                         MemoryChangelog(sink, self.store, TOPICS.recipients_state), sink,
                                         clock=lambda: self.clock[0], owned_partitions=lambda: [0],
                                         retry_backoff_s=0.0, name="recipients")
        self.offsets = {}

    def record(self, topic, value, key=None, offset=None):
        raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
        if offset is None:
            offset = self.offsets.get(topic, 0)
            self.offsets[topic] = offset + 1
        k = key if key is not None else json.loads(raw)["iin"].encode()
        return InputRecord(topic, 0, offset, k, raw)

    def close(self):
        self.store.close()


def clean(value: dict) -> dict:
    return {k: (CLOCK if k in STAMPS else v) for k, v in value.items()}


def by_topic(records) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in records:
        if r.topic == TOPICS.recipients_state:
            continue
        out.setdefault(r.topic, []).append({"key": r.key.decode(), "value": clean(orjson.loads(r.value))})
    return out


def topic_name(contract_name: str) -> str:
    return {"fund.decision-results": TOPICS.decision_results, "recipients.accounts": TOPICS.recipient_accounts,
            "posted.social-payments": TOPICS.social_payments, "fund.overpayments": TOPICS.overpayments}[contract_name]


def input_topic(name: str) -> str:
    return TOPICS.payment_decisions if name == "fund.payment-decisions" else TOPICS.payment_transfers


def near(inp) -> datetime:
    """The worker's clock near the record's business time (the example's precondition)."""
    v = inp["value"]
    if "received_at" in v:
        return datetime.fromisoformat(v["received_at"]).astimezone(timezone.utc) + timedelta(minutes=5)
    return datetime.fromisoformat(v["decided_on"] + "T12:00:00+05:00").astimezone(timezone.utc)


def assert_step(step, got: dict) -> None:
    for contract_topic in OUR_TOPICS:
        want = step["outputs"][contract_topic]
        have = got.get(topic_name(contract_topic), [])
        assert len(have) == len(want), (step["input"], contract_topic, have)
        for h, w in zip(have, want):
            assert h["key"] == w["key"]
            if contract_topic == "recipients.accounts":
                assert {f: h["value"][f] for f in w["value"]} == w["value"], step["input"]
            else:
                assert contract_fields(contract_topic, h["value"]) == w["value"], (step["input"], contract_topic)


@pytest.mark.asyncio
@pytest.mark.parametrize("hold", [False, True])
async def test_the_fund_example_input_by_input(tmp_path, hold):
    """With the hold off, and with it on and the clock past every cut-off (decided at once)."""
    sink = MemorySink()
    clock = [datetime(2026, 12, 1, tzinfo=timezone.utc)]
    w = Worker(tmp_path, sink, clock, hold=hold)
    seen = 0
    for inp, step in steps():
        if inp["topic"] == "fund.refund-decisions":
            continue
        if not hold:
            clock[0] = near(inp)
        before = len(sink.sent)
        await w.proc.process([w.record(input_topic(inp["topic"]), inp["value"])])
        got = by_topic(r for r in sink.sent[before:] if r.topic != TOPICS.recipients_state)
        assert_step(step, got)
        seen += 1
    assert seen == 11
    w.close()


@pytest.mark.asyncio
async def test_held_payment_waits_for_the_recalculation_then_its_cutoff(tmp_path):
    """Step 3's note: with the hold on and the clock near received_at, input 3 waits; input 4
    re-checks it (still over the amount in April); the timer decides it at the cut-off with the
    same records; input 10 (its transfer_id again) is a repeat."""
    sink = MemorySink()
    inputs = [inp for inp, _ in steps() if inp["topic"] != "fund.refund-decisions"]
    expected = {}
    for _, s in steps():
        expected.setdefault(s["id"], s)  # input 10 repeats input 3's id
    clock = [near(inputs[0])]
    w = Worker(tmp_path, sink, clock, hold=True)
    for inp in inputs[:2]:
        clock[0] = near(inp)
        await w.proc.process([w.record(input_topic(inp["topic"]), inp["value"])])
    clock[0] = near(inputs[2])
    summary = await w.proc.process([w.record(TOPICS.payment_transfers, inputs[2]["value"])])
    assert summary.outcomes[("payment-transfers", "held")] == 1
    assert w.proc.totals([0]) == {"held": 1}
    before = len(sink.sent)
    clock[0] += timedelta(hours=1)  # the recalculation arrives before input 3's cut-off
    await w.proc.process([w.record(TOPICS.payment_decisions, inputs[3]["value"])])
    got = by_topic(sink.sent[before:])
    assert TOPICS.social_payments not in got  # still held: April is over 60000.00 either way
    assert got[TOPICS.recipient_accounts][0]["value"]["paid"]["gross"] == "32903.23"
    cutoff = datetime.fromisoformat("2025-04-28T23:30:00+05:00")
    clock[0] = cutoff - timedelta(seconds=1)
    assert await w.proc.tick() == 0
    clock[0] = cutoff + timedelta(seconds=1)
    before = len(sink.sent)
    assert await w.proc.tick() == 1
    got = by_topic(r for r in sink.sent[before:] if r.topic != TOPICS.recipients_state)
    want = expected["GFSS-TRF-2025-000202"]["outputs"]
    assert got[TOPICS.social_payments] == want["posted.social-payments"]
    assert got[TOPICS.overpayments] == want["fund.overpayments"]
    assert got[TOPICS.recipient_accounts][0]["value"]["overpaid_outstanding"] == "5000.05"
    assert w.proc.totals([0]) == {"outstanding:loss_of_job": 500005}
    # The repeat of the held transfer's id (input 10) emits nothing.
    before = len(sink.sent)
    summary = await w.proc.process([w.record(TOPICS.payment_transfers, inputs[9]["value"])])
    assert summary.outcomes[("payment-transfers", "duplicate")] == 1 and len(sink.sent) == before
    w.close()


@pytest.mark.asyncio
async def test_a_transfer_before_its_decision_is_posted_when_the_decision_comes(tmp_path):
    sink = MemorySink()
    now = datetime(2026, 3, 25, 6, 0, tzinfo=timezone.utc)
    w = Worker(tmp_path, sink, [now], hold=True)
    t = transfer("2026-03", "60000.00", received_at="2026-03-25T11:00:00+05:00", transfer_id="EARLY")
    summary = await w.proc.process([w.record(TOPICS.payment_transfers, t.model_dump_json().encode())])
    assert summary.outcomes[("payment-transfers", "held")] == 1
    assert [r for r in sink.sent if r.topic == TOPICS.social_payments] == []
    d = decision("assign", "2026-03-01", decision_id="LATE-ASSIGN")
    summary = await w.proc.process([w.record(TOPICS.payment_decisions, d.model_dump_json().encode())])
    assert summary.released == 1
    posted = [orjson.loads(r.value) for r in sink.sent if r.topic == TOPICS.social_payments]
    assert [(p["entry_id"], p["covered_amount"], p["overpaid_amount"]) for p in posted] == [
        ("EARLY", "60000.00", "0.00")]
    # The entry was written once more after the release was acknowledged: nothing left pending.
    assert list(w.store.index_scan(b"e/")) == [] and list(w.store.index_scan(b"t/")) == []
    assert w.proc.totals([0]) == {}
    w.close()


@pytest.mark.asyncio
async def test_redelivery_reemits_and_a_registry_change_reemits_the_account(tmp_path):
    sink = MemorySink()
    now = datetime(2026, 3, 25, 6, 0, tzinfo=timezone.utc)
    persons = registry()
    w = Worker(tmp_path, sink, [now], persons=persons)
    d = decision("assign", "2026-03-01", decision_id="A1")
    raw = d.model_dump_json().encode()
    await w.proc.process([w.record(TOPICS.payment_decisions, raw, offset=0)])
    first = by_topic(sink.sent)
    before = len(sink.sent)
    summary = await w.proc.process([w.record(TOPICS.payment_decisions, raw, offset=0)])
    assert summary.outcomes[("payment-decisions", "redelivered")] == 1
    again = by_topic(sink.sent[before:])
    assert again[TOPICS.decision_results] == first[TOPICS.decision_results]
    assert TOPICS.recipients_state not in again  # nothing decided, nothing recorded again
    # The registry gives a new document: the account shows it, with its history.
    persons[IIN] = {**PERSON, "updated_at": "2026-04-02T10:00:00+05:00",
                    "document": {**PERSON["document"], "number": "099999999", "issued_on": "2026-04-01"}}
    w.registry.persons = persons
    before = len(sink.sent)
    assert await w.proc.touch([f"{IIN}/loss_of_job", f"{IIN}/child_care"], w.ledger.registry_change) == 1
    account = [orjson.loads(r.value) for r in sink.sent[before:] if r.topic == TOPICS.recipient_accounts]
    assert len(account) == 1 and account[0]["document"]["number"] == "099999999"
    assert [h["number"] for h in account[0]["document_history"]] == ["041234567", "099999999"]
    assert account[0]["document_history"][1]["changed_on"] == "2026-04-02"
    w.close()


@pytest.mark.asyncio
async def test_bad_and_misrouted_records(tmp_path):
    sink = MemorySink()
    w = Worker(tmp_path, sink, [datetime(2026, 3, 25, 6, 0, tzinfo=timezone.utc)])
    good = decision("assign", "2026-03-01", decision_id="R1").model_dump_json().encode()
    bad = orjson.dumps({**orjson.loads(good), "payment_type": "pension"})
    summary = await w.proc.process([
        w.record(TOPICS.payment_decisions, good, key=b"not-the-iin"),
        w.record(TOPICS.payment_decisions, bad),
    ])
    assert summary.outcomes[("payment-decisions", "rerouted")] == 1
    moved = [r for r in sink.sent if r.topic == TOPICS.payment_decisions]
    assert moved[0].key == IIN.encode() and moved[0].value == good
    dl = [orjson.loads(r.value) for r in sink.sent if r.topic == TOPICS.dead_letters]
    assert len(dl) == 1 and dl[0]["error"].startswith("payment_type:") and dl[0]["error_kind"] == "schema"
    w.close()


@pytest.mark.asyncio
async def test_payments_held_before_the_hold_was_switched_off_are_decided_at_the_next_tick(tmp_path):
    sink = MemorySink()
    now = datetime(2026, 3, 25, 6, 0, tzinfo=timezone.utc)
    w = Worker(tmp_path, sink, [now], hold=True)
    t = transfer("2026-03", "60000.00", received_at="2026-03-25T11:00:00+05:00", transfer_id="WAITING")
    await w.proc.process([w.record(TOPICS.payment_transfers, t.model_dump_json().encode())])
    w.close()
    off = Worker(tmp_path, sink, [now], hold=False)  # the same store, restarted with ESEP_PENDING=off
    await off.proc.restore({0})
    assert await off.proc.tick() == 0  # its cut-off is a day away
    assert await off.proc.tick(datetime.max.replace(tzinfo=timezone.utc)) == 1
    posted = [orjson.loads(r.value) for r in sink.sent if r.topic == TOPICS.social_payments]
    assert [(p["entry_id"], p["overpaid_reason"]) for p in posted] == [("WAITING", "NO_ASSIGNMENT")]
    off.close()
