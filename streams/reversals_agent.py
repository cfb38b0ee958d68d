"""The reversals agent in the faust app: one agent over `posted.contributions` and
`fund.refund-decisions` (one topic object naming both: faust's assignor gives partition p of every
co-subscribed topic of equal partition count to the same worker), a timer task for the cut-offs, and
restores on assignment. Everything it decides is in `streams.reversals`."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import faust
from faust.exceptions import ConsumerNotStarted

from .records import InputRecord, Sink
from .reversals import ReversalsWorker, RiskMonths, no_risk_months, risk_months_in_store
from .settings import Settings

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


def install_reversals(app: faust.App, settings: Settings, bootstrap: str, sink: Sink, clock,
                      recipients=None, lifecycle=None) -> dict:
    """Register the agent, its timer and its rebalance hooks on `app`. Returns a holder whose
    "worker" is the `ReversalsWorker` once the app has started. `recipients`: the recipients
    ledger's runtime (None: no assignments are known, PERIOD_USED_FOR_PAYMENT never applies).
    `lifecycle`: the worker's (streams/lifecycle.py); a part that dies stops the worker."""
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

    inputs = app.topic(
        topics.posted_contributions, topics.refund_decisions, key_type=bytes, value_type=bytes,
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
            await w.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fail("the reversals ledger failed to start", exc)
            return
        holder["worker"] = w
        started.set()

    @app.agent(inputs, name="reversals")
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
            except Exception:
                log.exception("releasing waiting refund decisions failed; retrying at the next tick")

    @app.on_partitions_assigned.connect
    async def reversals_assigned(app, assigned, **kwargs) -> None:
        w = holder["worker"]
        mine = {tp.partition for tp in assigned if tp.topic == topics.refund_decisions}
        if w is not None and mine:
            # The whole assignment: a partition that left and came back is read again (keyed_ledger).
            await w.processor.reassigned(mine)  # during the rebalance: no first-batch stall

    @app.on_partitions_revoked.connect
    async def reversals_revoked(app, revoked, **kwargs) -> None:
        w = holder["worker"]
        if w is not None:
            w.processor.forget_partitions(tp.partition for tp in revoked if tp.topic == topics.refund_decisions)

    return holder


__all__ = ["install_reversals"]
