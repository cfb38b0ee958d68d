"""Personal accounts recounted from the ledger topics, to hold the statement API's answers against:
every record of `posted.contributions`, the lines of `refunds.to-payers`, `posted.reversals`,
`posted.social-payments` and `fund.overpayments` read from the beginning, by IIN.

Two recounts: `accounts` applies the records with the pure rules (rules.accounts), giving the views
the API must answer byte for byte; `sums` adds the amounts of distinct ids directly, without those
rules, for the figures a statement's totals must show."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping

from rules.accounts import Account, refund_lines_by_iin
from rules.money import parse_amount

from .reading import TopicReader

# Topic role -> the Account.apply source of its records (refunds: their lines, re-keyed by IIN).
APPLY_AS = {"contributions": "contribution", "refunds": "refund_line", "reversals": "reversal",
            "social_payments": "social_payment", "overpayments": "overpayment"}


def read_ledger(bootstrap: str, topics: Mapping[str, str]) -> dict[str, list[tuple[str, dict]]]:
    """(Account.apply source, record) by IIN, from every record of the ledger topics (role -> topic)
    as they are now, redeliveries included."""
    by_topic = {topic: role for role, topic in topics.items()}
    out: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    with TopicReader(bootstrap, list(by_topic), client_id="esep-recount") as reader:
        for rec in reader.read_to_end():
            if rec.value is None:
                continue
            role = by_topic[rec.topic]
            value = json.loads(rec.value)
            if role == "refunds":
                for iin, line in refund_lines_by_iin(value):
                    out[iin].append(("refund_line", line))
            else:
                out[value["iin"]].append((APPLY_AS[role], value))
    return dict(out)


def accounts(ledger: Mapping[str, list[tuple[str, dict]]]) -> dict[str, Account]:
    built = {}
    for iin, records in ledger.items():
        account = Account(iin)
        for source, record in records:
            account.apply(source, record)
        built[iin] = account
    return built


def sums(ledger: Mapping[str, list[tuple[str, dict]]]) -> dict[str, dict[str, int]]:
    """Tiyn by IIN: contributions and penalties posted, reversed, refunded (readable refund lines),
    social payments' gross; each id counted once however often it was emitted."""
    out: dict[str, dict[str, int]] = {}
    for iin, records in ledger.items():
        seen: set[tuple[str, str]] = set()
        t = {"contribution": 0, "penalty": 0, "reversed": 0, "refunded": 0, "social_gross": 0}
        for source, r in records:
            ident = {"contribution": r.get("entry_id"), "reversal": r.get("entry_id"),
                     "social_payment": r.get("entry_id"), "overpayment": r.get("overpayment_id"),
                     "refund_line": f"{r.get('refund_id')}/{r.get('line_no')}"}[source]
            if (source, ident) in seen:
                continue
            seen.add((source, ident))
            if source == "contribution":
                t[r["kind"]] += parse_amount(r["amount"])
            elif source == "reversal":
                t["reversed"] += parse_amount(r["amount"])
            elif source == "refund_line":
                t["refunded"] += parse_amount(r["amount"]) or 0
            elif source == "social_payment" and r["kind"] == "payment":
                t["social_gross"] += parse_amount(r["gross_amount"])
        out[iin] = t
    return out
