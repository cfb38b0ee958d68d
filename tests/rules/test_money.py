from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from rules.money import format_tiyn, parse_amount


@pytest.mark.parametrize("raw, tiyn", [
    ("4250", 425000),
    ("4250.5", 425050),
    ("4250.50", 425050),
    ("4250.05", 425005),
    ("0", 0),
    ("0.00", 0),
    ("0.01", 1),
    ("007", 700),
    ("29750.00", 2975000),
    ("123456789012345.99", 12345678901234599),  # beyond float's exact range
])
def test_parse_valid(raw, tiyn):
    got = parse_amount(raw)
    assert got == tiyn and type(got) is int


@pytest.mark.parametrize("raw", [
    "-1", "+1", "1.", ".5", "1.234", "1e3", "1E3", "", " 1", "1 ", "1_000", "1,5",
    "1.5.0", "1..5", "0x10", "NaN", "inf", "٤", "４２５０", "4250.٥", "١.٥",
    "1.-5", "1.+5", "1.5 ",
    4250, 4250.0, Decimal("4250"), None, True, b"4250", ["4250"],
])
def test_parse_rejects(raw):
    assert parse_amount(raw) is None


def test_absurdly_long_amount_is_rejected_not_raised():
    assert parse_amount("9" * 5000) is None


@pytest.mark.parametrize("tiyn, text", [
    (425000, "4250.00"), (425050, "4250.50"), (5, "0.05"), (0, "0.00"),
    (-5, "-0.05"), (-425001, "-4250.01"), (12345678901234599, "123456789012345.99"),
])
def test_format(tiyn, text):
    assert format_tiyn(tiyn) == text


@pytest.mark.parametrize("bad", [1.5, "100", True, Decimal(1), None])
def test_format_needs_int(bad):
    with pytest.raises(TypeError):
        format_tiyn(bad)


@given(st.integers(min_value=0, max_value=10**20))
def test_parse_of_format_is_identity(n):
    assert parse_amount(format_tiyn(n)) == n


@given(st.from_regex(r"\A(0|[1-9][0-9]{0,17})\.[0-9]{2}\Z"))
def test_format_of_parse_is_identity_on_canonical_strings(s):
    assert format_tiyn(parse_amount(s)) == s


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=9))
def test_one_decimal_equals_two(whole, tenth):
    assert parse_amount(f"{whole}.{tenth}") == parse_amount(f"{whole}.{tenth}0") == whole * 100 + tenth * 10


@given(st.integers(min_value=1, max_value=10**12))
def test_negative_never_parses(n):
    assert parse_amount(format_tiyn(-n)) is None


@given(st.text(max_size=12))
def test_never_raises_never_float(s):
    got = parse_amount(s)
    assert got is None or (type(got) is int and got >= 0)
