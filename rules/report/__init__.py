"""The monthly report of clause 7: per-partition month aggregates, their merge, the version schedule
and the recount. Pure: no Kafka, no Faust, the clock a parameter."""
from __future__ import annotations

from .aggregate import SOURCES, MemorySeen, MonthPartial, Partial, SeenIds
from .assemble import PARTS, build_report, merge_covers
from .figures import Figures, delta, flatten, merge, render, render_delta
from .idset import IdSet
from .months import month_end, month_of_date, month_of_instant, month_start
from .recount import recount
from .versions import Due, MonthState, due, final_due, lateness, observe, pending, preliminary_due, published

__all__ = [
    "PARTS", "SOURCES", "Due", "Figures", "IdSet", "MemorySeen", "MonthPartial", "MonthState", "Partial",
    "SeenIds", "build_report", "delta", "due", "final_due", "flatten", "lateness", "merge", "merge_covers", "month_end",
    "month_of_date", "month_of_instant", "month_start", "observe", "pending", "preliminary_due", "published",
    "recount", "render", "render_delta",
]
