"""The exact id set behind the distinct counts."""
from __future__ import annotations

from hypothesis import given, strategies as st

from rules.report import IdSet

twelve_digits = st.integers(min_value=0, max_value=10**12 - 1).map(lambda n: f"{n:012d}")
odd_ids = st.text(min_size=0, max_size=14)
ids = st.one_of(twelve_digits, odd_ids)


@given(st.lists(ids, max_size=200))
def test_behaves_as_a_set(values):
    s = IdSet()
    reference: set[str] = set()
    for v in values:
        assert s.add(v) == (v not in reference)
        reference.add(v)
    assert len(s) == len(reference)
    assert set(s) == reference
    assert all(v in s for v in reference)


@given(st.lists(ids, max_size=200))
def test_snapshot_round_trip(values):
    s = IdSet(values)
    back = IdSet.from_bytes(s.to_bytes())
    assert back == s and len(back) == len(s) and list(back) == list(s)


def test_neighbours_and_bucket_edges_are_distinct():
    s = IdSet()
    for v in ("000000000000", "000000999999", "000001000000", "999999999999", "870314312348", "870314312349"):
        assert s.add(v)
    assert len(s) == 6
    assert "870314312347" not in s and "000000000001" not in s
    assert not s.add("870314312348")


def test_twelve_digit_ids_cost_about_four_bytes():
    # 20,000 members spread over birth dates like real IINs: the arrays, not the buckets, dominate.
    s = IdSet(f"{(y * 10000 + m * 100 + d):06d}{serial:06d}"
              for y in range(60, 100) for m in range(1, 13) for d in (1, 15) for serial in range(0, 200, 10))
    s.compact()
    assert len(s) == 40 * 12 * 2 * 20
    assert s.nbytes() / len(s) < 8  # a set of ints costs ~70


def test_non_digit_ids_are_kept_apart():
    s = IdSet(["87031431234", "8703143123481", "８７０３１４３１２３４８"])
    assert len(s) == 3 and "870314312348" not in s
