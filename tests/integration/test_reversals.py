"""Refunds of posted contributions on the real broker (issue 11): a scripted set of refund
decisions against entries a worker posted, and SIGKILLs mid-stream showing one reversal per entry.

Times: orders and decisions carry `received_at` near now, and the hold's margin is chosen so that
its cut-off falls a few tens of seconds after the test starts (as test_hold does): a decision that
names an entry that is never posted here is decided at that cut-off."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from models.reversals import RefundDecisionResult, ReversalEntry, ReversalRefund
from rules import codes
from rules.calendar import ALMATY, default_calendar
from tools.synthetic import Scenario, make_orders, make_registry

from ..cases import A, B, C, D, _line, _order, registry_persons
from ..fund_cases import decision as payment_decision
from ..fund_cases import recipient
from .harness import ROOT, Outputs, Stack

pytestmark = pytest.mark.integration

PAYER = {"name": "ТОО «Дала Құрылыс»", "bin_iin": "180440000019", "iban": "KZ86125KZT5004100100"}
STAMPS = ("posted_at", "created_at", "decided_at")


class LedgerOutputs(Outputs):
    """Part 1's outputs and the reversal path's."""

    def __init__(self, stack: Stack):
        super().__init__(stack)
        t = stack.topics
        self.topics += [t.posted_reversals, t.refunds_reversals, t.decision_results]
        self.consumer.subscribe(self.topics)

    def values(self, topic: str) -> list[dict]:
        return [v for _, v in self.records[topic]]

    @property
    def results_by_id(self) -> dict[str, list[dict]]:
        """Results of refund decisions (the topic also has the payment decisions')."""
        out = defaultdict(list)
        for v in self.values(self.t.decision_results):
            if v["decision"] == "refund":
                out[v["decision_id"]].append(v)
        return out


def unstamped(v: dict) -> dict:
    return {k: x for k, x in v.items() if k not in STAMPS}


def distinct(records: list[dict], key: str) -> dict[str, dict]:
    """One record per id; every re-emission equal to the first except its stamps."""
    first: dict[str, dict] = {}
    for r in records:
        if r[key] in first:
            assert unstamped(first[r[key]]) == unstamped(r), f"two different emissions of {r[key]}"
        else:
            first[r[key]] = r
    return first


def check_conservation(out: LedgerOutputs) -> tuple[dict, dict, dict]:
    """Each reversal reverses a posted entry of its IIN, with its amount; at most one reversal per
    entry; posted minus reversed per entry is 0 or the original amount; each refund order is the sum
    of its decision's reversals. Returns (entries, reversals, refunds) by id."""
    entries = distinct(out.posted, "entry_id")
    reversals = distinct(out.values(out.t.posted_reversals), "entry_id")
    refunds = distinct(out.values(out.t.refunds_reversals), "refund_id")
    by_entry = defaultdict(list)
    for r in reversals.values():
        ReversalEntry.model_validate(r)
        assert r["entry_id"] == r["reverses"] + "/reversal"
        by_entry[r["reverses"]].append(r)
    for entry_id, revs in by_entry.items():
        assert len(revs) == 1, f"{entry_id} reversed {len(revs)} times"
        original = entries[entry_id]
        assert (revs[0]["iin"], revs[0]["amount"], revs[0]["knp"]) == (original["iin"], original["amount"],
                                                                       original["knp"])
    for entry_id, e in entries.items():
        net = Decimal(e["amount"]) - sum(Decimal(r["amount"]) for r in by_entry.get(entry_id, []))
        assert net in (Decimal(0), Decimal(e["amount"])), entry_id
    for refund in refunds.values():
        ReversalRefund.model_validate(refund)
        rid = refund["refund_decision_id"]
        mine = [r for r in reversals.values() if r["refund_decision_id"] == rid]
        assert sorted(ln["line_no"] for ln in refund["lines"]) == sorted(int(r["reverses"].rsplit("/", 1)[1])
                                                                         for r in mine)
        assert Decimal(refund["amount"]) == sum(Decimal(r["amount"]) for r in mine)
        assert refund["refund_knp"] == codes.REFUND_KNPS[refund["knp"]]
    return entries, reversals, refunds


def decision(rid: str, iin: str, nid: str, entry_ids: list[str], received: datetime) -> dict:
    return {"refund_decision_id": rid, "iin": iin, "notification_id": nid, "entry_ids": entry_ids,
            "reason": "излишне уплаченные социальные отчисления, заявление плательщика",
            "decided_on": received.date().isoformat(), "received_at": received.isoformat(), "payer": PAYER}


def send_decision(stack: Stack, value: dict, key: bytes | None = None) -> None:
    stack.send(stack.topics.refund_decisions, key if key is not None else value["iin"].encode(),
               json.dumps(value, ensure_ascii=False).encode())


def margin_for_cutoff(received: datetime, seconds_from_now: float) -> str:
    """ESEP_HOLD_CUTOFF_MIN that puts the cut-off of `received` that many seconds from now."""
    deadline = default_calendar().receipt_deadline(received)
    return f"{(deadline - (datetime.now(ALMATY) + timedelta(seconds=seconds_from_now))).total_seconds() / 60:.4f}"


def test_scripted_refund_decisions(broker, tmp_path):
    received = datetime.now(ALMATY).replace(microsecond=0)
    cutoff_in = 40.0
    cutoff_at = time.monotonic() + cutoff_in
    stack = Stack(broker, tmp_path, ESEP_PENDING="business-day", ESEP_HOLD_CHECK_S="1",
                  ESEP_HOLD_CUTOFF_MIN=margin_for_cutoff(received, cutoff_in))
    out = LedgerOutputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        period = f"{received.year}-{received.month:02d}"
        common = {"received_at": received.isoformat(), "period": period}
        order = _order("R-ORD-1", [_line(1, A, "1000.00"), _line(2, B), _line(3, C, "300.00"), _line(4, A, "2000.50"),
                                   _line(5, C, "500.00")], **common)
        penalty = _order("R-PEN-2", [_line(1, B, "1234.56"), _line(2, C, "99.00")], knp="017", **common)
        late = _order("R-LATE-3", [_line(1, D, "777.00")], **common)
        for o in (order, penalty):
            stack.send_notification(o)
        # B is assigned a social payment whose risk occurred this month: B's contributions of the 24
        # months up to it made up its base (PERIOD_USED_FOR_PAYMENT), B's penalties did not.
        assign = payment_decision("assign", received.date().isoformat(), decision_id="DEC-RISK", iin=B["iin"],
                                  recipient=recipient(**{k: B[k] for k in ("surname", "name", "patronymic",
                                                                           "birth_date")}, sex="F"))
        stack.send(stack.topics.payment_decisions, B["iin"].encode(), assign.model_dump_json().encode())
        stack.flush()
        out.wait_for(lambda o: len(o.result_ids()) >= 2, what="both orders posted", workers=[worker])
        out.wait_for(lambda o: any(v["decision_id"] == "DEC-RISK" and v["status"] == "applied"
                                   for v in o.values(o.t.decision_results)), what="B's assignment applied",
                     workers=[worker])

        decisions = {
            # partial reversal of an order's lines (A's lines 1 and 4 of 5)
            "RFD-1": decision("RFD-1", A["iin"], "R-ORD-1", ["R-ORD-1/4", "R-ORD-1/1"], received),
            # a penalty: refund KNP 094
            "RFD-2": decision("RFD-2", B["iin"], "R-PEN-2", ["R-PEN-2/1"], received),
            # two overlapping decisions: the second gets ALREADY_REVERSED for the shared entry
            "RFD-3": decision("RFD-3", C["iin"], "R-ORD-1", ["R-ORD-1/3"], received),
            "RFD-4": decision("RFD-4", C["iin"], "R-ORD-1", ["R-ORD-1/3", "R-ORD-1/5"], received),
            # a decision before its entry is posted: waits, released when the entry arrives
            "RFD-5": decision("RFD-5", D["iin"], "R-LATE-3", ["R-LATE-3/1"], received),
            # an unknown entry of the notification: waits until the cut-off, then ENTRY_NOT_FOUND
            "RFD-6": decision("RFD-6", B["iin"], "R-ORD-1", ["R-ORD-1/99"], received),
            # an entry of another IIN (A's line, decided for D): the same
            "RFD-7": decision("RFD-7", D["iin"], "R-ORD-1", ["R-ORD-1/1"], received),
            # an id of another notification: never posted here, decided at once
            "RFD-8": decision("RFD-8", C["iin"], "R-ORD-1", ["R-PEN-2/2"], received),
            # a KNP 012 entry of a month that made up B's social payment
            "RFD-9": decision("RFD-9", B["iin"], "R-ORD-1", ["R-ORD-1/2"], received),
        }
        for rid in ("RFD-1", "RFD-2", "RFD-3", "RFD-4", "RFD-5", "RFD-6", "RFD-7", "RFD-9"):
            send_decision(stack, decisions[rid])
        send_decision(stack, decisions["RFD-8"], key=b"not-the-iin")  # re-keyed to its IIN, then decided
        send_decision(stack, decisions["RFD-1"])  # a repeat: nothing new
        stack.send(stack.topics.refund_decisions, A["iin"].encode(), b'{"refund_decision_id": "RFD-BAD"}')
        stack.flush()
        at_once = {"RFD-1", "RFD-2", "RFD-3", "RFD-4", "RFD-8", "RFD-9"}
        out.wait_for(lambda o: set(o.results_by_id) >= at_once and o.dead_letters, what="the decisions decided at once",
                     workers=[worker])
        out.drain(quiet_s=2.0)
        assert set(out.results_by_id) == at_once, "RFD-5, 6 and 7 wait"
        wait_until(lambda: worker.metric("esep_refund_decisions_waiting") == 3, "three waiting decisions")
        assert worker.metric("esep_refund_decisions_oldest_wait_seconds") > 0

        stack.send_notification(late)
        stack.flush()
        out.wait_for(lambda o: "RFD-5" in o.results_by_id, what="RFD-5 released by its entry", workers=[worker])
        assert time.monotonic() < cutoff_at, "released by the entry, before the cut-off"
        out.wait_for(lambda o: {"RFD-6", "RFD-7"} <= set(o.results_by_id), timeout=cutoff_in + 30,
                     what="RFD-6 and RFD-7 at the cut-off", workers=[worker])
        assert time.monotonic() >= cutoff_at - 2
        out.drain(quiet_s=2.0)

        entries, reversals, refunds = check_conservation(out)
        results = {}
        for rid, emitted in out.results_by_id.items():
            assert len(emitted) == 1, f"{rid}: one result (a repeat adds none)"
            RefundDecisionResult.model_validate(emitted[0])
            results[rid] = emitted[0]
        assert set(results) == set(decisions)

        def outcome(rid):
            r = results[rid]
            return r["status"], r["reason"], [(x["entry_id"], x["reason"]) for x in r["rejected_entries"]]

        assert outcome("RFD-1") == ("applied", None, [])
        assert outcome("RFD-2") == ("applied", None, [])
        assert outcome("RFD-3") == ("applied", None, [])
        assert outcome("RFD-4") == ("applied", None, [("R-ORD-1/3", codes.ALREADY_REVERSED)])
        assert outcome("RFD-5") == ("applied", None, [])
        assert outcome("RFD-6") == ("rejected", codes.NOTHING_REVERSED, [("R-ORD-1/99", codes.ENTRY_NOT_FOUND)])
        assert outcome("RFD-7") == ("rejected", codes.NOTHING_REVERSED, [("R-ORD-1/1", codes.ENTRY_NOT_FOUND)])
        assert outcome("RFD-8") == ("rejected", codes.NOTHING_REVERSED, [("R-PEN-2/2", codes.ENTRY_NOT_FOUND)])
        assert outcome("RFD-9") == ("rejected", codes.NOTHING_REVERSED,
                                    [("R-ORD-1/2", codes.PERIOD_USED_FOR_PAYMENT)])
        assert {r["reverses"]: r["refund_decision_id"] for r in reversals.values()} == {
            "R-ORD-1/1": "RFD-1", "R-ORD-1/4": "RFD-1", "R-PEN-2/1": "RFD-2", "R-ORD-1/3": "RFD-3",
            "R-ORD-1/5": "RFD-4", "R-LATE-3/1": "RFD-5"}
        by_refund = {r["refund_decision_id"]: r for r in refunds.values()}
        assert set(by_refund) == {"RFD-1", "RFD-2", "RFD-3", "RFD-4", "RFD-5"}, "no refund when nothing is reversed"
        one = by_refund["RFD-1"]
        assert (one["knp"], one["refund_knp"], one["amount"], [ln["line_no"] for ln in one["lines"]]) == (
            "012", "026", "3000.50", [1, 4])
        assert {k for k, _ in out.records[stack.topics.refunds_reversals]} == {b"R-ORD-1", b"R-PEN-2", b"R-LATE-3"}
        pen = by_refund["RFD-2"]
        assert (pen["knp"], pen["refund_knp"], pen["amount"]) == ("017", "094", "1234.56")
        assert pen["lines"][0]["surname"] == B["surname"] and pen["payer"] == PAYER
        [letter] = out.dead_letters
        assert letter["source_topic"] == stack.topics.refund_decisions and letter["error_kind"] == "schema"
        # Part 1's records are untouched: one entry per posted line, one result per order.
        assert len(out.posted) == len(entries) == 8 and len(out.results) == 3
        assert out.values(out.t.decision_results)[0]["decision_id"] == "DEC-RISK"

        assert worker.metric('esep_ledger_records_total{input="refund-decisions",outcome="duplicate"}') == 1
        assert worker.metric('esep_ledger_records_total{input="refund-decisions",outcome="rerouted"}') == 1
        assert worker.metric('esep_reversal_entries_total{outcome="reversed"}') == 6
        assert worker.metric('esep_reversal_entries_total{outcome="rejected",reason="ALREADY_REVERSED"}') == 1
        assert worker.metric('esep_reversal_entries_total{outcome="rejected",reason="ENTRY_NOT_FOUND"}') == 3
        assert worker.metric('esep_refund_results_total{status="rejected"}') == 4
        assert worker.metric('esep_reversal_entries_total{outcome="rejected",reason="PERIOD_USED_FOR_PAYMENT"}') == 1
        assert worker.metric('esep_amount_reversed_tenge_total{knp="017"}') == pytest.approx(1234.56)
        assert worker.metric('esep_amount_reversed_tenge_total{knp="012"}') == pytest.approx(3000.50 + 800 + 777)
        wait_until(lambda: worker.metric("esep_refund_decisions_waiting") == 0, "no waiting decision")

        # The person's entries with each reversal under the entry it reverses.
        shown = subprocess.run([sys.executable, "-m", "streams.cli", "person", "entries", A["iin"]],
                               env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert "2 posted entries, 2 reversed" in lines[0] and "net 0.00" in lines[0]
        at = {ln.split()[0]: i for i, ln in enumerate(lines) if ln.startswith("R-")}
        for eid in ("R-ORD-1/1", "R-ORD-1/4"):
            assert lines[at[eid] + 1].strip().startswith(f"└ {eid}/reversal") and "by RFD-1" in lines[at[eid] + 1]
        print(f"scripted: {len(results)} decisions, {len(reversals)} reversals, {len(refunds)} refund orders")
    finally:
        out.close()
        stack.close()


def test_hold_off_decisions_wait_for_the_index_to_read_every_posted_entry(broker, tmp_path):
    """The index reads posted.contributions apart from the decisions: a worker that starts with a
    backlog of posted entries takes its refund decisions up long before its feed has read the last
    entries. With the hold off a decision is decided at once, yet against every entry posted before
    it was taken up: never ENTRY_NOT_FOUND for an entry the feed had not read yet. (With the wait
    for the feed removed, this test fails: the decisions come before their entries are indexed.)"""
    from ..rules.test_reversals import posted

    stack = Stack(broker, tmp_path, ESEP_PENDING="off")
    out = LedgerOutputs(stack)
    try:
        persons = make_registry(200, seed=53)
        stack.send_registry(persons)
        # 40,000 entries already posted (several seconds of the feed's work), then the decisions
        # naming the last entry of each of 20 persons.
        last: dict[str, str] = {}
        for n in range(40_000):
            p = persons[n % len(persons)]
            person = {k: p[k] for k in ("iin", "surname", "name", "patronymic", "birth_date")}
            entry = posted(f"BKLG-{n // 20}", n % 20 + 1, person=person)
            stack.send(stack.topics.posted_contributions, person["iin"].encode(),
                       json.dumps(entry, ensure_ascii=False).encode())
            last[person["iin"]] = entry["entry_id"]
        received = datetime.now(ALMATY).replace(microsecond=0)
        plan = {}
        for iin, entry_id in list(last.items())[:20]:
            rid = f"BKLG-RFD-{len(plan) + 1}"
            plan[rid] = decision(rid, iin, entry_id.rsplit("/", 1)[0], [entry_id], received)
            send_decision(stack, plan[rid])
        stack.flush()
        worker = stack.worker().start()
        worker.wait_ready()
        out.wait_for(lambda o: set(o.results_by_id) >= set(plan), timeout=180, what="every refund result",
                     workers=[worker])
        for rid in plan:
            [result] = out.results_by_id[rid]
            assert (result["status"], result["rejected_entries"]) == ("applied", []), (rid, result)
        assert len(out.values(out.t.posted_reversals)) == len(plan)
        print(f"backlog: {len(plan)} decisions taken up before 40,000 entries were indexed, every one applied")
    finally:
        out.close()
        stack.close()


def wait_until(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


# ---- SIGKILLs mid-stream --------------------------------------------------------------------------------


def refund_decisions_for(records, seed: int) -> list[tuple[int, dict]]:
    """(index of the order after which to send it, decision) for posted lines of the orders: partial,
    overlapping, repeated, with ids of another notification; some sent right after their order (so
    they often arrive before the entries are posted and wait)."""
    rng = random.Random(seed)
    out: list[tuple[int, dict]] = []
    orders = [json.loads(r.value) for r in records if r.kind == "order"]
    n = 0
    for i, order in enumerate(orders):
        by_iin = defaultdict(list)
        for line in order["lines"]:
            by_iin[line["iin"]].append(f"{order['notification_id']}/{line['line_no']}")
        received = datetime.fromisoformat(order["received_at"])
        for iin, eids in by_iin.items():
            if rng.random() < 0.5:
                continue
            n += 1
            named = rng.sample(eids, rng.randint(1, len(eids)))
            if rng.random() < 0.1:  # an entry of another notification: ENTRY_NOT_FOUND at once
                other = orders[(i + rng.randrange(1, len(orders))) % len(orders)]
                named.append(f"{other['notification_id']}/{other['lines'][0]['line_no']}")
            d = decision(f"KRFD-{n}", iin, order["notification_id"], named, received)
            after = min(len(orders) - 1, i + rng.choice((0, 0, 1, 3)))
            out.append((after, d))
            if rng.random() < 0.3:  # an overlapping second decision
                n += 1
                overlap = [rng.choice(eids)] + rng.sample(eids, rng.randint(0, len(eids) - 1))
                out.append((min(len(orders) - 1, after + rng.choice((0, 2))),
                            decision(f"KRFD-{n}", iin, order["notification_id"], overlap, received)))
            if rng.random() < 0.1:  # a repeat of the first, later
                out.append((min(len(orders) - 1, after + 4), d))
    return out


def test_sigkill_mid_stream_one_reversal_per_entry(broker, tmp_path):
    # Two workers; a long commit interval: nothing is committed before a kill, so every decision
    # decided before it comes again, to the survivor and then to the restarted worker.
    stack = Stack(broker, tmp_path, ESEP_PENDING="business-day", ESEP_HOLD_CHECK_S="1",
                  ESEP_COMMIT_INTERVAL_S="60", ESEP_BATCH_SIZE="20")
    out = LedgerOutputs(stack)
    try:
        registry = make_registry(300, seed=31)
        stack.send_registry(registry)
        now = datetime.now(ALMATY).replace(microsecond=0)
        records = [r for r in make_orders(registry, 240, (1, 12), seed=31, scenario=Scenario.clean(),
                                          received_at=now, id_prefix="KREV") if r.kind == "order"]
        plan = refund_decisions_for(records, seed=31)
        ids = {d["refund_decision_id"] for _, d in plan}
        # Named entries of the decision's own notification: lines of its IIN, all posted (clean orders).
        own = {eid for _, d in plan for eid in d["entry_ids"] if eid.startswith(d["notification_id"] + "/")}
        workers = [stack.worker("w1").start(), stack.worker("w2").start()]
        for w in workers:
            w.wait_ready()
        time.sleep(3)  # both members joined: the group has split the partitions

        def feed():
            by_order = defaultdict(list)
            for after, d in plan:
                by_order[after].append(d)
            for i, r in enumerate(records):
                stack.send(stack.topics.credit_notifications, r.key, r.value)
                for d in by_order[i]:
                    send_decision(stack, d)
                if i % 8 == 7:
                    stack.flush()
                    time.sleep(0.6)
            stack.flush()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        kills = []
        handled = []
        # Each kill moves the victim's partitions to the other worker (after the session timeout) and
        # back when it returns: its state follows through the changelog both ways.
        for share, victim in ((0.2, workers[0]), (0.55, workers[1])):
            threshold = int(len(ids) * share)
            out.wait_for(lambda o: len(o.results_by_id) >= threshold, timeout=120,
                         what=f"{threshold} refund results", workers=workers)
            handled.append(victim.metric("esep_ledger_records_total", 'input="refund-decisions"'))
            victim.kill()
            kills.append(len(out.results_by_id))
            out.poll(1.0)
            check_conservation(out)
            time.sleep(7)  # past the session timeout: the survivor takes the victim's partitions
            victim.start()
        feeder.join(60)
        out.wait_for(lambda o: set(o.results_by_id) >= ids, timeout=300, what="every refund result",
                     workers=workers)
        out.drain(quiet_s=2.0)

        entries, reversals, refunds = check_conservation(out)
        results = {rid: distinct(emitted, "decision_id")[rid] for rid, emitted in out.results_by_id.items()}
        assert set(results) == ids
        reversed_by = {r["reverses"]: r["refund_decision_id"] for r in reversals.values()}
        # Each is reversed exactly once, by one of the decisions naming it; the others get
        # ALREADY_REVERSED for it.
        assert own <= set(entries)
        assert set(reversed_by) == own
        for rid, r in results.items():
            d = next(d for _, d in plan if d["refund_decision_id"] == rid)
            mine = {e for e, by in reversed_by.items() if by == rid}
            rejected = {x["entry_id"]: x["reason"] for x in r["rejected_entries"]}
            assert mine | set(rejected) == set(d["entry_ids"]) and not mine & set(rejected), rid
            for eid, reason in rejected.items():
                if eid.startswith(d["notification_id"] + "/"):
                    assert reason == codes.ALREADY_REVERSED and reversed_by[eid] != rid, (rid, eid)
                else:
                    assert reason == codes.ENTRY_NOT_FOUND, (rid, eid)
            assert (r["status"] == "applied") == bool(mine)
        emitted = len(out.values(out.t.posted_reversals))
        assert kills[-1] < len(ids), f"the kills came mid-stream: {kills} of {len(ids)}"
        assert all(n > 0 for n in handled), f"each worker took refund decisions before its kill: {handled}"
        print(f"kill test: {len(ids)} decisions, {len(plan) - len(ids)} repeats, kills after {kills} results; "
              f"{len(reversals)} entries reversed once ({emitted} reversal records emitted, "
              f"{len(out.values(out.t.decision_results))} results emitted for {len(results)} decisions); "
              f"{sum(1 for r in results.values() if r['status'] == 'rejected')} rejected; "
              f"refund decision records each worker handled before its kill {handled}")
        for w in workers:
            w.stop()
    finally:
        out.close()
        stack.close()
