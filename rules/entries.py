"""The output records of one decided order (contract v1), as plain dicts ready to encode.

Everything here is a function of the order, its recorded decision and the decision's summary, so
that a redelivery emits records equal to the first emission except for the `*_at` stamps the caller
passes in. Amounts come from the decision (read once, in tiyn), never from the order's strings."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from . import codes
from .calendar import ALMATY
from .codes import SCHEMA_VERSION
from .money import format_tiyn, parse_amount
from .posting import POSTED, REFUNDED, OrderDecision, OrderSummary, line_period, paired_lines


def stamp(moment: datetime) -> str:
    """A timestamp as the outputs carry it: Asia/Almaty offset, milliseconds."""
    return moment.astimezone(ALMATY).isoformat(timespec="milliseconds")


def business_instant(moment: datetime) -> str:
    """An echoed business time: the same instant, offset normalized to Almaty."""
    return moment.astimezone(ALMATY).isoformat()


def echo_amount(raw: str, tiyn: int | None) -> str:
    """A received amount as refunds show it: two decimals where it can be read, else as received."""
    if tiyn is not None:
        return format_tiyn(tiyn)
    if isinstance(raw, str) and raw.startswith("-"):
        negative = parse_amount(raw[1:])
        if negative is not None:
            return format_tiyn(-negative)
    return raw


@dataclass(frozen=True, slots=True)
class Rendered:
    """The outputs of a decision: (key, record) pairs for the keyed topics, and the order's refund
    and result once every line is decided."""

    posted: list[tuple[str, dict]]
    alerts: list[tuple[str, dict]]
    refund: dict | None
    result: dict | None


def render(order, decision: OrderDecision, summary: OrderSummary, at: str,
           lines: Collection[int] | None = None) -> Rendered:
    """Posted entries and deceased alerts (of `lines` only, when given: the lines decided now), and,
    once every line is decided, the refund and the result."""
    complete = summary.status is not None
    return Rendered(
        posted_entries(order, decision, at, lines),
        deceased_alerts(order, decision, at, lines),
        refund_record(order, decision, summary, at) if complete else None,
        order_result(order, summary, at) if complete else None,
    )


def posted_entries(order, decision: OrderDecision, posted_at: str,
                   lines: Collection[int] | None = None) -> list[tuple[str, dict]]:
    """(key, entry) for every posted line (of `lines`, when given)."""
    kind = codes.CONTRIBUTION_KNPS.get(order.knp)
    nid = order.notification_id
    common = {
        "document_number": order.document_number,
        "document_date": order.document_date.isoformat(),
        "sent_date": order.sent_date.isoformat(),
        "received_at": business_instant(order.received_at),
        "posted_at": posted_at,
        "payer_name": order.payer.name,
        "payer_bin_iin": order.payer.bin_iin,
        "recipient_name": order.recipient_name,
        "total_amount": format_tiyn(decision.total_tiyn),
        "status": "posted",
    }
    out = []
    for line, d in paired_lines(order, decision):
        if d.outcome != POSTED or (lines is not None and d.line_no not in lines):
            continue
        person = d.person
        entry = {
            "schema_version": SCHEMA_VERSION,
            "entry_id": f"{nid}/{d.line_no}",
            "iin": line.iin,
            "surname": person.surname,
            "name": person.name,
            "patronymic": person.patronymic,
            "birth_date": person.birth_date,
            "kind": kind,
            "knp": order.knp,
            "amount": format_tiyn(d.tiyn),
            "period": line_period(line, order),
        }
        entry.update(common)
        out.append((line.iin, entry))
    return out


def _refund_lines(order, decision: OrderDecision) -> list[dict]:
    # Lines in the order's own sequence; a duplicate line_no (a whole-order refund) repeats the reason.
    return [
        {
            "line_no": line.line_no,
            "iin": line.iin,
            "surname": line.surname,
            "name": line.name,
            "patronymic": line.patronymic,
            "birth_date": line.birth_date,
            "period": line_period(line, order),
            "amount": echo_amount(line.amount, d.tiyn),
            "reason": d.reason,
        }
        for line, d in paired_lines(order, decision) if d.outcome == REFUNDED
    ]


def refund_record(order, decision: OrderDecision, summary: OrderSummary, created_at: str) -> dict | None:
    """The refund order of a notification, or None when every line is posted."""
    lines = _refund_lines(order, decision)
    whole = decision.order_reason is not None
    # A whole-order refund returns the money received even when the order listed no line.
    if not lines and not whole:
        return None
    return {
        "schema_version": SCHEMA_VERSION,
        "refund_id": f"{order.notification_id}/refund",
        "notification_id": order.notification_id,
        "payer": {"name": order.payer.name, "bin_iin": order.payer.bin_iin, "iban": order.payer.iban},
        "document_number": order.document_number,
        "document_date": order.document_date.isoformat(),
        "knp": order.knp,
        "refund_knp": codes.REFUND_KNPS.get(order.knp),
        "scope": "order" if whole else "lines",
        "reason": decision.order_reason,
        "amount": format_tiyn(summary.refunded_tiyn),
        "lines": lines,
        # Contract Part 2: the monthly report counts a refund in the month of its receipt.
        "received_at": business_instant(order.received_at),
        "created_at": created_at,
    }


def order_result(order, summary: OrderSummary, decided_at: str) -> dict:
    """The reconciliation record: counts lines and conserves the order's total."""
    return {
        "schema_version": SCHEMA_VERSION,
        "notification_id": order.notification_id,
        "status": summary.status,
        "lines_total": summary.lines_total,
        "lines_posted": summary.lines_posted,
        "lines_refunded": summary.lines_refunded,
        "amount_posted": format_tiyn(summary.posted_tiyn),
        "amount_refunded": format_tiyn(summary.refunded_tiyn),
        # Contract Part 2: the report's month, and the receipt's deadline for decided_after_deadline.
        "received_at": business_instant(order.received_at),
        "decided_at": decided_at,
    }


def deceased_alerts(order, decision: OrderDecision, created_at: str,
                    lines: Collection[int] | None = None) -> list[tuple[str, dict]]:
    """(key, alert) for every decided line (of `lines`, when given) naming a person the registry
    records as dead, posted (a period before the death) or refunded DECEASED: the Fund suspends
    survivor payments on it."""
    out = []
    for line, d in paired_lines(order, decision):
        if d.person is None or d.person.death_date is None or d.outcome not in (POSTED, REFUNDED):
            continue
        if lines is not None and d.line_no not in lines:
            continue
        out.append((line.iin, {
            "schema_version": SCHEMA_VERSION,
            "alert_id": f"{order.notification_id}/{d.line_no}",
            "iin": line.iin,
            "death_date": d.person.death_date,
            "notification_id": order.notification_id,
            "line_no": d.line_no,
            "knp": order.knp,
            "period": line_period(line, order),
            "amount": format_tiyn(d.tiyn),
            "outcome": "posted" if d.outcome == POSTED else "refunded",
            "reason": d.reason,
            "payer_bin_iin": order.payer.bin_iin,
            "received_at": business_instant(order.received_at),
            "created_at": created_at,
        }))
    return out
