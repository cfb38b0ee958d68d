"""Which pid is this data dir's broker (Linux /proc). Starting, watching and ending processes is
tools.process's job; this module only adds what is particular to a Kafka broker."""

from __future__ import annotations

from pathlib import Path

from tools.process import _is_zombie, is_gone, reap, terminate, wait_gone

__all__ = ["is_gone", "is_kafka_process", "terminate", "wait_gone"]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def is_kafka_process(pid: int, server_properties: Path) -> bool:
    """Whether ``pid`` is a live ``java ... kafka.Kafka <server_properties>``.

    Checking the properties path, not just the main class, guards against a
    recycled pid that now belongs to another broker (or anything else).
    """
    reap(pid)
    args = _cmdline(pid)
    if not args or _is_zombie(pid):
        return False
    return (
        Path(args[0]).name == "java"
        and "kafka.Kafka" in args
        and str(server_properties) in args
    )
