"""The reversals ledger on the keyed-ledger processor, without a broker (an in-memory sink that
numbers offsets like one): the contract's example through the processor, redeliveries and repeats,
a decision before its entry, the cut-off timer, a crash between the state and the outputs, the hold
switched off with decisions waiting, PERIOD_USED_FOR_PAYMENT from the provider, and the metrics."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from monitoring import metrics
from rules import codes
from streams.records import InputRecord
from streams.reversals import ReversalsWorker
from streams.settings import Settings

from . import ledger_fakes
from .ledger_fakes import MemorySink
from .rules.test_reversals import A, C, PAYER, example, posted

DATA_ENTRIES = "tests/data/expected-outputs.json"
STAMPS = ("posted_at", "created_at", "decided_at")


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class MemoryChangelog(ledger_fakes.MemoryChangelog):
    """Reads the sink's changelog records into the store, as ChangelogReader reads the topic."""

    async def start(self):
        pass

    async def stop(self):
        pass


class Rig:
    """One deployment: a sink shared by every worker incarnation, a clock, the input logs."""

    def __init__(self, tmp_path, hold: bool = False, risk_months=lambda iin: ()):
        env = {"ESEP_PENDING": "business-day" if hold else "off", "ESEP_HOLD_CUTOFF_MIN": "30",
               "ESEP_DATA_DIR": str(tmp_path)}
        self.settings = Settings.from_env(env)
        self.t = self.settings.topics
        self.sink = MemorySink()
        self.clock = Clock(datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc))
        self.risk_months = risk_months
        self.tmp = tmp_path
        self.offsets: dict[tuple[str, int], int] = {}
        self.incarnation = 0
        self.worker = self.start()

    def start(self) -> ReversalsWorker:
        self.incarnation += 1
        return ReversalsWorker(self.settings, "unused:0", self.sink, lambda: [0, 1], self.clock, self.risk_months,
                               store_path=self.tmp / f"store-{self.incarnation}",
                               changelog=lambda store: MemoryChangelog(self.sink, store, self.t.reversals_state))

    def restart(self) -> None:
        """A new worker with an empty local store: state only from the changelog."""
        self.worker.store.close()
        self.worker = self.start()

    def record(self, topic: str, value: dict | bytes, key: str | None = None, partition: int = 0) -> InputRecord:
        raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
        if key is None:
            key = value["iin"]
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        return InputRecord(topic, partition, offset, key.encode(), raw)

    def posted(self, *entries: dict) -> list[InputRecord]:
        return [self.record(self.t.posted_contributions, e) for e in entries]

    def decision(self, rid, entry_ids, nid="N-1", iin=C["iin"], received_at="2026-12-01T11:00:00+05:00",
                 key=None) -> InputRecord:
        value = {"refund_decision_id": rid, "iin": iin, "notification_id": nid, "entry_ids": entry_ids,
                 "reason": "излишне уплаченные", "decided_on": received_at[:10], "received_at": received_at,
                 "payer": PAYER}
        return self.record(self.t.refund_decisions, value, key=key)

    def process(self, batch: list[InputRecord]):
        return asyncio.run(self.worker.processor.process(batch))

    def tick(self) -> int:
        return asyncio.run(self.worker.tick())

    def out(self, topic: str) -> list[dict]:
        return self.sink.values(topic)


def unstamped(value: dict) -> dict:
    return {k: v for k, v in value.items() if k not in STAMPS}


def test_the_contract_example_through_the_processor(tmp_path):
    rig = Rig(tmp_path)
    data = example()
    entries = json.loads(open(DATA_ENTRIES, encoding="utf-8").read())["posted.contributions"]
    rig.process(rig.posted(*entries))
    rig.process([rig.record(rig.t.refund_decisions, item["value"], key=item["key"]) for item in data["inputs"]])
    for topic, mine in (("fund.decision-results", rig.t.decision_results), ("posted.reversals", rig.t.posted_reversals),
                        ("refunds.reversals", rig.t.refunds_reversals)):
        expected = [o["value"] for step in data["steps"] for o in step["outputs"][topic]]
        got = [r for r in rig.sink.sent if r.topic == mine]
        assert [unstamped(orjson.loads(r.value)) for r in got] == [unstamped(v) for v in expected], topic
        expected_keys = [o["key"] for step in data["steps"] for o in step["outputs"][topic]]
        assert [r.key.decode() for r in got] == expected_keys, topic


def test_redelivery_re_emits_equal_and_a_repeat_emits_nothing(tmp_path):
    rig = Rig(tmp_path)
    rig.process(rig.posted(posted("N-1", 1), posted("N-1", 2), posted("N-1", 3, knp="017")))
    first = rig.decision("RFD-1", ["N-1/1", "N-1/3"])
    rig.process([first])
    before = {t: [unstamped(v) for v in rig.out(t)] for t in (rig.t.posted_reversals, rig.t.refunds_reversals,
                                                                rig.t.decision_results)}
    assert len(before[rig.t.posted_reversals]) == 2
    [refund] = before[rig.t.refunds_reversals]
    assert refund["refund_knp"] == "026" and refund["amount"] == "8500.00"
    rig.restart()  # the input offset was not committed: the same record comes again to a new worker
    summary = rig.process([first])
    assert summary.outcomes[("refund-decisions", "redelivered")] == 1
    again = {t: [unstamped(v) for v in rig.out(t)] for t in before}
    assert all(again[t] == before[t] * 2 for t in before), "the redelivery re-emits the same records"
    repeat = rig.decision("RFD-1", ["N-1/1", "N-1/3"])  # the same id at another offset
    summary = rig.process([repeat])
    assert summary.outcomes[("refund-decisions", "duplicate")] == 1
    assert {t: [unstamped(v) for v in rig.out(t)] for t in before} == again, "a repeat emits nothing"


def test_overlapping_decisions_reverse_each_entry_once(tmp_path):
    rig = Rig(tmp_path)
    rig.process(rig.posted(posted("N-1", 1), posted("N-1", 2)))
    rig.process([rig.decision("RFD-1", ["N-1/1", "N-1/2"]), rig.decision("RFD-2", ["N-1/2"])])
    results = {r["decision_id"]: r for r in rig.out(rig.t.decision_results)}
    assert results["RFD-1"]["status"] == "applied"
    assert (results["RFD-2"]["status"], results["RFD-2"]["reason"]) == ("rejected", codes.NOTHING_REVERSED)
    assert results["RFD-2"]["rejected_entries"] == [{"entry_id": "N-1/2", "reason": codes.ALREADY_REVERSED}]
    assert sorted(r["reverses"] for r in rig.out(rig.t.posted_reversals)) == ["N-1/1", "N-1/2"]


def test_a_decision_before_its_entry_waits_and_the_entry_releases_it(tmp_path):
    rig = Rig(tmp_path, hold=True)
    rig.process(rig.posted(posted("N-1", 1)))
    summary = rig.process([rig.decision("RFD-1", ["N-1/1", "N-1/2"])])
    assert summary.outcomes[("refund-decisions", "waiting")] == 1
    assert rig.out(rig.t.decision_results) == [] and rig.out(rig.t.posted_reversals) == []
    rig.worker.observe_waiting()
    assert metrics.refund_decisions_waiting._value.get() == 1
    assert metrics.refund_oldest_wait._value.get() == pytest.approx(0.0)  # received 11:00 Almaty = the clock
    rig.restart()  # the waiting decision follows its partition
    rig.process(rig.posted(posted("N-1", 2)))
    [result] = rig.out(rig.t.decision_results)
    assert result["status"] == "applied" and result["rejected_entries"] == []
    assert sorted(r["reverses"] for r in rig.out(rig.t.posted_reversals)) == ["N-1/1", "N-1/2"]
    rig.worker.observe_waiting()
    assert metrics.refund_decisions_waiting._value.get() == 0
    rig.restart()
    rig.process(rig.posted(posted("N-1", 3)))
    assert len(rig.out(rig.t.decision_results)) == 1, "released once: nothing left pending after the restart"


def test_the_cut_off_decides_with_what_exists(tmp_path):
    rig = Rig(tmp_path, hold=True)
    rig.process(rig.posted(posted("N-1", 1)))
    rig.process([rig.decision("RFD-1", ["N-1/1", "N-1/9"])])
    assert rig.tick() == 0
    # Received Tuesday 11:00 Almaty: deadline the end of Wednesday, cut-off 23:30 Wednesday.
    rig.clock.at = datetime(2026, 12, 2, 18, 29, tzinfo=timezone.utc)
    assert rig.tick() == 0
    rig.clock.at += timedelta(minutes=2)
    assert rig.tick() == 1
    [result] = rig.out(rig.t.decision_results)
    assert result["rejected_entries"] == [{"entry_id": "N-1/9", "reason": codes.ENTRY_NOT_FOUND}]
    assert [r["reverses"] for r in rig.out(rig.t.posted_reversals)] == ["N-1/1"]
    assert rig.tick() == 0


def test_an_entry_of_another_iin_waits_until_the_cut_off_then_is_not_found(tmp_path):
    rig = Rig(tmp_path, hold=True)
    rig.process(rig.posted(posted("N-1", 1, person=A)))
    rig.process([rig.decision("RFD-1", ["N-1/1"], iin=C["iin"])])
    rig.clock.at = datetime(2026, 12, 3, 0, 0, tzinfo=timezone.utc)
    rig.tick()
    [result] = rig.out(rig.t.decision_results)
    assert (result["status"], result["rejected_entries"]) == (
        "rejected", [{"entry_id": "N-1/1", "reason": codes.ENTRY_NOT_FOUND}])
    assert rig.out(rig.t.posted_reversals) == []


def test_a_crash_between_the_state_and_the_outputs(tmp_path):
    rig = Rig(tmp_path, hold=True)
    rig.process(rig.posted(posted("N-1", 1)))
    first = rig.decision("RFD-1", ["N-1/1"])
    rig.sink.crash_before = rig.t.decision_results  # the index was written, no output sent (the first)
    with pytest.raises(SystemExit):
        rig.process([first])
    assert rig.out(rig.t.decision_results) == []
    rig.restart()
    rig.process([first])  # redelivered: re-emitted from its record, not decided again
    assert len(rig.out(rig.t.posted_reversals)) == 1 and len(rig.out(rig.t.decision_results)) == 1
    # A decision released by an entry, then a crash before its outputs: re-sent at the restore.
    rig.process([rig.decision("RFD-2", ["N-1/2"])])
    rig.sink.crash_before = rig.t.decision_results
    with pytest.raises(SystemExit):
        rig.process(rig.posted(posted("N-1", 2)))
    rig.restart()
    asyncio.run(rig.worker.processor.restore({0, 1}))
    assert sorted(r["reverses"] for r in rig.out(rig.t.posted_reversals)) == ["N-1/1", "N-1/2"]
    rig.process(rig.posted(posted("N-1", 2)))  # the entry redelivered: already indexed, nothing more
    assert sorted(r["reverses"] for r in rig.out(rig.t.posted_reversals)) == ["N-1/1", "N-1/2"]


def test_switching_the_hold_off_releases_the_waiting_decisions(tmp_path):
    rig = Rig(tmp_path, hold=True)
    rig.process([rig.decision("RFD-1", ["N-1/1"])])
    rig.settings = Settings.from_env({"ESEP_PENDING": "off", "ESEP_DATA_DIR": str(tmp_path)})
    rig.restart()
    asyncio.run(rig.worker.processor.restore({0, 1}))
    assert rig.tick() == 1
    [result] = rig.out(rig.t.decision_results)
    assert result["rejected_entries"] == [{"entry_id": "N-1/1", "reason": codes.ENTRY_NOT_FOUND}]


def test_period_used_for_payment_from_the_provider_and_the_metrics(tmp_path):
    asked = []

    def risks(iin):
        asked.append(iin)
        return [(2026, 11)] if iin == C["iin"] else []

    rig = Rig(tmp_path, risk_months=risks)
    applied = metrics.refund_results.labels("applied")._value.get()
    used = metrics.reversal_entries.labels("rejected", codes.PERIOD_USED_FOR_PAYMENT)._value.get()
    penalties = metrics.amount_reversed.labels("017")._value.get()
    rig.process(rig.posted(posted("N-1", 1, period="2026-10"), posted("N-1", 2, knp="017", amount="100.25")))
    assert asked == [], "posting entries does not read the recipients ledger"
    rig.process([rig.decision("RFD-1", ["N-1/1", "N-1/2"])])
    assert asked == [C["iin"]]
    [result] = rig.out(rig.t.decision_results)
    assert result["rejected_entries"] == [{"entry_id": "N-1/1", "reason": codes.PERIOD_USED_FOR_PAYMENT}]
    [refund] = rig.out(rig.t.refunds_reversals)
    assert (refund["knp"], refund["refund_knp"], refund["amount"]) == ("017", "094", "100.25")
    assert metrics.refund_results.labels("applied")._value.get() == applied + 1
    assert metrics.reversal_entries.labels("rejected", codes.PERIOD_USED_FOR_PAYMENT)._value.get() == used + 1
    assert metrics.amount_reversed.labels("017")._value.get() == pytest.approx(penalties + 100.25)


def test_dead_letters_and_rerouting(tmp_path):
    rig = Rig(tmp_path)
    bad = rig.record(rig.t.refund_decisions, b'{"refund_decision_id": "X"}', key=C["iin"])
    value = json.loads(rig.decision("RFD-1", ["N-1/1"]).value)
    misplaced = rig.record(rig.t.refund_decisions, value, key="not-the-iin")
    rig.process([bad, misplaced])
    [letter] = rig.out(rig.t.dead_letters)
    assert letter["error_kind"] == "schema" and letter["source_topic"] == rig.t.refund_decisions
    [moved] = [r for r in rig.sink.sent if r.topic == rig.t.refund_decisions]
    assert moved.key == C["iin"].encode() and moved.value == misplaced.value
    assert rig.out(rig.t.decision_results) == []


def test_one_small_value_per_person_and_notification(tmp_path):
    rig = Rig(tmp_path)
    rig.process(rig.posted(posted("N-1", 1), posted("N-1", 2), posted("N-2", 1), posted("N-1", 3, person=A)))
    rig.process([rig.decision("RFD-1", ["N-2/1"], nid="N-2")])
    keys = sorted(k for k, _ in rig.worker.store.scan())
    assert keys == sorted([f"{C['iin']}/N-1", f"{C['iin']}/N-2", f"{A['iin']}/N-1"])
    from streams.keyed_ledger import decode_entry

    _, body = decode_entry(f"{C['iin']}/N-2", rig.worker.store.get(f"{C['iin']}/N-2"))
    index = rig.worker.ledger.load(f"{C['iin']}/N-2", body)
    assert (index.iin, sorted(index.entries), sorted(index.decisions)) == (C["iin"], ["N-2/1"], ["RFD-1"])
    # Every changelog record is written with the input's partition, whatever its key hashes to.
    assert {r.partition for r in rig.sink.sent if r.topic == rig.t.reversals_state} == {0}


def test_period_used_for_payment_read_from_the_recipients_ledger_of_the_same_worker(tmp_path):
    """The recipients ledger's store, fed through its own processor, answers for the IIN."""
    from streams.keyed_ledger import KeyedLedgerProcessor, open_ledger_store
    from rules.holds import HoldPolicy
    from streams.recipients import RecipientsLedger
    from streams.reversals import risk_months_in_store

    from .fund_cases import IIN, decision
    from .test_fund_example import registry
    from .test_recipients_ledger import Registry

    assert IIN == A["iin"]
    sink = MemorySink()
    topics = Settings.from_env({}).topics
    store = open_ledger_store(tmp_path / "recipients")
    recipients = RecipientsLedger(topics, Registry(registry()).get_views, HoldPolicy(enabled=False))
    proc = KeyedLedgerProcessor(recipients, store, ledger_fakes.MemoryChangelog(sink, store, topics.recipients_state),
                                sink, clock=lambda: datetime(2025, 3, 20, 6, tzinfo=timezone.utc),
                                owned_partitions=lambda: [0], name="recipients")
    assign = decision("assign", "2025-03-10", decision_id="DEC-RISK")
    record = InputRecord(topics.payment_decisions, 0, 0, IIN.encode(), assign.model_dump_json().encode())
    asyncio.run(proc.process([record]))
    assert [r["status"] for r in sink.values(topics.decision_results)] == ["applied"]
    assert risk_months_in_store(store, recipients.load, IIN) == {(2025, 3)}
    assert risk_months_in_store(store, recipients.load, C["iin"]) == set()

    rig = Rig(tmp_path / "rev", risk_months=lambda iin: risk_months_in_store(store, recipients.load, iin))
    rig.process(rig.posted(posted("N-1", 1, person=A, period="2023-04"), posted("N-1", 2, person=A, period="2023-03")))
    rig.process([rig.decision("RFD-1", ["N-1/1", "N-1/2"], iin=A["iin"])])
    [result] = rig.out(rig.t.decision_results)
    assert result["rejected_entries"] == [{"entry_id": "N-1/1", "reason": codes.PERIOD_USED_FOR_PAYMENT}]
    assert [r["reverses"] for r in rig.out(rig.t.posted_reversals)] == ["N-1/2"]
