"""Ledger records of one person for the accounts' tests, copied from the contract's worked examples
(/work/shared/examples: expected-outputs.json, part 1, and fund-expected-outputs.json, part 2: inputs
2, 3, 6, 8, 9 and 12), with `<worker clock>` replaced by a time, plus builders for variations."""
from __future__ import annotations

IIN = "870314312348"
OTHER = "010630534571"
PAYER = {"name": "ТОО «Дала Құрылыс»", "bin_iin": "180440000019", "iban": "KZ86125KZT5004100100"}
FUND = {"sender_name": "АО «Государственный фонд социального страхования»", "sender_bin": "050340000455"}


def contribution(line_no=1, amount="29750.00", period="2026-10", knp="012", iin=IIN, notification="HSBK-20261126-000421",
                 received_at="2026-11-26T10:15:00+05:00", payer=PAYER, surname="Ахметов", posted_at=None, document="421"):
    return {
        "schema_version": 1, "entry_id": f"{notification}/{line_no}", "iin": iin, "surname": surname,
        "name": "Ерлан", "patronymic": "Серикович", "birth_date": "1987-03-14",
        "kind": "contribution" if knp == "012" else "penalty", "knp": knp, "amount": amount, "period": period,
        "document_number": document, "document_date": "2026-11-25", "sent_date": "2026-11-25",
        "received_at": received_at, "posted_at": posted_at or "2026-11-26T10:15:00.412+05:00",
        "payer_name": payer["name"], "payer_bin_iin": payer["bin_iin"],
        "recipient_name": "НАО «Государственная корпорация «Правительство для граждан»",
        "total_amount": "59000.00", "status": "posted",
    }


def reversal(original: dict, decision="GFSS-RFD-2026-000301", received_at="2026-11-30T15:00:00+05:00"):
    rec = {k: v for k, v in original.items() if k not in ("status", "posted_at")}
    rec.update({"entry_id": original["entry_id"] + "/reversal", "reverses": original["entry_id"],
                "refund_decision_id": decision, "received_at": received_at,
                "posted_at": "2026-11-30T15:00:01.000+05:00", "status": "reversed"})
    return rec


# fund-expected-outputs.json, inputs 2, 3, 6, 8, 9: posted.social-payments and fund.overpayments.
def social(transfer_id, kind, period, gross, withheld, net, covered, overpaid, reason, applied, unmatched, assignment,
           document, received_at):
    sender = FUND if kind == "payment" else {"sender_name": "Ахметов Ерлан Серикович", "sender_bin": IIN}
    return {
        "schema_version": 1, "entry_id": transfer_id, "iin": IIN, "surname": "Ахметов", "name": "Ерлан",
        "patronymic": "Серикович", "birth_date": "1987-03-14", "payment_type": "loss_of_job", "kind": kind,
        "knp": "048" if kind == "payment" else "049", "period": period, "gross_amount": gross,
        "pension_contribution_withheld": withheld, "net_amount": net, "covered_amount": covered,
        "overpaid_amount": overpaid, "overpaid_reason": reason, "applied_to_overpayment": applied,
        "unmatched_amount": unmatched, "assignment_no": assignment, "document_number": document,
        "document_date": received_at[:10], "sent_date": received_at[:10], "received_at": received_at, **sender,
        "recipient_name": "x", "total_amount": net, "posted_at": "2025-07-24T11:00:01.000+05:00",
    }


SOCIAL = [
    social("GFSS-TRF-2025-000201", "payment", "2025-03", "32903.23", "3290.32", "29612.91", "32903.23", "0.00", None,
           "0.00", "0.00", 1, "3101", "2025-03-28T11:00:00+05:00"),
    social("GFSS-TRF-2025-000202", "payment", "2025-04", "65000.05", "6500.01", "58500.04", "60000.00", "5000.05",
           "EXCEEDS_ASSIGNED", "0.00", "0.00", 1, "4107", "2025-04-25T11:00:00+05:00"),
    social("GFSS-TRF-2025-000203", "payment", "2025-06", "65000.00", "6500.00", "58500.00", "0.00", "65000.00",
           "SUSPENDED", "0.00", "0.00", 1, "6112", "2025-06-25T11:00:00+05:00"),
    social("GFSS-TRF-2025-000204", "return", "2025-04", "8000.00", "0.00", "8000.00", "0.00", "0.00", None,
           "8000.00", "0.00", None, "17", "2025-07-10T11:00:00+05:00"),
    social("GFSS-TRF-2025-000205", "return", "2025-06", "63500.00", "0.00", "63500.00", "0.00", "0.00", None,
           "62000.05", "1499.95", None, "18", "2025-07-24T11:00:00+05:00"),
]


def overpayment(transfer_id, period, kind, reason, amount, after):
    return {"schema_version": 1, "overpayment_id": transfer_id, "iin": IIN, "payment_type": "loss_of_job",
            "period": period, "kind": kind, "reason": reason, "amount": amount, "outstanding_after": after,
            "created_at": "2025-07-24T11:00:01.000+05:00"}


OVERPAYMENTS = [
    overpayment("GFSS-TRF-2025-000202", "2025-04", "overpaid", "EXCEEDS_ASSIGNED", "5000.05", "5000.05"),
    overpayment("GFSS-TRF-2025-000203", "2025-06", "overpaid", "SUSPENDED", "65000.00", "70000.05"),
    overpayment("GFSS-TRF-2025-000205", "2025-06", "unmatched_return", "RETURN_EXCEEDS_OUTSTANDING", "1499.95", "0.00"),
]

# expected-outputs.json: the refund of lines 2 and 4 (line 2's IIN fails the check digit), with
# Part 2's received_at.
REFUND = {
    "schema_version": 1, "refund_id": "HSBK-20261126-000421/refund", "notification_id": "HSBK-20261126-000421",
    "payer": PAYER, "document_number": "421", "document_date": "2026-11-25", "knp": "012", "refund_knp": "026",
    "scope": "lines", "reason": None, "amount": "25000.00",
    "lines": [
        {"line_no": 2, "iin": "921102423451", "surname": "Сейткали", "name": "Айгүл", "patronymic": "Қайратқызы",
         "birth_date": "1992-11-02", "period": "2026-10", "amount": "12500.00", "reason": "INVALID_IIN"},
        {"line_no": 4, "iin": "921102423450", "surname": "Сейткали", "name": "Айгуль", "patronymic": "Кайратовна",
         "birth_date": "1992-11-02", "period": "2026-10", "amount": "12500.00", "reason": "NAME_MISMATCH"},
    ],
    "received_at": "2026-11-26T10:15:00+05:00", "created_at": "2026-11-26T10:15:00.415+05:00",
}


def order_refund(lines, reason="TOTAL_MISMATCH", received_at="2026-01-31T20:00:00+00:00", notification="N-7"):
    return {
        "schema_version": 1, "refund_id": f"{notification}/refund", "notification_id": notification, "payer": PAYER,
        "document_number": "77", "document_date": "2026-01-31", "knp": "012", "refund_knp": "026", "scope": "order",
        "reason": reason, "amount": "100.00",
        "lines": [{"line_no": n, "iin": IIN, "surname": "Ахметов", "name": "Ерлан", "patronymic": None,
                   "birth_date": "1987-03-14", "period": period, "amount": amount, "reason": reason}
                  for n, period, amount in lines],
        "received_at": received_at, "created_at": "2026-02-01T01:00:00.000+05:00",
    }
