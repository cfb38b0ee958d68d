"""Which input offsets this worker finished (their batch's outputs acknowledged), per (topic,
partition), as sorted disjoint ranges: exact whatever order faust hands the records in. Faust may
hand a partition's records out of order after a rebalance (a range it dropped comes back only when a
later assignment seeks to the committed offset), so "below the highest finished offset" would be
wrong. A partition that keeps its records in order holds one range."""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

MAX_RANGES = 1024  # per partition; the oldest go first (forgetting only ever keeps more outputs)


class FinishedOffsets:
    def __init__(self, max_ranges: int = MAX_RANGES):
        self.max_ranges = max_ranges
        self.ranges: dict[tuple[str, int], list[list[int]]] = {}  # [start, end) sorted, disjoint, not adjacent

    def add(self, topic: str, partition: int, offsets: Iterable[int]) -> None:
        runs: list[list[int]] = []
        for o in sorted(set(offsets)):
            if runs and runs[-1][1] == o:
                runs[-1][1] = o + 1
            else:
                runs.append([o, o + 1])
        ranges = self.ranges.setdefault((topic, partition), [])
        for start, end in runs:
            self._insert(ranges, start, end)
        if len(ranges) > self.max_ranges:
            del ranges[: len(ranges) - self.max_ranges]

    @staticmethod
    def _insert(ranges: list[list[int]], start: int, end: int) -> None:
        i = bisect_right(ranges, [start, end])
        # Merge with the neighbours it touches or overlaps.
        if i > 0 and ranges[i - 1][1] >= start:
            i -= 1
            start = min(start, ranges[i][0])
            end = max(end, ranges[i][1])
            del ranges[i]
        while i < len(ranges) and ranges[i][0] <= end:
            end = max(end, ranges[i][1])
            del ranges[i]
        ranges.insert(i, [start, end])

    def __contains__(self, position: tuple[str, int, int]) -> bool:
        topic, partition, offset = position
        ranges = self.ranges.get((topic, partition))
        if not ranges:
            return False
        i = bisect_right(ranges, [offset, float("inf")]) - 1
        return i >= 0 and ranges[i][0] <= offset < ranges[i][1]


__all__ = ["FinishedOffsets", "MAX_RANGES"]
