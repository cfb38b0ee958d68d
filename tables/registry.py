"""The registry replica: a full copy of `registry.persons` in every worker.

Every worker answers "who is this IIN?" locally, with any number of workers in the group: a plain
consumer assigned every partition (no consumer group) follows the compacted topic into rocksdict.
This is what faust's GlobalTable means to be, without its multi-worker bug (faust #283)."""
from __future__ import annotations

import asyncio
import collections
import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from models.registry import RegistryPerson
from monitoring import metrics
from rules.codes import SCHEMA, UNPROCESSABLE
from rules.errors import classify, unprocessable
from rules.posting import Person
from rules import json_bytes

from .metadata import topic_partitions
from .budget import StoreBudget
from .children import die_with_parent
from .rocks import new_batch, open_store, put_offset, read_offsets

log = logging.getLogger("esep.registry")
PERSON_PREFIX = b"p/"
LOAD_GC_THRESHOLD = 100_000
# Records are encoded in format 2 (the clause 12 fields appended) from the partition's first record:
# a partition without this mark was stored in format 1 (names and dates) and is read again.
FORMAT_PREFIX = b"\x00format2/"


def encode_person(p: RegistryPerson) -> bytes:
    """Matching fields first (posting reads only those), then what the recipients' record of
    clause 12 also shows: sex, citizenship, updated_at, document, address."""
    # orjson writes dates as YYYY-MM-DD itself: the same bytes as isoformat(), at a quarter of the cost.
    doc = p.document
    addr = p.address
    return json_bytes.dumps(
        [p.surname, p.name, p.patronymic, p.birth_date, p.death_date, p.sex, p.citizenship, p.updated_at,
         None if doc is None else [doc.kind, doc.series, doc.number, doc.issued_on, doc.issuer],
         None if addr is None else [addr.text, addr.postal_index]]
    )


def decode_person(raw: bytes) -> Person:
    return Person(*orjson.loads(raw)[:5])


def decode_person_view(raw: bytes) -> dict:
    """The person as `rules.recipients` reads a registry record: a dict with the fields the stored
    record has (a format 1 record has names and dates only, and says nothing of the rest)."""
    v = orjson.loads(raw)
    out = {"surname": v[0], "name": v[1], "patronymic": v[2], "birth_date": v[3], "death_date": v[4]}
    if len(v) > 5:
        doc, addr = v[8], v[9]
        out.update(sex=v[5], citizenship=v[6], updated_at=v[7],
                   document=None if doc is None else dict(zip(("kind", "series", "number", "issued_on", "issuer"),
                                                              doc)),
                   address=None if addr is None else {"text": addr[0], "postal_index": addr[1]})
    return out


class RegistryStore:
    """Persons by IIN plus the replica's offsets, in one rocksdict."""

    def __init__(self, path: Path, budget: StoreBudget | None = None):
        self.db = open_store(path, budget)

    def get_many(self, iins: list[str]) -> dict[str, Person | None]:
        if not iins:
            return {}
        values = self.db.get([PERSON_PREFIX + i.encode() for i in iins])
        return {i: (decode_person(v) if v is not None else None) for i, v in zip(iins, values)}

    def get_views(self, iins: list[str]) -> dict[str, dict | None]:
        """Full records (`decode_person_view`) for the recipients ledger."""
        if not iins:
            return {}
        values = self.db.get([PERSON_PREFIX + i.encode() for i in iins])
        return {i: (decode_person_view(v) if v is not None else None) for i, v in zip(iins, values)}

    def offsets(self, partitions: list[int]) -> dict[int, int]:
        """Where to resume each partition; a partition stored in format 1 starts again from the
        beginning (the topic is compacted: every person comes again, in format 2)."""
        marks = self.db.get([FORMAT_PREFIX + str(p).encode() for p in partitions]) if partitions else []
        current = [p for p, m in zip(partitions, marks) if m is not None]
        return read_offsets(self.db, current)

    def apply(self, puts: dict[str, bytes | None], next_offsets: dict[int, int]) -> None:
        batch = new_batch()
        for iin, value in puts.items():
            if value is None:
                batch.delete(PERSON_PREFIX + iin.encode())
            else:
                batch.put(PERSON_PREFIX + iin.encode(), value)
        for partition, offset in next_offsets.items():
            put_offset(batch, partition, offset)
            batch.put(FORMAT_PREFIX + str(partition).encode(), b"")
        self.db.write(batch)

    def estimated_count(self) -> int:
        # RocksDB's estimate counts the offset keys too: a handful, negligible.
        return int(self.db.property_int_value("rocksdb.estimate-num-keys") or 0)

    def close(self) -> None:
        self.db.close()


Rejection = tuple[str, str]  # (error_kind, error)


def parse_record(key: bytes | None, value: bytes | None) -> tuple[str | None, RegistryPerson | None, Rejection | None]:
    """(iin, person or None for a deletion, rejection) of one registry record."""
    if value is None:
        if not key:
            return None, None, (SCHEMA, "tombstone without a key: no person to delete")
        try:
            return key.decode("utf-8"), None, None
        except UnicodeDecodeError:
            return None, None, (SCHEMA, "tombstone key is not UTF-8")
    try:
        person = RegistryPerson.model_validate_json(value)
    except ValidationError as exc:
        return None, None, classify(value, exc.errors(include_url=False, include_input=False))
    if key is not None and key != person.iin.encode():
        return None, None, (SCHEMA, "key does not equal the record's iin (registry.persons is keyed by IIN)")
    return person.iin, person, None


def judge_record(key: bytes | None, value: bytes | None) -> tuple[str | None, bytes | None, Rejection | None]:
    """(iin, encoded person or None for a deletion, rejection). A rejected record changes nothing."""
    iin, person, error = parse_record(key, value)
    return iin, (encode_person(person) if person is not None else None), error


# (partition, next offset, [(iin, encoded person or None for a deletion)], [(offset, rejection kind)])
JudgedPartition = tuple[int, int, list[tuple[str, bytes | None]], list[tuple[int, str]]]
FetchItems = list[tuple[int, list[tuple[int, bytes | None, bytes | None]]]]


def fetch_items(batches) -> FetchItems:
    """An aiokafka fetch as plain data (it crosses to the loading processes)."""
    return [(tp.partition, [(r.offset, r.key, r.value) for r in records]) for tp, records in batches.items()]


def judge_fetch(items: FetchItems) -> list[JudgedPartition]:
    """Every record of a fetch judged (`judge_record`), in order: pure, so a loading process runs it."""
    out = []
    for partition, records in items:
        puts, rejections = [], []
        for offset, key, value in records:
            try:
                iin, encoded, rejection = judge_record(key, value)
            except Exception as exc:  # noqa: BLE001 - one record must not stop the replica
                iin, encoded, rejection = None, None, unprocessable("reading it into the registry replica", exc)
            if rejection is not None:
                rejections.append((offset, rejection[0]))
            else:
                puts.append((iin, encoded))
        out.append((partition, records[-1][0] + 1, puts, rejections))
    return out


@dataclass
class ReplicaStats:
    records: int = 0
    deletions: int = 0
    rejected: int = 0
    caught_up_s: float | None = None
    lag: dict[int, int] = field(default_factory=dict)


class RegistryReplica:
    """Follows `topic` into `store`; `ready` is set once the replica reached the high watermarks
    noted at start, and posting waits for it.

    `on_change` hears the IINs of every batch applied. With `on_caught_up`, the batches applied
    before ready are not reported one by one but by one call of `on_caught_up` at ready: at a first
    start they are the whole registry, and a set of 20 million IINs held until ready would cost
    the worker about 2 GiB."""

    # Measured at 1M persons (tools/scale_probe.py): 1 MiB fetches and 5,000-record batches load as
    # fast as 4 MiB and 20,000, with the loading process's RSS at 120 MiB instead of 220 MiB.
    fetch_partition_bytes = 1024 * 1024
    batch_records = 5000
    # Below this many records to catch up, starting the loading processes (~1.5 s) costs more than it saves.
    pool_min_records = 200_000
    # What the loading processes run (a module-level function: it crosses to them by name).
    pool_judge = staticmethod(judge_fetch)

    def __init__(self, store: RegistryStore, bootstrap: str, topic: str,
                 on_change: Callable[[set[str]], None] | None = None,
                 on_caught_up: Callable[[], None] | None = None, load_processes: int = 0):
        self.store = store
        self.load_processes = load_processes  # 0: a catch-up is judged in this process
        self.on_change = on_change
        self.on_caught_up = on_caught_up
        self.bootstrap = bootstrap
        self.topic = topic
        self.ready = asyncio.Event()
        self.stats = ReplicaStats()
        self._gc_thresholds: tuple[int, ...] | None = None

    async def _partitions(self) -> list[int]:
        return await topic_partitions(self.bootstrap, self.topic)

    async def run(self) -> None:
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # aiokafka may leave seek_to_beginning() at the end otherwise
            max_partition_fetch_bytes=self.fetch_partition_bytes,
        )
        await consumer.start()
        try:
            parts = await self._partitions()
            tps = [TopicPartition(self.topic, p) for p in parts]
            consumer.assign(tps)
            stored = self.store.offsets(parts)
            for tp in tps:
                if tp.partition in stored:
                    consumer.seek(tp, stored[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            targets = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
            log.info("registry replica: %d partitions, catching up to %s", len(parts), targets)
            await self._follow(consumer, tps, targets, started)
        finally:
            await consumer.stop()

    async def _follow(self, consumer, tps, targets: dict[int, int], started: float) -> None:
        # Until ready, the cyclic GC runs once per 100,000 new objects instead of 700: the load makes
        # no cycles worth collecting early, and the default passes cost about a tenth of its CPU
        # (measured at 1M persons). Reference counting still frees everything at once.
        self._gc_thresholds = gc.get_threshold()
        gc.set_threshold(LOAD_GC_THRESHOLD, *self._gc_thresholds[1:])
        try:
            await self._apply_batches(consumer, tps, targets, started)
        finally:
            self._restore_gc()

    def _restore_gc(self) -> None:
        if self._gc_thresholds is not None:
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None

    async def _apply_batches(self, consumer, tps, targets, started: float) -> None:
        positions = {tp.partition: await consumer.position(tp) for tp in tps}
        self._check_ready(positions, targets, started)
        behind = sum(max(0, t - positions.get(p, 0)) for p, t in targets.items())
        if not self.ready.is_set() and self.load_processes > 0 and behind >= self.pool_min_records:
            await self._load_in_parallel(consumer, tps, positions, targets, started, behind)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_records)
            if not batches:
                self._check_ready(positions, targets, started)
                continue
            next_offsets = self.apply_batch(batches)
            positions.update(next_offsets)
            self._check_ready(positions, targets, started)

    async def _load_in_parallel(self, consumer, tps, positions: dict[int, int], targets: dict[int, int],
                                started: float, behind: int) -> None:
        """The catch-up of a first start (or of a long absence), until ready: the fetches are judged
        (validated and encoded, ~20 µs of CPU a record, most of a load's cost) by `load_processes`
        processes while this one fetches and stores, in fetch order. A pool that breaks (a process
        killed) leaves the rest of the load to this process, from the last stored offsets."""
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        loop = asyncio.get_running_loop()
        log.info("registry replica: %d records to load, judged by %d processes", behind, self.load_processes)
        pool = ProcessPoolExecutor(self.load_processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=die_with_parent, initargs=(os.getpid(),))
        inflight: collections.deque[asyncio.Future] = collections.deque()
        try:
            while not self.ready.is_set() or inflight:
                if not self.ready.is_set() and len(inflight) < 2 * self.load_processes:
                    batches = await consumer.getmany(timeout_ms=100, max_records=self.batch_records)
                    if batches:
                        inflight.append(loop.run_in_executor(pool, self.pool_judge, fetch_items(batches)))
                        if not inflight[0].done():
                            continue
                    elif not inflight:
                        self._check_ready(positions, targets, started)
                        continue
                positions.update(self.apply_judged(await inflight.popleft()))
                self._check_ready(positions, targets, started)
        except (BrokenProcessPool, OSError) as exc:  # a process killed, or none could be started
            log.error("registry replica: the loading processes stopped (%s); loading on in this process", exc)
            for future in inflight:
                future.cancel()
            for tp in tps:  # what was fetched but not stored is fetched again
                consumer.seek(tp, positions.get(tp.partition, 0))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def apply_batch(self, batches) -> dict[int, int]:
        """Store one fetch ({partition: records}) with the partitions' next offsets; returns them.
        A record the replica cannot read or store is skipped and counted (the change publisher,
        one consumer group, dead-letters it once, not once per worker replica); the rest go on."""
        return self.apply_judged(judge_fetch(fetch_items(batches)))

    def apply_judged(self, judged: list[JudgedPartition]) -> dict[int, int]:
        """Store what `judge_fetch` made of one fetch, in fetch order; returns the next offsets."""
        puts: dict[str, bytes | None] = {}
        next_offsets: dict[int, int] = {}
        accepted = deletions = 0
        for partition, next_offset, judged_puts, rejections in judged:
            for offset, kind in rejections:
                self._reject(partition, offset, kind)
            for iin, value in judged_puts:
                puts[iin] = value
                accepted += 1
                if value is None:
                    deletions += 1
            next_offsets[partition] = next_offset
        self._count(accepted, deletions)
        self._store(puts, next_offsets)
        if puts and self.on_change is not None and (self.ready.is_set() or self.on_caught_up is None):
            self.on_change(set(puts))
        return next_offsets

    def _count(self, accepted: int, deletions: int) -> None:
        # Once a batch, not once a record: a metric's label look-up costs about a microsecond.
        self.stats.records += accepted
        self.stats.deletions += deletions
        if accepted - deletions:
            metrics.registry_records.labels("upsert").inc(accepted - deletions)
        if deletions:
            metrics.registry_records.labels("delete").inc(deletions)

    def _store(self, puts: dict[str, bytes | None], next_offsets: dict[int, int]) -> None:
        try:
            self.store.apply(puts, next_offsets)
            return
        except Exception:  # noqa: BLE001 - find the persons the store refuses; keep the others
            log.exception("registry replica: storing %d persons failed; storing them one by one", len(puts))
        for iin, value in list(puts.items()):
            try:
                self.store.apply({iin: value}, {})
            except Exception as exc:  # noqa: BLE001
                del puts[iin]
                self._reject(None, None, unprocessable("storing it in the registry replica", exc)[0])
        self.store.apply({}, next_offsets)

    def _reject(self, partition: int | None, offset: int | None, kind: str) -> None:
        self.stats.rejected += 1
        metrics.registry_records.labels("rejected").inc()
        if kind == UNPROCESSABLE:  # not a bad record but one this version cannot handle: say where
            log.error("registry replica: the record at %s@%s cannot be stored: skipped", partition, offset)

    def _check_ready(self, positions: dict[int, int], targets: dict[int, int], started: float) -> None:
        self.stats.lag = {p: max(0, targets[p] - positions.get(p, 0)) for p in targets}
        if not self.ready.is_set() and all(positions.get(p, 0) >= t for p, t in targets.items()):
            self.stats.caught_up_s = time.monotonic() - started
            metrics.recovery_seconds.labels("registry").observe(self.stats.caught_up_s)
            log.info(
                "registry replica ready: %d records in %.1f s (%d rejected)",
                self.stats.records, self.stats.caught_up_s, self.stats.rejected,
            )
            self._restore_gc()
            if self.on_caught_up is not None:
                self.on_caught_up()
            self.ready.set()
