"""One report version from the merged partials of every partition (contract `reports.monthly`)."""
from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping

from .figures import Figures, delta, render, render_delta
from .versions import Version

__all__ = ["PARTS", "build_report", "merge_covers"]

SCHEMA_VERSION = 1
# What a report can hold; social payments join when the recipients ledger feeds them.
PARTS = ("contributions", "social_payments")


def merge_covers(covers: Iterable[Mapping[str, Mapping[int, int]]]) -> dict[str, dict[str, int]]:
    """Union of the partials' read positions, as the report's `covers` (partition keys as strings).

    Two partials reading the same partition should not happen; if they do, the lower position is the
    one every figure is known to include.
    """
    out: dict[str, dict[str, int]] = {}
    for c in covers:
        for topic, parts in c.items():
            mine = out.setdefault(topic, {})
            for partition, next_offset in parts.items():
                key = str(partition)
                mine[key] = min(mine[key], next_offset) if key in mine else next_offset
    return {t: dict(sorted(p.items(), key=lambda kv: int(kv[0]))) for t, p in sorted(out.items())}


def build_report(month: str, version: Version, revision: int, generated_at: _dt.datetime,
                 figures: Mapping[str, int], covers: Mapping[str, Mapping[str, int]],
                 previous: Figures | None, parts: Iterable[str] = ("contributions",)) -> dict:
    """The record for `reports.monthly`; `previous` is the last published version's figures.

    The delta is null for a preliminary, else only the leaves that changed since `previous`.
    """
    parts = tuple(parts)
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown report parts: {sorted(unknown)}")
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be aware")
    if version == "preliminary":
        change = None
    else:
        if previous is None and version == "revised":
            raise ValueError("a revised version needs the previous version's figures")
        held = {k: v for k, v in figures.items() if k.split("/", 1)[0] in parts}
        before = {k: v for k, v in (previous or {}).items() if k.split("/", 1)[0] in parts}
        # A final with no preliminary before it (first counted late) changes from nothing.
        change = render_delta(delta(held, before))
    body = render(figures, parts)
    return {
        "schema_version": SCHEMA_VERSION,
        "month": month,
        "version": version,
        "revision": revision,
        "generated_at": generated_at.isoformat(timespec="seconds"),
        "parts": list(parts),
        "covers": {t: dict(p) for t, p in covers.items()},
        **body,
        "delta": change,
    }
