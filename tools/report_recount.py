"""`esep report recount YYYY-MM` and `esep report YYYY-MM`: a month recounted from the output topics
alone (`rules.report.recount`, written apart from the streams), checked against every published
version at its `covers`; and the analyst's files of a published version (tools/report_files.py).

Reads with plain consumers of no group (nothing committed, no partition taken from a worker), and
read_committed: reports.monthly is written in transactions."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from rules.calendar import BusinessCalendar, default_calendar
from rules.report import flatten, recount, render
from rules.report.figures import Figures
from streams.cli import CommandError
from streams.report_assembly import HELD_PARTS, held
from streams.report_partitions import report_inputs
from streams.settings import Settings, Topics

Covers = Mapping[str, Mapping[str, int]]


def sources(topics: Topics) -> dict[str, str]:
    """source name -> output topic, as the streams read them (the payers come from the entries)."""
    return {i.source: i.topic for i in report_inputs(topics) if i.stream != "payers"}


def _consumer(bootstrap: str) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", isolation_level="read_committed",
                         max_partition_fetch_bytes=4 * 1024 * 1024, client_id="esep-report-recount")


def read_topic(bootstrap: str, topic: str, upto: Mapping[str, int] | None = None,
               timeout_s: float = 600.0) -> list[dict]:
    """Every record of `topic` (JSON) in partition order, each partition up to `upto[partition]`
    (exclusive; a partition not named: none of it) or, without `upto`, to its end as it is now."""
    consumer = _consumer(bootstrap)
    try:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        if not parts:
            raise CommandError(f"topic {topic} not found on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        limits = {tp: (ends[tp] if upto is None else min(ends[tp], int(upto.get(str(tp.partition), 0))))
                  for tp in tps}
        got: dict[int, list[dict]] = {p: [] for p in parts}
        left = {tp for tp in tps if consumer.position(tp) < limits[tp]}
        deadline = time.monotonic() + timeout_s
        while left:
            if time.monotonic() > deadline:
                raise CommandError(f"{topic}: {len(left)} partitions not read in {timeout_s:.0f} s")
            for tp, records in consumer.poll(timeout_ms=500, max_records=20000).items():
                for rec in records:
                    if rec.offset < limits[tp] and rec.value is not None:
                        got[tp.partition].append(json.loads(rec.value))
            left = {tp for tp in left if consumer.position(tp) < limits[tp]}
        return [r for p in parts for r in got[p]]
    finally:
        consumer.close()


def read_versions(bootstrap: str, topics: Topics, month: str | None = None) -> list[dict]:
    """The published versions (of `month`), in the order they were published."""
    return [r for r in read_topic(bootstrap, topics.reports_monthly) if month is None or r["month"] == month]


def recount_at(bootstrap: str, topics: Topics, month: str, covers: Covers | None = None,
               calendar: BusinessCalendar | None = None) -> Figures:
    """The month's figures (the held sections) from the output topics, up to `covers` or their ends."""
    records = {}
    for source, topic in sources(topics).items():
        if covers is not None and topic not in covers:
            records[source] = []
            continue
        records[source] = read_topic(bootstrap, topic, None if covers is None else covers[topic])
    return held(recount(month, records, calendar or default_calendar()))


def compare(month: str, bootstrap: str, topics: Topics, versions: list[dict]) -> list[str]:
    """One line per published version: equal to the recount at its covers, or the leaves that differ."""
    lines = []
    for v in versions:
        name = f"{month} {v['version']} (revision {v['revision']}, generated {v['generated_at']})"
        published = held(flatten(v))
        counted = recount_at(bootstrap, topics, month, v["covers"])
        if published == counted:
            lines.append(f"{name}: equals the recount at its covers")
            continue
        diff = sorted(k for k in published.keys() | counted.keys() if published.get(k) != counted.get(k))
        lines.append(f"{name}: DIFFERS from the recount at its covers in {len(diff)} figures: " + ", ".join(
            f"{k} published {published.get(k, 0)} recounted {counted.get(k, 0)}" for k in diff[:20]))
    return lines


def run_recount(settings: Settings, bootstrap: str, month: str, out: str | None = None) -> int:
    t = settings.topics
    figures = recount_at(bootstrap, t, month)
    body = {"month": month, "recounted_to": "the end of each output topic", "parts": list(HELD_PARTS),
            **render(figures, HELD_PARTS)}
    text = json.dumps(body, ensure_ascii=False, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")
        print(f"recount of {month} written to {out}")
    else:
        print(text)
    versions = read_versions(bootstrap, t, month)
    if not versions:
        print(f"no version of {month} is published yet", file=sys.stderr)
        return 0
    lines = compare(month, bootstrap, t, versions)
    for line in lines:
        print(line, file=sys.stderr)
    return 1 if any("DIFFERS" in line for line in lines) else 0


def run_files(settings: Settings, bootstrap: str, month: str, out_dir: str, version: str | None = None,
              revision: int | None = None) -> int:
    from .report_files import write_files

    versions = read_versions(bootstrap, settings.topics, month)
    if version is not None:
        versions = [v for v in versions if v["version"] == version]
    if revision is not None:
        versions = [v for v in versions if v["revision"] == revision]
    if not versions:
        raise CommandError(f"no such version of {month} is published on {settings.topics.reports_monthly}; "
                           f"`esep report recount {month}` counts it from the output topics now")
    report = versions[-1]
    for path in write_files(report, Path(out_dir)):
        print(path)
    return 0
