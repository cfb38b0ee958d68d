"""The posting path for a batch of credit notifications. Faust-free so that it can be driven by
the agent, by tests and by benchmarks alike; the rules it applies live in `rules/`.

One batch: parse -> (re)store decision partitions -> tell redeliveries and repeats apart -> decide
the new orders -> write their decision records and await the acknowledgements -> send every output
and await them. Only then does the caller acknowledge the input offsets. A crash anywhere in
between redelivers the batch: already-decided orders are re-emitted from their records."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import orjson
from pydantic import ValidationError

from models.notifications import CreditNotification
from monitoring import metrics
from rules import entries
from rules.iin import mask_iin
from rules.money import format_tiyn, parse_amount
from rules.calendar import default_calendar
from rules.posting import POSTED, REFUNDED, OrderDecision, decide_order, hold_cutoff, iins_to_look_up, recheck_held
from tables.changelog import ChangelogReader
from tables.decisions import DecisionRecord, DecisionStore
from tables.registry import RegistryStore, describe_validation_error

from .records import InputRecord, OutputRecord, Sink, b64
from .sending import send_all, write_changelog
from .settings import Topics

log = logging.getLogger("esep.posting")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class BatchSummary:
    notifications: int = 0
    new: int = 0
    redelivered: int = 0
    repeats: int = 0
    rerouted: int = 0
    dead_letters: int = 0
    lines_posted: int = 0
    lines_refunded: int = 0
    lines_held: int = 0
    reasons: Tally = field(default_factory=Tally)


@dataclass(frozen=True)
class HoldPolicy:
    """The registry-lag hold: on or off, and how long before the business deadline it ends."""

    enabled: bool = True
    margin: timedelta = timedelta(minutes=30)

    def cutoff(self, received_at: datetime) -> datetime:
        return hold_cutoff(received_at, self.margin)


def classify_parse_error(raw: bytes | None, exc: ValidationError | None) -> tuple[str, str]:
    """(error_kind, error) for a record that is not a valid notification."""
    if raw is None:
        return "not_json", "empty value (tombstone): a credit notification is a JSON object"
    if exc is not None and any(e["type"] == "json_invalid" for e in exc.errors()):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return "not_utf8", f"value is not UTF-8 (byte {err.start}: {err.reason})"
        first = next(e for e in exc.errors() if e["type"] == "json_invalid")
        return "not_json", first["msg"]
    return "schema", describe_validation_error(exc)


def dead_letter(source: InputRecord, error_kind: str, error: str, at: datetime, topic: str) -> OutputRecord:
    value = {
        "schema_version": 1,
        "source_topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "key": b64(source.key),
        "value": b64(source.value),
        "error": error,
        "error_kind": error_kind,
        "received_at": entries.stamp(at),
    }
    return OutputRecord(topic, source.key, orjson.dumps(value))


class PostingProcessor:
    def __init__(
        self,
        topics: Topics,
        registry: RegistryStore,
        decisions: DecisionStore,
        changelog: ChangelogReader,
        sink: Sink,
        clock: Clock = utc_now,
        retry_backoff_s: float = 0.5,
        owned_partitions: Callable[[], Iterable[int]] = tuple,
        hold: HoldPolicy = HoldPolicy(enabled=False),
    ):
        self.topics = topics
        self.registry = registry
        self.decisions = decisions
        self.changelog = changelog
        self.sink = sink
        self.clock = clock
        self.retry_backoff_s = retry_backoff_s
        self.owned_partitions = owned_partitions
        self.hold = hold
        self.restored: set[int] = set()
        # Batches and hold re-checks both change decision records: one at a time.
        self.lock = asyncio.Lock()
        # Next input offset per partition once a batch is through: consumer lag is measured from it.
        self.next_offsets: dict[int, int] = {}
        self.totals = BatchSummary()

    def forget_partitions(self, partitions) -> None:
        """Revoked partitions: another worker may write their decisions before we get them back."""
        self.restored.difference_update(partitions)

    # ---- the input path --------------------------------------------------------------------------

    async def process(self, batch: list[InputRecord]) -> BatchSummary:
        async with self.lock:
            return await self._process(batch)

    async def _process(self, batch: list[InputRecord]) -> BatchSummary:
        summary = BatchSummary(notifications=len(batch))
        now = self.clock()
        outputs: list[OutputRecord] = []
        orders: list[tuple[InputRecord, CreditNotification]] = []
        for rec in batch:
            order = self._parse(rec, now, outputs, summary)
            if order is not None:
                orders.append((rec, order))

        needed = {rec.partition for rec, _ in orders} - self.restored
        if needed:
            await self._restore(needed)

        known = self.decisions.get_many([o.notification_id for _, o in orders])
        to_emit: list[tuple[CreditNotification, DecisionRecord]] = []
        to_decide: list[tuple[InputRecord, CreditNotification]] = []
        seen: set[str] = set()
        for rec, order in orders:
            nid = order.notification_id
            first = known.get(nid)
            if first is None and nid not in seen:
                seen.add(nid)
                to_decide.append((rec, order))
            elif first is not None and (first.partition, first.offset) == (rec.partition, rec.offset):
                to_emit.append((order, first))
                summary.redelivered += 1
            else:
                summary.repeats += 1

        fresh = self._decide(to_decide, now, outputs)
        await self._write_records([record for _, record in fresh])
        summary.new = len(fresh)

        stamp = entries.stamp(self.clock())
        for order, record in to_emit + fresh:
            self._render(order, record.decision, stamp, outputs)
        await self._send_all(outputs, "outputs")
        summary.dead_letters = sum(1 for o in outputs if o.topic == self.topics.dead_letters)
        for rec in batch:
            self.next_offsets[rec.partition] = max(self.next_offsets.get(rec.partition, 0), rec.offset + 1)
        decided = [(order, record.decision, {d.line_no for d in record.decision.lines}) for order, record in fresh]
        self._observe_input(batch, summary)
        self._observe_decided(decided, summary, self.clock())
        self._accumulate(summary)
        return summary

    async def restore(self, partitions: set[int]) -> None:
        async with self.lock:
            needed = partitions - self.restored
            if needed:
                await self._restore(needed)

    async def _restore(self, needed: set[int]) -> None:
        # Restore every partition we own now, not only this batch's: each restore round is costly.
        partitions = sorted(needed | (set(self.owned_partitions()) - self.restored))
        started = time.monotonic()
        await self.changelog.catch_up(partitions)
        metrics.recovery_seconds.labels("decisions").observe(time.monotonic() - started)
        self.restored.update(partitions)
        # Held lines are re-checked on restore: a registry change whose re-check a crash lost
        # must still post its line, and outputs a crash kept from being sent are sent now.
        await self._recheck(set(), only_partitions=set(partitions))

    def _parse(self, rec: InputRecord, now, outputs, summary) -> CreditNotification | None:
        try:
            order = CreditNotification.model_validate_json(rec.value) if rec.value is not None else None
        except ValidationError as exc:
            order, error = None, exc
        else:
            error = None
        if order is None:
            kind, message = classify_parse_error(rec.value, error)
            outputs.append(dead_letter(rec, kind, message, now, self.topics.dead_letters))
            metrics.dead_letters.labels("credit-notifications", kind).inc()
            return None
        if rec.key != order.notification_id.encode():
            # The id owns a partition (and so its decisions): move the record there, unchanged.
            outputs.append(OutputRecord(rec.topic, order.notification_id.encode(), rec.value))
            summary.rerouted += 1
            return None
        return order

    def _decide(self, to_decide, now: datetime, outputs) -> list[tuple[CreditNotification, DecisionRecord]]:
        if not to_decide:
            return []
        iins = sorted({iin for _, order in to_decide for iin in iins_to_look_up(order)})
        persons = self.registry.get_many(iins)
        fresh = []
        for rec, order in to_decide:
            try:
                cutoff = self.hold.cutoff(order.received_at) if self.hold.enabled else None
                decision = decide_order(order, persons, hold=cutoff is not None and now < cutoff)
            except Exception as exc:  # a bug must not stop the stream: the operator gets the record
                log.exception("cannot decide notification at %s[%d]@%d", rec.topic, rec.partition, rec.offset)
                outputs.append(
                    dead_letter(rec, "schema", f"unprocessable: {type(exc).__name__}: {exc}", now,
                                self.topics.dead_letters)
                )
                continue
            record = DecisionRecord(order.notification_id, rec.partition, rec.offset, decision)
            if not decision.complete:
                record = replace(record, order_raw=rec.value, cutoff=cutoff.timestamp(),
                                 received=order.received_at.timestamp())
            fresh.append((order, record))
        return fresh

    async def _write_records(self, records: list[DecisionRecord]) -> None:
        if not records:
            return
        out = [OutputRecord(self.topics.decisions, r.notification_id.encode(), r.encode(), r.partition)
               for r in records]
        await write_changelog(self.sink, out, self.decisions, "decisions", self.retry_backoff_s)

    def _render(self, order, decision: OrderDecision, stamp: str, outputs,
                lines: set[int] | None = None) -> None:
        """Outputs of a decision: posted entries and deceased alerts (of `lines` only, when given),
        and, once every line is decided, the refund and the result."""
        topics = self.topics
        for key, entry in entries.posted_entries(order, decision, stamp):
            if lines is None or int(entry["entry_id"].rsplit("/", 1)[1]) in lines:
                outputs.append(OutputRecord(topics.posted_contributions, key.encode(), orjson.dumps(entry)))
        for key, alert in entries.deceased_alerts(order, decision, stamp):
            if lines is None or alert["line_no"] in lines:
                outputs.append(OutputRecord(topics.deceased_alerts, key.encode(), orjson.dumps(alert)))
        if not decision.complete:
            return
        nid = order.notification_id.encode()
        refund = entries.refund_record(order, decision, stamp)
        if refund is not None:
            outputs.append(OutputRecord(topics.refunds, nid, orjson.dumps(refund)))
        result = entries.order_result(order, decision, stamp)
        outputs.append(OutputRecord(topics.order_results, nid, orjson.dumps(result)))

    # ---- the hold path: registry changes, cut-offs, restores ---------------------------------------

    async def recheck(self, changed_iins: set[str]) -> int:
        """Re-check held lines of the orders this worker owns: those naming a changed person, and
        every held line whose cut-off has passed. Returns the number of orders updated."""
        async with self.lock:
            return await self._recheck(changed_iins)

    async def _recheck(self, changed_iins: set[str], only_partitions: set[int] | None = None) -> int:
        now = self.clock()
        owned = self.restored & set(self.owned_partitions()) if only_partitions is None else only_partitions
        open_orders = self.decisions.open_orders()
        touched = self.decisions.held_by_iin(changed_iins) if changed_iins else set()
        due = {nid for nid, partition, cutoff, _, _, emit in open_orders
               if partition in owned and (emit or nid in touched or cutoff <= now.timestamp()
                                          or only_partitions is not None)}
        self._observe_pending(open_orders, owned, now)
        if not due:
            return 0
        records = self.decisions.get_many(sorted(due))
        orders = {nid: CreditNotification.model_validate_json(r.order_raw) for nid, r in records.items()}
        persons = self.registry.get_many(sorted({iin for o in orders.values() for iin in iins_to_look_up(o)}))
        updated: list[tuple[CreditNotification, DecisionRecord, set[int] | None]] = []
        for nid, record in records.items():
            order = orders[nid]
            final = now.timestamp() >= record.cutoff
            decision = recheck_held(order, record.decision, persons, final=final)
            newly = {d.line_no for d, old in zip(decision.lines, record.decision.lines) if d.outcome != old.outcome}
            if newly:
                updated.append((order, replace(record, decision=decision, emit_pending=True), newly))
            elif record.emit_pending:
                updated.append((order, record, None))  # a crash came between decision and outputs
        if not updated:
            return 0
        await self._write_records([r for _, r, newly in updated if newly])
        stamp = entries.stamp(self.clock())
        outputs: list[OutputRecord] = []
        for order, record, newly in updated:
            self._render(order, record.decision, stamp, outputs, lines=newly)
        await self._send_all(outputs, "outputs")
        # Outputs acknowledged: the records need no re-emission; a finished order drops its copy.
        settled = [replace(r, emit_pending=False, order_raw=r.order_raw if r.open else None) for _, r, _ in updated]
        await self._write_records(settled)
        summary = BatchSummary()
        self._observe_decided([(o, r.decision, newly) for o, r, newly in updated if newly], summary, self.clock())
        self._accumulate(summary)
        self._observe_pending(self.decisions.open_orders(), owned, self.clock())
        log.info("registry-lag hold: %d orders updated (%d lines posted, %d refunded), %d changed persons",
                 len(updated), summary.lines_posted, summary.lines_refunded, len(changed_iins))
        return len(updated)

    # ---- observation -------------------------------------------------------------------------------

    def _accumulate(self, summary: BatchSummary) -> None:
        t = self.totals
        for name in ("notifications", "new", "redelivered", "repeats", "rerouted", "dead_letters",
                     "lines_posted", "lines_refunded", "lines_held"):
            setattr(t, name, getattr(t, name) + getattr(summary, name))
        t.reasons.update(summary.reasons)

    def take_totals(self) -> BatchSummary:
        """Totals since the previous call, for the periodic summary log line."""
        totals, self.totals = self.totals, BatchSummary()
        return totals

    async def _send_all(self, records: list[OutputRecord], stage: str) -> list:
        return await send_all(self.sink, records, stage, self.retry_backoff_s)

    def _observe_input(self, batch, summary: BatchSummary) -> None:
        metrics.batches.observe(len(batch))
        notif = metrics.notifications
        for outcome, n in (("decided", summary.new), ("redelivered", summary.redelivered),
                           ("duplicate", summary.repeats), ("rerouted", summary.rerouted),
                           ("dead_letter", summary.dead_letters)):
            if n:
                notif.labels(outcome).inc(n)
        end = time.time()
        for rec in batch:
            if rec.timestamp_ms:
                metrics.latency_ingest.observe(max(0.0, end - rec.timestamp_ms / 1000.0))

    def _observe_decided(self, decided, summary: BatchSummary, now: datetime) -> None:
        """Metrics of newly decided lines: (order, decision, line numbers decided now)."""
        posted_tiyn: Tally = Tally()
        refunded_tiyn: Tally = Tally()
        statuses: Tally = Tally()
        calendar = default_calendar()
        for order, decision, newly in decided:
            amounts = {line.line_no: line.amount for line in order.lines}
            decided_now = 0
            for d in decision.lines:
                if d.line_no not in newly:
                    continue
                if d.outcome == POSTED:
                    summary.lines_posted += 1
                    posted_tiyn[order.knp] += parse_amount(amounts[d.line_no])
                elif d.outcome == REFUNDED:
                    summary.lines_refunded += 1
                    summary.reasons[d.reason] += 1
                else:
                    summary.lines_held += 1
                    continue
                decided_now += 1
            if decision.complete:
                refunded_tiyn[order.knp] += entries.refunded_tiyn(order, decision)
                statuses[entries.order_result(order, decision, "")["status"]] += 1
                metrics.latency_received.observe(max(0.0, now.timestamp() - order.received_at.timestamp()))
            if decided_now and now > calendar.receipt_deadline(order.received_at):
                metrics.deadline_breaches.inc(decided_now)
        if summary.lines_posted:
            metrics.lines.labels("posted", "").inc(summary.lines_posted)
        for reason, n in summary.reasons.items():
            metrics.lines.labels("refunded", reason).inc(n)
        if summary.lines_held:
            metrics.lines.labels("held", "").inc(summary.lines_held)
        for knp, tiyn in posted_tiyn.items():
            metrics.amount_posted.labels(knp_label(knp)).inc(tiyn / 100)
        for knp, tiyn in refunded_tiyn.items():
            if tiyn:
                metrics.amount_refunded.labels(knp_label(knp)).inc(tiyn / 100)
        for status, n in statuses.items():
            metrics.orders.labels(status).inc(n)
        if decided and log.isEnabledFor(logging.DEBUG):
            for order, decision, _ in decided:
                log.debug("decided %s", describe_decision(order, decision))

    def _observe_pending(self, open_orders, owned: set[int], now: datetime) -> None:
        mine = [o for o in open_orders if o[1] in owned]
        metrics.pending_lines.set(sum(o[4] for o in mine))
        metrics.pending_oldest_age.set(max((now.timestamp() - o[3] for o in mine), default=0.0))
        metrics.pending_next_cutoff.set(max(0.0, min((o[2] - now.timestamp() for o in mine), default=0.0)))


def describe_decision(order, decision: OrderDecision) -> str:
    """One line per order for debug logs: counts and reasons, refunded IINs masked."""
    lines = {line.line_no: line for line in order.lines}
    refunded = [f"{d.line_no}:{d.reason}:{mask_iin(lines[d.line_no].iin)}" for d in decision.refunded]
    status = entries.order_result(order, decision, "")["status"] if decision.complete else "open"
    head = (f"{order.notification_id} {status}: {len(decision.posted)} posted, {len(refunded)} refunded, "
            f"{len(decision.held)} held")
    if decision.order_reason:
        return f"{head} ({decision.order_reason})"
    return head + (f" [{', '.join(refunded)}]" if refunded else "")


def knp_label(knp: str) -> str:
    """KNP as a metric label: only the accepted codes, anything else folded (bounded cardinality)."""
    return knp if knp in ("012", "017") else "other"


__all__ = ["PostingProcessor", "BatchSummary", "format_tiyn"]
