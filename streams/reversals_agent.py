"""The reversals ledger in the faust app: an agent over `fund.refund-decisions`, the feed of
`posted.contributions` into the index (a group-less consumer of the partitions this worker owns,
`streams.ledger_feed`: one faust event per posted line cost posting most of its rate), a timer task
for the cut-offs, and restores on assignment. Everything it decides is in `streams.reversals`.

Ownership is the faust assignment of `fund.refund-decisions`: every topic with ESEP_PARTITIONS
partitions that all workers subscribe is in one co-partitioned group of faust's assignor, and
`posted.contributions` and the state changelog have that count (checked at start), so partition p
of each belongs with partition p of the decisions."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import faust
from faust.exceptions import ConsumerNotStarted

from .ledger_feed import FeedStopped
from .records import InputRecord, Sink
from .reversals import ReversalsWorker, RiskMonths, no_risk_months, risk_months_in_store
from .settings import Settings
from .yielding import PostingActivity

log = logging.getLogger("esep.reversals")


def recipients_link(recipients) -> tuple[RiskMonths, object]:
    """PERIOD_USED_FOR_PAYMENT from the recipients ledger of this worker (`RecipientsRuntime`): its
    states of the IIN are in the same partition number (both inputs keyed by IIN, one partition
    count, one co-partitioned group), read from its local store once it has restored them."""
    if recipients is None:
        return no_risk_months, None

    def risk_months(iin: str):
        return risk_months_in_store(recipients.processor.store, recipients.ledger.load, iin)

    async def before_deciding(partitions: set[int]) -> None:
        await recipients.started.wait()
        await recipients.processor.restore(partitions)

    return risk_months, before_deciding


async def check_partitions(bootstrap: str, settings: Settings) -> None:
    """`posted.contributions` and the state changelog, when they exist, have the decisions' partition
    count: another would put a person's entries in another worker than their refund decisions."""
    from .accounts_agent import existing_topics

    names = [settings.topics.posted_contributions, settings.topics.reversals_state]
    counts = await asyncio.get_running_loop().run_in_executor(None, existing_topics, bootstrap, names)
    wrong = {n: c for n, c in counts.items() if c != settings.partitions}
    if wrong:
        raise RuntimeError(f"the reversals' topics must have ESEP_PARTITIONS={settings.partitions} partitions "
                           f"(co-partitioned with {settings.topics.refund_decisions}), found {wrong}: recreate them")


def install_reversals(app: faust.App, settings: Settings, bootstrap: str, sink: Sink, clock,
                      recipients=None, lifecycle=None, posting: PostingActivity | None = None) -> dict:
    """Register the agent, its timer and its rebalance hooks on `app`. Returns a holder whose
    "worker" is the `ReversalsWorker` once the app has started. `recipients`: the recipients
    ledger's runtime (None: no assignments are known, PERIOD_USED_FOR_PAYMENT never applies).
    `lifecycle`: the worker's (streams/lifecycle.py); a part that dies stops the worker.
    `posting`: the posting agent's activity; the posted-entry feed gives way to posting."""
    topics = settings.topics
    holder: dict = {"worker": None}
    started = asyncio.Event()
    risk_months, before_deciding = recipients_link(recipients)

    def owned_partitions() -> list[int]:
        try:
            assignment = app.consumer.assignment()
        except ConsumerNotStarted:
            return []
        return [tp.partition for tp in assignment if tp.topic == topics.refund_decisions]

    decisions = app.topic(
        topics.refund_decisions, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw", partitions=settings.partitions,
    )

    def fail(what: str, exc: Exception) -> None:
        if lifecycle is None:
            raise exc
        lifecycle.fail(f"{what}: {type(exc).__name__}: {exc}", exc)

    async def worker() -> ReversalsWorker:
        await started.wait()
        return holder["worker"]

    @app.task
    async def reversals_start() -> None:
        try:
            w = ReversalsWorker(settings, bootstrap, sink, owned_partitions, clock, risk_months,
                                before_deciding=before_deciding)
            w.posted_feed(bootstrap, pace=posting.turn if posting is not None else None)
            await w.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fail("the reversals ledger failed to start", exc)
            return
        holder["worker"] = w
        started.set()

    @app.task
    async def reversals_posted_entries() -> None:
        """Posted entries into the index, in batches, from the positions the changelog recorded."""
        w = await worker()
        try:
            await check_partitions(bootstrap, settings)
            await w.feed.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an index that stops following the ledger is wrong: stop the worker
            fail("the reversals' posted-entry feed died", exc)

    @app.agent(decisions, name="reversals")
    async def reversals(stream):
        w = await worker()
        within = timedelta(seconds=settings.batch_within_s)
        try:
            await w.processor.reassigned(set(owned_partitions()))
            async for events in stream.noack_take(settings.batch_size, within=within):
                batch = [
                    InputRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key,
                                e.message.value, e.message.timestamp and int(e.message.timestamp * 1000))
                    for e in events
                ]
                await w.process(batch)
                for e in events:
                    await stream.ack(e)
        except asyncio.CancelledError:
            raise
        except FeedStopped:
            # The worker stops (the feed's own failure stops it): these decisions were not decided
            # and are not acknowledged; the partition's next reader decides them.
            log.info("reversals: the posted-entry feed stopped; refund decisions left undecided for the next reader")
        except Exception as exc:
            fail("the reversals agent died", exc)

    @app.task
    async def reversals_cutoffs() -> None:
        """Waiting decisions whose cut-off passed are decided with what exists (business deadline
        against the worker's clock: the one wall-clock decision)."""
        w = await worker()
        while True:
            await asyncio.sleep(settings.hold_check_s)
            try:
                released = await w.tick()
                if released:
                    log.info("reversals: %d persons' waiting refund decisions released at their cut-off", released)
            except asyncio.CancelledError:
                raise
            except FeedStopped:
                return  # the worker stops
            except Exception:
                log.exception("releasing waiting refund decisions failed; retrying at the next tick")

    @app.on_partitions_assigned.connect
    async def reversals_assigned(app, assigned, **kwargs) -> None:
        w = holder["worker"]
        mine = {tp.partition for tp in assigned if tp.topic == topics.refund_decisions}
        if w is not None and mine:
            # The whole assignment: a partition that left and came back is read again (keyed_ledger).
            await w.processor.reassigned(mine)  # during the rebalance: no first-batch stall
        if w is not None:
            w.feed.reassign()  # then reads the posted entries of its partitions from their positions

    @app.on_partitions_revoked.connect
    async def reversals_revoked(app, revoked, **kwargs) -> None:
        w = holder["worker"]
        if w is not None:
            gone = {tp.partition for tp in revoked if tp.topic == topics.refund_decisions}
            # After the batch in hand (the feed's or the agent's): its changelog write lands before
            # the next owner reads the changelog, and no later batch writes these partitions.
            async with w.processor.lock:
                w.processor.forget_partitions(gone)
            w.feed.reassign()

    return holder


__all__ = ["install_reversals"]
