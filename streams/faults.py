"""Test-only fault injection. ESEP_TEST_FAULT makes the posting agent fail in a chosen way on its
first batch, so that tests on a real broker can prove the worker's crash-only behaviour. It is not
a setting: never set it outside tests.

- `agent-crash`: the agent raises (a part of the worker dies: the worker must stop, exit 70);
- `agent-hang`: the agent waits forever holding its batch unacknowledged (SIGTERM must still stop
  the worker within its deadline);
- `loop-block`: the agent blocks the event loop (the same, with no coroutine able to run)."""
from __future__ import annotations

import asyncio
import logging
import os
import time

log = logging.getLogger("esep.worker")

VARIABLE = "ESEP_TEST_FAULT"
FAULTS = ("agent-crash", "agent-hang", "loop-block")


class InjectedFault(RuntimeError):
    pass


def configured() -> str | None:
    value = os.environ.get(VARIABLE) or None
    if value is not None and value not in FAULTS:
        raise ValueError(f"{VARIABLE}={value!r} must be one of {', '.join(FAULTS)} (tests only)")
    if value is not None:
        log.warning("%s=%s: a fault will be injected (tests only)", VARIABLE, value)
    return value


async def on_batch(fault: str) -> None:
    log.warning("%s=%s: injecting the fault now", VARIABLE, fault)
    if fault == "agent-crash":
        raise InjectedFault(f"injected fault ({VARIABLE}=agent-crash)")
    if fault == "agent-hang":
        await asyncio.Event().wait()
    if fault == "loop-block":
        time.sleep(3600)
