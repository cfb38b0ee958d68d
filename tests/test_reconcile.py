"""`esep reconcile`'s checks over hand-made records, no Kafka: a clean ledger reconciles, and each
kind of breach is found, named by its id, with IINs masked."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta

import pytest

from tools.reconcile import BREACHES, Raw, check, render

from .cases import A, B, C, _line, _order

TOPIC = "bank.credit-notifications"
NOW = datetime.fromisoformat("2026-11-26T12:00:00+05:00")


def entry(nid: str, line: dict, stamp: str = "2026-11-26T10:15:01+05:00") -> dict:
    return {"schema_version": 1, "entry_id": f"{nid}/{line['line_no']}", "iin": line["iin"], "amount": line["amount"],
            "period": "2026-10", "status": "posted", "posted_at": stamp}


def refund(nid: str, lines: list[dict], reasons: list[str], scope: str = "lines", amount: str | None = None) -> dict:
    total = sum(int(ln["amount"].replace(".", "")) for ln in lines)
    return {"schema_version": 1, "refund_id": f"{nid}/refund", "notification_id": nid, "scope": scope,
            "reason": reasons[0] if scope == "order" else None,
            "amount": amount or f"{total // 100}.{total % 100:02d}",
            "lines": [{"line_no": ln["line_no"], "iin": ln["iin"], "amount": ln["amount"], "reason": r}
                      for ln, r in zip(lines, reasons)],
            "created_at": "2026-11-26T10:15:01+05:00"}


def result(nid: str, total: int, posted: int, refunded: int, amount_posted: str, amount_refunded: str) -> dict:
    status = "posted" if posted == total else "refunded" if posted == 0 else "partially_refunded"
    return {"schema_version": 1, "notification_id": nid, "status": status, "lines_total": total,
            "lines_posted": posted, "lines_refunded": refunded, "amount_posted": amount_posted,
            "amount_refunded": amount_refunded, "decided_at": "2026-11-26T10:15:01+05:00"}


class Ledger:
    """Three orders decided as the contract says (one posted, one partly refunded, one refunded
    whole), one record dead-lettered and one repeat; each test breaks one thing."""

    def __init__(self):
        self.posted_order = _order("N-1", [_line(1, A, "100.00"), _line(2, B, "50.50")])
        self.partial_order = _order("N-2", [_line(1, A, "10.00"), _line(2, C, "20.00"), _line(3, B, "30.00")])
        self.whole_order = _order("N-3", [_line(1, A, "5.00"), _line(1, B, "6.00")], knp="012")
        self.notifications = [
            Raw(0, 0, b"N-1", json.dumps(self.posted_order).encode()),
            Raw(0, 1, b"N-0", b"{not json"),  # dead-lettered below
            Raw(1, 0, b"N-2", json.dumps(self.partial_order).encode()),
            Raw(2, 0, b"N-3", json.dumps(self.whole_order).encode()),
            Raw(0, 2, b"N-1", json.dumps(self.posted_order).encode()),  # a repeat
        ]
        p, q, w = self.posted_order["lines"], self.partial_order["lines"], self.whole_order["lines"]
        self.posted = [entry("N-1", p[0]), entry("N-1", p[1]), entry("N-2", q[0]), entry("N-2", q[2])]
        self.refunds = [refund("N-2", [q[1]], ["NAME_MISMATCH"]),
                        refund("N-3", w, ["DUPLICATE_LINE_NO"] * 2, scope="order", amount="11.00")]
        self.results = [result("N-1", 2, 2, 0, "150.50", "0.00"), result("N-2", 3, 2, 1, "40.00", "20.00"),
                        result("N-3", 2, 0, 2, "0.00", "11.00")]
        self.dead_letters = [{"schema_version": 1, "source_topic": TOPIC, "partition": 0, "offset": 1,
                              "error_kind": "not_json", "error": "..."}]

    def check(self, **kw):
        return check(self.notifications, self.posted, self.refunds, self.results, self.dead_letters, TOPIC, **kw)


def kinds(report) -> set[str]:
    return {b.kind for b in report.breaches}


def test_a_clean_ledger_reconciles():
    report = Ledger().check()
    assert report.ok, render(report)
    f = report.figures
    assert (f["notification_records"], f["dead_lettered"], f["copies"]) == (5, 1, 1)
    assert (f["orders"], f["decided"], f["lost"]) == (3, 3, 0)
    assert (f["lines"], f["lines_posted"], f["lines_refunded"]) == (7, 4, 3)
    assert f["received_tiyn"] == 15050 + 6000 + 1100
    assert f["posted_tiyn"] + f["refunded_tiyn"] == f["received_tiyn"]
    [day] = report.days
    assert (day.day, day.orders, day.conserved) == ("2026-11-26", 3, True)
    assert "RECONCILED" in render(report)


def test_identical_reemissions_are_not_breaches():
    ledger = Ledger()
    again = copy.deepcopy(ledger.posted[0])
    again["posted_at"] = "2026-11-26T11:00:00+05:00"  # a stamp may differ
    ledger.posted.append(again)
    ledger.results.append({**ledger.results[1], "decided_at": "2026-11-26T11:00:00+05:00"})
    report = ledger.check()
    assert report.ok, render(report)
    assert report.figures["reemissions"] == 2


def test_an_order_without_a_result_is_lost():
    ledger = Ledger()
    del ledger.results[1]
    report = ledger.check()
    assert kinds(report) == {"no_result"}
    assert [b.id for b in report.breaches] == ["N-2"]
    assert report.figures["lost"] == 1


def test_an_order_without_a_result_within_its_deadline_is_undecided_not_lost():
    ledger = Ledger()
    del ledger.results[1]
    deadline = lambda received: received + timedelta(days=1)  # noqa: E731
    assert ledger.check(now=NOW, deadline_of=deadline).ok
    assert ledger.check(now=NOW, deadline_of=deadline).figures["undecided"] == 1
    late = ledger.check(now=NOW + timedelta(days=2), deadline_of=deadline)
    assert kinds(late) == {"no_result"}


def test_a_record_neither_dead_lettered_nor_readable_is_lost():
    ledger = Ledger()
    ledger.dead_letters.clear()
    report = ledger.check()
    assert kinds(report) == {"unreadable"}
    assert report.breaches[0].id == f"{TOPIC}[0]@1"


def test_a_reemission_that_differs_is_found():
    ledger = Ledger()
    ledger.posted.append({**ledger.posted[0], "amount": "99.00"})
    ledger.results.append({**ledger.results[0], "status": "partially_refunded"})
    report = ledger.check()
    assert kinds(report) == {"reemission_differs"}
    assert sorted(b.id for b in report.breaches) == ["N-1", "N-1/1"]
    assert "amount" in next(b.detail for b in report.breaches if b.id == "N-1/1")


def test_a_line_without_an_outcome_is_lost_and_amounts_no_longer_add_up():
    ledger = Ledger()
    del ledger.posted[3]  # N-2 line 3
    report = ledger.check()
    assert {"line_lost", "order_not_conserved", "result_mismatch", "day_not_conserved"} == kinds(report)
    lost = [b for b in report.breaches if b.kind == "line_lost"]
    assert [b.id for b in lost] == ["N-2/3 (iin 92******3450)"]
    assert B["iin"] not in render(report), "IINs are masked in the report"


def test_a_line_posted_and_refunded_is_doubled():
    ledger = Ledger()
    q = ledger.partial_order["lines"]
    ledger.posted.append(entry("N-2", q[1]))
    report = ledger.check()
    assert "line_doubled" in kinds(report)
    assert [b.id for b in report.breaches if b.kind == "line_doubled"] == ["N-2/2 (iin 01******4571)"]
    assert report.figures["lines_doubled"] == 1


def test_a_line_refunded_twice_is_doubled():
    ledger = Ledger()
    q = ledger.partial_order["lines"]
    ledger.refunds[0] = refund("N-2", [q[1], q[1]], ["NAME_MISMATCH"] * 2)
    assert "line_doubled" in kinds(ledger.check())


def test_an_entry_of_a_line_the_order_lacks():
    ledger = Ledger()
    ledger.posted.append(entry("N-1", {**ledger.posted_order["lines"][0], "line_no": 9}))
    assert "unknown_line" in kinds(ledger.check())


def test_a_result_that_disagrees_with_the_ledger():
    ledger = Ledger()
    ledger.results[0] = result("N-1", 2, 1, 1, "150.50", "0.00")
    report = ledger.check()
    assert kinds(report) == {"result_mismatch"}


def test_an_entry_amount_that_is_not_the_lines_breaks_conservation():
    ledger = Ledger()
    ledger.posted[0] = {**ledger.posted[0], "amount": "100.01"}
    report = ledger.check()
    assert "order_not_conserved" in kinds(report)
    assert "day_not_conserved" in kinds(report)
    assert [d.conserved for d in report.days] == [False]


def test_a_whole_order_refund_of_less_than_received():
    ledger = Ledger()
    ledger.refunds[1] = {**ledger.refunds[1], "amount": "10.00"}
    ledger.results[2] = result("N-3", 2, 0, 2, "0.00", "10.00")
    report = ledger.check()
    assert kinds(report) == {"order_not_conserved", "day_not_conserved"}
    assert {b.id for b in report.breaches} == {"N-3", "2026-11-26"}


def test_outputs_of_no_order_are_orphans():
    ledger = Ledger()
    stranger = _line(1, C, "1.00")
    ledger.posted.append(entry("N-X", stranger))
    ledger.refunds.append(refund("N-Y", [stranger], ["INVALID_IIN"]))
    ledger.results.append(result("N-Z", 1, 1, 0, "1.00", "0.00"))
    report = ledger.check()
    assert kinds(report) == {"orphan"}
    assert sorted(b.id for b in report.breaches) == ["N-X", "N-Y", "N-Z"]


def test_a_time_range_judges_only_its_notifications():
    ledger = Ledger()
    del ledger.results[1]  # N-2 lost, but outside the range
    ledger.posted.append(entry("N-X", _line(1, C, "1.00")))  # orphans are looked for only in a full run
    in_range = lambda rec: rec.partition != 1  # noqa: E731
    report = ledger.check(judged=in_range)
    assert report.ok, render(report)
    assert report.figures["orders"] == 2


def test_days_are_almaty_days_of_received_at():
    ledger = Ledger()
    # 20:00 UTC on the 25th is 01:00 on the 26th in Almaty.
    ledger.posted_order["received_at"] = "2026-11-25T20:00:00Z"
    ledger.notifications[0] = Raw(0, 0, b"N-1", json.dumps(ledger.posted_order).encode())
    ledger.partial_order["received_at"] = "2026-11-25T18:59:59Z"
    ledger.notifications[2] = Raw(1, 0, b"N-2", json.dumps(ledger.partial_order).encode())
    report = ledger.check()
    assert [(d.day, d.orders) for d in report.days] == [("2026-11-25", 1), ("2026-11-26", 2)]


@pytest.mark.parametrize("kind", sorted(BREACHES))
def test_the_table_names_each_kind_of_breach(kind):
    from tools.reconcile import Breach, Report

    report = Report(figures=Ledger().check().figures, breaches=[Breach(kind, "N-9", "detail")])
    text = render(report)
    assert f"{kind} (1): {BREACHES[kind]}" in text and "N-9: detail" in text
    assert "RECONCILED" not in text
