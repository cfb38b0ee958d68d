"""The two month-end figures of the social payments, kept incrementally per partition of the persons
stream (docs/report-pipeline.md, section 7, is the definition; recount.py implements it apart).

For one recipient (IIN, payment type) and month M with last day D, counting only what its counting
month puts at or before M (decisions by `decided_on` <= D, transfers received in M or before):
- active at the month's end: the assignment assigned last among those whose term holds D (its first
  month <= M, D <= its end or the end open) is active on D, by its assign, suspend and resume
  decisions in the order they arrived, each from its `effective_from`. The end of an assignment is
  the `end_date` of its last decision result (the product's addition to `fund.decision-results`);
- overpaid outstanding at the month's end: what its payments overpaid minus what its returns applied
  to overpayments, never below zero.

As a function of M each figure of one recipient is a step function, constant between the months
its records name (decided, effective, end and receipt months). A `Timeline` holds what one
recipient's records said; `steps()` turns it into its change points; a partition keeps, per figure
path, the sum of its recipients' changes by month (`MonthEnd.diffs`), and a month's figure is the sum
of the changes up to it. A record changes only its own recipient's steps: the partition's diffs
change by the difference, so no month is ever visited one by one, whatever the span of a term.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.money import parse_amount

from .months import last_day, month_of_instant, next_month

__all__ = [
    "ACTIVE", "FIGURES", "NOT_GIVEN", "OWED", "TIMELINE_SOURCES", "MonthEnd", "Timeline", "active_at", "active_steps",
    "changed_timeline", "figure_path", "figures_at", "owed_steps", "recipient_of", "transfer_change",
]

Record = Mapping[str, Any]
Steps = list[tuple[str, int]]  # (first month of a new value, the value), months ascending; 0 before the first

ACTIVE = "recipients_active_at_month_end"
OWED = "overpaid_outstanding_at_month_end"
FIGURES = (ACTIVE, OWED)
# A decision result without `end_date` (written before the field): the assignment's end stays as it was.
NOT_GIVEN = ""
# Decisions that set an assignment's status from their effective_from; the others change its end only.
STATUS = {"assign": True, "resume": True, "suspend": False}


def figure_path(payment_type: str, figure: str) -> str:
    return f"social_payments/by_type/{payment_type}/{figure}"


def _amount(value: object) -> int:
    tiyn = parse_amount(value)
    if tiyn is None:
        raise ValueError(f"not an amount: {value!r}")
    return tiyn


@dataclass
class Timeline:
    """What one (IIN, payment type) has said to the report: its applied decisions, in the order they
    arrived, as `[decided_on, effective_from, decision, assignment_no, end_date]` (end_date None when
    open, NOT_GIVEN when the result has none), and by month of receipt what its transfers overpaid
    (+) and recovered from overpayments (-), in tiyn."""

    decisions: list[list] = field(default_factory=list)
    owed: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"d": [list(d) for d in self.decisions], "o": dict(sorted(self.owed.items()))}

    @classmethod
    def from_json(cls, obj: Mapping) -> Timeline:
        return cls([list(d) for d in obj.get("d", ())], dict(obj.get("o", {})))

    def with_decision(self, r: Record) -> Timeline:
        entry = [r["decided_on"], r["effective_from"], r["decision"], r.get("assignment_no"),
                 r.get("end_date", NOT_GIVEN)]
        return Timeline(self.decisions + [entry], self.owed)

    def with_transfer(self, r: Record) -> Timeline | None:
        """The timeline after a posted transfer, or None when it changes nothing owed."""
        change = transfer_change(r)
        if change is None:
            return None
        month, tiyn = change
        owed = dict(self.owed)
        owed[month] = owed.get(month, 0) + tiyn
        if not owed[month]:
            del owed[month]
        return Timeline(self.decisions, owed)


# Sources whose records change a recipient's timeline (names of aggregate.SOURCES).
TIMELINE_SOURCES = ("decisions", "social_payments")


def changed_timeline(source: str, timeline: Timeline | None, r: Record) -> Timeline | None:
    """The recipient's timeline after a counted record of `source`, or None when it is unchanged."""
    before = timeline or Timeline()
    if source == "decisions":
        return before.with_decision(r)
    if source == "social_payments":
        return before.with_transfer(r)
    return None


def recipient_of(r: Record) -> tuple[str, str]:
    return r["iin"], r["payment_type"]


def transfer_change(r: Record) -> tuple[str, int] | None:
    """(month of receipt, change of what is owed) of a `posted.social-payments` record, None for 0."""
    if r["kind"] == "payment":
        tiyn = _amount(r["overpaid_amount"])
    elif r["kind"] == "return":
        tiyn = -_amount(r["applied_to_overpayment"])
    else:
        raise ValueError(f"social payment of kind {r['kind']!r}")
    return (month_of_instant(r["received_at"]), tiyn) if tiyn else None


def active_at(decisions: Iterable[list], month: str) -> bool:
    """Whether the recipient of `decisions` counts active at the end of `month` (module docstring)."""
    day = last_day(month).isoformat()
    terms: dict[object, list] = {}  # assignment_no -> [first month, end, [(effective_from, active?)]]
    assigned: list[object] = []
    for decided, effective, kind, number, end in decisions:
        if decided > day:
            continue  # not yet decided at the month's end: it counts from its own month on
        if kind == "assign":
            terms[number] = [effective[:7], None, []]
            assigned.append(number)
        term = terms.get(number)
        if term is None:
            continue  # no assign of that number decided by then
        if end != NOT_GIVEN:
            term[1] = end
        if kind in STATUS:
            term[2].append((effective, STATUS[kind]))
    for number in reversed(assigned):
        first, end, events = terms[number]
        if first <= month and (end is None or day <= end):
            active = False
            for effective, status in events:
                if effective <= day:
                    active = status
            return active
    return False


def _change_months(decisions: Iterable[list]) -> list[str]:
    """The months from which `active_at` may change: it is constant between them."""
    months: set[str] = set()
    for decided, effective, _kind, _number, end in decisions:
        months.add(decided[:7])
        months.add(effective[:7])
        if end:  # a date: D <= end turns false in the end's month, or the next when it is a last day
            months.add(end[:7])
            months.add(next_month(end[:7]))
    return sorted(months)


def active_steps(decisions: list[list]) -> Steps:
    out: Steps = []
    value = 0
    for month in _change_months(decisions):
        now = 1 if active_at(decisions, month) else 0
        if now != value:
            out.append((month, now))
            value = now
    return out


def owed_steps(owed: Mapping[str, int]) -> Steps:
    out: Steps = []
    total = value = 0
    for month in sorted(owed):
        total += owed[month]
        now = max(0, total)
        if now != value:
            out.append((month, now))
            value = now
    return out


def _increments(steps: Steps) -> dict[str, int]:
    out: dict[str, int] = {}
    before = 0
    for month, value in steps:
        out[month] = value - before
        before = value
    return out


class MonthEnd:
    """One partition's month-end figures: per figure path, month -> how much the partition's total
    changes from that month on. Sums of partitions' diffs are the merged diffs (disjoint recipients)."""

    def __init__(self, diffs: Mapping[str, Mapping[str, int]] | None = None):
        self.diffs: dict[str, dict[str, int]] = {p: dict(d) for p, d in (diffs or {}).items()}

    def update(self, payment_type: str, old: Timeline | None, new: Timeline) -> bool:
        """Account for one recipient's timeline going from `old` to `new`; True when a figure changed."""
        changed = False
        before = old or Timeline()
        if before.decisions != new.decisions:
            changed |= self._change(figure_path(payment_type, ACTIVE), active_steps(before.decisions),
                                    active_steps(new.decisions))
        if before.owed != new.owed:
            changed |= self._change(figure_path(payment_type, OWED), owed_steps(before.owed), owed_steps(new.owed))
        return changed

    def _change(self, path: str, old: Steps, new: Steps) -> bool:
        if old == new:
            return False
        diffs = self.diffs.setdefault(path, {})
        gone, came = _increments(old), _increments(new)
        for month in gone.keys() | came.keys():
            d = diffs.get(month, 0) + came.get(month, 0) - gone.get(month, 0)
            if d:
                diffs[month] = d
            else:
                diffs.pop(month, None)
        if not diffs:
            del self.diffs[path]
        return True

    def figures(self, month: str) -> dict[str, int]:
        return figures_at(self.diffs, month)

    def to_json(self) -> dict:
        return {p: dict(sorted(d.items())) for p, d in sorted(self.diffs.items())}


def figures_at(diffs: Mapping[str, Mapping[str, int]], month: str) -> dict[str, int]:
    """The month-end figures of `month` from diffs by month (one partition's, or several summed)."""
    out = {}
    for path, by_month in diffs.items():
        value = sum(v for m, v in by_month.items() if m <= month)
        if value:
            out[path] = value
    return out
