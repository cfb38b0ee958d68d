"""Decisions: the durable record of how every line of a notification was decided.

A line is decided once. The record is written to a compacted changelog topic (partition = the
notification's input partition) and acknowledged before any output is sent; outputs are a pure
function of the order and its record, so a redelivery re-emits them from the record instead of
deciding again, whatever the registry says by then. The same record is the de-duplication entry:
it names the input partition and offset of the notification's first record, which tells a
redelivery (same offset: emit again) from a repeat (another offset: emit nothing).

The local rocksdict is a cache of the changelog: when a worker gets a partition it first reads the
changelog from the cache's offset to the end, so state follows its partition after a rebalance."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from rules.holds import HeldOrder
from rules.posting import LineDecision, OrderDecision, Person
from rules import json_bytes

from .rocks import new_batch, open_store, put_offset, read_offsets, scan_prefix

log = logging.getLogger("esep.decisions")
DECISION_PREFIX = b"d/"
OPEN_PREFIX = b"h/"
HELD_IIN_PREFIX = b"i/"
# 2: amounts in tiyn are recorded with the decision. Records of format 1 are still read (their
# amounts are taken from the order when they are rendered: rules.posting.with_amounts).
RECORD_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """How a notification was decided. While lines are held (registry-lag hold) it also carries the
    order as received and the hold's cut-off, so the order can be finished without its input."""

    notification_id: str
    partition: int
    offset: int
    decision: OrderDecision
    order_raw: bytes | None = None  # kept while lines are held, and until their outputs are sent
    cutoff: float | None = None  # epoch seconds: when held lines must be decided
    received: float | None = None  # epoch seconds of received_at (the age of a held line)
    emit_pending: bool = False  # decided outside the input stream: outputs not yet acknowledged

    def encode(self) -> bytes:
        lines = []
        for d in self.decision.lines:
            item = [d.line_no, d.outcome, d.reason, d.tiyn]
            if d.person is not None:
                p = d.person
                item += [p.surname, p.name, p.patronymic, p.birth_date, p.death_date]
            lines.append(item)
        obj = {"v": RECORD_VERSION, "src": [self.partition, self.offset], "r": self.decision.order_reason,
               "a": self.decision.total_tiyn, "l": lines}
        if self.order_raw is not None:
            obj["o"] = self.order_raw.decode("utf-8")
            obj["c"] = self.cutoff
            obj["t"] = self.received
        if self.emit_pending:
            obj["e"] = True
        return json_bytes.dumps(obj)

    @classmethod
    def decode(cls, notification_id: str, raw: bytes) -> "DecisionRecord":
        return cls.from_obj(notification_id, orjson.loads(raw))

    @classmethod
    def from_obj(cls, notification_id: str, obj: dict) -> "DecisionRecord":
        version = obj.get("v")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"decision record version {version!r} is not one of {READABLE_VERSIONS}")
        first_person = 3 if version == 1 else 4
        lines = []
        for item in obj["l"]:
            person = Person(*item[first_person:first_person + 5]) if len(item) > first_person else None
            tiyn = item[3] if version > 1 else None
            lines.append(LineDecision(item[0], item[1], item[2], person, tiyn))
        partition, offset = obj["src"]
        order_raw = obj["o"].encode("utf-8") if "o" in obj else None
        return cls(notification_id, partition, offset, OrderDecision(obj["r"], tuple(lines), obj.get("a")),
                   order_raw, obj.get("c"), obj.get("t"), bool(obj.get("e")))

    @property
    def open(self) -> bool:
        return not self.decision.complete

    @property
    def indexed(self) -> bool:
        """In the open-order index: lines held, or outputs not yet acknowledged."""
        return self.open or self.emit_pending


class DecisionStore:
    """Local cache of the decisions changelog: records by notification_id, changelog offsets, and
    two indexes derived from the records as they are applied (so a restore rebuilds them):
    open orders (`h/`: partition, cut-off, received, held lines, emit pending) and held lines by
    IIN (`i/`)."""

    def __init__(self, path: Path):
        self.db = open_store(path)

    def get_many(self, nids: list[str]) -> dict[str, DecisionRecord]:
        if not nids:
            return {}
        values = self.db.get([DECISION_PREFIX + n.encode() for n in nids])
        return {n: DecisionRecord.decode(n, v) for n, v in zip(nids, values) if v is not None}

    def next_offset(self, partition: int) -> int | None:
        return read_offsets(self.db, [partition]).get(partition)

    def apply(self, entries: list[tuple[str, bytes]], next_offsets: dict[int, int]) -> None:
        """Records read from the changelog (a restore). Only a record that keeps its order can be
        in the open-order index, so only those are decoded whole: a restore reads every record."""
        loaded = []
        for nid, raw in entries:
            obj = orjson.loads(raw)
            loaded.append((nid, raw, DecisionRecord.from_obj(nid, obj) if "o" in obj else None))
        self._write(loaded, next_offsets)

    def put(self, records: Sequence[DecisionRecord], encoded: Sequence[bytes], next_offsets: dict[int, int]) -> None:
        """Records (and their encoded form, as the changelog has it) with the changelog's next
        offsets, and the indexes updated, in one write batch."""
        self._write([(r.notification_id, raw, r) for r, raw in zip(records, encoded, strict=True)], next_offsets)

    def _write(self, entries: Sequence[tuple[str, bytes, DecisionRecord | None]], next_offsets: dict[int, int]) -> None:
        # An entry's record is None when it cannot be in the open-order index (no copy of the order).
        batch = new_batch()
        nids = sorted({nid for nid, _, _ in entries})
        was_indexed = [n for n, v in zip(nids, self.db.get([OPEN_PREFIX + n.encode() for n in nids]))
                       if v is not None]
        # What the index holds for each id, as this batch goes (one id may come twice in a restore).
        indexed: dict[str, DecisionRecord | None] = dict(self.get_many(was_indexed))
        for nid, raw, record in entries:
            previous = indexed.get(nid)
            if previous is not None:
                self._unindex(batch, previous)
            batch.put(DECISION_PREFIX + nid.encode(), raw)
            now_indexed = record is not None and record.indexed
            if now_indexed:
                self._index(batch, record)
            indexed[nid] = record if now_indexed else None
        for partition, offset in next_offsets.items():
            put_offset(batch, partition, offset)
        self.db.write(batch)

    @staticmethod
    def _held_iins(record: DecisionRecord) -> set[str]:
        if record.order_raw is None:
            return set()
        order = orjson.loads(record.order_raw)
        held = {d.line_no for d in record.decision.held}
        return {ln["iin"] for ln in order["lines"] if ln["line_no"] in held}

    def _index(self, batch, record: DecisionRecord) -> None:
        nid = record.notification_id.encode()
        batch.put(OPEN_PREFIX + nid, json_bytes.dumps(
            [record.partition, record.cutoff, record.received, len(record.decision.held), record.emit_pending]))
        for iin in self._held_iins(record):
            batch.put(HELD_IIN_PREFIX + iin.encode() + b"/" + nid, b"")

    def _unindex(self, batch, record: DecisionRecord) -> None:
        nid = record.notification_id.encode()
        batch.delete(OPEN_PREFIX + nid)
        for iin in self._held_iins(record):
            batch.delete(HELD_IIN_PREFIX + iin.encode() + b"/" + nid)

    def open_orders(self) -> list[HeldOrder]:
        """Every order in the open-order index."""
        return [HeldOrder(k[len(OPEN_PREFIX):].decode(), *orjson.loads(v)) for k, v in self._scan(OPEN_PREFIX)]

    def held_by_iin(self, iins) -> set[str]:
        """Notification ids with a held line for any of `iins`."""
        out = set()
        for iin in iins:
            prefix = HELD_IIN_PREFIX + iin.encode() + b"/"
            out.update(k[len(prefix):].decode() for k, _ in self._scan(prefix))
        return out

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return scan_prefix(self.db, prefix)

    def close(self) -> None:
        self.db.close()
