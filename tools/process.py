"""Child processes of the tools (workers, the bench's references, the local broker, Prometheus):
started in a session of their own, waited for until ready, their log tailed, stopped or killed.

A child runs in its own session so that Ctrl-C in the caller's terminal reaches only the caller,
which then stops its children itself, and so that a signal sent to the child's process group
reaches everything the child started.

Processes that outlive the Python process that started them (the local broker, found again by its
pid file) are handled by pid with `is_gone`, `wait_gone` and `terminate`."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

TAIL_LINES = 40

# Children started by this Python process, by pid: polling them reaps them (no zombies, no
# "subprocess still running" ResourceWarning), and `is_gone` can tell a live child from a dead one.
_children: dict[int, subprocess.Popen] = {}


class ChildError(RuntimeError):
    """A child exited before it was ready, or was not ready in time (the message has its log tail)."""


def read_tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:]) or "(empty)"
    except OSError:
        return "<no log>"


class Child:
    """One child process with its output in `log_path` (appended: a restart keeps the history)."""

    def __init__(self, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, name: str | None = None):
        self.args = list(args)
        self.log_path = Path(log_path)
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.name = name or Path(self.args[0]).name
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self, stdout=None, banner: str | None = None) -> "Child":
        """Start (again, after a stop or kill). Output goes to the log; with `stdout` given (e.g.
        subprocess.PIPE), stdout goes there and only stderr to the log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            if banner:
                log.write(banner.encode())
                log.flush()
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                         stdout=log if stdout is None else stdout, stderr=subprocess.STDOUT
                                         if stdout is None else log, start_new_session=True)
        _children[self.proc.pid] = self.proc
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ChildError(f"{self.name} (pid {self.proc.pid}) exited with code {self.proc.returncode}; "
                             f"tail of {self.log_path}:\n{self.log_tail()}")

    def wait_ready(self, ready: Callable[[], bool], timeout: float, poll_s: float = 0.2) -> float:
        """Seconds from the start until `ready()` held; ChildError if the child exits or is late."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if ready():
                return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise ChildError(f"{self.name} (pid {self.pid}) was not ready after {timeout:.0f} s; "
                                 f"tail of {self.log_path}:\n{self.log_tail()}")
            time.sleep(poll_s)

    def log_tail(self, n: int = TAIL_LINES) -> str:
        return read_tail(self.log_path, n)

    def signal(self, sig: int) -> None:
        """`sig` to the child's process group (everything it started)."""
        if self.running:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed (crash tests)."""
        if self.running:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if the child has not exited after `timeout`."""
        if not self.running:
            return
        self.signal(signal.SIGTERM)
        if self.wait(timeout) is None:
            self.kill()


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers 200: the readiness probe of the workers and Prometheus."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------
# By pid: processes this Python process may not have started

def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]


def adopt(proc: subprocess.Popen) -> None:
    """Remember a child started elsewhere with Popen, so that `is_gone` reaps it."""
    _children[proc.pid] = proc


def is_gone(pid: int) -> bool:
    reap(pid)
    return pid not in _children and (not Path(f"/proc/{pid}").exists() or _is_zombie(pid))


def is_alive(pid: int) -> bool:
    reap(pid)
    return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM, SIGKILL if `pid` has not exited after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(pid, wait):
            return


def descendants(pid: int) -> list[int]:
    """The live processes below `pid` (children, their children...), from /proc; empty elsewhere.
    A worker's own processes (the report streams, the registry's loaders) are part of its cost."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(p) for p in f.read().split()]
            except (OSError, ValueError):
                continue
            found += kids
            todo += kids
    return found
