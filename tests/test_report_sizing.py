"""The sizing tool still runs and reports the exact member counts (small sizes; the note has 8M)."""
from __future__ import annotations

from tools import report_sizing


def test_sizing_table_counts_every_member(capsys):
    assert report_sizing.main(["--participants", "3000", "--payers", "400", "--partitions", "1,3",
                               "--seen-ids", "200", "--no-int-set"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| participants, IdSet")]
    assert len(rows) == 2 and all("| 3,000 |" in r for r in rows)
    assert "| payers, IdSet, 3 partition(s) | 400 |" in out
    assert "entry-id store" in out


def test_social_sizing_counts_the_month_end_figures_only_when_on():
    from tools import report_state_sizing

    on = report_state_sizing.measure_social(300, batch=100)
    off = report_state_sizing.measure_social(300, batch=100, month_end=False)
    # 100 of the 300 recipients are of loss_of_job; every tenth recipient (j % 30 == 0 among them) suspended.
    assert on["active_at_november_end"] == 90 and off["active_at_november_end"] == 0
    assert on["decisions"] == off["decisions"] == 330
