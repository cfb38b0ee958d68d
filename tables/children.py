"""Processes a worker starts for itself (the registry's loading processes, the report streams):
they stop with the worker, whatever way it stops."""
from __future__ import annotations

import os
import signal
import threading
import time


def die_with_parent(parent: int) -> None:
    """Called first in the child: it stops when the worker shuts it down, and when the worker dies
    without doing so (SIGKILL); not on the terminal's Ctrl-C, which the worker handles."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # Linux: the kernel sends SIGKILL when the worker dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the worker died before that was in place
        os._exit(0)

    def watch() -> None:  # elsewhere (or if prctl failed): an orphan notices its new parent
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
