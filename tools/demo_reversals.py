"""The demo's refunds of posted contributions (contract Part 2, issue 11): two notifications of its
own among the bank's day (a person paid for three months in one order, a penalty order), then the
Fund's refund decisions naming their entries: a partial reversal, an overlapping second decision,
a penalty (refund KNP 094), a repeat, a contribution that made up a payment's base
(PERIOD_USED_FOR_PAYMENT), an entry that is never posted (the decision waits for the cut-off) and
an entry of another notification. Expected by construction from what was sent."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from rules import codes
from rules.money import format_tiyn, parse_amount

from .synthetic import SyntheticRecord

REASON = "излишне уплаченные социальные отчисления, заявление плательщика"


@dataclass
class RefundScenario:
    orders: list[SyntheticRecord]  # well-formed notifications, every line posted, fed with the bank's day
    decisions: list[tuple[dict, bool]]  # (fund.refund-decisions value, a repeat?) in send order
    expected: dict = field(default_factory=dict)


def _order(template: dict, nid: str, knp: str, payer: dict, lines: list[tuple[dict, str, int]]) -> SyntheticRecord:
    """A clean notification like the day's (`template`), with `lines` of (person, period, tiyn)."""
    order = {k: v for k, v in template.items() if k not in ("period", "lines")}
    order.update(notification_id=nid, knp=knp, payer=payer, total_amount=format_tiyn(sum(t for _, _, t in lines)))
    order["lines"] = [{"line_no": n, "iin": p["iin"], "surname": p["surname"], "name": p["name"],
                       "patronymic": p["patronymic"], "birth_date": p["birth_date"], "amount": format_tiyn(t),
                       "period": period} for n, (p, period, t) in enumerate(lines, start=1)]
    amounts = {n: t for n, (_, _, t) in enumerate(lines, start=1)}
    expect = {"notification_id": nid, "knp": knp, "order_reason": None, "lines": {n: None for n in amounts},
              "line_count": len(lines), "amounts": amounts, "total_tiyn": sum(amounts.values()), "late_lines": [],
              "status": "posted", "posted_tiyn": sum(amounts.values()), "refunded_tiyn": 0}
    return SyntheticRecord(nid.encode(), json.dumps(order, ensure_ascii=False).encode(), "order", expect)


def scenario(template: dict, payers: list[dict], persons: list[dict], risk_person: dict, risk_month: str,
             months: dict[int, str], prefix: str, received: datetime) -> RefundScenario:
    """`persons`: five living registry persons who are no Fund recipients (P, S, U in the contribution
    order, Q, V in the penalty order); `risk_person` an assigned recipient whose risk occurred in
    `risk_month`, paying here for the month before it; `months[k]`: YYYY-MM k months back."""
    p, s, u, q, v = persons
    y, m = int(risk_month[:4]), int(risk_month[5:])
    before_risk = f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"
    o1, o2 = f"{prefix}-RFD-C", f"{prefix}-RFD-P"
    contributions = _order(template, o1, "012", payers[0], [
        (p, months[1], 2_150_000), (p, months[2], 2_150_000), (p, months[3], 1_980_050), (s, months[1], 1_234_500),
        (risk_person, before_risk, 1_777_700), (u, months[1], 905_025)])
    penalties = _order(template, o2, "017", payers[1 % len(payers)], [
        (q, months[2], 123_456), (q, months[3], 98_700), (v, months[1], 45_000)])
    stamp = received.isoformat(timespec="seconds")

    def decision(n: int, person: dict, nid: str, entries: list[str], payer: dict) -> dict:
        return {"refund_decision_id": f"{prefix}-RD{n}", "iin": person["iin"], "notification_id": nid,
                "entry_ids": entries, "reason": REASON, "decided_on": received.date().isoformat(),
                "received_at": stamp, "payer": payer}

    r1 = decision(1, p, o1, [f"{o1}/1", f"{o1}/2"], payers[0])  # part of the order: two of P's three months
    r2 = decision(2, p, o1, [f"{o1}/2", f"{o1}/3"], payers[0])  # overlaps r1: /2 ALREADY_REVERSED, /3 reversed
    r3 = decision(3, q, o2, [f"{o2}/1"], payers[1 % len(payers)])  # a penalty: refund KNP 094
    r4 = decision(4, risk_person, o1, [f"{o1}/5"], payers[0])  # PERIOD_USED_FOR_PAYMENT: nothing reversed
    r5 = decision(5, s, o1, [f"{o1}/4", f"{o1}/99"], payers[0])  # /99 is never posted: waits for the cut-off
    r6 = decision(6, u, o1, [f"{o2}/3"], payers[0])  # an entry of another notification: nothing reversed
    amounts = {f"{o1}/{n}": t for n, t in contributions.expect["amounts"].items()}
    amounts |= {f"{o2}/{n}": t for n, t in penalties.expect["amounts"].items()}
    reversed_ids = [f"{o1}/1", f"{o1}/2", f"{o1}/3", f"{o2}/1", f"{o1}/4"]
    by_knp = Counter()
    for e in reversed_ids:
        by_knp["017" if e.startswith(o2) else "012"] += amounts[e]
    expected = {
        "decisions": 6, "status": {"applied": 4, "rejected": 2}, "nothing_reversed": 2,
        "reversed": sorted(reversed_ids), "amount": sum(amounts[e] for e in reversed_ids),
        "amount_by_knp": dict(by_knp),
        "rejected": {codes.ALREADY_REVERSED: 1, codes.PERIOD_USED_FOR_PAYMENT: 1, codes.ENTRY_NOT_FOUND: 2},
        "refund_orders": 4, "refund_knps": {"026": 3, "094": 1}, "repeats": 1,
    }
    decisions = [(r1, False), (r2, False), (r3, False), (r3, True), (r4, False), (r5, False), (r6, False)]
    return RefundScenario([contributions, penalties], decisions, expected)


def observed_summary(results: dict[str, dict], reversals: list[dict], refund_orders: list[dict],
                     posted: dict[str, dict]) -> dict:
    """What the topics show. `results`: fund.decision-results by id (first emission); `reversals`
    and `refund_orders` every record as emitted; `posted`: posted.contributions by entry_id."""
    refund_results = [r for r in results.values() if r["decision"] == "refund"]
    first: dict[str, dict] = {}
    times = Counter()
    for r in reversals:
        if r["entry_id"] not in first:
            first[r["entry_id"]] = r
            times[r["reverses"]] += 1
    rejected = Counter(e["reason"] for r in refund_results for e in r["rejected_entries"])
    by_knp = Counter()
    for r in first.values():
        by_knp[r["knp"]] += parse_amount(r["amount"])
    orders = {o["refund_id"]: o for o in reversed(refund_orders)}  # the first emission wins
    reversed_by_entry = defaultdict(int)
    for r in first.values():
        reversed_by_entry[r["reverses"]] += parse_amount(r["amount"])
    conserved = sum(1 for eid, e in posted.items()
                    if parse_amount(e["amount"]) - reversed_by_entry.get(eid, 0) in (0, parse_amount(e["amount"])))
    return {
        "decisions": len(refund_results), "status": dict(Counter(r["status"] for r in refund_results)),
        "nothing_reversed": sum(1 for r in refund_results if r["reason"] == codes.NOTHING_REVERSED),
        "reversed": sorted(r["reverses"] for r in first.values()), "amount": sum(by_knp.values()),
        "amount_by_knp": dict(by_knp), "rejected": dict(rejected), "refund_orders": len(orders),
        "refund_knps": dict(Counter(o["refund_knp"] for o in orders.values())),
        "refund_orders_amount": sum(parse_amount(o["amount"]) for o in orders.values()),
        "reversed_twice": sum(1 for n in times.values() if n > 1),
        "entries": len(posted), "entries_conserved": conserved,
    }


def rows(exp: dict, obs: dict, repeats_observed: int) -> list[tuple[str, str, str, bool]]:
    out = []
    money = lambda t: format_tiyn(t) + " ₸"  # noqa: E731

    def row(label, e, o, fmt=str):
        out.append((label, fmt(e), fmt(o), e == o))

    row("refund decisions decided", exp["decisions"], obs["decisions"])
    for status in ("applied", "rejected"):
        row(f"  {status}", exp["status"].get(status, 0), obs["status"].get(status, 0))
    row(f"    {codes.NOTHING_REVERSED}", exp["nothing_reversed"], obs["nothing_reversed"])
    row("repeated refund decisions ignored", exp["repeats"], repeats_observed)
    row("entries reversed (posted.reversals)", len(exp["reversed"]), len(obs["reversed"]))
    row("  the entries the decisions named", ", ".join(e.rsplit("-", 1)[-1] for e in exp["reversed"]),
        ", ".join(e.rsplit("-", 1)[-1] for e in obs["reversed"]))
    for knp, kind in codes.CONTRIBUTION_KNPS.items():
        row(f"  amount reversed, KNP {knp} ({kind})", exp["amount_by_knp"].get(knp, 0),
            obs["amount_by_knp"].get(knp, 0), money)
    for reason in codes.REVERSAL_ENTRY_REASONS:
        row(f"entries rejected {reason}", exp["rejected"].get(reason, 0), obs["rejected"].get(reason, 0))
    row("refund orders (refunds.reversals)", exp["refund_orders"], obs["refund_orders"])
    for knp in ("026", "094"):
        row(f"  refund KNP {knp}", exp["refund_knps"].get(knp, 0), obs["refund_knps"].get(knp, 0))
    row("  their amount = amount reversed", exp["amount"], obs["refund_orders_amount"], money)
    row("entries reversed more than once", 0, obs["reversed_twice"])
    row("entries with posted - reversed = 0 or the original", obs["entries"], obs["entries_conserved"])
    return out
