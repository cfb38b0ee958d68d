"""Business days and receipt deadlines in the operator's time zone (Asia/Almaty).

Kazakhstan moved Almaty from UTC+6 to UTC+5 on 2024-03-01; only tz data 2024a or
later knows it. `load_calendar()` is the explicit check a process runs at start: it
refuses stale tz data (every deadline would be an hour off) and a calendar file that is
not valid, with an error saying how to fix it. Importing this module checks nothing and
never raises, so that tools and tests can import it on any host.
"""

from __future__ import annotations

import datetime as _dt
import importlib.resources
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from rules.dates import parse_date

__all__ = [
    "ALMATY",
    "BusinessCalendar",
    "CalendarError",
    "check_tzdata",
    "default_calendar",
    "load_calendar",
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
    zone = _almaty() if zone is None else zone
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


_zone: _dt.tzinfo | None = None
_zone_lock = threading.Lock()


def _almaty() -> _dt.tzinfo:
    """The Asia/Almaty zone, resolved on first use (import must not raise; load_calendar() checks it)."""
    global _zone
    if _zone is None:
        with _zone_lock:
            if _zone is None:
                _zone = resolve_almaty()
    return _zone


def __getattr__(name: str):
    # `ALMATY` stays importable as a constant, resolved when first asked for rather than at import.
    if name == "ALMATY":
        zone = _almaty()
        globals()["ALMATY"] = zone
        return zone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require_aware(ts: _dt.datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("naive datetime: business time needs an offset or a zone")


def local_date(ts: _dt.datetime) -> _dt.date:
    """Calendar date of an aware instant in Asia/Almaty."""
    _require_aware(ts)
    return ts.astimezone(_almaty()).date()


def month_of(ts: _dt.datetime) -> tuple[int, int]:
    """(year, month) of an aware instant in Asia/Almaty."""
    d = local_date(ts)
    return d.year, d.month


class CalendarError(ValueError):
    """A calendar file that cannot be used; the message says which file and what is wrong."""


# Holidays by the Law on holidays (13 December 2001 No. 267-II) that are days off whenever they fall
# on a weekday. A year's data without one of them is probably a typo: load_calendar() warns.
_STATUTORY = ((1, 1), (1, 2), (1, 7), (3, 8), (3, 21), (3, 22), (3, 23), (5, 1), (5, 7), (5, 9), (7, 6),
              (8, 30), (10, 25), (12, 16))


class BusinessCalendar:
    """Five-day week plus the published non-working and extra working days.

    Years without published non-working days fall back to weekends only (with one
    warning per year): deadlines there may be a day early, never silently later.
    A provisional year has its statutory holidays but not yet the government's transfers
    of days off: it is used for deadlines but does not count as known ahead.
    """

    # Longest plausible run of days off is ~10 (New Year + weekends); far beyond that
    # the data is broken and looping on would hide it.
    _MAX_SCAN = 60

    def __init__(self, non_working_days: Mapping[int, Iterable[_dt.date]],
                 extra_working_days: Iterable[_dt.date] = (), provisional: Iterable[int] = ()) -> None:
        self._years = frozenset(non_working_days)
        self._off = frozenset(d for days in non_working_days.values() for d in days)
        self._extra = frozenset(extra_working_days)
        self._provisional = frozenset(provisional)
        both = self._off & self._extra
        if both:
            raise CalendarError(f"days both non-working and extra working: {sorted(both)}")
        unknown = sorted(self._provisional - self._years)
        if unknown:
            raise CalendarError(f"provisional years without non_working_days: {unknown}")
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
    def from_dict(cls, data: object) -> BusinessCalendar:
        """Validate strictly: a typo in this file would move legal deadlines."""
        if not isinstance(data, Mapping):
            raise CalendarError("calendar data must be a JSON object")
        tz = data.get("timezone", _ZONE_KEY)
        if tz != _ZONE_KEY:
            raise CalendarError(f"calendar data is for {tz!r}, this module computes in {_ZONE_KEY}")
        by_year = data.get("non_working_days")
        if not isinstance(by_year, Mapping) or not by_year:
            raise CalendarError("non_working_days must be an object of years, e.g. {\"2027\": [\"2027-01-01\"]}")
        non_working: dict[int, list[_dt.date]] = {}
        for year_key, days in by_year.items():
            year = _parse_year(year_key, "non_working_days")
            if not isinstance(days, list) or not days:
                raise CalendarError(f"non_working_days[{year_key!r}] must be a non-empty list of dates")
            parsed = [_parse_day(s) for s in days]
            wrong_year = [d for d in parsed if d.year != year]
            if wrong_year:
                raise CalendarError(f"non_working_days[{year_key!r}] holds other years: {wrong_year}")
            non_working[year] = parsed
        extra_raw = data.get("extra_working_days", [])
        if not isinstance(extra_raw, list):
            raise CalendarError("extra_working_days must be a list of dates")
        extra = [_parse_day(s) for s in extra_raw]
        weekdays = [d for d in extra if d.weekday() < 5]
        if weekdays:
            raise CalendarError(f"extra_working_days must be Saturdays or Sundays: {weekdays}")
        provisional_raw = data.get("provisional_years", [])
        if not isinstance(provisional_raw, list):
            raise CalendarError("provisional_years must be a list of years, e.g. [\"2027\"]")
        provisional = [_parse_year(y, "provisional_years") for y in provisional_raw]
        return cls(non_working, extra, provisional)

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(sorted(self._years))

    @property
    def provisional_years(self) -> tuple[int, ...]:
        return tuple(sorted(self._provisional))

    def days_known_ahead(self, today: _dt.date) -> int:
        """Days from `today` to the first day of the first year from today's on whose days off are
        not published in full (missing or provisional): 1 on the last known day, 0 or less when
        today's own year is not known."""
        year = today.year
        while year in self._years and year not in self._provisional:
            year += 1
        return (_dt.date(year, 1, 1) - today).days

    def statutory_gaps(self) -> list[_dt.date]:
        """Statutory holidays on a weekday that a year of the data does not list as a day off."""
        gaps = []
        for year in sorted(self._years):
            for month, day in _STATUTORY:
                d = _dt.date(year, month, day)
                if d.weekday() < 5 and d not in self._off and d not in self._extra:
                    gaps.append(d)
        return gaps

    def _warn_missing_year(self, year: int) -> None:
        with self._warn_lock:
            if year in self._warned:
                return
            self._warned.add(year)
        log.warning("no non-working-day data for %d: using Saturdays and Sundays only; "
                    "load a calendar file with that year (ESEP_CALENDAR_FILE, see rules/data/README.md)", year)

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
            deadline = _dt.datetime.combine(end, _MIDNIGHT, tzinfo=_almaty())
            self._deadlines[day] = deadline
        return deadline

    # Convenience, so callers holding a calendar need not import the functions too.
    local_date = staticmethod(local_date)
    month_of = staticmethod(month_of)


def _parse_day(value: object) -> _dt.date:
    d = parse_date(value)
    if d is None:
        raise CalendarError(f"not a YYYY-MM-DD date: {value!r}")
    return d


def _parse_year(value: object, where: str) -> int:
    if not (isinstance(value, str) and len(value) == 4 and value.isascii() and value.isdigit()):
        raise CalendarError(f"{where}: {value!r} is not a year (YYYY)")
    return int(value)


_default: BusinessCalendar | None = None
_default_lock = threading.Lock()


def default_calendar() -> BusinessCalendar:
    """The process's calendar: the one load_calendar() installed, else the shipped one (built once)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = BusinessCalendar.load()
    return _default


def load_calendar(path: str | os.PathLike[str] | None = None) -> BusinessCalendar:
    """The explicit start-up check: current tz data, then the calendar file (`path`, e.g. the
    operator's ESEP_CALENDAR_FILE; default the shipped one), validated and installed as the
    process's default_calendar(). Raises RuntimeError (tz data) or CalendarError (the file)."""
    global _default
    check_tzdata()
    where = "the shipped calendar (rules/data/kz-non-working-days.json)" if path is None else f"calendar file {path}"
    try:
        calendar = BusinessCalendar.load(path)
    except OSError as exc:
        raise CalendarError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise CalendarError(f"{where}: not JSON ({exc})") from None
    except ValueError as exc:
        raise CalendarError(f"{where}: {exc} (format: rules/data/README.md)") from None
    gaps = calendar.statutory_gaps()
    if gaps:
        log.warning("%s does not list these statutory holidays on weekdays as days off: %s",
                    where, ", ".join(d.isoformat() for d in gaps))
    if calendar.provisional_years:
        log.warning("%s: %s provisional (statutory holidays only; transfers of days off not yet published): "
                    "load the published transfers when they are out", where,
                    ", ".join(map(str, calendar.provisional_years)))
    log.info("business calendar from %s: years %s", where, ", ".join(map(str, calendar.years)))
    with _default_lock:
        _default = calendar
    return calendar
