"""A run's own deployment on a shared broker: its topics (the default names suffixed with the run
id), its app id (so its own consumer groups), its data dir, and the processes started in it; all
released by `close()`. The demo, the bench, the chaos run and the integration tests use it, so that
runs never see each other's records."""
from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from streams.settings import DEFAULT_TOPICS, Settings
from streams.topics import admin_client, ensure_topics

from .process import Child
from .runner import WorkerProcess


def scoped_env(bootstrap: str, run_id: str, data_dir: Path, partitions: int | None = None) -> dict[str, str]:
    """Environment of a worker on topics, consumer groups and state of the run's own."""
    env = {
        "ESEP_BROKER": f"kafka://{bootstrap}",
        "ESEP_APP_ID": f"esep-{run_id}",
        "ESEP_DATA_DIR": str(data_dir),
    }
    if partitions is not None:
        env["ESEP_PARTITIONS"] = str(partitions)
    for name, default in DEFAULT_TOPICS.items():
        env[f"ESEP_TOPIC_{name.upper()}"] = f"{default}.{run_id}"
    return env


class RunScope:
    """Every topic and consumer group of the run carries `run_id` in its name: that is how
    `close(delete_topics=True)` finds them (the engine's internal topics start with the app id)."""

    worker_class = WorkerProcess

    def __init__(self, bootstrap: str, run_id: str, data_dir: Path, *, partitions: int | None = None,
                 log_dir: Path | None = None, env: Mapping[str, str] | None = None):
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.data_dir
        self.env = {**scoped_env(bootstrap, run_id, self.data_dir, partitions), **(env or {})}
        self.settings = Settings.from_env(self.env)
        self.topics = self.settings.topics
        self.groups = [self.settings.app_id]
        self.workers: list[WorkerProcess] = []
        self.children: list[Child] = []

    def topic(self, base: str) -> str:
        """An extra topic of the run (a bench reference's input, say)."""
        return f"{base}.{self.run_id}"

    def create_topics(self, timeout: float = 30.0) -> None:
        """The engine's topics; returns once every partition has a leader (producing earlier only
        earns retries)."""
        ensure_topics(self.settings, self.bootstrap)
        admin = admin_client(self.bootstrap)
        try:
            wait_leaders(admin, [getattr(self.topics, k) for k in DEFAULT_TOPICS], timeout)
        finally:
            admin.close()

    def create_extra_topics(self, names: list[str], timeout: float = 30.0) -> None:
        """Topics of the run beside the engine's (named with `topic()`), with its partition count."""
        from kafka.admin import NewTopic

        admin = admin_client(self.bootstrap)
        try:
            admin.create_topics([NewTopic(n, self.settings.partitions, self.settings.replication) for n in names],
                                timeout_ms=30000)
            wait_leaders(admin, names, timeout)
        finally:
            admin.close()

    def worker(self, worker_id: str, log_path: Path | None = None, **env: str) -> WorkerProcess:
        """A worker of the run (not started): the run's environment plus `env`."""
        w = self.worker_class({**self.env, **env}, worker_id, log_path or self.log_dir / f"{worker_id}.log")
        self.workers.append(w)
        return w

    def spawn(self, args: list[str], name: str, env: Mapping[str, str] | None = None, stdout=None) -> Child:
        """Another child of the run (started), its output in `<log_dir>/<name>.log`."""
        child = Child(args, self.log_dir / f"{name}.log", env, name=name).start(stdout=stdout)
        self.children.append(child)
        return child

    def pids(self) -> set[int]:
        procs = [w.proc for w in self.workers] + [c.proc for c in self.children]
        return {p.pid for p in procs if p is not None}

    def owned_topics(self) -> list[str]:
        admin = admin_client(self.bootstrap)
        try:
            return sorted(t for t in admin.list_topics() if self.run_id in t)
        finally:
            admin.close()

    def close(self, delete_topics: bool = False, delete_data: bool = False, log=print) -> None:
        """Stop every process of the run; delete its topics and groups, and its data dir, if asked."""
        for w in self.workers:
            w.stop()
        for c in self.children:
            c.stop(20.0)
        if delete_topics:
            try:
                self._delete_topics(log)
            except Exception as exc:  # cleaning up must not hide the run's own outcome
                log(f"could not delete the run's topics ({type(exc).__name__}: {exc})")
        if delete_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _delete_topics(self, log) -> None:
        """A static member's group stays until its session expires: deleting it may fail, harmlessly."""
        admin = admin_client(self.bootstrap)
        try:
            mine = sorted(t for t in admin.list_topics() if self.run_id in t)
            if mine:
                admin.delete_topics(mine, timeout_ms=30000)
                log(f"deleted {len(mine)} topics of run {self.run_id}")
            try:
                admin.delete_consumer_groups(self.groups)
            except Exception:
                pass
        finally:
            admin.close()


def wait_leaders(admin, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        described = admin.describe_topics(names)
        if len(described) == len(names) and all(
                d.get("partitions") and all(p.get("leader_id", -1) >= 0 for p in d["partitions"])
                for d in described):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {names} have no leaders after {timeout:.0f} s")
        time.sleep(0.1)
