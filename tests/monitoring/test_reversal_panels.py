"""The reversals row of the dashboard (issue 11): decisions by outcome, entries by result and reason,
tenge reversed by KNP, and the waiting decisions, each on the metric it is about."""
from __future__ import annotations

from .common import panels


def test_the_reversal_panels_show_their_metrics():
    by_title = {p["title"].lower(): p for p in panels()}
    wanted = {
        "refund decisions/s by outcome": "esep_ledger_records_total",
        "reversal entries/s by outcome and reason": "esep_reversal_entries_total",
        "tenge reversed/s by knp": "esep_amount_reversed_tenge_total",
        "waiting refund decisions": "esep_refund_decisions_waiting",
        "oldest waiting refund decision": "esep_refund_decisions_oldest_wait_seconds",
    }
    for title, metric in wanted.items():
        assert title in by_title, f"no panel {title!r}"
        exprs = " ".join(t["expr"] for t in by_title[title]["targets"])
        assert metric in exprs, f"{title}: does not query {metric}"
    reasons = " ".join(t["expr"] for t in by_title["reversal entries/s by outcome and reason"]["targets"])
    assert "by (outcome, reason)" in reasons and "by (status)" in reasons
    assert "by (knp)" in by_title["tenge reversed/s by knp"]["targets"][0]["expr"]
