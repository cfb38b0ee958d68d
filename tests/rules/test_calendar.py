import datetime as dt
import json
import logging
import os
import subprocess
import sys
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import rules.calendar
from rules.calendar import (
    ALMATY, BusinessCalendar, CalendarError, check_tzdata, default_calendar, load_calendar, local_date, month_of,
    resolve_almaty,
)
from streams.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules" / "data" / "kz-non-working-days.json"

UTC = dt.timezone.utc
PLUS5 = dt.timezone(dt.timedelta(hours=5))
PLUS6 = dt.timezone(dt.timedelta(hours=6))
D = dt.date


def at(y, m, d, hh=0, mm=0, ss=0, tz=ALMATY):
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=tz)


@pytest.fixture
def cal():
    # A fresh instance per test: default_calendar() is process-wide and remembers warnings.
    return BusinessCalendar.load()


# --- time zone -------------------------------------------------------------------------

def test_almaty_zone_is_current():
    check_tzdata()
    assert str(ALMATY) == "Asia/Almaty"
    assert at(2024, 3, 2, 12).utcoffset() == dt.timedelta(hours=5)


def test_pre_march_2024_offset_is_plus6():
    assert at(2024, 2, 28, 12).utcoffset() == dt.timedelta(hours=6)
    # 18:30Z is 00:30 on the 29th at +06:00 (it would still be the 28th at +05:00).
    assert local_date(dt.datetime(2024, 2, 28, 18, 30, tzinfo=UTC)) == D(2024, 2, 29)
    # Same UTC time after the switch: 23:30 local, still the same date.
    assert local_date(dt.datetime(2024, 3, 2, 18, 30, tzinfo=UTC)) == D(2024, 3, 2)


def test_switch_night_hour_that_happened_twice(cal):
    # 2024-02-29 23:00-24:00 local occurred at +06:00 and again at +05:00.
    first = dt.datetime(2024, 2, 29, 17, 30, tzinfo=UTC)
    second = dt.datetime(2024, 2, 29, 18, 30, tzinfo=UTC)
    assert local_date(first) == local_date(second) == D(2024, 2, 29)
    # Wednesday 28 Feb receipt: deadline is the end of Thursday 29 Feb, i.e. local midnight,
    # which came at 19:00Z (+05:00), not 18:00Z.
    deadline = cal.receipt_deadline(at(2024, 2, 28, 12))
    assert deadline == dt.datetime(2024, 2, 29, 19, 0, tzinfo=UTC)
    assert deadline.utcoffset() == dt.timedelta(hours=5)


def test_deadline_before_switch_carries_plus6(cal):
    deadline = cal.receipt_deadline(at(2024, 2, 26, 12))  # Monday -> end of Tuesday
    assert deadline == dt.datetime(2024, 2, 28, 0, 0, tzinfo=PLUS6)
    assert deadline.utcoffset() == dt.timedelta(hours=6)


def test_check_tzdata_rejects_stale_zone():
    with pytest.raises(RuntimeError, match=r"tzdata>=2024\.1"):
        check_tzdata(PLUS6)


def test_resolve_prefers_tzdata_package_over_stale_host():
    zone = resolve_almaty(host=lambda: PLUS6)
    assert zone is not PLUS6
    check_tzdata(zone)
    assert dt.datetime(2024, 2, 28, 12, tzinfo=zone).utcoffset() == dt.timedelta(hours=6)


def test_resolve_uses_package_when_host_has_no_database():
    def missing():
        raise zoneinfo.ZoneInfoNotFoundError("Asia/Almaty")
    assert resolve_almaty(host=missing, package=lambda: PLUS5) is PLUS5
    check_tzdata(resolve_almaty(host=missing))  # the tzdata package installed with esep is current


def test_resolve_keeps_current_host_zone():
    def broken():
        raise ModuleNotFoundError("tzdata")
    assert resolve_almaty(host=lambda: PLUS5, package=broken) is PLUS5


def test_resolve_with_both_stale_fails_the_check():
    zone = resolve_almaty(host=lambda: PLUS6, package=lambda: PLUS6)
    with pytest.raises(RuntimeError, match="outdated time zone data"):
        check_tzdata(zone)


def test_resolve_with_no_data_at_all_fails_loudly():
    def missing():
        raise zoneinfo.ZoneInfoNotFoundError("Asia/Almaty")
    with pytest.raises(RuntimeError, match=r"tzdata>=2024\.1"):
        resolve_almaty(host=missing, package=missing)


# --- local date / month ----------------------------------------------------------------

def test_month_of_uses_almaty():
    assert month_of(dt.datetime(2026, 11, 30, 19, 0, tzinfo=UTC)) == (2026, 12)
    assert month_of(dt.datetime(2026, 11, 30, 18, 59, 59, tzinfo=UTC)) == (2026, 11)
    assert month_of(dt.datetime(2025, 12, 31, 19, 0, tzinfo=UTC)) == (2026, 1)


@pytest.mark.parametrize("fn", [
    local_date, month_of, lambda ts: BusinessCalendar.load().receipt_deadline(ts),
])
def test_naive_datetime_rejected(fn):
    with pytest.raises(ValueError, match="naive"):
        fn(dt.datetime(2026, 3, 20, 12, 0))


# --- data ------------------------------------------------------------------------------

def test_shipped_data(cal):
    assert default_calendar() is default_calendar()
    assert not cal.is_business_day(D(2026, 3, 23))
    assert not cal.is_business_day(D(2024, 5, 8))  # the day off moved from Saturday 4 May
    assert cal.is_business_day(D(2024, 5, 4))  # ...which became a working Saturday
    assert cal.is_business_day(D(2025, 1, 5))  # working Sunday (day off moved to Fri 3 Jan)
    assert not cal.is_business_day(D(2025, 1, 3))
    assert not cal.is_business_day(D(2026, 11, 21))  # plain Saturday
    assert cal.is_business_day(D(2026, 11, 20))  # plain Friday


def base(**over):
    data = {"timezone": "Asia/Almaty", "non_working_days": {"2026": ["2026-03-23"]},
            "extra_working_days": ["2026-03-28"]}
    data.update(over)
    return data


@pytest.mark.parametrize("data, message", [
    (base(non_working_days={"2026": ["2025-03-23"]}), "other years"),
    (base(non_working_days={"2026": ["2026-02-30"]}), "not a YYYY-MM-DD"),
    (base(extra_working_days=["2026-03-27"]), "Saturdays or Sundays"),
    (base(non_working_days={"2026": ["2026-03-28"]}), "both"),
    (base(timezone="Asia/Aqtobe"), "Asia/Aqtobe"),
    (base(non_working_days={"2026": []}), "non-empty list"),
    (base(non_working_days={"26": ["2026-03-23"]}), "not a year"),
    (base(non_working_days=["2026-03-23"]), "object of years"),
    ({"timezone": "Asia/Almaty", "non_working_day": {"2026": ["2026-03-23"]}}, "object of years"),
    (base(extra_working_days="2026-03-28"), "list of dates"),
    (base(provisional_years=["2027"]), "provisional years without"),
    (base(provisional_years="2026"), "list of years"),
    (["2026-03-23"], "JSON object"),
])
def test_bad_data_rejected(data, message):
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_dict(data)


def test_load_from_path(tmp_path):
    p = tmp_path / "days.json"
    p.write_text(json.dumps(base()), encoding="utf-8")
    c = BusinessCalendar.load(p)
    assert not c.is_business_day(D(2026, 3, 23))
    assert c.is_business_day(D(2026, 3, 28))  # Saturday declared working
    assert c.is_business_day(D(2026, 3, 24))  # not in this file's data: a plain Tuesday


# --- deadlines -------------------------------------------------------------------------

def test_friday_before_holiday_block(cal):
    # Fri 20 Mar 2026, then weekend and 23-25 March off: end of Thursday 26 March.
    assert cal.next_business_day_after(D(2026, 3, 20)) == D(2026, 3, 26)
    assert cal.receipt_deadline(at(2026, 3, 20, 9, 15)) == at(2026, 3, 27)


def test_working_sunday(cal):
    # 2025-01-05 is the data's extra working day (a Sunday).
    assert cal.next_business_day_after(D(2025, 1, 4)) == D(2025, 1, 5)
    assert cal.receipt_deadline(at(2025, 1, 4, 10)) == at(2025, 1, 6)
    # New Year: Tue 31 Dec -> 1-3 Jan off, Sat 4 off, Sun 5 working.
    assert cal.receipt_deadline(at(2024, 12, 31, 10)) == at(2025, 1, 6)


def test_working_saturday_2024(cal):
    # Fri 3 May 2024 -> Sat 4 May is a working day.
    assert cal.receipt_deadline(at(2024, 5, 3, 10)) == at(2024, 5, 5)


def test_receipt_just_before_midnight(cal):
    # Thursday 23:59:59 local -> end of Friday 27 Nov.
    deadline = cal.receipt_deadline(dt.datetime(2026, 11, 26, 23, 59, 59, tzinfo=PLUS5))
    assert deadline == at(2026, 11, 28)


def test_receipt_at_midnight_given_in_utc(cal):
    # 19:00Z on Thursday is Friday 00:00 in Almaty: end of Monday 30 Nov.
    received = dt.datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    assert local_date(received) == D(2026, 11, 27)
    assert cal.receipt_deadline(received) == at(2026, 12, 1)


@pytest.mark.parametrize("day", [20, 21, 22])  # Friday, Saturday, Sunday before a plain weekend
def test_weekend_receipts_end_monday(cal, day):
    deadline = cal.receipt_deadline(at(2026, 11, day, 14))
    assert deadline == at(2026, 11, 24)
    assert deadline.isoformat() == "2026-11-24T00:00:00+05:00"
    assert deadline.tzinfo is ALMATY


def test_deadline_is_local_midnight_and_aware(cal):
    deadline = cal.receipt_deadline(dt.datetime(2026, 6, 10, 3, 0, tzinfo=UTC))
    assert (deadline.hour, deadline.minute, deadline.second) == (0, 0, 0)
    assert deadline.astimezone(UTC) == dt.datetime(2026, 6, 11, 19, 0, tzinfo=UTC)


# --- years missing from the data ---------------------------------------------------------

def test_missing_year_weekends_only_one_warning(cal, caplog):
    caplog.set_level(logging.WARNING, logger="esep.calendar")
    assert cal.is_business_day(D(2028, 3, 8))  # a Wednesday holiday; no data for 2028
    assert not cal.is_business_day(D(2028, 3, 11))  # Saturday
    assert cal.is_business_day(D(2028, 3, 13))
    # Tue 7 Mar 2028 -> Wed 8 Mar counts as business: end of Wednesday.
    assert cal.receipt_deadline(at(2028, 3, 7, 12)) == at(2028, 3, 9)
    warnings = [r for r in caplog.records if r.name == "esep.calendar"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING and "2028" in warnings[0].getMessage()

    caplog.clear()
    assert cal.is_business_day(D(2023, 3, 8))  # another absent year: its own warning
    assert cal.is_business_day(D(2023, 3, 9))
    assert ["2023" in r.getMessage() for r in caplog.records if r.name == "esep.calendar"] == [True]


def test_known_year_does_not_warn(cal, caplog):
    caplog.set_level(logging.WARNING, logger="esep.calendar")
    for n in range(366):
        cal.is_business_day(D(2024, 1, 1) + dt.timedelta(days=n))
    assert [r for r in caplog.records if r.name == "esep.calendar"] == []


# --- properties --------------------------------------------------------------------------

covered_days = st.dates(min_value=D(2024, 1, 1), max_value=D(2027, 12, 30))


@given(covered_days)
def test_next_business_day_is_the_first_one(d):
    c = default_calendar()
    nxt = c.next_business_day_after(d)
    assert nxt > d and c.is_business_day(nxt)
    gap = (nxt - d).days
    assert not any(c.is_business_day(d + dt.timedelta(days=k)) for k in range(1, gap))


@given(st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 12, 30),
                    timezones=st.sampled_from([UTC, PLUS5, PLUS6, ALMATY, dt.timezone(dt.timedelta(hours=-7))])))
def test_deadline_bounds(received):
    c = default_calendar()
    deadline = c.receipt_deadline(received)
    local = deadline.astimezone(ALMATY)
    assert (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    # The whole next calendar day always lies between receipt and deadline...
    assert deadline - received > dt.timedelta(hours=24)
    # ...and no run of days off in 2024-2027 is longer than a week.
    assert deadline - received <= dt.timedelta(days=8)
    assert c.is_business_day(local.date() - dt.timedelta(days=1))


# --- 2027 (provisional: statutory holidays, transfers not yet published) ----------------------

# The Law on holidays: days off whenever they fall on a weekday. Those marked False are religious
# holidays that are not moved when they fall on a weekend (7 January; Kurban Ait is expected on
# Sunday 16 May 2027 and adds nothing).
STATUTORY_2027 = [(D(2027, 1, 1), True), (D(2027, 1, 2), True), (D(2027, 1, 7), False), (D(2027, 3, 8), True),
                  (D(2027, 3, 21), True), (D(2027, 3, 22), True), (D(2027, 3, 23), True), (D(2027, 5, 1), True),
                  (D(2027, 5, 7), True), (D(2027, 5, 9), True), (D(2027, 7, 6), True), (D(2027, 8, 30), True),
                  (D(2027, 10, 25), True), (D(2027, 12, 16), True)]


def test_2027_is_the_statutory_holidays_with_weekend_ones_moved_to_the_next_working_day():
    holidays = {d for d, _ in STATUTORY_2027}
    off = set()
    for day, moves in STATUTORY_2027:
        if day.weekday() < 5:
            off.add(day)
        elif moves:
            nxt = day + dt.timedelta(days=1)
            while nxt.weekday() >= 5 or nxt in holidays or nxt in off:
                nxt += dt.timedelta(days=1)
            off.add(nxt)
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert {D.fromisoformat(d) for d in shipped["non_working_days"]["2027"]} == off
    assert shipped["provisional_years"] == ["2027"]
    assert "not in this file" in shipped["notes"] and "2027" in shipped["notes"]


def test_2027_deadlines(cal):
    assert not cal.is_business_day(D(2027, 1, 4))  # Saturday 2 January moved to Monday
    assert not cal.is_business_day(D(2027, 3, 24))  # Sunday 21 March moved to Wednesday
    assert cal.is_business_day(D(2027, 12, 31))
    # Fri 30 Apr 2027: 1-3 May off (Saturday's holiday on Monday): end of Tuesday 4 May.
    assert cal.receipt_deadline(at(2027, 4, 30, 15)) == at(2027, 5, 5)
    assert cal.statutory_gaps() == []


@pytest.mark.parametrize("today, ahead", [
    (D(2026, 11, 1), 61),  # 2027 is provisional: the known days end with 2026
    (D(2026, 12, 1), 31),
    (D(2026, 12, 31), 1),
    (D(2027, 6, 1), -151),  # inside the provisional year
    (D(2023, 6, 1), -151),  # a year with no data at all
    (D(2024, 1, 1), 1096),
])
def test_days_known_ahead_of_the_shipped_calendar(cal, today, ahead):
    assert cal.days_known_ahead(today) == ahead


def test_days_known_ahead_counts_a_confirmed_year():
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["provisional_years"] = []
    assert BusinessCalendar.from_dict(data).days_known_ahead(D(2026, 12, 1)) == 31 + 365


# --- load_calendar: the start-up check, and ESEP_CALENDAR_FILE -------------------------------

@pytest.fixture
def restore_default():
    before = rules.calendar._default
    yield
    rules.calendar._default = before


def test_load_calendar_installs_the_operators_file(tmp_path, restore_default, caplog):
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["non_working_days"]["2027"].append("2027-12-31")  # a bridge day the decree might add
    data["provisional_years"] = []
    path = tmp_path / "calendar.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    caplog.set_level(logging.INFO, logger="esep.calendar")
    loaded = load_calendar(path)
    assert default_calendar() is loaded
    assert not default_calendar().is_business_day(D(2027, 12, 31))
    assert loaded.days_known_ahead(D(2026, 12, 1)) == 396
    assert any(str(path) in r.getMessage() for r in caplog.records)


def test_load_calendar_warns_of_a_provisional_year_and_a_missing_holiday(tmp_path, restore_default, caplog):
    caplog.set_level(logging.WARNING, logger="esep.calendar")
    load_calendar()
    assert any("2027 provisional" in r.getMessage() for r in caplog.records)
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["non_working_days"]["2026"].remove("2026-12-16")
    path = tmp_path / "calendar.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    caplog.clear()
    load_calendar(path)
    assert any("2026-12-16" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("content, message", [
    (None, "cannot be read"),
    ("{", "not JSON"),
    ('{"non_working_days": {"2027": ["2027-02-30"]}}', "not a YYYY-MM-DD date: '2027-02-30'"),
])
def test_load_calendar_names_the_file_and_the_problem(tmp_path, restore_default, content, message):
    path = tmp_path / "calendar.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    before = default_calendar()
    with pytest.raises(CalendarError, match=message) as caught:
        load_calendar(path)
    assert str(path) in str(caught.value)
    assert default_calendar() is before, "a bad file installs nothing"


def test_load_calendar_refuses_stale_tz_data(monkeypatch, restore_default):
    monkeypatch.setattr(rules.calendar, "_zone", dt.timezone(dt.timedelta(hours=6)))
    with pytest.raises(RuntimeError, match="outdated time zone data"):
        load_calendar()


def test_calendar_file_setting(tmp_path):
    assert Settings.from_env({}).calendar_file is None
    path = tmp_path / "calendar.json"
    path.write_text("{}", encoding="utf-8")
    assert Settings.from_env({"ESEP_CALENDAR_FILE": str(path)}).calendar_file == path
    with pytest.raises(SettingsError, match="ESEP_CALENDAR_FILE"):
        Settings.from_env({"ESEP_CALENDAR_FILE": str(tmp_path / "missing.json")})


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **env})


def test_a_worker_refuses_a_bad_calendar_file_at_start_with_a_clear_error(tmp_path):
    path = tmp_path / "calendar.json"
    path.write_text('{"non_working_days": {"2027": ["2027-03-06"]}, "extra_working_days": ["2027-03-08"]}',
                    encoding="utf-8")
    # No broker is reachable: the calendar is checked before anything else.
    result = _python("import sys; from streams.cli import main; sys.exit(main(['worker']))",
                     ESEP_CALENDAR_FILE=str(path), ESEP_BROKER="kafka://127.0.0.1:9", ESEP_DATA_DIR=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "configuration error: ESEP_CALENDAR_FILE" in result.stderr
    assert str(path) in result.stderr and "Saturdays or Sundays" in result.stderr


# Hide every source of Asia/Almaty (host database and the tzdata package) or make it stale.
_NO_ZONE = """
import sys, zoneinfo
sys.modules["tzdata"] = None
def missing(key): raise zoneinfo.ZoneInfoNotFoundError(key)
zoneinfo.ZoneInfo = missing
"""
_STALE_ZONE = """
import datetime, zoneinfo
zoneinfo.ZoneInfo = lambda key: datetime.timezone(datetime.timedelta(hours=6))
import sys; sys.modules["tzdata"] = None
"""


@pytest.mark.parametrize("setup, error", [(_NO_ZONE, "no time zone data"), (_STALE_ZONE, "outdated time zone data")])
def test_importing_the_calendar_never_raises_the_load_does(setup, error):
    result = _python(setup + """
import rules.calendar, rules.posting, models.notifications  # must not raise
try:
    rules.calendar.load_calendar()
except RuntimeError as exc:
    print("LOAD:", exc)
""")
    assert result.returncode == 0, result.stderr
    assert "LOAD:" in result.stdout and error in result.stdout
