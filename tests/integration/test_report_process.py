"""The report streams in their own process (streams/report_process.py), on the real broker: what
the process counts reaches the worker's /metrics, a killed process is started again while the
worker stays ready, and the process dies with the worker."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tools.process import http_ok, wait_gone
from tools.synthetic import Scenario, make_orders, make_registry

from .harness import Outputs, Stack, until

pytestmark = pytest.mark.integration


def report_processes(worker) -> list[int]:
    """The report processes the worker says it started (its log), those still running."""
    pids = [int(m) for m in re.findall(r"report streams: running in process (\d+)",
                                        worker.log_path.read_text(errors="replace"))]
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def settled(read, what: str, worker, quiet_s: float = 1.5) -> float:
    """A metric's value once it is above zero and has not moved for `quiet_s`."""
    def still() -> float:
        first = read()
        time.sleep(quiet_s)
        return first if first > 0 and read() == first else 0.0
    return until(still, 60, what, [worker])


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
        (first,) = until(lambda: report_processes(worker), 60, "the report process", [worker])

        def post(prefix: str) -> None:
            records = make_orders(registry, 20, (1, 5), seed=len(prefix), scenario=Scenario(), id_prefix=prefix)
            ids = {r.expect["notification_id"] for r in records if r.kind == "order"}
            for r in records:
                stack.send(stack.topics.credit_notifications, r.key, r.value)
            stack.flush()
            outputs.wait_for(lambda o: o.result_ids() >= ids, what=f"the results of {prefix}", workers=[worker])

        post("RP1")
        # Counted in the report process, seen on the worker's /metrics.
        before = settled(lambda: counted(worker), "contributions counted on the worker's /metrics", worker)
        assert worker.metric('esep_recovery_seconds_count{store="report"}') >= 1

        os.kill(first, signal.SIGKILL)
        assert wait_gone(first, 10)
        second = until(lambda: [p for p in report_processes(worker) if p != first], 60,
                       "the report process started again", [worker])[0]
        assert http_ok(f"http://127.0.0.1:{worker.port}/ready"), "a report process's death never unreadies posting"
        assert "exited with code -9 after" in worker.log_tail(200)
        assert worker.metric("esep_report_process_restarts_total") == 1

        post("RP2")  # counted by the new process, from the store and the committed offsets
        until(lambda: counted(worker) > before, 60, "the new process counting", [worker])
        assert worker.metric('esep_recovery_seconds_count{store="report"}') >= 2

        # SIGTERM to the worker alone (not its process group): it stops its report process itself,
        # cleanly, and does not start another.
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.proc.wait(30) == 0, worker.log_tail(40)
        assert wait_gone(second, 10), "the report process outlived its worker's stop"
        log = worker.log_path.read_text(errors="replace")
        assert "stopped with the worker" in log or "exited with code" not in log.split("-9 after")[-1], log[-3000:]
        assert len(re.findall("running in process", log)) == 2, "no report process may start while stopping"

        # SIGKILL to the worker alone: no shutdown at all, and the report process must not outlive it.
        worker = stack.worker("w1").start()
        worker.wait_ready()
        (third,) = until(lambda: [p for p in report_processes(worker) if p not in (first, second)], 60,
                         "the report process of the restarted worker", [worker])
        os.kill(worker.pid, signal.SIGKILL)
        worker.proc.wait(10)
        assert wait_gone(third, 20), "the report process outlived a SIGKILLed worker"
    finally:
        outputs.close()
        stack.close()
