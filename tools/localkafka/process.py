"""Identify, watch and end broker processes by pid (Linux /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

# Brokers started by this Python process. Keeping the Popen objects lets us reap
# them (no zombies) and avoids the "subprocess still running" ResourceWarning.
_children: dict[int, subprocess.Popen] = {}


def remember_child(proc: subprocess.Popen) -> None:
    _children[proc.pid] = proc


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def is_kafka_process(pid: int, server_properties: Path) -> bool:
    """Whether ``pid`` is a live ``java ... kafka.Kafka <server_properties>``.

    Checking the properties path, not just the main class, guards against a
    recycled pid that now belongs to another broker (or anything else).
    """
    _reap(pid)
    args = _cmdline(pid)
    if not args or _is_zombie(pid):
        return False
    return (
        Path(args[0]).name == "java"
        and "kafka.Kafka" in args
        and str(server_properties) in args
    )


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]


def is_gone(pid: int) -> bool:
    _reap(pid)
    return pid not in _children and (not Path(f"/proc/{pid}").exists() or _is_zombie(pid))


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM (Kafka then shuts down cleanly), SIGKILL if it has not exited after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(pid, wait):
            return
