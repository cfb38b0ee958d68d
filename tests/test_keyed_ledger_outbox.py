"""The keyed ledger's outbox with two input topics of one key (the recipients ledger: decisions and
transfers; the reversals ledger: posted contributions and refund decisions). The two topics are
committed apart, and faust can hand a partition's records out of order after a rebalance (a range
it dropped comes back later), so after a crash between the changelog write and the send another
record can write the key before the crashed record comes again. That write must not drop the
crashed record's outputs: the kill test lost a social payment so (the decision after it wrote the
key, the transfer's redelivery found nothing to re-emit, and the worker sat with no lag and a
payment never posted). And a redelivery must not re-send an older state (the account) after a
newer one."""
from __future__ import annotations

import orjson
import pytest
from pydantic import BaseModel, Field

from streams.keyed_ledger import Context, Entry, InputKind, Item, KeyedLedgerProcessor, Output, Verdict, decode_entry, \
    open_ledger_store
from streams.records import InputRecord

from .ledger_fakes import MemoryChangelog, MemorySink

CHANGELOG = "two.changelog"
DLQ = "two.dead-letters"
OUT = "two.out"
BALANCE = "two.balance"  # the key's latest state, like the recipient's account
DEPOSITS = "two.deposits"
NOTES = "two.notes"
IIN = "870314312348"


class Deposit(BaseModel):
    deposit_id: str = Field(min_length=1)
    iin: str = Field(pattern=r"^\d{12}$")
    amount: int


class Note(BaseModel):
    note_id: str = Field(min_length=1)
    iin: str = Field(pattern=r"^\d{12}$")


class TwoInputs:
    """A balance per IIN fed by deposits, and notes (the other topic) that only echo it."""

    changelog_topic = CHANGELOG
    dead_letter_topic = DLQ
    snapshot_topics = frozenset({BALANCE})

    def __init__(self):
        self.kinds = [
            InputKind(DEPOSITS, Deposit, "deposits", "d", lambda m: m.iin, lambda m: m.iin, lambda m: m.deposit_id),
            InputKind(NOTES, Note, "notes", "n", lambda m: m.iin, lambda m: m.iin, lambda m: m.note_id),
        ]
        self.decided: list[str] = []

    def load(self, key, body):
        return body or {"balance": 0}

    def dump(self, state):
        return state

    def due(self, state):
        return None

    def facts(self, state):
        return {}

    def prepare(self, items, ctx):
        pass

    def decide(self, entry: Entry, item: Item, ctx: Context) -> Verdict:
        v = item.value
        if isinstance(v, Deposit):
            entry.state["balance"] += v.amount
            self.decided.append(v.deposit_id)
            rid = v.deposit_id
        else:
            self.decided.append(v.note_id)
            rid = v.note_id
        balance = entry.state["balance"]
        return Verdict([Output(OUT, v.iin, {"id": rid, "balance": balance}),
                        Output(BALANCE, v.iin, {"balance": balance, "after": rid})])

    def on_due(self, entry, ctx):
        return {}

    def observe(self, summary):
        pass


class Worker:
    def __init__(self, tmp, sink, name, committed=None):
        self.store = open_ledger_store(tmp / name)
        self.ledger = TwoInputs()
        self.changelog = MemoryChangelog(sink, self.store, CHANGELOG)
        self.proc = KeyedLedgerProcessor(self.ledger, self.store, self.changelog, sink,
                                         owned_partitions=lambda: [0], retry_backoff_s=0.0, name="two",
                                         committed=committed)

    def outbox(self) -> set[str]:
        entry, _ = decode_entry(IIN, self.store.get(IIN))
        return set(entry.outbox)

    def close(self):
        self.store.close()


def deposit(offset, deposit_id, amount=100):
    return InputRecord(DEPOSITS, 0, offset, IIN.encode(),
                       orjson.dumps({"deposit_id": deposit_id, "iin": IIN, "amount": amount}))


def note(offset, note_id):
    return InputRecord(NOTES, 0, offset, IIN.encode(), orjson.dumps({"note_id": note_id, "iin": IIN}))


def ids(sink) -> list[str]:
    return [v["id"] for v in sink.values(OUT)]


def last_balance(sink) -> dict:
    return sink.values(BALANCE)[-1]


@pytest.fixture
def sink():
    return MemorySink()


@pytest.mark.asyncio
async def test_a_record_of_the_other_topic_first_after_a_crash_keeps_the_crashed_outputs(tmp_path, sink):
    w1 = Worker(tmp_path, sink, "w1")
    await w1.proc.process([deposit(0, "a")])
    sink.crash_before = OUT
    with pytest.raises(SystemExit):  # "b" is in the changelog, its output never sent, its offset not committed
        await w1.proc.process([deposit(1, "b", amount=5)])
    w1.close()
    # The next worker resumes each topic at its committed offset: the note comes before "b" again.
    w2 = Worker(tmp_path, sink, "w2")
    await w2.proc.process([note(0, "x")])
    assert "d:b" in w2.outbox(), "the note's write dropped the outputs of a record not yet acknowledged"
    summary = await w2.proc.process([deposit(1, "b", amount=5)])
    assert summary.outcomes[("deposits", "redelivered")] == 1
    assert ids(sink) == ["a", "x", "b"]
    assert w2.ledger.decided == ["x"]  # "b" re-emitted, not decided again
    w2.close()


@pytest.mark.asyncio
async def test_both_topics_in_one_batch_after_a_crash(tmp_path, sink):
    """The note first in the batch that also redelivers "b": one write, "b" re-emitted."""
    w1 = Worker(tmp_path, sink, "w1")
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await w1.proc.process([deposit(0, "b")])
    w1.close()
    w2 = Worker(tmp_path, sink, "w2")
    await w2.proc.process([note(0, "x"), deposit(0, "b")])
    assert sorted(ids(sink)) == ["b", "x"]
    w2.close()


@pytest.mark.asyncio
async def test_outputs_acknowledged_in_this_ownership_are_dropped_at_the_next_write(tmp_path, sink):
    """The outbox stays bounded: once a finished batch passed an input, the next write drops it."""
    w = Worker(tmp_path, sink, "w1")
    await w.proc.process([deposit(0, "a")])
    await w.proc.process([note(0, "x")])
    assert w.outbox() == {"n:x"}
    await w.proc.process([deposit(1, "b")])
    assert w.outbox() == {"d:b"}
    summary = await w.proc.process([deposit(0, "a")])  # a late redelivery: delivered already
    assert summary.outcomes[("deposits", "redelivered_acked")] == 1
    assert ids(sink) == ["a", "x", "b"]
    w.close()


@pytest.mark.asyncio
async def test_a_partition_back_from_a_worker_that_crashed_there(tmp_path, sink):
    """w1 finished deposits 0-1; the partition went to w2, which read them again from the committed
    offset, decided deposit 2 and died before sending. Back on w1, a note first: what w1 finished
    (below 2) does not vouch for deposit 2, whose outputs must come with its redelivery."""
    w1, w2 = Worker(tmp_path, sink, "w1"), Worker(tmp_path, sink, "w2")
    await w1.proc.process([deposit(0, "a"), deposit(1, "a2")])
    w1.proc.forget_partitions([0])
    await w2.proc.reassigned({0})
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await w2.proc.process([deposit(0, "a"), deposit(1, "a2"), deposit(2, "b")])
    await w1.proc.reassigned({0})
    await w1.proc.process([note(0, "x")])
    assert "d:b" in w1.outbox()
    await w1.proc.process([deposit(0, "a"), deposit(1, "a2"), deposit(2, "b")])
    assert ids(sink) == ["a", "a2", "x", "b"]
    assert w1.ledger.decided + w2.ledger.decided == ["a", "a2", "x", "b"]
    w1.close()
    w2.close()


@pytest.mark.asyncio
async def test_records_handed_out_of_order_vouch_only_for_themselves(tmp_path, sink):
    """After a rebalance faust handed w2 deposits 5-6 before 1-4 (it had dropped them and they came
    back later). w1 had written deposit 2 and died before sending: w2's deposits 5-6, past 2, must
    not count as proof that 2 was sent."""
    w1 = Worker(tmp_path, sink, "w1")
    await w1.proc.process([deposit(0, "a"), deposit(1, "a1")])
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await w1.proc.process([deposit(2, "b")])
    w1.close()
    w2 = Worker(tmp_path, sink, "w2")
    await w2.proc.process([deposit(5, "e")])
    await w2.proc.process([deposit(6, "f")])
    assert "d:b" in w2.outbox()
    await w2.proc.process([deposit(1, "a1"), deposit(2, "b"), deposit(3, "c"), deposit(4, "d")])
    assert ids(sink) == ["a", "a1", "e", "f", "b", "c", "d"]
    await w2.proc.process([note(0, "x")])
    assert w2.outbox() == {"n:x"}  # every input before it finished here: dropped
    w2.close()


@pytest.mark.asyncio
async def test_below_the_committed_offset_outputs_were_acknowledged(tmp_path, sink):
    """A restarted worker knows nothing it finished, but the group's committed offset: the outbox
    of inputs below it is dropped at the next write (the outbox stays bounded across restarts)."""
    w1 = Worker(tmp_path, sink, "w1")
    await w1.proc.process([deposit(0, "a"), deposit(1, "b")])
    w1.close()
    committed = {(DEPOSITS, 0): 2}
    w2 = Worker(tmp_path, sink, "w2", committed=lambda topic, partition: committed.get((topic, partition)))
    await w2.proc.process([note(0, "x")])
    assert w2.outbox() == {"n:x"}
    w2.close()


@pytest.mark.asyncio
async def test_a_redelivery_does_not_resend_an_older_state_after_a_newer_one(tmp_path, sink):
    """Deposit b written, not sent; on the next worker the note x comes first (balance after x,
    which includes b); b's redelivery re-sends b's output but not its older balance."""
    w1 = Worker(tmp_path, sink, "w1")
    await w1.proc.process([deposit(0, "a", amount=100)])
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await w1.proc.process([deposit(1, "b", amount=5)])
    w1.close()
    w2 = Worker(tmp_path, sink, "w2")
    await w2.proc.process([note(0, "x")])
    assert last_balance(sink) == {"balance": 105, "after": "x"}
    summary = await w2.proc.process([deposit(1, "b", amount=5)])
    assert summary.outcomes[("deposits", "redelivered")] == 1
    assert ids(sink) == ["a", "x", "b"]
    assert last_balance(sink) == {"balance": 105, "after": "x"}
    w2.close()


@pytest.mark.asyncio
async def test_the_latest_state_of_a_crashed_write_is_resent_once(tmp_path, sink):
    """Two inputs of the key in one batch, crash before the send: each redelivery re-sends its own
    output, and the balance only with the latest of them."""
    w1 = Worker(tmp_path, sink, "w1")
    sink.crash_before = OUT
    with pytest.raises(SystemExit):
        await w1.proc.process([deposit(0, "a", amount=100), note(0, "x"), deposit(1, "b", amount=5)])
    w1.close()
    w2 = Worker(tmp_path, sink, "w2")
    await w2.proc.process([deposit(0, "a", amount=100), deposit(1, "b", amount=5)])
    await w2.proc.process([note(0, "x")])
    assert sorted(ids(sink)) == ["a", "b", "x"]
    assert sink.values(BALANCE) == [{"balance": 105, "after": "b"}]
    w2.close()
