"""Changes of a person's data in the registry (Rules, clause 6): which fields changed, from what to
what. Pure: the registry records in, the change out."""
from __future__ import annotations

# Personal data whose change is recorded; `updated_at` alone is bookkeeping, not a change.
TRACKED_FIELDS = (
    "surname", "name", "patronymic", "birth_date", "sex", "citizenship", "death_date", "document", "address",
)


def person_fields(record: dict | None) -> dict:
    """The tracked fields of a registry record; absent and null are the same (contract)."""
    if record is None:
        return {}
    return {f: record.get(f) for f in TRACKED_FIELDS}


def diff_person(before: dict | None, after: dict | None) -> tuple[str, list[dict]] | None:
    """(kind, [{field, before, after}]) from one registry state to the next, or None when nothing
    tracked changed. kind: created, updated or deleted."""
    if before is None and after is None:
        return None
    old, new = person_fields(before), person_fields(after)
    changes = [
        {"field": f, "before": old.get(f), "after": new.get(f)}
        for f in TRACKED_FIELDS
        if old.get(f) != new.get(f)
    ]
    if before is None:
        return "created", changes
    if after is None:
        return "deleted", changes
    return ("updated", changes) if changes else None
