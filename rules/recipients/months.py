"""Months of an assignment: the term, the amount and rate in force, and whether a month is covered
(contract, Part 2, "Months")."""
from __future__ import annotations

import calendar as _cal

from .. import codes
from .state import Assignment, RecipientState

ACTIVE = "active"
SUSPENDED = "suspended"


def month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def month_of_iso(day: str) -> int:
    """"2025-03-15" (or "2025-03") -> its month index."""
    return int(day[:4]) * 12 + int(day[5:7]) - 1


def period_of(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def first_day(index: int) -> str:
    return f"{period_of(index)}-01"


def last_day(index: int) -> str:
    year, month = index // 12, index % 12 + 1
    return f"{period_of(index)}-{_cal.monthrange(year, month)[1]:02d}"


def first_month_on_or_after(day: str) -> int:
    """The first month starting on or after `day`: its own month when it is the 1st."""
    index = month_of_iso(day)
    return index if day.endswith("-01") else index + 1


def end_month(a: Assignment) -> int | None:
    return None if a.end is None else month_of_iso(a.end)


def term_holds(a: Assignment, index: int) -> bool:
    end = end_month(a)
    return a.first_month <= index and (end is None or index <= end)


def status_on(a: Assignment, day: str) -> str | None:
    """active / suspended on `day`: the last-arrived decision effective on or before it wins."""
    status = None
    for effective, value in a.events:
        if effective <= day:
            status = value
    return status


def active_in_month(a: Assignment, index: int) -> bool:
    """Active on the month's first day, or becomes active during the month."""
    start, stop = first_day(index), last_day(index)
    if status_on(a, start) == ACTIVE:
        return True
    # The status only changes on the effective dates, so checking those within the month suffices.
    return any(start < effective <= stop and status_on(a, effective) == ACTIVE for effective, _ in a.events)


def judged_assignment(state: RecipientState, index: int) -> Assignment | None:
    """The latest assignment whose term holds the month, else the latest one."""
    holding = holding_assignment(state, index)
    return holding if holding is not None else state.current


def holding_assignment(state: RecipientState, index: int) -> Assignment | None:
    for a in reversed(state.assignments):
        if term_holds(a, index):
            return a
    return None


def amount_in_force(a: Assignment, index: int) -> int | None:
    """Monthly amount (tiyn) in force for the month: the last-arrived amount starting on or before it."""
    amount = None
    for start, tiyn, _rate in a.amounts:
        if start <= index:
            amount = tiyn
    return amount


def rate_in_force(a: Assignment | None, index: int) -> str | None:
    """The pension contribution rate in force: the last-arrived one given, starting on or before the
    month (a recalculation without a rate keeps the one before)."""
    if a is None:
        return None
    rate = None
    for start, _tiyn, given in a.amounts:
        if start <= index and given is not None:
            rate = given
    return rate


def coverage_reason(state: RecipientState, index: int, receipt_month: int) -> str | None:
    """None when the month is covered, else the first reason that applies, in the contract's order."""
    if not state.assignments:
        return codes.REFUSED if state.state == "refused" else codes.NO_ASSIGNMENT
    if index > receipt_month:
        return codes.OUTSIDE_TERM
    a = judged_assignment(state, index)
    end = end_month(a)
    if a.terminated and end is not None and index > end:
        return codes.TERMINATED
    if not term_holds(a, index):
        return codes.OUTSIDE_TERM
    if active_in_month(a, index):
        return None
    return codes.SUSPENDED
