"""The analyst's files of a monthly report: the workbook opens, holds its sections and real numbers."""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from models.report import MonthlyReport
from rules.report import PARTS, build_report, recount
from tools.report_files import sample_records, sample_report, write_chart, write_csv, write_files, write_xlsx


@pytest.fixture(scope="module")
def report():
    return sample_report("2026-01", seed=3, orders_per_day=8, partitions=3)


def test_sample_is_a_valid_report_and_equals_the_recount(report):
    MonthlyReport.model_validate(report)
    recounted = recount("2026-01", sample_records("2026-01", seed=3, orders_per_day=8))
    again = build_report("2026-01", report["version"], 0, dt.datetime.fromisoformat(report["generated_at"]),
                         recounted, report["covers"], previous=None, parts=PARTS)
    assert again["contributions"] == report["contributions"]
    assert again["social_payments"] == report["social_payments"]
    assert report["contributions"]["participants"] > 0 and report["delta"]  # the preliminary missed an order
    social = report["social_payments"]["by_type"]
    assert sum(t["recipients_active_at_month_end"] for t in social.values()) > 0
    assert sum(t["payments"]["count"] for t in social.values()) > 0


def test_xlsx_opens_with_a_sheet_per_section_and_numbers(report, tmp_path):
    path = write_xlsx(report, tmp_path / "r.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "Contributions", "By period", "By day", "Refunds by reason", "Social payments",
                             "Delta", "Covers"]
    ws = wb["Contributions"]
    assert "Аударымдар" in ws["A1"].value and "Отчисления" in ws["A1"].value
    rows = {row[0].value: row for row in ws.iter_rows(min_row=5)}
    amount = rows["Social contributions, KNP 012"]
    assert amount[1].value == "Әлеуметтік аударымдар, ТМК 012" and amount[2].value == "Социальные отчисления, КНП 012"
    assert isinstance(amount[3].value, (int, float)) and not isinstance(amount[3].value, bool)
    assert Decimal(str(amount[3].value)) == Decimal(report["contributions"]["amount_contributions"])
    assert amount[3].number_format == "#,##0.00"
    participants = rows["Participants (distinct IINs, KNP 012)"][3]
    assert participants.value == report["contributions"]["participants"] and participants.number_format == "#,##0"
    by_period = [row for row in wb["By period"].iter_rows(min_row=5, values_only=True)]
    assert {r[0] for r in by_period} == {p["period"] for p in report["contributions"]["by_period"]}
    assert all(isinstance(r[-1], (int, float)) for r in by_period)
    reasons = {r[0]: r[-1] for r in wb["Refunds by reason"].iter_rows(min_row=5, values_only=True)}
    assert reasons == report["contributions"]["refunds"]["by_reason"]


def test_social_payments_sheet_when_held(report, tmp_path):
    held = {**report, "parts": ["contributions", "social_payments"], "delta": None,
            "social_payments": {"by_type": {"loss_of_job": {
                "recipients_active_at_month_end": 3, "assigned": 1, "recalculated": 0, "suspended": 0, "resumed": 0,
                "terminated": 0, "refused": 0,
                "payments": {"count": 2, "gross": "120000.00", "withheld": "12000.00", "net": "108000.00"},
                "returns": {"count": 0, "amount": "0.00"}, "overpaid": {"count": 0, "amount": "0.00"},
                "overpaid_outstanding_at_month_end": "0.00"}}}}
    wb = load_workbook(write_xlsx(held, tmp_path / "s.xlsx"))
    assert "Social payments" in wb.sheetnames and "Delta" not in wb.sheetnames
    rows = [r for r in wb["Social payments"].iter_rows(min_row=5, values_only=True)]
    gross = next(r for r in rows if r[3] == "Payments, gross")
    assert gross[:3] == ("Loss of job", "Жұмыссыз қалу", "Потеря работы") and gross[-1] == 120000


def test_csv_keeps_amounts_exact(report, tmp_path):
    path = write_csv(report, tmp_path / "r.csv")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert table[0].keys() == {"section", "item", "figure", "label_en", "label_kk", "label_ru", "value"}
    by = {(r["section"], r["item"], r["figure"]): r["value"] for r in table}
    assert by[("Contributions", "", "amount_penalties")] == report["contributions"]["amount_penalties"]
    assert by[("Contributions", "", "payers")] == str(report["contributions"]["payers"])
    assert any(r["section"] == "Delta" for r in table)


def test_chart_is_a_png(report, tmp_path):
    path = write_chart(report, tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_write_files_names_them_by_month_and_version(report, tmp_path):
    revised = {**report, "version": "revised", "revision": 2}
    names = [p.name for p in write_files(revised, tmp_path)]
    assert names == ["report-2026-01-revised-2.csv", "report-2026-01-revised-2.xlsx", "report-2026-01-revised-2.png"]
