"""streams/report_process.py without a broker: the store budget's split and the metric relay."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from monitoring import metrics
from streams.report_process import RELAYED, _Relay, apply_relayed, budget_shares
from streams.settings import Settings
from tables.budget import MIN_WRITE_BUFFER_MB


def settings(cache_mb: int = 64, write_buffer_mb: int = 32) -> Settings:
    return Settings.from_env({"ESEP_DATA_DIR": "/nonexistent", "ESEP_WORKER_ID": "t",
                              "ESEP_STORE_CACHE_MB": str(cache_mb),
                              "ESEP_STORE_WRITE_BUFFER_MB": str(write_buffer_mb)})


def test_the_default_budget_gives_the_report_a_quarter():
    assert budget_shares(settings()) == ((48, 24), (16, 8))


@given(st.integers(1, 100_000), st.integers(MIN_WRITE_BUFFER_MB, 100_000))
def test_the_shares_add_up_to_the_budget_above_the_minimums(cache_mb, write_buffer_mb):
    (wc, ww), (rc, rw) = budget_shares(settings(cache_mb, write_buffer_mb))
    assert min(wc, rc) >= 1 and min(ww, rw) >= MIN_WRITE_BUFFER_MB
    if cache_mb >= 2:
        assert wc + rc == cache_mb
    if write_buffer_mb >= 2 * MIN_WRITE_BUFFER_MB:
        assert ww + rw == write_buffer_mb


def test_the_settings_choose_where_the_report_runs():
    base = {"ESEP_DATA_DIR": "/nonexistent", "ESEP_WORKER_ID": "t"}
    on = Settings.from_env(base)
    inline = Settings.from_env({**base, "ESEP_REPORTS": "inline"})
    off = Settings.from_env({**base, "ESEP_REPORTS": "off"})
    assert (on.reports, on.report_process) == (True, True)
    assert (inline.reports, inline.report_process) == (True, False)
    assert off.reports is False


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_what_the_process_records_reaches_the_workers_metrics_through_a_pipe():
    receiver, sender = multiprocessing.Pipe(duplex=False)
    counted = {"source": "contributions", "outcome": "counted"}
    before = sample("esep_report_records_total", counted)
    published = sample("esep_report_partials_published_total")
    batches = sample("esep_report_batch_seconds_count")
    recoveries = sample("esep_recovery_seconds_count", {"store": "report"})

    _Relay(sender, "report_records").labels("contributions", "counted").inc(7)
    _Relay(sender, "report_partials_published").inc(2)
    _Relay(sender, "report_batch_seconds").observe(0.02)
    _Relay(sender, "recovery_seconds").labels("report").observe(0.5)
    while receiver.poll():
        apply_relayed(receiver.recv())

    assert sample("esep_report_records_total", counted) == before + 7
    assert sample("esep_report_partials_published_total") == published + 2
    assert sample("esep_report_batch_seconds_count") == batches + 1
    assert sample("esep_recovery_seconds_count", {"store": "report"}) == recoveries + 1


def test_a_message_of_no_relayed_metric_is_logged_not_applied(caplog):
    posted = sample("esep_lines_total", {"outcome": "posted"})
    apply_relayed(("lines", ("posted",), "inc", 5))
    apply_relayed(("report_records", ("contributions", "counted"), "clear", 0))
    apply_relayed("garbage")
    assert sample("esep_lines_total", {"outcome": "posted"}) == posted
    assert caplog.text.count("a metric message could not be applied") == 3


def test_every_relayed_name_is_a_metric_the_report_streams_record():
    source = (Path(__file__).resolve().parents[1] / "streams" / "report_streams.py").read_text(encoding="utf-8")
    for name in RELAYED:
        assert hasattr(metrics, name) and f"metrics.{name}" in source
