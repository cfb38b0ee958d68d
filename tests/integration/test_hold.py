"""The registry-lag hold on the real broker: a late registry record posts a held line instead of a
false refund; at the cut-off a still-failing line is refunded once; a restart while lines are held
still decides each exactly once; deceased persons raise alerts for the Fund."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from models.outputs import DeceasedContribution
from rules.calendar import ALMATY, default_calendar

from ..cases import A, B, E, F_UNKNOWN, _line, _order, registry_persons
from .harness import Outputs, Stack

pytestmark = pytest.mark.integration

LATE = {"iin": F_UNKNOWN, "surname": "Жұмабаев", "name": "Дәурен", "patronymic": None, "birth_date": "1990-05-05",
        "sex": "M", "citizenship": "KZ", "death_date": None, "updated_at": "2026-11-27T09:00:00+05:00"}


def now_almaty() -> datetime:
    return datetime.now(ALMATY).replace(microsecond=0)


def held_order(nid: str, received: datetime) -> dict:
    late_line = {"line_no": 2, "iin": LATE["iin"], "surname": LATE["surname"], "name": LATE["name"],
                 "patronymic": None, "birth_date": LATE["birth_date"], "amount": "5000.00"}
    period = f"{received.year}-{received.month:02d}"
    return _order(nid, [_line(1, A), late_line, _line(3, B, iin="921102423451")], received_at=received.isoformat(),
                  period=period)


def test_late_registry_record_posts_the_held_line(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_PENDING="business-day", ESEP_HOLD_CHECK_S="1")
    outputs = Outputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        stack.send_notification(held_order("HOLD-1", now_almaty()))
        stack.flush()
        outputs.wait_for(lambda o: len(o.posted) >= 1, what="the matching line posted at once", workers=[worker])
        outputs.drain(quiet_s=3.0)
        assert [e["entry_id"] for e in outputs.posted] == ["HOLD-1/1"]
        assert outputs.results == [] and outputs.refunds == [], "no result while a line is held"
        assert worker.metric("esep_pending_lines") == 1

        stack.send_registry([LATE])  # the person reaches the registry after the notification
        outputs.wait_for(lambda o: o.results, what="the result once the held line is posted", workers=[worker])
        outputs.drain(quiet_s=1.5)
        assert sorted(e["entry_id"] for e in outputs.posted) == ["HOLD-1/1", "HOLD-1/2"]
        late_entry = next(e for e in outputs.posted if e["entry_id"] == "HOLD-1/2")
        assert late_entry["surname"] == "Жұмабаев"
        [refund] = outputs.refunds
        assert [(ln["line_no"], ln["reason"]) for ln in refund["lines"]] == [(3, "INVALID_IIN")]
        [result] = outputs.results
        assert (result["status"], result["lines_posted"], result["lines_refunded"]) == ("partially_refunded", 2, 1)
        assert worker.metric("esep_pending_lines") == 0
        assert worker.metric("esep_deadline_breaches_total") == 0
    finally:
        outputs.close()
        stack.close()


def test_cutoff_refunds_a_line_still_failing_once(broker, tmp_path):
    received = now_almaty()
    deadline = default_calendar().receipt_deadline(received)
    # The hold ends at the cut-off: placed a few seconds from now by choosing the margin.
    margin_min = (deadline - (datetime.now(ALMATY) + timedelta(seconds=8))).total_seconds() / 60
    stack = Stack(broker, tmp_path, ESEP_PENDING="business-day", ESEP_HOLD_CHECK_S="1",
                  ESEP_HOLD_CUTOFF_MIN=f"{margin_min:.4f}")
    outputs = Outputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        stack.send_notification(held_order("HOLD-2", received))
        stack.flush()
        outputs.wait_for(lambda o: o.results, timeout=60, what="the result at the cut-off", workers=[worker])
        outputs.drain(quiet_s=3.0)
        assert len(outputs.results) == 1 and len(outputs.refunds) == 1, "decided once"
        refund = outputs.refunds[0]
        assert [(ln["line_no"], ln["reason"]) for ln in refund["lines"]] == [(2, "IIN_NOT_FOUND"), (3, "INVALID_IIN")]
        assert outputs.results[0]["amount_refunded"] == refund["amount"]
        assert worker.metric("esep_deadline_breaches_total") == 0
    finally:
        outputs.close()
        stack.close()


def test_restart_while_held_decides_each_line_once(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_PENDING="business-day", ESEP_HOLD_CHECK_S="1")
    outputs = Outputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        for i in range(5):
            stack.send_notification(held_order(f"HOLD-R{i}", now_almaty()))
        stack.flush()
        outputs.wait_for(lambda o: len(o.posted) >= 5, what="first lines posted", workers=[worker])
        worker.kill()
        # The person arrives while the worker is down: the restore re-check must catch it.
        stack.send_registry([LATE])
        worker.start()
        outputs.wait_for(lambda o: len(o.result_ids()) >= 5, timeout=90, what="every result", workers=[worker])
        outputs.drain(quiet_s=2.0)
        for i in range(5):
            nid = f"HOLD-R{i}"
            assert {e["entry_id"] for e in outputs.posted if e["entry_id"].startswith(nid + "/")} == {
                f"{nid}/1", f"{nid}/2"}
            refunds = [r for r in outputs.refunds if r["notification_id"] == nid]
            assert {json.dumps(r["lines"]) for r in refunds} == {json.dumps(refunds[0]["lines"])}
            assert [ln["line_no"] for ln in refunds[0]["lines"]] == [3]
            results = [r for r in outputs.results if r["notification_id"] == nid]
            assert {r["status"] for r in results} == {"partially_refunded"}
    finally:
        outputs.close()
        stack.close()


def test_deceased_persons_raise_alerts_whether_posted_or_refunded(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_PENDING="off")
    outputs = Outputs(stack)
    alerts = Outputs(stack)
    alerts.consumer.subscribe([stack.topics.deceased_alerts])
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        stack.send_notification(_order("DEAD-1", [_line(1, E, period="2026-10"), _line(2, E, period="2026-07"),
                                                  _line(3, A)]))
        stack.flush()
        outputs.wait_for(lambda o: o.results, what="the result", workers=[worker])
        alerts.wait_for(lambda o: len(o.records[stack.topics.deceased_alerts]) >= 2, what="two alerts",
                        workers=[worker])
        for _, v in alerts.records[stack.topics.deceased_alerts]:
            DeceasedContribution.model_validate(v)
        got = sorted((v["line_no"], v["outcome"], v["reason"], v["death_date"])
                     for _, v in alerts.records[stack.topics.deceased_alerts])
        assert got == [(1, "refunded", "DECEASED", "2026-08-15"), (2, "posted", None, "2026-08-15")]
        [refund] = outputs.refunds
        assert [(ln["line_no"], ln["reason"]) for ln in refund["lines"]] == [(1, "DECEASED")]
    finally:
        alerts.close()
        outputs.close()
        stack.close()
