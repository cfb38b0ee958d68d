"""Crash-only on the real broker: a worker whose posting agent dies says so on /ready (503 with the
reason), logs it at critical and exits non-zero; SIGTERM stops a worker within 15 s whether it is
busy, hung on a batch it will never acknowledge, or blocked in its event loop. The faults are made
with the test-only hook ESEP_TEST_FAULT (streams/faults.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from streams.lifecycle import EXIT_FAILED, EXIT_FORCED
from tools.synthetic import Scenario, make_orders, make_registry

from ..cases import _line, _order, registry_persons, A
from .harness import Outputs, Stack

pytestmark = pytest.mark.integration

STOP_WITHIN_S = 15.0  # the contract with a supervisor


def ready_status(port: int) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except OSError:
        return None


def wait_for_log(worker, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.log_path.read_text(errors="replace"):
            return
        if worker.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the worker's log\n{worker.log_tail()}")


def sigterm_and_time(worker) -> tuple[float, int]:
    """SIGTERM to the worker; seconds until it exited, and its exit code."""
    started = time.monotonic()
    os.killpg(worker.proc.pid, signal.SIGTERM)
    try:
        code = worker.proc.wait(STOP_WITHIN_S + 5)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {STOP_WITHIN_S + 5:.0f} s after SIGTERM\n{worker.log_tail()}") from None
    return time.monotonic() - started, code


def test_a_worker_whose_agent_dies_is_unready_logs_it_and_exits_nonzero(broker, tmp_path):
    stack = Stack(broker, tmp_path)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker("w1", ESEP_TEST_FAULT="agent-crash").start()
        worker.wait_ready()
        seen: list[tuple[int, dict]] = []

        def watch() -> None:  # /ready, as a supervisor's probe sees it, until the process is gone
            while worker.proc.poll() is None:
                status = ready_status(worker.port)
                if status is not None:
                    seen.append(status)
                time.sleep(0.1)

        probe = threading.Thread(target=watch)
        probe.start()
        stack.send_notification(_order("CRASH-1", [_line(1, A)]))
        stack.flush()
        code = worker.proc.wait(60)
        probe.join(10)
        assert code == EXIT_FAILED, worker.log_tail()
        failed = [body for status, body in seen if status == 503 and body["reason"].startswith("failed")]
        assert failed, f"/ready never said why: {seen[-5:]}"
        assert "the posting agent died: InjectedFault" in failed[0]["reason"]
        assert seen[0][0] == 200, "ready before the fault"
        log = worker.log_path.read_text(errors="replace")
        assert "CRITICAL" in log and "worker failed: the posting agent died" in log
        print(f"agent died: /ready 503 for {len(failed)} probes, exit {code}")
    finally:
        stack.close()


def test_sigterm_stops_a_busy_worker_within_15_s(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_BATCH_SIZE="20")
    outputs = Outputs(stack)
    try:
        registry = make_registry(300, seed=5)
        stack.send_registry(registry)
        worker = stack.worker("w1").start()
        worker.wait_ready()
        records = make_orders(registry, 3000, 20, seed=5, scenario=Scenario(), id_prefix="BUSY")
        stop_feeding = threading.Event()

        def feed() -> None:
            for i, r in enumerate(records):
                if stop_feeding.is_set():
                    break
                stack.send(stack.topics.credit_notifications, r.key, r.value)
                if i % 50 == 49:
                    stack.flush()
            stack.flush()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        outputs.wait_for(lambda o: len(o.result_ids()) >= 100, what="100 results", workers=[worker])
        elapsed, code = sigterm_and_time(worker)
        stop_feeding.set()
        feeder.join(30)
        print(f"busy worker: stopped {elapsed:.1f} s after SIGTERM, exit {code}")
        assert elapsed < STOP_WITHIN_S
        assert code in (0, EXIT_FORCED), worker.log_tail()
    finally:
        outputs.close()
        stack.close()


@pytest.mark.parametrize("fault", ["agent-hang", "loop-block"])
def test_sigterm_stops_a_stuck_worker_within_15_s(broker, tmp_path, fault):
    stack = Stack(broker, tmp_path)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker("w1", ESEP_TEST_FAULT=fault).start()
        worker.wait_ready()
        stack.send_notification(_order("STUCK-1", [_line(1, A)]))
        stack.flush()
        wait_for_log(worker, "injecting the fault now")
        elapsed, code = sigterm_and_time(worker)
        print(f"{fault}: stopped {elapsed:.1f} s after SIGTERM, exit {code}")
        assert elapsed < STOP_WITHIN_S
        assert code in (0, EXIT_FORCED), worker.log_tail()
    finally:
        stack.close()
