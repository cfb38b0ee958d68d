"""Synthetic records of the Fund (contract, Part 2) for tests, the kill test and the recipients
bench: decisions and transfers for persons of a synthetic registry (tools/synthetic.py), valid by
the models, with the withheld amount at the assignment's rate.

`year_script` is the scripted year of one recipient and payment type (assign, recalculate
mid-month, suspend, resume, an illegal resume, terminate, refuse, a transfer in each state, a return,
and a first payment sent before its assign); `stream` is many recipients' simpler years for load."""
from __future__ import annotations

import random
from dataclasses import dataclass

from rules.codes import PAYMENT_TYPES, SOCIAL_PAYMENT_KNPS
from rules.money import format_tiyn, parse_amount
from rules.recipients import withheld_at

DECISIONS = "decisions"
TRANSFERS = "transfers"
RATE = "0.10"
SENDER = {"sender_name": "АО «Государственный фонд социального страхования»", "sender_bin": "050340000455"}


@dataclass(frozen=True)
class FundRecord:
    input: str  # DECISIONS | TRANSFERS
    value: dict
    step: int = 0  # records of one step may be sent together; a step waits for the earlier ones

    @property
    def id(self) -> str:
        return self.value.get("decision_id") or self.value["transfer_id"]


def recipient_block(person: dict) -> dict:
    block = {k: person.get(k) for k in ("surname", "name", "patronymic", "birth_date", "sex", "citizenship")}
    for optional in ("address", "document"):
        if person.get(optional) is not None:
            block[optional] = person[optional]
    return block


def decision(person: dict, payment_type: str, kind: str, effective_from: str, decision_id: str, *,
             decided_on: str | None = None, monthly_amount: str | None = None, term_months: int | None = None) -> dict:
    value = {"decision_id": decision_id, "iin": person["iin"], "payment_type": payment_type, "decision": kind,
             "decided_on": decided_on or effective_from, "effective_from": effective_from,
             "recipient": recipient_block(person)}
    if kind in ("assign", "recalculate"):
        value.update(applied_on=effective_from, risk_occurred_on=effective_from, monthly_amount=monthly_amount,
                     participation_months=36, average_monthly_income="150000.00", term_months=term_months,
                     end_date=None, pension_contribution_rate=RATE)
    return value


def transfer(person: dict, payment_type: str, period: str, gross: str, transfer_id: str, *, kind: str = "payment",
             received_at: str | None = None) -> dict:
    tiyn = parse_amount(gross)
    withheld = withheld_at(tiyn, RATE) if kind == "payment" else 0
    net = format_tiyn(tiyn - withheld)
    knp = SOCIAL_PAYMENT_KNPS[payment_type][0 if kind == "payment" else 1]
    day = f"{period}-20"
    return {"transfer_id": transfer_id, "iin": person["iin"], "payment_type": payment_type, "kind": kind, "knp": knp,
            "period": period, "gross_amount": gross, "pension_contribution_withheld": format_tiyn(withheld),
            "net_amount": net, "document_number": transfer_id[-8:], "document_date": day, "sent_date": day,
            "received_at": received_at or f"{period}-25T11:00:00+05:00", **SENDER,
            "recipient_name": " ".join(x for x in (person["surname"], person["name"], person.get("patronymic")) if x),
            "total_amount": net}


def year_script(person: dict, payment_type: str, tag: str, held_received_at: str, year: int = 2025) -> list[FundRecord]:
    """One recipient's year. Step 1's payment comes before its assign (received `held_received_at`,
    i.e. now, so the lag hold keeps it until the assign of step 2)."""
    amount, raised = "50000.00", "55000.00"
    y = year

    def d(step, kind, eff, **kw):
        return FundRecord(DECISIONS, decision(person, payment_type, kind, eff, f"{tag}-D{step:02d}", **kw), step)

    def t(step, period, gross, kind="payment", **kw):
        return FundRecord(TRANSFERS, transfer(person, payment_type, period, gross, f"{tag}-T{step:02d}", kind=kind,
                                              **kw), step)

    return [
        t(1, f"{y}-01", amount, received_at=held_received_at),  # none: held until the assign
        d(2, "assign", f"{y}-01-01", monthly_amount=amount, term_months=12),
        t(3, f"{y}-02", amount),  # active, covered
        d(4, "recalculate", f"{y}-03-15", monthly_amount=raised),  # from April
        t(5, f"{y}-03", raised),  # March still at 50000.00: 5000.00 EXCEEDS_ASSIGNED
        t(6, f"{y}-04", raised),  # covered
        d(7, "suspend", f"{y}-05-01"),
        t(8, f"{y}-05", raised),  # suspended: SUSPENDED
        d(9, "resume", f"{y}-06-01"),
        d(10, "resume", f"{y}-06-02"),  # active already: ILLEGAL_TRANSITION
        t(11, f"{y}-06", raised),  # covered
        t(12, f"{y}-06", "7000.00", kind="return"),  # applied to the outstanding overpayments
        d(13, "terminate", f"{y}-08-01"),  # the end becomes 07-31
        t(14, f"{y}-08", raised),  # terminated: TERMINATED
        d(15, "refuse", f"{y}-09-01"),  # terminated -> refused
        t(16, f"{y}-09", raised),  # refused
        t(17, f"{y}-09", "200000.00", kind="return"),  # more than the 163000.00 outstanding: RETURN_EXCEEDS_OUTSTANDING
    ]


def stream(persons: list[dict], seed: int, tag: str, year: int = 2025, months: int = 6) -> list[FundRecord]:
    """Per person one payment type and a plain year: an assign, `months` payments (some above the
    amount), sometimes a suspension and a resumption, a return; decisions and transfers of one
    person in order (steps), persons interleaved. Every received_at is in the past: nothing waits."""
    rng = random.Random(f"esep.fund:{seed}")
    per_person = []
    for n, person in enumerate(persons):
        ptype = PAYMENT_TYPES[n % len(PAYMENT_TYPES)]
        key = f"{tag}-{n:06d}"
        amount = f"{rng.randint(30, 90) * 1000}.00"
        recs = [FundRecord(DECISIONS, decision(person, ptype, "assign", f"{year}-01-01", f"{key}-A",
                                               monthly_amount=amount))]
        suspend_at = rng.randint(2, months) if rng.random() < 0.3 else None
        for m in range(1, months + 1):
            if suspend_at == m:
                recs.append(FundRecord(DECISIONS, decision(person, ptype, "suspend", f"{year}-{m:02d}-01",
                                                           f"{key}-S")))
            if suspend_at is not None and m == suspend_at + 1:
                recs.append(FundRecord(DECISIONS, decision(person, ptype, "resume", f"{year}-{m:02d}-01",
                                                           f"{key}-R")))
            gross = amount if rng.random() < 0.85 else f"{int(parse_amount(amount) / 100) + rng.randint(1, 9) * 1000}.00"
            recs.append(FundRecord(TRANSFERS, transfer(person, ptype, f"{year}-{m:02d}", gross, f"{key}-P{m:02d}")))
        if rng.random() < 0.3:
            recs.append(FundRecord(TRANSFERS, transfer(person, ptype, f"{year}-{months:02d}",
                                                       f"{rng.randint(1, 20) * 1000}.00", f"{key}-RET", kind="return")))
        per_person.append(recs)
    # Interleave persons, keeping each person's order.
    out: list[FundRecord] = []
    cursors = [0] * len(per_person)
    live = list(range(len(per_person)))
    while live:
        i = rng.choice(live)
        out.append(per_person[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(per_person[i]):
            live.remove(i)
    return out
