"""`esep simulate` feeds a running deployment's own topics (the Compose simulator profile)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .harness import ROOT, Outputs, Stack

pytestmark = pytest.mark.integration


def test_simulate_feeds_the_workers_topics(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_PENDING="off")
    outputs = Outputs(stack)
    try:
        worker = stack.worker().start()
        worker.wait_ready()
        out = subprocess.run([sys.executable, "-m", "streams.cli", "simulate", "--orders", "40", "--persons", "500",
                              "--rate", "200"], cwd=ROOT, env=worker.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        orders = int(re.search(r"done in .*?: (\d+) notifications", out.stdout).group(1))
        assert orders == 40
        outputs.wait_for(lambda o: len(o.result_ids()) >= orders, what="a result per simulated order",
                         workers=[worker])
        outputs.drain(quiet_s=1.5)
        assert len(outputs.result_ids()) == orders
        assert all(r["notification_id"].startswith("SIM430-") for r in outputs.results)
    finally:
        outputs.close()
        stack.close()
