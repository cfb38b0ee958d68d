"""`esep bench` end to end with tiny numbers: every phase runs on the real broker, the JSON has the
five keys with positive numbers and every order got a result, and the recipients agent's phase has
its decisions/s and transfers/s in the table and the JSON. No timing assertions: a benchmark
measures, it does not pass or fail."""
from __future__ import annotations

import json

import pytest

from tools.bench import run_bench
from streams.settings import Settings

pytestmark = pytest.mark.integration

KEYS = ("lines_per_s", "raw_ceiling_lines_per_s", "naive_faust_lines_per_s", "p50_ms", "p99_ms")


def _run_topics(bootstrap: str) -> list[str]:
    from streams.topics import admin_client

    admin = admin_client(bootstrap)
    try:
        return [t for t in admin.list_topics() if "bench-" in t]
    finally:
        admin.close()


@pytest.mark.timeout(240)
def test_bench_tiny_run_writes_the_five_keys(broker, tmp_path, capsys):
    before = set(_run_topics(broker))
    settings = Settings.from_env({"ESEP_BROKER": f"kafka://{broker}", "ESEP_DATA_DIR": str(tmp_path / "data"),
                                  "ESEP_SESSION_TIMEOUT_S": "6"})
    out = tmp_path / "results" / "bench.json"

    code = run_bench(settings, orders=40, lines=5, persons=1000, out=str(out), runs=1, latency_orders=20,
                     recipients=30)

    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(summary[key], (int, float)) and summary[key] > 0, (key, summary[key])
    assert summary["all_orders_have_results"] is True
    assert summary["results_match_expected"] is True
    run = summary["per_run"][0]
    assert run["esep_orders"] == 40 and run["esep_lines"] == 200
    assert run["lines_posted"] + run["lines_refunded"] == 200
    assert run["raw_lines"] == 200 and run["naive_lines"] == 200
    assert run["latency_orders"] == 20
    # Phase 5: the same worker without the monthly report's streams, for their cost.
    assert summary["reports"]["lines_per_s_without_reports"] > 0
    assert run["report_catch_up_s"] is not None, "the report streams read every posted entry"
    assert "implementation" in printed and "lines/s" in printed
    # Phase 6: the recipients ledger in the same run, every assign and payment decided.
    rcp = summary["recipients"]
    assert (rcp["persons"], rcp["decisions"], rcp["transfers"], rcp["workers"]) == (30, 30, 180, 1)
    assert rcp["decisions_per_s"] > 0 and rcp["transfers_per_s"] > 0
    assert run["recipients"]["decisions"] == 30
    table = printed[printed.index("implementation"):]
    assert "recipients agent: decisions (1 worker)" in table and "recipients agent: transfers (1 worker)" in table
    # Nothing left behind: the run deleted its topics (the naive app's changelog included).
    assert set(_run_topics(broker)) <= before
