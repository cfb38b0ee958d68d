"""Personal accounts kept by the stream (issue 13), faust-free: the batch step of the accounts agent,
the re-keying of refund lines, and the account source the statement API reads.

The ledger topics an account is built from are all keyed by IIN and have ESEP_PARTITIONS partitions,
so faust's assignor gives partition p of every one of them to one worker (they are co-partitioned:
same partition count, same subscribers), and that worker alone builds the accounts of p. A batch:
1. restore the changelog partitions not yet restored (the state follows its partition);
2. read each record once (orjson); what cannot belong to an account is counted and logged with the
   IIN masked, never dead-lettered (the ledger topics are ours);
3. make each record the item its account keeps (`Account.apply` on a scratch account: the rules
   validate and normalize), and resolve it against the stored item of that id with one multi-get:
   new, the same (a redelivery after a crash: nothing to write), or a conflict;
4. write the new items (one key each: an entry costs the same however long the account's history)
   and the position reached in each ledger partition to the compacted changelog (partition = the
   records' partition), await the broker, then put them into the local store with the changelog's
   next offsets: a worker that takes the partition over resumes there.

The ledger is read by `AccountsFeed` (`streams.ledger_feed.LedgerFeed`, shared with the reversals'
index of posted entries), a consumer without a group whose assignment follows the worker's faust
assignment, not by a faust agent: one faust event costs ~0.2 ms before any work
(5,200 events/s measured for an agent that only acknowledges), and accounts get one record per
posted line (17,600 lines/s at the bench rate), where posting gets one event per order.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson
from aiokafka.partitioner import murmur2

from monitoring import metrics
from rules.accounts import APPLIED, CONFLICT, DUPLICATE, SECTIONS, Account, AccountRecordError, refund_lines_by_iin
from rules.iin import mask_iin
from rules import json_bytes
from tables.accounts import AccountStore, encode, encode_position, item_key, position_key, resolve

from .ledger_feed import LedgerFeed
from .records import InputRecord, OutputRecord, Sink
from .sending import next_offsets_of, send_all
from .settings import Settings, _env
from .access import AccessError
from .statement_api import Unavailable

log = logging.getLogger("esep.accounts")

# ESEP_ACCOUNT_SOURCES name -> (the Topics field, its default name, the Account.apply source).
# `refunds` is read by the re-keying agent; the accounts agent reads its lines from
# `esep.account-refund-lines`.
SOURCES = {
    "contributions": ("posted_contributions", "posted.contributions", "contribution"),
    "refunds": ("refunds", "refunds.to-payers", "refund_line"),
    "reversals": ("posted_reversals", "posted.reversals", "reversal"),
    "social_payments": ("social_payments", "posted.social-payments", "social_payment"),
    "overpayments": ("overpayments", "fund.overpayments", "overpayment"),
}
# Metric label of each Account.apply source (bounded).
LABELS = {"contribution": "contributions", "refund_line": "refund_lines", "reversal": "reversals",
          "social_payment": "social_payments", "overpayment": "overpayments"}


def source_topics(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The topic of each source accounts are built from (ESEP_ACCOUNT_SOURCES), by source name: the
    Topics field of the ledger's agent, else ESEP_TOPIC_<FIELD>, else the contract's name."""
    out = {}
    for source in settings.account_sources:
        attr, default, _ = SOURCES[source]
        name = getattr(settings.topics, attr, None)
        out[source] = name or _env(f"ESEP_TOPIC_{attr.upper()}", default, environ)
    return out


def account_inputs(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Topic -> Account.apply source, for the accounts agent (refunds: the re-keyed lines' topic)."""
    return {settings.topics.account_refund_lines if source == "refunds" else topic: SOURCES[source][2]
            for source, topic in source_topics(settings, environ).items()}


def iin_partition(iin: str, partitions: int) -> int:
    """The partition of an IIN-keyed record (the Java client's and aiokafka's default partitioner)."""
    return (murmur2(iin.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class AccountsSummary:
    records: int = 0
    outcomes: Counter = field(default_factory=Counter)  # (label, outcome) -> n
    changed: int = 0


class AccountsProcessor:
    def __init__(self, store: AccountStore, changelog, sink: Sink, changelog_topic: str,
                 inputs: Mapping[str, str], owned_partitions: Callable[[], Iterable[int]] = tuple,
                 retry_backoff_s: float = 0.5):
        self.store = store
        self.changelog = changelog
        self.sink = sink
        self.changelog_topic = changelog_topic
        self.inputs = dict(inputs)  # topic -> Account.apply source
        self.owned_partitions = owned_partitions
        self.retry_backoff_s = retry_backoff_s
        self.restored: set[int] = set()
        self.lock = asyncio.Lock()  # batches and restores both write the store: one at a time
        # (topic, partition) -> the next input offset applied: the accounts' lag behind the ledger.
        self.next_offsets: dict[tuple[str, int], int] = {}

    # ---- restore ----------------------------------------------------------------------------------

    async def restore(self, partitions: Iterable[int]) -> None:
        async with self.lock:
            needed = set(partitions) - self.restored
            if needed:
                await self._restore(needed)

    async def _restore(self, needed: set[int]) -> None:
        # Every owned partition not restored yet at once: each catch-up costs a fetch round.
        partitions = sorted(needed | (set(self.owned_partitions()) - self.restored))
        started = time.monotonic()
        applied = await self.changelog.catch_up(partitions)
        metrics.recovery_seconds.labels("accounts").observe(time.monotonic() - started)
        self.restored.update(partitions)
        log.info("accounts of partitions %s restored (%d changelog records) in %.2f s", partitions, applied,
                 time.monotonic() - started)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Revoked: another worker may change these accounts before the partition comes back."""
        gone = set(partitions)
        self.restored.difference_update(gone)
        for key in [k for k in self.next_offsets if k[1] in gone]:
            del self.next_offsets[key]

    def is_restored(self, partition: int) -> bool:
        return partition in self.restored

    def positions(self, partition: int, topics: list[str]) -> dict[str, int]:
        """The next ledger offset to read, by topic (the feed's `FeedTarget`)."""
        return self.store.positions(partition, topics)

    # ---- the batch ----------------------------------------------------------------------------------

    async def process(self, batch: list[InputRecord]) -> AccountsSummary:
        async with self.lock:
            return await self._process(batch)

    async def _process(self, batch: list[InputRecord]) -> AccountsSummary:
        summary = AccountsSummary(records=len(batch))
        needed = {r.partition for r in batch} - self.restored
        if needed:  # 1.
            await self._restore(needed)
        parsed: list[tuple[InputRecord, str, str, dict]] = []
        for rec in batch:  # 2.
            source = self.inputs.get(rec.topic)
            item = self._read(rec, source, summary) if source is not None else None
            if item is not None:
                parsed.append((rec, source, *item))
        # 3. Each record as the item(s) the account keeps (the rules validate and normalize it on a
        # scratch account), resolved against the stored items: new, the same (a redelivery), or the
        # same id with other content (a conflict: the smaller is kept, as Account.merge does).
        made: list[tuple[InputRecord, str, str, list[tuple[str, bytes]]]] = []
        for rec, source, iin, value in parsed:
            scratch = Account(iin)
            try:
                scratch.apply(source, value)
            except AccountRecordError as exc:
                summary.outcomes[(LABELS[source], "rejected")] += 1
                log.warning("%s[%d]@%d cannot be applied to the account of %s: %s", rec.topic, rec.partition,
                            rec.offset, mask_iin(iin), exc)
                continue
            person = scratch.person
            values = [(item_key(iin, section, item_id), encode({"item": item, "person": person}))
                      for section in SECTIONS for item_id, item in getattr(scratch, section).items()]
            made.append((rec, source, iin, values))
        held = self.store.get_many(list(dict.fromkeys(k for *_, values in made for k, _ in values)))
        writes: dict[str, tuple[bytes, int]] = {}
        changed: set[str] = set()
        for rec, source, iin, values in made:
            outcome = DUPLICATE
            for key, value in values:
                current = writes[key][0] if key in writes else held.get(key)
                chosen = resolve(iin, key, current, value)
                if current is None:
                    outcome = APPLIED
                elif current != value and orjson.loads(current)["item"] != orjson.loads(value)["item"]:
                    outcome = CONFLICT
                if chosen is not None:
                    writes[key] = (chosen, rec.partition)
                    changed.add(iin)
            summary.outcomes[(LABELS[source], outcome)] += 1
            if outcome == CONFLICT:
                log.warning("%s[%d]@%d: an item of the account of %s came again with other content "
                            "(an upstream fault); the smaller is kept", rec.topic, rec.partition, rec.offset,
                            mask_iin(iin))
        # 4. The changed accounts and the position reached in each ledger partition of the batch.
        positions: dict[tuple[str, int], int] = {}
        for rec in batch:
            k = (rec.topic, rec.partition)
            positions[k] = max(positions.get(k, 0), rec.offset + 1)
        records = [OutputRecord(self.changelog_topic, key.encode(), value, partition)
                   for key, (value, partition) in writes.items()]
        records += [OutputRecord(self.changelog_topic, position_key(p, topic).encode(), encode_position(offset), p)
                    for (topic, p), offset in sorted(positions.items())]
        if records:
            metas = await send_all(self.sink, records, "accounts-changelog", self.retry_backoff_s)
            self.store.put([(r.key.decode(), r.value) for r in records], next_offsets_of(metas))
        summary.changed = len(changed)
        for k, offset in positions.items():
            if offset > self.next_offsets.get(k, 0):
                self.next_offsets[k] = offset
        for (label, outcome), n in summary.outcomes.items():
            metrics.account_records.labels(label, outcome).inc(n)
        return summary

    def _read(self, rec: InputRecord, source: str, summary: AccountsSummary) -> tuple[str, dict] | None:
        label = LABELS[source]
        if rec.value is None:
            summary.outcomes[(label, "rejected")] += 1
            log.warning("%s[%d]@%d: a tombstone on a ledger topic is not an account's", rec.topic, rec.partition,
                        rec.offset)
            return None
        try:
            value = orjson.loads(rec.value)
        except orjson.JSONDecodeError:
            value = None
        iin = value.get("iin") if isinstance(value, dict) else None
        if not isinstance(iin, str) or rec.key != iin.encode():
            # An account is built where its IIN's records are: one keyed otherwise (or not a record
            # at all) would build it on another worker.
            summary.outcomes[(label, "rejected")] += 1
            log.warning("%s[%d]@%d is not a record keyed by its IIN (%s)", rec.topic, rec.partition, rec.offset,
                        mask_iin(iin) if isinstance(iin, str) else "no iin")
            return None
        return iin, value


# ---- reading the ledger --------------------------------------------------------------------------------

class AccountsFeed(LedgerFeed):
    """Reads the ledger topics' partitions that this worker owns into the processor (the shared
    group-less reader of `streams.ledger_feed`). Ownership is the worker's faust assignment of the
    notifications topic: the IIN-keyed ledger topics have its partition count (checked at start), so
    partition p of the ledger belongs with partition p of the notifications. On each change of
    assignment: restore the accounts of the new partitions, then read from the positions the
    changelog recorded (the beginning when none)."""

    def __init__(self, processor: AccountsProcessor, bootstrap: str, owned: Callable[[], Iterable[int]], *,
                 max_records: int = 1000, rediscover_s: float = 30.0,
                 pace: Callable[[], Awaitable[None]] | None = None):
        super().__init__(processor, bootstrap, owned, list(processor.inputs), name="accounts",
                         max_records=max_records, rediscover_s=rediscover_s, pace=pace)
        self.processor = processor


# ---- refund lines -----------------------------------------------------------------------------------

async def rekey_refunds(sink: Sink, batch: list[InputRecord], lines_topic: str, backoff_s: float = 0.5) -> int:
    """The lines of `refunds.to-payers` records (keyed by notification) sent to `lines_topic` keyed
    by IIN, acknowledged; returns the lines sent. A redelivered refund sends the same lines again:
    the account keeps one per `<refund_id>/<line_no>`."""
    out = []
    for rec in batch:
        try:
            refund = orjson.loads(rec.value) if rec.value is not None else None
            lines = refund_lines_by_iin(refund) if isinstance(refund, dict) else None
        except (orjson.JSONDecodeError, AccountRecordError) as exc:
            lines = None
            log.warning("%s[%d]@%d: not a refund (%s)", rec.topic, rec.partition, rec.offset, exc)
        if lines is None:
            metrics.account_records.labels("refunds", "rejected").inc()
            continue
        out += [OutputRecord(lines_topic, iin.encode(), json_bytes.dumps(line)) for iin, line in lines]
    if out:
        await send_all(sink, out, "account-refund-lines", backoff_s)
    return len(out)


# ---- what the statement API reads -------------------------------------------------------------------

class LocalAccounts:
    """The accounts this worker owns, read only when they are whole: during a rebalance, for a
    partition this worker does not own, or one whose changelog is still being read, `Unavailable`
    (503 with Retry-After), never an account that may lack what the partition's owner applied."""

    def __init__(self, processor: AccountsProcessor, partitions: int, *, rebalancing: Callable[[], bool],
                 owned: Callable[[], Iterable[int]], retry_after_s: float):
        self.processor = processor
        self.partitions = partitions
        self.rebalancing = rebalancing
        self.owned = owned
        self.retry_after_s = max(1, int(-(-retry_after_s // 1)))

    def check(self, iin: str) -> int:
        """The IIN's partition when its account can be read here now; else Unavailable."""
        if self.rebalancing():
            raise Unavailable("a rebalance is in progress", self.retry_after_s)
        partition = iin_partition(iin, self.partitions)
        if partition not in set(self.owned()):
            raise Unavailable("the account's partition is not assigned to this worker now", self.retry_after_s)
        if not self.processor.is_restored(partition):
            raise Unavailable("the account's partition is being restored", self.retry_after_s)
        return partition

    async def get_account(self, iin: str) -> Account | None:
        self.check(iin)
        return self.processor.store.get(iin)


class NotKept:
    """The account source of a deployment that keeps no accounts (ESEP_ACCOUNT_SOURCES=none)."""

    async def get_account(self, iin: str) -> Account | None:
        raise AccessError(501, "not_configured", "this deployment keeps no personal accounts")


class Unreachable:
    """The account source of a request that another worker should answer but cannot now."""

    def __init__(self, reason: str, retry_after_s: int):
        self.reason = reason
        self.retry_after_s = retry_after_s

    async def get_account(self, iin: str) -> Account | None:
        raise Unavailable(self.reason, self.retry_after_s)


__all__ = ["AccountsFeed", "AccountsProcessor", "AccountsSummary", "LocalAccounts", "SOURCES", "Unreachable", "account_inputs",
           "iin_partition", "rekey_refunds", "source_topics"]
