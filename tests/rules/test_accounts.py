"""Personal accounts: idempotent application, exact sums, statement ranges and CSV (the records are
in tests/account_samples.py, from the contract's worked examples)."""
from __future__ import annotations

import copy
import csv
import io
import json

import pytest
from hypothesis import given, settings, strategies as st

from rules.accounts import (
    APPLIED, CONFLICT, DUPLICATE, Account, AccountRecordError, parse_range, refund_lines_by_iin, statement_csv,
    totals_csv,
)
from tests.account_samples import IIN, OTHER, OVERPAYMENTS, REFUND, SOCIAL, contribution, order_refund, reversal


def example_account() -> Account:
    account = Account(IIN)
    account.apply("contribution", contribution())
    for rec in SOCIAL:
        account.apply("social_payment", rec)
    for rec in OVERPAYMENTS:
        account.apply("overpayment", rec)
    return account


def test_the_example_recipient_sums_exactly():
    totals = example_account().totals()
    assert totals["person"] == {"surname": "Ахметов", "name": "Ерлан", "patronymic": "Серикович",
                                "birth_date": "1987-03-14"}
    assert totals["contributions"] == {"entries": 1, "posted": "29750.00", "reversed": "0.00", "net": "29750.00"}
    assert totals["months_covered"] == {"count": 1, "first": "2026-10", "last": "2026-10", "periods": ["2026-10"]}
    sp = totals["social_payments"]
    assert sp["payments"] == {"count": 3, "gross": "162903.28", "withheld": "16290.33", "net": "146612.95",
                              "covered": "92903.23", "overpaid": "70000.05"}
    assert sp["returns"] == {"count": 2, "gross": "71500.00", "applied_to_overpayment": "70000.05",
                             "unmatched": "1499.95"}
    # The last overpayment record says 0.00 outstanding; the account derives the same from its items.
    assert sp["overpaid_outstanding"] == "0.00" == OVERPAYMENTS[-1]["outstanding_after"]
    assert sp["overpayments"] == {"count": 3, "overpaid": "70000.05", "unmatched_returns": "1499.95"}
    assert totals["as_of"] == "2026-11-26T10:15:00+05:00"


def test_an_entry_applied_twice_counts_once():
    account = Account(IIN)
    first = contribution()
    assert account.apply("contribution", first) == APPLIED
    before = account.to_json()
    # A redelivery re-emits the entry with a new posted_at: still the same entry.
    again = dict(first, posted_at="2026-11-26T10:19:59.001+05:00")
    assert account.apply("contribution", again) == DUPLICATE
    assert account.apply("contribution", first) == DUPLICATE
    assert account.to_json() == before
    assert account.totals()["contributions"]["posted"] == "29750.00"
    for rec in SOCIAL:
        account.apply("social_payment", rec)
    assert account.apply("social_payment", SOCIAL[1]) == DUPLICATE
    assert account.apply("overpayment", OVERPAYMENTS[0]) == APPLIED
    assert account.apply("overpayment", dict(OVERPAYMENTS[0], created_at="2030-01-01T00:00:00+05:00")) == DUPLICATE
    line = refund_lines_by_iin(REFUND)[0][1]
    other = Account("921102423450")
    assert other.apply("refund_line", line) == APPLIED
    assert other.apply("refund_line", dict(line)) == DUPLICATE
    assert other.totals()["refunds"] == {"lines": 1, "amount": "12500.00", "unreadable_lines": 0}


def test_a_changed_record_under_the_same_id_is_a_conflict_and_resolves_the_same_whichever_came_first():
    a, b = Account(IIN), Account(IIN)
    one, two = contribution(amount="100.00"), contribution(amount="200.00")
    assert a.apply("contribution", one) == APPLIED and a.apply("contribution", two) == CONFLICT
    assert b.apply("contribution", two) == APPLIED and b.apply("contribution", one) == CONFLICT
    assert a.to_json() == b.to_json()


def test_sums_are_exact_to_the_tiyn():
    account = Account(IIN)
    # 0.10 ten times is 1.00 exactly; a float sum would not be (0.1 * 10 != 1.0 in binary).
    for n in range(10):
        account.apply("contribution", contribution(line_no=n + 1, amount="0.1", period="2026-01"))
    account.apply("contribution", contribution(line_no=11, amount="123456789012345.99", period="2026-02"))
    totals = account.totals()
    assert totals["contributions"]["posted"] == "123456789012346.99"
    st_ = account.statement("2026-01", "2026-01")
    assert st_["periods"][0]["contributions"] == "1.00"
    assert st_["totals"]["contributions"] == "1.00"


def test_reversals_net_out_and_uncover_a_month():
    account = Account(IIN)
    oct_ = contribution(line_no=1, period="2026-10")
    sep = contribution(line_no=2, period="2026-09", amount="100.00")
    pen = contribution(line_no=3, period="2026-09", knp="017", amount="5.00")
    for rec in (oct_, sep, pen):
        account.apply("contribution", rec)
    assert account.months_covered() == ["2026-09", "2026-10"]
    assert account.apply("reversal", reversal(sep)) == APPLIED
    assert account.apply("reversal", reversal(sep)) == DUPLICATE
    assert account.months_covered() == ["2026-10"]  # a penalty alone covers nothing
    totals = account.totals()
    assert totals["contributions"] == {"entries": 2, "posted": "29850.00", "reversed": "100.00", "net": "29750.00"}
    assert totals["penalties"]["net"] == "5.00"
    stmt = account.statement("2026-09", "2026-09")
    (period,) = stmt["periods"]
    assert (period["contributions"], period["penalties"], period["reversed"], period["net"]) == (
        "100.00", "5.00", "100.00", "5.00")
    entries = {e["entry_id"]: e for e in period["payers"][0]["entries"]}
    assert entries[sep["entry_id"]]["reversed_by"] == sep["entry_id"] + "/reversal"
    assert entries[pen["entry_id"]]["reversed_by"] is None
    assert [r["reverses"] for r in stmt["reversals"]] == [sep["entry_id"]]


def test_a_reversal_that_arrives_before_its_entry_gives_the_same_account():
    sep = contribution(line_no=2, period="2026-09", amount="100.00")
    a, b = Account(IIN), Account(IIN)
    a.apply("contribution", sep)
    a.apply("reversal", reversal(sep))
    b.apply("reversal", reversal(sep))
    assert b.months_covered() == []
    b.apply("contribution", sep)
    assert a.to_json() == b.to_json()


def test_statement_range_selects_by_period_and_groups_by_payer():
    account = Account(IIN)
    other_payer = {"name": "ИП Омаров", "bin_iin": "870314312348", "iban": "KZ1"}
    for n, period in enumerate(["2025-01", "2025-02", "2025-03", "2025-04"], start=1):
        account.apply("contribution", contribution(line_no=n, period=period, amount="10.00", document=f"D{n}"))
    account.apply("contribution", contribution(line_no=9, period="2025-02", amount="1.50", payer=other_payer,
                                               notification="KASP-1", document="K9"))
    stmt = account.statement("2025-02", "2025-03")
    assert [p["period"] for p in stmt["periods"]] == ["2025-02", "2025-03"]
    feb = stmt["periods"][0]
    assert [(p["bin_iin"], p["contributions"]) for p in feb["payers"]] == [("180440000019", "10.00"),
                                                                            ("870314312348", "1.50")]
    assert [e["document_number"] for p in feb["payers"] for e in p["entries"]] == ["D2", "K9"]
    assert stmt["totals"]["contributions"] == "21.50"
    assert (stmt["from"], stmt["to"]) == ("2025-02", "2025-03")
    assert [p["period"] for p in account.statement("2025-04", None)["periods"]] == ["2025-04"]
    assert [p["period"] for p in account.statement(None, "2025-01")["periods"]] == ["2025-01"]
    assert len(account.statement()["periods"]) == 4
    assert account.statement("2026-01", "2026-12")["periods"] == []
    # social payments and overpayments by their period too
    rec = example_account().statement("2025-04", "2025-04")
    assert [s["entry_id"] for s in rec["social_payments"]] == ["GFSS-TRF-2025-000202", "GFSS-TRF-2025-000204"]
    assert [o["overpayment_id"] for o in rec["overpayments"]] == ["GFSS-TRF-2025-000202"]
    assert rec["totals"]["social_payments"]["payments"]["gross"] == "65000.05"


@pytest.mark.parametrize("start, end, message", [
    ("2025-13", None, "from="), ("2025-1", None, "from="), (None, "25-01", "to="), ("2025-05", "2025-04", "after"),
    ("1000-01", "9999-12", "at most"),
])
def test_bad_ranges_are_refused(start, end, message):
    with pytest.raises(ValueError, match=message):
        parse_range(start, end)
    with pytest.raises(ValueError):
        Account(IIN).statement(start, end)


def test_refund_lines_are_keyed_by_iin_and_invalid_iins_belong_to_nobody():
    lines = refund_lines_by_iin(REFUND)
    assert [(iin, line["line_no"]) for iin, line in lines] == [("921102423450", 4)]
    _, line = lines[0]
    assert (line["refund_id"], line["reason"], line["payer_bin_iin"], line["period"]) == (
        "HSBK-20261126-000421/refund", "NAME_MISMATCH", "180440000019", "2026-10")
    account = Account("921102423450")
    account.apply("refund_line", line)
    stmt = account.statement("2026-10", "2026-10")
    assert [(r["refund_id"], r["line_no"], r["amount"], r["reason"]) for r in stmt["refunds"]] == [
        ("HSBK-20261126-000421/refund", 4, "12500.00", "NAME_MISMATCH")]
    # Refund lines carry the payer's spelling, which is not the person's.
    assert account.person is None and account.totals()["person"] is None


def test_an_order_refund_with_unreadable_amounts_and_periods():
    refund = order_refund([(1, None, "60.00"), (2, "2025-13", "abc"), (3, "2026-01", "40.00")])
    lines = refund_lines_by_iin(refund)
    account = Account(IIN)
    for iin, line in lines:
        assert iin == IIN
        account.apply("refund_line", line)
    totals = account.totals()["refunds"]
    assert totals == {"lines": 3, "amount": "100.00", "unreadable_lines": 1}
    # received_at 2026-01-31T20:00Z is 2026-02-01 01:00 in Almaty: lines without a real period count in February.
    feb = account.statement("2026-02", "2026-02")["refunds"]
    assert [(r["line_no"], r["period"], r["period_as_sent"], r["amount"], r["amount_as_sent"]) for r in feb] == [
        (1, None, None, "60.00", None), (2, None, "2025-13", None, "abc")]
    assert all(r["reason"] == "TOTAL_MISMATCH" and r["scope"] == "order" for r in feb)
    jan = account.statement("2026-01", "2026-01")
    assert [r["line_no"] for r in jan["refunds"]] == [3] and jan["totals"]["refunded"] == "40.00"


def test_a_record_of_another_iin_or_malformed_is_refused():
    account = Account(IIN)
    with pytest.raises(AccountRecordError, match="another IIN"):
        account.apply("contribution", contribution(iin=OTHER))
    with pytest.raises(AccountRecordError, match="amount"):
        account.apply("contribution", contribution(amount="12.345"))
    with pytest.raises(AccountRecordError, match="amount"):
        account.apply("contribution", contribution(amount=12))
    with pytest.raises(AccountRecordError, match="period"):
        account.apply("contribution", contribution(period="2026-13"))
    with pytest.raises(AccountRecordError, match="offset"):
        account.apply("contribution", contribution(received_at="2026-11-26T10:15:00"))
    with pytest.raises(AccountRecordError, match="source"):
        account.apply("gift", contribution())
    bad = dict(SOCIAL[0])
    del bad["net_amount"]
    with pytest.raises(AccountRecordError, match="net_amount"):
        account.apply("social_payment", bad)
    assert account.is_empty


def test_state_round_trips_through_json():
    account = example_account()
    account.apply("reversal", reversal(contribution()))
    raw = account.to_json()
    assert isinstance(raw, bytes)
    back = Account.from_json(raw)
    assert back == account and back.to_json() == raw
    assert back.totals() == account.totals() and back.statement() == account.statement()
    assert back.is_recipient and not Account(OTHER).is_recipient
    with pytest.raises(ValueError):
        Account.from_json(json.dumps({"v": 99, "iin": IIN}))


def _rows(text: str) -> list[dict]:
    assert text.endswith("\r\n")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_statement_csv_has_a_row_per_item_with_document_numbers():
    account = example_account()
    sep = contribution(line_no=2, period="2026-10", amount="100.00")
    account.apply("contribution", sep)
    account.apply("reversal", reversal(sep))
    for _, line in refund_lines_by_iin(order_refund([(1, "2026-10", "7.00")])):
        account.apply("refund_line", line)
    stmt = account.statement()
    rows = _rows(statement_csv(stmt))
    sections = [r["section"] for r in rows]
    assert sections.count("contributions") == 2 and sections.count("reversals") == 1
    assert sections.count("refunds") == 1 and sections.count("social_payments") == 5
    assert sections.count("overpayments") == 3
    first = rows[0]
    assert (first["id"], first["document_number"], first["counterparty_bin_iin"], first["amount"]) == (
        "HSBK-20261126-000421/1", "421", "180440000019", "29750.00")
    refund = next(r for r in rows if r["section"] == "refunds")
    assert (refund["id"], refund["reason"], refund["amount"]) == ("N-7/refund/1", "TOTAL_MISMATCH", "7.00")
    sp = next(r for r in rows if r["id"] == "GFSS-TRF-2025-000202" and r["section"] == "social_payments")
    assert (sp["amount"], sp["covered"], sp["overpaid"], sp["reason"]) == ("65000.05", "60000.00", "5000.05",
                                                                          "EXCEEDS_ASSIGNED")
    # Sums of the CSV amounts equal the JSON totals.
    cents = sum(int(r["amount"].replace(".", "")) for r in rows if r["section"] == "contributions")
    assert cents == 2985000 and stmt["totals"]["contributions"] == "29850.00"


def test_csv_cells_that_would_run_as_formulas_are_defused_and_negative_amounts_are_not():
    hostile = {"name": "=HYPERLINK(\"http://x\")", "bin_iin": "180440000019", "iban": "KZ"}
    account = Account(IIN)
    account.apply("contribution", contribution(payer=hostile, document="+1"))
    row = _rows(statement_csv(account.statement()))[0]
    assert row["counterparty_name"] == "'=HYPERLINK(\"http://x\")" and row["document_number"] == "'+1"
    sep = contribution(line_no=2, period="2026-09", amount="100.00")
    only_reversal = Account(IIN)
    only_reversal.apply("reversal", reversal(sep))
    rows = {r["field"]: r["value"] for r in _rows(totals_csv(only_reversal.totals()))}
    assert rows["contributions.net"] == "-100.00"
    assert rows["iin"] == IIN and rows["months_covered.count"] == "0"


# ---- properties ---------------------------------------------------------------------------------

def _pool() -> list[tuple[str, dict]]:
    """Every kind of record for one IIN, spellings differing so that the person's choice matters."""
    records: list[tuple[str, dict]] = []
    contribs = [
        contribution(line_no=n, period=f"2025-{(n % 12) + 1:02d}", amount=f"{n * 7}.{n:02d}",
                     knp="012" if n % 3 else "017", received_at=f"2025-12-{n + 1:02d}T23:30:00+05:00",
                     surname=f"Ахметов{n}")
        for n in range(1, 8)
    ]
    records += [("contribution", c) for c in contribs]
    records += [("reversal", reversal(contribs[1])), ("reversal", reversal(contribs[4], decision="D2"))]
    records += [("refund_line", line) for _, line in
                refund_lines_by_iin(order_refund([(1, "2025-03", "1.00"), (2, None, "x"), (3, "2025-04", "2.50")]))]
    records += [("social_payment", s) for s in SOCIAL] + [("overpayment", o) for o in OVERPAYMENTS]
    return records


POOL = _pool()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(POOL) - 1), min_size=len(POOL), max_size=3 * len(POOL))
       .map(lambda extra: extra + list(range(len(POOL)))), st.randoms(use_true_random=False))
def test_any_order_and_duplication_of_the_same_records_gives_the_same_account(picks, rnd):
    reference = Account(IIN)
    for source, rec in POOL:
        reference.apply(source, copy.deepcopy(rec))
    rnd.shuffle(picks)
    account = Account(IIN)
    for i in picks:
        source, rec = POOL[i]
        account.apply(source, copy.deepcopy(rec))
    assert account.to_json() == reference.to_json()
    assert account.statement("2025-01", "2025-12") == reference.statement("2025-01", "2025-12")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 12), st.booleans()), min_size=1, max_size=30,
                unique_by=lambda t: t))
def test_totals_equal_the_sum_of_distinct_entries(items):
    account = Account(IIN)
    expected = {"contribution": 0, "penalty": 0}
    for n, (tiyn, month, penalty) in enumerate(items):
        amount = f"{tiyn // 100}.{tiyn % 100:02d}"
        rec = contribution(line_no=n, amount=amount, period=f"2024-{month:02d}", knp="017" if penalty else "012")
        account.apply("contribution", rec)
        account.apply("contribution", rec)
        expected["penalty" if penalty else "contribution"] += tiyn
    totals = account.totals()
    assert totals["contributions"]["posted"] == f"{expected['contribution'] // 100}.{expected['contribution'] % 100:02d}"
    assert totals["penalties"]["posted"] == f"{expected['penalty'] // 100}.{expected['penalty'] % 100:02d}"
    by_period = account.statement()["periods"]
    total = sum(int(p["contributions"].replace(".", "")) + int(p["penalties"].replace(".", "")) for p in by_period)
    assert total == expected["contribution"] + expected["penalty"]


def test_absurd_values_are_refused_or_kept_short():
    account = Account(IIN)
    with pytest.raises(AccountRecordError, match="amount"):
        account.apply("contribution", contribution(amount="9" * 30))
    lines = refund_lines_by_iin(order_refund([(1, "x" * 500, "9" * 100)]))
    account.apply("refund_line", lines[0][1])
    (refund,) = account.statement()["refunds"]
    assert refund["amount"] is None and len(refund["amount_as_sent"]) == 64 and len(refund["period_as_sent"]) == 32
    assert Account.from_json(account.to_json()) == account


def test_the_samples_are_records_of_the_contract():
    from models.outputs import PostedContribution
    from models.reversals import ReversalEntry

    PostedContribution.model_validate(contribution())
    ReversalEntry.model_validate(reversal(contribution()))
