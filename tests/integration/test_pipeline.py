"""End to end on the real broker: every reason code, a repeated notification, malformed records,
a record keyed by something other than its notification_id."""
from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from models.outputs import DeadLetter, OrderResult, PostedContribution, Refund

from ..cases import cases, example_notification, malformed, registry_persons
from .harness import Outputs, Stack

pytestmark = pytest.mark.integration


def test_every_reason_code_repeat_and_malformed_records(broker, tmp_path):
    stack = Stack(broker, tmp_path)
    outputs = Outputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        expected = {order["notification_id"]: (reason, lines) for order, reason, lines in cases()}
        all_posted = next(o for o, _, _ in cases() if o["notification_id"] == "T-ALLPOSTED-5")
        for order, _, _ in cases():
            if order["notification_id"] != all_posted["notification_id"]:
                stack.send_notification(order)
        stack.send_notification(all_posted, key=b"not-the-notification-id")  # must be re-keyed, not lost
        stack.send_notification(example_notification())  # a repeat: changes nothing
        bad = malformed()
        for key, value, _, _ in bad:
            stack.send(stack.topics.credit_notifications, key, value)
        stack.flush()

        outputs.wait_for(lambda o: o.result_ids() >= set(expected) and len(o.dead_letters) >= len(bad),
                         what="a result per notification and every dead letter", workers=[worker])
        outputs.drain(quiet_s=2.0)  # anything extra (a second result, a posting of the repeat) would arrive by now

        results = {}
        for r in outputs.results:
            OrderResult.model_validate(r)
            assert r["notification_id"] not in results, "one result per notification"
            results[r["notification_id"]] = r
        assert set(results) == set(expected)

        posted = {}
        for e in outputs.posted:
            PostedContribution.model_validate(e)
            assert e["entry_id"] not in posted
            posted[e["entry_id"]] = e
        refunds = {}
        for r in outputs.refunds:
            Refund.model_validate(r)
            assert r["notification_id"] not in refunds, "at most one refund order per notification"
            refunds[r["notification_id"]] = r

        for nid, (order_reason, line_reasons) in expected.items():
            r = results[nid]
            assert Decimal(r["amount_posted"]) + Decimal(r["amount_refunded"]) == Decimal(
                next(o for o, _, _ in cases() if o["notification_id"] == nid)["total_amount"])
            got = {int(eid.rsplit("/", 1)[1]): None for eid in posted if eid.startswith(nid + "/")}
            refund = refunds.get(nid)
            order = next(o for o, _, _ in cases() if o["notification_id"] == nid)
            if order_reason is not None:  # whole order: every line as received, even duplicate numbers
                assert not got
                assert [ln["line_no"] for ln in refund["lines"]] == [ln["line_no"] for ln in order["lines"]]
                assert {ln["reason"] for ln in refund["lines"]} <= {order_reason}
                assert refund["amount"] == results[nid]["amount_refunded"]
                continue
            if refund:
                assert refund["reason"] is None
                for line in refund["lines"]:
                    assert line["line_no"] not in got, f"{nid}/{line['line_no']} both posted and refunded"
                    got[line["line_no"]] = line["reason"]
            assert got == line_reasons, nid
            r = results[nid]
            order_total = Decimal(order["total_amount"])
            assert Decimal(r["amount_posted"]) + Decimal(r["amount_refunded"]) == order_total

        dead = {d["key"]: d for d in outputs.dead_letters}
        for key, value, kind, fragment in bad:
            letter = dead[base64.b64encode(key).decode()]
            DeadLetter.model_validate(letter)
            assert letter["error_kind"] == kind
            assert fragment.lower() in letter["error"].lower(), letter["error"]
            assert base64.b64decode(letter["value"]) == value
            assert letter["source_topic"] == stack.topics.credit_notifications
        # Re-keyed onto the partition that owns its id, then decided once like any other.
        rekeyed = [k for k, v in outputs.records[stack.topics.credit_notifications]
                   if k == b"T-ALLPOSTED-5"]
        assert len(rekeyed) == 1
        assert worker.metric('esep_notifications_total{outcome="duplicate"}') == 1
    finally:
        outputs.close()
        stack.close()
