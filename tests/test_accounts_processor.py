"""The accounts agent's batch step, faust-free, on a real rocksdict store and the in-memory sink:
changelog before the store, idempotent redelivery, restore by merging, refund lines re-keyed by IIN,
and the account source that answers 503 rather than a partial account."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from rules.accounts import Account
from streams.accounts import AccountsProcessor, LocalAccounts, iin_partition, rekey_refunds
from streams.records import InputRecord
from streams.statement_api import Unavailable
from tables.accounts import AccountStore
from tests.account_samples import IIN, OTHER, REFUND, SOCIAL, contribution, reversal

CHANGELOG = "esep.accounts-changelog"
INPUTS = {"posted.contributions": "contribution", "esep.account-refund-lines": "refund_line",
          "posted.reversals": "reversal", "posted.social-payments": "social_payment"}
PARTITIONS = 4


class SinkChangelog:
    """Restores a store from what the sink received on the changelog topic (the broker's copy)."""

    def __init__(self, sink, store_ref):
        self.sink = sink
        self.store_ref = store_ref
        self.calls = []

    async def catch_up(self, partitions):
        self.calls.append(sorted(partitions))
        store = self.store_ref()
        n = 0
        for offset, rec in enumerate(r for r in self.sink.sent if r.topic == CHANGELOG):
            if rec.partition in partitions:
                store.apply([(rec.key.decode(), rec.value)], {rec.partition: offset + 1})
                n += 1
        return n


def record(topic, value, offset, key=None, partition=None):
    iin = value["iin"]
    return InputRecord(topic, iin_partition(iin, PARTITIONS) if partition is None else partition, offset,
                       (key if key is not None else iin).encode(), orjson.dumps(value))


@pytest.fixture
def make(tmp_path, memory_sink):
    made = []

    def build(name="accounts", owned=(0, 1, 2, 3)):
        store = AccountStore(tmp_path / name)
        holder = {}
        changelog = SinkChangelog(memory_sink, lambda: holder["store"])
        holder["store"] = store
        processor = AccountsProcessor(store, changelog, memory_sink, CHANGELOG, INPUTS,
                                      owned_partitions=lambda: owned)
        made.append(store)
        return processor, changelog

    yield build
    for store in made:
        store.close()


def changelog_records(sink):
    """The accounts written to the changelog (not the positions)."""
    return [r for r in sink.sent if r.topic == CHANGELOG and not r.key.startswith(b"\x00")]


def positions_written(sink):
    return {r.key.decode(): int(r.value) for r in sink.sent if r.topic == CHANGELOG and r.key.startswith(b"\x00")}


def test_a_batch_writes_each_changed_account_to_the_changelog_then_the_store(make, memory_sink):
    processor, changelog = make()
    entries = [contribution(line_no=n) for n in (1, 2)] + [contribution(iin=OTHER, line_no=3)]
    batch = [record("posted.contributions", e, i) for i, e in enumerate(entries)]
    summary = asyncio.run(processor.process(batch))
    assert summary.changed == 2 and summary.outcomes[("contributions", "applied")] == 3
    logged = changelog_records(memory_sink)
    # One key per item (and the person): an entry's cost does not grow with the account's history.
    assert sorted(r.key.decode() for r in logged) == sorted(
        [f"{IIN}/contributions/HSBK-20261126-000421/{n}" for n in (1, 2)]
        + [f"{OTHER}/contributions/HSBK-20261126-000421/3"])
    for r in logged:  # the partition of the records the account was built from
        assert r.partition == iin_partition(r.key.decode()[:12], PARTITIONS)
    rebuilt = Account(IIN)
    for e in entries[:2]:
        rebuilt.apply("contribution", e)
    assert processor.store.get(IIN).to_json() == rebuilt.to_json()
    assert processor.store.get(IIN).totals()["contributions"]["posted"] == "59500.00"
    assert changelog.calls == [[0, 1, 2, 3]]  # restored before the first batch, every owned partition at once
    # Where the ledger was read to, in each partition of the batch: a new owner resumes there.
    last = {}
    for r in batch:
        last[r.partition] = r.offset + 1
    assert positions_written(memory_sink) == {f"\x00pos/{p}/posted.contributions": o for p, o in last.items()}
    for p, o in last.items():
        assert processor.store.positions(p, ["posted.contributions", "posted.reversals"]) == {"posted.contributions": o}


def test_a_redelivered_batch_changes_nothing_and_writes_nothing(make, memory_sink):
    processor, _ = make()
    batch = [record("posted.contributions", contribution(line_no=n), n) for n in (1, 2)]
    asyncio.run(processor.process(batch))
    before = processor.store.get(IIN).to_json()
    sent = len(changelog_records(memory_sink))
    summary = asyncio.run(processor.process(batch))
    assert summary.outcomes[("contributions", "duplicate")] == 2 and summary.changed == 0
    assert len(changelog_records(memory_sink)) == sent
    assert processor.store.get(IIN).to_json() == before


def test_each_source_lands_in_its_section(make):
    processor, _ = make()
    posted = contribution()
    batch = [record("posted.contributions", posted, 0), record("posted.reversals", reversal(posted), 0),
             record("posted.social-payments", SOCIAL[0], 0)]
    asyncio.run(processor.process(batch))
    account = processor.store.get(IIN)
    assert len(account.contributions) == len(account.reversals) == len(account.social_payments) == 1
    assert account.totals()["contributions"]["net"] == "0.00"


def test_records_that_are_not_an_accounts_are_counted_not_applied(make, memory_sink):
    processor, _ = make()
    good = contribution()
    batch = [
        record("posted.contributions", good, 0, key=OTHER),  # keyed otherwise: another worker's account
        InputRecord("posted.contributions", 0, 1, IIN.encode(), b"{not json"),
        InputRecord("posted.contributions", 0, 2, IIN.encode(), None),
        record("posted.contributions", {**good, "kind": "gift"}, 3),
    ]
    summary = asyncio.run(processor.process(batch))
    assert summary.outcomes[("contributions", "rejected")] == 4 and summary.changed == 0
    assert processor.store.get(IIN) is None and processor.store.get(OTHER) is None
    assert not changelog_records(memory_sink)


def test_a_restore_on_another_worker_gives_the_same_accounts(make, memory_sink):
    first, _ = make("w1")
    batch = [record("posted.contributions", contribution(line_no=n, iin=iin), n)
             for n, iin in enumerate([IIN, IIN, OTHER])]
    asyncio.run(first.process(batch))
    second, changelog = make("w2")
    asyncio.run(second.restore({0, 1, 2, 3}))
    for iin in (IIN, OTHER):
        assert second.store.get(iin).to_json() == first.store.get(iin).to_json()
    p = iin_partition(IIN, PARTITIONS)
    assert second.store.positions(p, ["posted.contributions"]) == first.store.positions(p, ["posted.contributions"])
    # What a worker that was losing the partition wrote late (an item this worker has not applied,
    # an older position) is merged, not put over: the account keeps every item, the position never
    # moves back.
    older = contribution(line_no=9)
    late_item = Account(IIN)
    late_item.apply("contribution", older)
    second.store.apply([(f"{IIN}/contributions/{older['entry_id']}",
                         orjson.dumps({"item": late_item.contributions[older["entry_id"]], "person": late_item.person},
                                      option=orjson.OPT_SORT_KEYS)),
                        (f"\x00pos/{p}/posted.contributions", b"0")], {p: 99})
    assert set(second.store.get(IIN).contributions) == {f"HSBK-20261126-000421/{n}" for n in (0, 1, 9)}
    assert second.store.positions(p, ["posted.contributions"]) == first.store.positions(p, ["posted.contributions"])


def test_refund_lines_are_sent_keyed_by_their_iin(memory_sink):
    rec = InputRecord("refunds.to-payers", 0, 0, REFUND["notification_id"].encode(), orjson.dumps(REFUND))
    sent = asyncio.run(rekey_refunds(memory_sink, [rec, InputRecord("refunds.to-payers", 0, 1, b"x", b"[]")],
                                     "esep.account-refund-lines"))
    # Line 2's IIN fails its check digit: nobody's account.
    assert sent == 1
    (out,) = memory_sink.sent
    assert out.key == b"921102423450" and orjson.loads(out.value)["refund_id"] == REFUND["refund_id"]


class FakeApp:
    def __init__(self):
        self.rebalancing = False
        self.owned = {0, 1, 2, 3}


def test_local_accounts_answer_only_whole_accounts_of_owned_restored_partitions(make):
    processor, _ = make()
    asyncio.run(processor.process([record("posted.contributions", contribution(), 0)]))
    app = FakeApp()
    local = LocalAccounts(processor, PARTITIONS, rebalancing=lambda: app.rebalancing, owned=lambda: app.owned,
                          retry_after_s=6.2)
    assert asyncio.run(local.get_account(IIN)).iin == IIN
    assert asyncio.run(local.get_account(OTHER)) is None  # nothing recorded: the API's 404
    app.rebalancing = True
    with pytest.raises(Unavailable) as rebalance:
        asyncio.run(local.get_account(IIN))
    assert rebalance.value.retry_after_s == 7
    app.rebalancing = False
    app.owned = {0, 1, 2, 3} - {iin_partition(IIN, PARTITIONS)}
    with pytest.raises(Unavailable, match="not assigned"):
        asyncio.run(local.get_account(IIN))
    app.owned = {0, 1, 2, 3}
    processor.forget_partitions([iin_partition(IIN, PARTITIONS)])
    with pytest.raises(Unavailable, match="restored"):
        asyncio.run(local.get_account(IIN))


def test_the_feed_tells_no_lag_for_a_partition_it_does_not_read_yet(make):
    """Between faust's assignment and the feed following it, a gauge or an answer asks the feed
    about a partition its consumer does not read: unknown, not a crash (aiokafka asserts)."""
    from aiokafka import TopicPartition

    from streams.accounts import AccountsFeed

    processor, _ = make()
    feed = AccountsFeed(processor, "127.0.0.1:1", owned=lambda: [0, 1])
    feed.present = ["posted.contributions"]

    class Consumer:
        def assignment(self):
            return {TopicPartition("posted.contributions", 0)}

        def highwater(self, tp):
            assert tp in self.assignment(), "Partition is not assigned"
            return 5

    feed.consumer = Consumer()
    assert feed.lag(0) == 5 and feed.lag(1) is None


def test_the_same_id_with_other_content_is_a_conflict_resolved_as_the_rules_do(make, memory_sink):
    processor, _ = make()
    a, b = contribution(amount="10.00"), contribution(amount="12.00", surname="Ахметова")
    summary = asyncio.run(processor.process([record("posted.contributions", b, 0)]))
    summary = asyncio.run(processor.process([record("posted.contributions", a, 1)]))
    assert summary.outcomes[("contributions", "conflict")] == 1
    # The item the rules keep (the smaller), with the person of the record it came from: whichever
    # arrived first (the rules' own person choice would depend on that order, both ranks being equal).
    expected = Account(IIN)
    expected.apply("contribution", a)
    expected.apply("contribution", b)
    assert processor.store.get(IIN).to_json() == expected.to_json()


def test_a_restore_gives_the_same_store_whatever_the_order_of_the_changelog(tmp_path, make, memory_sink):
    import random

    processor, _ = make()
    records = [contribution(line_no=n, amount=f"{n}.00", surname=f"Ахметов{n}",
                            received_at=f"2026-11-{10 + n}T10:00:00+05:00") for n in range(1, 6)]
    records.append(contribution(line_no=3, amount="1.00"))  # a conflict with line 3
    for i, r in enumerate(records):
        asyncio.run(processor.process([record("posted.contributions", r, i)]))
    logged = [(r.key.decode(), r.value) for r in memory_sink.sent if r.topic == CHANGELOG]
    reference = processor.store.get(IIN).to_json()
    for seed in range(5):
        shuffled = logged[:]
        random.Random(seed).shuffle(shuffled)
        store = AccountStore(tmp_path / f"restored-{seed}")
        try:
            for key, value in shuffled:
                store.apply([(key, value)], {0: 1})
            assert store.get(IIN).to_json() == reference
        finally:
            store.close()
