"""The report streams in their own process (streams/report_process.py), on the real broker: what
the process counts reaches the worker's /metrics, a killed process is started again while the
worker stays ready, and the process dies with the worker."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tools.process import http_ok, wait_gone
from tools.synthetic import Scenario, make_orders, make_registry

from .harness import Outputs, Stack, until

pytestmark = pytest.mark.integration


def report_processes(worker_pid: int) -> list[int]:
    """The worker's spawned children (the report process; the registry's loading processes have
    exited by ready)."""
    pids = []
    for task in Path(f"/proc/{worker_pid}/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    found = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(pid)
    return found


def counted(worker) -> float:
    return worker.metric('esep_report_records_total{outcome="counted",source="contributions"}')


def test_the_report_process_relays_its_metrics_restarts_after_a_kill_and_dies_with_the_worker(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_REPORT_PARTIAL_INTERVAL_S="0.3", ESEP_PENDING="off")
    outputs = Outputs(stack)
    try:
        registry = make_registry(200, seed=31)
        stack.send_registry(registry)
        worker = stack.worker("w1").start()
        worker.wait_ready()
        (first,) = until(lambda: report_processes(worker.pid), 60, "the report process", [worker])

        def post(prefix: str) -> None:
            records = make_orders(registry, 20, (1, 5), seed=len(prefix), scenario=Scenario(), id_prefix=prefix)
            ids = {r.expect["notification_id"] for r in records if r.kind == "order"}
            for r in records:
                stack.send(stack.topics.credit_notifications, r.key, r.value)
            stack.flush()
            outputs.wait_for(lambda o: o.result_ids() >= ids, what=f"the results of {prefix}", workers=[worker])

        post("RP1")
        # Counted in the report process, seen on the worker's /metrics.
        before = until(lambda: counted(worker), 60, "contributions counted on the worker's /metrics", [worker])
        assert worker.metric('esep_recovery_seconds_count{store="report"}') >= 1

        os.kill(first, signal.SIGKILL)
        assert wait_gone(first, 10)
        second = until(lambda: [p for p in report_processes(worker.pid) if p != first], 60,
                       "the report process started again", [worker])[0]
        assert http_ok(f"http://127.0.0.1:{worker.port}/ready"), "a report process's death never unreadies posting"
        assert "exited with code -9; starting it again" in worker.log_tail(200)

        post("RP2")  # counted by the new process, from the store and the committed offsets
        until(lambda: counted(worker) > before, 60, "the new process counting", [worker])
        assert worker.metric('esep_recovery_seconds_count{store="report"}') >= 2

        worker.kill()  # SIGKILL: no shutdown, the process must not outlive it
        assert wait_gone(second, 20), "the report process outlived a SIGKILLed worker"
    finally:
        outputs.close()
        stack.close()
