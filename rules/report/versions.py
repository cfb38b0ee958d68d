"""When each version of a month's report is due (contract Part 2, `reports.monthly`).

- `preliminary` at 24:00 Asia/Almaty when the month ends;
- `final` at 24:00 at the end of the Nth business day after the month (N a setting, default 5); a
  month first counted after that time gets its `final` at once, with no `preliminary`;
- `revised` (`revision` + 1) at the next 24:00 after figures of a month already final change.

Pure: the clock is a parameter, so tests put "now" anywhere around month ends and holidays. The
assembler keeps one `MonthState` per month, calls `observe` when merged figures change and
`published` after a version is written.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from rules.calendar import ALMATY, BusinessCalendar, local_date

from .months import last_day, month_end

__all__ = ["Due", "MonthState", "Version", "due", "final_due", "lateness", "next_midnight", "observe",
           "pending", "preliminary_due", "published"]

Version = Literal["preliminary", "final", "revised"]
DEFAULT_GRACE_BUSINESS_DAYS = 5


def preliminary_due(month: str) -> _dt.datetime:
    return month_end(month)


def final_due(month: str, calendar: BusinessCalendar, grace_business_days: int = DEFAULT_GRACE_BUSINESS_DAYS
              ) -> _dt.datetime:
    """24:00 Asia/Almaty at the end of the Nth business day after the month's last day."""
    if grace_business_days < 0:
        raise ValueError("grace_business_days must be >= 0")
    day = last_day(month)
    for _ in range(grace_business_days):
        day = calendar.next_business_day_after(day)
    # "24:00" is the wall-clock midnight that ends the day, whatever its UTC offset.
    return _dt.datetime.combine(day + _dt.timedelta(days=1), _dt.time(0, 0), tzinfo=ALMATY)


def next_midnight(moment: _dt.datetime) -> _dt.datetime:
    """The first 24:00 Asia/Almaty strictly after `moment`."""
    day = local_date(moment) + _dt.timedelta(days=1)
    return _dt.datetime.combine(day, _dt.time(0, 0), tzinfo=ALMATY)


@dataclass(frozen=True)
class MonthState:
    """What the assembler knows of one month's publications."""

    month: str
    last_version: Version | None = None
    last_revision: int = 0
    # Figures of the last published version (flat, see figures.py); the base of the next delta.
    last_figures: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    # Worker clock when figures first differed from the last published ones (only after a final).
    changed_since: _dt.datetime | None = None


@dataclass(frozen=True)
class Due:
    version: Version
    revision: int
    due_at: _dt.datetime


def observe(state: MonthState, figures: dict[str, int], now: _dt.datetime) -> MonthState:
    """Note the month's current merged figures at `now` (worker clock)."""
    if state.last_version not in ("final", "revised"):
        return state
    changed = dict(figures) != dict(state.last_figures)
    if changed and state.changed_since is None:
        return replace(state, changed_since=now)
    if not changed and state.changed_since is not None:
        return replace(state, changed_since=None)
    return state


def pending(state: MonthState, calendar: BusinessCalendar,
            grace_business_days: int = DEFAULT_GRACE_BUSINESS_DAYS) -> Due | None:
    """The next version this month owes and when it is due; None when it owes nothing."""
    if state.last_version is None:
        return Due("preliminary", 0, preliminary_due(state.month))
    if state.last_version == "preliminary":
        return Due("final", 0, final_due(state.month, calendar, grace_business_days))
    if state.changed_since is not None:
        return Due("revised", state.last_revision + 1, next_midnight(state.changed_since))
    return None


def due(state: MonthState, now: _dt.datetime, calendar: BusinessCalendar,
        grace_business_days: int = DEFAULT_GRACE_BUSINESS_DAYS) -> Due | None:
    """The version to publish at `now`, if any.

    A month not yet published whose final time has passed (first counted late, or the assembler was
    down through both times) publishes its `final` directly.
    """
    p = pending(state, calendar, grace_business_days)
    if p is None or now < p.due_at:
        return None
    if p.version == "preliminary":
        final_at = final_due(state.month, calendar, grace_business_days)
        if now >= final_at:
            return Due("final", 0, final_at)
    return p


def lateness(state: MonthState, now: _dt.datetime, calendar: BusinessCalendar,
             grace_business_days: int = DEFAULT_GRACE_BUSINESS_DAYS) -> _dt.timedelta:
    """How far past its due time the owed version is (zero when nothing is overdue): the breach gauge."""
    p = due(state, now, calendar, grace_business_days)
    if p is None:
        return _dt.timedelta(0)
    return now - p.due_at


def published(state: MonthState, version: Version, revision: int, figures: dict[str, int]) -> MonthState:
    """The state after `version` was written with `figures`."""
    allowed_after = {"preliminary": (None,), "final": (None, "preliminary"), "revised": ("final", "revised")}
    if state.last_version not in allowed_after[version]:
        raise ValueError(f"{version} cannot follow {state.last_version}")
    expected = {"preliminary": 0, "final": 0, "revised": state.last_revision + 1}[version]
    if revision != expected:
        raise ValueError(f"{version} must carry revision {expected}, not {revision}")
    return MonthState(state.month, version, revision, MappingProxyType(dict(figures)), None)
