"""Synthetic records of the Fund (contract, Part 2) for tests, the kill test and the recipients
bench: decisions and transfers for persons of a synthetic registry (tools/synthetic.py), valid by
the models, with the withheld amount at the assignment's rate.

`year_script` is the scripted year of one recipient and payment type (assign, recalculate
mid-month, suspend, resume, an illegal resume, terminate, refuse, a transfer in each state, a return,
and a first payment sent before its assign); `stream` is many recipients' simpler years for load;
`day_script` is the Fund's business day of the demo (many recipients, every decision and outcome,
in phases whose order across the two input topics is fixed)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

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
    repeat: bool = False  # an earlier record sent again byte for byte: nothing may come of it

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
             decided_on: str | None = None, monthly_amount: str | None = None, term_months: int | None = None,
             reason: str | None = None) -> dict:
    value = {"decision_id": decision_id, "iin": person["iin"], "payment_type": payment_type, "decision": kind,
             "decided_on": decided_on or effective_from, "effective_from": effective_from,
             "recipient": recipient_block(person)}
    if kind in ("assign", "recalculate"):
        value.update(applied_on=effective_from, risk_occurred_on=effective_from, monthly_amount=monthly_amount,
                     participation_months=36, average_monthly_income="150000.00", term_months=term_months,
                     end_date=None, pension_contribution_rate=RATE)
    if reason is not None:
        value["reason"] = reason
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


# ---- the Fund's business day (the demo) -----------------------------------------------------------------

DAY_PHASES = ("payments before their decision", "morning decisions", "payments", "afternoon decisions",
              "late payments and returns")


@dataclass
class FundDay:
    """The Fund's day: `records` in send order, `step` the phase (1-based index into DAY_PHASES).
    Each phase is sent only once the worker decided every earlier record, so that decisions and
    transfers of one (IIN, type), which travel on two topics, meet in the order they were planned."""

    records: list[FundRecord]
    lag_ids: set[str] = field(default_factory=set)  # payments sent before their assign, covered once it came
    risk_person: dict | None = None  # assigned with its risk in `risk_month`: its older contributions stay
    risk_month: str = ""

    def phase(self, step: int) -> list[FundRecord]:
        return [r for r in self.records if r.step == step]


def month_back(today: date, k: int) -> str:
    """YYYY-MM of the month `k` months before the month of `today`."""
    index = today.year * 12 + today.month - 1 - k
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def day_script(persons: list[dict], today: date, received_at: str, seed: int, tag: str,
               stranger_iin: str) -> FundDay:
    """The Fund's day for `persons` (living persons of the registry, at least 25; the first 11 play
    the scripted parts, the others are plain recipients, the first ten of whom are given each fate
    and outcome once, whatever the draw). Every transfer is received `received_at`
    (today: a payment failing only on a lag reason waits for a decision of its (IIN, type), or the
    cut-off); decisions are decided `today`, effective from earlier months.

    Plain recipients are assigned from six months back and paid for months 6..3 back (some above the
    amount), then in the afternoon some are recalculated, suspended, suspended and resumed,
    terminated, or sent an illegal resume, and paid for months 2 and 1 back; some return what they
    were overpaid. Scripted: payments sent before their assign (the lag hold), one that never gets a
    decision, refusals and a payment to a refused person, an assign whose recipient differs from the
    registry and one for an IIN the registry lacks (RECIPIENT_MISMATCH), a suspend of a person never
    assigned (ILLEGAL_TRANSITION), a payment under the return KNP, one whose withheld is not the
    rate's, a return under the payment KNP, a repeated decision and a repeated transfer."""
    if len(persons) < 25:
        raise ValueError("the Fund's day needs at least 25 persons")
    rng = random.Random(f"esep.fund-day:{seed}")
    day = today.isoformat()
    m = {k: month_back(today, k) for k in range(0, 8)}
    records: list[FundRecord] = []
    n = [0]

    def rid(kind: str) -> str:
        n[0] += 1
        return f"{tag}-{kind}{n[0]:05d}"

    def dec(step, person, ptype, kind, eff, **kw) -> FundRecord:
        rec = FundRecord(DECISIONS, decision(person, ptype, kind, eff, rid("D"), decided_on=day, **kw), step)
        records.append(rec)
        return rec

    def pay(step, person, ptype, period, gross, kind="payment") -> FundRecord:
        rec = FundRecord(TRANSFERS, transfer(person, ptype, period, gross, rid("T"), kind=kind,
                                             received_at=received_at), step)
        records.append(rec)
        return rec

    def ptype_of(i: int) -> str:
        return PAYMENT_TYPES[i % len(PAYMENT_TYPES)]

    lag, orphan, refused, mismatched, never, plain = (persons[0:5], persons[5], persons[6:9], persons[9],
                                                      persons[10], persons[11:])
    out = FundDay(records)

    # 1. Payments of last month for recipients whose assign has not arrived yet, and one that never will.
    for i, p in enumerate(lag):
        out.lag_ids.add(pay(1, p, ptype_of(i), m[1], "48000.00").id)
    pay(1, orphan, ptype_of(5), m[1], "31000.00")

    # 2. Morning decisions.
    amounts: dict[int, int] = {}
    terms: dict[int, int | None] = {}
    first_assign = None
    for i, p in enumerate(plain):
        amounts[i] = rng.randint(30, 90) * 1000
        terms[i] = 3 if i == 8 or (i > 9 and rng.random() < 0.12) else (12 if rng.random() < 0.5 else None)
        rec = dec(2, p, ptype_of(i), "assign", f"{m[6]}-01", monthly_amount=f"{amounts[i]}.00", term_months=terms[i])
        first_assign = first_assign or rec
    out.risk_person, out.risk_month = plain[0], m[6]
    for i, p in enumerate(lag):
        dec(2, p, ptype_of(i), "assign", f"{m[1]}-01", monthly_amount="48000.00")
    for i, p in enumerate(refused):
        dec(2, p, ptype_of(i), "refuse", day, reason="стаж участия недостаточен")
    wrong_birth = {**mismatched, "birth_date": _other_birth_date(mismatched["birth_date"])}
    dec(2, wrong_birth, ptype_of(0), "assign", f"{m[2]}-01", monthly_amount="40000.00")
    dec(2, {**mismatched, "iin": stranger_iin}, ptype_of(1), "assign", f"{m[2]}-01", monthly_amount="40000.00")
    dec(2, never, ptype_of(2), "suspend", f"{m[2]}-01")
    records.append(FundRecord(DECISIONS, first_assign.value, 2, repeat=True))

    # 3. Payments of months 6..3 back; some above the amount in force (EXCEEDS_ASSIGNED: they wait).
    first_covered = None
    for i, p in enumerate(plain):
        above = 5 if i == 9 else rng.randrange(6, 2, -1) if i > 9 and rng.random() < 0.1 else None
        for k in (6, 5, 4, 3):
            gross = amounts[i] + (rng.randint(1, 9) * 1000 if k == above else 0)
            rec = pay(3, p, ptype_of(i), m[k], f"{gross}.00")
            if first_covered is None and terms[i] is None and k != above:
                first_covered = rec
    records.append(FundRecord(TRANSFERS, first_covered.value, 3, repeat=True))
    wrong_knp = transfer(plain[1], ptype_of(1), m[3], f"{amounts[1]}.00", rid("T"), received_at=received_at)
    wrong_knp["knp"] = SOCIAL_PAYMENT_KNPS[ptype_of(1)][1]
    records.append(FundRecord(TRANSFERS, wrong_knp, 3))
    off_rate = transfer(plain[2], ptype_of(2), m[4], f"{amounts[2]}.00", rid("T"), received_at=received_at)
    withheld = parse_amount(off_rate["pension_contribution_withheld"])
    off_rate["pension_contribution_withheld"] = format_tiyn(withheld + 1)
    off_rate["net_amount"] = format_tiyn(parse_amount(off_rate["net_amount"]) - 1)
    off_rate["total_amount"] = off_rate["net_amount"]
    records.append(FundRecord(TRANSFERS, off_rate, 3))
    for i, p in enumerate(refused):
        pay(3, p, ptype_of(i), m[1], "25000.00")

    # 4. Afternoon decisions, and 5. the payments of months 2 and 1 back, with returns.
    fates = {3: "recalculate", 4: "suspend", 5: "suspend-resume", 6: "terminate", 7: "illegal-resume"}
    for i, p in enumerate(plain):
        draw = rng.random()
        if i > 9:
            fates[i] = ("recalculate" if draw < 0.1 else "suspend" if draw < 0.2 else "suspend-resume" if draw < 0.26
                        else "terminate" if draw < 0.34 else "illegal-resume" if draw < 0.39 else None)
        fate = fates.get(i)
        ptype = ptype_of(i)
        if fate == "recalculate":
            amounts[i] += 5000
            dec(4, p, ptype, "recalculate", f"{m[2]}-15", monthly_amount=f"{amounts[i]}.00")
        elif fate in ("suspend", "suspend-resume"):
            dec(4, p, ptype, "suspend", f"{m[2]}-01", reason="документы не представлены")
            if fate == "suspend-resume":
                dec(4, p, ptype, "resume", f"{m[1]}-01")
        elif fate == "terminate":
            dec(4, p, ptype, "terminate", f"{m[1]}-01", reason="трудоустройство")
        elif fate == "illegal-resume":
            dec(4, p, ptype, "resume", f"{m[2]}-01")
    returns = {4: "all", 5: "more", 6: "wrong-knp"}
    for i, p in enumerate(plain):
        ptype, fate = ptype_of(i), fates.get(i)
        old = amounts[i] - (5000 if fate == "recalculate" else 0)
        pay(5, p, ptype, m[2], f"{old}.00")
        pay(5, p, ptype, m[1], f"{amounts[i]}.00")
        if fate in ("suspend", "suspend-resume", "terminate"):
            # Overpaid at once (SUSPENDED / TERMINATED): the Fund claws some of it back the same day.
            draw = rng.random()
            kind = returns.get(i) or ("all" if draw < 0.5 else "more" if draw < 0.7 else None)
            if kind == "all":
                pay(5, p, ptype, m[1] if fate == "terminate" else m[2], f"{old}.00", kind="return")
            elif kind == "more":
                pay(5, p, ptype, m[1], f"{amounts[i] * 3}.00", kind="return")  # more than outstanding
            elif kind == "wrong-knp":
                rec = pay(5, p, ptype, m[1], f"{old}.00", kind="return")
                rec.value["knp"] = SOCIAL_PAYMENT_KNPS[ptype][0]
    return out


def _other_birth_date(birth_date: str) -> str:
    """The same day a year earlier: a typo of the Fund's clerk (BIRTH_DATE differs from the registry)."""
    y, rest = birth_date[:4], birth_date[4:]
    if rest == "-02-29":
        rest = "-02-28"
    return f"{int(y) - 1:04d}{rest}"
