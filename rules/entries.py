"""The output records of one decided order (contract v1), as plain dicts ready to encode.

Everything here is a function of the order and its recorded decision, so that a redelivery emits
records equal to the first emission except for the `*_at` stamps the caller passes in."""
from __future__ import annotations

from datetime import datetime

from . import codes
from .calendar import ALMATY
from .money import format_tiyn, parse_amount
from .posting import POSTED, REFUNDED, OrderDecision, line_period

SCHEMA_VERSION = 1


def stamp(moment: datetime) -> str:
    """A timestamp as the outputs carry it: Asia/Almaty offset, milliseconds."""
    return moment.astimezone(ALMATY).isoformat(timespec="milliseconds")


def business_instant(moment: datetime) -> str:
    """An echoed business time: the same instant, offset normalized to Almaty."""
    return moment.astimezone(ALMATY).isoformat()


def echo_amount(raw: str) -> str:
    """A received amount as refunds show it: two decimals where it can be read, else as received."""
    tiyn = parse_amount(raw)
    if tiyn is None and isinstance(raw, str) and raw.startswith("-"):
        negative = parse_amount(raw[1:])
        if negative is not None:
            return format_tiyn(-negative)
    return raw if tiyn is None else format_tiyn(tiyn)


def posted_entries(order, decision: OrderDecision, posted_at: str) -> list[tuple[str, dict]]:
    """(key, entry) for every posted line."""
    kind = codes.CONTRIBUTION_KNPS.get(order.knp)
    lines = {line.line_no: line for line in order.lines}
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
        "total_amount": format_tiyn(parse_amount(order.total_amount)),
        "status": "posted",
    }
    out = []
    for d in decision.lines:
        if d.outcome != POSTED:
            continue
        line = lines[d.line_no]
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
            "amount": format_tiyn(parse_amount(line.amount)),
            "period": line_period(line, order),
        }
        entry.update(common)
        out.append((line.iin, entry))
    return out


def _refund_lines(order, decision: OrderDecision) -> list[dict]:
    reasons = {d.line_no: d.reason for d in decision.lines if d.outcome == REFUNDED}
    out = []
    # Lines in the order's own sequence; a duplicate line_no (a whole-order refund) repeats the reason.
    for line in order.lines:
        reason = reasons.get(line.line_no)
        if reason is None:
            continue
        out.append(
            {
                "line_no": line.line_no,
                "iin": line.iin,
                "surname": line.surname,
                "name": line.name,
                "patronymic": line.patronymic,
                "birth_date": line.birth_date,
                "period": line_period(line, order),
                "amount": echo_amount(line.amount),
                "reason": reason,
            }
        )
    return out


def refunded_tiyn(order, decision: OrderDecision) -> int:
    """Tiyn refunded by a complete decision (held lines are not refunded yet)."""
    if decision.order_reason is not None:
        return parse_amount(order.total_amount)
    lines = {line.line_no: line for line in order.lines}
    return sum(parse_amount(lines[d.line_no].amount) for d in decision.lines if d.outcome != POSTED)


def refund_record(order, decision: OrderDecision, created_at: str) -> dict | None:
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
        "amount": format_tiyn(refunded_tiyn(order, decision)),
        "lines": lines,
        "created_at": created_at,
    }


def order_result(order, decision: OrderDecision, decided_at: str) -> dict:
    """The reconciliation record: counts lines and conserves the order's total."""
    total = parse_amount(order.total_amount)
    refunded = refunded_tiyn(order, decision)
    posted = len(decision.posted)
    lines_total = len(order.lines)
    if decision.order_reason is None and posted == lines_total:
        status = "posted"
    elif posted == 0:
        status = "refunded"
    else:
        status = "partially_refunded"
    return {
        "schema_version": SCHEMA_VERSION,
        "notification_id": order.notification_id,
        "status": status,
        "lines_total": lines_total,
        "lines_posted": posted,
        "lines_refunded": lines_total - posted,
        "amount_posted": format_tiyn(total - refunded),
        "amount_refunded": format_tiyn(refunded),
        "decided_at": decided_at,
    }


def deceased_alerts(order, decision: OrderDecision, created_at: str) -> list[tuple[str, dict]]:
    """(key, alert) for every decided line naming a person the registry records as dead, posted
    (a period before the death) or refunded DECEASED: the Fund suspends survivor payments on it."""
    lines = {line.line_no: line for line in order.lines}
    out = []
    for d in decision.lines:
        if d.person is None or d.person.death_date is None or d.outcome not in (POSTED, REFUNDED):
            continue
        line = lines[d.line_no]
        out.append((line.iin, {
            "schema_version": SCHEMA_VERSION,
            "alert_id": f"{order.notification_id}/{d.line_no}",
            "iin": line.iin,
            "death_date": d.person.death_date,
            "notification_id": order.notification_id,
            "line_no": d.line_no,
            "knp": order.knp,
            "period": line_period(line, order),
            "amount": format_tiyn(parse_amount(line.amount)),
            "outcome": "posted" if d.outcome == POSTED else "refunded",
            "reason": d.reason,
            "payer_bin_iin": order.payer.bin_iin,
            "received_at": business_instant(order.received_at),
            "created_at": created_at,
        }))
    return out
