"""Report months: `YYYY-MM` in Asia/Almaty, and the instants that bound them."""
from __future__ import annotations

import datetime as _dt
from functools import lru_cache

from rules.calendar import ALMATY
from rules.dates import format_period, parse_date, parse_period

__all__ = ["day_of_instant", "month_of_instant", "month_of_date", "month_start", "month_end", "next_month", "last_day"]


@lru_cache(maxsize=4096)
def _day_of_text(ts: str) -> str:
    moment = _dt.datetime.fromisoformat(ts)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp without an offset: {ts!r}")
    return moment.astimezone(ALMATY).date().isoformat()


def day_of_instant(ts: str | _dt.datetime) -> str:
    """The Asia/Almaty date (YYYY-MM-DD) of an RFC 3339 timestamp (or an aware datetime).

    Cached on the text: every line of an order carries the same `received_at`.
    """
    if isinstance(ts, _dt.datetime):
        return _day_of_text(ts.isoformat())
    if not isinstance(ts, str):
        raise TypeError(f"a timestamp string, not {type(ts).__name__}")
    return _day_of_text(ts)


def month_of_instant(ts: str | _dt.datetime) -> str:
    """The Asia/Almaty month of an RFC 3339 timestamp (or an aware datetime)."""
    return day_of_instant(ts)[:7]


def month_of_date(d: str | _dt.date) -> str:
    """The month of a calendar date (a decision's `decided_on`)."""
    day = d if isinstance(d, _dt.date) else parse_date(d)
    if day is None:
        raise ValueError(f"not a YYYY-MM-DD date: {d!r}")
    return f"{day.year:04d}-{day.month:02d}"


def _parse(month: str) -> tuple[int, int]:
    p = parse_period(month)
    if p is None:
        raise ValueError(f"not a YYYY-MM month: {month!r}")
    return p


def next_month(month: str) -> str:
    year, m = _parse(month)
    return format_period((year + 1, 1) if m == 12 else (year, m + 1))


def last_day(month: str) -> _dt.date:
    year, m = _parse(next_month(month))
    return _dt.date(year, m, 1) - _dt.timedelta(days=1)


def month_start(month: str) -> _dt.datetime:
    """00:00 Asia/Almaty on the month's first day."""
    year, m = _parse(month)
    return _dt.datetime(year, m, 1, tzinfo=ALMATY)


def month_end(month: str) -> _dt.datetime:
    """24:00 Asia/Almaty on the month's last day (= the next month's start)."""
    return month_start(next_month(month))
