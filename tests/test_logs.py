"""Confidentiality of logs: no IIN, name or birth date at info; at debug, one line per order with
IINs masked; the JSON format is one object per line."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from models.notifications import CreditNotification
from rules.posting import decide_order, summarize
from streams.logs import JsonFormatter
from streams.observe import describe_decision
from streams.records import InputRecord

from .cases import example_notification, registry_persons

PERSONAL = [p[f] for p in registry_persons() for f in ("iin", "surname", "name", "birth_date")] + [
    ln[f] for ln in example_notification()["lines"] for f in ("iin", "birth_date")]


def test_debug_line_masks_iins(persons, calendar):
    order = CreditNotification.model_validate_json(json.dumps(example_notification()))
    decision = decide_order(order, persons, calendar)
    line = describe_decision(order, decision, summarize(decision))
    assert "92******3451" in line and "921102423451" not in line
    assert "partially_refunded: 2 posted, 2 refunded" in line


def test_json_formatter_writes_one_object_per_line():
    record = logging.LogRecord("esep.posting", logging.INFO, __file__, 1, "decided %d orders", (3,), None)
    out = JsonFormatter().format(record)
    assert "\n" not in out
    assert json.loads(out)["msg"] == "decided 3 orders"


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_processing_logs_no_personal_data(make_processor, caplog, level):
    processor = make_processor()
    raw = json.dumps(example_notification(), ensure_ascii=False).encode()
    caplog.set_level(level)
    summary = asyncio.run(processor.process([InputRecord(processor.topics.credit_notifications, 0, 0,
                                                         b"HSBK-20261126-000421", raw)]))
    assert summary.new == 1
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= level)
    if level == logging.DEBUG:
        assert "HSBK-20261126-000421" in text, "the debug line per order is there"
    for value in PERSONAL:
        assert value not in text, f"personal data in the logs at level {logging.getLevelName(level)}"
