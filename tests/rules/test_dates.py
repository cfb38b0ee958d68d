import datetime as dt

import pytest
from hypothesis import given, strategies as st

from rules.dates import format_period, parse_date, parse_period


@pytest.mark.parametrize("raw, expected", [
    ("2024-02-29", dt.date(2024, 2, 29)),
    ("1987-03-14", dt.date(1987, 3, 14)),
    ("0001-01-01", dt.date(1, 1, 1)),
    ("9999-12-31", dt.date(9999, 12, 31)),
])
def test_parse_date_valid(raw, expected):
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", [
    "2025-02-29", "2024-02-30", "2024-13-01", "2024-00-10", "2024-01-00", "0000-01-01",
    "2024-2-29", "24-02-29", "20240229", "2024-W09-4", "2024-060", "2024-02-29T00:00",
    " 2024-02-29", "2024-02-29 ", "2024/02/29", "２０２４-02-29", "٢٠٢٤-02-29", "2024-02-2٩",
    "+024-02-29", "2024-+2-29",
    dt.date(2024, 2, 29), 20240229, None, b"2024-02-29",
])
def test_parse_date_rejects(raw):
    assert parse_date(raw) is None


@given(st.dates())
def test_parse_date_round_trip(d):
    assert parse_date(d.isoformat()) == d


@pytest.mark.parametrize("raw, expected", [
    ("2025-01", (2025, 1)), ("2025-12", (2025, 12)), ("1000-01", (1000, 1)), ("9999-12", (9999, 12)),
])
def test_parse_period_valid(raw, expected):
    assert parse_period(raw) == expected


@pytest.mark.parametrize("raw", [
    "2025-13", "2025-00", "0999-12", "0000-01", "2025-1", "202501", "2025-01-01", "2025/01",
    "25-01", " 2025-01", "2025-٠١", "2025-+1", "+025-01", 202501, (2025, 1), None,
])
def test_parse_period_rejects(raw):
    assert parse_period(raw) is None


def test_format_period():
    assert format_period((2025, 3)) == "2025-03"
    assert format_period((1000, 12)) == "1000-12"


@pytest.mark.parametrize("bad", [(2025, 13), (2025, 0), (999, 1), (10000, 1)])
def test_format_period_rejects(bad):
    with pytest.raises(ValueError):
        format_period(bad)


@given(st.integers(1000, 9999), st.integers(1, 12))
def test_period_round_trip(year, month):
    assert parse_period(format_period((year, month))) == (year, month)
