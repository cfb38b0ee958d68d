"""Confidentiality of logs: no IIN, name or birth date at info; at debug, one line per order with
IINs masked; the JSON format is one object per line."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from models.notifications import CreditNotification
from rules.posting import decide_order
from streams.logs import JsonFormatter
from streams.processor import PostingProcessor, describe_decision
from streams.records import InputRecord
from streams.settings import Settings
from tables.decisions import DecisionStore

from .cases import example_notification, registry_persons
from .test_agent import MemorySink, NoChangelog
from .test_posting import PERSONS

PERSONAL = [p[f] for p in registry_persons() for f in ("iin", "surname", "name", "birth_date")] + [
    ln[f] for ln in example_notification()["lines"] for f in ("iin", "birth_date")]


def test_debug_line_masks_iins():
    order = CreditNotification.model_validate_json(json.dumps(example_notification()))
    line = describe_decision(order, decide_order(order, PERSONS))
    assert "92******3451" in line and "921102423451" not in line
    assert "partially_refunded: 2 posted, 2 refunded" in line


def test_json_formatter_writes_one_object_per_line():
    record = logging.LogRecord("esep.posting", logging.INFO, __file__, 1, "decided %d orders", (3,), None)
    out = JsonFormatter().format(record)
    assert "\n" not in out
    assert json.loads(out)["msg"] == "decided 3 orders"


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_processing_logs_no_personal_data(tmp_path, caplog, level):
    from tables.registry import RegistryStore, judge_record

    registry = RegistryStore(tmp_path / "registry")
    puts = {}
    for person in registry_persons():
        iin, value, _ = judge_record(person["iin"].encode(), json.dumps(person).encode())
        puts[iin] = value
    registry.apply(puts, {0: len(puts)})
    settings = Settings.from_env({})
    processor = PostingProcessor(settings.topics, registry, DecisionStore(tmp_path / "d"), NoChangelog(), MemorySink())
    raw = json.dumps(example_notification(), ensure_ascii=False).encode()
    caplog.set_level(level)
    asyncio.run(processor.process([InputRecord(settings.topics.credit_notifications, 0, 0,
                                               b"HSBK-20261126-000421", raw)]))
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= level)
    if level == logging.DEBUG:
        assert "HSBK-20261126-000421" in text, "the debug line per order is there"
    for value in PERSONAL:
        assert value not in text, f"personal data in the logs at level {logging.getLevelName(level)}"
    registry.close()
