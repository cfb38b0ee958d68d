"""What the assembler knows, Kafka-free: the latest partial of every (month, stream, partition),
every partition's progress, and each month's publications (docs/report-pipeline.md, sections 2-3).

The runner (report_assembler.py) feeds it reports.partials and reports.monthly and asks it, at each
tick of the report clock, which versions are due; it publishes them after the barrier."""
from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from rules.calendar import BusinessCalendar
from rules.report import (
    Due, MonthState, build_report, due, flatten, lateness, merge, merge_covers, observe, published,
)
from rules.report.figures import Figures

# The sections the reports hold today: social payments join when the recipients ledger feeds its
# month-end figures (recipients_active_at_month_end, overpaid_outstanding_at_month_end).
HELD_PARTS = ("contributions",)
PAYERS = "contributions/payers"


def held(figures: Mapping[str, int], parts: Iterable[str] = HELD_PARTS) -> Figures:
    parts = tuple(parts)
    return {k: v for k, v in figures.items() if k.split("/", 1)[0] in parts}


def _covers_at_least(new: Mapping[str, Mapping[str, int]], old: Mapping[str, Mapping[str, int]]) -> bool:
    return all(new.get(t, {}).get(p, 0) >= o for t, parts in old.items() for p, o in parts.items())


@dataclass(frozen=True)
class LastVersion:
    month: str
    version: str
    revision: int
    generated_at: _dt.datetime


class Assembly:
    def __init__(self, calendar: BusinessCalendar, grace_business_days: int, parts: Iterable[str] = HELD_PARTS,
                 internal_topics: Iterable[str] = ()):
        self.calendar = calendar
        self.grace = grace_business_days
        self.parts = tuple(parts)
        self.internal = frozenset(internal_topics)
        self.partials: dict[str, dict] = {}  # "<month>/<stream>/<p>" -> ReportPartial
        self.progress: dict[str, dict] = {}  # "<stream>/<p>" -> its covers record
        self.states: dict[str, MonthState] = {}
        self.last: LastVersion | None = None

    # ---- input -------------------------------------------------------------------------------------

    def receive(self, key: str, value: dict | None) -> bool:
        """A reports.partials record; False when ignored: behind what is held (a revoked owner's
        late write) or a tombstone."""
        if value is None:
            return False
        held_map = self.progress if value.get("month") is None else self.partials
        old = held_map.get(key)
        if old is not None and not _covers_at_least(value["covers"], old["covers"]):
            return False
        held_map[key] = value
        return True

    def restore_version(self, report: dict) -> None:
        """A reports.monthly record, read in topic order: the last of a month is its state."""
        month = report["month"]
        self.states[month] = MonthState(month, report["version"], report["revision"],
                                        MappingProxyType(held(flatten(report), self.parts)), None)
        at = _dt.datetime.fromisoformat(report["generated_at"])
        if self.last is None or at >= self.last.generated_at:
            self.last = LastVersion(month, report["version"], report["revision"], at)

    # ---- what is known -----------------------------------------------------------------------------

    def months(self) -> list[str]:
        counted = {v["month"] for v in self.partials.values() if held(v["figures"], self.parts)}
        return sorted(counted | set(self.states))

    def figures(self, month: str) -> Figures:
        return held(merge(v["figures"] for v in self.partials.values() if v["month"] == month), self.parts)

    def positions(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the next offset its stream partition has counted up to."""
        out: dict[tuple[str, int], int] = {}
        for v in self.progress.values():
            for topic, parts in v["covers"].items():
                for p, offset in parts.items():
                    out[(topic, int(p))] = max(out.get((topic, int(p)), 0), offset)
        return out

    def covered(self, targets: Mapping[tuple[str, int], int]) -> bool:
        positions = self.positions()
        return all(positions.get(tp, 0) >= end for tp, end in targets.items())

    def covers(self) -> dict[str, dict[str, int]]:
        """The report's covers: every output topic partition's counted position (internal topics out)."""
        return merge_covers({t: dict(parts) for t, parts in v["covers"].items() if t not in self.internal}
                            for v in self.progress.values())

    def without_payers(self, months: Iterable[str]) -> dict[str, Figures]:
        """The months' figures but the payers: what the barrier compares before publishing (the
        payers count moves while forwards are counted; any other change means new entries)."""
        return {m: {k: v for k, v in self.figures(m).items() if k != PAYERS} for m in months}

    def partial_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.partials.values():
            out[v["month"]] = out.get(v["month"], 0) + 1
        return out

    # ---- the schedule ------------------------------------------------------------------------------

    def state(self, month: str) -> MonthState:
        return self.states.get(month) or MonthState(month)

    def tick(self, now: _dt.datetime) -> list[tuple[str, Due]]:
        """Note the merged figures at `now`; the versions due, month by month."""
        out = []
        for month in self.months():
            state = self.states[month] = observe(self.state(month), self.figures(month), now)
            d = due(state, now, self.calendar, self.grace)
            if d is not None:
                out.append((month, d))
        return out

    def open_months(self) -> list[str]:
        return [m for m in self.months()
                if self.state(m).last_version in (None, "preliminary") or self.state(m).changed_since is not None]

    def lateness(self, now: _dt.datetime) -> float:
        worst = _dt.timedelta(0)
        for month in self.months():
            worst = max(worst, lateness(self.state(month), now, self.calendar, self.grace))
        return worst.total_seconds()

    def build(self, month: str, d: Due, now: _dt.datetime) -> dict | None:
        """The record to publish for `d`, or None when a revision found nothing changed after all."""
        state = self.state(month)
        figures = self.figures(month)
        if d.version == "revised" and figures == dict(state.last_figures):
            self.states[month] = replace(state, changed_since=None)
            return None
        previous = dict(state.last_figures) if state.last_version is not None else None
        return build_report(month, d.version, d.revision, now, figures, self.covers(), previous, self.parts)

    def published(self, report: dict) -> None:
        month = report["month"]
        self.states[month] = published(self.state(month), report["version"], report["revision"],
                                       held(flatten(report), self.parts))
        self.last = LastVersion(month, report["version"], report["revision"],
                                _dt.datetime.fromisoformat(report["generated_at"]))
