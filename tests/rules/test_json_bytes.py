"""rules.json_bytes: the same text as orjson, in an allocation the size of the text."""
from __future__ import annotations

import tracemalloc

import orjson
from hypothesis import given
from hypothesis import strategies as st

from rules import json_bytes

ENTRY = {"entry_id": "N-2026-000123:7", "iin": "870314312348", "amount": "4250.00", "period": "2026-10",
         "knp": "012", "posted_at": "2026-10-01T10:00:00+05:00", "payer_bin": "123456789012"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_same_text_as_orjson(value):
    assert json_bytes.dumps(value) == orjson.dumps(value)
    assert json_bytes.dumps(value, option=orjson.OPT_SORT_KEYS) == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _bytes_per_value(make) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(2000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == 2000
    return held / len(kept)


def test_a_kept_value_costs_about_its_length():
    size = len(orjson.dumps(ENTRY))
    per_value = _bytes_per_value(lambda: json_bytes.dumps(ENTRY))
    # The text, the bytes object's header (33 bytes) and the list's pointer; orjson's own buffer
    # (4 KiB from 3.12 on) would be more than ten times that.
    assert per_value < size + 100, (per_value, size)
