"""Running the engine from a command (demo, bench, chaos) and the tests: the broker to use and
`esep worker` processes. Used by commands, never by the worker itself."""
from __future__ import annotations

import contextlib
import math
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from streams.settings import Settings

from .process import Child, http_ok


def free_port() -> int:
    from tools.localkafka.ports import pick_free_ports

    return pick_free_ports(1)[0]


@contextlib.contextmanager
def broker_for(settings: Settings, log=print) -> Iterator[str]:
    """ESEP_BROKER when set; else the local broker under ESEP_DATA_DIR, started (and stopped
    afterwards) only if it is not already running."""
    if settings.broker:
        yield settings.resolve_broker()
        return
    from tools import localkafka

    running = localkafka.status(settings.kafka_dir)
    if running is not None:
        log(f"using the local Kafka {running.version} already running at {running.bootstrap}")
        yield running.bootstrap
        return
    info = localkafka.start(settings.kafka_dir, version=settings.kafka_version, log=log)
    try:
        yield info.bootstrap
    finally:
        localkafka.stop(settings.kafka_dir)
        log(f"stopped the local Kafka (pid {info.pid}) this command started")


class WorkerProcess:
    """`esep worker` in a child process (its own session, so a kill reaches all of it). A restart
    keeps the port: with static membership the group hands the member its old assignment, and
    faust's assignor insists the worker's URL is unchanged."""

    def __init__(self, env: dict[str, str], worker_id: str, log_path: Path):
        self.port = free_port()
        self.worker_id = worker_id
        self.env = {**os.environ, **env, "ESEP_WORKER_ID": worker_id, "ESEP_WEB_PORT": str(self.port)}
        self.log_path = log_path
        self.child = Child([sys.executable, "-m", "streams.cli", "worker"], log_path, self.env,
                           name=f"worker {worker_id}")

    def start(self) -> "WorkerProcess":
        self.child.start()
        return self

    @property
    def proc(self):
        return self.child.proc

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def running(self) -> bool:
        return self.child.running

    def check_alive(self) -> None:
        self.child.check_alive()

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds from the start until /ready answered 200 (registry replica caught up)."""
        return self.child.wait_ready(lambda: http_ok(f"http://127.0.0.1:{self.port}/ready"), timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed (crash tests)."""
        self.child.kill()

    def log_tail(self, n: int = 40) -> str:
        return self.child.log_tail(n)

    def metric(self, name: str, labels: str = "") -> float:
        return metric_value(self.metrics_text(), name, labels)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return r.read().decode()

    def stop(self, timeout: float = 30) -> None:
        self.child.stop(timeout)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


def metric_value(text: str, name: str, labels: str = "") -> float:
    """Sum of a metric's samples whose label set contains `labels` (e.g. 'outcome="duplicate"')."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
