"""The decision store: records round-trip, and the open-order index follows the records, also when
a restore brings several versions of one record in one batch."""
from __future__ import annotations

import json
from dataclasses import replace

import orjson

from models.notifications import CreditNotification
from rules.holds import HeldOrder
from rules.posting import decide_order, recheck_held
from tables.decisions import DecisionRecord, DecisionStore

from .cases import A, F_UNKNOWN, _line, _order

LATE = {"line_no": 2, "iin": F_UNKNOWN, "surname": "Жұмабаев", "name": "Дәурен", "patronymic": None,
        "birth_date": "1990-05-05", "amount": "5000.00"}


def held_record(persons, calendar) -> tuple[DecisionRecord, CreditNotification]:
    raw = json.dumps(_order("H-1", [_line(1, A), LATE]), ensure_ascii=False).encode()
    order = CreditNotification.model_validate_json(raw)
    decision = decide_order(order, persons, calendar, hold=True)
    return DecisionRecord("H-1", 2, 40, decision, raw, 1_800_000_000.0, 1_799_990_000.0), order


def settled(record: DecisionRecord, order, persons) -> DecisionRecord:
    final = recheck_held(order, record.decision, persons, final=True)
    return replace(record, decision=final, order_raw=None)


def test_a_held_record_is_indexed_and_leaves_the_index_when_settled(tmp_path, persons, calendar):
    store = DecisionStore(tmp_path / "d")
    record, order = held_record(persons, calendar)
    store.put([record], [record.encode()], {2: 1})
    assert store.open_orders() == [HeldOrder("H-1", 2, 1_800_000_000.0, 1_799_990_000.0, 1, False)]
    assert store.held_by_iin({F_UNKNOWN}) == {"H-1"} and store.held_by_iin({A["iin"]}) == set()
    done = settled(record, order, persons)
    store.put([done], [done.encode()], {2: 2})
    assert store.open_orders() == [] and store.held_by_iin({F_UNKNOWN}) == set()
    assert store.get_many(["H-1"])["H-1"].decision == done.decision
    assert store.next_offset(2) == 2
    store.close()


def test_a_restore_with_two_versions_of_one_record_in_a_batch_leaves_no_stale_index(tmp_path, persons, calendar):
    store = DecisionStore(tmp_path / "d")
    record, order = held_record(persons, calendar)
    done = settled(record, order, persons)
    store.apply([("H-1", record.encode()), ("H-1", done.encode())], {2: 2})
    assert store.open_orders() == [] and store.held_by_iin({F_UNKNOWN}) == set()
    store.close()


def test_outputs_pending_keep_a_finished_order_in_the_index(tmp_path, persons, calendar):
    store = DecisionStore(tmp_path / "d")
    record, order = held_record(persons, calendar)
    pending = replace(settled(record, order, persons), order_raw=record.order_raw, emit_pending=True)
    store.put([pending], [pending.encode()], {2: 1})
    assert [(o.notification_id, o.held_lines, o.emit_pending) for o in store.open_orders()] == [("H-1", 0, True)]
    store.close()


def test_records_of_format_1_are_still_read(persons, calendar):
    record, _ = held_record(persons, calendar)
    obj = orjson.loads(record.encode())
    obj["v"] = 1
    obj.pop("a")
    obj["l"] = [item[:3] + item[4:] for item in obj["l"]]  # no amount in a line of format 1
    old = DecisionRecord.decode("H-1", orjson.dumps(obj))
    assert [(d.line_no, d.outcome, d.reason, d.person) for d in old.decision.lines] == [
        (d.line_no, d.outcome, d.reason, d.person) for d in record.decision.lines]
    assert old.decision.total_tiyn is None and all(d.tiyn is None for d in old.decision.lines)
