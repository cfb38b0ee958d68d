"""Business days and receipt deadlines in the operator's time zone (Asia/Almaty).

Kazakhstan moved Almaty from UTC+6 to UTC+5 on 2024-03-01; only tz data 2024a or
later knows it, so the zone is verified on import and this module refuses to load
with stale data rather than compute every deadline an hour off.
"""

from __future__ import annotations

import datetime as _dt
import importlib.resources
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from zoneinfo import ZoneInfo

from rules.dates import parse_date

__all__ = [
    "ALMATY",
    "BusinessCalendar",
    "check_tzdata",
    "default_calendar",
    "local_date",
    "month_of",
    "resolve_almaty",
]

log = logging.getLogger("esep.calendar")

_ZONE_KEY = "Asia/Almaty"
# Noon avoids the 2024-02-29 23:00-24:00 hour that happened twice at the switch.
_PROBE = _dt.datetime(2024, 3, 2, 12, 0)
_EXPECTED = _dt.timedelta(hours=5)
_ONE_DAY = _dt.timedelta(days=1)
_MIDNIGHT = _dt.time(0, 0)


def _zone_is_current(zone: _dt.tzinfo) -> bool:
    return _PROBE.replace(tzinfo=zone).utcoffset() == _EXPECTED


def _package_zone() -> ZoneInfo:
    # ZoneInfo(key) prefers the host database; load the tzdata wheel's file explicitly.
    with importlib.resources.as_file(
        importlib.resources.files("tzdata.zoneinfo") / "Asia" / "Almaty"
    ) as path, open(path, "rb") as fh:
        return ZoneInfo.from_file(fh, key=_ZONE_KEY)


def resolve_almaty(
    host: Callable[[], _dt.tzinfo] = lambda: ZoneInfo(_ZONE_KEY),
    package: Callable[[], _dt.tzinfo] = _package_zone,
) -> _dt.tzinfo:
    """The Asia/Almaty zone from the first source whose data knows UTC+5.

    Returns the host zone unchanged when neither source is current, so that
    check_tzdata() reports it; the loaders are parameters only for tests.
    """
    zone: _dt.tzinfo | None = None
    try:
        zone = host()
        if _zone_is_current(zone):
            return zone
    except Exception:  # no host database at all: ZoneInfoNotFoundError, OSError
        log.debug("host tz database has no usable %s", _ZONE_KEY, exc_info=True)
    try:
        pkg = package()
        if _zone_is_current(pkg):
            log.info("host tz database is outdated; using %s from the tzdata package", _ZONE_KEY)
            return pkg
        zone = zone or pkg
    except Exception:  # tzdata not installed or broken
        log.debug("tzdata package has no usable %s", _ZONE_KEY, exc_info=True)
    if zone is None:
        raise RuntimeError(f"no time zone data for {_ZONE_KEY}: install tzdata>=2024.1 "
                           "(pip install 'tzdata>=2024.1')")
    return zone


def check_tzdata(zone: _dt.tzinfo | None = None) -> None:
    """Raise RuntimeError unless `zone` (default ALMATY) says +05:00 on 2024-03-02."""
    zone = ALMATY if zone is None else zone
    got = _PROBE.replace(tzinfo=zone).utcoffset()
    if got != _EXPECTED:
        raise RuntimeError(
            f"outdated time zone data: {_ZONE_KEY} on 2024-03-02 is UTC{_fmt(got)}, expected "
            "UTC+05:00 (Kazakhstan switched on 2024-03-01, tz release 2024a). Fix: install "
            "tzdata>=2024.1 (pip install -U 'tzdata>=2024.1') or update the host tz database "
            "(e.g. apt-get install --only-upgrade tzdata)."
        )


def _fmt(offset: _dt.timedelta | None) -> str:
    if offset is None:
        return "?"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


ALMATY = resolve_almaty()
check_tzdata(ALMATY)  # fail at import: a stale zone would silently shift every deadline


def _require_aware(ts: _dt.datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("naive datetime: business time needs an offset or a zone")


def local_date(ts: _dt.datetime) -> _dt.date:
    """Calendar date of an aware instant in Asia/Almaty."""
    _require_aware(ts)
    return ts.astimezone(ALMATY).date()


def month_of(ts: _dt.datetime) -> tuple[int, int]:
    """(year, month) of an aware instant in Asia/Almaty."""
    d = local_date(ts)
    return d.year, d.month


class BusinessCalendar:
    """Five-day week plus the published non-working and extra working days.

    Years without published non-working days fall back to weekends only (with one
    warning per year): deadlines there may be a day early, never silently later.
    """

    # Longest plausible run of days off is ~10 (New Year + weekends); far beyond that
    # the data is broken and looping on would hide it.
    _MAX_SCAN = 60

    def __init__(self, non_working_days: Mapping[int, Iterable[_dt.date]],
                 extra_working_days: Iterable[_dt.date] = ()) -> None:
        self._years = frozenset(non_working_days)
        self._off = frozenset(d for days in non_working_days.values() for d in days)
        self._extra = frozenset(extra_working_days)
        both = self._off & self._extra
        if both:
            raise ValueError(f"days both non-working and extra working: {sorted(both)}")
        self._warned: set[int] = set()
        self._warn_lock = threading.Lock()
        # Deadlines depend only on the local receipt date: a few hundred keys a year.
        self._deadlines: dict[_dt.date, _dt.datetime] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> BusinessCalendar:
        """From the JSON file (default: the copy shipped in rules/data)."""
        if path is None:
            raw = (importlib.resources.files(__package__) / "data" / "kz-non-working-days.json").read_text("utf-8")
        else:
            with open(path, encoding="utf-8") as fh:
                raw = fh.read()
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BusinessCalendar:
        """Validate strictly: a typo in this file would move legal deadlines."""
        tz = data.get("timezone", _ZONE_KEY)
        if tz != _ZONE_KEY:
            raise ValueError(f"calendar data is for {tz!r}, this module computes in {_ZONE_KEY}")
        non_working: dict[int, list[_dt.date]] = {}
        for year_key, days in dict(data["non_working_days"]).items():  # type: ignore[call-overload]
            year = int(year_key)
            parsed = [_parse_day(s) for s in days]
            wrong_year = [d for d in parsed if d.year != year]
            if wrong_year:
                raise ValueError(f"non_working_days[{year_key!r}] holds other years: {wrong_year}")
            non_working[year] = parsed
        extra = [_parse_day(s) for s in data.get("extra_working_days", ())]  # type: ignore[union-attr]
        weekdays = [d for d in extra if d.weekday() < 5]
        if weekdays:
            raise ValueError(f"extra_working_days must be Saturdays or Sundays: {weekdays}")
        return cls(non_working, extra)

    def _warn_missing_year(self, year: int) -> None:
        with self._warn_lock:
            if year in self._warned:
                return
            self._warned.add(year)
        log.warning("no non-working-day data for %d: using Saturdays and Sundays only; "
                    "add the year to rules/data/kz-non-working-days.json", year)

    def is_business_day(self, d: _dt.date) -> bool:
        if d in self._off:
            return False
        if d in self._extra:
            return True
        if d.year not in self._years:
            self._warn_missing_year(d.year)
        return d.weekday() < 5

    def next_business_day_after(self, d: _dt.date) -> _dt.date:
        """First business day strictly after `d`."""
        for _ in range(self._MAX_SCAN):
            d += _ONE_DAY
            if self.is_business_day(d):
                return d
        raise RuntimeError(f"no business day within {self._MAX_SCAN} days: calendar data is broken")

    def receipt_deadline(self, received_at: _dt.datetime) -> _dt.datetime:
        """24:00 Asia/Almaty at the end of the first business day after the receipt's local date.

        Returned as 00:00 of the following day in Asia/Almaty (aware).
        """
        day = local_date(received_at)
        deadline = self._deadlines.get(day)
        if deadline is None:
            end = self.next_business_day_after(day) + _ONE_DAY
            # "24:00" is the wall-clock midnight that ends the day, whatever its UTC offset:
            # 2024-02-29 lasted 25 hours, and its end came at 19:00Z (+05:00), not 18:00Z.
            deadline = _dt.datetime.combine(end, _MIDNIGHT, tzinfo=ALMATY)
            self._deadlines[day] = deadline
        return deadline

    # Convenience, so callers holding a calendar need not import the functions too.
    local_date = staticmethod(local_date)
    month_of = staticmethod(month_of)


def _parse_day(value: object) -> _dt.date:
    d = parse_date(value)
    if d is None:
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return d


@lru_cache(maxsize=1)
def default_calendar() -> BusinessCalendar:
    """The shipped calendar, built once per process."""
    return BusinessCalendar.load()
