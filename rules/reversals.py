"""Refunds of posted contributions (contract Part 2): the index of a person's posted entries, how a
refund decision is decided against it, and the records a decision gives.

Pure: no Kafka, no clock. The caller keeps one `PostedIndex` per IIN (a stream over
`posted.contributions` feeds it through `apply_posted`) and hands every refund decision of that IIN
to `receive`. The index also holds each decision's record (its outcome, or that it waits), so one
write of the index is at once the update of the entries (which are reversed, and by whom) and the
durable decision record: outputs are rendered from it, and a redelivery renders them again, equal,
instead of deciding again against a ledger that may have changed."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import orjson

from . import json_bytes
from . import codes
from .dates import parse_period
from .entries import business_instant
from .money import format_tiyn, parse_amount
from .calendar import BusinessCalendar, default_calendar
from .holds import hold_cutoff

SCHEMA_VERSION = 1
STATE_VERSION = 1

# receive() outcomes: what the caller emits for the decision record it gets back.
DECIDED = "decided"  # decided now: emit its outputs
REDELIVERED = "redelivered"  # the same input record again: emit the recorded outputs again, equal
REPEAT = "repeat"  # another record with a decided (or waiting) refund_decision_id: emit nothing
WAITING = "waiting"  # names an entry not yet posted: nothing yet; `release` decides it later


def split_entry_id(entry_id: str) -> tuple[str, int] | None:
    """"<notification_id>/<line_no>" -> (notification_id, line_no); None for any other shape."""
    nid, slash, line = entry_id.rpartition("/")
    if not slash or not nid or not (line.isascii() and line.isdigit()) or (len(line) > 1 and line[0] == "0"):
        return None
    return nid, int(line)


@dataclass(frozen=True, slots=True)
class PostedEntry:
    """A posted entry as a reversal needs it: the original's fields (the person as posted, the
    registry's spelling), amounts in tiyn, and which refund decision reversed it, if any."""

    entry_id: str
    iin: str
    surname: str
    name: str
    patronymic: str | None
    birth_date: str
    kind: str
    knp: str
    amount: int
    period: str
    document_number: str
    document_date: str
    sent_date: str
    payer_name: str
    payer_bin_iin: str
    recipient_name: str
    total_amount: int
    reversed_by: str | None = None

    @property
    def notification_id(self) -> str:
        return self.entry_id.rpartition("/")[0]

    @property
    def line_no(self) -> int:
        return int(self.entry_id.rpartition("/")[2])

    @classmethod
    def from_posted(cls, record: Mapping) -> PostedEntry:
        """From a `posted.contributions` record. Raises ValueError on what the posting path never
        emits: the index must not hold an entry a reversal could not render."""
        if record.get("status") != "posted":
            raise ValueError(f"not a posted entry: status {record.get('status')!r}")
        entry_id = record["entry_id"]
        if not isinstance(entry_id, str) or split_entry_id(entry_id) is None:
            raise ValueError(f"entry_id {entry_id!r} is not <notification_id>/<line_no>")
        amount = parse_amount(record["amount"])
        total = parse_amount(record["total_amount"])
        if amount is None or total is None or amount <= 0:
            raise ValueError(f"entry {entry_id}: amounts must be positive decimal strings")
        if parse_period(record["period"]) is None:
            raise ValueError(f"entry {entry_id}: period {record['period']!r} is not a month")
        return cls(
            entry_id, record["iin"], record["surname"], record["name"], record.get("patronymic"),
            record["birth_date"], record["kind"], record["knp"], amount, record["period"],
            record["document_number"], record["document_date"], record["sent_date"], record["payer_name"],
            record["payer_bin_iin"], record["recipient_name"], total,
        )

    def _encode(self) -> list:
        return [self.iin, self.surname, self.name, self.patronymic, self.birth_date, self.kind, self.knp,
                self.amount, self.period, self.document_number, self.document_date, self.sent_date,
                self.payer_name, self.payer_bin_iin, self.recipient_name, self.total_amount, self.reversed_by]

    @classmethod
    def _decode(cls, entry_id: str, item: list) -> PostedEntry:
        return cls(entry_id, *item)


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """What a refund decision says, as the rules and the records need it (built from the model)."""

    refund_decision_id: str
    iin: str
    notification_id: str
    entry_ids: tuple[str, ...]
    reason: str
    decided_on: date
    received_at: datetime
    payer: tuple[str, str, str]  # name, bin_iin, iban

    @classmethod
    def from_decision(cls, decision) -> RefundRequest:
        """From a parsed `fund.refund-decisions` record (models.reversals.RefundDecision)."""
        p = decision.payer
        return cls(decision.refund_decision_id, decision.iin, decision.notification_id, tuple(decision.entry_ids),
                   decision.reason, decision.decided_on, decision.received_at, (p.name, p.bin_iin, p.iban))

    def _encode(self) -> list:
        return [self.iin, self.notification_id, list(self.entry_ids), self.reason, self.decided_on.isoformat(),
                self.received_at.isoformat(), list(self.payer)]

    @classmethod
    def _decode(cls, refund_decision_id: str, item: list) -> RefundRequest:
        iin, nid, entry_ids, reason, decided_on, received_at, payer = item
        return cls(refund_decision_id, iin, nid, tuple(entry_ids), reason, date.fromisoformat(decided_on),
                   datetime.fromisoformat(received_at), tuple(payer))


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """How a decision was decided: the entries it reversed and those it could not, each with its
    reason, in the order the decision names them (an entry named twice counts once)."""

    reversed: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...]

    @property
    def status(self) -> str:
        return "applied" if self.reversed else "rejected"

    @property
    def reason(self) -> str | None:
        return None if self.reversed else codes.NOTHING_REVERSED


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """The decision record of one refund decision."""

    request: RefundRequest
    source: tuple[int, int]  # (partition, offset) of its first input record: a redelivery has the same
    outcome: RefundOutcome | None = None  # None while it waits for an entry
    cutoff: float | None = None  # epoch seconds: while waiting, when it is decided with what exists
    # Decided outside its input record (an entry arrived, or the cut-off passed): its outputs are
    # owed until the caller has sent them and calls `settle`.
    emit_pending: bool = False

    @property
    def waiting(self) -> bool:
        return self.outcome is None

    def _encode(self) -> dict:
        obj = {"q": self.request._encode(), "s": list(self.source)}
        if self.outcome is not None:
            obj["r"] = list(self.outcome.reversed)
            obj["x"] = [list(pair) for pair in self.outcome.rejected]
        if self.cutoff is not None:
            obj["c"] = self.cutoff
        if self.emit_pending:
            obj["e"] = True
        return obj

    @classmethod
    def _decode(cls, refund_decision_id: str, obj: dict) -> RefundRecord:
        outcome = None
        if "r" in obj:
            outcome = RefundOutcome(tuple(obj["r"]), tuple((e, r) for e, r in obj["x"]))
        return cls(RefundRequest._decode(refund_decision_id, obj["q"]), tuple(obj["s"]), outcome, obj.get("c"),
                   bool(obj.get("e")))


@dataclass(frozen=True, slots=True)
class PostedIndex:
    """One person's posted entries (by entry_id) and refund decision records (by refund_decision_id).

    Immutable: every change returns a new index, so a caller can compute a batch and write it
    before anything is emitted."""

    iin: str
    entries: Mapping[str, PostedEntry] = field(default_factory=dict)
    decisions: Mapping[str, RefundRecord] = field(default_factory=dict)

    def to_obj(self) -> dict:
        """Plain JSON types, for a store that embeds the index in its own record."""
        return {
            "v": STATE_VERSION,
            "iin": self.iin,
            "e": {eid: e._encode() for eid, e in self.entries.items()},
            "d": {rid: r._encode() for rid, r in self.decisions.items()},
        }

    def to_json(self) -> bytes:
        return json_bytes.dumps(self.to_obj())

    @classmethod
    def from_json(cls, raw: bytes | str) -> PostedIndex:
        return cls.from_obj(orjson.loads(raw))

    @classmethod
    def from_obj(cls, obj: dict) -> PostedIndex:
        if obj.get("v") != STATE_VERSION:
            raise ValueError(f"posted index version {obj.get('v')!r} is not {STATE_VERSION}")
        return cls(
            obj["iin"],
            {eid: PostedEntry._decode(eid, item) for eid, item in obj["e"].items()},
            {rid: RefundRecord._decode(rid, item) for rid, item in obj["d"].items()},
        )

    def waiting(self) -> list[RefundRecord]:
        """Decisions that wait for an entry, in the order they arrived."""
        return sorted((r for r in self.decisions.values() if r.waiting), key=lambda r: r.source)

    def next_cutoff(self) -> float | None:
        """The earliest cut-off among waiting decisions (epoch seconds), for the caller's timer."""
        return min((r.cutoff for r in self.decisions.values() if r.waiting and r.cutoff is not None), default=None)


# ---- the index --------------------------------------------------------------------------------------

def apply_posted(index: PostedIndex | None, record: bytes | str | Mapping) -> PostedIndex:
    """The index with one `posted.contributions` record applied. Idempotent by entry_id: an entry
    already in the index is kept as it is (the first emission wins; a re-emission differs only in
    `posted_at`), so the same index object comes back."""
    if not isinstance(record, Mapping):
        record = orjson.loads(record)
    entry = PostedEntry.from_posted(record)
    if index is None:
        index = PostedIndex(entry.iin)
    elif entry.iin != index.iin:
        raise ValueError(f"entry {entry.entry_id} belongs to another IIN's index")
    if entry.entry_id in index.entries:
        return index
    return replace(index, entries={**index.entries, entry.entry_id: entry})


# ---- deciding ---------------------------------------------------------------------------------------

def risk_month(risk_occurred_on: date) -> tuple[int, int]:
    """The month of an assignment's risk_occurred_on, as `decide` takes it."""
    return risk_occurred_on.year, risk_occurred_on.month


def period_used_for_payment(period: str, risk_months: Iterable[tuple[int, int]]) -> bool:
    """True when `period` lies within the 24 months up to and including a risk month (Social Code
    art. 247: those months' contributions made up the payment's base)."""
    p = parse_period(period)
    if p is None:
        return False
    months = p[0] * 12 + p[1] - 1
    for year, month in risk_months:
        risk = year * 12 + month - 1
        if risk - codes.PAYMENT_BASE_MONTHS < months <= risk:
            return True
    return False


def _named_once(entry_ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(entry_ids))


def decide(request: RefundRequest, index: PostedIndex, risk_months: Iterable[tuple[int, int]] = ()) -> RefundOutcome:
    """Each named entry is reversed unless the first failing check says why not: ENTRY_NOT_FOUND
    (not among this person's posted entries, or of another notification), ALREADY_REVERSED,
    PERIOD_USED_FOR_PAYMENT (KNP 012 only). `risk_months`: the month of risk_occurred_on of every
    applied assignment of this IIN."""
    risk_months = tuple(risk_months)
    reversed_ids: list[str] = []
    rejected: list[tuple[str, str]] = []
    for entry_id in _named_once(request.entry_ids):
        entry = index.entries.get(entry_id)
        if entry is None or entry.notification_id != request.notification_id:
            rejected.append((entry_id, codes.ENTRY_NOT_FOUND))
        elif entry.reversed_by is not None:
            rejected.append((entry_id, codes.ALREADY_REVERSED))
        elif entry.knp == "012" and period_used_for_payment(entry.period, risk_months):
            rejected.append((entry_id, codes.PERIOD_USED_FOR_PAYMENT))
        else:
            reversed_ids.append(entry_id)
    return RefundOutcome(tuple(reversed_ids), tuple(rejected))


def missing_entries(request: RefundRequest, index: PostedIndex) -> list[str]:
    """Named entries of the decision's notification that this index does not hold yet: the only
    ones that may still be posted (an id of another notification or of no entry shape never is)."""
    out = []
    for entry_id in _named_once(request.entry_ids):
        parts = split_entry_id(entry_id)
        if parts is not None and parts[0] == request.notification_id and entry_id not in index.entries:
            out.append(entry_id)
    return out


def _record(index: PostedIndex, record: RefundRecord) -> PostedIndex:
    """The index with a decision record stored and, when decided, its entries marked reversed."""
    entries = index.entries
    if record.outcome is not None and record.outcome.reversed:
        rid = record.request.refund_decision_id
        entries = dict(entries)
        for entry_id in record.outcome.reversed:
            entries[entry_id] = replace(entries[entry_id], reversed_by=rid)
    return replace(index, entries=entries, decisions={**index.decisions, record.request.refund_decision_id: record})


def receive(index: PostedIndex, request: RefundRequest, source: tuple[int, int], *,
            risk_months: Iterable[tuple[int, int]] = (), hold_margin: timedelta | None = None,
            now: datetime | None = None, calendar: BusinessCalendar | None = None
            ) -> tuple[PostedIndex, str, RefundRecord]:
    """Take one refund decision record read at `source` (partition, offset).

    Returns the new index, what happened (DECIDED, REDELIVERED, REPEAT, WAITING) and the decision's
    record. With the hold on (`hold_margin`: how long before the receipt deadline the hold ends) a
    decision naming an entry not yet posted waits, whole, until that cut-off of its received_at,
    unless `now` (the worker's clock, a timer's comparison) is already past it; hold off: decided at once.
    `calendar`: the business calendar of the deadline (the worker passes the one it loaded)."""
    if request.iin != index.iin:
        raise ValueError("a refund decision is decided against its own IIN's index")
    if hold_margin is not None and now is None:
        raise ValueError("with the hold on, `now` says whether the cut-off has passed")
    rid = request.refund_decision_id
    known = index.decisions.get(rid)
    if known is not None:
        if tuple(known.source) != tuple(source):
            return index, REPEAT, known
        return index, (WAITING if known.waiting else REDELIVERED), known
    if hold_margin is not None and missing_entries(request, index):
        cutoff = hold_cutoff(request.received_at, hold_margin, calendar or default_calendar())
        if now < cutoff:
            record = RefundRecord(request, tuple(source), None, cutoff.timestamp())
            return _record(index, record), WAITING, record
    record = RefundRecord(request, tuple(source), decide(request, index, risk_months))
    return _record(index, record), DECIDED, record


def release(index: PostedIndex, *, now: datetime, risk_months: Iterable[tuple[int, int]] = ()
            ) -> tuple[PostedIndex, list[RefundRecord]]:
    """Decide the waiting decisions whose entries are all posted by now, or whose cut-off has passed
    (then with what exists), in the order they arrived. Each comes back with `emit_pending` set:
    the caller writes the index, sends the outputs, then calls `settle`."""
    risk_months = tuple(risk_months)
    decided = []
    for record in index.waiting():
        due = record.cutoff is not None and now.timestamp() >= record.cutoff
        if not due and missing_entries(record.request, index):
            continue
        record = replace(record, outcome=decide(record.request, index, risk_months), cutoff=None, emit_pending=True)
        index = _record(index, record)
        decided.append(record)
    return index, decided


def owed(index: PostedIndex) -> list[RefundRecord]:
    """Decided records whose outputs were not acknowledged yet (a crash came between)."""
    return sorted((r for r in index.decisions.values() if r.emit_pending), key=lambda r: r.source)


def settle(index: PostedIndex, refund_decision_ids: Iterable[str]) -> PostedIndex:
    """The index once the outputs of these decisions are acknowledged."""
    decisions = dict(index.decisions)
    for rid in refund_decision_ids:
        if decisions[rid].emit_pending:
            decisions[rid] = replace(decisions[rid], emit_pending=False)
    return replace(index, decisions=decisions)


# ---- the records a decided decision gives ------------------------------------------------------------

def _reversed_entries(record: RefundRecord, index: PostedIndex) -> list[PostedEntry]:
    return sorted((index.entries[eid] for eid in record.outcome.reversed), key=lambda e: e.line_no)


def reversal_entries(record: RefundRecord, index: PostedIndex, posted_at: str) -> list[tuple[str, dict]]:
    """(key, record) on `posted.reversals` for every entry the decision reversed."""
    request = record.request
    received_at = business_instant(request.received_at)
    out = []
    for e in _reversed_entries(record, index):
        out.append((e.iin, {
            "schema_version": SCHEMA_VERSION,
            "entry_id": f"{e.entry_id}/reversal",
            "reverses": e.entry_id,
            "refund_decision_id": request.refund_decision_id,
            "iin": e.iin,
            "surname": e.surname,
            "name": e.name,
            "patronymic": e.patronymic,
            "birth_date": e.birth_date,
            "kind": e.kind,
            "knp": e.knp,
            "amount": format_tiyn(e.amount),
            "period": e.period,
            "document_number": e.document_number,
            "document_date": e.document_date,
            "sent_date": e.sent_date,
            "received_at": received_at,
            "posted_at": posted_at,
            "payer_name": e.payer_name,
            "payer_bin_iin": e.payer_bin_iin,
            "recipient_name": e.recipient_name,
            "total_amount": format_tiyn(e.total_amount),
            "status": "reversed",
        }))
    return out


def refund_order(record: RefundRecord, index: PostedIndex, created_at: str) -> tuple[str, dict] | None:
    """(key, record) on `refunds.reversals`: the money going back for what was reversed; None when
    nothing was."""
    reversed_entries = _reversed_entries(record, index)
    if not reversed_entries:
        return None
    request = record.request
    first = reversed_entries[0]
    lines = [{
        "line_no": e.line_no,
        "iin": e.iin,
        "surname": e.surname,
        "name": e.name,
        "patronymic": e.patronymic,
        "birth_date": e.birth_date,
        "period": e.period,
        "amount": format_tiyn(e.amount),
        "reason": None,
    } for e in reversed_entries]
    name, bin_iin, iban = request.payer
    return request.notification_id, {
        "schema_version": SCHEMA_VERSION,
        "refund_id": f"{request.refund_decision_id}/refund",
        "refund_decision_id": request.refund_decision_id,
        "notification_id": request.notification_id,
        "payer": {"name": name, "bin_iin": bin_iin, "iban": iban},
        # One notification: its entries share the document and the KNP.
        "document_number": first.document_number,
        "document_date": first.document_date,
        "knp": first.knp,
        "refund_knp": codes.REFUND_KNPS[first.knp],
        "scope": "reversal",
        "reason": request.reason,
        "amount": format_tiyn(sum(e.amount for e in reversed_entries)),
        "lines": lines,
        "received_at": business_instant(request.received_at),
        "created_at": created_at,
    }


def decision_result(record: RefundRecord, decided_at: str) -> tuple[str, dict]:
    """(key, record) on `fund.decision-results` for a decided refund decision."""
    request = record.request
    outcome = record.outcome
    return request.iin, {
        "schema_version": SCHEMA_VERSION,
        "decision_id": request.refund_decision_id,
        "iin": request.iin,
        "decision": "refund",
        "payment_type": None,
        "status": outcome.status,
        "reason": outcome.reason,
        "state_before": None,
        "state_after": None,
        "assignment_no": None,
        "decided_on": request.decided_on.isoformat(),
        "effective_from": None,
        "rejected_entries": [{"entry_id": eid, "reason": reason} for eid, reason in outcome.rejected],
        "decided_at": decided_at,
    }


def render(record: RefundRecord, index: PostedIndex, stamp: str) -> dict[str, list[tuple[str, dict]]]:
    """Every output of a decided record, by topic (contract default names)."""
    refund = refund_order(record, index, stamp)
    return {
        "fund.decision-results": [decision_result(record, stamp)],
        "posted.reversals": reversal_entries(record, index, stamp),
        "refunds.reversals": [refund] if refund is not None else [],
    }


__all__ = [
    "DECIDED", "REDELIVERED", "REPEAT", "WAITING",
    "PostedEntry", "PostedIndex", "RefundOutcome", "RefundRecord", "RefundRequest",
    "apply_posted", "decide", "decision_result", "missing_entries", "owed", "period_used_for_payment",
    "refund_order", "release", "receive", "render", "reversal_entries", "risk_month", "settle", "split_entry_id",
]
