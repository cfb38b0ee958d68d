"""Shared fixtures: the real local Kafka broker (started by the project's own tooling unless
ESEP_BROKER points at one), and for the in-process tests the business calendar, the registry of
tests/cases.py, an in-memory sink standing in for the producer, and a posting processor on real
rocksdict stores."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from .cases import registry_persons


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> str:
    """Bootstrap address `host:port` of a real Apache Kafka broker."""
    configured = os.environ.get("ESEP_BROKER")
    if configured:
        from streams.settings import strip_scheme

        yield strip_scheme(configured)
        return
    from tools import localkafka

    version = os.environ.get("ESEP_KAFKA_VERSION", localkafka.DEFAULT_VERSION)
    data_dir = Path(tmp_path_factory.mktemp("kafka"))
    info = localkafka.start(data_dir, version=version)
    try:
        yield info.bootstrap
    finally:
        localkafka.stop(data_dir)


@pytest.fixture(scope="session")
def calendar():
    from rules.calendar import default_calendar

    return default_calendar()


@pytest.fixture(scope="session")
def persons() -> dict:
    """The registry of tests/cases.py as the rules see it (through the replica's own encoding)."""
    from models.registry import RegistryPerson
    from tables.registry import decode_person, encode_person

    return {r["iin"]: decode_person(encode_person(RegistryPerson.model_validate_json(json.dumps(r))))
            for r in registry_persons()}


class MemorySink:
    """Stands in for the producer: keeps what was sent, in order, and acknowledges each record at
    once with the next offset of its partition, unless `hold()` keeps the acknowledgements back
    until `release()`."""

    def __init__(self):
        self.sent = []
        self.offsets: dict[int, int] = {}
        self.held: list | None = None
        self.scheduled = asyncio.Condition()
        # A record's error, or None: raised when it is sent (aiokafka raises a too-large record
        # at once); the record is not sent.
        self.refuse = lambda record: None
        self.refused = []

    def hold(self) -> None:
        self.held = []

    def release(self, keep_holding: bool = False) -> None:
        """Acknowledge what was held back; with `keep_holding`, hold back what comes next."""
        held, self.held = self.held or [], [] if keep_holding else None
        for future, meta in held:
            future.set_result(meta)

    async def send(self, record):
        error = self.refuse(record)
        if error is not None:
            self.refused.append(record)
            raise error
        partition = record.partition or 0
        offset = self.offsets.get(partition, 0)
        self.offsets[partition] = offset + 1
        self.sent.append(record)
        future = asyncio.get_running_loop().create_future()
        meta = type("Meta", (), {"partition": partition, "offset": offset})()
        if self.held is None:
            future.set_result(meta)
        else:
            self.held.append((future, meta))
        async with self.scheduled:
            self.scheduled.notify_all()
        return future

    async def wait_for(self, topic: str) -> None:
        """Until a record for `topic` was handed to the sink (not necessarily acknowledged)."""
        async with self.scheduled:
            await self.scheduled.wait_for(lambda: any(r.topic == topic for r in self.sent))

    def values(self, topic: str) -> list[dict]:
        import orjson

        return [orjson.loads(r.value) for r in self.sent if r.topic == topic]


class NoChangelog:
    """No decisions changelog to restore from: a fresh worker."""

    async def catch_up(self, partitions):
        return 0


@pytest.fixture
def memory_sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def registry_store(tmp_path):
    """A registry replica store holding the persons of tests/cases.py."""
    from tables.registry import RegistryStore, judge_record

    store = RegistryStore(tmp_path / "registry")
    puts = {}
    for person in registry_persons():
        iin, value, rejection = judge_record(person["iin"].encode(), json.dumps(person).encode())
        assert rejection is None
        puts[iin] = value
    store.apply(puts, {0: len(puts)})
    yield store
    store.close()


@pytest.fixture
def make_processor(tmp_path, registry_store, memory_sink, calendar):
    """A posting processor on real stores and the memory sink; the hold is off unless given."""
    from rules.holds import NO_HOLD
    from streams.processor import PostingProcessor, utc_now
    from streams.settings import Settings
    from tables.decisions import DecisionStore

    stores = []

    def make(hold=NO_HOLD, clock=utc_now, sink=None, name="decisions", **kwargs):
        decisions = DecisionStore(tmp_path / name)
        stores.append(decisions)
        return PostingProcessor(Settings.from_env({}).topics, registry_store, decisions, NoChangelog(),
                                sink or memory_sink, calendar, hold, clock=clock, **kwargs)

    yield make
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - a test closed it already (a restart)
            pass


@pytest.fixture
def agent_app(tmp_path, make_processor):
    """The faust app with its posting agent, driving a processor on the memory sink (faust's
    test_context: no broker). Returns (app, settings, processor, runtime)."""
    from streams.app import build_app
    from streams.settings import Settings

    settings = Settings.from_env({"ESEP_DATA_DIR": str(tmp_path), "ESEP_WORKER_ID": "t", "ESEP_BROKER": "kafka://x:1"})
    app, runtime = build_app(settings, "127.0.0.1:1")
    runtime.processor = make_processor()
    runtime.ready.set()
    return app, settings, runtime.processor, runtime
