"""The stores' shared memory budget (tables/budget.py): the options really reach RocksDB, read back
from the OPTIONS file RocksDB writes into every store's folder, and from the open stores."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.settings import Settings, SettingsError
from tables import budget as budget_module
from tables.budget import StoreBudget, shared_budget, use_budget
from tables.history import HistoryStore
from tables.registry import RegistryStore
from tables.rocks import open_store

MiB = 1024 * 1024


def written_options(store_dir: Path) -> dict[str, str]:
    """key=value pairs of the newest OPTIONS-* file RocksDB wrote for the store (all sections)."""
    newest = max(store_dir.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    pairs = {}
    for line in newest.read_text().splitlines():
        line = line.strip()
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            pairs[key] = value
    return pairs


@pytest.fixture(autouse=True)
def fresh_shared_budget(monkeypatch):
    # Each test sees an unset process budget; the one a test installs does not leak into the next.
    monkeypatch.setattr(budget_module, "_shared", None)


def test_store_options_are_written_by_rocksdb(tmp_path):
    store = RegistryStore(tmp_path / "registry", StoreBudget(cache_mb=48, write_buffer_mb=16))
    store.close()
    opts = written_options(tmp_path / "registry")
    assert opts["write_buffer_size"] == str(8 * MiB)  # half of the 16 MiB budget
    assert opts["max_write_buffer_number"] == "2"
    assert opts["cache_index_and_filter_blocks"] == "true"
    assert opts["pin_l0_filter_and_index_blocks_in_cache"] == "true"
    assert opts["filter_policy"] == "bloomfilter"
    assert opts["no_block_cache"] == "false"
    assert opts["compression"] == "kLZ4Compression"
    assert opts["max_open_files"] == "256"
    assert opts["keep_log_file_num"] == "2"


def test_all_stores_share_one_cache_and_one_write_buffer_budget(tmp_path):
    budget = StoreBudget(cache_mb=40, write_buffer_mb=24)
    registry = RegistryStore(tmp_path / "registry", budget)
    history = HistoryStore(tmp_path / "history", budget)
    try:
        for db in (registry.db, history.db):
            assert db.property_int_value("rocksdb.block-cache-capacity") == 40 * MiB
        registry.apply({"870314312348": b"x" * 200}, {0: 1})
        history.apply([("870314312348", b"y" * 200)], {0: 1})
        own = [db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in (registry.db, history.db)]
        # The manager counts the memtables of both stores: it is one budget, not one per store.
        assert budget.usage()["write_buffers"] >= sum(own) > max(own)
    finally:
        registry.close()
        history.close()


def test_a_store_flushes_to_disk_once_its_share_of_the_budget_is_full(tmp_path):
    # 12 MiB written under a 4 MiB budget: RocksDB's default 64 MiB memtable would keep it all in
    # memory; the budget makes the store flush it to table files on disk.
    budget = StoreBudget(cache_mb=8, write_buffer_mb=4)
    db = open_store(tmp_path / "s", budget)
    try:
        value = b"v" * 1000
        for i in range(12 * 1024):
            db[b"k%08d" % i] = value
        deadline = time.monotonic() + 30  # functional timeout for the background flush, not a speed test
        while not db.live_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.live_files(), "nothing was flushed: the write buffer budget is not applied"
        assert db.property_int_value("rocksdb.cur-size-all-mem-tables") <= 4 * MiB
    finally:
        db.close()


def test_stores_opened_without_a_budget_use_the_process_budget(tmp_path):
    installed = use_budget(StoreBudget(cache_mb=24, write_buffer_mb=8))
    assert shared_budget() is installed
    store = RegistryStore(tmp_path / "registry")
    try:
        assert store.db.property_int_value("rocksdb.block-cache-capacity") == 24 * MiB
    finally:
        store.close()
    assert written_options(tmp_path / "registry")["write_buffer_size"] == str(4 * MiB)


def test_the_default_process_budget_has_the_default_sizes():
    b = shared_budget()
    assert (b.cache_mb, b.write_buffer_mb) == (budget_module.DEFAULT_CACHE_MB, budget_module.DEFAULT_WRITE_BUFFER_MB)
    assert shared_budget() is b


@pytest.mark.parametrize("cache_mb, write_buffer_mb", [(0, 32), (64, 3)])
def test_a_budget_too_small_is_refused(cache_mb, write_buffer_mb):
    with pytest.raises(ValueError):
        StoreBudget(cache_mb=cache_mb, write_buffer_mb=write_buffer_mb)


def test_settings_defaults_match_the_budget_defaults_and_can_be_overridden():
    s = Settings.from_env({})
    assert (s.store_cache_mb, s.store_write_buffer_mb) == (
        budget_module.DEFAULT_CACHE_MB, budget_module.DEFAULT_WRITE_BUFFER_MB)
    s = Settings.from_env({"ESEP_STORE_CACHE_MB": "256", "ESEP_STORE_WRITE_BUFFER_MB": "64"})
    assert (s.store_cache_mb, s.store_write_buffer_mb) == (256, 64)
    with pytest.raises(SettingsError):
        Settings.from_env({"ESEP_STORE_WRITE_BUFFER_MB": "2"})
