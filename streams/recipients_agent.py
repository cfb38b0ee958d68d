"""The recipients agent: a thin faust adapter around `KeyedLedgerProcessor` + `RecipientsLedger`.

One agent subscribes to ONE topic object naming both inputs (`fund.payment-decisions`,
`fund.payment-transfers`): both are keyed by IIN with the same partition count (`esep topics`
refuses a mismatch), and faust's assignor gives co-subscribed topics of equal partition count the
same partition numbers on the same worker (`PartitionAssignor._get_copartitioned_groups`), so a
person's decisions and transfers meet in one coroutine, in the order the worker consumes them.
Its state changelog is written with the input's partition number, never by key hash.

One faust event is one record (they are ~1 KB), and `noack_take` makes the batch the unit of work:
decide, one changelog write, one output send, then the offsets are acknowledged.

A stall watch (streams/stall_watch.py) fails the worker when records wait on its partitions and no
batch finished for `ESEP_STALL_S`: whatever keeps the agent from going on, it does not idle."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from monitoring import metrics
from rules.codes import PAYMENT_TYPES
from tables.changelog import ChangelogReader

from rules.holds import HoldPolicy

from .keyed_ledger import KeyedLedgerProcessor, open_ledger_store
from .records import InputRecord
from .recipients import RecipientsLedger, state_keys_of
from .settings import Settings
from .stall_watch import StallWatch, check_interval

log = logging.getLogger("esep.recipients")


class RecipientsRuntime:
    def __init__(self, app: faust.App, settings: Settings, bootstrap: str, runtime):
        self.app = app
        self.settings = settings
        self.bootstrap = bootstrap
        self.runtime = runtime  # the posting runtime: its registry replica and readiness
        self.processor: KeyedLedgerProcessor | None = None
        self.started = asyncio.Event()
        self.changed_iins: set[str] = set()
        self.watch = StallWatch(settings.stall_s, lambda idle, n: (
            f"the recipients agent finished no batch in {idle:.0f} s while {n} input records waited on its "
            f"partitions (ESEP_STALL_S={settings.stall_s:g})"))
        # Faust commits every commit interval: only a commit that stays put for several is stuck.
        self.commit_watch = StallWatch(settings.stall_s and max(settings.stall_s, 3 * settings.commit_interval_s),
                                       lambda idle, n: (
            f"{n} input records the recipients agent finished stayed uncommitted for {idle:.0f} s: records "
            f"before them were never handed to it (they come again at the next assignment)"))
        self.last_committed: tuple = ()

    async def start(self) -> None:
        """After the worker is ready: the registry replica caught up (RECIPIENT_MISMATCH and the
        record read it)."""
        await self.runtime.ready.wait()
        s = self.settings
        store = open_ledger_store(s.worker_dir / "recipients")
        changelog = ChangelogReader(store, self.bootstrap, s.topics.recipients_state)
        await changelog.start()
        hold = HoldPolicy.from_mode(s.pending, s.hold_cutoff_min)
        ledger = RecipientsLedger(s.topics, self.runtime.replica.store.get_views, hold, self.runtime.calendar)
        from .app import FaustSink

        self.processor = KeyedLedgerProcessor(ledger, store, changelog, FaustSink(self.app),
                                              owned_partitions=self.owned_partitions, name="recipients",
                                              committed=self.committed_offset)
        self.ledger = ledger
        self.started.set()

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of an input partition as faust knows it (read at each
        assignment, then its own commits; -1 from streams/rebalance_seek.py: none, start at 0);
        None when unknown."""
        try:
            offsets = self.app.consumer._committed_offset
        except (AttributeError, ConsumerNotStarted):
            return None
        offset = offsets.get(TP(topic, partition))
        return None if offset is None else max(0, offset)

    def owned_partitions(self) -> list[int]:
        topic = self.settings.topics.payment_decisions
        try:
            assignment = self.app.consumer.assignment()
        except ConsumerNotStarted:
            return []
        return [tp.partition for tp in assignment if tp.topic == topic]

    async def input_offsets(self) -> list[tuple[int, int | None, int | None]]:
        """(end, finished, committed) of each owned input partition: its high watermark, the offset
        after the agent's last finished record, faust's committed offset (None: unknown)."""
        t = self.settings.topics
        consumer = self.app.consumer
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in (t.payment_decisions, t.payment_transfers)]
        except ConsumerNotStarted:
            return []
        if not tps:
            return []
        ends = await consumer.highwaters(*tps)
        done = self.processor.next_offsets if self.processor is not None else {}
        out = []
        for tp in tps:
            end = ends.get(tp)
            if end is None:
                continue
            committed = self.committed_offset(tp.topic, tp.partition)
            finished = done.get((tp.topic, tp.partition))
            if finished is None and committed is None:
                finished = await consumer.position(tp)  # nothing else known: what was fetched
            out.append((end, finished, committed))
        return out

    async def check_stall(self) -> None:
        """Fails the worker when records wait and no batch finished for `ESEP_STALL_S`, or when what
        it finished stays uncommitted that long (and at least three commit intervals). Starting,
        stopping, failed or rebalancing: nothing is expected of the agent, the counts restart."""
        lifecycle = self.runtime.lifecycle
        if (not self.runtime.ready.is_set() or lifecycle.failure is not None or lifecycle.stopping
                or self.app.rebalancing):
            self.watch.progressed()
            self.commit_watch.progressed()
            return
        try:
            offsets = await self.input_offsets()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The broker out of reach: the agent's sends retry, nothing is expected of it until it is back.
            log.warning("recipients stall watch: cannot read the input offsets: %s: %s", type(exc).__name__, exc)
            self.watch.progressed()
            self.commit_watch.progressed()
            return
        waiting = sum(max(0, end - max(o for o in (finished, committed) if o is not None))
                      for end, finished, committed in offsets if finished is not None or committed is not None)
        uncommitted = sum(max(0, finished - committed) for _, finished, committed in offsets
                          if finished is not None and committed is not None)
        committed_now = tuple(c for _, _, c in offsets)
        if committed_now != self.last_committed:
            self.last_committed = committed_now
            self.commit_watch.progressed()
        reason = self.watch.check(waiting) or self.commit_watch.check(uncommitted)
        if reason is not None:
            # What the next diagnosis needs (offsets only: no personal data).
            consumer = self.app.consumer
            log.error("recipients stall: input partitions (end, finished, committed) %s; faust flow active %s, "
                      "paused %d partitions", sorted(offsets, key=str), getattr(consumer, "flow_active", None),
                      len(getattr(consumer, "_paused_partitions", ()) or ()))
            lifecycle.fail(reason)

    def on_registry_change(self, iins) -> None:
        # Catching up at start the replica reports every person: only later changes re-emit accounts.
        if self.started.is_set():
            self.changed_iins.update(iins)

    async def tick(self) -> None:
        """Held payments past their cut-off; accounts of persons changed in the registry; gauges."""
        p = self.processor
        # With the hold off, payments held before it was switched off are decided now.
        await p.tick(None if self.ledger.hold.enabled else datetime.max.replace(tzinfo=timezone.utc))
        if self.changed_iins:
            changed, self.changed_iins = self.changed_iins, set()
            keys = state_keys_of(sorted(changed))
            try:
                n = await p.touch(keys, self.ledger.registry_change)
            except Exception:
                self.changed_iins.update(changed)
                raise
            if n:
                log.info("registry changes: %d recipient records updated", n)
        self.observe()

    def observe(self) -> None:
        p = self.processor
        owned = p.owned_restored()
        totals = p.totals(owned)
        for ptype in PAYMENT_TYPES:
            metrics.overpaid_outstanding.labels(ptype).set(totals.get(f"outstanding:{ptype}", 0) / 100)
        metrics.held_transfers.set(totals.get("held", 0))
        now = time.time()
        due = p.due_times(owned)
        metrics.held_next_cutoff.set(max(0.0, min(due) - now) if due else 0.0)
        for tp in self.app.consumer.assignment():
            if tp.topic in (self.settings.topics.payment_decisions, self.settings.topics.payment_transfers):
                high = self.app.consumer.highwater(tp)
                done = p.next_offsets.get((tp.topic, tp.partition))
                if high is not None and done is not None:
                    metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - done))


def install_recipients(app: faust.App, settings: Settings, bootstrap: str, runtime) -> RecipientsRuntime:
    """Adds the recipients agent, its start-up, timer and rebalance hooks to the posting app."""
    rt = RecipientsRuntime(app, settings, bootstrap, runtime)
    t = settings.topics
    inputs = app.topic(t.payment_decisions, t.payment_transfers, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    # The registry replica tells the posting runtime of changed persons: tell us too.
    posting_on_change = runtime.replica.on_change

    def on_registry_change(iins) -> None:
        if posting_on_change is not None:
            posting_on_change(iins)
        rt.on_registry_change(iins)

    runtime.replica.on_change = on_registry_change

    @app.task
    async def recipients_start() -> None:
        try:
            await rt.start()
            await rt.processor.reassigned(set(rt.owned_partitions()))
            rt.watch.progressed()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            runtime.lifecycle.fail(f"the recipients ledger failed to start: {type(exc).__name__}: {exc}", exc)

    @app.agent(inputs, name="recipients")
    async def recipients(stream):
        await rt.started.wait()
        within = timedelta(seconds=settings.batch_within_s)
        try:
            async for events in stream.noack_take(settings.batch_size, within=within):
                batch = [
                    InputRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key,
                                e.message.value, e.message.timestamp and int(e.message.timestamp * 1000))
                    for e in events
                ]
                await rt.processor.process(batch)
                for e in events:
                    await stream.ack(e)
                rt.watch.progressed()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A record costs only itself (a dead letter); what reaches here is broken beyond one.
            runtime.lifecycle.fail(f"the recipients agent died: {type(exc).__name__}: {exc}", exc)

    @app.timer(interval=settings.hold_check_s)
    async def recipients_timer() -> None:
        if not rt.started.is_set():
            return
        try:
            await rt.tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("recipients timer failed; retrying at the next tick")

    if settings.stall_s > 0:
        @app.timer(interval=check_interval(settings.stall_s))
        async def recipients_stall_watch() -> None:
            await rt.check_stall()

    @app.on_partitions_assigned.connect
    async def recipients_assigned(app, assigned, **kwargs) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == t.payment_decisions}
        rt.watch.progressed()
        if rt.processor is not None:
            # Restore now, during the rebalance, rather than on the first batch.
            await rt.processor.reassigned(mine)
            rt.watch.progressed()

    @app.on_partitions_revoked.connect
    async def recipients_revoked(app, revoked, **kwargs) -> None:
        if rt.processor is not None:
            rt.processor.forget_partitions(tp.partition for tp in revoked if tp.topic == t.payment_decisions)

    return rt


__all__ = ["RecipientsRuntime", "install_recipients"]
