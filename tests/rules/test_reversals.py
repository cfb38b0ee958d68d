"""Refunds of posted contributions (contract Part 2): the contract's worked example, every rejection
reason, the hold, the index's idempotence and state, and the conservation properties."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.outputs import PostedContribution
from models.reversals import RefundDecision, RefundDecisionResult, ReversalEntry, ReversalRefund
from rules import codes
from rules import reversals as R
from rules.calendar import ALMATY
from rules.money import format_tiyn

DATA = Path(__file__).resolve().parent.parent / "data"
CLOCK = "<worker clock>"
HOLD = timedelta(minutes=30)

C = {"iin": "010630534571", "surname": "Фёдоров", "name": "Дмитрий", "patronymic": "Петрович",
     "birth_date": "2001-06-30"}
A = {"iin": "870314312348", "surname": "Ахметов", "name": "Ерлан", "patronymic": "Серикович",
     "birth_date": "1987-03-14"}
PAYER = {"name": "ТОО «Дала Құрылыс»", "bin_iin": "180440000019", "iban": "KZ86125KZT5004100100"}


def posted(nid: str, line_no: int, person: dict = C, amount: str = "4250.00", period: str = "2026-10",
           knp: str = "012", total: str = "59000.00", posted_at: str = "2026-11-26T10:15:00.412+05:00") -> dict:
    return {
        "schema_version": 1, "entry_id": f"{nid}/{line_no}", **person,
        "kind": codes.CONTRIBUTION_KNPS[knp], "knp": knp, "amount": amount, "period": period,
        "document_number": nid.rsplit("-", 1)[-1], "document_date": "2026-11-25", "sent_date": "2026-11-25",
        "received_at": "2026-11-26T10:15:00+05:00", "posted_at": posted_at, "payer_name": PAYER["name"],
        "payer_bin_iin": PAYER["bin_iin"], "recipient_name": "НАО «Государственная корпорация «Правительство для граждан»",
        "total_amount": total, "status": "posted",
    }


def request(rid: str, entry_ids: list[str], nid: str = "N-1", iin: str = C["iin"],
            received_at: str = "2026-12-01T11:00:00+05:00", reason: str = "излишне уплаченные") -> R.RefundRequest:
    value = {"refund_decision_id": rid, "iin": iin, "notification_id": nid, "entry_ids": entry_ids,
             "reason": reason, "decided_on": received_at[:10], "received_at": received_at, "payer": PAYER}
    return R.RefundRequest.from_decision(RefundDecision.model_validate_json(json.dumps(value)))


def index_of(*records: dict, iin: str = C["iin"]) -> R.PostedIndex:
    index = R.PostedIndex(iin)
    for record in records:
        index = R.apply_posted(index, record)
    return index


def almaty(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(ALMATY)


def outputs(record: R.RefundRecord, index: R.PostedIndex) -> dict[str, list[dict]]:
    """Rendered and checked against the contract models, as {topic: [{key, value}]}."""
    out = R.render(record, index, CLOCK)
    for key, value in out["posted.reversals"]:
        ReversalEntry.model_validate(value)
    for key, value in out["refunds.reversals"]:
        ReversalRefund.model_validate(value)
    for key, value in out["fund.decision-results"]:
        RefundDecisionResult.model_validate(value)
    return {topic: [{"key": k, "value": v} for k, v in recs] for topic, recs in out.items()}


# ---- the contract's example ----------------------------------------------------------------------

def example():
    return json.loads((DATA / "fund-refund-decisions.json").read_text(encoding="utf-8"))


def example_indexes() -> dict[str, R.PostedIndex]:
    """Preconditions: posted.contributions holds part 1's example entries."""
    entries = json.loads((DATA / "expected-outputs.json").read_text(encoding="utf-8"))["posted.contributions"]
    indexes: dict[str, R.PostedIndex] = {}
    for entry in entries:
        indexes[entry["iin"]] = R.apply_posted(indexes.get(entry["iin"]), json.dumps(entry).encode())
    return indexes


def run_example(hold: bool):
    data = example()
    indexes = example_indexes()
    got = []
    for offset, (item, step) in enumerate(zip(data["inputs"], data["steps"])):
        decision = RefundDecision.model_validate_json(json.dumps(item["value"]))
        assert item["key"] == decision.iin
        req = R.RefundRequest.from_decision(decision)
        index = indexes.get(req.iin) or R.PostedIndex(req.iin)
        # The worker's clock runs near the decision's received_at.
        now = req.received_at + timedelta(seconds=1)
        index, what, record = R.receive(index, req, (0, offset), hold_margin=HOLD if hold else None, now=now)
        if what == R.WAITING:
            assert index.next_cutoff() == record.cutoff
            index, decided = R.release(index, now=datetime.fromtimestamp(record.cutoff, ALMATY))
            assert [r.request.refund_decision_id for r in decided] == [req.refund_decision_id]
            record = decided[0]
            index = R.settle(index, [req.refund_decision_id])
        indexes[req.iin] = index
        got.append((step, what, record, outputs(record, index)))
    return got


def test_the_contract_example_gives_exactly_the_expected_outputs():
    for step, what, record, out in run_example(hold=False):
        assert what == R.DECIDED
        for topic in ("fund.decision-results", "posted.reversals", "refunds.reversals"):
            assert out[topic] == step["outputs"][topic], (step["input"], topic)


def test_with_the_hold_on_only_the_unposted_entry_waits_and_the_records_are_the_same():
    results = run_example(hold=True)
    for step, what, record, out in results:
        for topic in ("fund.decision-results", "posted.reversals", "refunds.reversals"):
            assert out[topic] == step["outputs"][topic], (step["input"], topic)
    assert [r[2].emit_pending for r in results] == [False, False, True]
    # Input 14: received Tuesday 2026-12-01, deadline the end of Wednesday, cut-off 30 minutes before.
    waiting = R.receive(R.PostedIndex("921102423450"), R.RefundRequest.from_decision(
        RefundDecision.model_validate_json(json.dumps(example()["inputs"][2]["value"]))), (0, 2),
        hold_margin=HOLD, now=almaty("2026-12-01T11:00:01+05:00"))
    assert waiting[1] == R.WAITING
    assert datetime.fromtimestamp(waiting[2].cutoff, ALMATY) == almaty("2026-12-02T23:30:00+05:00")


# ---- each reason -------------------------------------------------------------------------------------

def rejected(record: R.RefundRecord) -> list[tuple[str, str]]:
    return list(record.outcome.rejected)


def test_unknown_entry_and_malformed_ids_are_not_found_and_nothing_is_reversed():
    index = index_of(posted("N-1", 1))
    index, what, record = R.receive(index, request("D1", ["N-1/9", "N-1", "garbage/x"]), (0, 0))
    assert what == R.DECIDED
    assert rejected(record) == [("N-1/9", codes.ENTRY_NOT_FOUND), ("N-1", codes.ENTRY_NOT_FOUND),
                                ("garbage/x", codes.ENTRY_NOT_FOUND)]
    out = outputs(record, index)
    assert out["posted.reversals"] == [] and out["refunds.reversals"] == []
    result = out["fund.decision-results"][0]["value"]
    assert (result["status"], result["reason"]) == ("rejected", codes.NOTHING_REVERSED)
    assert index.entries["N-1/1"].reversed_by is None


def test_an_entry_of_another_notification_is_not_found_though_posted():
    index = index_of(posted("N-1", 1), posted("N-2", 1))
    index, _, record = R.receive(index, request("D1", ["N-2/1", "N-1/1"], nid="N-1"), (0, 0))
    assert record.outcome.reversed == ("N-1/1",)
    assert rejected(record) == [("N-2/1", codes.ENTRY_NOT_FOUND)]
    assert index.entries["N-2/1"].reversed_by is None


def test_an_entry_of_another_iin_is_not_found():
    other = index_of(posted("N-1", 1, person=A), iin=A["iin"])
    mine = index_of(posted("N-1", 2))
    mine, _, record = R.receive(mine, request("D1", ["N-1/1"]), (0, 0))
    assert rejected(record) == [("N-1/1", codes.ENTRY_NOT_FOUND)]
    assert other.entries["N-1/1"].reversed_by is None
    with pytest.raises(ValueError):
        R.receive(other, request("D2", ["N-1/1"]), (0, 1))  # decided against its own IIN only


@pytest.mark.parametrize("period, used", [
    ("2025-03", True),  # the risk month itself
    ("2023-04", True),  # the 24th month back
    ("2023-03", False),  # the 25th
    ("2025-04", False),  # after the risk
])
def test_period_used_for_payment_is_the_24_months_up_to_the_risk_month(period, used):
    index = index_of(posted("N-1", 1, period=period))
    _, _, record = R.receive(index, request("D1", ["N-1/1"]), (0, 0), risk_months=[(2025, 3)])
    assert rejected(record) == ([("N-1/1", codes.PERIOD_USED_FOR_PAYMENT)] if used else [])


def test_any_applied_assignment_counts_and_penalties_are_never_used_for_payment():
    assert R.period_used_for_payment("2020-01", [(2025, 3), (2020, 5)])
    assert not R.period_used_for_payment("2020-01", [])
    assert R.risk_month(datetime(2025, 3, 15).date()) == (2025, 3)
    index = index_of(posted("N-1", 1, period="2025-03", knp="017"))
    _, _, record = R.receive(index, request("D1", ["N-1/1"]), (0, 0), risk_months=[(2025, 3)])
    assert record.outcome.reversed == ("N-1/1",)


def test_the_first_failing_check_is_the_reason():
    index = index_of(posted("N-1", 1, period="2025-03"))
    index, _, _ = R.receive(index, request("D1", ["N-1/1"]), (0, 0))
    _, _, second = R.receive(index, request("D2", ["N-1/1"]), (0, 1), risk_months=[(2025, 3)])
    assert rejected(second) == [("N-1/1", codes.ALREADY_REVERSED)]


def test_partial_reversal_of_an_orders_lines_and_the_rest_later():
    index = index_of(*(posted("N-1", n, amount=f"{1000 * n}.50", period=f"2026-0{n}") for n in (1, 2, 3)))
    index, _, record = R.receive(index, request("D1", ["N-1/3", "N-1/1"]), (0, 0))
    out = outputs(record, index)
    refund = out["refunds.reversals"][0]
    assert refund["key"] == "N-1"
    assert [line["line_no"] for line in refund["value"]["lines"]] == [1, 3]
    assert refund["value"]["amount"] == "4001.00"
    assert [r["value"]["reverses"] for r in out["posted.reversals"]] == ["N-1/1", "N-1/3"]
    assert [r["value"]["entry_id"] for r in out["posted.reversals"]] == ["N-1/1/reversal", "N-1/3/reversal"]
    assert index.entries["N-1/2"].reversed_by is None
    index, _, later = R.receive(index, request("D2", ["N-1/2"]), (0, 1))
    assert later.outcome.reversed == ("N-1/2",)
    assert outputs(later, index)["refunds.reversals"][0]["value"]["amount"] == "2000.50"


def test_a_penalty_is_refunded_with_knp_094():
    index = index_of(posted("N-7", 2, knp="017", amount="125.00"))
    index, _, record = R.receive(index, request("D1", ["N-7/2"], nid="N-7"), (3, 9))
    out = outputs(record, index)
    assert out["refunds.reversals"][0]["value"]["refund_knp"] == "094"
    assert out["refunds.reversals"][0]["value"]["knp"] == "017"
    reversal = out["posted.reversals"][0]["value"]
    assert (reversal["kind"], reversal["knp"], reversal["amount"]) == ("penalty", "017", "125.00")


def test_a_repeat_emits_nothing_and_a_redelivery_the_same_records():
    index = index_of(posted("N-1", 1))
    index, what, record = R.receive(index, request("D1", ["N-1/1"]), (0, 5))
    first = outputs(record, index)
    again, what, same = R.receive(index, request("D1", ["N-1/1"]), (0, 5))
    assert what == R.REDELIVERED and again is index and outputs(same, again) == first
    repeated, what, _ = R.receive(index, request("D1", ["N-1/1"]), (0, 6))
    assert what == R.REPEAT and repeated is index


def test_two_overlapping_decisions_share_an_entry_once():
    index = index_of(*(posted("N-1", n) for n in (1, 2, 3)))
    index, _, d1 = R.receive(index, request("D1", ["N-1/1", "N-1/2"]), (0, 0))
    index, _, d2 = R.receive(index, request("D2", ["N-1/2", "N-1/3"]), (0, 1))
    assert d1.outcome.reversed == ("N-1/1", "N-1/2")
    assert d2.outcome.reversed == ("N-1/3",) and rejected(d2) == [("N-1/2", codes.ALREADY_REVERSED)]
    result = outputs(d2, index)["fund.decision-results"][0]["value"]
    assert (result["status"], result["reason"]) == ("applied", None)
    assert result["rejected_entries"] == [{"entry_id": "N-1/2", "reason": "ALREADY_REVERSED"}]
    assert index.entries["N-1/2"].reversed_by == "D1"


def test_an_entry_named_twice_counts_once():
    index = index_of(posted("N-1", 1))
    index, _, record = R.receive(index, request("D1", ["N-1/1", "N-1/1"]), (0, 0))
    assert record.outcome == R.RefundOutcome(("N-1/1",), ())
    assert outputs(record, index)["refunds.reversals"][0]["value"]["amount"] == "4250.00"


def test_refund_lines_carry_the_posted_spelling_and_the_decisions_payer_and_times():
    index = index_of(posted("N-1", 1))
    req = request("D1", ["N-1/1"], received_at="2026-12-01T06:00:00Z")
    index, _, record = R.receive(index, req, (0, 0))
    out = outputs(record, index)
    refund = out["refunds.reversals"][0]["value"]
    assert refund["lines"][0]["surname"] == "Фёдоров" and refund["lines"][0]["reason"] is None
    assert refund["payer"] == PAYER and refund["refund_id"] == "D1/refund" and refund["scope"] == "reversal"
    # Echoed business time: the same instant, offset normalized to Almaty.
    assert refund["received_at"] == out["posted.reversals"][0]["value"]["received_at"] == "2026-12-01T11:00:00+05:00"


# ---- the hold ------------------------------------------------------------------------------------------

def test_a_decision_before_its_entry_waits_and_is_decided_when_the_entry_arrives():
    index = index_of(posted("N-1", 1))
    now = almaty("2026-12-01T11:00:05+05:00")
    index, what, record = R.receive(index, request("D1", ["N-1/1", "N-1/2"]), (0, 0), hold_margin=HOLD, now=now)
    assert what == R.WAITING and index.entries["N-1/1"].reversed_by is None
    assert R.receive(index, request("D1", ["N-1/1", "N-1/2"]), (0, 0), hold_margin=HOLD, now=now)[1] == R.WAITING
    assert R.receive(index, request("D1", ["N-1/1"]), (0, 1), hold_margin=HOLD, now=now)[1] == R.REPEAT
    assert R.release(index, now=now) == (index, [])
    index = R.apply_posted(index, posted("N-1", 2))
    index, decided = R.release(index, now=now)
    assert [r.outcome.reversed for r in decided] == [("N-1/1", "N-1/2")]
    assert R.owed(index) == decided
    index = R.settle(index, ["D1"])
    assert R.owed(index) == [] and not index.decisions["D1"].emit_pending


def test_a_waiting_decision_is_decided_at_the_cutoff_with_what_exists():
    index = index_of(posted("N-1", 1))
    index, _, record = R.receive(index, request("D1", ["N-1/1", "N-1/2"]), (0, 0), hold_margin=HOLD,
                                 now=almaty("2026-12-01T11:00:05+05:00"))
    cutoff = datetime.fromtimestamp(record.cutoff, ALMATY)
    assert R.release(index, now=cutoff - timedelta(seconds=1))[1] == []
    index, decided = R.release(index, now=cutoff)
    assert decided[0].outcome == R.RefundOutcome(("N-1/1",), (("N-1/2", codes.ENTRY_NOT_FOUND),))


def test_a_decision_after_its_cutoff_or_with_the_hold_off_is_decided_at_once():
    index = index_of(posted("N-1", 1))
    late = almaty("2026-12-03T00:00:00+05:00")
    assert R.receive(index, request("D1", ["N-1/2"]), (0, 0), hold_margin=HOLD, now=late)[1] == R.DECIDED
    assert R.receive(index, request("D1", ["N-1/2"]), (0, 0))[1] == R.DECIDED
    with pytest.raises(ValueError):
        R.receive(index, request("D1", ["N-1/2"]), (0, 0), hold_margin=HOLD)


def test_ids_that_can_never_be_posted_here_do_not_wait():
    index = index_of(posted("N-1", 1))
    now = almaty("2026-12-01T11:00:05+05:00")
    what = R.receive(index, request("D1", ["N-1/1", "N-2/1", "N-1/x"]), (0, 0), hold_margin=HOLD, now=now)[1]
    assert what == R.DECIDED


def test_a_decision_decided_while_another_waits_takes_the_shared_entry():
    index = index_of(posted("N-1", 1))
    now = almaty("2026-12-01T11:00:05+05:00")
    index, _, _ = R.receive(index, request("D1", ["N-1/1", "N-1/2"]), (0, 0), hold_margin=HOLD, now=now)
    index, what, d2 = R.receive(index, request("D2", ["N-1/1"]), (0, 1), hold_margin=HOLD, now=now)
    assert what == R.DECIDED and d2.outcome.reversed == ("N-1/1",)
    index = R.apply_posted(index, posted("N-1", 2))
    index, (d1,) = R.release(index, now=now)
    assert d1.outcome == R.RefundOutcome(("N-1/2",), (("N-1/1", codes.ALREADY_REVERSED),))


# ---- the index -------------------------------------------------------------------------------------------

def test_the_contributions_index_counts_an_entry_once_whatever_form_it_comes_in():
    record = posted("N-1", 1)
    PostedContribution.model_validate(record)
    index = R.apply_posted(None, record)
    assert R.apply_posted(index, json.dumps(record)) is index
    assert R.apply_posted(index, json.dumps({**record, "posted_at": "2026-11-27T00:00:00.000+05:00"}).encode()) is index
    assert list(index.entries) == ["N-1/1"]
    entry = index.entries["N-1/1"]
    assert (entry.amount, entry.total_amount, entry.notification_id, entry.line_no) == (425000, 5900000, "N-1", 1)


@pytest.mark.parametrize("change", [{"status": "reversed"}, {"amount": "0.00"}, {"amount": "x"},
                                    {"entry_id": "N-1"}, {"period": "2026-13"}, {"iin": A["iin"]}])
def test_the_index_refuses_what_posting_never_emits(change):
    index = index_of(posted("N-1", 1))
    with pytest.raises(ValueError):
        R.apply_posted(index, {**posted("N-1", 2), **change})


def test_the_index_survives_its_store():
    index = index_of(posted("N-1", 1), posted("N-1", 2, knp="017"), posted("N-3", 1, period="2025-01"))
    index, _, _ = R.receive(index, request("D1", ["N-1/1"]), (1, 7))
    index, _, _ = R.receive(index, request("D2", ["N-1/3"], received_at="2026-12-01T11:00:00Z"), (1, 8),
                            hold_margin=HOLD, now=almaty("2026-12-01T11:00:00Z"))
    restored = R.PostedIndex.from_json(index.to_json())
    assert restored == index
    assert restored.to_json() == index.to_json()
    assert [r.request.refund_decision_id for r in restored.waiting()] == ["D2"]
    with pytest.raises(ValueError):
        R.PostedIndex.from_json(b'{"v": 99}')


# ---- properties --------------------------------------------------------------------------------------------

NIDS = ("N-1", "N-2")
LINES = (1, 2, 3)
AMOUNTS = {f"{nid}/{n}": 100 * (i + 1) + n for i, nid in enumerate(NIDS) for n in LINES}
START = almaty("2026-12-01T11:00:00+05:00")

foreign_ids = st.sampled_from([*AMOUNTS, "N-1/9", "N-3/1", "N-1"])
post = st.tuples(st.just("post"), st.sampled_from(sorted(AMOUNTS)))
# A decision names lines of its own notification (4: a line never posted), now and then a foreign id.
decide_op = st.tuples(st.just("decide"), st.integers(0, 5), st.sampled_from(NIDS),
                      st.lists(st.one_of(st.sampled_from((*LINES, 4)), foreign_ids), min_size=1, max_size=4),
                      st.integers(0, 3))
operations = st.lists(st.one_of(post, post, decide_op, st.tuples(st.just("tick"), st.integers(0, 3 * 24 * 60))),
                      max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(post, max_size=6), operations, st.booleans(),
       st.lists(st.tuples(st.integers(2024, 2028), st.integers(1, 12)), max_size=2))
def test_every_entry_is_reversed_at_most_once_and_amounts_are_conserved(posted_before, ops, hold, risk_months):
    stored = R.PostedIndex(C["iin"]).to_json()  # lives in a store between events
    now = START
    emitted: dict[str, list[dict]] = {}  # refund_decision_id -> outputs of its first emission
    reversed_amount: dict[str, int] = {}
    offset = 0

    def emit(record, index):
        out = outputs(record, index)
        rid = record.request.refund_decision_id
        if rid in emitted:  # a redelivery: the same records again
            assert out == emitted[rid]
            return
        emitted[rid] = out
        for item in out["posted.reversals"]:
            value = item["value"]
            reversed_amount[value["reverses"]] = reversed_amount.get(value["reverses"], 0) + int(
                value["amount"].replace(".", ""))
        for item in out["refunds.reversals"]:
            refund = item["value"]
            assert refund["amount"] == format_tiyn(sum(int(ln["amount"].replace(".", "")) for ln in refund["lines"]))

    for op in [*posted_before, *ops]:
        index = R.PostedIndex.from_json(stored)
        if op[0] == "post":
            entry_id = op[1]
            nid, line_no = entry_id.rsplit("/", 1)
            amount = AMOUNTS[entry_id]
            index = R.apply_posted(index, posted(nid, int(line_no), amount=format_tiyn(amount), period="2025-02"))
            index, decided = R.release(index, now=now, risk_months=risk_months)
        elif op[0] == "decide":
            _, n, nid, named, again = op
            ids = [f"{nid}/{x}" if isinstance(x, int) else x for x in named]
            # `again`: 0 a new record, 1 a redelivery of the last one, else a repeat from a new offset
            src = (0, offset if again == 1 and offset else offset + 1)
            offset = src[1]
            req = request(f"D{n}", ids, nid=nid, received_at=now.isoformat())
            index, what, record = R.receive(index, req, src, risk_months=risk_months,
                                            hold_margin=HOLD if hold else None, now=now)
            decided = [record] if what in (R.DECIDED, R.REDELIVERED) else []
        else:
            now += timedelta(minutes=op[1])
            index, decided = R.release(index, now=now, risk_months=risk_months)
        for record in decided:
            emit(record, index)
        index = R.settle(index, [r.request.refund_decision_id for r in R.owed(index)])
        stored = index.to_json()

    index = R.PostedIndex.from_json(stored)
    index, decided = R.release(index, now=now + timedelta(days=30), risk_months=risk_months)
    for record in decided:
        emit(record, index)
    assert not index.waiting()
    for entry_id, entry in index.entries.items():
        left = entry.amount - reversed_amount.get(entry_id, 0)
        assert left in (0, entry.amount)
        assert (left == 0) == (entry.reversed_by is not None)
    assert set(reversed_amount) <= set(index.entries)
