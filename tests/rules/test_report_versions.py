"""The version schedule around month ends and holidays, with an injected clock."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from rules.calendar import ALMATY, BusinessCalendar
from rules.report import MonthState, due, final_due, lateness, observe, pending, preliminary_due, published
from rules.report.versions import next_midnight


@pytest.fixture
def cal():
    return BusinessCalendar.load()


def at(y, m, d, hh=0, mm=0, ss=0):
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=ALMATY)


def test_preliminary_when_the_month_ends_in_almaty():
    assert preliminary_due("2026-01") == at(2026, 2, 1)
    assert preliminary_due("2025-12") == at(2026, 1, 1)
    # The night of the switch to UTC+5: 24:00 of 2024-02-29 came at 19:00Z.
    assert preliminary_due("2024-02") == dt.datetime(2024, 2, 29, 19, 0, tzinfo=dt.timezone.utc)


def test_january_2026_final_after_five_business_days(cal):
    # January ends on a Saturday; Mon 2 .. Fri 6 February are the five business days.
    assert final_due("2026-01", cal) == at(2026, 2, 7)


def test_december_2025_final_skips_the_new_year_holidays(cal):
    # 1, 2 and 7 January are days off, 3-4 a weekend: 5, 6, 8, 9, 12 January.
    assert final_due("2025-12", cal) == at(2026, 1, 13)


def test_final_grace_is_a_setting(cal):
    assert final_due("2026-01", cal, grace_business_days=1) == at(2026, 2, 3)
    assert final_due("2026-01", cal, grace_business_days=0) == at(2026, 2, 1)
    # February 2026 ends on a Saturday; Monday 9 March is a day off (8 March moved): 2-6, 10, 11 March,
    # so 24:00 at the end of the 11th.
    assert final_due("2026-02", cal, grace_business_days=7) == at(2026, 3, 12)


def test_nothing_before_the_month_ends_then_preliminary_then_final(cal):
    s = MonthState("2026-01")
    assert due(s, at(2026, 1, 31, 23, 59, 59), cal) is None
    d = due(s, at(2026, 2, 1), cal)
    assert (d.version, d.revision, d.due_at) == ("preliminary", 0, at(2026, 2, 1))
    s = published(s, "preliminary", 0, {"contributions/lines_posted": 5})
    # Figures changing before the final publish nothing extra.
    s = observe(s, {"contributions/lines_posted": 6}, at(2026, 2, 3))
    assert due(s, at(2026, 2, 6, 23, 59, 59), cal) is None
    d = due(s, at(2026, 2, 7), cal)
    assert (d.version, d.revision) == ("final", 0)
    s = published(s, "final", 0, {"contributions/lines_posted": 6})
    assert pending(s, cal) is None
    assert due(s, at(2026, 6, 1), cal) is None


def test_a_month_first_counted_after_its_final_time_gets_final_at_once(cal):
    s = MonthState("2025-12")
    d = due(s, at(2026, 1, 13, 0, 0, 1), cal)
    assert (d.version, d.revision, d.due_at) == ("final", 0, at(2026, 1, 13))
    # Between the month's end and its final time, a month first counted publishes a preliminary.
    d = due(s, at(2026, 1, 12, 23, 0), cal)
    assert d.version == "preliminary"


def test_late_entries_after_final_publish_one_revision_at_the_next_midnight(cal):
    s = published(published(MonthState("2026-01"), "preliminary", 0, {"a": 1}), "final", 0, {"a": 1})
    s = observe(s, {"a": 1}, at(2026, 2, 10, 9))
    assert pending(s, cal) is None  # nothing changed
    s = observe(s, {"a": 2}, at(2026, 2, 10, 9))
    s = observe(s, {"a": 3}, at(2026, 2, 10, 17))  # same day: still one revision
    assert due(s, at(2026, 2, 10, 23, 59), cal) is None
    d = due(s, at(2026, 2, 11), cal)
    assert (d.version, d.revision, d.due_at) == ("revised", 1, at(2026, 2, 11))
    s = published(s, "revised", 1, {"a": 3})
    s = observe(s, {"a": 4}, at(2026, 3, 2, 0, 0, 0))
    d = due(s, at(2026, 3, 3), cal)
    assert (d.version, d.revision) == ("revised", 2)


def test_next_midnight_is_strictly_after():
    assert next_midnight(at(2026, 2, 10, 0, 0)) == at(2026, 2, 11)
    assert next_midnight(at(2026, 2, 10, 23, 59, 59)) == at(2026, 2, 11)
    # 20:00Z on the 10th is already the 11th in Almaty.
    assert next_midnight(dt.datetime(2026, 2, 10, 20, 0, tzinfo=dt.timezone.utc)) == at(2026, 2, 12)


def test_lateness_is_the_breach_gauge(cal):
    s = published(MonthState("2026-01"), "preliminary", 0, {})
    assert lateness(s, at(2026, 2, 6, 12), cal) == dt.timedelta(0)
    assert lateness(s, at(2026, 2, 7, 1, 30), cal) == dt.timedelta(hours=1, minutes=30)


def test_publications_must_follow_the_order(cal):
    s = MonthState("2026-01")
    with pytest.raises(ValueError):
        published(s, "revised", 1, {})
    s = published(s, "final", 0, {})
    with pytest.raises(ValueError):
        published(s, "preliminary", 0, {})
    with pytest.raises(ValueError):
        published(s, "revised", 2, {})

months = st.builds(lambda y, m: f"{y}-{m:02d}", st.integers(2024, 2026), st.integers(1, 12))


@settings(max_examples=200, deadline=None)
@given(months, st.integers(0, 10))
def test_final_follows_exactly_n_business_days(month, n):
    cal = BusinessCalendar.load()
    end, final = preliminary_due(month), final_due(month, cal, n)
    assert final.time() == dt.time(0, 0) and final.tzinfo is ALMATY
    days = [end.date() + dt.timedelta(days=i) for i in range((final.date() - end.date()).days)]
    assert sum(cal.is_business_day(d) for d in days) == n
    if n:
        assert cal.is_business_day(days[-1])  # due at the end of the Nth business day, not later


@settings(max_examples=200, deadline=None)
@given(months, st.integers(0, 60 * 24 * 40))
def test_a_month_never_publishes_before_it_ends_and_final_is_never_early(month, minutes):
    cal = BusinessCalendar.load()
    now = preliminary_due(month) + dt.timedelta(minutes=minutes - 60 * 24 * 5)
    d = due(MonthState(month), now, cal)
    if now < preliminary_due(month):
        assert d is None
    else:
        assert d.version == ("final" if now >= final_due(month, cal) else "preliminary")
        assert d.due_at <= now
