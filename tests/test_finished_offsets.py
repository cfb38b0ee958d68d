"""FinishedOffsets (streams/finished_offsets.py): exact membership whatever the order offsets come
in, ranges merged, bounded (forgetting the oldest only makes the outbox keep more)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.finished_offsets import FinishedOffsets

T = "fund.payment-transfers"


def test_in_order_batches_make_one_range():
    f = FinishedOffsets()
    for start in range(0, 100, 10):
        f.add(T, 0, range(start, start + 10))
    assert f.ranges[(T, 0)] == [[0, 100]]
    assert (T, 0, 99) in f and (T, 0, 100) not in f and (T, 1, 5) not in f and ("other", 0, 5) not in f


def test_out_of_order_leaves_the_hole_until_it_is_filled():
    f = FinishedOffsets()
    f.add(T, 0, [70, 71, 72])
    f.add(T, 0, [0, 1])
    assert (T, 0, 52) not in f and (T, 0, 71) in f and (T, 0, 1) in f
    f.add(T, 0, range(2, 70))
    assert f.ranges[(T, 0)] == [[0, 73]]


def test_the_oldest_ranges_go_first_past_the_bound():
    f = FinishedOffsets(max_ranges=3)
    for o in (0, 10, 20, 30):
        f.add(T, 0, [o])
    assert (T, 0, 0) not in f and all((T, 0, o) in f for o in (10, 20, 30))


@given(st.lists(st.lists(st.integers(0, 300), max_size=20), max_size=30))
def test_membership_is_exact(batches):
    f = FinishedOffsets()
    seen: set[int] = set()
    for batch in batches:
        f.add(T, 3, batch)
        seen.update(batch)
    assert {o for o in range(302) if (T, 3, o) in f} == seen
    ranges = f.ranges.get((T, 3), [])
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))  # sorted, disjoint, not adjacent
