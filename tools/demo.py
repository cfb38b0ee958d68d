"""`esep demo`: a simulated business day end to end on a real broker, reconciled against what was
sent. Starts what it needs (the local broker unless ESEP_BROKER is set, one worker) and stops it.

Part 1, the bank's day of contribution notifications; then Part 2 on the same worker: the Fund's
day of payment decisions and transfers (tools/demo_fund.py), refund decisions reversing posted
entries (tools/demo_reversals.py), and the month's report, published by moving the report's clock
past the month's end and checked against the recount of the topics (tools/demo_report.py)."""
from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from kafka import KafkaProducer

from rules.calendar import ALMATY, default_calendar
from rules.codes import REGISTRY_LAG_REASONS
from rules.money import format_tiyn, parse_amount
from rules.report.months import month_of_instant

from streams.report_clock import write_clock
from streams.settings import Settings

from . import demo_report, demo_reversals
from .chart import write_run_chart
from .demo_fund import Part2Outputs, replay, send_day
from .demo_fund import rows as fund_rows
from .demo_fund import summarize as fund_summary
from .fund_synthetic import DAY_PHASES, DECISIONS, day_script, month_back
from .reading import TopicReader
from .runner import broker_for, metric_value, percentile
from .scope import RunScope
from .synthetic import Scenario, iin_for, make_orders, make_registry, split_late, summary_of


class Observed:
    """What the worker emitted, first emissions only (a re-emission is equal by contract)."""

    def __init__(self, bootstrap: str, settings: Settings):
        t = settings.topics
        self.t = t
        self.reader = TopicReader(bootstrap, [t.order_results, t.refunds, t.posted_contributions, t.dead_letters])
        self.results: dict[str, tuple[dict, int]] = {}
        self.refunds: dict[str, dict] = {}
        self.posted: dict[str, dict] = {}
        self.dead_letters: list[dict] = []
        self.posted_ts: list[float] = []
        self.refunded_ts: list[float] = []

    def poll(self, budget_s: float = 0.3) -> None:
        for m in self.reader.poll_for(budget_s):
            value = json.loads(m.value)
            if m.topic == self.t.order_results:
                self.results.setdefault(value["notification_id"], (value, m.timestamp))
            elif m.topic == self.t.refunds:
                if value["notification_id"] not in self.refunds:
                    self.refunded_ts.extend([m.timestamp / 1000.0] * len(value["lines"]))
                self.refunds.setdefault(value["notification_id"], value)
            elif m.topic == self.t.posted_contributions:
                if value["entry_id"] not in self.posted:
                    self.posted_ts.append(m.timestamp / 1000.0)
                self.posted.setdefault(value["entry_id"], value)
            else:
                self.dead_letters.append(value)

    def summary(self) -> dict:
        statuses = Counter(r["status"] for r, _ in self.results.values())
        by_reason: Counter = Counter()
        amount_by_reason: Counter = Counter()
        for refund in self.refunds.values():
            for line in refund["lines"]:
                by_reason[line["reason"]] += 1
                if refund["scope"] == "lines":
                    amount_by_reason[line["reason"]] += parse_amount(line["amount"])
            if refund["scope"] == "order":
                amount_by_reason[refund["reason"]] += parse_amount(refund["amount"])
        posted_kind = Counter(e["kind"] for e in self.posted.values())
        return {
            "orders": len(self.results),
            "orders_by_status": dict(statuses),
            "lines_posted": sum(r["lines_posted"] for r, _ in self.results.values()),
            "lines_refunded": sum(r["lines_refunded"] for r, _ in self.results.values()),
            "lines_refunded_by_reason": dict(by_reason),
            "lines_posted_by_kind": dict(posted_kind),
            "amount_posted_tiyn": sum(parse_amount(r["amount_posted"]) for r, _ in self.results.values()),
            "amount_refunded_tiyn": sum(parse_amount(r["amount_refunded"]) for r, _ in self.results.values()),
            "amount_refunded_by_reason_tiyn": dict(amount_by_reason),
            "dead_letters": len(self.dead_letters),
            "dead_letters_by_kind": dict(Counter(d["error_kind"] for d in self.dead_letters)),
        }


def reconcile(expected: dict, observed: dict) -> list[tuple[str, str, str, bool]]:
    rows = []

    def row(label, exp, obs, fmt=str):
        rows.append((label, fmt(exp), fmt(obs), exp == obs))

    row("orders decided", expected["orders"], observed["orders"])
    for status in ("posted", "partially_refunded", "refunded"):
        row(f"  orders {status}", expected["orders_by_status"].get(status, 0),
            observed["orders_by_status"].get(status, 0))
    row("lines posted", expected["lines_posted"], observed["lines_posted"])
    for kind, label in (("contribution", "contributions"), ("penalty", "penalties")):
        row(f"  {label}", expected["lines_posted_by_kind"].get(kind, 0), observed["lines_posted_by_kind"].get(kind, 0))
    row("lines refunded", expected["lines_refunded"], observed["lines_refunded"])
    for reason in sorted(set(expected["lines_refunded_by_reason"]) | set(observed["lines_refunded_by_reason"])):
        row(f"  {reason}", expected["lines_refunded_by_reason"].get(reason, 0),
            observed["lines_refunded_by_reason"].get(reason, 0))
    money = lambda t: format_tiyn(t) + " ₸"  # noqa: E731
    row("amount posted", expected["amount_posted_tiyn"], observed["amount_posted_tiyn"], money)
    row("amount refunded", expected["amount_refunded_tiyn"], observed["amount_refunded_tiyn"], money)
    row("amount received (posted + refunded)", expected["amount_total_tiyn"],
        observed["amount_posted_tiyn"] + observed["amount_refunded_tiyn"], money)
    row("dead letters", expected["dead_letters"], observed["dead_letters"])
    for kind in sorted(set(expected["dead_letters_by_kind"]) | set(observed["dead_letters_by_kind"])):
        row(f"  {kind}", expected["dead_letters_by_kind"].get(kind, 0), observed["dead_letters_by_kind"].get(kind, 0))
    return rows


def hold_margin_minutes(received: datetime, cutoff_in_s: float) -> float:
    """The hold margin that puts the cut-off `cutoff_in_s` after `received`: the demo compresses a
    business day into a minute, so its held lines reach their cut-off while it watches."""
    deadline = default_calendar().receipt_deadline(received)
    return max(0.0, (deadline - received).total_seconds() - cutoff_in_s) / 60.0


# The lag hold's cut-off is compressed to a few minutes, and everything that must beat it does:
# late registry persons, payments waiting for their assign, refund decisions waiting for entries.
START_ALLOWANCE_S = 40.0  # worker start, registry replica, person histories
PART2_ALLOWANCE_S = 40.0  # the Fund's day and the refund decisions
FEED_SLACK_S = 30.0  # after the bank's day was sent: the worker catching up, late persons replicated
PART2_RECIPIENTS = 120


def run_demo(settings: Settings, orders: int = 1500, seed: int = 430, out_dir: str = "demo-output",
             persons: int = 20_000, rate: float = 250.0, lines: int = 20, late_ratio: float = 0.01,
             recipients: int = PART2_RECIPIENTS) -> int:
    if recipients < 14:
        print("esep demo: --recipients must be at least 14 (the Fund's day gives ten of them a fate each)")
        return 2
    run_id = "demo-" + time.strftime("%Y%m%d-%H%M%S")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    say(f"esep demo {run_id}: {orders} notifications of {lines} lines against {persons:,} registry persons; "
        f"the Fund's day for {recipients + 11} recipients; refund decisions; the month's report")
    worker = scope = observed = part2 = None
    with broker_for(settings, log=say) as bootstrap:
        try:
            scope = RunScope(bootstrap, run_id, settings.data_dir / "runs" / run_id, partitions=settings.partitions,
                             log_dir=out)
            run_settings = scope.settings
            topics = run_settings.topics
            scope.create_topics()
            say(f"[1/8] topics created with suffix .{run_id} on {bootstrap}")

            t0 = time.monotonic()
            registry = make_registry(persons, seed)
            # Some persons reach the registry only after their first contributions (registry lag).
            early, late = split_late(registry, 0.02, seed)
            now = datetime.now(ALMATY)
            records = make_orders(early, orders, lines, seed, Scenario(), received_at=lambda: datetime.now(ALMATY),
                                  id_prefix=run_id.upper(), late=late, late_ratio=late_ratio)
            cast = Cast.choose(early, {p["iin"] for p in registry}, recipients, seed)
            day = day_script(cast.fund, now.date(), now.isoformat(timespec="seconds"), seed, run_id.upper() + "-F",
                             cast.stranger_iin)
            template = next(json.loads(r.value) for r in records if r.kind == "order")
            payers = [json.loads(r.value)["payer"] for r in records if r.kind == "order"][:2]
            refunds = demo_reversals.scenario(template, payers, cast.refund, day.risk_person, day.risk_month,
                                              {k: month_back(now.date(), k) for k in range(1, 4)}, run_id.upper(), now)
            # The refund decisions' notifications come first in the bank's day: posted long before them.
            records = refunds.orders + records
            expected = summary_of(records, late_arrives=True)
            fund_expected = replay(day, {p["iin"]: p for p in registry})
            registry = early
            producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
            for p in registry:
                producer.send(topics.registry_persons, key=p["iin"].encode(),
                              value=json.dumps(p, ensure_ascii=False).encode())
            producer.flush()
            say(f"[2/8] registry: {persons:,} synthetic persons published in {time.monotonic() - t0:.1f} s")

            prelude, feed = records[:len(refunds.orders)], records[len(refunds.orders):]
            feed_s = len(feed) / rate
            cutoff_in_s = START_ALLOWANCE_S + PART2_ALLOWANCE_S + feed_s + FEED_SLACK_S
            cutoff_at = time.time() + cutoff_in_s
            clock = scope.data_dir / "report-clock"
            clock.parent.mkdir(parents=True, exist_ok=True)
            write_clock(clock, datetime.now(ALMATY))
            hold = dict(ESEP_PENDING="business-day", ESEP_HOLD_CHECK_S="1",
                        ESEP_HOLD_CUTOFF_MIN=f"{hold_margin_minutes(datetime.now(ALMATY), cutoff_in_s):.4f}",
                        ESEP_REPORT_CLOCK_FILE=str(clock), ESEP_REPORT_PARTIAL_INTERVAL_S="0.5")
            say(f"      registry-lag hold on; its cut-off compressed to ~{cutoff_in_s:.0f} s from now "
                f"(ESEP_HOLD_CUTOFF_MIN={hold['ESEP_HOLD_CUTOFF_MIN']}); the report's clock is {clock}")
            worker = scope.worker("demo-worker", log_path=out / f"{run_id}-worker.log", **hold).start()
            ready_s = worker.wait_ready()
            say(f"[3/8] worker pid {worker.pid} ready in {ready_s:.1f} s (registry replica caught up), "
                f"log {worker.log_path}")

            # The business day starts once last night's registry load is recorded in the person
            # histories (one "created" change per person), as it would be in production.
            t1 = time.monotonic()
            while time.monotonic() - t1 < 120:
                if metric_value(worker.metrics_text(), "esep_registry_changes_total") >= len(registry):
                    break
                time.sleep(0.5)
            say(f"      registry load recorded in the person histories in {time.monotonic() - t1:.1f} s "
                f"({len(registry):,} 'created' changes on the changes topic)")
            observed = Observed(bootstrap, run_settings)
            part2 = Part2Outputs(bootstrap, topics)
            sent_at: dict[str, float] = {}

            # Part 2 comes first, on a worker that is otherwise idle: what waits in it for a decision,
            # an entry or the cut-off must be in place before the cut-off, whatever the machine's pace.
            n_dec = sum(1 for r in day.records if r.input == DECISIONS)
            say(f"[4/8] the Fund's day: {n_dec} payment decisions and {len(day.records) - n_dec} transfers in "
                f"{len(DAY_PHASES)} phases, each sent once the worker decided the one before")
            fund_s = send_day(producer, topics, worker, day, say, lambda: (observed.poll(0.05), part2.poll(0.05)))
            say(f"      the Fund's day decided in {fund_s:.1f} s; {fund_expected.held} payments waited for a "
                f"decision (those still waiting are decided at the cut-off)")

            say(f"[5/8] refunds: the day's first notifications, {', '.join(r.expect['notification_id'] for r in prelude)}"
                f", then {len(refunds.decisions)} refund decisions on {topics.refund_decisions} naming their entries")
            for rec in prelude:
                producer.send(topics.credit_notifications, key=rec.key, value=rec.value)
                sent_at[rec.expect["notification_id"]] = time.time()
            producer.flush()
            named = {f"{r.expect['notification_id']}/{n}" for r in prelude for n in r.expect["amounts"]}
            wait_for(lambda: named <= observed.posted.keys(), observed.poll, 120, "the entries to refund posted")
            for value, _ in refunds.decisions:
                producer.send(topics.refund_decisions, key=value["iin"].encode(),
                              value=json.dumps(value, ensure_ascii=False).encode())
            producer.flush()

            def refund_results() -> int:
                return sum(1 for r in part2.fund.results.values() if r["decision"] == "refund")

            at_once = refunds.expected["decisions"] - 1
            wait_for(lambda: refund_results() >= at_once, part2.poll, 120, "the refund decisions decided at once")
            say(f"      {refund_results()} decided at once, {refunds.expected['decisions'] - refund_results()} waiting "
                f"for an entry that is never posted (decided at the cut-off), 1 repeat ignored")
            if time.time() > cutoff_at:
                say(f"      WARNING: the machine is slow: the cut-off came {time.time() - cutoff_at:.0f} s before the "
                    f"Fund's day and the refund decisions were through; what waited may differ from the plan")

            say(f"[6/8] the bank's day at ~{rate:.0f} notifications/s "
                f"({expected['repeats']} repeats, {expected['dead_letters']} malformed among them)")
            started = time.time()
            last_report = 0.0
            for i, rec in enumerate(feed):
                producer.send(topics.credit_notifications, key=rec.key, value=rec.value)
                if rec.kind == "order":
                    sent_at.setdefault(rec.expect["notification_id"], time.time())
                target = started + (i + 1) / rate
                while time.time() < target:
                    producer.flush()
                    observed.poll(0.02)
                    time.sleep(max(0.0, min(0.02, target - time.time())))
                if time.time() - last_report >= 1.0:
                    last_report = time.time()
                    progress(say, i + 1, len(feed), observed)
            producer.flush()
            sent_done = time.time()
            for p in late:
                producer.send(topics.registry_persons, key=p["iin"].encode(),
                              value=json.dumps(p, ensure_ascii=False).encode())
            producer.flush()
            say(f"      {len(late)} late persons reached the registry after their notifications "
                f"({expected['late_lines']} lines wait for them)")

            say(f"[7/8] waiting for the cut-off (~{max(0.0, cutoff_at - time.time()):.0f} s): held lines, payments "
                f"and refund decisions are decided then")
            deadline = cutoff_at + 120
            want_postings = len(fund_expected.ledger.postings)
            while time.time() < deadline and (
                    len(observed.results) < expected["orders"] or len(observed.dead_letters) < expected["dead_letters"]
                    or refund_results() < refunds.expected["decisions"] or len(part2.fund.postings) < want_postings):
                observed.poll(0.5)
                part2.poll(0.2)
                if time.time() - last_report >= 2.0:
                    last_report = time.time()
                    progress(say, len(feed), len(feed), observed,
                             f"  social payments {len(part2.fund.postings):,}/{want_postings:,}  "
                             f"refund decisions {refund_results()}/{refunds.expected['decisions']}")
            time.sleep(1.0)
            observed.poll(1.0)
            part2.poll(1.0)
            progress(say, len(feed), len(feed), observed)
            if time.time() > deadline:
                say("      WARNING: not everything was decided 120 s after the cut-off")
            metrics = worker.metrics_text()
            families = metric_families_present(metrics)
            duplicates = int(metric_value(metrics, "esep_notifications_total", 'outcome="duplicate"'))
            summary = observed.summary()
            # Orders with a held line wait for the registry or the cut-off by design: latency is
            # measured on the orders decided at once.
            late_orders = {r.expect["notification_id"] for r in records if r.kind == "order" and r.expect["late_lines"]}
            held_orders = late_orders | {
                r.expect["notification_id"] for r in records if r.kind == "order" and r.expect["order_reason"] is None
                and any(reason in REGISTRY_LAG_REASONS for reason in r.expect["lines"].values())}
            latencies = [(ts / 1000.0 - sent_at[nid]) * 1000 for nid, (_, ts) in observed.results.items()
                         if nid in sent_at and nid not in held_orders]
            at_once = [(r, ts / 1000.0) for nid, (r, ts) in observed.results.items() if nid not in held_orders]
            elapsed = (max(ts for _, ts in at_once) - started) if at_once else float("nan")
            rows = [("Part 1: the bank's day", "", "", None)] + reconcile(expected, summary)
            rows.append(("repeated notifications ignored", str(expected["repeats"]), str(duplicates),
                         duplicates == expected["repeats"]))
            late_iins = {p["iin"] for p in late}
            late_posted = sum(1 for e in observed.posted.values() if e["iin"] in late_iins)
            rows.append(("late-registry lines posted, not refunded", str(expected["late_lines"]), str(late_posted),
                         late_posted == expected["late_lines"]))
            held = int(metric_value(metrics, "esep_lines_total", 'outcome="held"'))
            # Informative: a late person's line is held only if its order came before the person.
            held_at_most = expected["late_lines"] + sum(
                n for reason, n in expected["lines_refunded_by_reason"].items() if reason in REGISTRY_LAG_REASONS)
            rows.append(("lines held for the registry (at most)", str(held_at_most), str(held),
                         held <= held_at_most))
            breaches = int(metric_value(metrics, "esep_deadline_breaches_total"))
            rows.append(("lines decided after their deadline", "0", str(breaches), breaches == 0))

            fund_exp = fund_summary(fund_expected.ledger, day.lag_ids)
            fund_obs = fund_summary(part2.fund, day.lag_ids)
            ledger_records = lambda labels: int(metric_value(metrics, "esep_ledger_records_total", labels))  # noqa: E731
            fund_held = ledger_records('input="payment-transfers",outcome="held"')
            fund_repeats = sum(ledger_records(f'input="{label}",outcome="duplicate"')
                               for label in ("payment-decisions", "payment-transfers"))
            rows.append(("Part 2: the Fund's day (expected: the pure rules replayed on what was sent)", "", "", None))
            rows += fund_rows(fund_exp, fund_obs, (fund_expected.held, fund_held),
                              (sum(fund_expected.repeats.values()), fund_repeats))
            rev_obs = demo_reversals.observed_summary(part2.fund.results, part2.reversals, part2.refund_orders,
                                                      observed.posted)
            rev_repeats = ledger_records('input="refund-decisions",outcome="duplicate"')
            rows.append(("Part 2: refunds of posted contributions (expected by construction)", "", "", None))
            rows += demo_reversals.rows(refunds.expected, rev_obs, rev_repeats)

            month = month_of_instant(json.loads(records[0].value)["received_at"])
            say(f"[8/8] the month's report: {month}")
            report = demo_report.publish(clock, bootstrap, topics, month, say)
            month_expected = demo_report.expected_month(records, month, len(refunds.expected["reversed"]),
                                                        refunds.expected["amount"])
            report_rows, report_kept = demo_report.check(report, month_expected, bootstrap, topics, month, out, say)
            rows.append(("the month's report (expected by construction from the day's records)", "", "", None))
            rows += report_rows

            ok = all(r[3] for r in rows if r[3] is not None)
            say("summary (expected vs observed on the output topics)")
            print_table(say, rows)
            lines_decided = summary["lines_posted"] + summary["lines_refunded"]
            feed_took = sent_done - started
            say(f"throughput: the feed sent {len(feed):,} records ({lines_decided:,} lines) in {feed_took:.1f} s "
                f"(~{lines_decided / feed_took:,.0f} lines/s); the last order decided at once came out "
                f"{elapsed - feed_took:+.1f} s after the feed ended (`esep bench` measures the maximum)")
            say(f"latency notification sent -> orders.results: p50 {percentile(latencies, 50):.0f} ms, "
                f"p99 {percentile(latencies, 99):.0f} ms over the {len(latencies):,} orders decided at once "
                f"({len(held_orders):,} orders waited for the registry or the cut-off)")
            report = {
                "run_id": run_id, "reconciled": ok, "expected": expected, "observed": summary,
                "duplicates_ignored": duplicates, "feed_lines_per_s": lines_decided / (sent_done - started),
                "latency_p50_ms": percentile(latencies, 50), "latency_p99_ms": percentile(latencies, 99),
                "topics_suffix": run_id,
            }
            report.update(late_lines_posted=late_posted, lines_held=held, deadline_breaches=breaches)
            report["fund"] = {"expected": fund_exp, "observed": fund_obs, "held": [fund_expected.held, fund_held],
                              "seconds": fund_s}
            report["reversals"] = {"expected": refunds.expected, "observed": rev_obs}
            report["report"] = report_kept
            report["rows"] = [list(r) for r in rows]
            chart = write_run_chart(out / "run.png", observed.posted_ts, observed.refunded_ts, started,
                                    f"esep demo {run_id}: {orders:,} notifications, {lines_decided:,} lines")
            say(f"metrics on the worker's /metrics: {len(families['present'])} of {len(families['all'])} esep families "
                f"present" + (f"; missing: {', '.join(families['missing'])}" if families["missing"] else ""))
            report["metric_families"] = families
            (out / "summary.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
            say(f"written {out / 'summary.json'} and the chart {chart}; the run's topics end in .{run_id}")
            say("RECONCILED: every line posted or refunded as expected, amounts conserved; the Fund's day, the "
                "reversals and the month's report as expected" if ok
                else "NOT RECONCILED: see the rows marked ✗ and the worker log")
            return 0 if ok else 1
        finally:
            for reader in (observed, part2):
                if reader is not None:
                    reader.reader.close()
            if scope is not None:
                scope.close()
            if worker is not None:
                say(f"stopped the worker (pid {worker.pid})")


@dataclass
class Cast:
    """Who plays the scripted parts: living persons of the early registry, chosen by the seed."""

    fund: list[dict]  # the Fund's recipients (day_script: 11 scripted, then plain)
    refund: list[dict]  # five persons whose contributions are refunded, none a recipient
    stranger_iin: str  # a valid IIN the registry lacks

    @classmethod
    def choose(cls, early: list[dict], registry_iins: set[str], recipients: int, seed: int) -> "Cast":
        living = [p for p in early if p.get("death_date") is None]
        picked = random.Random(f"esep.demo.cast:{seed}").sample(living, recipients + 16)
        serial = 0
        while True:
            serial += 1
            iin = iin_for(date(1979, 4, 18), "F", serial)
            if iin is not None and iin not in registry_iins:
                break
        return cls(picked[:recipients + 11], picked[recipients + 11:], iin)


def wait_for(predicate, poll, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        poll(0.3)


def progress(say, sent: int, total: int, observed: Observed, more: str = "") -> None:
    s = observed
    posted = sum(r["lines_posted"] for r, _ in s.results.values())
    refunded = sum(r["lines_refunded"] for r, _ in s.results.values())
    say(f"  sent {sent:>6,}/{total:,}  decided {len(s.results):>6,} orders  lines posted {posted:>7,}  "
        f"refunded {refunded:>5,}  dead letters {len(s.dead_letters):>3}" + more)


def metric_families_present(text: str) -> dict[str, list[str]]:
    """Which of the domain metric families the worker served (by their # TYPE lines)."""
    from monitoring.metrics import REGISTRY

    expected = sorted({m.name for m in REGISTRY.collect()})
    served = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    served |= {name.removesuffix("_info") for name in served}
    present = [n for n in expected if n in served or f"{n}_total" in served]
    return {"all": expected, "present": present, "missing": [n for n in expected if n not in present]}


def print_table(say, rows) -> None:
    """Rows (label, expected, observed, ok); ok None: a section's heading."""
    width = max(len(r[0]) for r in rows if r[3] is not None)
    value = max(20, *(len(x) for r in rows if r[3] is not None for x in r[1:3]))
    say(f"  {'':<{width}}  {'expected':>{value}}  {'observed':>{value}}")
    for label, exp, obs, ok in rows:
        if ok is None:
            say(f"  {label}")
            continue
        say(f"  {label:<{width}}  {exp:>{value}}  {obs:>{value}}  {'✓' if ok else '✗'}")


if __name__ == "__main__":
    sys.exit(run_demo(Settings.from_env()))
