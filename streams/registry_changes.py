"""Publishing personal-data changes (Rules, clause 6) once, whatever the number of workers.

Every worker keeps a full registry replica for lookups, but publishing a change must happen once:
here a consumer group over `registry.persons` gives each registry partition to one worker. The
person histories are the state: written to their compacted changelog (and acknowledged) before the
change events are sent, and a redelivered record whose version is already in the history sends that
version's event again instead of recording a second version."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from monitoring import metrics
from rules import entries
from rules.codes import SCHEMA_VERSION
from rules.errors import unprocessable
from rules.person_changes import diff_person, person_fields
from rules import json_bytes
from tables.changelog import ChangelogReader
from tables.history import HistoryStore, encode_history
from tables.registry import Rejection, parse_record

from .records import InputRecord, OutputRecord, Sink, dead_letter
from .sending import next_offsets_of, send_dead_letters, send_isolated
from .settings import Settings
from .yielding import PostingActivity, pause_after

log = logging.getLogger("esep.registry.changes")


def read_person(key: bytes | None, value: bytes | None) -> tuple[str | None, dict | None, Rejection | None]:
    """(iin, tracked fields or None for a deletion, None), or (None, None, (error_kind, error)) for
    a record that is not valid."""
    iin, person, rejection = parse_record(key, value)
    if rejection is not None or person is None:
        return iin, None, rejection
    fields = {**person_fields(person.model_dump(mode="json")), "updated_at": person.updated_at.isoformat()}
    return iin, fields, None


def change_event(iin: str, version: dict, recorded_at: str) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "change_id": f"{iin}/{version['version']}",
        "iin": iin,
        "version": version["version"],
        "kind": version["kind"],
        "changes": version["changes"],
        "changed_at": version["changed_at"],
        "source": {"partition": version["src"][0], "offset": version["src"][1]},
        "recorded_at": recorded_at,
    }


@dataclass(slots=True)
class PersonRecord:
    """One valid registry record on its way to a change event."""

    source: InputRecord
    iin: str
    after: dict | None  # tracked fields, None for a deletion
    event: bytes | None = None
    kind: str | None = None
    new_version: bool = False  # a version this record adds to the history (not a redelivery)


class _Revocations(ConsumerRebalanceListener):
    def __init__(self, publisher: "RegistryChangePublisher"):
        self.publisher = publisher

    async def on_partitions_revoked(self, revoked):
        # Wait for the batch in flight: its history and events go out before the partition does.
        async with self.publisher.lock:
            self.publisher.restored.difference_update(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned):
        pass


class RegistryChangePublisher:
    def __init__(self, settings: Settings, bootstrap: str, store: HistoryStore, sink: Sink, clock,
                 posting: PostingActivity | None = None):
        self.settings = settings
        # While posting is busy, the publisher takes a bounded share of the loop (streams/yielding.py).
        self.posting = posting
        self.bootstrap = bootstrap
        self.store = store
        self.sink = sink
        self.clock = clock
        self.restored: set[int] = set()
        self.lock = asyncio.Lock()
        self.reader = ChangelogReader(store, bootstrap, settings.topics.registry_history)

    async def run(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=f"{s.app_id}-registry-changes",
            group_instance_id=f"{s.worker_id}-registry-changes",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=max(500, int(s.session_timeout_s * 200)),
        )
        consumer.subscribe([s.topics.registry_persons], listener=_Revocations(self))
        await self.reader.start()
        await consumer.start()
        try:
            while True:
                # Small batches: a registry load must not starve the posting agent of the event loop.
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                if not batches:
                    continue
                started = time.monotonic()
                async with self.lock:
                    await self._process(batches)
                    owned = consumer.assignment()
                    offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "")
                               for tp, records in batches.items() if tp in owned}
                    try:
                        if offsets:
                            await consumer.commit(offsets)
                    except KafkaError as exc:
                        # The new owner gets these records again; their versions are in the history
                        # it restores, so it re-sends the same events rather than new ones.
                        log.warning("commit of registry-change offsets failed (%s): a rebalance took them", exc)
                await self.yield_to_posting(time.monotonic() - started)
        finally:
            await consumer.stop()
            await self.reader.stop()

    async def yield_to_posting(self, spent_s: float) -> None:
        """A pause that keeps this batch's time to the publisher's share while posting is busy (at a
        first start, recording every person's first version would otherwise take most of the loop)."""
        pause = pause_after(spent_s) if self.posting is not None and self.posting.busy() else 0.0
        await asyncio.sleep(pause)

    async def _process(self, batches) -> None:
        """One fetch, step by step:
        1. restore the histories of the fetched partitions;
        2. read each record (one that is not a valid person is a dead letter);
        3. a person's new version and its change event (a redelivered record recalls its version);
        4. the changed histories written to their changelog, acknowledged, then stored;
        5. the change events sent, acknowledged;
        6. the dead letters.
        A record that a step fails on is a dead letter (`unprocessable`) and the others go on."""
        await self._restore(batches)                                                  # 1
        now = self.clock()
        dead: list[OutputRecord] = []
        people = self._read(batches, now, dead)                                       # 2
        histories = self.store.get_many(sorted({c.iin for c in people}))
        changes = self._version(people, histories, entries.stamp(now), now, dead)     # 3
        changes = await self._write_histories(changes, histories, now, dead)         # 4
        await self._send_events(changes, now, dead)                                   # 5
        await send_dead_letters(self.sink, dead)                                      # 6

    async def _restore(self, batches) -> None:
        needed = {tp.partition for tp in batches} - self.restored
        if needed:
            await self.reader.catch_up(sorted(needed))
            self.restored.update(needed)

    def _read(self, batches, now: datetime, dead: list[OutputRecord]) -> list[PersonRecord]:
        people = []
        for tp, records in batches.items():
            for rec in records:
                source = InputRecord(tp.topic, tp.partition, rec.offset, rec.key, rec.value)
                try:
                    iin, after, rejection = read_person(rec.key, rec.value)
                except Exception as exc:  # noqa: BLE001 - one record must not stop the publisher
                    iin, after, rejection = None, None, unprocessable("reading the registry record", exc)
                if rejection is not None:
                    kind, error = rejection
                    dead.append(dead_letter(source, kind, error, now, self.settings.topics.dead_letters))
                    metrics.dead_letters.labels("registry", kind).inc()
                else:
                    people.append(PersonRecord(source, iin, after))
        return people

    def _version(self, people: list[PersonRecord], histories: dict[str, list[dict]], stamp: str, now: datetime,
                 dead: list[OutputRecord]) -> list[PersonRecord]:
        """Each record's new version appended to its person's history, with its event encoded; a
        redelivered record's event again; a record older than the history, or that changes nothing
        tracked, nothing."""
        out = []
        for change in people:
            try:
                version, is_new = self._next_version(change, histories[change.iin])
                if version is None:
                    continue
                change.event = json_bytes.dumps(change_event(change.iin, version, stamp))
                change.kind = version["kind"]
            except Exception as exc:  # noqa: BLE001 - one record must not stop the others
                dead.append(self._unprocessable(change.source, "recording the person's change", exc, now))
                continue
            if is_new:  # only now: a failure above leaves the history as it was
                histories[change.iin].append(version)
                change.new_version = True
            out.append(change)
        return out

    @staticmethod
    def _next_version(change: PersonRecord, versions: list[dict]) -> tuple[dict | None, bool]:
        partition, offset = change.source.partition, change.source.offset
        known = next((v for v in versions if v["src"] == [partition, offset]), None)
        if known is not None:
            return known, False  # redelivered: the same event again
        if versions and versions[-1]["src"][0] == partition and versions[-1]["src"][1] > offset:
            return None, False  # older than what the history recorded: handled before
        before = versions[-1]["person"] if versions else None
        diff = diff_person(before, change.after)
        if diff is None:
            return None, False
        kind, changes = diff
        changes = [c for c in changes if c["field"] != "updated_at"]
        return {"version": len(versions) + 1, "kind": kind, "changes": changes,
                "changed_at": change.after.get("updated_at") if change.after else None,
                "src": [partition, offset], "person": change.after}, True

    async def _write_histories(self, changes: list[PersonRecord], histories: dict[str, list[dict]],
                               now: datetime, dead: list[OutputRecord]) -> list[PersonRecord]:
        """The histories with new versions to their changelog (acknowledged), then stored. A history
        the broker refuses for good: the records that changed it are dead letters, no events."""
        changed = {c.iin: c.source.partition for c in changes if c.new_version}
        if not changed:
            return changes
        iins = list(changed)
        groups = [[OutputRecord(self.settings.topics.registry_history, iin.encode(),
                                encode_history(iin, histories[iin]), changed[iin])] for iin in iins]
        acks, refused = await send_isolated(self.sink, groups, "registry-history")
        written = [i for i in range(len(iins)) if i not in refused]
        self.store.apply([(iins[i], groups[i][0].value) for i in written],
                         next_offsets_of(meta for i in written for meta in acks[i]))
        lost = {iins[i]: exc for i, exc in refused.items()}
        for c in changes:
            if c.new_version and c.iin in lost:
                dead.append(self._unprocessable(c.source, "recording the person's history", lost[c.iin], now))
        return [c for c in changes if not (c.new_version and c.iin in lost)]

    async def _send_events(self, changes: list[PersonRecord], now: datetime, dead: list[OutputRecord]) -> None:
        topic = self.settings.topics.registry_changes
        _, refused = await send_isolated(self.sink, [[OutputRecord(topic, c.iin.encode(), c.event)] for c in changes],
                                         "registry-changes")
        for i, c in enumerate(changes):
            if i in refused:
                dead.append(self._unprocessable(c.source, "sending the person's change", refused[i], now))
            else:
                metrics.registry_changes.labels(c.kind).inc()

    def _unprocessable(self, source: InputRecord, step: str, exc: Exception, now: datetime) -> OutputRecord:
        log.error("%s for the registry record at %s[%d]@%d failed (%s): dead-lettered as unprocessable", step,
                  source.topic, source.partition, source.offset, type(exc).__name__)
        kind, message = unprocessable(step, exc)
        metrics.dead_letters.labels("registry", kind).inc()
        return dead_letter(source, kind, message, now, self.settings.topics.dead_letters)


async def read_history(bootstrap: str, topic: str, iin: str) -> list[dict]:
    """A person's versions, read back from the history topic (the partition its key maps to)."""
    from tables.metadata import latest_of_key_partition

    key = iin.encode()
    latest = (await latest_of_key_partition(bootstrap, topic, key, key.__eq__)).get(key)
    return orjson.loads(latest)["versions"] if latest else []


def format_history(iin: str, versions: list[dict]) -> list[str]:
    if not versions:
        return [f"no recorded history for IIN {iin} (is a worker running, and is the IIN in registry.persons?)"]
    rows = [f"IIN {iin}: {len(versions)} version(s)", ""]
    header = f"{'v':>3}  {'kind':<8}  {'changed_at':<25}  {'field':<12}  before -> after"
    rows += [header, "-" * len(header)]
    for v in versions:
        first = True
        for c in v["changes"] or [{"field": "", "before": None, "after": None}]:
            lead = f"{v['version']:>3}  {v['kind']:<8}  {str(v['changed_at'] or '-'):<25}" if first else " " * 41
            rows.append(f"{lead}  {c['field']:<12}  {_show(c['before'])} -> {_show(c['after'])}")
            first = False
    return rows


def _show(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
    return str(value)


__all__ = ["RegistryChangePublisher", "read_history", "format_history", "datetime", "asyncio"]
