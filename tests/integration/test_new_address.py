"""A worker restarted with the same ESEP_WORKER_ID on another web port (a container with a new
address) rejoins its group and posts (issue 14: faust's assignor raised an AssertionError and the
worker consumed nothing for 65-195 s)."""
from __future__ import annotations

import pytest

from tools.synthetic import Scenario, make_orders, make_registry

from .harness import Outputs, Stack

pytestmark = pytest.mark.integration

# The restart must land inside the session of the worker's previous run: then the broker hands the
# static member the assignment cached for its old address instead of running a rebalance, which is
# the path that failed. A worker starts in seconds; 45 s leaves room on a loaded machine.
SESSION_S = "45"


def test_a_worker_restarted_on_a_new_port_keeps_its_assignment_and_posts(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_SESSION_TIMEOUT_S=SESSION_S)
    outputs = Outputs(stack)
    try:
        registry = make_registry(40, seed=14)
        stack.send_registry(registry)
        orders = [r for r in make_orders(registry, 2, 3, seed=14, scenario=Scenario.clean(), id_prefix="ADDR")
                  if r.kind == "order"]
        first, second = orders
        worker = stack.worker("w1").start()
        worker.wait_ready()
        stack.send(stack.topics.credit_notifications, first.key, first.value)
        stack.flush()
        outputs.wait_for(lambda o: first.expect["notification_id"] in o.result_ids(), what="the first result",
                         workers=[worker])

        # SIGTERM: a static member does not leave its group, so the group keeps its assignment.
        worker.stop()
        # The same worker (same ESEP_WORKER_ID, same data dir) at a new address: a new free port.
        moved = stack.worker("w1", log_path=tmp_path / "w1-moved.log")
        assert moved.port != worker.port
        moved.start()
        moved.wait_ready()
        stack.send(stack.topics.credit_notifications, second.key, second.value)
        stack.flush()
        # A functional bound, not a speed target: far beyond a rejoin, and the log checks below
        # tell the failure apart whatever the timing.
        outputs.wait_for(lambda o: second.expect["notification_id"] in o.result_ids(), timeout=120,
                         what="the result decided after the restart", workers=[moved])

        after = moved.log_path.read_text(errors="replace")
        assert "AssertionError" not in after, moved.log_tail(80)
        assert "Unexpected error in coordinator routine" not in after, moved.log_tail(80)
        # The restart took the path under test: the cached assignment of the old address, kept.
        assert f"previous address http://127.0.0.1:{worker.port}" in after, moved.log_tail(80)
    finally:
        outputs.close()
        stack.close()
