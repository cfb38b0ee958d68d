"""Fuzzing the posting path in process (issue 9): each generated or mutated record (tests/fuzzing.py)
ends as exactly one dead letter, one decided order with conserved amounts, or one re-keyed copy
decided once; the processor never raises."""
from __future__ import annotations

import copy
import itertools
import random
import tempfile
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzzing import KINDS, Fuzzer, FuzzRecord, _dumps, base_order, fuzz_record, judge, load_registry


# ---- the tests -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    store = load_registry(tmp_path_factory.mktemp("fuzz") / "registry")
    yield store
    store.close()


@pytest.fixture(scope="module")
def fuzzer(registry, tmp_path_factory):
    fuzzer = Fuzzer(registry, tmp_path_factory.mktemp("fuzz-decisions"))
    yield fuzzer
    fuzzer.close()
    print(f"\nfuzz (in process): {dict(sorted(fuzzer.stats.items()))}")


# Not drawn: a shrinking replay gets new ids, never a repeat of its first run; fixed width, so that the
# records (and so the draws that depend on their length) are the same on a replay.
IDS = itertools.count()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_fuzzed_record_ends_once(fuzzer, data):
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    kinds = data.draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6), label="kinds")
    fuzzer.feed([fuzz_record(rng, f"FZ-{next(IDS):09d}-{rng.getrandbits(32):08x}", kind) for kind in kinds])


@pytest.mark.parametrize("kind", sorted(set(KINDS)))
def test_every_kind_ends_as_the_contract_says(fuzzer, kind):
    # Each kind on its own, seeded, so that a kind the property test happens to draw rarely is still run.
    rng = random.Random(f"fuzz:{kind}")
    fuzzer.feed([fuzz_record(rng, f"FZK-{i}-{kind}", kind) for i in range(40)])


def test_the_poison_line_number_is_one_schema_dead_letter_and_the_batch_goes_on(registry):
    good = base_order(random.Random(1), "FZ-GOOD", lines=3)
    poison = copy.deepcopy(good)
    poison["notification_id"] = "FZ-POISON"
    poison["lines"][1]["line_no"] = 10**30
    records = [FuzzRecord("valid", b"FZ-GOOD", _dumps(good)), FuzzRecord("huge_number", b"FZ-POISON", _dumps(poison))]
    with tempfile.TemporaryDirectory(prefix="esep-fuzz-") as tmp:
        fuzzer = Fuzzer(registry, Path(tmp))
        try:
            fuzzer.feed(records)
            letters = [orjson.loads(o.value) for o in fuzzer.sink.sent if o.topic == fuzzer.topics.dead_letters]
        finally:
            fuzzer.close()
    assert fuzzer.stats["decided"] == 1 and fuzzer.stats["dead_letters"] == 1
    assert [(d["error_kind"], d["error"]) for d in letters] == [
        ("schema", "lines.1.line_no: Input should be less than or equal to 100000")]


def test_the_generator_makes_what_each_kind_promises():
    # The checks above trust the kinds' promises (EXPECT); judge() asserts them for each record.
    rng = random.Random("fuzz:promises")
    seen = Counter(judge(fuzz_record(rng, f"P-{i}"))[0] for i in range(600))
    assert seen["dead_letter"] and seen["decided"] and seen["rerouted"]
