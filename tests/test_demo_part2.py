"""The demo's Part 2 plans, without a broker: the Fund's day is valid by the models and, replayed on the
pure rules, shows every decision, rejection and overpayment reason it promises; the refund scenario's
reconciliation passes on outputs shaped as the contract says and fails on a doubled reversal."""
from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from models.fund import PaymentDecision, PaymentTransfer
from rules.calendar import ALMATY
from rules.money import format_tiyn
from tools import demo_reversals
from tools.demo_fund import DECISION_KINDS, replay, rows, summarize
from tools.fund_synthetic import DECISIONS, day_script
from tools.synthetic import make_registry

TODAY = date(2026, 12, 2)


@pytest.fixture(scope="module")
def registry():
    return make_registry(200, seed=7, deceased_ratio=0.0)


@pytest.fixture(scope="module")
def day(registry):
    return day_script(registry[:36], TODAY, "2026-12-02T10:00:00+05:00", 7, "T", _stranger(registry))


def _stranger(registry) -> str:
    from tools.synthetic import iin_for

    taken = {p["iin"] for p in registry}
    return next(i for s in range(1, 99) if (i := iin_for(date(1979, 4, 18), "F", s)) and i not in taken)


def test_every_record_of_the_day_is_valid_by_the_models(day):
    for rec in day.records:
        model = PaymentDecision if rec.input == DECISIONS else PaymentTransfer
        model.model_validate_json(json.dumps(rec.value))
    assert [r.step for r in day.records] == sorted(r.step for r in day.records), "records in phase order"


def test_the_day_replayed_shows_every_outcome(day, registry):
    result = replay(day, {p["iin"]: p for p in registry})
    s = summarize(result.ledger, day.lag_ids)
    assert set(s["applied"]) == set(DECISION_KINDS)
    assert s["rejected"]["RECIPIENT_MISMATCH"] == 2 and s["rejected"]["ILLEGAL_TRANSITION"] >= 2
    assert set(s["overpaid"]) == {"EXCEEDS_ASSIGNED", "SUSPENDED", "TERMINATED", "REFUSED", "NO_ASSIGNMENT",
                                  "OUTSIDE_TERM", "KNP_MISMATCH", "AMOUNT_INCONSISTENT"}
    assert set(s["unmatched"]) == {"RETURN_EXCEEDS_OUTSTANDING", "KNP_MISMATCH"}
    assert s["lag_covered"] == 5 and result.held > 5
    assert s["applied_to_overpayments"] > 0
    assert sum(result.repeats.values()) == 2
    transfers = sum(1 for r in day.records if r.input != DECISIONS and not r.repeat)
    assert s["payments"] + s["returns"] == transfers, "every transfer posted, held ones at the cut-off"
    assert all(r[3] for r in rows(s, s, (result.held, result.held), (2, 2)))
    other = dict(s, outstanding=s["outstanding"] + 1)
    assert [r[0] for r in rows(s, other, (1, 1), (2, 2)) if not r[3]] == ["overpayments outstanding at the day's end"]


def _outputs(sc: demo_reversals.RefundScenario):
    """The outputs the contract asks for, built from the scenario's own expectations."""
    posted = {}
    for rec in sc.orders:
        order = json.loads(rec.value)
        for line in order["lines"]:
            eid = f"{order['notification_id']}/{line['line_no']}"
            posted[eid] = {"entry_id": eid, "iin": line["iin"], "amount": line["amount"], "knp": order["knp"]}
    reversals = [{"entry_id": e + "/reversal", "reverses": e, "amount": posted[e]["amount"], "knp": posted[e]["knp"]}
                 for e in sc.expected["reversed"]]
    results = {}
    for value, repeat in sc.decisions:
        results[value["refund_decision_id"]] = {"decision_id": value["refund_decision_id"], "decision": "refund"}
    rejected = {"RD2": [("C/2", "ALREADY_REVERSED")], "RD4": [("C/5", "PERIOD_USED_FOR_PAYMENT")],
                "RD5": [("C/99", "ENTRY_NOT_FOUND")], "RD6": [("P/3", "ENTRY_NOT_FOUND")]}
    for rid, r in results.items():
        short = rid.rsplit("-", 1)[1]
        r["rejected_entries"] = [{"entry_id": e, "reason": why} for e, why in rejected.get(short, [])]
        r["status"] = "rejected" if short in ("RD4", "RD6") else "applied"
        r["reason"] = "NOTHING_REVERSED" if r["status"] == "rejected" else None
    orders = []
    for rid, knp, entries in (("RD1", "026", ["C/1", "C/2"]), ("RD2", "026", ["C/3"]), ("RD3", "094", ["P/1"]),
                              ("RD5", "026", ["C/4"])):
        amount = sum(int(posted[e]["amount"].replace(".", "")) for e in posted if e.split("RFD-")[1] in entries)
        orders.append({"refund_id": f"X-{rid}/refund", "refund_knp": knp, "amount": format_tiyn(amount)})
    return results, reversals, orders, posted


def test_the_refund_scenario_reconciles_and_a_doubled_reversal_does_not(registry):
    now = datetime(2026, 12, 2, 10, 0, tzinfo=ALMATY)
    template = {"bank_bic": "HSBKKZKX", "document_number": "1", "document_date": "2026-12-01",
                "sent_date": "2026-12-01", "received_at": now.isoformat(), "recipient_name": "НАО", "currency": "KZT"}
    payers = [{"name": "ТОО А", "bin_iin": "180440000019", "iban": "KZ86125KZT5004100100"}]
    months = {1: "2026-11", 2: "2026-10", 3: "2026-09"}
    sc = demo_reversals.scenario(template, payers, registry[:5], registry[5], "2026-06", months, "X", now)
    assert sum(len(json.loads(r.value)["lines"]) for r in sc.orders) == 9
    assert [r.expect["total_tiyn"] for r in sc.orders] == [
        sum(r.expect["amounts"].values()) for r in sc.orders]
    results, reversals, orders, posted = _outputs(sc)
    obs = demo_reversals.observed_summary(results, reversals, orders, posted)
    table = demo_reversals.rows(sc.expected, obs, repeats_observed=1)
    assert all(r[3] for r in table), [r for r in table if not r[3]]

    doubled = reversals + [dict(reversals[0], entry_id=reversals[0]["entry_id"] + "-again")]
    obs = demo_reversals.observed_summary(results, doubled, orders, posted)
    failing = {r[0] for r in demo_reversals.rows(sc.expected, obs, 1) if not r[3]}
    assert "entries reversed more than once" in failing and "entries with posted - reversed = 0 or the original" \
        in failing
