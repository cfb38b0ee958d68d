"""Builders of the Fund's records (contract, Part 2) for the recipients tests: valid by the models,
with only what a test is about spelled out."""
from __future__ import annotations

import itertools
import json

from models.fund import PaymentDecision, PaymentTransfer
from rules import codes

IIN = "870314312348"
# The registry's record of IIN (tests/data/registry-persons.json).
PERSON = {
    "iin": IIN, "surname": "Ахметов", "name": "Ерлан", "patronymic": "Серикович", "birth_date": "1987-03-14",
    "sex": "M", "citizenship": "KZ", "death_date": None, "updated_at": "2025-01-10T09:00:00+05:00",
    "document": {"kind": "id_card", "series": None, "number": "041234567", "issued_on": "2019-04-02",
                 "issuer": "МВД РК"},
    "address": {"text": "г. Астана, ул. Кенесары, 40, кв. 12", "postal_index": "010000"},
}
TYPE = "loss_of_job"
_ids = itertools.count(1)


def recipient(**changes) -> dict:
    block = {k: PERSON[k] for k in ("surname", "name", "patronymic", "birth_date", "sex", "address", "document",
                                    "citizenship")}
    block.update(changes)
    return block


def decision(kind: str, effective_from: str, decided_on: str | None = None, *, decision_id: str | None = None,
             payment_type: str = TYPE, iin: str = IIN, **fields) -> PaymentDecision:
    value = {
        "decision_id": decision_id or f"DEC-{next(_ids)}", "iin": iin, "payment_type": payment_type,
        "decision": kind, "decided_on": decided_on or effective_from, "effective_from": effective_from,
        "recipient": fields.pop("recipient", recipient()),
    }
    if kind in ("assign", "recalculate"):
        value.update(applied_on=effective_from, risk_occurred_on=effective_from, monthly_amount="60000.00",
                     participation_months=48, average_monthly_income="133333.33", end_date=None, term_months=None)
    value.update(fields)
    return PaymentDecision.model_validate_json(json.dumps(value, ensure_ascii=False))


def transfer(period: str, gross: str, *, kind: str = "payment", withheld: str | None = None, net: str | None = None,
             received_at: str | None = None, knp: str | None = None, transfer_id: str | None = None,
             payment_type: str = TYPE, iin: str = IIN) -> PaymentTransfer:
    if withheld is None:
        withheld = "0.00"
    if net is None:
        from decimal import Decimal

        net = str(Decimal(gross) - Decimal(withheld))
    if knp is None:
        knp = codes.SOCIAL_PAYMENT_KNPS[payment_type][0 if kind == "payment" else 1]
    value = {
        "transfer_id": transfer_id or f"TRF-{next(_ids)}", "iin": iin, "payment_type": payment_type, "kind": kind,
        "knp": knp, "period": period, "gross_amount": gross, "pension_contribution_withheld": withheld,
        "net_amount": net, "document_number": "1", "document_date": f"{period}-20", "sent_date": f"{period}-20",
        "received_at": received_at or f"{period}-25T11:00:00+05:00", "sender_name": "АО «ГФСС»",
        "sender_bin": "050340000455", "recipient_name": "Ахметов Ерлан Серикович", "total_amount": net,
    }
    return PaymentTransfer.model_validate_json(json.dumps(value, ensure_ascii=False))
