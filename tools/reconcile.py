"""`esep reconcile`: what an operator runs after an incident. It reads the credit notifications and
every output topic from the beginning (or the notifications of a time range), and checks, from the
records alone and never from a worker's state:

- every notification record is dead-lettered or its notification id has exactly one result (all
  emissions of a result, an entry or a refund equal except their stamps);
- every line of a decided order ends in exactly one posted entry or one refund line, never both;
- amounts are conserved per order (entries + refund = the order's total_amount, and the result
  says the same) and per day (Asia/Almaty day of received_at);
- no entry, refund or result without its order.

`check()` is the checking, pure (records in, a report out); `read_records()` the reading.
Exit 0 when nothing is breached, 1 when something is (the offending ids are listed, IINs masked),
2 when the topics could not be read."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

import orjson

from rules.calendar import ALMATY
from rules.iin import mask_iin
from rules.money import format_tiyn, parse_amount

# Fields a re-emission may change (contract, Clarifications: deterministic ids).
STAMPS = ("posted_at", "created_at", "decided_at")

# Breach kinds, in the order the report lists them.
BREACHES = {
    "unreadable": "notification record neither dead-lettered nor readable",
    "no_result": "order without a result (lost)",
    "reemission_differs": "two emissions of one id that differ beyond their stamps",
    "line_lost": "line with neither a posted entry nor a refund line",
    "line_doubled": "line posted and refunded, or refunded twice",
    "unknown_line": "entry or refund line naming a line the order does not have",
    "result_mismatch": "result whose counts or status disagree with the entries and refund",
    "order_not_conserved": "order whose entries and refund do not add up to its total_amount",
    "day_not_conserved": "day whose entries and refunds do not add up to the amounts received",
    "orphan": "entry, refund or result of no order read",
}


class Raw(NamedTuple):
    """A notification record as read (kafka's ConsumerRecord has these attributes too)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0  # Kafka timestamp, ms


@dataclass
class Breach:
    kind: str
    id: str
    detail: str


@dataclass
class Day:
    day: str
    orders: int = 0
    lines: int = 0
    received_tiyn: int = 0
    posted_tiyn: int = 0
    refunded_tiyn: int = 0

    @property
    def conserved(self) -> bool:
        return self.received_tiyn == self.posted_tiyn + self.refunded_tiyn


@dataclass
class Report:
    figures: dict[str, int] = field(default_factory=dict)
    days: list[Day] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def count(self, kind: str) -> int:
        return sum(1 for b in self.breaches if b.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "figures": self.figures,
                "days": [{**asdict(d), "conserved": d.conserved} for d in self.days],
                "breaches": {k: [asdict(b) for b in self.breaches if b.kind == k]
                             for k in BREACHES if self.count(k)}}


@dataclass
class _Order:
    nid: str
    received_at: str
    total_tiyn: int | None
    line_nos: list[int]
    amounts: dict[int, int | None]
    iins: dict[int, str]


def _unstamped(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in STAMPS}


def _read_order(value: bytes | None) -> _Order | None:
    """The fields the checks need, or None when the record is not a readable notification."""
    try:
        order = orjson.loads(value)
        nid = order["notification_id"]
        lines = order["lines"]
        if not isinstance(nid, str) or not isinstance(lines, list):
            return None
        line_nos = [int(ln["line_no"]) for ln in lines]
        return _Order(nid=nid, received_at=str(order["received_at"]), total_tiyn=parse_amount(order["total_amount"]),
                      line_nos=line_nos,
                      amounts={int(ln["line_no"]): parse_amount(ln.get("amount")) for ln in lines},
                      iins={int(ln["line_no"]): ln.get("iin") for ln in lines})
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError):
        return None


def almaty_day(timestamp: str) -> date | None:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(ALMATY).date()
    except (ValueError, TypeError, AttributeError):
        return None


class _Distinct:
    """First emission per id; a later one that differs beyond its stamps is a breach."""

    def __init__(self, what: str, breaches: list[Breach]):
        self.what = what
        self.first: dict[str, dict] = {}
        self.emissions = 0
        self.breaches = breaches

    def add(self, key: str, record: dict) -> None:
        self.emissions += 1
        seen = self.first.get(key)
        if seen is None:
            self.first[key] = record
        elif _unstamped(seen) != _unstamped(record):
            differing = sorted(k for k in set(seen) | set(record)
                               if k not in STAMPS and seen.get(k) != record.get(k))
            self.breaches.append(Breach("reemission_differs", key, f"{self.what} differs in {', '.join(differing)}"))

    @property
    def repeats(self) -> int:
        return self.emissions - len(self.first)


def check(notifications: Iterable[Raw], posted: Iterable[dict], refunds: Iterable[dict], results: Iterable[dict],
          dead_letters: Iterable[dict], notifications_topic: str, *,
          judged: Callable[[Raw], bool] | None = None, now: datetime | None = None,
          deadline_of: Callable[[datetime], datetime] | None = None) -> Report:
    """The whole reconciliation over records already read.

    judged: which notification records are checked (default all; a time range passes a filter):
      outputs of the others are not judged, and orphans are looked for only when all are judged.
    now, deadline_of: an order without a result whose deadline (deadline_of(received_at)) is after
      `now` is counted as undecided, not lost: it may be held for the registry. Without them every
      order without a result is lost.
    """
    breaches: list[Breach] = []
    report = Report(breaches=breaches)
    f = report.figures

    dead = {(d.get("partition"), d.get("offset")) for d in dead_letters
            if d.get("source_topic") == notifications_topic}
    orders: dict[str, _Order] = {}
    judged_ids: set[str] = set()
    f.update(notification_records=0, dead_lettered=0, copies=0)
    for rec in notifications:
        f["notification_records"] += 1
        if (rec.partition, rec.offset) in dead:
            f["dead_lettered"] += 1
            continue
        order = _read_order(rec.value)
        if order is None:
            breaches.append(Breach("unreadable", f"{notifications_topic}[{rec.partition}]@{rec.offset}",
                                   "not dead-lettered, and not a readable notification"))
            continue
        if order.nid in orders:
            f["copies"] += 1  # a repeat, or the record the worker moved to its id's partition
        else:
            orders[order.nid] = order
        if judged is None or judged(rec):
            judged_ids.add(order.nid)

    entries = _Distinct("posted entry", breaches)
    for e in posted:
        entries.add(str(e.get("entry_id")), e)
    refund_by = _Distinct("refund", breaches)
    for r in refunds:
        refund_by.add(str(r.get("notification_id")), r)
    result_by = _Distinct("result", breaches)
    for r in results:
        result_by.add(str(r.get("notification_id")), r)

    entries_of: dict[str, dict[int, dict]] = defaultdict(dict)
    for entry_id, e in entries.first.items():
        nid, _, line_no = entry_id.rpartition("/")
        try:
            entries_of[nid][int(line_no)] = e
        except ValueError:
            breaches.append(Breach("orphan", entry_id, "posted entry whose id names no line"))

    if judged is None:
        for nid in sorted(set(entries_of) - set(orders)):
            breaches.append(Breach("orphan", nid, f"{len(entries_of[nid])} posted entries of no order read"))
        for nid in sorted(set(refund_by.first) - set(orders)):
            breaches.append(Breach("orphan", nid, "refund of no order read"))
        for nid in sorted(set(result_by.first) - set(orders)):
            breaches.append(Breach("orphan", nid, "result of no order read"))

    days: dict[date, Day] = {}
    f.update(orders=len(judged_ids), decided=0, undecided=0, lost=0, lines=0, lines_posted=0, lines_refunded=0,
             received_tiyn=0, posted_tiyn=0, refunded_tiyn=0)
    for nid in sorted(judged_ids):
        order = orders[nid]
        result = result_by.first.get(nid)
        mine = entries_of.get(nid, {})
        refund = refund_by.first.get(nid)
        if result is None:
            if _within_deadline(order, now, deadline_of):
                f["undecided"] += 1
            else:
                f["lost"] += 1
                breaches.append(Breach("no_result", nid, f"{len(order.line_nos)} lines, received {order.received_at}"
                                       + (f"; yet {len(mine)} entries" if mine else "")
                                       + ("; yet a refund" if refund else "")))
            continue
        f["decided"] += 1
        posted_tiyn, refunded_tiyn = _check_lines(order, mine, refund, result, breaches, f)
        received = order.total_tiyn
        if received is None or posted_tiyn + refunded_tiyn != received:
            breaches.append(Breach("order_not_conserved", nid,
                                   f"entries {format_tiyn(posted_tiyn)} + refund {format_tiyn(refunded_tiyn)} "
                                   f"!= total_amount {format_tiyn(received) if received is not None else '?'}"))
        if (parse_amount(result.get("amount_posted")), parse_amount(result.get("amount_refunded"))) != (
                posted_tiyn, refunded_tiyn):
            breaches.append(Breach("result_mismatch", nid,
                                   f"result says {result.get('amount_posted')} posted + {result.get('amount_refunded')}"
                                   f" refunded; entries {format_tiyn(posted_tiyn)}, refund "
                                   f"{format_tiyn(refunded_tiyn)}"))
        day = almaty_day(order.received_at)
        row = days.setdefault(day, Day(day.isoformat() if day else "?"))
        row.orders += 1
        row.lines += len(order.line_nos)
        row.received_tiyn += received or 0
        row.posted_tiyn += posted_tiyn
        row.refunded_tiyn += refunded_tiyn
    report.days = [days[d] for d in sorted(days, key=lambda d: (d is None, d or date.min))]
    for row in report.days:
        f["received_tiyn"] += row.received_tiyn
        f["posted_tiyn"] += row.posted_tiyn
        f["refunded_tiyn"] += row.refunded_tiyn
        if not row.conserved:
            breaches.append(Breach("day_not_conserved", row.day,
                                   f"received {format_tiyn(row.received_tiyn)} != posted "
                                   f"{format_tiyn(row.posted_tiyn)} + refunded {format_tiyn(row.refunded_tiyn)}"))
    f.update(entry_emissions=entries.emissions, entries=len(entries.first), refund_emissions=refund_by.emissions,
             refunds=len(refund_by.first), result_emissions=result_by.emissions, results=len(result_by.first),
             reemissions=entries.repeats + refund_by.repeats + result_by.repeats,
             reemissions_differing=report.count("reemission_differs"),
             lines_lost=report.count("line_lost"), lines_doubled=report.count("line_doubled"))
    order_of = {k: i for i, k in enumerate(BREACHES)}
    breaches.sort(key=lambda b: (order_of.get(b.kind, len(order_of)), b.id))
    return report


def _within_deadline(order: _Order, now: datetime | None, deadline_of) -> bool:
    if now is None or deadline_of is None:
        return False
    try:
        received = datetime.fromisoformat(order.received_at.replace("Z", "+00:00"))
        return now < deadline_of(received)
    except (ValueError, TypeError):
        return False


def _check_lines(order: _Order, entries: dict[int, dict], refund: dict | None, result: dict,
                 breaches: list[Breach], f: dict) -> tuple[int, int]:
    """Each line's outcome; returns (tiyn posted by the entries, tiyn refunded by the refund)."""
    nid = order.nid
    known = Counter(order.line_nos)
    refund_lines = refund.get("lines", []) if refund else []
    refunded = Counter(ln.get("line_no") for ln in refund_lines)

    def where(line_no) -> str:
        iin = order.iins.get(line_no)
        return f"{nid}/{line_no}" + (f" (iin {mask_iin(iin)})" if iin is not None else "")

    for line_no, e in sorted(entries.items()):
        if line_no not in known:
            breaches.append(Breach("unknown_line", f"{nid}/{line_no}", "posted entry of a line the order lacks"))
        elif refunded[line_no]:
            breaches.append(Breach("line_doubled", where(line_no), "posted and refunded"))
        elif order.amounts.get(line_no) is not None and parse_amount(e.get("amount")) != order.amounts[line_no]:
            breaches.append(Breach("order_not_conserved", where(line_no),
                                   f"entry amount {e.get('amount')} is not the line's"))
    for line_no, n in sorted(refunded.items(), key=lambda x: str(x[0])):
        if line_no not in known:
            breaches.append(Breach("unknown_line", f"{nid}/{line_no}", "refund line of a line the order lacks"))
        elif n > known[line_no]:
            breaches.append(Breach("line_doubled", where(line_no), f"refunded {n} times"))
    for line_no in sorted(known):
        outcomes = (1 if line_no in entries else 0) + refunded[line_no]
        if outcomes < known[line_no]:
            breaches.append(Breach("line_lost", where(line_no), "neither posted nor refunded"))

    n_posted = sum(1 for n in entries if n in known)
    n_refunded = len(refund_lines)
    f["lines"] += len(order.line_nos)
    f["lines_posted"] += n_posted
    f["lines_refunded"] += n_refunded
    total = len(order.line_nos)
    expected_status = ("posted" if n_posted == total and total > 0 else "refunded" if n_posted == 0
                       else "partially_refunded")
    counts = (result.get("lines_total"), result.get("lines_posted"), result.get("lines_refunded"), result.get("status"))
    if counts != (total, n_posted, n_refunded, expected_status):
        breaches.append(Breach("result_mismatch", nid,
                               f"result says total/posted/refunded/status {counts}; the order has "
                               f"{len(order.line_nos)} lines, {n_posted} entries, {n_refunded} refund lines"))
    posted_tiyn = sum(parse_amount(e.get("amount")) or 0 for e in entries.values())
    refunded_tiyn = (parse_amount(refund.get("amount")) or 0) if refund else 0
    return posted_tiyn, refunded_tiyn


# ------------------------------------------------------------------------------------------------
# Reading

@dataclass
class Records:
    notifications: list[Raw]
    posted: list[dict]
    refunds: list[dict]
    results: list[dict]
    dead_letters: list[dict]
    seconds: float = 0.0


def read_records(bootstrap: str, topics, since_ms: int | None = None, timeout_s: float = 600.0) -> Records:
    """Every record of the notifications and the four output topics up to their ends as of now
    (from `since_ms`, Kafka time, when given)."""
    from .reading import TopicReader

    started = time.monotonic()
    out = Records([], [], [], [], [])
    into = {topics.posted_contributions: out.posted, topics.refunds: out.refunds,
            topics.order_results: out.results, topics.dead_letters: out.dead_letters}
    names = [topics.credit_notifications, *into]
    with TopicReader(bootstrap, names, since_ms=since_ms, client_id="esep-reconcile") as reader:
        for rec in reader.read_to_end(timeout_s):
            if rec.topic == topics.credit_notifications:
                out.notifications.append(Raw(rec.partition, rec.offset, rec.key, rec.value, rec.timestamp))
            else:
                into[rec.topic].append(orjson.loads(rec.value))
    out.seconds = time.monotonic() - started
    return out


def reconcile_topics(bootstrap: str, topics, *, since: datetime | None = None, until: datetime | None = None,
                     lookback_days: float = 7.0, strict: bool = False, now: datetime | None = None
                     ) -> tuple[Report, Records]:
    """Read and check. With a range, the notifications received (Kafka time) in it are judged, and
    the topics are read from `lookback_days` before it so that their earlier copies are seen."""
    since_ms = int(since.timestamp() * 1000) if since else None
    until_ms = int(until.timestamp() * 1000) if until else None
    start_ms = since_ms - int(lookback_days * 86_400_000) if since_ms is not None else None
    records = read_records(bootstrap, topics, start_ms)
    def in_range(rec: Raw) -> bool:
        return (since_ms is None or rec.timestamp >= since_ms) and (until_ms is None or rec.timestamp <= until_ms)

    judged = in_range if since_ms is not None or until_ms is not None else None
    deadline_of = None
    if not strict:
        from rules.calendar import default_calendar

        deadline_of = default_calendar().receipt_deadline
        now = now or datetime.now(ALMATY)
    report = check(records.notifications, records.posted, records.refunds, records.results, records.dead_letters,
                   topics.credit_notifications, judged=judged, now=None if strict else now, deadline_of=deadline_of)
    return report, records


# ------------------------------------------------------------------------------------------------
# The table

def _tenge(tiyn: int) -> str:
    return f"{format_tiyn(tiyn)} ₸"


def render(report: Report, header: str = "", max_ids: int = 20) -> str:
    f = report.figures
    rows: list[tuple[str, str, str]] = [
        ("notification records read", f"{f['notification_records']:,}", ""),
        ("  dead-lettered", f"{f['dead_lettered']:,}", ""),
        ("  copies of an id (repeats, moved to the id's partition)", f"{f['copies']:,}", ""),
        ("  neither dead-lettered nor readable", "", f"{report.count('unreadable'):,}"),
        ("orders (distinct notification ids)", f"{f['orders']:,}", ""),
        ("  with exactly one result", f"{f['decided']:,}", ""),
        ("  undecided, within their deadline (held)", f"{f['undecided']:,}", ""),
        ("  without a result (lost)", f"{f['lost']:,}", f"{report.count('no_result'):,}"),
        ("  result disagrees with entries/refund", "", f"{report.count('result_mismatch'):,}"),
        ("lines of decided orders", f"{f['lines']:,}", ""),
        ("  posted (one entry)", f"{f['lines_posted']:,}", ""),
        ("  refunded (one refund line)", f"{f['lines_refunded']:,}", ""),
        ("  with no outcome (lost)", "", f"{f['lines_lost']:,}"),
        ("  with two outcomes (doubled)", "", f"{f['lines_doubled']:,}"),
        ("  naming a line the order lacks", "", f"{report.count('unknown_line'):,}"),
        ("emissions: entries / refunds / results",
         f"{f['entry_emissions']:,} / {f['refund_emissions']:,} / {f['result_emissions']:,}", ""),
        ("  re-emissions (identical except stamps)", f"{f['reemissions'] - f['reemissions_differing']:,}", ""),
        ("  re-emissions that differ", "", f"{f['reemissions_differing']:,}"),
        ("outputs of no order read", "", f"{report.count('orphan'):,}"),
        ("amount received", _tenge(f["received_tiyn"]), ""),
        ("  posted + refunded", _tenge(f["posted_tiyn"] + f["refunded_tiyn"]),
         f"{report.count('order_not_conserved'):,}"),
    ]
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    out = [header] if header else []
    out += [f"{'check':<{w}}  {'count':>{v}}  breaches", f"{'-' * w}  {'-' * v}  --------"]
    out += [f"{label:<{w}}  {value:>{v}}  {breach:>8}" for label, value, breach in rows]
    if report.days:
        out += ["", f"{'day (Asia/Almaty)':<12}  {'orders':>7}  {'lines':>8}  {'received':>18}  {'posted':>18}  "
                    f"{'refunded':>16}  conserved"]
        for d in report.days:
            out.append(f"{d.day:<17}  {d.orders:>7,}  {d.lines:>8,}  {format_tiyn(d.received_tiyn):>18}  "
                       f"{format_tiyn(d.posted_tiyn):>18}  {format_tiyn(d.refunded_tiyn):>16}  "
                       f"{'yes' if d.conserved else 'NO'}")
    if report.breaches:
        out += ["", f"BREACHES: {len(report.breaches):,}"]
        for kind, what in BREACHES.items():
            mine = [b for b in report.breaches if b.kind == kind]
            if not mine:
                continue
            out.append(f"  {kind} ({len(mine):,}): {what}")
            out += [f"    {b.id}: {b.detail}" for b in mine[:max_ids]]
            if len(mine) > max_ids:
                out.append(f"    ... and {len(mine) - max_ids:,} more")
    else:
        out += ["", "RECONCILED: every order decided once, every line one outcome, amounts conserved"]
    return "\n".join(out)


def _when(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp, or a date (00:00 Asia/Almaty)."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=ALMATY)


def run_reconcile(settings, since: str | None = None, until: str | None = None, lookback_days: float = 7.0,
                  strict: bool = False, out: str | None = None, max_ids: int = 20) -> int:
    try:
        since_at, until_at = _when(since), _when(until)
    except ValueError as exc:
        print(f"esep reconcile: {exc}", file=sys.stderr)
        return 2
    bootstrap = settings.resolve_broker()
    t = settings.topics
    try:
        report, records = reconcile_topics(bootstrap, t, since=since_at, until=until_at,
                                           lookback_days=lookback_days, strict=strict)
    except (RuntimeError, TimeoutError) as exc:
        print(f"esep reconcile: could not read the topics: {exc}", file=sys.stderr)
        return 2
    span = ("all records" if since_at is None and until_at is None else
            f"notifications received {since_at.isoformat() if since_at else '...'} to "
            f"{until_at.isoformat() if until_at else 'now'}")
    header = (f"esep reconcile: {t.credit_notifications} and its outputs on {bootstrap} ({span}; "
              f"{sum(map(len, (records.notifications, records.posted, records.refunds, records.results, records.dead_letters))):,}"
              f" records read in {records.seconds:.1f} s)\n")
    print(render(report, header, max_ids), flush=True)
    if out:
        from pathlib import Path

        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    return 0 if report.ok else 1
