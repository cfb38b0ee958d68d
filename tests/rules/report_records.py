"""Output records in the contract's shape, only the fields the monthly report reads plus a few more
so that they look like what the topics hold."""
from __future__ import annotations

JAN = "2026-01-15T10:00:00+05:00"


def posted(entry_id: str, iin: str = "870314312348", *, knp: str = "012", amount: str = "4250.00",
           period: str = "2025-12", received_at: str = JAN, payer: str = "180440000019") -> dict:
    return {"schema_version": 1, "entry_id": entry_id, "iin": iin, "kind": "contribution" if knp == "012" else "penalty",
            "knp": knp, "amount": amount, "period": period, "received_at": received_at,
            "posted_at": "2026-01-15T10:00:01+05:00", "payer_name": "ТОО «Дала»", "payer_bin_iin": payer,
            "status": "posted"}


def reversal(entry_id: str, iin: str = "870314312348", *, amount: str = "4250.00", received_at: str = JAN) -> dict:
    return {"schema_version": 1, "entry_id": f"{entry_id}/reversal", "reverses": entry_id, "iin": iin, "knp": "012",
            "amount": amount, "received_at": received_at, "status": "reversed"}


def refund(notification_id: str, reasons: list[str | None], *, order_reason: str | None = None,
           amount: str = "100.00", received_at: str = JAN) -> dict:
    scope = "order" if order_reason else "lines"
    lines = [{"line_no": i + 1, "iin": "870314312348", "amount": "1.00",
              "reason": order_reason if order_reason else r} for i, r in enumerate(reasons)]
    return {"schema_version": 1, "refund_id": f"{notification_id}/refund", "notification_id": notification_id,
            "scope": scope, "reason": order_reason, "amount": amount, "lines": lines, "received_at": received_at}


def result(notification_id: str, *, received_at: str = JAN, decided_at: str = "2026-01-15T10:00:02+05:00") -> dict:
    return {"schema_version": 1, "notification_id": notification_id, "status": "posted", "received_at": received_at,
            "decided_at": decided_at}


def alert(alert_id: str, iin: str = "581225356784", *, received_at: str = JAN) -> dict:
    return {"schema_version": 1, "alert_id": alert_id, "iin": iin, "received_at": received_at, "outcome": "refunded"}


def decision(decision_id: str, iin: str = "870314312348", *, decision: str = "assign", status: str = "applied",
             payment_type: str | None = "loss_of_job", decided_on: str = "2026-01-10", effective_from: str | None = None,
             assignment_no: int | None = 1, end_date: str | None = None) -> dict:
    """A `fund.decision-results` record; `effective_from` defaults to `decided_on`."""
    return {"schema_version": 1, "decision_id": decision_id, "iin": iin, "decision": decision,
            "payment_type": payment_type, "status": status, "reason": None, "state_before": None, "state_after": None,
            "assignment_no": assignment_no, "decided_on": decided_on, "effective_from": effective_from or decided_on,
            "end_date": end_date, "rejected_entries": [], "decided_at": "2026-01-10T10:00:00+05:00"}


def social_payment(transfer_id: str, iin: str = "870314312348", *, kind: str = "payment",
                   payment_type: str = "loss_of_job", gross: str = "60000.00", withheld: str = "6000.00",
                   net: str = "54000.00", overpaid: str = "0.00", applied: str = "0.00", received_at: str = JAN) -> dict:
    """A `posted.social-payments` record: `overpaid` for a payment, `applied` (to overpayments) for a return."""
    return {"schema_version": 1, "entry_id": transfer_id, "iin": iin, "payment_type": payment_type, "kind": kind,
            "gross_amount": gross, "pension_contribution_withheld": withheld, "net_amount": net,
            "covered_amount": "0.00" if kind == "return" else gross, "overpaid_amount": overpaid,
            "applied_to_overpayment": applied, "unmatched_amount": "0.00", "received_at": received_at}
