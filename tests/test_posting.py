"""The posting rules end to end, without Kafka: every reason code, the contract's example, and
conservation of amounts as a property."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings

from models.notifications import CreditNotification
from models.outputs import OrderResult, PostedContribution, Refund
from models.registry import RegistryPerson
from rules import entries
from rules.posting import POSTED, Person, decide_order, summarize
from tables.decisions import DecisionRecord
from tables.registry import decode_person, encode_person

from .cases import EXAMPLES, A, cases, example_notification
from .strategies import orders

STAMP = "2026-11-26T10:15:00.412+05:00"
STAMPED = ("posted_at", "created_at", "decided_at")


def persons_view(records: list[dict]) -> dict[str, Person]:
    return {r["iin"]: decode_person(encode_person(RegistryPerson.model_validate_json(json.dumps(r))))
            for r in records}


def parse(order: dict) -> CreditNotification:
    return CreditNotification.model_validate_json(json.dumps(order, ensure_ascii=False))


def render(order: CreditNotification, decision):
    out = entries.render(order, decision, summarize(decision), STAMP)
    return [e for _, e in out.posted], out.refund, out.result


def unstamped(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in STAMPED}


def test_contract_example_gives_exactly_the_expected_outputs(calendar):
    expected = json.loads((EXAMPLES / "expected-outputs.json").read_text(encoding="utf-8"))
    registry = json.loads((EXAMPLES / "registry-persons.json").read_text(encoding="utf-8"))
    order = parse(example_notification())
    posted, refund, result = render(order, decide_order(order, persons_view(registry), calendar))
    assert [unstamped(e) for e in posted] == [unstamped(e) for e in expected["posted.contributions"]]
    assert unstamped(refund) == unstamped(expected["refunds.to-payers"][0])
    assert unstamped(result) == unstamped(expected["orders.results"][0])


@pytest.mark.parametrize("order,order_reason,line_reasons",
                         [pytest.param(*c, id=c[0]["notification_id"]) for c in cases()])
def test_every_reason_code(order, order_reason, line_reasons, persons, calendar):
    parsed = parse(order)
    decision = decide_order(parsed, persons, calendar)
    assert decision.order_reason == order_reason
    got = {d.line_no: (None if d.outcome == POSTED else d.reason) for d in decision.lines}
    assert got == line_reasons
    posted, refund, result = render(parsed, decision)
    for entry in posted:
        PostedContribution.model_validate(entry)
    if refund is not None:
        Refund.model_validate(refund)
    OrderResult.model_validate(result)
    total = Decimal(order["total_amount"])
    assert Decimal(result["amount_posted"]) + Decimal(result["amount_refunded"]) == total
    assert result["lines_posted"] + result["lines_refunded"] == result["lines_total"] == len(order["lines"])
    assert len(posted) == result["lines_posted"]
    refunded_lines = refund["lines"] if refund else []
    assert len(refunded_lines) == result["lines_refunded"]
    assert {e["entry_id"] for e in posted}.isdisjoint({f"{order['notification_id']}/{ln['line_no']}"
                                                       for ln in refunded_lines} if order_reason is None else set())


def test_whole_order_refund_lists_every_line_and_returns_the_money_received(persons, calendar):
    order = next(c for c in cases() if c[0]["notification_id"] == "T-NEG-10")[0]
    parsed = parse(order)
    _, refund, result = render(parsed, decide_order(parsed, persons, calendar))
    assert refund["scope"] == "order" and refund["reason"] == "TOTAL_MISMATCH"
    assert refund["amount"] == "4150.00"
    assert [ln["amount"] for ln in refund["lines"]] == ["4250.00", "-100.00"]
    assert all(ln["reason"] == "TOTAL_MISMATCH" for ln in refund["lines"])
    assert result["status"] == "refunded"


def test_misrouted_knp_has_no_refund_knp_and_penalties_refund_with_094(persons, calendar):
    by_id = {c[0]["notification_id"]: c[0] for c in cases()}
    misrouted = parse(by_id["T-KNP-6"])
    assert render(misrouted, decide_order(misrouted, persons, calendar))[1]["refund_knp"] is None
    penalty = parse(by_id["T-PENALTY-4"])
    posted, refund, result = render(penalty, decide_order(penalty, persons, calendar))
    assert refund["refund_knp"] == "094" and refund["scope"] == "lines" and refund["reason"] is None
    assert posted[0]["kind"] == "penalty" and posted[0]["amount"] == "1234.56"
    assert result["status"] == "partially_refunded"


def test_empty_order_is_refunded_whole(persons, calendar):
    empty = parse(next(c for c in cases() if c[0]["notification_id"] == "T-EMPTY-12")[0])
    posted, refund, result = render(empty, decide_order(empty, persons, calendar))
    assert posted == [] and refund["lines"] == [] and refund["amount"] == "500.00"
    assert result["status"] == "refunded" and result["amount_refunded"] == "500.00"


def test_posted_entries_carry_the_registry_spelling_and_normalized_amounts(persons, calendar):
    order = parse(next(c for c in cases() if c[0]["notification_id"] == "T-LINES-2")[0])
    posted, _, _ = render(order, decide_order(order, persons, calendar))
    line13 = next(e for e in posted if e["entry_id"].endswith("/13"))
    assert (line13["surname"], line13["name"], line13["patronymic"]) == (A["surname"], A["name"], A["patronymic"])
    assert line13["amount"] == "4250.50"
    line15 = next(e for e in posted if e["entry_id"].endswith("/15"))
    assert line15["surname"] == "Фёдоров"


@settings(max_examples=300, deadline=None)
@given(orders())
def test_every_line_ends_once_and_amounts_are_conserved(persons, calendar, order):
    parsed = parse(order)
    decision = decide_order(parsed, persons, calendar)
    posted, refund, result = render(parsed, decision)
    line_nos = [ln["line_no"] for ln in order["lines"]]
    posted_nos = [int(e["entry_id"].rsplit("/", 1)[1]) for e in posted]
    refunded_nos = [ln["line_no"] for ln in (refund or {"lines": []})["lines"]]
    assert sorted(posted_nos + refunded_nos) == sorted(line_nos)
    total = Decimal(order["total_amount"])
    assert Decimal(result["amount_posted"]) + Decimal(result["amount_refunded"]) == total
    if refund is not None:
        assert Decimal(refund["amount"]) == Decimal(result["amount_refunded"])
    assert sum(Decimal(e["amount"]) for e in posted) == Decimal(result["amount_posted"])
    # The decision survives its durable encoding unchanged (a redelivery re-emits from it).
    record = DecisionRecord("P-1", 2, 17, decision)
    assert DecisionRecord.decode("P-1", record.encode()) == record


@pytest.mark.asyncio
async def test_a_revocation_during_a_restore_leaves_the_partition_to_be_read_again(make_processor):
    """A partition revoked while its changelog was being read is not marked restored: another worker
    may write its decisions before this one gets it back, so the next restore reads it again."""
    processor = make_processor()
    reads: list[list[int]] = []

    class RevokedMidway:
        async def catch_up(self, partitions):
            reads.append(list(partitions))
            if len(reads) == 1:
                processor.forget_partitions([1])
            return 0

    processor.changelog = RevokedMidway()
    await processor.restore({0, 1})
    assert processor.restored == {0}
    await processor.restore({0, 1})
    assert processor.restored == {0, 1}
    assert reads == [[0, 1], [1]]
