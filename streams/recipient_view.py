"""`esep recipient IIN`: one person's recipient records (clause 12), state history and payments,
read back from the ledger's topics (full IIN shown only here, as `esep person history` does).

Each topic is read in the one partition the IIN's key maps to (IIN-keyed topics) or the keys
`<iin>/<payment_type>` map to (`recipients.accounts`), from the beginning to the end noted at
start. The topics are kept forever, so this reads a whole partition: fine for an operator's
question, not for a bulk export."""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from rules.codes import PAYMENT_TYPES

from .settings import Topics


@dataclass
class RecipientView:
    iin: str
    accounts: dict[str, dict] = field(default_factory=dict)  # payment_type -> latest record
    decisions: list[dict] = field(default_factory=list)
    payments: list[dict] = field(default_factory=list)
    overpayments: list[dict] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.accounts or self.decisions or self.payments)


async def read_recipient(bootstrap: str, topics: Topics, iin: str) -> RecipientView:
    from tables.metadata import topic_partitions

    view = RecipientView(iin)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitioner = DefaultPartitioner()
        wanted: dict[TopicPartition, set[bytes]] = {}
        for topic in (topics.decision_results, topics.social_payments, topics.overpayments):
            parts = await topic_partitions(bootstrap, topic)
            wanted.setdefault(TopicPartition(topic, partitioner(iin.encode(), parts, parts)), set()).add(iin.encode())
        parts = await topic_partitions(bootstrap, topics.recipient_accounts)
        for ptype in PAYMENT_TYPES:
            key = f"{iin}/{ptype}".encode()
            wanted.setdefault(TopicPartition(topics.recipient_accounts, partitioner(key, parts, parts)), set()).add(key)
        tps = list(wanted)
        consumer.assign(tps)
        for tp in tps:
            await consumer.seek_to_beginning(tp)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=10000)
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset >= ends[tp] or rec.key not in wanted[tp] or rec.value is None:
                        continue
                    value = orjson.loads(rec.value)
                    if tp.topic == topics.recipient_accounts:
                        view.accounts[value["payment_type"]] = value
                    elif tp.topic == topics.decision_results:
                        view.decisions.append(value)
                    elif tp.topic == topics.social_payments:
                        view.payments.append(value)
                    else:
                        view.overpayments.append(value)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    # A redelivery may re-emit a record (equal but for its stamp): show each id once.
    view.decisions = _first_of_each(view.decisions, "decision_id")
    view.payments = _first_of_each(view.payments, "entry_id")
    view.overpayments = _first_of_each(view.overpayments, "overpayment_id")
    return view


def _first_of_each(records: list[dict], key: str) -> list[dict]:
    seen: set = set()
    out = []
    for r in records:
        if r[key] not in seen:
            seen.add(r[key])
            out.append(r)
    return out


def format_recipient(view: RecipientView) -> list[str]:
    if view.empty:
        return [f"no recipient records for IIN {view.iin} (is a worker running, and did the Fund decide on it?)"]
    rows: list[str] = []
    for ptype, a in sorted(view.accounts.items()):
        name = " ".join(x for x in (a["surname"], a["name"], a["patronymic"]) if x)
        rows += [f"IIN {view.iin} · {ptype}: {a['state']} since {a['state_since']} (assignment {a['assignment_no']})",
                 f"  {name}, born {a['birth_date']}, sex {a['sex']}, citizenship {a['citizenship']}"]
        if a.get("document"):
            d = a["document"]
            rows.append(f"  document {d['kind']} {d.get('series') or ''}{d['number']} issued {d.get('issued_on')}")
        if a.get("address"):
            rows.append(f"  address {a['address']['text']} {a['address'].get('postal_index') or ''}".rstrip())
        rows.append(f"  applied {a['applied_on']}, risk {a['risk_occurred_on']}, decided {a['decided_on']}, "
                    f"end {a['end_date'] or 'open'}, {a['monthly_amount']} a month, rate "
                    f"{a['pension_contribution_rate'] or '-'}")
        rows.append(f"  paid gross {a['paid']['gross']} (withheld {a['paid']['withheld']}, net {a['paid']['net']}), "
                    f"returned {a['returned_total']}, overpaid outstanding {a['overpaid_outstanding']}")
        for h in a["document_history"]:
            rows.append(f"  document {h['number']} issued {h['issued_on']}, current from {h['changed_on']}")
        for h in a["citizenship_history"]:
            rows.append(f"  citizenship {h['citizenship']} from {h['changed_on']}")
        rows.append("")
    if view.decisions:
        rows.append("state history")
        head = f"  {'decided_on':<10}  {'type':<24}  {'decision':<11}  {'effective':<10}  {'status':<8}  state"
        rows += [head, "  " + "-" * (len(head) - 2)]
        for d in view.decisions:
            reason = f" ({d['reason']})" if d["reason"] else ""
            rows.append(f"  {d['decided_on']:<10}  {d['payment_type'] or '-':<24}  {d['decision']:<11}  "
                        f"{d['effective_from'] or '-':<10}  {d['status']:<8}  "
                        f"{d['state_before'] or '-'} -> {d['state_after'] or '-'}{reason}")
        rows.append("")
    if view.payments:
        rows.append("payments and returns")
        head = (f"  {'period':<7}  {'type':<24}  {'kind':<7}  {'gross':>12}  {'covered':>12}  {'overpaid':>12}  "
                f"{'applied':>12}  {'unmatched':>12}  reason / entry")
        rows += [head, "  " + "-" * (len(head) - 2)]
        reasons = {o["overpayment_id"]: o["reason"] for o in view.overpayments}
        for p in view.payments:
            rows.append(f"  {p['period']:<7}  {p['payment_type']:<24}  {p['kind']:<7}  {p['gross_amount']:>12}  "
                        f"{p['covered_amount']:>12}  {p['overpaid_amount']:>12}  {p['applied_to_overpayment']:>12}  "
                        f"{p['unmatched_amount']:>12}  {reasons.get(p['entry_id']) or '-'} {p['entry_id']}")
    return rows


__all__ = ["RecipientView", "format_recipient", "read_recipient"]
