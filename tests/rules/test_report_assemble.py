"""Assembling a version: the report's shape, its delta, its covers; checked against the model."""
from __future__ import annotations

import datetime as dt

import pytest

from models.report import MonthlyReport, ReportPartial
from rules.calendar import ALMATY
from rules.report import Partial, build_report, merge, merge_covers, recount

from .report_records import posted, refund, reversal, social_payment

NOW = dt.datetime(2026, 2, 1, 0, 0, 5, tzinfo=ALMATY)


def _figures():
    p = Partial()
    p.apply("contributions", posted("N1/1", "870314312348", amount="4250.00", period="2025-12"))
    p.apply("contributions", posted("N1/2", "921102423450", knp="017", amount="10.00", period="2025-11"))
    p.apply("refunds", refund("N2", ["INVALID_IIN"], amount="100.00"))
    p.apply("payers", posted("N1/1"))
    return p.figures("2026-01")


def test_preliminary_has_every_field_and_null_delta():
    report = build_report("2026-01", "preliminary", 0, NOW, _figures(), {"posted.contributions": {"0": 7}}, None)
    MonthlyReport.model_validate(report)
    c = report["contributions"]
    assert c["participants"] == 1 and c["payers"] == 1 and c["lines_posted"] == 2
    assert c["amount_contributions"] == "4250.00" and c["amount_penalties"] == "10.00"
    assert c["by_period"] == [{"period": "2025-11", "lines": 1, "amount": "10.00"},
                              {"period": "2025-12", "lines": 1, "amount": "4250.00"}]
    assert c["by_day"] == [{"day": "2026-01-15", "lines": 2, "amount": "4260.00"}]
    assert c["reversals"] == {"lines": 0, "amount": "0.00"}
    assert c["refunds"]["by_reason"]["INVALID_IIN"] == 1 and c["refunds"]["amount"] == "100.00"
    assert report["delta"] is None and report["social_payments"] is None
    assert report["parts"] == ["contributions"] and report["generated_at"] == "2026-02-01T00:00:05+05:00"


def test_final_with_nothing_changed_has_an_empty_delta():
    f = _figures()
    report = build_report("2026-01", "final", 0, NOW, f, {}, previous=f)
    assert report["delta"] == {}
    MonthlyReport.model_validate(report)


def test_revised_delta_holds_only_changed_leaves_signed():
    before = _figures()
    p = Partial()
    p.apply("contributions", posted("N1/1", "870314312348", amount="4250.00", period="2025-12"))
    p.apply("contributions", posted("N1/2", "921102423450", knp="017", amount="10.00", period="2025-11"))
    p.apply("contributions", posted("N9/1", "040109645673", amount="99.99", period="2025-12"))
    p.apply("refunds", refund("N2", ["INVALID_IIN"], amount="100.00"))
    p.apply("payers", posted("N1/1"))
    p.apply("reversals", reversal("N1/1", amount="4250.00"))
    after = p.figures("2026-01")
    report = build_report("2026-01", "revised", 1, NOW, after, {}, previous=before)
    MonthlyReport.model_validate(report)
    assert report["delta"] == {"contributions": {
        "participants": 1, "lines_posted": 1, "amount_contributions": "99.99",
        "by_period": [{"period": "2025-12", "lines": 1, "amount": "99.99"}],
        "by_day": [{"day": "2026-01-15", "lines": 1, "amount": "99.99"}],
        "reversals": {"lines": 1, "amount": "4250.00"},
    }}
    # And backwards: a negative delta is signed.
    back = build_report("2026-01", "revised", 2, NOW, before, {}, previous=after)
    assert back["delta"]["contributions"]["amount_contributions"] == "-99.99"
    assert back["delta"]["contributions"]["reversals"] == {"lines": -1, "amount": "-4250.00"}


def test_social_payments_are_rendered_when_held():
    p = Partial()
    p.apply("social_payments", social_payment("T1", overpaid="100.00"))
    f = p.figures("2026-01")
    report = build_report("2026-01", "final", 0, NOW, f, {}, previous=None,
                          parts=("contributions", "social_payments"))
    MonthlyReport.model_validate(report)
    job = report["social_payments"]["by_type"]["loss_of_job"]
    assert job["payments"] == {"count": 1, "gross": "60000.00", "withheld": "6000.00", "net": "54000.00"}
    assert job["overpaid"] == {"count": 1, "amount": "100.00"}
    assert report["social_payments"]["by_type"]["child_care"]["payments"]["count"] == 0
    # A final with no preliminary before it: the delta is everything, from nothing.
    assert report["delta"]["social_payments"]["by_type"]["loss_of_job"]["payments"]["count"] == 1
    # Parts not held stay out of the delta.
    only_contributions = build_report("2026-01", "final", 0, NOW, f, {}, previous={})
    assert only_contributions["delta"] == {} and only_contributions["social_payments"] is None


def test_revised_needs_a_previous_version_and_parts_are_known():
    with pytest.raises(ValueError):
        build_report("2026-01", "revised", 1, NOW, {}, {}, previous=None)
    with pytest.raises(ValueError):
        build_report("2026-01", "final", 0, NOW, {}, {}, previous={}, parts=("pensions",))


def test_covers_merge_across_partials():
    covers = merge_covers([{"posted.contributions": {0: 10, 1: 4}}, {"posted.contributions": {2: 3}},
                           {"refunds.to-payers": {0: 8}}, {"posted.contributions": {1: 2}}])
    assert covers == {"posted.contributions": {"0": 10, "1": 2, "2": 3}, "refunds.to-payers": {"0": 8}}


def test_a_partial_record_validates():
    p = Partial()
    p.apply("contributions", posted("N1/1"), topic="posted.contributions", partition=0, offset=41)
    ReportPartial.model_validate({"schema_version": 1, "month": "2026-01", "stream": "persons", "partition": 0,
                                  "figures": p.figures("2026-01"), "covers": merge_covers([p.covers]),
                                  "updated_at": NOW.isoformat()})


def test_recount_equals_merge_for_the_report_body():
    records = [posted(f"N{i}/1", iin, amount="4250.00")
               for i, iin in enumerate(["870314312348", "921102423450", "870314312348"])]
    parts = [Partial(), Partial()]
    payers = Partial()
    for r in records:
        parts[int(r["iin"][-1]) % 2].apply("contributions", r)
        payers.apply("payers", r)
    merged = merge([*(p.figures("2026-01") for p in parts), payers.figures("2026-01")])
    recounted = recount("2026-01", {"contributions": records})
    a = build_report("2026-01", "preliminary", 0, NOW, merged, {}, None)
    b = build_report("2026-01", "preliminary", 0, NOW, recounted, {}, None)
    assert a == b and a["contributions"]["participants"] == 2
