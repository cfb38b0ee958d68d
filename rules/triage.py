"""Telling new orders, redeliveries and repeats apart (design notes, 2: Redelivery and repeats).

A notification's decision record names the input position (partition, offset) of its first record.
The same position again is a redelivery: its outputs may not have reached the broker, so they are
emitted again from the record. Another position is a repeat: nothing new is emitted. Pure."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

NEW = "new"
REDELIVERED = "redelivered"
REPEAT = "repeat"

Position = tuple[int, int]  # (partition, offset)


def triage(arrivals: Iterable[tuple[str, Position]], first_seen: Mapping[str, Position]) -> list[str]:
    """The kind of each (notification_id, position) of a batch, in order. `first_seen` maps the ids
    that have a decision record to the position of their first record. Within a batch the first
    record of an unknown id is new and any later one a repeat."""
    kinds = []
    new: set[str] = set()
    for nid, position in arrivals:
        first = first_seen.get(nid)
        if first is None:
            kinds.append(REPEAT if nid in new else NEW)
            new.add(nid)
        elif first == position:
            kinds.append(REDELIVERED)
        else:
            kinds.append(REPEAT)
    return kinds


__all__ = ["NEW", "REDELIVERED", "REPEAT", "triage"]
