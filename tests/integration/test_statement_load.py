"""A small run of the statement load measurement (tools/statement_load.py; the full one sends 1,000
requests while posting at half the bench rate): every request answered 200 while the worker posts,
and every order fed meanwhile decided. The figures are printed, never asserted (no timed checks)."""
from __future__ import annotations

import pytest

from streams.settings import Settings
from tools.statement_load import run_load

pytestmark = pytest.mark.integration


def test_statements_answered_while_posting(broker, tmp_path):
    settings = Settings.from_env({"ESEP_BROKER": f"kafka://{broker}", "ESEP_DATA_DIR": str(tmp_path)})
    figures = run_load(settings, requests=200, connections=50, workers=2, persons=2000, warmup_orders=100,
                       lines_per_s=1000, work_dir=tmp_path / "run", log=print)
    print(figures)
    assert figures["statuses"] == {200: 200}, figures
    assert figures["orders_fed"] > 0 and figures["posted_lines_per_s_whole_feed"] > 0
    assert figures["full_speed_lines_per_s"] > 0 and figures["offered_lines_per_s"] == 1000
