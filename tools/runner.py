"""Running the engine from a command (demo, bench): the broker to use, run-scoped topics, and
worker processes that are always stopped. Used by commands, never by the worker itself."""
from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from streams.settings import DEFAULT_TOPICS, Settings


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


def run_scoped_env(settings: Settings, bootstrap: str, run_id: str, data_dir: Path) -> dict[str, str]:
    """Environment of a worker on topics and state of its own, so runs never collide."""
    env = {
        "ESEP_BROKER": f"kafka://{bootstrap}",
        "ESEP_APP_ID": f"esep-{run_id}",
        "ESEP_DATA_DIR": str(data_dir),
        "ESEP_PARTITIONS": str(settings.partitions),
    }
    for name, default in DEFAULT_TOPICS.items():
        env[f"ESEP_TOPIC_{name.upper()}"] = f"{default}.{run_id}"
    return env


class WorkerProcess:
    """`esep worker` in a child process (its own session, so a kill reaches all of it). A restart
    keeps the port: with static membership the group hands the member its old assignment, and
    faust's assignor insists the worker's URL is unchanged."""

    def __init__(self, env: dict[str, str], worker_id: str, log_path: Path):
        self.port = free_port()
        self.env = {**os.environ, **env, "ESEP_WORKER_ID": worker_id, "ESEP_WEB_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until /ready answered 200 (registry replica caught up)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited (code {self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready after {timeout:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed (crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def metric(self, name: str, labels: str = "") -> float:
        return metric_value(self.metrics_text(), name, labels)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return r.read().decode()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


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
