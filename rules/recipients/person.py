"""The recipient's personal data: the registry check of an assign, and the clause 12 record with its
document and citizenship histories, fed by the decisions' recipient block and by the registry."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from ..calendar import local_date
from ..names import normalize_name
from .state import Person

DECISION = "decision"
REGISTRY = "registry"
PERSONAL_FIELDS = ("surname", "name", "patronymic", "birth_date", "sex", "citizenship", "address", "document")
# Optional blocks: absent or null means "not said", never "removed".
_BLOCKS = ("address", "document")


def _iso(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _get(obj, name: str, default=None):
    if isinstance(obj, dict) or isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _has(obj, name: str) -> bool:
    return name in obj if isinstance(obj, dict) or isinstance(obj, Mapping) else hasattr(obj, name)


def _block(obj, names: tuple[str, ...]) -> dict | None:
    if obj is None:
        return None
    return {n: _iso(_get(obj, n)) for n in names}


def person_view(obj) -> dict:
    """The personal fields a source states, from a decision's `recipient` block, a registry record
    (model, dict as on `registry.persons`, or the replica's short record). Fields the source does not
    carry are left out."""
    out = {}
    for f in ("surname", "name", "patronymic", "sex", "citizenship"):
        if _has(obj, f):
            out[f] = _get(obj, f)
    if _has(obj, "birth_date"):
        out["birth_date"] = _iso(_get(obj, "birth_date"))
    if _has(obj, "address"):
        out["address"] = _block(_get(obj, "address"), ("text", "postal_index"))
    if _has(obj, "document"):
        out["document"] = _block(_get(obj, "document"), ("kind", "series", "number", "issued_on", "issuer"))
    return out


def registry_changed_on(registry_person, fallback: str) -> str:
    """The registry record's `updated_at` as an Almaty date, else `fallback`."""
    updated = _get(registry_person, "updated_at")
    if isinstance(updated, str):
        try:
            updated = datetime.fromisoformat(updated)
        except ValueError:
            return fallback
    if isinstance(updated, datetime) and updated.tzinfo is not None:
        return local_date(updated).isoformat()
    return fallback


def recipient_mismatch(recipient, registry_person) -> bool:
    """RECIPIENT_MISMATCH: the IIN is not in the registry, or surname, name, patronymic (where both
    have one) or birth date differ after part 1's normalization."""
    if registry_person is None:
        return True
    if normalize_name(_get(recipient, "surname")) != normalize_name(_get(registry_person, "surname")):
        return True
    if normalize_name(_get(recipient, "name")) != normalize_name(_get(registry_person, "name")):
        return True
    mine = normalize_name(_get(recipient, "patronymic"))
    theirs = normalize_name(_get(registry_person, "patronymic"))
    if mine and theirs and mine != theirs:
        return True
    return _iso(_get(recipient, "birth_date")) != _iso(_get(registry_person, "birth_date"))


def observe(person: Person, source: str, view: dict, on: str) -> bool:
    """Take what `source` states now (a `person_view`) as of the date `on`. A field becomes current
    when it is new, or when this source changed it since it last spoke; returns whether the record
    changed. Changes person in place (callers pass a copy)."""
    before = person.last.get(source)
    changed = False
    for f, value in view.items():
        if value is None and f in _BLOCKS:
            continue
        if before is not None and f in before and before[f] == value:
            continue  # this source did not change it: another source's newer word stands
        if f in person.fields and person.fields[f] == value:
            continue
        person.fields[f] = value
        changed = True
        if f == "document":
            key = (value["number"], value["issued_on"])
            last = person.document_history[-1] if person.document_history else None
            if last is None or (last["number"], last["issued_on"]) != key:
                person.document_history.append({"number": key[0], "issued_on": key[1], "changed_on": on})
        elif f == "citizenship" and value is not None:
            last = person.citizenship_history[-1] if person.citizenship_history else None
            if last is None or last["citizenship"] != value:
                person.citizenship_history.append({"citizenship": value, "changed_on": on})
    merged = dict(before or {})
    merged.update({f: v for f, v in view.items() if not (v is None and f in _BLOCKS)})
    person.last[source] = merged
    return changed
