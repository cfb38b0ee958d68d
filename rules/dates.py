"""Strict parsing of contract dates (YYYY-MM-DD) and periods (YYYY-MM)."""

from __future__ import annotations

import datetime as _dt

__all__ = ["parse_date", "parse_period", "format_period"]


def parse_date(value: object) -> _dt.date | None:
    """Real date in exactly "YYYY-MM-DD" (ASCII digits), else None."""
    # date.fromisoformat() alone is too lenient on 3.11+ ("20240101", "2024-W01-1"), so
    # check the exact shape first; after that it is the fastest real-date check (~2x int()+date()).
    if not (isinstance(value, str) and len(value) == 10 and value.isascii()
            and value[4] == "-" and value[7] == "-"
            and value[:4].isdigit() and value[5:7].isdigit() and value[8:].isdigit()):
        return None
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:  # 2025-02-30, month 13, year 0000
        return None


def parse_period(value: object) -> tuple[int, int] | None:
    """(year, month) from exactly "YYYY-MM", month 01..12, year 1000..9999, else None."""
    if not (isinstance(value, str) and len(value) == 7 and value.isascii()
            and value[4] == "-" and value[:4].isdigit() and value[5:].isdigit()):
        return None
    year = int(value[:4])
    month = int(value[5:])
    if year < 1000 or not 1 <= month <= 12:
        return None
    return year, month


def format_period(p: tuple[int, int]) -> str:
    """(2025, 3) -> "2025-03". Raises ValueError for what parse_period would reject."""
    year, month = p
    if not (1000 <= year <= 9999 and 1 <= month <= 12):
        raise ValueError(f"not a period: {p!r}")
    return f"{year:04d}-{month:02d}"
