"""`esep demo` end to end, smaller: the bank's day (Part 1), the Fund's day, refund decisions and the
month's report (Part 2) on one worker and the real broker; every reconciliation row exists and
passes, the report's files are written. No timing assertions: the demo's own cut-off allowances
(tools/demo.py) are what a slow machine strains."""
from __future__ import annotations

import json

import pytest

from rules.calendar import ALMATY
from streams.settings import Settings
from tools.demo import run_demo

pytestmark = pytest.mark.integration

PART1 = ("orders decided", "lines posted", "amount received (posted + refunded)", "dead letters",
         "repeated notifications ignored", "late-registry lines posted, not refunded",
         "lines decided after their deadline")
FUND = ("Fund decisions decided", "  assign applied", "  recalculate applied", "  suspend applied",
        "  resume applied", "  terminate applied", "  refuse applied", "  rejected ILLEGAL_TRANSITION",
        "  rejected RECIPIENT_MISMATCH", "repeated decisions and transfers ignored", "social payments posted",
        "  covered by an assignment", "  overpaid SUSPENDED (n / amount)", "  overpaid TERMINATED (n / amount)",
        "  overpaid NO_ASSIGNMENT (n / amount)", "  overpaid KNP_MISMATCH (n / amount)",
        "  overpaid AMOUNT_INCONSISTENT (n / amount)", "  waited for a decision (lag hold)",
        "    covered once their assign came", "returns posted", "  applied to overpayments",
        "  unmatched KNP_MISMATCH (n / amount)", "overpayment records (fund.overpayments)",
        "overpayments outstanding at the day's end", "accounts: none / active / suspended / terminated / refused")
REVERSALS = ("refund decisions decided", "repeated refund decisions ignored", "entries reversed (posted.reversals)",
             "  the entries the decisions named", "  amount reversed, KNP 012 (contribution)",
             "  amount reversed, KNP 017 (penalty)", "entries rejected ENTRY_NOT_FOUND",
             "entries rejected ALREADY_REVERSED", "entries rejected PERIOD_USED_FOR_PAYMENT",
             "refund orders (refunds.reversals)", "  refund KNP 026", "  refund KNP 094",
             "  their amount = amount reversed", "entries reversed more than once",
             "entries with posted - reversed = 0 or the original")
REPORT = ("  lines posted", "  participants", "  payers", "  reversals, lines", "  reversals, amount",
          "  refunds (part 1), orders", "  equals the recount at its covers", "  equals the recount of the topics now")


@pytest.mark.timeout(900)
def test_the_demo_reconciles_both_parts_and_the_months_report(broker, tmp_path, capsys):
    from datetime import datetime

    month = datetime.now(ALMATY).strftime("%Y-%m")
    settings = Settings.from_env({"ESEP_BROKER": f"kafka://{broker}", "ESEP_DATA_DIR": str(tmp_path / "data"),
                                  "ESEP_SESSION_TIMEOUT_S": "6"})
    out = tmp_path / "demo-output"

    code = run_demo(settings, orders=150, persons=3000, out_dir=str(out), recipients=30)

    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    rows = {r[0]: r for r in summary["rows"]}
    failed = [r for r in summary["rows"] if r[3] is False]
    assert code == 0 and summary["reconciled"] is True, f"rows failing: {failed}\n{printed[-6000:]}"
    for label in PART1 + FUND + REVERSALS + REPORT + (f"report {month} published",):
        assert label in rows, f"no row {label!r}"
        assert rows[label][3] is True, rows[label]
    # Every section there, and the Fund's day had something of each kind to show.
    assert [r[0] for r in summary["rows"] if r[3] is None] == [
        "Part 1: the bank's day", "Part 2: the Fund's day (expected: the pure rules replayed on what was sent)",
        "Part 2: refunds of posted contributions (expected by construction)",
        "the month's report (expected by construction from the day's records)"]
    fund = summary["fund"]["observed"]
    assert fund["applied"]["assign"] > 30 and fund["rejected"]["RECIPIENT_MISMATCH"] == 2
    assert fund["overpaid"]["NO_ASSIGNMENT"] == 1 and fund["lag_covered"] == 5
    assert summary["reversals"]["observed"]["rejected"] == {"ALREADY_REVERSED": 1, "PERIOD_USED_FOR_PAYMENT": 1,
                                                            "ENTRY_NOT_FOUND": 2}
    report = summary["report"]
    assert report["version"] == "preliminary" and report["equals_recount_at_covers"] is True
    assert report["contributions"]["lines_posted"] == summary["observed"]["lines_posted"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("report-")) == [
        f"report-{month}-preliminary.csv", f"report-{month}-preliminary.png", f"report-{month}-preliminary.xlsx"]
    assert "RECONCILED" in printed and "the month's report" in printed
