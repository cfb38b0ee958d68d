"""The registry replica's load loop (tables/registry.py), driven by a stand-in consumer: what it
reports before and after ready, and what it counts."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiokafka import TopicPartition

from tables.registry import RegistryReplica, RegistryStore, decode_person, encode_person
from models.registry import RegistryPerson

TOPIC = "registry.persons"


def person(iin: str, surname: str = "Ахметов") -> bytes:
    return json.dumps({"iin": iin, "surname": surname, "name": "Ерлан", "birth_date": "1987-03-14", "sex": "M",
                       "citizenship": "KZ", "updated_at": "2024-03-01T09:00:00+05:00"}).encode()


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    offset: int


class StandInConsumer:
    """Hands out the given batches one getmany() at a time, then nothing; `seek` goes back to the
    batches from an offset (one partition)."""

    def __init__(self, batches: list[dict[TopicPartition, list[Rec]]]):
        self.all = list(batches)
        self.batches = list(batches)
        self.drained = asyncio.Event()
        self.seeks: list[int] = []

    def seek(self, tp, offset: int) -> None:
        self.seeks.append(offset)
        self.batches = [b for b in self.all if min(r.offset for r in b[tp]) >= offset]

    async def position(self, tp):
        return 0

    async def getmany(self, timeout_ms: int, max_records: int):
        if self.batches:
            return self.batches.pop(0)
        self.drained.set()
        await asyncio.sleep(0.01)
        return {}


IINS = ["870314312348", "900101300017", "851212400019", "030405500014"]


def run_replica(tmp_path, batches, targets, name="registry", pool_judge=None, **hooks):
    store = RegistryStore(tmp_path / name)
    replica = RegistryReplica(store, "127.0.0.1:9", TOPIC, **hooks)
    if replica.load_processes:
        replica.pool_min_records = 1
    if pool_judge is not None:
        replica.pool_judge = pool_judge
    consumer = StandInConsumer(batches)
    replica.consumer = consumer
    tp = TopicPartition(TOPIC, 0)

    async def go():
        task = asyncio.ensure_future(replica._follow(consumer, [tp], targets, 0.0))
        await asyncio.wait_for(consumer.drained.wait(), 60)  # functional bound: the stand-in never stalls
        await asyncio.wait_for(replica.ready.wait(), 60)  # loading processes may still be judging
        while consumer.batches:  # a seek handed batches out again
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the getmany after the last batch: it was applied
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(go())
    return replica, store


def test_with_on_caught_up_the_initial_load_is_reported_once_and_later_changes_each_time(tmp_path):
    tp = TopicPartition(TOPIC, 0)
    heard: list[set[str]] = []
    events: list[str] = []
    batches = [
        {tp: [Rec(IINS[0].encode(), person(IINS[0]), 0), Rec(IINS[1].encode(), person(IINS[1]), 1)]},
        {tp: [Rec(IINS[2].encode(), person(IINS[2]), 2)]},  # reaches the target: ready
        {tp: [Rec(IINS[3].encode(), person(IINS[3]), 3)]},  # after ready: a change like any other
    ]
    replica, store = run_replica(
        tmp_path, batches, {0: 3},
        on_change=lambda iins: (heard.append(set(iins)), events.append("change")),
        on_caught_up=lambda: events.append("caught up"))
    try:
        assert replica.ready.is_set()
        assert events == ["caught up", "change"]
        assert heard == [{IINS[3]}]
        assert set(store.get_many(IINS)) == set(IINS) and all(store.get_many(IINS).values())
    finally:
        store.close()


def test_without_on_caught_up_every_batch_is_reported(tmp_path):
    tp = TopicPartition(TOPIC, 0)
    heard: list[set[str]] = []
    batches = [{tp: [Rec(IINS[0].encode(), person(IINS[0]), 0)]}, {tp: [Rec(IINS[1].encode(), person(IINS[1]), 1)]}]
    replica, store = run_replica(tmp_path, batches, {0: 2}, on_change=lambda iins: heard.append(set(iins)))
    store.close()
    assert heard == [{IINS[0]}, {IINS[1]}]


def test_counts_are_kept_per_record_even_when_a_batch_repeats_an_iin(tmp_path):
    tp = TopicPartition(TOPIC, 0)
    batches = [{tp: [
        Rec(IINS[0].encode(), person(IINS[0]), 0),
        Rec(IINS[0].encode(), person(IINS[0], "Омаров"), 1),  # a later version in the same batch wins
        Rec(IINS[1].encode(), None, 2),                          # a deletion
        Rec(IINS[1].encode(), None, 3),
        Rec(b"nope", b"{not json", 4),                           # rejected, changes nothing
    ]}]
    replica, store = run_replica(tmp_path, batches, {0: 5})
    try:
        s = replica.stats
        assert (s.records, s.deletions, s.rejected) == (4, 2, 1)
        assert store.get_many([IINS[0]])[IINS[0]].surname == "Омаров"
        assert store.offsets([0]) == {0: 5}
    finally:
        store.close()


def test_dates_are_stored_as_before():
    # orjson writes the dates now; the matching fields' bytes must not change (stores on disk keep
    # them); format 2 appends the recipients' record fields after them (tests/test_registry_format.py).
    p = RegistryPerson.model_validate_json(person(IINS[0]))
    assert encode_person(p).startswith('["Ахметов","Ерлан",null,"1987-03-14",null,'.encode())
    assert decode_person(encode_person(p)).birth_date == "1987-03-14"


def test_the_gc_runs_less_often_only_until_ready(tmp_path):
    import gc

    from tables.registry import LOAD_GC_THRESHOLD

    tp = TopicPartition(TOPIC, 0)
    before = gc.get_threshold()
    seen = []
    batches = [{tp: [Rec(IINS[i].encode(), person(IINS[i]), i)]} for i in range(3)]
    replica, store = run_replica(tmp_path, batches, {0: 2}, on_change=lambda iins: seen.append(gc.get_threshold()[0]))
    store.close()
    assert seen == [LOAD_GC_THRESHOLD, LOAD_GC_THRESHOLD, before[0]]  # two batches before ready, one after
    assert gc.get_threshold() == before


def test_the_scale_probe_generates_valid_distinct_persons():
    from rules.iin import is_valid_iin
    from tables.registry import judge_record
    from tools.scale_probe import BIRTH_DAYS, person

    # Spans a wrap of the birth-day cycle, where the sex and then the serial change.
    made = [r for r in (person(i) for i in range(2 * BIRTH_DAYS - 500, 2 * BIRTH_DAYS + 1500)) if r is not None]
    assert len({k for k, _ in made}) == len(made) > 1900
    for key, value in made:
        iin, encoded, error = judge_record(key, value)
        assert error is None and is_valid_iin(iin) and iin.encode() == key


def _load_batches(n_batches: int = 6, per_batch: int = 40) -> list[dict]:
    """Versions of a few persons over several fetches: later versions, deletions and rejected
    records, so that applying the fetches out of order or twice would show in the store."""
    from tools.scale_probe import person as probe_person

    tp = TopicPartition(TOPIC, 0)
    made = [r for r in (probe_person(i) for i in range(per_batch)) if r is not None]
    batches, offset = [], 0
    for b in range(n_batches):
        recs = []
        for j, (key, value) in enumerate(made):
            if (j + b) % 7 == 0:
                recs.append(Rec(key, None, offset))                       # a deletion
            elif (j + b) % 11 == 0:
                recs.append(Rec(key, b'{"iin": "broken"', offset))         # rejected: the last good one stays
            else:
                doc = json.loads(value)
                doc["surname"] = f"Версия{b}"
                recs.append(Rec(key, json.dumps(doc).encode(), offset))
            offset += 1
        batches.append({tp: recs})
    return batches


def _store_state(store: RegistryStore, batches) -> tuple:
    iins = sorted({r.key.decode() for b in batches for recs in b.values() for r in recs})
    return store.get_many(iins), store.offsets([0])


def test_a_large_catch_up_judged_by_loading_processes_stores_what_one_process_stores(tmp_path):
    batches = _load_batches()
    target = {0: sum(len(recs) for b in batches for recs in b.values())}
    caught = []
    one, one_store = run_replica(tmp_path, batches, target, name="one", on_caught_up=lambda: caught.append(1))
    many, many_store = run_replica(tmp_path, batches, target, name="many", load_processes=2,
                                   on_caught_up=lambda: caught.append(2))
    try:
        assert one.ready.is_set() and many.ready.is_set()
        assert caught == [1, 2]
        state = _store_state(many_store, batches)
        assert state == _store_state(one_store, batches)
        assert any(v is None for v in state[0].values()) and any(v is not None for v in state[0].values())
        assert state[1] == target
        assert (many.stats.records, many.stats.deletions, many.stats.rejected) == \
            (one.stats.records, one.stats.deletions, one.stats.rejected)
        assert many.stats.rejected > 0 and many.stats.deletions > 0
    finally:
        one_store.close()
        many_store.close()


def _die(items):
    import os

    os._exit(3)  # a loading process killed mid-load


def test_a_loading_process_that_dies_leaves_the_load_to_the_worker_from_the_last_stored_offset(tmp_path):
    batches = _load_batches()
    target = {0: sum(len(recs) for b in batches for recs in b.values())}
    one, one_store = run_replica(tmp_path, batches, target, name="one")
    broken, broken_store = run_replica(tmp_path, batches, target, name="broken", load_processes=1,
                                       pool_judge=_die)
    try:
        assert broken.ready.is_set()
        assert broken.consumer.seeks == [0]  # nothing was stored before the pool broke
        assert _store_state(broken_store, batches) == _store_state(one_store, batches)
        assert broken.stats.rejected == one.stats.rejected
    finally:
        one_store.close()
        broken_store.close()


def test_a_loading_process_exits_when_the_worker_dies_without_stopping_it(tmp_path):
    """SIGKILL of a worker mid-load leaves no loading process behind."""
    import os
    import signal
    import subprocess
    import sys

    from tools.process import wait_gone

    script = tmp_path / "mid_load.py"
    script.write_text(
        "import os, sys, concurrent.futures, multiprocessing\n"
        "from tables.children import die_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('spawn'),\n"
        "                                                  initializer=die_with_parent, initargs=(os.getpid(),))\n"
        "    pids = [pool.submit(os.getpid).result() for _ in range(8)]\n"
        "    print(' '.join(str(p) for p in sorted(set(pids))), flush=True)\n"
        "    sys.stdin.read()\n")
    worker = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        children = [int(p) for p in worker.stdout.readline().split()]
        assert children and all(os.path.exists(f"/proc/{p}") for p in children)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        # functional bound: the kernel signals them at once
        assert [p for p in children if not wait_gone(p, 20)] == []
    finally:
        if worker.poll() is None:
            worker.kill()


def test_when_no_loading_process_can_start_the_worker_loads_alone(tmp_path, monkeypatch):
    import concurrent.futures

    class NoProcesses:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, *args, **kwargs):
            raise OSError("fork: Resource temporarily unavailable")

        def shutdown(self, *args, **kwargs):
            pass

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", NoProcesses)
    batches = _load_batches()
    target = {0: sum(len(recs) for b in batches for recs in b.values())}
    one, one_store = run_replica(tmp_path, batches, target, name="one")
    alone, alone_store = run_replica(tmp_path, batches, target, name="alone", load_processes=2)
    try:
        assert alone.ready.is_set() and alone.consumer.seeks == [0]
        assert _store_state(alone_store, batches) == _store_state(one_store, batches)
    finally:
        one_store.close()
        alone_store.close()
