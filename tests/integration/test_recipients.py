"""The recipients ledger on the real broker, through real workers: the contract's fund example
record for record, a scripted year of one recipient per payment type against the pure rules, and
SIGKILL twice mid-stream with two workers (each decision and transfer decided once, balances
conserved)."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone

import pytest
from kafka import KafkaConsumer

from models.fund import DecisionResult, Overpayment, PaymentDecision, PaymentTransfer, PostedSocialPayment, \
    RecipientAccount
from models.registry import RegistryPerson
from rules import recipients as rr
from rules.codes import PAYMENT_TYPES
from rules.money import parse_amount
from streams.recipient_view import format_recipient, read_recipient
from tables.registry import decode_person_view, encode_person
from tools.fund_synthetic import DECISIONS, stream, year_script
from tools.synthetic import make_registry

from ..cases import registry_persons
from ..test_fund_example import contract_fields, steps
from .harness import Stack

pytestmark = pytest.mark.integration

STAMPS = ("decided_at", "updated_at", "posted_at", "created_at")
MODELS = {"decision_results": DecisionResult, "recipient_accounts": RecipientAccount,
          "social_payments": PostedSocialPayment, "overpayments": Overpayment}
CONTRACT = {"decision_results": "fund.decision-results", "recipient_accounts": "recipients.accounts",
            "social_payments": "posted.social-payments", "overpayments": "fund.overpayments"}


class FundOutputs:
    """Everything on the recipients ledger's output topics (and dead letters), in arrival order."""

    def __init__(self, stack: Stack):
        t = stack.topics
        self.names = {getattr(t, k): k for k in (*MODELS, "dead_letters")}
        self.consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
                                      enable_auto_commit=False, group_id=None)
        self.consumer.subscribe(list(self.names))
        self.records: dict[str, list[tuple[str, dict]]] = defaultdict(list)

    def poll(self, budget_s: float = 0.5) -> None:
        end = time.monotonic() + budget_s
        while time.monotonic() < end:
            batch = self.consumer.poll(timeout_ms=100, max_records=5000)
            if not batch:
                return
            for messages in batch.values():
                for m in messages:
                    self.records[self.names[m.topic]].append((m.key.decode(), json.loads(m.value)))

    def count(self, name: str) -> int:
        return len(self.records[name])

    def wait_for(self, predicate, timeout: float = 180, what: str = "outputs", workers=()) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate(self):
                return
            time.sleep(0.1)
        tails = "\n".join(w.log_tail() for w in workers)
        raise AssertionError(f"timed out waiting for {what}; have { {k: len(v) for k, v in self.records.items()} }"
                             f"\n{tails}")

    def drain(self, quiet_s: float = 1.5) -> None:
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            before = sum(len(v) for v in self.records.values())
            self.poll(0.5)
            if sum(len(v) for v in self.records.values()) != before:
                last = time.monotonic()

    def values(self, name: str) -> list[dict]:
        return [v for _, v in self.records[name]]

    def close(self) -> None:
        self.consumer.close()


def unstamped(value: dict) -> dict:
    return {k: v for k, v in value.items() if k not in STAMPS}


def send(stack: Stack, record_input: str, value: dict, key: str | None = None) -> None:
    topic = stack.topics.payment_decisions if record_input == DECISIONS else stack.topics.payment_transfers
    stack.send(topic, (key or value["iin"]).encode(), json.dumps(value, ensure_ascii=False).encode())


def registry_view(person: dict) -> dict:
    return decode_person_view(encode_person(RegistryPerson.model_validate_json(json.dumps(person))))


# ---- the contract's example ---------------------------------------------------------------------------


def test_the_fund_example_end_to_end(broker, tmp_path):
    """Input by input (decisions and transfers are two topics: each input waits for the outputs of
    the one before); with the hold on, as deployed: every cut-off of the example is long past."""
    stack = Stack(broker, tmp_path)
    out = FundOutputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        wanted: dict[str, int] = defaultdict(int)
        checked = 0
        for inp, step in steps():
            if inp["topic"] == "fund.refund-decisions":
                continue
            before = {name: out.count(name) for name in MODELS}
            kind = DECISIONS if inp["topic"] == "fund.payment-decisions" else "transfers"
            send(stack, kind, inp["value"], key=inp["key"])
            stack.flush()
            for name in MODELS:
                wanted[name] += len(step["outputs"][CONTRACT[name]])
            out.wait_for(lambda o: all(o.count(n) >= wanted[n] for n in MODELS), what=f"input {step['input']}",
                         workers=[worker])
            for name, model in MODELS.items():
                got = out.records[name][before[name]:]
                want = step["outputs"][CONTRACT[name]]
                assert len(got) == len(want), (step["input"], name)
                for (key, value), w in zip(got, want):
                    model.model_validate(value)
                    assert key == w["key"]
                    if name == "recipient_accounts":
                        assert {f: value[f] for f in w["value"]} == w["value"], step["input"]
                    else:
                        assert unstamped(contract_fields(CONTRACT[name], value)) == unstamped(w["value"]), \
                            (step["input"], name)
                        assert all(value[s] != "<worker clock>" for s in STAMPS if s in w["value"])
            checked += 1
        out.drain()
        assert {n: out.count(n) for n in MODELS} == dict(wanted), "nothing more (input 10 is a repeat)"
        assert out.count("dead_letters") == 0
        assert checked == 11
        assert worker.metric('esep_ledger_records_total{input="payment-transfers",outcome="duplicate"}') == 1
        worker.stop()
    finally:
        out.close()
        stack.close()


# ---- a scripted year per payment type -----------------------------------------------------------------


def expected_year(scripts: dict[str, list], persons: dict[str, dict]) -> dict[str, dict[str, list]]:
    """The pure rules over the same records in the order the test feeds them (step 1's held payment
    decided right after step 2's assign): records per output and key."""
    out: dict[str, dict[str, list]] = {n: defaultdict(list) for n in MODELS}
    by_contract = {v: k for k, v in CONTRACT.items()}
    for ptype, script in scripts.items():
        state = None
        person = registry_view(persons[script[0].value["iin"]])
        held = None
        for rec in script:
            if state is None:
                state = rr.new_state(rec.value["iin"], ptype)
            if rec.step == 1:
                held = PaymentTransfer.model_validate_json(json.dumps(rec.value))
                continue
            if rec.input == DECISIONS:
                decided = rr.decide_decision(state, PaymentDecision.model_validate_json(json.dumps(rec.value)), person, "")
            else:
                decided = rr.decide_transfer(state, PaymentTransfer.model_validate_json(json.dumps(rec.value)), person, "")
            state = decided.state
            emissions = [decided.emission]
            if held is not None:
                released = rr.decide_transfer(state, held, person, "")
                state, held = released.state, None
                emissions.append(released.emission)
            for emission in emissions:
                for topic, items in emission.records.items():
                    for i in items:
                        out[by_contract[topic]][i["key"]].append(unstamped(i["value"]))
    return out


def test_a_scripted_year_of_one_recipient_per_payment_type(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_HOLD_CHECK_S="1")
    out = FundOutputs(stack)
    try:
        persons = make_registry(len(PAYMENT_TYPES), seed=310, deceased_ratio=0.0, details_ratio=1.0)
        stack.send_registry(persons)
        by_iin = {p["iin"]: p for p in persons}
        now = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        scripts = {ptype: year_script(p, ptype, f"Y{n}", held_received_at=now)
                   for n, (ptype, p) in enumerate(zip(PAYMENT_TYPES, persons))}
        expected = expected_year(scripts, by_iin)
        worker = stack.worker().start()
        worker.wait_ready()
        steps_all = sorted({r.step for s in scripts.values() for r in s})
        for step in steps_all:
            for script in scripts.values():
                for rec in script:
                    if rec.step == step:
                        send(stack, rec.input, rec.value)
            stack.flush()
            if step == 1:
                # Held: nothing comes out; the assign must come after the hold took them.
                deadline = time.monotonic() + 60
                while worker.metric('esep_ledger_records_total{input="payment-transfers",outcome="held"}') < 6:
                    assert time.monotonic() < deadline, worker.log_tail()
                    time.sleep(0.2)
                while worker.metric("esep_held_transfers ") != 6:  # the gauge follows at the next tick
                    assert time.monotonic() < deadline, worker.log_tail()
                    time.sleep(0.2)
                assert 0 < worker.metric("esep_held_transfers_next_cutoff_seconds") <= 10 * 86400  # holidays can push it days away
                continue
            through = expected_year({t: [r for r in sc if r.step <= step] for t, sc in scripts.items()}, by_iin)
            expected_counts = {n: sum(len(v) for v in through[n].values()) for n in MODELS}
            out.wait_for(lambda o: all(o.count(n) >= expected_counts[n] for n in MODELS), what=f"step {step}",
                         workers=[worker])
        out.drain()
        for name, model in MODELS.items():
            got: dict[str, list] = defaultdict(list)
            for key, value in out.records[name]:
                model.model_validate(value)
                got[key].append(unstamped(value))
            assert dict(got) == dict(expected[name]), name
        # What the year shows, per type: every state was reached and every reason seen.
        results = out.values("decision_results")
        assert {r["state_after"] for r in results} == {"active", "suspended", "terminated", "refused"}
        assert sum(r["reason"] == "ILLEGAL_TRANSITION" for r in results) == 6
        reasons = {p["overpaid_reason"] for p in out.values("social_payments")}
        assert reasons >= {None, "EXCEEDS_ASSIGNED", "SUSPENDED", "TERMINATED"}
        assert {o["reason"] for o in out.values("overpayments") if o["kind"] == "unmatched_return"} == {
            "RETURN_EXCEEDS_OUTSTANDING"}
        assert_balances(out)
        assert worker.metric("esep_held_transfers ") == 0
        # `esep recipient IIN` reads it all back from the topics.
        iin = persons[2]["iin"]
        view = asyncio.run(read_recipient(stack.bootstrap, stack.topics, iin))
        assert list(view.accounts) == ["loss_of_job"] and view.accounts["loss_of_job"]["state"] == "refused"
        assert [d["decision"] for d in view.decisions] == [
            "assign", "recalculate", "suspend", "resume", "resume", "terminate", "refuse"]
        assert len(view.payments) == 10
        text = "\n".join(format_recipient(view))
        assert f"IIN {iin} · loss_of_job: refused since" in text and "ILLEGAL_TRANSITION" in text
        # A new document in the registry: the account again, with the document's history.
        accounts_before = out.count("recipient_accounts")
        changed = {**persons[2], "updated_at": "2026-01-15T10:00:00+05:00",
                   "document": {"kind": "passport", "series": None, "number": "N0000001", "issued_on": "2026-01-10",
                                "issuer": "МВД РК"}}
        stack.send_registry([changed])
        out.wait_for(lambda o: o.count("recipient_accounts") > accounts_before, what="the account after a registry "
                     "change", workers=[worker])
        out.drain(quiet_s=1.0)
        again = out.records["recipient_accounts"][accounts_before:]
        assert [k for k, _ in again] == [f"{iin}/loss_of_job"]
        account = again[0][1]
        assert account["document"]["number"] == "N0000001"
        assert account["document_history"][-1] == {"number": "N0000001", "issued_on": "2026-01-10",
                                                   "changed_on": "2026-01-15"}
        assert account["state"] == "refused" and account["paid"] == expected_last_paid(expected, iin)
        assert worker.metric("esep_fund_decisions_total",
                             'decision="resume",payment_type="child_care",reason="ILLEGAL_TRANSITION"') == 1
        worker.stop()
    finally:
        out.close()
        stack.close()


def expected_last_paid(expected, iin: str) -> dict:
    return expected["recipient_accounts"][f"{iin}/loss_of_job"][-1]["paid"]


def assert_balances(out: FundOutputs) -> dict[str, dict]:
    """Per (IIN, type): covered + overpaid = gross per payment, applied + unmatched = gross per return,
    and the last account equals the sums of what was posted (outstanding never negative)."""
    posted = {}
    for p in out.values("social_payments"):
        first = posted.setdefault(p["entry_id"], p)
        assert unstamped(first) == unstamped(p), f"two different postings of {p['entry_id']}"
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in posted.values():
        key = f"{p['iin']}/{p['payment_type']}"
        gross = parse_amount(p["gross_amount"])
        s = sums[key]
        if p["kind"] == "payment":
            assert parse_amount(p["covered_amount"]) + parse_amount(p["overpaid_amount"]) == gross
            s["paid"] += gross
            s["overpaid"] += parse_amount(p["overpaid_amount"])
        else:
            assert parse_amount(p["applied_to_overpayment"]) + parse_amount(p["unmatched_amount"]) == gross
            s["returned"] += gross
            s["applied"] += parse_amount(p["applied_to_overpayment"])
    last = {}
    for key, account in out.records["recipient_accounts"]:
        last[key] = account
    for key, s in sums.items():
        account = last[key]
        assert parse_amount(account["paid"]["gross"]) == s["paid"], key
        assert parse_amount(account["returned_total"]) == s["returned"], key
        outstanding = s["overpaid"] - s["applied"]
        assert outstanding >= 0 and parse_amount(account["overpaid_outstanding"]) == outstanding, key
    return posted


# ---- crashes ----------------------------------------------------------------------------------------


def test_sigkill_twice_two_workers_each_record_decided_once(broker, tmp_path):
    """Two workers; a long commit interval, so that a kill leaves decided records uncommitted and
    they come again. Whatever the interleaving of the two input topics, every decision has one
    result, every transfer one posting, re-emissions are identical, and the accounts add up. (It
    once lost outputs: a record of the other topic wrote the key before the killed batch's record
    came again; see tests/test_keyed_ledger_outbox.py.) A short stall watch: no worker that keeps
    up may be taken for stalled across the kills and rebalances."""
    stack = Stack(broker, tmp_path, ESEP_COMMIT_INTERVAL_S="60", ESEP_BATCH_SIZE="20", ESEP_STALL_S="45")
    out = FundOutputs(stack)
    try:
        persons = make_registry(240, seed=41, deceased_ratio=0.0)
        stack.send_registry(persons)
        records = stream(persons, seed=41, tag="KILL")
        decision_ids = {r.id for r in records if r.input == DECISIONS}
        transfer_ids = {r.id for r in records if r.input != DECISIONS}
        workers = [stack.worker("w1").start(), stack.worker("w2").start()]
        for w in workers:
            w.wait_ready()
        time.sleep(3)  # both members joined: the group has split the partitions

        def feed():
            for i, r in enumerate(records):
                send(stack, r.input, r.value)
                if i % 20 == 19:
                    stack.flush()
                    time.sleep(0.1)
            stack.flush()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        kills = []
        for n, victim in enumerate(workers):
            threshold = (len(records) // 4) * (n + 1)
            out.wait_for(lambda o: o.count("decision_results") + o.count("social_payments") >= threshold,
                         what=f"{threshold} outputs", workers=workers)
            victim.kill()
            kills.append(out.count("decision_results") + out.count("social_payments"))
            victim.start()
        feeder.join(120)
        def missing(o) -> tuple[set, set]:
            return (decision_ids - {r["decision_id"] for r in o.values("decision_results")},
                    transfer_ids - {p["entry_id"] for p in o.values("social_payments")})

        try:
            out.wait_for(lambda o: missing(o) == (set(), set()), timeout=150, what="every decision and transfer",
                         workers=workers)
        except AssertionError as exc:
            decisions, transfers = missing(out)
            raise AssertionError(f"no output for decisions {sorted(decisions)[:10]} ({len(decisions)}), "
                                 f"transfers {sorted(transfers)[:10]} ({len(transfers)})\n{exc}") from None
        out.drain(quiet_s=2.0)

        results = {}
        for r in out.values("decision_results"):
            first = results.setdefault(r["decision_id"], r)
            assert unstamped(first) == unstamped(r), f"two different results of {r['decision_id']}"
        assert set(results) == decision_ids
        posted = assert_balances(out)
        assert set(posted) == transfer_ids
        overpaid = {o["overpayment_id"] for o in out.values("overpayments")}
        assert overpaid == {p["entry_id"] for p in posted.values()
                            if parse_amount(p["overpaid_amount"]) or parse_amount(p["unmatched_amount"])}
        emitted = out.count("decision_results") + out.count("social_payments")
        assert kills[0] < len(records), f"the first kill must come mid-stream: {kills}"
        assert emitted > len(results) + len(posted), "the kills must have caused re-emissions"
        print(f"kills after {kills} outputs of {len(records)} records; {emitted - len(results) - len(posted)} "
              f"re-emitted identically")
        for w in workers:
            assert w.running, f"worker {w.worker_id} stopped on its own\n{w.log_tail()}"
            assert "worker failed" not in w.log_path.read_text(errors="replace"), w.log_tail()
            w.stop()
    finally:
        out.close()
        stack.close()
