"""The keyed-ledger infrastructure (tables/keyed.py, streams/keyed_ledger.py) with a toy ledger: an
in-memory sink that numbers changelog offsets per partition and a changelog reader over it, so that
restores, crashes and a second worker are played without a broker."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from pydantic import BaseModel, Field

from streams.keyed_ledger import (
    Context,
    Entry,
    InputKind,
    Item,
    KeyedLedgerProcessor,
    Output,
    Verdict,
    decode_entry,
    open_ledger_store,
)
from streams.records import InputRecord
from tables.keyed import KeyedStore

from .ledger_fakes import MemoryChangelog, MemorySink

CHANGELOG = "toy.changelog"
DLQ = "toy.dead-letters"
OUT = "toy.out"
IIN_A = "870314312348"
IIN_B = "900101300012"
T0 = datetime(2025, 3, 3, 6, 0, tzinfo=timezone.utc)


class Deposit(BaseModel):
    deposit_id: str = Field(min_length=1)
    iin: str = Field(pattern=r"^\d{12}$")
    amount: int  # negative: held until due, then decided


class Toy:
    """Balance per IIN. A negative deposit waits (due in an hour) and is then decided as zero."""

    changelog_topic = CHANGELOG
    dead_letter_topic = DLQ

    def __init__(self):
        self.kinds = [InputKind("toy.deposits", Deposit, "deposits", "d", lambda m: m.iin, lambda m: m.iin,
                                lambda m: m.deposit_id)]
        self.decided = []

    def load(self, key, body):
        return body or {"balance": 0, "held": []}

    def dump(self, state):
        return state

    def due(self, state):
        return min((h[2] for h in state["held"]), default=None)

    def facts(self, state):
        return {"balance": state["balance"], "held": len(state["held"])}

    def prepare(self, items, ctx):
        ctx.scratch["n"] = len(items)

    def decide(self, entry: Entry, item: Item, ctx: Context) -> Verdict:
        d = item.value
        if d.amount == 666:
            raise RuntimeError("bug")
        if d.amount < 0:
            entry.state["held"].append([item.rid, d.deposit_id, ctx.now.timestamp() + 3600])
            return Verdict(outcome="held")
        self.decided.append(d.deposit_id)
        entry.state["balance"] += d.amount
        return Verdict([Output(OUT, d.iin, {"id": d.deposit_id, "balance": entry.state["balance"], "at": ctx.stamp},
                               "at")])

    def on_due(self, entry: Entry, ctx: Context):
        out = {}
        keep = []
        for rid, did, due in entry.state["held"]:
            if due <= ctx.now.timestamp():
                self.decided.append(did)
                out[rid] = [Output(OUT, entry.key, {"id": did, "balance": entry.state["balance"], "at": ctx.stamp},
                                   "at")]
            else:
                keep.append([rid, did, due])
        entry.state["held"] = keep
        entry.changed = True
        return out

    def observe(self, summary):
        pass


class Worker:
    def __init__(self, tmp, sink, name="w1", clock=None):
        self.store = open_ledger_store(tmp / name)
        self.ledger = Toy()
        self.changelog = MemoryChangelog(sink, self.store, CHANGELOG)
        self.now = clock or [T0]
        self.proc = KeyedLedgerProcessor(self.ledger, self.store, self.changelog, sink, clock=lambda: self.now[0],
                                         owned_partitions=lambda: [0, 1], retry_backoff_s=0.0, name="toy")

    def close(self):
        self.store.close()


TOMBSTONE = object()


def rec(offset, deposit_id, iin=IIN_A, amount=100, partition=0, key=None, raw=None):
    value = None if raw is TOMBSTONE else raw if raw is not None else orjson.dumps({"deposit_id": deposit_id, "iin": iin, "amount": amount})
    return InputRecord("toy.deposits", partition, offset, (key if key is not None else iin.encode()), value)


@pytest.fixture
def sink():
    return MemorySink()


@pytest.fixture
def worker(tmp_path, sink):
    w = Worker(tmp_path, sink)
    yield w
    w.close()


def outs(sink):
    return sink.values(OUT)


@pytest.mark.asyncio
async def test_each_record_decided_once_repeat_emits_nothing(worker, sink):
    await worker.proc.process([rec(0, "a", amount=100), rec(1, "b", amount=50), rec(2, "a", amount=100)])
    assert [(o["id"], o["balance"]) for o in outs(sink)] == [("a", 100), ("b", 150)]
    assert worker.ledger.decided == ["a", "b"]
    # One changelog record for the key, written before the outputs.
    kinds = [r.topic for r in sink.sent]
    assert kinds.index(CHANGELOG) < kinds.index(OUT)
    assert sum(1 for t in kinds if t == CHANGELOG) == 1
    summary = await worker.proc.process([rec(3, "b", amount=50)])
    assert summary.outcomes[("deposits", "duplicate")] == 1
    assert len(outs(sink)) == 2


@pytest.mark.asyncio
async def test_redelivery_reemits_restamped_without_deciding(worker, sink):
    await worker.proc.process([rec(0, "a", amount=100)])
    worker.now[0] = T0 + timedelta(seconds=5)
    summary = await worker.proc.process([rec(0, "a", amount=100)])
    assert summary.outcomes[("deposits", "redelivered")] == 1
    first, again = outs(sink)
    assert first["at"] != again["at"]
    assert {**first, "at": None} == {**again, "at": None}
    assert worker.ledger.decided == ["a"]


@pytest.mark.asyncio
async def test_crash_after_the_changelog_write_redelivers_from_the_outbox(tmp_path, sink):
    w1 = Worker(tmp_path, sink, "w1")
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await w1.proc.process([rec(0, "a", amount=100), rec(1, "b", iin=IIN_B, amount=7)])
    assert outs(sink) == []
    w1.close()
    # Another worker gets the partition: restores from the changelog, the batch comes again.
    w2 = Worker(tmp_path, sink, "w2")
    await w2.proc.process([rec(0, "a", amount=100), rec(1, "b", iin=IIN_B, amount=7)])
    assert sorted((o["id"], o["balance"]) for o in outs(sink)) == [("a", 100), ("b", 7)]
    assert w2.ledger.decided == []  # nothing decided again
    assert w2.changelog.rounds == [[0, 1]]  # every owned partition restored in one round
    w2.close()


@pytest.mark.asyncio
async def test_outbox_keeps_only_the_latest_write(worker, sink):
    await worker.proc.process([rec(0, "a", amount=100)])
    await worker.proc.process([rec(1, "b", amount=1)])
    entry, _ = decode_entry(IIN_A, worker.store.get(IIN_A))
    assert set(entry.outbox) == {"d:b"} and set(entry.src) == {"d:a", "d:b"}
    # "a" was acknowledged before "b"'s batch began: its redelivery emits nothing more.
    summary = await worker.proc.process([rec(0, "a", amount=100)])
    assert summary.outcomes[("deposits", "redelivered_acked")] == 1
    assert len(outs(sink)) == 2


@pytest.mark.asyncio
async def test_bad_records_are_dead_letters_naming_the_field(worker, sink):
    await worker.proc.process([
        rec(0, "x", raw=b"{not json"),
        rec(1, "x", raw=orjson.dumps({"deposit_id": "x", "iin": "7", "amount": 1})),
        rec(2, "x", raw=TOMBSTONE),
        rec(3, "boom", amount=666),
    ])
    dl = sink.values(DLQ)
    assert [d["error_kind"] for d in dl] == ["not_json", "schema", "not_json", "unprocessable"]
    assert dl[1]["error"].startswith("iin:") and "7" not in dl[1]["error"]
    assert dl[3]["error"] == "decide: RuntimeError: bug"
    assert {d["offset"] for d in dl} == {0, 1, 2, 3}


@pytest.mark.asyncio
async def test_a_record_keyed_otherwise_is_rerouted_to_its_iin(worker, sink):
    summary = await worker.proc.process([rec(0, "a", key=b"something-else")])
    assert summary.outcomes[("deposits", "rerouted")] == 1
    moved = [r for r in sink.sent if r.topic == "toy.deposits"]
    assert len(moved) == 1 and moved[0].key == IIN_A.encode() and moved[0].partition is None
    assert outs(sink) == [] and worker.store.get(IIN_A) is None


@pytest.mark.asyncio
async def test_held_until_due_then_released_by_the_timer(worker, sink):
    summary = await worker.proc.process([rec(0, "h", amount=-1)])
    assert summary.outcomes[("deposits", "held")] == 1 and outs(sink) == []
    assert await worker.proc.tick() == 0  # not due yet
    due = list(worker.store.index_scan(b"t/"))
    assert len(due) == 1 and due[0].endswith(f"/0/{IIN_A}".encode())
    worker.now[0] = T0 + timedelta(hours=1, seconds=1)
    assert await worker.proc.tick() == 1
    assert [o["id"] for o in outs(sink)] == ["h"]
    assert list(worker.store.index_scan(b"t/")) == [] and list(worker.store.index_scan(b"e/")) == []
    # Its redelivery finds the released outputs in the outbox.
    summary = await worker.proc.process([rec(0, "h", amount=-1)])
    assert summary.outcomes[("deposits", "redelivered")] == 1
    assert worker.ledger.decided == ["h"]


@pytest.mark.asyncio
async def test_released_outputs_lost_in_a_crash_are_sent_at_restore(tmp_path, sink):
    clock = [T0]
    w1 = Worker(tmp_path, sink, "w1", clock)
    await w1.proc.process([rec(0, "h", amount=-1)])
    clock[0] = T0 + timedelta(hours=2)
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await w1.proc.tick()
    w1.close()
    assert outs(sink) == []
    w2 = Worker(tmp_path, sink, "w2", clock)
    await w2.proc.restore({0})
    assert [o["id"] for o in outs(sink)] == ["h"]
    assert w2.ledger.decided == []  # decided once, by w1
    assert list(w2.store.index_scan(b"e/")) == []


@pytest.mark.asyncio
async def test_timer_and_touch_leave_other_workers_partitions_alone(worker, sink):
    await worker.proc.process([rec(0, "h", amount=-1)])
    worker.proc.owned_partitions = lambda: [1]
    worker.now[0] = T0 + timedelta(hours=2)
    assert await worker.proc.tick() == 0
    assert await worker.proc.touch([IIN_A], lambda e, c: {}) == 0


def test_store_apply_keeps_indexes_and_offsets_together(tmp_path):
    store = KeyedStore(tmp_path / "s", index=lambda k, v: [b"i/" + v])
    store.apply([("a", b"1"), ("b", b"2")], {0: 5})
    store.apply([("a", b"3"), ("b", None)], {0: 7, 1: 2})
    assert store.get_many(["a", "b"]) == {"a": b"3", "b": None}
    assert list(store.index_scan(b"i/")) == [b"i/3"]
    assert store.aggregates() == {}
    assert (store.next_offset(0), store.next_offset(1), store.next_offset(2)) == (7, 2, None)
    assert [k for k, _ in store.scan("a")] == ["a"]
    store.close()


def test_store_aggregates_follow_the_values(tmp_path):
    store = KeyedStore(tmp_path / "s", aggregate=lambda k, v: {f"{k[0]}/n": int(v)})
    store.apply([("a1", b"5"), ("a2", b"7"), ("b1", b"1")], {0: 3})
    store.apply([("a1", b"2"), ("b1", None)], {0: 5})
    assert store.aggregates() == {"a/n": 9}  # b back at zero: absent
    store.close()


@pytest.mark.asyncio
async def test_facts_are_summed_per_partition_and_survive_a_restore(tmp_path, sink):
    w1 = Worker(tmp_path, sink, "w1")
    await w1.proc.process([rec(0, "a", amount=100), rec(1, "b", iin=IIN_B, amount=5, partition=1),
                           rec(2, "h", amount=-1)])
    assert w1.proc.totals([0, 1]) == {"balance": 105, "held": 1}
    assert w1.proc.totals([1]) == {"balance": 5}  # a total never moved is absent
    w1.close()
    w2 = Worker(tmp_path, sink, "w2")
    await w2.proc.restore({0, 1})
    assert w2.proc.totals([0, 1]) == {"balance": 105, "held": 1}
    w2.close()


@pytest.mark.asyncio
async def test_a_partition_that_went_away_and_came_back_is_read_again(tmp_path, sink):
    w1, w2 = Worker(tmp_path, sink, "w1"), Worker(tmp_path, sink, "w2")
    await w1.proc.process([rec(0, "a", amount=100)])
    # A rebalance gives partition 0 to w2 (w1 never saw a revocation: say it was not started yet).
    await w1.proc.reassigned({1})
    await w2.proc.process([rec(1, "b", amount=50)])
    await w1.proc.reassigned({0, 1})
    await w1.proc.process([rec(2, "c", amount=1)])
    assert [(o["id"], o["balance"]) for o in outs(sink)] == [("a", 100), ("b", 150), ("c", 151)]
    w1.close()
    w2.close()


@pytest.mark.asyncio
async def test_a_redelivery_reemitted_beside_a_new_record_keeps_its_outbox(worker, sink):
    """Crash after A's record; the redelivery re-emits A beside a new B of the same key and crashes
    again before sending: the next redelivery must still find A's outputs."""
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await worker.proc.process([rec(0, "a", amount=100)])
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await worker.proc.process([rec(0, "a", amount=100), rec(1, "b", amount=5)])
    await worker.proc.process([rec(0, "a", amount=100), rec(1, "b", amount=5)])
    assert [(o["id"], o["balance"]) for o in outs(sink)] == [("a", 100), ("b", 105)]
    assert worker.ledger.decided == ["a", "b"]
