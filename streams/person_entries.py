"""`esep person entries IIN`: a person's posted entries, each with the reversal that undid it beside
it, and the refund decisions of that person, read from the reversals agent's state changelog.

The changelog (compacted, co-partitioned with `fund.refund-decisions`, in the IIN's partition) holds
one value per (IIN, notification): a keyed-ledger entry whose state is a `PostedIndex`, entries
marked with the decision that reversed them. The person's values are merged into one index."""
from __future__ import annotations

from rules.money import format_tiyn
from rules.reversals import PostedIndex, RefundRecord


async def read_person_values(bootstrap: str, topic: str, iin: str) -> dict[str, bytes]:
    """The latest value of every `<iin>/...` key of the IIN's partition of the state changelog."""
    from tables.metadata import latest_of_key_partition

    prefix = f"{iin}/".encode()
    values = await latest_of_key_partition(bootstrap, topic, iin.encode(), lambda k: k.startswith(prefix))
    return {k.decode(): v for k, v in values.items()}


def person_index(iin: str, values: dict[str, bytes]) -> PostedIndex | None:
    """One index of the person from the changelog values of their notifications (None: nothing)."""
    if not values:
        return None
    from .keyed_ledger import decode_entry

    entries: dict = {}
    decisions: dict = {}
    for key, raw in values.items():
        _, body = decode_entry(key, raw)
        index = PostedIndex.from_obj(body)
        entries.update(index.entries)
        decisions.update(index.decisions)
    return PostedIndex(iin, entries, decisions)


def _status(record: RefundRecord) -> str:
    if record.waiting:
        return "waiting for an entry"
    outcome = record.outcome
    rejected = ", ".join(f"{eid} {reason}" for eid, reason in outcome.rejected)
    head = f"{outcome.status}" + (f" {outcome.reason}" if outcome.reason else "")
    return head + (f"; rejected: {rejected}" if rejected else "")


def format_entries(iin: str, index: PostedIndex | None) -> list[str]:
    if index is None or (not index.entries and not index.decisions):
        return [f"no posted entries recorded for IIN {iin} (is a worker running the reversals agent?)"]
    entries = sorted(index.entries.values(), key=lambda e: (e.period, e.notification_id, e.line_no))
    reversed_n = sum(1 for e in entries if e.reversed_by)
    posted = sum(e.amount for e in entries)
    undone = sum(e.amount for e in entries if e.reversed_by)
    first = entries[0] if entries else None
    who = f" ({first.surname} {first.name})" if first else ""
    rows = [f"IIN {iin}{who}: {len(entries)} posted entries, {reversed_n} reversed; "
            f"posted {format_tiyn(posted)}, reversed {format_tiyn(undone)}, net {format_tiyn(posted - undone)}", ""]
    header = f"{'entry_id':<40}  {'kind':<12}  {'knp':<3}  {'period':<7}  {'amount':>12}"
    rows += [header, "-" * len(header)]
    for e in entries:
        rows.append(f"{e.entry_id:<40}  {e.kind:<12}  {e.knp:<3}  {e.period:<7}  {format_tiyn(e.amount):>12}")
        if e.reversed_by:
            decision = index.decisions.get(e.reversed_by)
            when = f", decided {decision.request.decided_on.isoformat()}" if decision else ""
            rows.append(f"  └ {e.entry_id + '/reversal':<36}  {'reversed':<12}  {'':<3}  {'':<7}  "
                        f"{'-' + format_tiyn(e.amount):>12}  by {e.reversed_by}{when}")
    if index.decisions:
        rows += ["", "refund decisions (in arrival order)"]
        for record in sorted(index.decisions.values(), key=lambda r: r.source):
            q = record.request
            rows.append(f"  {q.refund_decision_id}  decided_on {q.decided_on.isoformat()}  "
                        f"{q.notification_id}  {_status(record)}")
    return rows


__all__ = ["format_entries", "person_index", "read_person_values"]
