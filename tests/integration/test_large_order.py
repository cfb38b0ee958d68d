"""An order within the input bounds but over Kafka's 1 MB default, and what esep writes for it (a
whole-order refund listing every line, larger than the order), goes through: the topics and the
worker's producer have room for it (streams/topics.py), so it cannot stall posting."""
from __future__ import annotations

import json

import pytest

from streams.topics import INPUT_RECORD_MAX_BYTES

from ..cases import A, _line, _order, example_notification, registry_persons
from .harness import Outputs, Stack

pytestmark = pytest.mark.integration

LONG = "Қ" * 60  # long names: 120 bytes each in UTF-8


def large_order() -> dict:
    lines = [_line(no, A, "1.00", surname=A["surname"] + LONG, name=A["name"] + LONG) for no in range(1, 3201)]
    # KNP not accepted: the whole order is refunded, its refund listing all 3,200 lines.
    return _order("T-LARGE-1", lines, knp="999")


def test_an_order_over_one_megabyte_is_refunded_whole_and_posting_goes_on(broker, tmp_path):
    order = large_order()
    size = len(json.dumps(order, ensure_ascii=False).encode())
    assert 1024 * 1024 < size < INPUT_RECORD_MAX_BYTES
    stack = Stack(broker, tmp_path)
    outputs = Outputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        stack.send_notification(order)
        after = example_notification()
        stack.send_notification(after)
        stack.flush()
        outputs.wait_for(lambda o: {"T-LARGE-1", after["notification_id"]} <= o.result_ids(),
                         what="the large order's result and the next order's", workers=[worker])
        refund = next(r for r in outputs.refunds if r["notification_id"] == "T-LARGE-1")
        assert refund["scope"] == "order" and refund["reason"] == "KNP_NOT_ACCEPTED"
        assert len(refund["lines"]) == 3200 and refund["amount"] == "3200.00"
        assert len(json.dumps(refund, ensure_ascii=False).encode()) > 1024 * 1024
        result = next(r for r in outputs.results if r["notification_id"] == "T-LARGE-1")
        assert result["status"] == "refunded" and result["lines_refunded"] == 3200
    finally:
        outputs.close()
        stack.close()
