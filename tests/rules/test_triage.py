"""Telling new orders, redeliveries and repeats apart (pure)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.triage import NEW, REDELIVERED, REPEAT, triage


def test_first_record_is_new_the_same_position_is_a_redelivery_another_a_repeat():
    known = {"A": (0, 5)}
    arrivals = [("A", (0, 5)), ("A", (0, 9)), ("B", (1, 3)), ("B", (1, 4)), ("C", (2, 0))]
    assert triage(arrivals, known) == [REDELIVERED, REPEAT, NEW, REPEAT, NEW]


def test_an_empty_batch_has_no_kinds():
    assert triage([], {"A": (0, 1)}) == []


ids = st.sampled_from(["A", "B", "C", "D"])
positions = st.tuples(st.integers(0, 2), st.integers(0, 20))


@settings(max_examples=300, deadline=None)
@given(arrivals=st.lists(st.tuples(ids, positions), max_size=20),
       known=st.dictionaries(ids, positions, max_size=4))
def test_each_unknown_id_is_new_exactly_once_and_known_ids_never(arrivals, known):
    kinds = triage(arrivals, known)
    assert len(kinds) == len(arrivals)
    new_ids = [nid for (nid, _), kind in zip(arrivals, kinds) if kind == NEW]
    assert sorted(new_ids) == sorted({nid for nid, _ in arrivals if nid not in known})
    for (nid, position), kind in zip(arrivals, kinds):
        if kind == REDELIVERED:
            assert known[nid] == position
        if nid in known and known[nid] != position:
            assert kind == REPEAT
