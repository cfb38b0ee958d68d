"""Personal accounts (Rules, clause 4): what was posted, reversed, refunded and paid for one IIN.

An `Account` is built from the ledger topics' records (plain dicts as decoded from JSON):
`posted.contributions`, `posted.reversals`, the lines of `refunds.to-payers` re-keyed by IIN
(`refund_lines_by_iin`), `posted.social-payments` and `fund.overpayments`. Each item is stored under
its deterministic id (entry_id, `<refund_id>/<line_no>`, overpayment_id), so a redelivered record
counts once, and only fields that are equal in every re-emission are kept (the worker-clock stamps
`posted_at`/`created_at` differ between re-emissions and are dropped), so the account is the same
whatever order or how many times the records arrive. Amounts are integer tiyn.

The state is a plain JSON object (`to_json`/`from_json`) because it lives in a key-value store with
a compacted changelog, partitioned by IIN. Views (`totals`, `statement`) are computed on request from
the stored items: sums are exact and never drift from the items they summarize.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from . import json_bytes
from .calendar import month_of
from .dates import format_period, parse_period
from .iin import is_valid_iin
from .money import format_tiyn, parse_amount

__all__ = [
    "Account",
    "AccountRecordError",
    "APPLIED",
    "CONFLICT",
    "DUPLICATE",
    "STATE_VERSION",
    "parse_range",
    "refund_lines_by_iin",
    "statement_csv",
    "totals_csv",
]

STATE_VERSION = 1
APPLIED, DUPLICATE, CONFLICT = "applied", "duplicate", "conflict"
SECTIONS = ("contributions", "reversals", "refunds", "social_payments", "overpayments")
# A statement covers at most this many months: a whole working life fits, an absurd range does not.
MAX_RANGE_MONTHS = 1200
# Far above any real amount, and within the 64-bit integers the state's JSON encoder (orjson) takes.
MAX_TIYN = 10**17


class AccountRecordError(ValueError):
    """A ledger record that cannot belong to this account (wrong IIN, missing field, bad amount)."""


def _text(record: dict, name: str, *, optional: bool = False) -> str | None:
    value = record.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise AccountRecordError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _tiyn(record: dict, name: str) -> int:
    raw = record.get(name)
    tiyn = parse_amount(raw)
    if tiyn is None or tiyn > MAX_TIYN:
        raise AccountRecordError(f"{name}={raw!r} is not an amount")
    return tiyn


@functools.lru_cache(maxsize=1 << 16)
def _instant(value: str | None) -> str:
    """A sortable UTC form of a timestamp ("" when absent): records carry different offsets."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AccountRecordError(f"{value!r} is not a timestamp") from None
    if moment.tzinfo is None:
        raise AccountRecordError(f"{value!r} has no offset")
    return moment.astimezone(timezone.utc).isoformat()


def _month_of_receipt(value: str | None) -> str | None:
    if not value:
        return None
    return format_period(month_of(datetime.fromisoformat(value)))


def _canonical(item: dict) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False)


def refund_lines_by_iin(refund: dict) -> list[tuple[str, dict]]:
    """The lines of a `refunds.to-payers` record as (IIN, refund line) for the accounts' stream.

    The refund topic is keyed by notification; accounts are partitioned by IIN, so each line is
    re-keyed by the IIN it was sent for. A line whose IIN is not a valid IIN (the `INVALID_IIN`
    refunds) belongs to nobody's account and is left out: such an IIN cannot be asked for either.
    Each line carries what the account keeps of its order, so it can be applied on its own."""
    refund_id = _text(refund, "refund_id")
    lines = refund.get("lines")
    if not isinstance(lines, list):
        raise AccountRecordError("lines must be a list")
    payer = refund.get("payer") if isinstance(refund.get("payer"), dict) else {}
    out = []
    for line in lines:
        if not isinstance(line, dict) or not is_valid_iin(line.get("iin")):
            continue
        out.append((line["iin"], {
            "refund_id": refund_id,
            "notification_id": refund.get("notification_id"),
            "line_no": line.get("line_no"),
            "iin": line["iin"],
            "period": line.get("period"),
            "amount": line.get("amount"),
            # Whole-order refunds give the order's reason on every line already; keep either.
            "reason": line.get("reason") or refund.get("reason"),
            "scope": refund.get("scope"),
            "knp": refund.get("knp"),
            "refund_knp": refund.get("refund_knp"),
            "payer_name": payer.get("name"),
            "payer_bin_iin": payer.get("bin_iin"),
            "document_number": refund.get("document_number"),
            "document_date": refund.get("document_date"),
            "received_at": refund.get("received_at"),
        }))
    return out


def parse_range(start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """A statement's `from`/`to` (YYYY-MM, either may be absent); ValueError says what is wrong."""
    parsed = []
    for name, value in (("from", start), ("to", end)):
        if value is None or value == "":
            parsed.append(None)
            continue
        p = parse_period(value)
        if p is None:
            raise ValueError(f"{name}={value!r} is not a month YYYY-MM")
        parsed.append(p)
    a, b = parsed
    if a is not None and b is not None:
        if a > b:
            raise ValueError("from is after to")
        if (b[0] - a[0]) * 12 + (b[1] - a[1]) + 1 > MAX_RANGE_MONTHS:
            raise ValueError(f"a statement covers at most {MAX_RANGE_MONTHS} months")
    return (None if a is None else format_period(a)), (None if b is None else format_period(b))


def _in_range(month: str | None, start: str | None, end: str | None) -> bool:
    if month is None:
        # Only a refund line of an order with no readable period and no received_at has no month:
        # it appears in an unbounded statement and in the totals, never in a bounded range.
        return start is None and end is None
    return (start is None or month >= start) and (end is None or month <= end)


@dataclass
class Account:
    iin: str
    person: dict | None = None
    contributions: dict[str, dict] = field(default_factory=dict)
    reversals: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    social_payments: dict[str, dict] = field(default_factory=dict)
    overpayments: dict[str, dict] = field(default_factory=dict)

    # ---- applying records ------------------------------------------------------------------

    def _check_iin(self, record: dict) -> None:
        if record.get("iin") != self.iin:
            raise AccountRecordError("the record is of another IIN")

    def _store(self, section: str, item_id: str, item: dict) -> str:
        items = getattr(self, section)
        old = items.get(item_id)
        if old is None:
            items[item_id] = item
            return APPLIED
        if old == item:
            return DUPLICATE
        # Re-emissions are equal in every field kept here, so a difference is an upstream fault;
        # keeping the smaller of the two makes the account independent of arrival order anyway.
        items[item_id] = min(old, item, key=_canonical)
        return CONFLICT

    def _see_person(self, record: dict, source_id: str) -> None:
        """The person's data as the latest posted record spells it (the registry's spelling):
        latest by business time, then by id, so the choice does not depend on arrival order."""
        rank = [_instant(record.get("received_at")), source_id]
        if self.person is not None and self.person["rank"] >= rank:
            return
        self.person = {
            "surname": record.get("surname"),
            "name": record.get("name"),
            "patronymic": record.get("patronymic"),
            "birth_date": record.get("birth_date"),
            "rank": rank,
        }

    def apply_contribution(self, record: dict) -> str:
        """A `posted.contributions` entry."""
        self._check_iin(record)
        entry_id = _text(record, "entry_id")
        kind = _text(record, "kind")
        if kind not in ("contribution", "penalty"):
            raise AccountRecordError(f"kind={kind!r}")
        if parse_period(record.get("period")) is None:
            raise AccountRecordError(f"period={record.get('period')!r}")
        item = {
            "kind": kind,
            "knp": _text(record, "knp"),
            "amount": _tiyn(record, "amount"),
            "period": record["period"],
            "document_number": _text(record, "document_number"),
            "document_date": _text(record, "document_date"),
            "received_at": _text(record, "received_at"),
            "payer_name": _text(record, "payer_name"),
            "payer_bin_iin": _text(record, "payer_bin_iin"),
        }
        _instant(item["received_at"])
        outcome = self._store("contributions", entry_id, item)
        self._see_person(record, entry_id)
        return outcome

    def apply_reversal(self, record: dict) -> str:
        """A `posted.reversals` entry (contract Part 2): the reversed amount is positive."""
        self._check_iin(record)
        entry_id = _text(record, "entry_id")
        kind = _text(record, "kind")
        if kind not in ("contribution", "penalty"):
            raise AccountRecordError(f"kind={kind!r}")
        if parse_period(record.get("period")) is None:
            raise AccountRecordError(f"period={record.get('period')!r}")
        item = {
            "reverses": _text(record, "reverses"),
            "refund_decision_id": _text(record, "refund_decision_id"),
            "kind": kind,
            "knp": _text(record, "knp"),
            "amount": _tiyn(record, "amount"),
            "period": record["period"],
            "document_number": _text(record, "document_number"),
            "document_date": _text(record, "document_date"),
            "received_at": _text(record, "received_at"),
            "payer_name": _text(record, "payer_name", optional=True),
            "payer_bin_iin": _text(record, "payer_bin_iin", optional=True),
        }
        _instant(item["received_at"])
        outcome = self._store("reversals", entry_id, item)
        self._see_person(record, entry_id)
        return outcome

    def apply_refund_line(self, line: dict) -> str:
        """One line of `refund_lines_by_iin`. The amount is kept as sent when it cannot be read
        (a whole-order TOTAL_MISMATCH echoes the lines as received); such a line is listed but
        adds nothing to the sums."""
        self._check_iin(line)
        refund_id = _text(line, "refund_id")
        line_no = line.get("line_no")
        if not isinstance(line_no, int) or isinstance(line_no, bool):
            raise AccountRecordError(f"line_no={line_no!r}")
        raw = line.get("amount")
        readable = parse_amount(raw)
        if readable is not None and readable > MAX_TIYN:
            readable = None
        period = line.get("period") if parse_period(line.get("period")) is not None else None
        item = {
            "notification_id": line.get("notification_id"),
            "line_no": line_no,
            "period": period,
            "period_as_sent": None if period is not None or line.get("period") is None else str(line["period"])[:32],
            "amount": readable,
            "amount_as_sent": None if readable is not None else (raw if isinstance(raw, str) else repr(raw))[:64],
            "reason": line.get("reason"),
            "scope": line.get("scope"),
            "knp": line.get("knp"),
            "refund_knp": line.get("refund_knp"),
            "payer_name": line.get("payer_name"),
            "payer_bin_iin": line.get("payer_bin_iin"),
            "document_number": line.get("document_number"),
            "document_date": line.get("document_date"),
            "received_at": line.get("received_at"),
        }
        _instant(item["received_at"])
        # Refund lines echo the person as the payer spelled it (often the reason for the refund),
        # so they never set the account's person.
        return self._store("refunds", f"{refund_id}/{line_no}", item)

    def apply_social_payment(self, record: dict) -> str:
        """A `posted.social-payments` entry: a payment or a return (contract Part 2)."""
        self._check_iin(record)
        entry_id = _text(record, "entry_id")
        kind = _text(record, "kind")
        if kind not in ("payment", "return"):
            raise AccountRecordError(f"kind={kind!r}")
        item = {
            "payment_type": _text(record, "payment_type"),
            "kind": kind,
            "knp": _text(record, "knp"),
            "period": _text(record, "period"),
            "gross": _tiyn(record, "gross_amount"),
            "withheld": _tiyn(record, "pension_contribution_withheld"),
            "net": _tiyn(record, "net_amount"),
            "covered": _tiyn(record, "covered_amount"),
            "overpaid": _tiyn(record, "overpaid_amount"),
            "overpaid_reason": record.get("overpaid_reason"),
            "applied_to_overpayment": _tiyn(record, "applied_to_overpayment"),
            "unmatched": _tiyn(record, "unmatched_amount"),
            "assignment_no": record.get("assignment_no"),
            "document_number": _text(record, "document_number"),
            "document_date": _text(record, "document_date"),
            "received_at": _text(record, "received_at"),
            "sender_name": record.get("sender_name"),
            "sender_bin": record.get("sender_bin"),
        }
        if parse_period(item["period"]) is None:
            raise AccountRecordError(f"period={item['period']!r}")
        _instant(item["received_at"])
        outcome = self._store("social_payments", entry_id, item)
        self._see_person(record, entry_id)
        return outcome

    def apply_overpayment(self, record: dict) -> str:
        """A `fund.overpayments` record (an overpaid payment or the unmatched part of a return)."""
        self._check_iin(record)
        overpayment_id = _text(record, "overpayment_id")
        kind = _text(record, "kind")
        if kind not in ("overpaid", "unmatched_return"):
            raise AccountRecordError(f"kind={kind!r}")
        item = {
            "payment_type": _text(record, "payment_type"),
            "period": _text(record, "period"),
            "kind": kind,
            "reason": _text(record, "reason"),
            "amount": _tiyn(record, "amount"),
            "outstanding_after": _tiyn(record, "outstanding_after"),
        }
        if parse_period(item["period"]) is None:
            raise AccountRecordError(f"period={item['period']!r}")
        return self._store("overpayments", overpayment_id, item)

    APPLY = {
        "contribution": apply_contribution,
        "reversal": apply_reversal,
        "refund_line": apply_refund_line,
        "social_payment": apply_social_payment,
        "overpayment": apply_overpayment,
    }

    def apply(self, source: str, record: dict) -> str:
        """Apply a record of `source` (a key of APPLY); returns APPLIED, DUPLICATE or CONFLICT."""
        try:
            method = self.APPLY[source]
        except KeyError:
            raise AccountRecordError(f"unknown source {source!r}") from None
        if not isinstance(record, dict):
            raise AccountRecordError("a record is a JSON object")
        return method(self, record)

    def merge(self, other: "Account") -> int:
        """Take in what `other` (a state of the same IIN) holds: the account both would be had each
        seen the other's records. Commutative and idempotent, like `apply`, so a store restoring
        from its changelog can merge each value instead of trusting the order of the writes.
        Returns the number of items added or changed."""
        if other.iin != self.iin:
            raise AccountRecordError("the state is of another IIN")
        changed = 0
        for section in SECTIONS:
            for item_id, item in getattr(other, section).items():
                if self._store(section, item_id, item) != DUPLICATE:
                    changed += 1
        if other.person is not None and (self.person is None or list(other.person["rank"]) > list(self.person["rank"])):
            self.person = other.person
        return changed

    # ---- state ---------------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, s) for s in SECTIONS)

    @property
    def is_recipient(self) -> bool:
        """A recipient of social payments: what the `fund` role may see."""
        return bool(self.social_payments or self.overpayments)

    def to_json(self) -> bytes:
        state = {"v": STATE_VERSION, "iin": self.iin, "person": self.person}
        state.update({s: getattr(self, s) for s in SECTIONS})
        return json_bytes.dumps(state, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Account":
        state = orjson.loads(raw)
        if not isinstance(state, dict) or state.get("v") != STATE_VERSION:
            raise ValueError(f"not an account state of version {STATE_VERSION}")
        return cls(iin=state["iin"], person=state.get("person"), **{s: state.get(s) or {} for s in SECTIONS})

    # ---- views ---------------------------------------------------------------------------------

    def _person_view(self) -> dict | None:
        if self.person is None:
            return None
        return {k: self.person[k] for k in ("surname", "name", "patronymic", "birth_date")}

    def _latest_received_at(self) -> str | None:
        stamps = [item.get("received_at") for s in ("contributions", "reversals", "refunds", "social_payments")
                  for item in getattr(self, s).values() if item.get("received_at")]
        return max(stamps, key=_instant) if stamps else None

    def months_covered(self) -> list[str]:
        """Periods with a positive net of posted contributions (KNP 012) after reversals."""
        net: dict[str, int] = {}
        for item in self.contributions.values():
            if item["kind"] == "contribution":
                net[item["period"]] = net.get(item["period"], 0) + item["amount"]
        for item in self.reversals.values():
            if item["kind"] == "contribution":
                net[item["period"]] = net.get(item["period"], 0) - item["amount"]
        return sorted(p for p, tiyn in net.items() if tiyn > 0)

    def totals(self) -> dict:
        """GET /v1/accounts/{iin}: the whole account summed, and the months covered."""
        by_kind = {k: {"entries": 0, "posted": 0, "reversed": 0} for k in ("contribution", "penalty")}
        for item in self.contributions.values():
            by_kind[item["kind"]]["entries"] += 1
            by_kind[item["kind"]]["posted"] += item["amount"]
        for item in self.reversals.values():
            by_kind[item["kind"]]["reversed"] += item["amount"]
        refunds = {"lines": len(self.refunds), "amount": 0, "unreadable_lines": 0}
        for item in self.refunds.values():
            if item["amount"] is None:
                refunds["unreadable_lines"] += 1
            else:
                refunds["amount"] += item["amount"]
        months = self.months_covered()
        return {
            "iin": self.iin,
            "person": self._person_view(),
            "as_of": self._latest_received_at(),
            "months_covered": {
                "count": len(months),
                "first": months[0] if months else None,
                "last": months[-1] if months else None,
                "periods": months,
            },
            "contributions": _kind_view(by_kind["contribution"]),
            "penalties": _kind_view(by_kind["penalty"]),
            "refunds": {"lines": refunds["lines"], "amount": format_tiyn(refunds["amount"]),
                        "unreadable_lines": refunds["unreadable_lines"]},
            "reversals": {"entries": len(self.reversals),
                          "amount": format_tiyn(sum(i["amount"] for i in self.reversals.values()))},
            "social_payments": _social_totals(self.social_payments.values(), self.overpayments.values()),
        }

    def statement(self, start: str | None = None, end: str | None = None) -> dict:
        """GET /v1/accounts/{iin}/statement: every item whose month lies in start..end (YYYY-MM,
        inclusive; None = open). The month of an item is the period it is for; a refund line
        without a readable period counts in the Asia/Almaty month of its notification's receipt."""
        start, end = parse_range(start, end)
        reversed_by = {item["reverses"]: rid for rid, item in self.reversals.items()}
        periods: dict[str, dict] = {}
        for entry_id, item in sorted(self.contributions.items(), key=_by_time):
            if not _in_range(item["period"], start, end):
                continue
            period = periods.setdefault(item["period"], {"payers": {}, "contribution": 0, "penalty": 0,
                                                         "reversed": 0})
            period[item["kind"]] += item["amount"]
            payer = period["payers"].setdefault(item["payer_bin_iin"], {"name": item["payer_name"],
                                                                        "contribution": 0, "penalty": 0,
                                                                        "entries": []})
            payer["name"] = item["payer_name"]  # sorted by time: the latest spelling stays
            payer[item["kind"]] += item["amount"]
            payer["entries"].append({
                "entry_id": entry_id, "kind": item["kind"], "knp": item["knp"],
                "amount": format_tiyn(item["amount"]), "document_number": item["document_number"],
                "document_date": item["document_date"], "received_at": item["received_at"],
                "reversed_by": reversed_by.get(entry_id),
            })
        reversals = []
        for entry_id, item in sorted(self.reversals.items(), key=_by_period_time):
            if not _in_range(item["period"], start, end):
                continue
            periods.setdefault(item["period"], {"payers": {}, "contribution": 0, "penalty": 0,
                                                "reversed": 0})["reversed"] += item["amount"]
            reversals.append({
                "entry_id": entry_id, "reverses": item["reverses"], "refund_decision_id": item["refund_decision_id"],
                "kind": item["kind"], "knp": item["knp"], "period": item["period"],
                "amount": format_tiyn(item["amount"]), "payer_bin_iin": item["payer_bin_iin"],
                "payer_name": item["payer_name"], "document_number": item["document_number"],
                "document_date": item["document_date"], "received_at": item["received_at"],
            })
        refunds, refunded = [], 0
        for key, item in sorted(self.refunds.items(), key=_refund_order):
            month = item["period"] or _month_of_receipt(item["received_at"])
            if not _in_range(month, start, end):
                continue
            refunded += item["amount"] or 0
            refunds.append({
                "refund_id": key.rsplit("/", 1)[0], "notification_id": item["notification_id"],
                "line_no": item["line_no"], "period": item["period"], "period_as_sent": item["period_as_sent"],
                "month": month,
                "amount": None if item["amount"] is None else format_tiyn(item["amount"]),
                "amount_as_sent": item["amount_as_sent"], "reason": item["reason"], "scope": item["scope"],
                "knp": item["knp"], "refund_knp": item["refund_knp"], "payer_bin_iin": item["payer_bin_iin"],
                "payer_name": item["payer_name"], "document_number": item["document_number"],
                "document_date": item["document_date"], "received_at": item["received_at"],
            })
        payments = [
            _social_view(entry_id, item) for entry_id, item in sorted(self.social_payments.items(), key=_by_period_time)
            if _in_range(item["period"], start, end)
        ]
        overpayments = [
            {"overpayment_id": oid, "payment_type": item["payment_type"], "period": item["period"],
             "kind": item["kind"], "reason": item["reason"], "amount": format_tiyn(item["amount"]),
             "outstanding_after": format_tiyn(item["outstanding_after"])}
            for oid, item in sorted(self.overpayments.items(), key=lambda kv: (kv[1]["period"], kv[0]))
            if _in_range(item["period"], start, end)
        ]
        in_range_social = [item for item in self.social_payments.values() if _in_range(item["period"], start, end)]
        in_range_over = [item for item in self.overpayments.values() if _in_range(item["period"], start, end)]
        return {
            "iin": self.iin,
            "person": self._person_view(),
            "from": start,
            "to": end,
            "periods": [_period_view(p, periods[p]) for p in sorted(periods)],
            "reversals": reversals,
            "refunds": refunds,
            "social_payments": payments,
            "overpayments": overpayments,
            "totals": {
                "contributions": format_tiyn(sum(p["contribution"] for p in periods.values())),
                "penalties": format_tiyn(sum(p["penalty"] for p in periods.values())),
                "reversed": format_tiyn(sum(p["reversed"] for p in periods.values())),
                "refunded": format_tiyn(refunded),
                "social_payments": _social_totals(in_range_social, in_range_over),
            },
        }


def _by_time(kv: tuple[str, dict]) -> tuple:
    return _instant(kv[1].get("received_at")), kv[0]


def _by_period_time(kv: tuple[str, dict]) -> tuple:
    return kv[1]["period"], _instant(kv[1].get("received_at")), kv[0]


def _refund_order(kv: tuple[str, dict]) -> tuple:
    return kv[1]["period"] or "", _instant(kv[1].get("received_at")), kv[1]["notification_id"] or "", kv[1]["line_no"]


def _kind_view(t: dict) -> dict:
    return {"entries": t["entries"], "posted": format_tiyn(t["posted"]), "reversed": format_tiyn(t["reversed"]),
            "net": format_tiyn(t["posted"] - t["reversed"])}


def _social_totals(payments, overpayments) -> dict:
    pay = {"count": 0, "gross": 0, "withheld": 0, "net": 0, "covered": 0, "overpaid": 0}
    ret = {"count": 0, "gross": 0, "applied_to_overpayment": 0, "unmatched": 0}
    for item in payments:
        if item["kind"] == "payment":
            pay["count"] += 1
            for k in ("gross", "withheld", "net", "covered", "overpaid"):
                pay[k] += item[k]
        else:
            ret["count"] += 1
            for k in ("gross", "applied_to_overpayment", "unmatched"):
                ret[k] += item[k]
    over = {"count": 0, "overpaid": 0, "unmatched_returns": 0}
    for item in overpayments:
        over["count"] += 1
        over["overpaid" if item["kind"] == "overpaid" else "unmatched_returns"] += item["amount"]
    return {
        "payments": {k: (v if k == "count" else format_tiyn(v)) for k, v in pay.items()},
        "returns": {k: (v if k == "count" else format_tiyn(v)) for k, v in ret.items()},
        "overpayments": {k: (v if k == "count" else format_tiyn(v)) for k, v in over.items()},
        # What is still to recover: every overpaid amount posted, less what returns matched.
        "overpaid_outstanding": format_tiyn(pay["overpaid"] - ret["applied_to_overpayment"]),
    }


def _social_view(entry_id: str, item: dict) -> dict:
    return {
        "entry_id": entry_id, "payment_type": item["payment_type"], "kind": item["kind"], "knp": item["knp"],
        "period": item["period"], "gross_amount": format_tiyn(item["gross"]),
        "pension_contribution_withheld": format_tiyn(item["withheld"]), "net_amount": format_tiyn(item["net"]),
        "covered_amount": format_tiyn(item["covered"]), "overpaid_amount": format_tiyn(item["overpaid"]),
        "overpaid_reason": item["overpaid_reason"],
        "applied_to_overpayment": format_tiyn(item["applied_to_overpayment"]),
        "unmatched_amount": format_tiyn(item["unmatched"]), "assignment_no": item["assignment_no"],
        "document_number": item["document_number"], "document_date": item["document_date"],
        "received_at": item["received_at"], "sender_name": item["sender_name"], "sender_bin": item["sender_bin"],
    }


def _period_view(period: str, p: dict) -> dict:
    return {
        "period": period,
        "contributions": format_tiyn(p["contribution"]),
        "penalties": format_tiyn(p["penalty"]),
        "reversed": format_tiyn(p["reversed"]),
        "net": format_tiyn(p["contribution"] + p["penalty"] - p["reversed"]),
        "payers": [
            {"bin_iin": bin_iin, "name": payer["name"], "contributions": format_tiyn(payer["contribution"]),
             "penalties": format_tiyn(payer["penalty"]), "entries": payer["entries"]}
            for bin_iin, payer in sorted(p["payers"].items())
        ],
    }


# ---- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "section", "period", "id", "kind", "knp", "payment_type", "counterparty_bin_iin", "counterparty_name",
    "document_number", "document_date", "received_at", "amount", "withheld", "net", "covered", "overpaid",
    "applied_to_overpayment", "unmatched", "outstanding_after", "reason", "reference",
)
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    # A spreadsheet runs a cell that starts like a formula, and names come from the payers' banks;
    # amounts (which may be negative) are left as they are.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _write(rows: list[dict], columns) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def statement_csv(statement: dict) -> str:
    """The statement view as CSV (RFC 4180, CRLF): one row per item, sections in the JSON's order."""
    rows = []
    for period in statement["periods"]:
        for payer in period["payers"]:
            for e in payer["entries"]:
                rows.append({"section": "contributions", "period": period["period"], "id": e["entry_id"],
                             "kind": e["kind"], "knp": e["knp"], "counterparty_bin_iin": payer["bin_iin"],
                             "counterparty_name": payer["name"], "document_number": e["document_number"],
                             "document_date": e["document_date"], "received_at": e["received_at"],
                             "amount": e["amount"], "reference": e["reversed_by"]})
    for r in statement["reversals"]:
        rows.append({"section": "reversals", "period": r["period"], "id": r["entry_id"], "kind": r["kind"],
                     "knp": r["knp"], "counterparty_bin_iin": r["payer_bin_iin"],
                     "counterparty_name": r["payer_name"], "document_number": r["document_number"],
                     "document_date": r["document_date"], "received_at": r["received_at"], "amount": r["amount"],
                     "reason": r["refund_decision_id"], "reference": r["reverses"]})
    for r in statement["refunds"]:
        rows.append({"section": "refunds", "period": r["month"], "id": f"{r['refund_id']}/{r['line_no']}",
                     "kind": r["scope"], "knp": r["knp"], "counterparty_bin_iin": r["payer_bin_iin"],
                     "counterparty_name": r["payer_name"], "document_number": r["document_number"],
                     "document_date": r["document_date"], "received_at": r["received_at"],
                     "amount": r["amount"] if r["amount"] is not None else r["amount_as_sent"],
                     "reason": r["reason"], "reference": r["notification_id"]})
    for s in statement["social_payments"]:
        rows.append({"section": "social_payments", "period": s["period"], "id": s["entry_id"], "kind": s["kind"],
                     "knp": s["knp"], "payment_type": s["payment_type"], "counterparty_bin_iin": s["sender_bin"],
                     "counterparty_name": s["sender_name"], "document_number": s["document_number"],
                     "document_date": s["document_date"], "received_at": s["received_at"],
                     "amount": s["gross_amount"], "withheld": s["pension_contribution_withheld"],
                     "net": s["net_amount"], "covered": s["covered_amount"], "overpaid": s["overpaid_amount"],
                     "applied_to_overpayment": s["applied_to_overpayment"], "unmatched": s["unmatched_amount"],
                     "reason": s["overpaid_reason"], "reference": s["assignment_no"]})
    for o in statement["overpayments"]:
        rows.append({"section": "overpayments", "period": o["period"], "id": o["overpayment_id"], "kind": o["kind"],
                     "payment_type": o["payment_type"], "amount": o["amount"],
                     "outstanding_after": o["outstanding_after"], "reason": o["reason"]})
    return _write(rows, CSV_COLUMNS)


def _flatten(prefix: str, value, out: list[dict]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        out.append({"field": prefix, "value": " ".join(str(v) for v in value)})
    else:
        out.append({"field": prefix, "value": value})


def totals_csv(totals: dict) -> str:
    """The totals view as two-column CSV (field, value), nested fields joined by dots."""
    rows: list[dict] = []
    _flatten("", totals, rows)
    return _write(rows, ("field", "value"))
