"""Session fixtures: the real local Kafka broker (started by the project's own tooling unless
ESEP_BROKER points at one)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


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
