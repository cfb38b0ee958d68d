"""The demo's Fund day (contract Part 2, issue 10): payment decisions and transfers sent in phases
(tools/fund_synthetic.py `day_script`), and what the recipients ledger must make of them.

Expected is the pure rules (`rules.recipients`) replayed over what was sent, in the order the
phases fix, with the lag hold as the worker applies it: a payment failing only on a lag reason waits,
is looked at again after each applied decision of its (IIN, type), and what still waits at the
cut-off is decided then with what exists. The worker is never asked: observed is read back from the
output topics, and both sides are totalled by the same function."""
from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaProducer

from models.fund import PaymentDecision, PaymentTransfer
from models.registry import RegistryPerson
from rules import recipients as rr
from rules.money import format_tiyn, parse_amount
from streams.settings import Topics
from tables.registry import decode_person_view, encode_person

from .bench_recipients import decided_count
from .fund_synthetic import DAY_PHASES, DECISIONS, FundDay
from .reading import TopicReader
from .runner import WorkerProcess

DECISION_KINDS = ("assign", "recalculate", "suspend", "resume", "terminate", "refuse")
DECISION_REASONS = ("ILLEGAL_TRANSITION", "RECIPIENT_MISMATCH")
OVERPAID_REASONS = ("EXCEEDS_ASSIGNED", "SUSPENDED", "TERMINATED", "REFUSED", "NO_ASSIGNMENT", "OUTSIDE_TERM",
                    "KNP_MISMATCH", "AMOUNT_INCONSISTENT")
UNMATCHED_REASONS = ("RETURN_EXCEEDS_OUTSTANDING", "KNP_MISMATCH", "AMOUNT_INCONSISTENT")
STATES = ("none", "active", "suspended", "terminated", "refused")  # none: paid, never decided
INPUT_LABELS = {DECISIONS: "payment-decisions", "transfers": "payment-transfers"}


@dataclass
class Ledger:
    """The recipients ledger's outputs: first record per id (a re-emission is equal by contract),
    latest account per (IIN, type)."""

    results: dict[str, dict] = field(default_factory=dict)
    postings: dict[str, dict] = field(default_factory=dict)
    overpayments: dict[str, dict] = field(default_factory=dict)
    accounts: dict[str, dict] = field(default_factory=dict)

    def add(self, kind: str, key: str, value: dict) -> None:
        if kind == "results":
            self.results.setdefault(value["decision_id"], value)
        elif kind == "postings":
            self.postings.setdefault(value["entry_id"], value)
        elif kind == "overpayments":
            self.overpayments.setdefault(value["overpayment_id"], value)
        else:
            self.accounts[key] = value


CONTRACT_KINDS = {rr.DECISION_RESULTS: "results", rr.POSTED: "postings", rr.OVERPAYMENTS: "overpayments",
                  rr.ACCOUNTS: "accounts"}


@dataclass
class Replay:
    ledger: Ledger
    held: int  # payments that waited when they arrived
    repeats: Counter  # by input


def registry_view(person: dict) -> dict:
    """The person as the worker's registry replica gives it to the rules."""
    return decode_person_view(encode_person(RegistryPerson.model_validate_json(json.dumps(person))))


def replay(day: FundDay, registry: dict[str, dict]) -> Replay:
    """The pure rules over the day, phase by phase, then the cut-off."""
    views = {iin: registry_view(p) for iin, p in registry.items()}
    states: dict[tuple[str, str], rr.RecipientState] = {}
    waiting: dict[tuple[str, str], list[PaymentTransfer]] = defaultdict(list)
    ledger, held, repeats = Ledger(), 0, Counter()

    def emit(emission: rr.Emission) -> None:
        for topic, items in emission.records.items():
            for item in items:
                ledger.add(CONTRACT_KINDS[topic], item["key"], item["value"])

    def recheck(key, state, final: bool):
        keep = []
        for t in waiting[key]:
            decided = rr.decide_transfer(state, t, views.get(t.iin), "", hold=not final)
            if decided.held:
                keep.append(t)
                continue
            state = decided.state
            emit(decided.emission)
        waiting[key] = keep
        return state

    for rec in day.records:
        if rec.repeat:
            repeats[rec.input] += 1
            continue
        key = (rec.value["iin"], rec.value["payment_type"])
        state = states.get(key) or rr.new_state(*key)
        person = views.get(rec.value["iin"])
        if rec.input == DECISIONS:
            decided = rr.decide_decision(state, PaymentDecision.model_validate_json(json.dumps(rec.value)), person, "")
            state = decided.state
            emit(decided.emission)
            if decided.outcome.status == "applied":
                state = recheck(key, state, final=False)
        else:
            t = PaymentTransfer.model_validate_json(json.dumps(rec.value))
            decided = rr.decide_transfer(state, t, person, "", hold=t.kind == "payment")
            if decided.held:
                held += 1
                waiting[key].append(t)
                continue
            state = decided.state
            emit(decided.emission)
        states[key] = state
    for key in list(waiting):
        states[key] = recheck(key, states.get(key) or rr.new_state(*key), final=True)
    return Replay(ledger, held, repeats)


def summarize(ledger: Ledger, lag_ids: set[str]) -> dict:
    """The figures the demo reconciles, amounts in tiyn; the same for expected and observed."""
    s: dict = {"decisions": 0, "applied": Counter(), "rejected": Counter(), "payments": 0, "paid_gross": 0,
               "covered": 0, "overpaid": Counter(), "overpaid_tiyn": Counter(), "returns": 0, "returned_gross": 0,
               "applied_to_overpayments": 0, "unmatched": Counter(), "unmatched_tiyn": Counter(),
               "overpayment_records": len(ledger.overpayments), "states": Counter(), "outstanding": 0,
               "lag_covered": 0}
    for r in ledger.results.values():
        if r["decision"] == "refund":
            continue
        s["decisions"] += 1
        if r["status"] == "applied":
            s["applied"][r["decision"]] += 1
        else:
            s["rejected"][r["reason"]] += 1
    for p in ledger.postings.values():
        gross = parse_amount(p["gross_amount"])
        if p["kind"] == "payment":
            s["payments"] += 1
            s["paid_gross"] += gross
            s["covered"] += parse_amount(p["covered_amount"])
            over = parse_amount(p["overpaid_amount"])
            if over:
                s["overpaid"][p["overpaid_reason"]] += 1
                s["overpaid_tiyn"][p["overpaid_reason"]] += over
            if p["entry_id"] in lag_ids and not over:
                s["lag_covered"] += 1
        else:
            s["returns"] += 1
            s["returned_gross"] += gross
            s["applied_to_overpayments"] += parse_amount(p["applied_to_overpayment"])
    for o in ledger.overpayments.values():
        if o["kind"] == "unmatched_return":
            s["unmatched"][o["reason"]] += 1
            s["unmatched_tiyn"][o["reason"]] += parse_amount(o["amount"])
    for a in ledger.accounts.values():
        s["states"][a["state"]] += 1
        s["outstanding"] += parse_amount(a["overpaid_outstanding"])
    return s


def money(tiyn: int) -> str:
    return format_tiyn(tiyn) + " ₸"


def rows(exp: dict, obs: dict, held: tuple[int, int], repeats: tuple[int, int]) -> list[tuple[str, str, str, bool]]:
    out = []

    def row(label, e, o, fmt=str):
        out.append((label, fmt(e), fmt(o), e == o))

    def count_amount(c, t):
        return lambda key: f"{c.get(key, 0)} / {format_tiyn(t.get(key, 0))} ₸"

    row("Fund decisions decided", exp["decisions"], obs["decisions"])
    for kind in DECISION_KINDS:
        row(f"  {kind} applied", exp["applied"].get(kind, 0), obs["applied"].get(kind, 0))
    for reason in DECISION_REASONS:
        row(f"  rejected {reason}", exp["rejected"].get(reason, 0), obs["rejected"].get(reason, 0))
    row("repeated decisions and transfers ignored", repeats[0], repeats[1])
    row("social payments posted", exp["payments"], obs["payments"])
    row("  gross paid", exp["paid_gross"], obs["paid_gross"], money)
    row("  covered by an assignment", exp["covered"], obs["covered"], money)
    e_over, o_over = count_amount(exp["overpaid"], exp["overpaid_tiyn"]), count_amount(obs["overpaid"],
                                                                                       obs["overpaid_tiyn"])
    for reason in OVERPAID_REASONS:
        if exp["overpaid"].get(reason) or obs["overpaid"].get(reason):
            out.append((f"  overpaid {reason} (n / amount)", e_over(reason), o_over(reason),
                        e_over(reason) == o_over(reason)))
    row("  waited for a decision (lag hold)", held[0], held[1])
    row("    covered once their assign came", exp["lag_covered"], obs["lag_covered"])
    row("returns posted", exp["returns"], obs["returns"])
    row("  applied to overpayments", exp["applied_to_overpayments"], obs["applied_to_overpayments"], money)
    e_un, o_un = count_amount(exp["unmatched"], exp["unmatched_tiyn"]), count_amount(obs["unmatched"],
                                                                                   obs["unmatched_tiyn"])
    for reason in UNMATCHED_REASONS:
        if exp["unmatched"].get(reason) or obs["unmatched"].get(reason):
            out.append((f"  unmatched {reason} (n / amount)", e_un(reason), o_un(reason), e_un(reason) == o_un(reason)))
    row("overpayment records (fund.overpayments)", exp["overpayment_records"], obs["overpayment_records"])
    row("overpayments outstanding at the day's end", exp["outstanding"], obs["outstanding"], money)
    states = lambda c: " / ".join(str(c.get(s, 0)) for s in STATES)  # noqa: E731
    row("accounts: none / active / suspended / terminated / refused", states(exp["states"]), states(obs["states"]))
    return out


class Part2Outputs:
    """The ledgers' output topics (recipients and reversals), read from the beginning as they arrive."""

    def __init__(self, bootstrap: str, topics: Topics):
        self.kinds = {topics.decision_results: "results", topics.social_payments: "postings",
                      topics.overpayments: "overpayments", topics.recipient_accounts: "accounts",
                      topics.posted_reversals: "reversals", topics.refunds_reversals: "refund_orders"}
        self.reader = TopicReader(bootstrap, list(self.kinds), client_id="esep-demo-part2")
        self.fund = Ledger()
        self.reversals: list[dict] = []  # every record, re-emissions included (each entry reversed once?)
        self.refund_orders: list[dict] = []

    def poll(self, budget_s: float = 0.3) -> None:
        for m in self.reader.poll_for(budget_s):
            kind = self.kinds[m.topic]
            value = json.loads(m.value)
            if kind == "reversals":
                self.reversals.append(value)
            elif kind == "refund_orders":
                self.refund_orders.append(value)
            else:
                self.fund.add(kind, m.key.decode(), value)

    def close(self) -> None:
        self.reader.close()


def send_day(producer: KafkaProducer, topics: Topics, worker: WorkerProcess, day: FundDay, say: Callable[[str], None],
             poll: Callable[[], None], timeout_s: float = 300.0) -> float:
    """Phase by phase; the next phase once the worker decided every record sent so far (its
    counters by input: a record held for a decision counts as decided). Returns the seconds taken."""
    started = time.monotonic()
    sent: Counter = Counter()
    for step, label in enumerate(DAY_PHASES, start=1):
        phase = day.phase(step)
        for rec in phase:
            topic = topics.payment_decisions if rec.input == DECISIONS else topics.payment_transfers
            value = json.dumps(rec.value, ensure_ascii=False).encode()
            producer.send(topic, key=rec.value["iin"].encode(), value=value)
            sent[rec.input] += 1
        producer.flush()
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while True:
            text = worker.metrics_text()
            done = {i: decided_count(text, INPUT_LABELS[i]) for i in INPUT_LABELS}
            if all(done[i] >= sent[i] for i in INPUT_LABELS):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Fund's day, phase {step}: {dict(done)} of {dict(sent)} decided after "
                                   f"{timeout_s:.0f} s")
            poll()
            time.sleep(0.2)
        kinds = Counter("decisions" if r.input == DECISIONS else "transfers" for r in phase)
        say(f"      phase {step}/{len(DAY_PHASES)} {label}: {', '.join(f'{n} {k}' for k, n in kinds.items())} "
            f"decided in {time.monotonic() - t0:.1f} s")
    return time.monotonic() - started
