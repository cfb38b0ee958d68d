"""The report streams' per-partition state, Kafka-free: output records in, changelog entries,
payer forwards and partials out (docs/report-pipeline.md, sections 1 and 2).

Three streams, each keyed so that its figures add up across partitions:
- persons (key IIN): posted.contributions, alerts.deceased-contributions, and posted.reversals,
  posted.social-payments, fund.decision-results where the deployment has them;
- orders (key notification_id): refunds.to-payers, orders.results;
- payers (key payer BIN/IIN): esep.report-payers, what the persons stream forwards.
One `StreamPartition` per (stream, partition). Records are counted by the pure rules
(`rules.report.SOURCES`); what is counted is remembered in the `ReportStore` (ids and set members on
disk), so a record counts once whatever the redeliveries and re-emissions.

The persons stream also keeps the month-end figures of the social payments (section 7 of the
doc): one timeline per recipient (IIN, payment type) in the store, read for the records of a batch
and written back when it changed, and the partition's diffs by month (`rules.report.month_end`),
published as `<stream>/<p>/month-end` whenever they change.

A batch changes the caches and a batch-local `pending` map; `take_changes` gives the changelog
entries, which the runner commits in one Kafka transaction with the forwards and partials, then
writes into the store (`commit`). A failed batch is undone by `rollback` (caches dropped: they
reload from the store, which only ever holds committed state)."""
from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from rules.calendar import BusinessCalendar
from rules.entries import stamp
from rules.report import SOURCES, IdSet, MonthPartial
from rules.report.aggregate import seen_key
from rules import json_bytes
from rules.report.month_end import (
    TIMELINE_SOURCES, MonthEnd, Timeline, changed_timeline, recipient_of, transfer_change,
)
from tables.report_state import ADDED, PRESENT, VALUES, ReportStore

from .settings import Topics

log = logging.getLogger("esep.report")

STREAMS = ("persons", "orders", "payers")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Input:
    topic: str
    stream: str
    source: str  # a name of rules.report.SOURCES


def report_inputs(topics: Topics) -> list[Input]:
    """The report's input topics; Part 2's topics only where this deployment has them (their
    agents add them to `Topics`)."""
    out = [
        Input(topics.posted_contributions, "persons", "contributions"),
        Input(topics.deceased_alerts, "persons", "alerts"),
        Input(topics.refunds, "orders", "refunds"),
        Input(topics.order_results, "orders", "results"),
        Input(topics.report_payers, "payers", "payers"),
    ]
    for attr, source in (("posted_reversals", "reversals"), ("social_payments", "social_payments"),
                         ("decision_results", "decisions")):
        name = getattr(topics, attr, None)
        if name:
            out.append(Input(name, "persons", source))
    return out


class Pending:
    """Ids and members added by the batch in progress (read before the store: a member added
    earlier in the batch is a member; written only once the transaction committed), and what one
    multi-get found in the store for the batch's keys."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.known: dict[str, bool] = {}

    def clear(self) -> None:
        self.entries.clear()
        self.known.clear()

    def seen(self, store: ReportStore, key: str) -> bool:
        if key in self.entries:
            return True
        found = self.known.get(key)
        return store.has(key) if found is None else found


class StoredSet:
    """A distinct set of one month on disk: `add` answers whether the member is new, `len` is the
    count kept in the month record. Stands in for `IdSet` in `MonthPartial`."""

    __slots__ = ("store", "pending", "prefix", "count")

    def __init__(self, store: ReportStore, pending: Pending, prefix: str, count: int):
        self.store, self.pending, self.prefix, self.count = store, pending, prefix, count

    def add(self, value: str) -> bool:
        key = self.prefix + value
        if self.pending.seen(self.store, key):
            return False
        self.pending.entries[key] = PRESENT
        self.count += 1
        return True

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0


class StoredSeen:
    """`rules.report.SeenIds` on disk: ids already counted."""

    __slots__ = ("store", "pending", "prefix")

    def __init__(self, store: ReportStore, pending: Pending, prefix: str):
        self.store, self.pending, self.prefix = store, pending, prefix

    def add(self, key: str) -> bool:
        full = self.prefix + key
        if self.pending.seen(self.store, full):
            return False
        self.pending.entries[full] = PRESENT
        return True


@dataclass
class Applied:
    counted: int = 0
    repeats: int = 0  # an id already counted, or not counted by its source (a rejected decision)
    unreadable: int = 0
    forwards: list[tuple[bytes, bytes]] = field(default_factory=list)  # (payer key, value) for esep.report-payers


def _member(source: str, record: dict) -> str | None:
    """The distinct-set member a record may add (`<set>/<value>`), for the batch's multi-get."""
    if source == "contributions":
        return f"participants/{record['iin']}"
    if source == "payers":
        return f"payers/{record['payer_bin_iin']}"
    return None


class StreamPartition:
    """One partition of one stream: its months (cached from the store), covers and what is to
    publish."""

    def __init__(self, stream: str, partition: int, store: ReportStore, calendar: BusinessCalendar):
        self.stream, self.partition = stream, partition
        self.store, self.calendar = store, calendar
        self.pending = Pending()
        self.base = f"{partition}/{stream}/"
        self.seen = StoredSeen(store, self.pending, self.base + "s/")
        self.months: dict[str, MonthPartial] = {}
        self.changed: set[str] = set()  # months changed in this batch
        self.unpublished: set[str] = set()  # months whose partial is behind the state
        self.progress_unpublished = True
        # Payers already forwarded per month, this process only: a lost set re-forwards (a set).
        self.forwarded: dict[str, IdSet] = {}
        self.last_forwarded: tuple[str, str] | None = None
        raw = store.get(self.base + "c")
        self.covers: dict[str, int] = orjson.loads(raw) if raw is not None else {}
        self.covers_changed = False
        # Recipients' timelines read or changed since the last commit ("t/<iin>/<type>" -> timeline,
        # None: none yet); the store has the committed ones.
        self.timelines: dict[str, Timeline | None] = {}
        self.timelines_changed: set[str] = set()
        self.month_end = self._stored_month_end()
        self.month_end_changed = False
        self.month_end_unpublished = bool(self.month_end.diffs)

    def _stored_month_end(self) -> MonthEnd:
        raw = self.store.get(self.base + "e")
        return MonthEnd(orjson.loads(raw) if raw is not None else None)

    # ---- months -----------------------------------------------------------------------------------

    def month(self, month: str) -> MonthPartial:
        mp = self.months.get(month)
        if mp is None:
            raw = self.store.get(self.base + "m/" + month)
            head = orjson.loads(raw) if raw is not None else {"counters": {}, "sets": {}}
            sets = head["sets"]
            prefix = f"{self.base}i/{month}/"
            mp = MonthPartial(Counter(head["counters"]),
                              StoredSet(self.store, self.pending, prefix + "participants/", sets.get("participants", 0)),
                              StoredSet(self.store, self.pending, prefix + "payers/", sets.get("payers", 0)))
            self.months[month] = mp
        return mp

    def figures(self, month: str) -> dict[str, int]:
        """The partition's figures of `month` as the assembler sees them: the month's partial and the
        month-end figures of its diffs."""
        return {**self.month(month).figures(), **self.month_end.figures(month)}

    def stored_months(self) -> list[str]:
        prefix = self.base + "m/"
        return [key[len(prefix):] for key, _ in self.store.scan(prefix)]

    def _month_record(self, month: str) -> bytes:
        mp = self.months[month]
        return json_bytes.dumps({"counters": {k: v for k, v in sorted(mp.counters.items()) if v},
                             "sets": {"participants": len(mp.participants), "payers": len(mp.payers)}})

    # ---- records ----------------------------------------------------------------------------------

    def apply(self, source: str, values: list[bytes | None], out: Applied) -> None:
        """Count a batch of one source's records, in order. The store is asked once, for every
        id and member the batch may add (a multi-get), not once per record."""
        spec = SOURCES[source]
        todo = []
        keys = []
        timeline_keys = []
        for value in values:
            try:
                record = orjson.loads(value) if value is not None else None
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                if not spec.counts(record):
                    out.repeats += 1
                    continue
                month = spec.month(record)
                if spec.record_id is not None:
                    keys.append(self.seen.prefix + seen_key(month, source, spec.record_id(record)))
                member = _member(source, record)
                if member is not None:
                    keys.append(f"{self.base}i/{month}/{member}")
                if source in TIMELINE_SOURCES and (source != "social_payments" or transfer_change(record)):
                    # Most transfers owe nothing and return nothing: their recipient's timeline stays unread.
                    timeline_keys.append(_timeline_key(record))
            except (ValueError, KeyError, TypeError) as exc:
                self._unreadable(source, exc, out)
                continue
            todo.append((record, month))
        self.pending.known = self.store.present(keys)  # valid until the next commit; asked afresh
        self._load_timelines(timeline_keys)
        for record, month in todo:
            try:
                if spec.record_id is not None and not self.seen.add(seen_key(month, source, spec.record_id(record))):
                    out.repeats += 1
                    continue
                # The timeline first: a record that cannot change it changes nothing at all.
                timeline = self._timeline(source, record) if source in TIMELINE_SOURCES else None
                spec.apply(self.month(month), record, self.calendar)
                if timeline is not None:
                    self._set_timeline(record, *timeline)
            except (ValueError, KeyError, TypeError) as exc:
                self._unreadable(source, exc, out)
                continue
            out.counted += 1
            self.changed.add(month)
            if source == "contributions":
                self._forward(record, month, out)

    def _load_timelines(self, keys: list[str]) -> None:
        """The batch's recipients' timelines not in the cache, in one multi-get."""
        wanted = sorted({k for k in keys if k not in self.timelines})
        for key, raw in zip(wanted, self.store.get_many([self.base + k for k in wanted])):
            self.timelines[key] = Timeline.from_json(orjson.loads(raw)) if raw is not None else None

    def _timeline(self, source: str, record: dict) -> tuple[str, Timeline | None, Timeline] | None:
        """(key, timeline before, after) of the record's recipient; None when it is unchanged."""
        if source == "social_payments" and transfer_change(record) is None:
            return None
        key = _timeline_key(record)
        if key not in self.timelines:
            self._load_timelines([key])
        old = self.timelines[key]
        new = changed_timeline(source, old, record)
        return None if new is None else (key, old, new)

    def _set_timeline(self, record: dict, key: str, old: Timeline | None, new: Timeline) -> None:
        self.timelines[key] = new
        self.timelines_changed.add(key)
        if self.month_end.update(recipient_of(record)[1], old, new):
            self.month_end_changed = True

    def _unreadable(self, source: str, exc: Exception, out: Applied) -> None:
        # Output records are ours and checked against their models: a bug, not data to stop on.
        log.error("report %s: a %s record could not be counted (%s: %s)", self.stream, source,
                  type(exc).__name__, exc)
        out.unreadable += 1

    def _forward(self, entry: dict, month: str, out: Applied) -> None:
        payer = entry["payer_bin_iin"]
        if self.last_forwarded == (month, payer):
            return  # the lines of one order: one payer
        self.last_forwarded = (month, payer)
        sent = self.forwarded.setdefault(month, IdSet())
        if sent.add(payer):
            out.forwards.append((payer.encode("utf-8"), json_bytes.dumps(
                {"payer_bin_iin": payer, "received_at": entry["received_at"]})))

    def advance(self, topic: str, next_offset: int) -> None:
        if self.covers.get(topic, 0) < next_offset:
            self.covers[topic] = next_offset
            self.covers_changed = True

    # ---- the batch's changes --------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return (bool(self.changed) or bool(self.pending.entries) or self.covers_changed
                or bool(self.timelines_changed) or self.month_end_changed)

    def take_changes(self) -> list[tuple[str, bytes]]:
        """The batch's changelog entries: the ids and members it added, packed in one record (a
        record per id would cost a Kafka send per posted line; `ReportStore.apply` unpacks it), the
        changed month records and the covers."""
        out = []
        if self.pending.entries:
            n = len(self.base)
            out.append((f"{self.base}{ADDED}{uuid.uuid4().hex}",
                        json_bytes.dumps([k[n:] for k in self.pending.entries])))
        if self.timelines_changed:
            # Packed like the ids: a recipient's timeline costs no Kafka send of its own.
            out.append((f"{self.base}{VALUES}{uuid.uuid4().hex}", json_bytes.dumps(
                {k: self.timelines[k].to_json() for k in sorted(self.timelines_changed)})))
        if self.month_end_changed:
            out.append((self.base + "e", json_bytes.dumps(self.month_end.to_json())))
            self.month_end_unpublished = True
        out += [(self.base + "m/" + m, self._month_record(m)) for m in sorted(self.changed)]
        if self.dirty:
            out.append((self.base + "c", json_bytes.dumps(self.covers)))
            self.progress_unpublished = True
        self.unpublished |= self.changed
        self.changed = set()
        self.covers_changed = False
        self.timelines_changed = set()
        self.month_end_changed = False
        return out

    def committed(self) -> None:
        self.pending.clear()
        self.timelines.clear()  # in the store now: memory holds one commit's recipients at most

    def rollback(self) -> None:
        """Forget what the failed batch did: the store holds the last committed state."""
        self.pending.clear()
        self.months.clear()
        self.changed = set()
        raw = self.store.get(self.base + "c")
        self.covers = orjson.loads(raw) if raw is not None else {}
        self.covers_changed = False
        self.timelines.clear()
        self.timelines_changed = set()
        self.month_end = self._stored_month_end()
        self.month_end_changed = False
        self.month_end_unpublished = True
        self.forwarded.clear()  # forwards of the failed batch were not sent
        self.last_forwarded = None
        self.unpublished |= set(self.stored_months())
        self.progress_unpublished = True

    # ---- partials -------------------------------------------------------------------------------------

    def _covers_doc(self) -> dict[str, dict[str, int]]:
        return {topic: {str(self.partition): offset} for topic, offset in sorted(self.covers.items())}

    def partials(self, now: datetime) -> list[tuple[bytes, bytes]]:
        """(key, value) for reports.partials: the months changed since the last publication, then the
        partition's progress (its covers), last so that a reader that has the progress has the months."""
        at = stamp(now)
        out = []
        covers = self._covers_doc()
        for month in sorted(self.unpublished):
            mp = self.month(month)
            out.append((f"{month}/{self.stream}/{self.partition}".encode(), json_bytes.dumps({
                "schema_version": SCHEMA_VERSION, "month": month, "stream": self.stream,
                "partition": self.partition, "figures": mp.figures(), "covers": covers, "updated_at": at})))
        if self.month_end_unpublished:
            out.append((f"{self.stream}/{self.partition}/month-end".encode(), json_bytes.dumps({
                "schema_version": SCHEMA_VERSION, "month": None, "stream": self.stream, "partition": self.partition,
                "figures": {}, "month_end": self.month_end.to_json(), "covers": covers, "updated_at": at})))
        out.append((f"{self.stream}/{self.partition}".encode(), json_bytes.dumps({
            "schema_version": SCHEMA_VERSION, "month": None, "stream": self.stream, "partition": self.partition,
            "figures": {}, "covers": covers, "updated_at": at})))
        return out

    def published(self) -> None:
        self.unpublished = set()
        self.progress_unpublished = False
        self.month_end_unpublished = False

    def republish_all(self) -> None:
        self.unpublished |= set(self.stored_months())
        self.progress_unpublished = True
        self.month_end_unpublished = bool(self.month_end.diffs)


def _timeline_key(record: dict) -> str:
    iin, payment_type = recipient_of(record)
    return f"t/{iin}/{payment_type}"
