"""The demo's month (contract Part 2, issue 12): the worker's report clock (ESEP_REPORT_CLOCK_FILE)
moved past the end of the demo's month, so the assembler publishes its preliminary; the version's
headline figures against the day's records (by construction), its files, and the recount of the
output topics (tools/report_recount.py, written apart from the streams)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from rules.calendar import ALMATY
from rules.money import format_tiyn
from rules.report import flatten
from rules.report.months import month_of_instant
from streams.report_assembly import held
from streams.report_clock import write_clock
from streams.settings import Topics

from .report_files import write_files
from .report_recount import compare, read_versions, recount_at
from .synthetic import SyntheticRecord, summary_of


def month_end(month: str) -> datetime:
    """24:00 Asia/Almaty of the month's last day."""
    y, m = int(month[:4]), int(month[5:])
    return datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=ALMATY)


def expected_month(records: Iterable[SyntheticRecord], month: str, reversed_lines: int, reversed_tiyn: int) -> dict:
    """The report's contribution figures of `month` from what was sent (late persons arrive within the
    hold, so their lines post), never from the outputs."""
    mine = [r for r in records if r.kind == "order" and month_of_instant(json.loads(r.value)["received_at"]) == month]
    s = summary_of(mine, late_arrives=True)
    participants, payers = set(), set()
    for r in mine:
        e, order = r.expect, json.loads(r.value)
        if e["order_reason"] is not None:
            continue
        posted = [ln for ln in order["lines"] if e["lines"][ln["line_no"]] is None or ln["line_no"] in e["late_lines"]]
        if posted:
            payers.add(order["payer"]["bin_iin"])
        if e["knp"] == "012":
            participants.update(ln["iin"] for ln in posted)
    by_kind = s["amount_posted_by_kind_tiyn"]
    return {
        "contributions/lines_posted": s["lines_posted"],
        "contributions/amount_contributions": by_kind.get("contribution", 0),
        "contributions/amount_penalties": by_kind.get("penalty", 0),
        "contributions/participants": len(participants),
        "contributions/payers": len(payers),
        "contributions/reversals/lines": reversed_lines,
        "contributions/reversals/amount": reversed_tiyn,
        "contributions/refunds/orders": s["orders_by_status"].get("partially_refunded", 0)
        + s["orders_by_status"].get("refunded", 0),
        "contributions/refunds/lines": s["lines_refunded"],
        "contributions/refunds/amount": s["amount_refunded_tiyn"],
        "contributions/decided_after_deadline": 0,
    }


HEADLINE = (("contributions/lines_posted", "lines posted", False),
            ("contributions/amount_contributions", "contributions (KNP 012)", True),
            ("contributions/amount_penalties", "penalties (KNP 017)", True),
            ("contributions/participants", "participants", False),
            ("contributions/payers", "payers", False),
            ("contributions/reversals/lines", "reversals, lines", False),
            ("contributions/reversals/amount", "reversals, amount", True),
            ("contributions/refunds/orders", "refunds (part 1), orders", False),
            ("contributions/refunds/lines", "refunds (part 1), lines", False),
            ("contributions/refunds/amount", "refunds (part 1), amount", True),
            ("contributions/decided_after_deadline", "decided after the deadline", False))


def publish(clock: Path, bootstrap: str, topics: Topics, month: str, say: Callable[[str], None],
            timeout_s: float = 180.0) -> dict | None:
    """Move the report clock 5 s past the month's end and wait for the first version of `month`."""
    at = month_end(month) + timedelta(seconds=5)
    write_clock(clock, at)
    say(f"      report clock moved to {at.isoformat()} (ESEP_REPORT_CLOCK_FILE): {month} has ended")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        versions = read_versions(bootstrap, topics, month)
        if versions:
            return versions[0]
        time.sleep(0.5)
    return None


def check(report: dict | None, expected: dict, bootstrap: str, topics: Topics, month: str, out_dir: Path,
          say: Callable[[str], None]) -> tuple[list[tuple[str, str, str, bool]], dict]:
    """Rows for the summary table, and what the summary JSON keeps of the report."""
    if report is None:
        return [(f"report {month} published", "preliminary", "none", False)], {"month": month, "published": None}
    figures = flatten(report)
    money = lambda t: format_tiyn(t) + " ₸"  # noqa: E731
    say(f"      {month} {report['version']} published (generated_at {report['generated_at']}):")
    for key, label, is_money in HEADLINE:
        say(f"        {label:<30} {money(figures.get(key, 0)) if is_money else f'{figures.get(key, 0):,}'}")
    files = write_files(report, out_dir)
    say(f"      files: {', '.join(str(p) for p in files)}")
    at_covers = compare(month, bootstrap, topics, [report])[0]
    now = recount_at(bootstrap, topics, month)
    equal_now = held(figures) == now
    rows = [(f"report {month} published", "preliminary", report["version"], report["version"] == "preliminary")]
    for key, label, is_money in HEADLINE:
        fmt = money if is_money else str
        rows.append((f"  {label}", fmt(expected[key]), fmt(figures.get(key, 0)), expected[key] == figures.get(key, 0)))
    rows.append(("  equals the recount at its covers", "equal", "equal" if "equals the recount" in at_covers
                 else "differs", "equals the recount" in at_covers))
    differing = sorted(k for k in now.keys() | held(figures).keys() if now.get(k) != figures.get(k))
    rows.append(("  equals the recount of the topics now", "equal", "equal" if equal_now
                 else f"{len(differing)} differ", equal_now))
    if not equal_now:
        say(f"      differing from the recount now: {', '.join(differing[:10])}")
    if "equals the recount" not in at_covers:
        say(f"      {at_covers}")
    kept = {"month": month, "version": report["version"], "generated_at": report["generated_at"],
            "contributions": report["contributions"], "files": [str(p) for p in files],
            "equals_recount_at_covers": "equals the recount" in at_covers, "equals_recount_now": equal_now}
    return rows, kept
