"""A month's figures recounted from the output records alone (`esep report recount YYYY-MM`).

Deliberately written apart from aggregate.py, as a batch over whole lists: it is the check that the
incremental partials, merged, give what the topics hold. The first record of each id counts (topic
order), as it does in the streams.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from rules.calendar import BusinessCalendar, default_calendar

from .aggregate import DECISION_COUNTERS, amount_of, decided_late
from .figures import Figures
from .months import day_of_instant, last_day, month_of_date, month_of_instant

__all__ = ["recount"]

Record = Mapping[str, Any]


def _first_by_id(records: Iterable[Record], key: str) -> list[Record]:
    out: dict[str, Record] = {}
    for r in records:
        out.setdefault(r[key], r)
    return list(out.values())


def _in_month(records: Iterable[Record], month: str) -> list[Record]:
    return [r for r in records if month_of_instant(r["received_at"]) == month]


def recount(month: str, records: Mapping[str, Iterable[Record]],
            calendar: BusinessCalendar | None = None) -> Figures:
    """Figures of `month` from output records by source (the names of aggregate.SOURCES).

    `records["contributions"]` also yields the payers: the recount reads one topic where the streams
    read it twice, once keyed by IIN and once by payer.
    """
    calendar = calendar or default_calendar()
    f: Counter[str] = Counter()

    contributions = list(records.get("contributions", ()))
    posted = _in_month(_first_by_id(contributions, "entry_id"), month)
    f["contributions/lines_posted"] = len(posted)
    f["contributions/amount_contributions"] = sum(amount_of(r["amount"]) for r in posted if r["knp"] == "012")
    f["contributions/amount_penalties"] = sum(amount_of(r["amount"]) for r in posted if r["knp"] == "017")
    f["contributions/participants"] = len({r["iin"] for r in posted if r["knp"] == "012"})
    for r in posted:
        f[f"contributions/by_period/{r['period']}/lines"] += 1
        f[f"contributions/by_period/{r['period']}/amount"] += amount_of(r["amount"])
        f[f"contributions/by_day/{day_of_instant(r['received_at'])}/lines"] += 1
        f[f"contributions/by_day/{day_of_instant(r['received_at'])}/amount"] += amount_of(r["amount"])
    # Payers need no de-duplication: a set.
    f["contributions/payers"] = len({r["payer_bin_iin"] for r in _in_month(contributions, month)})

    reversals = _in_month(_first_by_id(records.get("reversals", ()), "entry_id"), month)
    f["contributions/reversals/lines"] = len(reversals)
    f["contributions/reversals/amount"] = sum(amount_of(r["amount"]) for r in reversals)

    refunds = _in_month(_first_by_id(records.get("refunds", ()), "refund_id"), month)
    f["contributions/refunds/orders"] = len(refunds)
    f["contributions/refunds/amount"] = sum(amount_of(r["amount"]) for r in refunds)
    f["contributions/refunds/lines"] = sum(len(r["lines"]) for r in refunds)
    for r in refunds:
        for line in r["lines"]:
            f[f"contributions/refunds/by_reason/{line['reason'] if r['scope'] == 'lines' else r['reason']}"] += 1

    alerts = _in_month(_first_by_id(records.get("alerts", ()), "alert_id"), month)
    f["contributions/deceased_alerts"] = len(alerts)

    results = _in_month(_first_by_id(records.get("results", ()), "notification_id"), month)
    f["contributions/decided_after_deadline"] = sum(1 for r in results if decided_late(r, calendar))

    decisions = [r for r in _first_by_id(records.get("decisions", ()), "decision_id")
                 if month_of_date(r["decided_on"]) == month]
    for r in decisions:
        if r["status"] == "applied" and r["decision"] in DECISION_COUNTERS:
            f[f"social_payments/by_type/{r['payment_type']}/{DECISION_COUNTERS[r['decision']]}"] += 1

    for r in _in_month(_first_by_id(records.get("social_payments", ()), "entry_id"), month):
        base = f"social_payments/by_type/{r['payment_type']}/"
        if r["kind"] == "payment":
            f[base + "payments/count"] += 1
            f[base + "payments/gross"] += amount_of(r["gross_amount"])
            f[base + "payments/withheld"] += amount_of(r["pension_contribution_withheld"])
            f[base + "payments/net"] += amount_of(r["net_amount"])
            if amount_of(r["overpaid_amount"]):
                f[base + "overpaid/count"] += 1
                f[base + "overpaid/amount"] += amount_of(r["overpaid_amount"])
        else:
            f[base + "returns/count"] += 1
            f[base + "returns/amount"] += amount_of(r["gross_amount"])

    applied = [r for r in _first_by_id(records.get("decisions", ()), "decision_id")
               if r["status"] == "applied" and r["decision"] in DECISION_COUNTERS]
    for ptype, n in _active_at_month_end(month, applied).items():
        f[f"social_payments/by_type/{ptype}/recipients_active_at_month_end"] += n
    owed = _outstanding_at_month_end(month, _first_by_id(records.get("social_payments", ()), "entry_id"))
    for ptype, tiyn in owed.items():
        f[f"social_payments/by_type/{ptype}/overpaid_outstanding_at_month_end"] += tiyn

    return {k: v for k, v in f.items() if v}


# --- month-end figures (docs/report-pipeline.md, section 7), from every month's records -----------

def _active_at_month_end(month: str, decisions: list[Record]) -> Counter[str]:
    """Recipients active on the month's last day, per payment type: for each (IIN, type), the
    decisions decided by that day, in topic order."""
    day = last_day(month).isoformat()
    by_recipient: dict[tuple[str, str], list[Record]] = {}
    for r in decisions:
        if r["decided_on"] <= day:
            by_recipient.setdefault((r["iin"], r["payment_type"]), []).append(r)
    out: Counter[str] = Counter()
    for (_, ptype), known in by_recipient.items():
        if _active_on(day, known):
            out[ptype] += 1
    return out


def _active_on(day: str, known: list[Record]) -> bool:
    numbers = [r["assignment_no"] for r in known if r["decision"] == "assign"]
    for number in reversed(numbers):
        # Only what came after this number's (last) assign belongs to it.
        start = max(i for i, r in enumerate(known) if r["decision"] == "assign" and r["assignment_no"] == number)
        own = [r for r in known[start:] if r["assignment_no"] == number]
        ends = [r["end_date"] for r in own if "end_date" in r]
        end = ends[-1] if ends else None
        if own[0]["effective_from"][:7] > day[:7] or (end is not None and end < day):
            continue  # its term does not hold the day: an earlier assignment may
        effective = [r for r in own if r["decision"] in ("assign", "suspend", "resume") and r["effective_from"] <= day]
        return bool(effective) and effective[-1]["decision"] != "suspend"
    return False


def _outstanding_at_month_end(month: str, transfers: list[Record]) -> Counter[str]:
    """Per payment type, the sum over recipients of overpaid minus applied to overpayments by the
    month's end (each recipient's balance floored at zero)."""
    balance: Counter[tuple[str, str]] = Counter()
    for r in transfers:
        if month_of_instant(r["received_at"]) > month:
            continue
        key = (r["iin"], r["payment_type"])
        if r["kind"] == "payment":
            balance[key] += amount_of(r["overpaid_amount"])
        else:
            balance[key] -= amount_of(r["applied_to_overpayment"])
    out: Counter[str] = Counter()
    for (_, ptype), tiyn in balance.items():
        out[ptype] += max(0, tiyn)
    return out
