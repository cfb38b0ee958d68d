"""Per-partition month aggregates: what each record counts, in which month, once."""
from __future__ import annotations

import pytest

from rules.report import MonthPartial, Partial, merge, recount
from rules.report.figures import render

from .report_records import alert, decision, posted, refund, result, reversal, social_payment

JAN = "2026-01"


def test_posted_lines_count_by_kind_period_and_participant():
    p = Partial()
    p.apply("contributions", posted("N1/1", "870314312348", amount="4250.00", period="2025-12"))
    p.apply("contributions", posted("N1/2", "870314312348", amount="4250.50", period="2025-11"))
    p.apply("contributions", posted("N2/1", "921102423450", knp="017", amount="100.00", period="2025-12"))
    f = p.figures(JAN)
    assert f["contributions/lines_posted"] == 3
    assert f["contributions/amount_contributions"] == 850050
    assert f["contributions/amount_penalties"] == 10000
    # Only KNP 012 makes a participant: the second person paid a penalty only.
    assert f["contributions/participants"] == 1
    assert f["contributions/by_period/2025-12/lines"] == 2
    assert f["contributions/by_period/2025-12/amount"] == 435000
    assert f["contributions/by_period/2025-11/amount"] == 425050


def test_applying_the_same_entry_twice_counts_it_once():
    p = Partial()
    first = p.apply("contributions", posted("N1/1"))
    again = p.apply("contributions", posted("N1/1"))
    assert (first, again) == (JAN, None)
    assert p.figures(JAN)["contributions/lines_posted"] == 1
    assert p.figures(JAN)["contributions/amount_contributions"] == 425000


@pytest.mark.parametrize("source, record", [
    ("reversals", reversal("N1/1")),
    ("refunds", refund("N1", ["INVALID_IIN"])),
    ("alerts", alert("N1/1")),
    ("decisions", decision("D1")),
    ("social_payments", social_payment("T1")),
    ("results", result("N1", decided_at="2026-02-20T00:00:00+05:00")),
])
def test_every_additive_source_is_idempotent(source, record):
    p = Partial()
    p.apply(source, record)
    once = p.figures(JAN)
    assert once, "the record counted nothing"
    assert p.apply(source, dict(record)) is None
    assert p.figures(JAN) == once


def test_month_is_asia_almaty_of_received_at():
    p = Partial()
    # 2026-01-31 19:30Z is 2026-02-01 00:30 in Almaty: February.
    p.apply("contributions", posted("N1/1", received_at="2026-01-31T19:30:00Z"))
    # 23:59 local on the 31st: January.
    p.apply("contributions", posted("N2/1", received_at="2026-01-31T23:59:59+05:00"))
    assert p.figures("2026-02")["contributions/lines_posted"] == 1
    assert p.figures(JAN)["contributions/lines_posted"] == 1


def test_the_same_entry_id_in_two_months_is_two_keys_of_the_store_not_a_collision():
    # An id is only ever in one month; the month in the key keeps a store prunable by month.
    p = Partial()
    p.apply("contributions", posted("N1/1", received_at="2026-01-10T10:00:00+05:00"))
    p.apply("alerts", alert("N1/1", received_at="2026-01-10T10:00:00+05:00"))
    f = p.figures(JAN)
    assert f["contributions/lines_posted"] == 1 and f["contributions/deceased_alerts"] == 1


def test_refunds_count_orders_lines_and_reasons():
    p = Partial()
    p.apply("refunds", refund("N1", ["INVALID_IIN", "DECEASED", "INVALID_IIN"], amount="300.00"))
    p.apply("refunds", refund("N2", [None, None], order_reason="TOTAL_MISMATCH", amount="59000.00"))
    f = p.figures(JAN)
    assert f["contributions/refunds/orders"] == 2
    assert f["contributions/refunds/lines"] == 5
    assert f["contributions/refunds/amount"] == 5930000
    assert f["contributions/refunds/by_reason/INVALID_IIN"] == 2
    assert f["contributions/refunds/by_reason/DECEASED"] == 1
    assert f["contributions/refunds/by_reason/TOTAL_MISMATCH"] == 2
    body = render(f)["contributions"]["refunds"]
    assert body["by_reason"]["NAME_MISMATCH"] == 0 and body["amount"] == "59300.00"


def test_decided_after_deadline_uses_the_business_deadline():
    p = Partial()
    # Friday 2026-01-09 receipt: deadline 24:00 Monday 2026-01-12.
    p.apply("results", result("N1", received_at="2026-01-09T12:00:00+05:00",
                              decided_at="2026-01-12T23:59:59+05:00"))
    p.apply("results", result("N2", received_at="2026-01-09T12:00:00+05:00",
                              decided_at="2026-01-13T00:00:01+05:00"))
    assert p.figures(JAN)["contributions/decided_after_deadline"] == 1


def test_decisions_count_applied_ones_in_the_month_of_decided_on():
    p = Partial()
    p.apply("decisions", decision("D1", decision="assign", decided_on="2026-01-31"))
    p.apply("decisions", decision("D2", decision="suspend", decided_on="2026-02-01"))
    p.apply("decisions", decision("D3", decision="resume", status="rejected", decided_on="2026-01-05"))
    p.apply("decisions", decision("R1", decision="refund", payment_type=None, decided_on="2026-01-05"))
    base = "social_payments/by_type/loss_of_job/"
    # The assign makes the recipient active at January's end; the suspend, from 1 February, not at February's.
    assert p.figures(JAN) == {base + "assigned": 1, base + "recipients_active_at_month_end": 1}
    assert p.figures("2026-02") == {base + "suspended": 1}


def test_social_payments_and_returns():
    p = Partial()
    p.apply("social_payments", social_payment("T1", gross="60000.00", withheld="6000.00", net="54000.00",
                                              overpaid="5000.00"))
    p.apply("social_payments", social_payment("T2", kind="return", gross="5000.00", withheld="0.00",
                                              net="5000.00"))
    p.apply("reversals", reversal("N9/1", amount="4250.00"))
    f = p.figures(JAN)
    base = "social_payments/by_type/loss_of_job/"
    assert f[base + "payments/count"] == 1 and f[base + "payments/gross"] == 6000000
    assert f[base + "payments/withheld"] == 600000 and f[base + "payments/net"] == 5400000
    assert f[base + "overpaid/count"] == 1 and f[base + "overpaid/amount"] == 500000
    assert f[base + "returns/count"] == 1 and f[base + "returns/amount"] == 500000
    assert f["contributions/reversals/lines"] == 1 and f["contributions/reversals/amount"] == 425000


def test_payers_are_distinct_per_month_and_repeat_free():
    p = Partial()
    for i in range(5):
        p.apply("payers", posted(f"N{i}/1", payer="180440000019"))
    p.apply("payers", posted("N9/1", payer="990340001234"))
    p.apply("payers", posted("N10/1", payer="ИП 123"))  # echoed as the bank sent it
    assert p.figures(JAN) == {"contributions/payers": 3}


def test_distinct_participants_add_up_across_partitions_keyed_by_iin():
    people = [f"8703143123{i:02d}" for i in range(10)]
    by_partition = [Partial(), Partial(), Partial()]
    records = []
    for n, iin in enumerate(people):
        for line in range(3):  # three lines each: distinct counting matters
            records.append(posted(f"N{n}/{line}", iin))
    for r in records:
        by_partition[int(r["iin"]) % 3].apply("contributions", r)
    merged = merge(p.figures(JAN) for p in by_partition)
    assert merged["contributions/participants"] == 10
    assert merged["contributions/lines_posted"] == 30
    expected = recount(JAN, {"contributions": records})
    # The payer-keyed stream counts payers; these partitions are the IIN-keyed stream's.
    assert expected.pop("contributions/payers") == 1
    assert merged == expected


def test_covers_track_the_next_offset_even_for_repeats():
    p = Partial()
    p.apply("contributions", posted("N1/1"), topic="posted.contributions", partition=2, offset=10)
    p.apply("contributions", posted("N1/1"), topic="posted.contributions", partition=2, offset=11)
    p.apply("contributions", posted("N1/1"), topic="posted.contributions", partition=2, offset=4)  # redelivered
    assert p.covers == {"posted.contributions": {2: 12}}
    with pytest.raises(ValueError):
        p.apply("contributions", posted("N2/1"), topic="posted.contributions")


def test_a_malformed_amount_is_an_error_not_a_zero():
    with pytest.raises(ValueError):
        Partial().apply("contributions", posted("N1/1", amount="4250,00"))
    with pytest.raises(ValueError):
        Partial().apply("contributions", posted("N1/1", received_at="2026-01-15T10:00:00"))


def test_a_month_partial_snapshot_restores_figures_and_sets():
    p = Partial()
    p.apply("contributions", posted("N1/1", "870314312348"))
    p.apply("contributions", posted("N2/1", "921102423450", knp="017"))
    p.apply("payers", posted("N1/1", payer="ИП 123"))
    month = p.months[JAN]
    back = MonthPartial.from_bytes(month.to_bytes())
    assert back.figures() == month.figures() and back == month
    # The restored sets still answer "already counted?": a repeat of a participant adds nothing.
    assert not back.participants.add("870314312348") and not back.payers.add("ИП 123")
