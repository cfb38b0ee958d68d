"""Per-partition calendar-month aggregates, kept incrementally from output records.

One `Partial` per partition of one stream. The report's streams are keyed so that each figure adds
up across partitions:
- by IIN: `posted.contributions` (source "contributions"), `posted.reversals`, the deceased alerts,
  `posted.social-payments`, `fund.decision-results`: a person lives in one partition, so distinct
  participants of different partitions never overlap;
- by notification: `refunds.to-payers` ("refunds") and `orders.results` ("results");
- by payer: `posted.contributions` re-keyed by `payer_bin_iin` ("payers"), so distinct payers add up.

Each record counts once however often it is delivered: additive figures are guarded by the record's
id in a `SeenIds` store (memory here, a rocksdict store in the worker), distinct sets are idempotent
by themselves. A record counts in the Asia/Almaty month of its `received_at` (decisions: of their
`decided_on`).

The two month-end figures of the social payments (recipients active, overpayments outstanding) are
not additive by month: each decision and transfer changes its recipient's timeline, and the
partition's `MonthEnd` the months from its counting month on (month_end.py).
"""
from __future__ import annotations

import datetime as _dt
import json
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rules.calendar import BusinessCalendar, default_calendar
from rules.money import parse_amount

from .figures import Figures
from .idset import IdSet
from .month_end import TIMELINE_SOURCES, MonthEnd, Timeline, changed_timeline, recipient_of
from .months import day_of_instant, month_of_date, month_of_instant

__all__ = ["SOURCES", "MemorySeen", "MonthPartial", "Partial", "SeenIds", "amount_of", "seen_key"]

Record = Mapping[str, Any]

# Decision -> the report's counter; "refund" decisions (reversals) are not social-payment decisions.
DECISION_COUNTERS = {
    "assign": "assigned", "recalculate": "recalculated", "suspend": "suspended",
    "resume": "resumed", "terminate": "terminated", "refuse": "refused",
}


class SeenIds(Protocol):
    """Ids already counted. `add` answers True only the first time a key is added."""

    def add(self, key: str) -> bool: ...


class MemorySeen:
    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: set[str] = set()

    def add(self, key: str) -> bool:
        if key in self._keys:
            return False
        self._keys.add(key)
        return True

    def __len__(self) -> int:
        return len(self._keys)


def seen_key(month: str, source: str, record_id: str) -> str:
    # Ids repeat across sources (an alert's id is its entry's id), never within one source.
    return f"{month}|{source}|{record_id}"


def amount_of(value: object) -> int:
    tiyn = parse_amount(value)
    if tiyn is None:
        raise ValueError(f"not an amount: {value!r}")
    return tiyn


@dataclass
class MonthPartial:
    """One month of one partition: additive counters and the distinct sets behind the counts."""

    counters: Counter = field(default_factory=Counter)
    participants: IdSet = field(default_factory=IdSet)
    payers: IdSet = field(default_factory=IdSet)

    def to_bytes(self) -> bytes:
        """A snapshot for the partition's store and changelog; `from_bytes` restores it exactly."""
        head = json.dumps({
            "counters": {k: v for k, v in sorted(self.counters.items()) if v},
        }, separators=(",", ":")).encode("utf-8")
        parts = [head, self.participants.to_bytes(), self.payers.to_bytes()]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> MonthPartial:
        chunks = []
        pos = 0
        for _ in range(3):
            (size,) = struct.unpack_from("<I", data, pos)
            chunks.append(data[pos + 4:pos + 4 + size])
            pos += 4 + size
        if pos != len(data):
            raise ValueError("trailing bytes after a month partial")
        head = json.loads(chunks[0])
        return cls(Counter(head["counters"]), IdSet.from_bytes(chunks[1]), IdSet.from_bytes(chunks[2]))

    def figures(self) -> Figures:
        out = {k: v for k, v in self.counters.items() if v}
        if self.participants:
            out["contributions/participants"] = len(self.participants)
        if self.payers:
            out["contributions/payers"] = len(self.payers)
        return out


def decided_late(r: Record, calendar: BusinessCalendar) -> bool:
    """An order whose result came after the receipt's business deadline (the breach, counted)."""
    received = _dt.datetime.fromisoformat(r["received_at"])
    decided = _dt.datetime.fromisoformat(r["decided_at"])
    return decided > calendar.receipt_deadline(received)


# --- one function per source: (month, id or None when idempotent by itself, apply) ---------------

def _contribution(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    c = mp.counters
    tiyn = amount_of(r["amount"])
    c["contributions/lines_posted"] += 1
    if r["knp"] == "012":
        c["contributions/amount_contributions"] += tiyn
        mp.participants.add(r["iin"])
    elif r["knp"] == "017":
        c["contributions/amount_penalties"] += tiyn
    else:
        raise ValueError(f"posted entry with KNP {r['knp']!r}")
    c[f"contributions/by_period/{r['period']}/lines"] += 1
    c[f"contributions/by_period/{r['period']}/amount"] += tiyn
    day = day_of_instant(r["received_at"])
    c[f"contributions/by_day/{day}/lines"] += 1
    c[f"contributions/by_day/{day}/amount"] += tiyn


def _payer(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    mp.payers.add(r["payer_bin_iin"])


def _reversal(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    mp.counters["contributions/reversals/lines"] += 1
    mp.counters["contributions/reversals/amount"] += amount_of(r["amount"])


def _refund(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    c = mp.counters
    c["contributions/refunds/orders"] += 1
    c["contributions/refunds/amount"] += amount_of(r["amount"])
    for line in r["lines"]:
        reason = line["reason"] if r["scope"] == "lines" else r["reason"]
        c["contributions/refunds/lines"] += 1
        c[f"contributions/refunds/by_reason/{reason}"] += 1


def _alert(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    mp.counters["contributions/deceased_alerts"] += 1


def _decision(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    name = DECISION_COUNTERS[r["decision"]]
    mp.counters[f"social_payments/by_type/{r['payment_type']}/{name}"] += 1


def _social_payment(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    c = mp.counters
    base = f"social_payments/by_type/{r['payment_type']}/"
    gross = amount_of(r["gross_amount"])
    if r["kind"] == "payment":
        c[base + "payments/count"] += 1
        c[base + "payments/gross"] += gross
        c[base + "payments/withheld"] += amount_of(r["pension_contribution_withheld"])
        c[base + "payments/net"] += amount_of(r["net_amount"])
        overpaid = amount_of(r["overpaid_amount"])
        if overpaid:
            c[base + "overpaid/count"] += 1
            c[base + "overpaid/amount"] += overpaid
    elif r["kind"] == "return":
        c[base + "returns/count"] += 1
        c[base + "returns/amount"] += gross
    else:
        raise ValueError(f"social payment of kind {r['kind']!r}")


def _result(mp: MonthPartial, r: Record, calendar: BusinessCalendar) -> None:
    if decided_late(r, calendar):
        mp.counters["contributions/decided_after_deadline"] += 1


@dataclass(frozen=True)
class _Source:
    month: Callable[[Record], str]
    record_id: Callable[[Record], str] | None  # None: applying twice is harmless by construction
    apply: Callable[[MonthPartial, Record, BusinessCalendar], None]
    counts: Callable[[Record], bool] = lambda r: True


def _received(r: Record) -> str:
    return month_of_instant(r["received_at"])


SOURCES: dict[str, _Source] = {
    "contributions": _Source(_received, lambda r: r["entry_id"], _contribution),
    "payers": _Source(_received, None, _payer),
    "reversals": _Source(_received, lambda r: r["entry_id"], _reversal),
    "refunds": _Source(_received, lambda r: r["refund_id"], _refund),
    "results": _Source(_received, lambda r: r["notification_id"], _result),
    "alerts": _Source(_received, lambda r: r["alert_id"], _alert),
    "decisions": _Source(lambda r: month_of_date(r["decided_on"]), lambda r: r["decision_id"], _decision,
                         counts=lambda r: r["status"] == "applied" and r["decision"] in DECISION_COUNTERS),
    "social_payments": _Source(_received, lambda r: r["entry_id"], _social_payment),
}


class Partial:
    """All months of one partition of one stream (the reference: the worker keeps the same in a
    store, streams/report_partitions.py)."""

    def __init__(self, calendar: BusinessCalendar | None = None, seen: SeenIds | None = None) -> None:
        self.calendar = calendar or default_calendar()
        self.seen: SeenIds = seen if seen is not None else MemorySeen()
        self.months: dict[str, MonthPartial] = {}
        # topic -> partition -> next offset: what this partial has read, for the report's `covers`.
        self.covers: dict[str, dict[int, int]] = {}
        self.timelines: dict[tuple[str, str], Timeline] = {}
        self.month_end = MonthEnd()

    def apply(self, source: str, record: Record, *, topic: str | None = None, partition: int | None = None,
              offset: int | None = None) -> str | None:
        """Count `record` of `source`; the month it changed, or None (a repeat or not counted)."""
        if topic is not None:
            if partition is None or offset is None:
                raise ValueError("a topic needs its partition and offset")
            parts = self.covers.setdefault(topic, {})
            parts[partition] = max(parts.get(partition, 0), offset + 1)
        spec = SOURCES[source]
        if not spec.counts(record):
            return None
        month = spec.month(record)
        if spec.record_id is not None and not self.seen.add(seen_key(month, source, spec.record_id(record))):
            return None
        mp = self.months.get(month)
        if mp is None:
            mp = self.months[month] = MonthPartial()
        spec.apply(mp, record, self.calendar)
        key = recipient_of(record) if source in TIMELINE_SOURCES else None
        if key is not None:
            old = self.timelines.get(key)
            new = changed_timeline(source, old, record)
            if new is not None:
                self.timelines[key] = new
                self.month_end.update(key[1], old, new)
        return month

    def figures(self, month: str) -> Figures:
        mp = self.months.get(month)
        out = mp.figures() if mp is not None else {}
        out.update(self.month_end.figures(month))
        return out
