"""Amounts as integer tiyn (1/100 tenge). Never float."""

from __future__ import annotations

__all__ = ["parse_amount", "format_tiyn"]


def parse_amount(value: object) -> int | None:
    """"4250" / "4250.5" / "4250.50" -> 425000 / 425050 / 425050 tiyn; anything else None.

    Accepted: ASCII digits, optionally "." and 1-2 ASCII digits. Rejected: signs,
    "1.", ".5", 3+ decimals, exponents, whitespace, underscores, non-ASCII digits,
    and every non-str (a JSON number is a schema error, not an amount).
    """
    # isascii() guards isdigit(), which alone accepts "٤" and "²"; it also rules out
    # "_" and " " that int() would tolerate.
    if not isinstance(value, str) or not value.isascii():
        return None
    whole, dot, frac = value.partition(".")
    if not whole.isdigit():
        return None
    try:
        tiyn = int(whole) * 100
    except ValueError:  # more digits than int() converts (sys.int_info limit)
        return None
    if not dot:
        return tiyn
    if not frac.isdigit():  # also rejects "1." and a second "."
        return None
    n = len(frac)
    if n == 2:
        return tiyn + int(frac)
    if n == 1:
        return tiyn + 10 * int(frac)
    return None


def format_tiyn(tiyn: int) -> str:
    """425000 -> "4250.00"; -5 -> "-0.05". Exactly two decimals."""
    if not isinstance(tiyn, int) or isinstance(tiyn, bool):
        raise TypeError(f"format_tiyn needs an int, got {type(tiyn).__name__}")
    whole, cents = divmod(-tiyn if tiyn < 0 else tiyn, 100)
    return f"{'-' if tiyn < 0 else ''}{whole}.{cents:02d}"
