"""`esep bench` end to end with tiny numbers: every phase runs on the real broker, the JSON has the
five keys with positive numbers and every order got a result, the recipients agent's phase has
its decisions/s and transfers/s in the table and the JSON, and issue 14's figures (the same-work
reference, the first start, the restarts) are in the JSON and the table. No timing assertions: a
benchmark measures, it does not pass or fail."""
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


# Issue 14's figures of the first start, each a positive number.
FIRST_START_KEYS = ("ready_s", "rss_at_ready_mib", "peak_rss_mib", "first_start_lines_per_s", "warm_lines_per_s",
                    "first_vs_warm", "restart_ready_s", "restart_posting_s", "new_address_ready_s",
                    "new_address_posting_s", "disk_mib_per_million", "registry_disk_mib_per_million",
                    "raw_read_s")
ROWS = ("same-work reference", "first start, 1,000 persons: ready after start", "RSS at ready / peak",
        "first start / warm", "restart after SIGKILL, same port", "restart after SIGKILL, new web port")


@pytest.mark.timeout(420)
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
    # Issue 14: the same-work reference and the first start, in the JSON with their targets and in the table.
    assert summary["same_work_lines_per_s"] > 0 and summary["ratio_vs_same_work"] > 0
    assert run["samework"]["lines"] >= 200  # repeats are decided again: it keeps no decisions
    first = summary["first_start"]
    assert first["persons"] == 1000 and first["first_start_lines"] == 200 and first["warm_lines"] == 200
    assert first["first_start_results_match_expected"] is True
    for key in FIRST_START_KEYS:
        assert isinstance(first[key], (int, float)) and first[key] > 0, (key, first[key])
    for key in ("vs_same_work", "first_start_ready_s", "rss_mib", "first_vs_warm", "restart_ready_s", "new_address"):
        assert key in summary["pass"], key
    assert summary["targets"]["vs_same_work"] == 0.8 and summary["targets"]["rss_mib"] == 300
    for row in ROWS:
        assert row in printed, row
    # Nothing left behind: the run deleted its topics (the naive app's changelog included).
    assert set(_run_topics(broker)) <= before
