"""Chaos, the short version CI runs (`esep chaos` runs the full one): two workers on a broker of
the run's own, 600 orders of 20 lines, two SIGKILLs with registry changes before each restart, a
broker stop and start on the same data dir and ports, late registry persons, the registry-lag hold
on; then reconcile must find nothing lost, nothing doubled, every re-emission identical and the
amounts conserved to the tiyn."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from streams.settings import Settings
from tools.chaos import ChaosOptions, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.mark.timeout(600)
def test_short_chaos_loses_nothing_and_doubles_nothing(tmp_path, capsys):
    if shutil.which("java") is None:
        pytest.skip("needs java (JDK 17+) on PATH: the run restarts a broker of its own")
    env = {k: v for k, v in os.environ.items() if k != "ESEP_BROKER"}
    settings = Settings.from_env({**env, "ESEP_DATA_DIR": str(tmp_path / "data")})
    out = tmp_path / "chaos.json"
    opts = ChaosOptions(orders=600, lines=20, persons=3000, kills=2, broker_restarts=1, rate=25.0,
                        out=str(out), work_dir=tmp_path / "run", settle_timeout_s=180.0, keep=True)

    code = run_chaos(settings, opts)

    printed = capsys.readouterr().out
    assert out.exists(), printed
    r = json.loads(out.read_text())
    assert (r["kills"], r["broker_restarts"]) == (2, 1), printed
    assert [e["kind"] for e in r["events"]] == ["kill", "broker", "kill"]
    assert all(0.0 < e["fed"] < 1.0 for e in r["events"]), "every event lands mid-stream"
    assert r["registry_changes"] == 80 and r["late_persons"] > 0
    assert r["reconcile"]["figures"]["orders"] == r["orders"] == 600
    assert (r["lost_orders"], r["lost_lines"], r["doubled_lines"], r["reemissions_differing"]) == (0, 0, 0, 0), \
        r["reconcile"]["breaches"]
    assert r["reemissions"] > 0, "the kills must have caused redeliveries"
    assert r["amount_received_tiyn"] == r["amount_sent_tiyn"] == r["amount_posted_tiyn"] + r["amount_refunded_tiyn"]
    assert r["dead_letters"] == r["dead_letters_expected"] > 0
    assert all("recovered_s" in e for e in r["events"])
    assert r["passed"] is True and code == 0, printed
    assert "CHAOS PASSED" in printed and "RECONCILED" in printed
