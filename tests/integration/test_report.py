"""The monthly report on the real broker (issue 12): generated days of a month, a clock injected
through ESEP_REPORT_CLOCK_FILE so that the month ends, its final falls due and a late entry is
revised; every published version equals the recount of the output topics at its covers, also
after SIGKILLs and with two workers."""
from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import datetime, timedelta

import pytest

from models.report import MonthlyReport
from rules.calendar import ALMATY
from rules.report import final_due, flatten
from rules.report.months import month_of_instant
from rules.report.versions import next_midnight
from streams.report_assembly import held
from streams.report_clock import write_clock
from rules.money import format_tiyn, parse_amount
from tools.report_recount import compare, read_topic, read_versions, recount_at, run_files
from tools.synthetic import Scenario, make_orders, make_registry

from .harness import Outputs, Stack

pytestmark = pytest.mark.integration

NOV = "2026-11"
DAYS = [datetime(2026, 11, 24, 10, 0, tzinfo=ALMATY), datetime(2026, 11, 27, 16, 30, tzinfo=ALMATY),
        datetime(2026, 11, 30, 23, 55, tzinfo=ALMATY), datetime(2026, 12, 1, 0, 5, tzinfo=ALMATY)]


def orders_over(days, registry, n, seed, prefix):
    it = itertools.cycle(days)
    return make_orders(registry, n, (1, 20), seed=seed, scenario=Scenario(), received_at=lambda: next(it),
                       id_prefix=prefix)


def expected_posted_lines(records, month: str) -> int:
    """Lines the synthetic data says post in `month` (by construction, not by the engine)."""
    n = 0
    for r in records:
        if r.kind != "order" or r.expect["order_reason"] is not None:
            continue
        if month_of_instant(json.loads(r.value)["received_at"]) == month:
            n += sum(1 for reason in r.expect["lines"].values() if reason is None)
    return n


def send(stack: Stack, records) -> None:
    for r in records:
        stack.send(stack.topics.credit_notifications, r.key, r.value)
    stack.flush()


def wait_until(predicate, what: str, workers, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(w.log_tail(60) for w in workers))


def wait_versions(stack: Stack, n: int, workers, timeout: float = 90, month: str = NOV) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = read_versions(stack.bootstrap, stack.topics, month)
        if len(got) >= n:
            return got
        time.sleep(0.5)
    tails = "\n".join(w.log_tail(60) for w in workers)
    raise AssertionError(f"{len(got)} versions of {month} published, waited for {n}\n{tails}")


def assert_equal_recounts(stack: Stack, versions: list[dict]) -> None:
    lines = compare(NOV, stack.bootstrap, stack.topics, versions)
    assert all("equals the recount" in line for line in lines), "\n".join(lines)


def wait_metric(worker, name: str, predicate, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = worker.metric(name)
        except OSError:
            value = None
        if value is not None and predicate(value):
            return value
        time.sleep(0.3)
    raise AssertionError(f"{name} is {value}\n{worker.log_tail(60)}")


def test_preliminary_final_and_revised_on_an_injected_clock_equal_the_recount(broker, tmp_path):
    clock = tmp_path / "clock"
    write_clock(clock, datetime(2026, 11, 28, 12, 0, tzinfo=ALMATY))
    stack = Stack(broker, tmp_path, ESEP_REPORT_CLOCK_FILE=str(clock), ESEP_REPORT_PARTIAL_INTERVAL_S="0.3",
                  ESEP_PENDING="off")
    outputs = Outputs(stack)
    try:
        registry = make_registry(400, seed=12)
        stack.send_registry(registry)
        records = orders_over(DAYS, registry, 240, 12, "REP")
        orders = {r.expect["notification_id"] for r in records if r.kind == "order"}
        worker = stack.worker("w1").start()
        worker.wait_ready()
        send(stack, records)
        outputs.wait_for(lambda o: o.result_ids() >= orders, what="every result", workers=[worker])

        # Two posted November entries reversed by refund decisions received in November (Part 2).
        chosen = [e for e in outputs.posted if e["knp"] == "012" and e["received_at"].startswith("2026-11-2")][:2]
        for i, e in enumerate(chosen):
            stack.send(stack.topics.refund_decisions, e["iin"].encode(), json.dumps({
                "refund_decision_id": f"RFD-{i}", "iin": e["iin"], "notification_id": e["entry_id"].split("/")[0],
                "entry_ids": [e["entry_id"]], "reason": "излишне уплаченные отчисления", "decided_on": "2026-11-29",
                "received_at": "2026-11-29T12:00:00+05:00",
                "payer": {"name": e["payer_name"], "bin_iin": e["payer_bin_iin"], "iban": "KZ86125KZT5004100100"},
            }, ensure_ascii=False).encode())
        stack.flush()
        wait_until(lambda: len(read_topic(stack.bootstrap, stack.topics.posted_reversals)) >= 2, "two reversals",
                   [worker])

        # Before the month ends nothing is due, whatever is counted.
        wait_metric(worker, 'esep_report_partials_held{month="2026-11"}', lambda v: v > 0)
        assert worker.metric("esep_report_months_open") == 2  # November and December
        assert read_versions(stack.bootstrap, stack.topics, NOV) == []

        # 24:00 when November ends: the preliminary.
        write_clock(clock, datetime(2026, 12, 1, 0, 0, 5, tzinfo=ALMATY))
        (prelim,) = wait_versions(stack, 1, [worker])
        MonthlyReport.model_validate(prelim)
        assert (prelim["version"], prelim["revision"], prelim["delta"]) == ("preliminary", 0, None)
        assert prelim["generated_at"] == "2026-12-01T00:00:05+05:00"
        assert prelim["contributions"]["lines_posted"] == expected_posted_lines(records, NOV)
        assert prelim["contributions"]["participants"] > 0 and prelim["contributions"]["payers"] > 0
        assert prelim["contributions"]["reversals"] == {
            "lines": 2, "amount": format_tiyn(sum(parse_amount(e["amount"]) for e in chosen))}
        assert read_versions(stack.bootstrap, stack.topics, "2026-12") == [], "December has not ended"

        # The end of the 5th business day after it: the final, nothing changed since.
        due = final_due(NOV, _calendar(), 5)
        write_clock(clock, due - timedelta(seconds=1))
        # The assembler ticked at a second before the due time (the age is on that clock): no final.
        age = (due - timedelta(seconds=1) - datetime.fromisoformat(prelim["generated_at"])).total_seconds()
        wait_metric(worker, "esep_report_last_version_age_seconds", lambda v: v == age)
        assert len(read_versions(stack.bootstrap, stack.topics, NOV)) == 1, "the final came early"
        write_clock(clock, due + timedelta(seconds=5))
        _, final = wait_versions(stack, 2, [worker])
        assert (final["version"], final["revision"], final["delta"]) == ("final", 0, {})
        assert flatten(final) == flatten(prelim)

        # A notification received in November, delivered after its final: one revised at 24:00.
        late = orders_over([datetime(2026, 11, 30, 18, 0, tzinfo=ALMATY)], registry, 3, 99, "LATE")
        send(stack, late)
        late_ids = {r.expect["notification_id"] for r in late if r.kind == "order"}
        outputs.wait_for(lambda o: o.result_ids() >= late_ids, what="the late results", workers=[worker])
        wait_metric(worker, "esep_report_months_open", lambda v: v == 2)  # November changed since its final
        write_clock(clock, next_midnight(due + timedelta(seconds=5)) + timedelta(seconds=3))
        _, _, revised = wait_versions(stack, 3, [worker])
        assert (revised["version"], revised["revision"]) == ("revised", 1)
        change = flatten(revised["delta"])
        assert change == {k: v for k, v in _diff(held(flatten(revised)), held(flatten(final))).items()}
        assert change["contributions/lines_posted"] == expected_posted_lines(late, NOV) > 0

        versions = read_versions(stack.bootstrap, stack.topics, NOV)
        assert [v["version"] for v in versions] == ["preliminary", "final", "revised"]
        assert_equal_recounts(stack, versions)
        assert held(flatten(versions[-1])) == recount_at(stack.bootstrap, stack.topics, NOV)
        assert worker.metric('esep_report_versions_published_total{version="final"}') == 1
        assert worker.metric("esep_report_version_late_seconds") == 0
        assert worker.metric("esep_report_assembler") == 1

        paths = []
        run_files(stack.settings, stack.bootstrap, NOV, str(tmp_path / "files"))
        paths = sorted(p.name for p in (tmp_path / "files").iterdir())
        assert paths == ["report-2026-11-revised-1.csv", "report-2026-11-revised-1.png",
                         "report-2026-11-revised-1.xlsx"]
    finally:
        outputs.close()
        stack.close()


def feed_paced(stack: Stack, records, per_second: float) -> threading.Thread:
    """The bank's pace, in the background, so that a kill lands mid-stream."""
    def feed():
        for i, r in enumerate(records):
            stack.send(stack.topics.credit_notifications, r.key, r.value)
            if i % 10 == 9:
                stack.flush()
                time.sleep(10 / per_second)
        stack.flush()

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def kill_mid_stream(stack: Stack, outputs: Outputs, records, victim, workers, at_results: int) -> None:
    """Feed `records`, SIGKILL `victim` once `at_results` of them have a result, start it again,
    and wait for every result."""
    orders = {r.expect["notification_id"] for r in records if r.kind == "order"}
    before = outputs.result_ids()
    feeder = feed_paced(stack, records, per_second=60)
    outputs.wait_for(lambda o: len(o.result_ids() - before) >= at_results, what=f"{at_results} results",
                     workers=workers)
    victim.kill()
    victim.start()
    feeder.join(120)
    outputs.wait_for(lambda o: o.result_ids() >= orders, timeout=180, what="every result", workers=workers)


def test_every_version_equals_the_recount_through_sigkills_with_two_workers(broker, tmp_path):
    # Posting commits its offsets rarely: a kill redelivers, and the output topics get entries,
    # refunds and results twice (identical but for their stamps). The report counts each once.
    clock = tmp_path / "clock"
    due = final_due(NOV, _calendar(), 5)
    write_clock(clock, due + timedelta(hours=1))  # November is final as soon as it is counted
    stack = Stack(broker, tmp_path, ESEP_REPORT_CLOCK_FILE=str(clock), ESEP_REPORT_PARTIAL_INTERVAL_S="0.3",
                  ESEP_PENDING="off", ESEP_COMMIT_INTERVAL_S="60", ESEP_BATCH_SIZE="10")
    outputs = Outputs(stack)
    try:
        registry = make_registry(600, seed=31)
        stack.send_registry(registry)
        w1 = stack.worker("w1").start()
        w2 = stack.worker("w2").start()
        w1.wait_ready()
        w2.wait_ready()
        time.sleep(3)  # both members joined every group: the partitions are split

        first = orders_over(DAYS, registry, 300, 31, "KA")
        kill_mid_stream(stack, outputs, first, w1, [w1, w2], at_results=80)
        (final,) = wait_versions(stack, 1, [w1, w2], timeout=120)
        assert (final["version"], final["revision"]) == ("final", 0), "first counted after its time: final at once"

        # Late November notifications, the other worker killed this time, then 24:00.
        late = orders_over([datetime(2026, 11, 30, 21, 0, tzinfo=ALMATY)], registry, 300, 32, "KB")
        kill_mid_stream(stack, outputs, late, w2, [w1, w2], at_results=80)
        outputs.drain(quiet_s=1.5)
        write_clock(clock, next_midnight(due + timedelta(hours=1)) + timedelta(seconds=3))
        _, revised = wait_versions(stack, 2, [w1, w2], timeout=120)
        assert (revised["version"], revised["revision"]) == ("revised", 1)

        emitted = [e["entry_id"] for e in outputs.posted]
        assert len(emitted) > len(set(emitted)), "the kills must have re-emitted posted entries"
        versions = read_versions(stack.bootstrap, stack.topics, NOV)
        assert len(versions) == 2, [v["version"] for v in versions]
        assert_equal_recounts(stack, versions)
        assert held(flatten(revised)) == recount_at(stack.bootstrap, stack.topics, NOV)
        assert revised["contributions"]["lines_posted"] == (expected_posted_lines(first, NOV)
                                                            + expected_posted_lines(late, NOV))
        assert sum(w.metric("esep_report_assembler") for w in (w1, w2)) == 1, "one assembler"
    finally:
        outputs.close()
        stack.close()


def _diff(new: dict, old: dict) -> dict:
    return {k: new.get(k, 0) - old.get(k, 0) for k in new.keys() | old.keys() if new.get(k, 0) != old.get(k, 0)}


def _calendar():
    from rules.calendar import default_calendar

    return default_calendar()
