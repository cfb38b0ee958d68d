"""IIN/BIN check digit (the same rule for individuals and legal entities).

Rule (domain.md): weights 1..11 over the first 11 digits, mod 11; a result of 10
means a second pass with weights 3..11,1,2; 10 again means the number is never issued.
"""

from __future__ import annotations

__all__ = ["check_digit", "is_valid_iin", "mask_iin"]

# Both weight sets sum to 66, so the ASCII offset of the 11 code units
# (48 * 66) can be removed once instead of per digit.
_ASCII_BIAS = 48 * 66


def _check_digit_ascii(b: bytes) -> int | None:
    # Unrolled on purpose: ~2x faster than sum(map(...)) on the per-line hot path.
    r = (b[0] + 2 * b[1] + 3 * b[2] + 4 * b[3] + 5 * b[4] + 6 * b[5]
         + 7 * b[6] + 8 * b[7] + 9 * b[8] + 10 * b[9] + 11 * b[10] - _ASCII_BIAS) % 11
    if r != 10:
        return r
    r = (3 * b[0] + 4 * b[1] + 5 * b[2] + 6 * b[3] + 7 * b[4] + 8 * b[5]
         + 9 * b[6] + 10 * b[7] + 11 * b[8] + b[9] + 2 * b[10] - _ASCII_BIAS) % 11
    return None if r == 10 else r


def check_digit(first11: str) -> int | None:
    """Check digit for 11 leading digits; None when the number can never be issued.

    Raises ValueError when `first11` is not exactly 11 ASCII digits: None is reserved
    for "never issued", so malformed input must not be confused with it.
    """
    if not (isinstance(first11, str) and len(first11) == 11
            and first11.isascii() and first11.isdigit()):
        raise ValueError("check_digit needs exactly 11 ASCII digits")
    return _check_digit_ascii(first11.encode("ascii"))


def is_valid_iin(value: object) -> bool:
    """True only for a str of exactly 12 ASCII digits with a matching check digit."""
    # isascii() first: str.isdigit() alone accepts e.g. Arabic-Indic or superscript digits.
    if not (isinstance(value, str) and len(value) == 12
            and value.isascii() and value.isdigit()):
        return False
    b = value.encode("ascii")
    return _check_digit_ascii(b) == b[11] - 48


def mask_iin(value: object) -> str:
    """Log-safe form of an IIN/BIN: "870314312348" -> "87******2348".

    Never reveals more than 6 characters. Anything that is not 12 characters shows at
    most 2 leading and 2 trailing characters, fewer when it is short (a short string
    would otherwise be revealed almost whole).
    """
    if value is None:
        return "<none>"
    if isinstance(value, int) and not isinstance(value, bool):
        # An IIN that lost its quotes somewhere upstream is still personal data.
        value = str(value)
    if not isinstance(value, str):
        # Do not str() arbitrary objects into logs: they may embed the IIN anywhere.
        return f"<{type(value).__name__}>"
    n = len(value)
    if n == 12:
        return value[:2] + "******" + value[8:]
    keep = min(2, n // 4)  # at least half of a short value stays hidden
    if keep == 0:
        return "*" * n
    return value[:keep] + "*" * (n - 2 * keep) + value[-keep:]
