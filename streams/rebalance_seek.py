"""Every assigned input partition starts, after a rebalance, at the group's committed offset or, with
none, at its earliest offset: never where an abandoned fetch left it.

Faust (0.15) seeks the committed offsets at the end of every rebalance, but aiokafka's
`seek_to_committed` skips a partition whose committed offset is None or 0: it keeps the position its
fetcher reached, past records fetched while the rebalance stopped the flow and then abandoned. Faust
never hands those to an agent, and with no committed offset its commit does not look for a gap at
the head: it commits past them, and they are lost. Seen in the recipients kill test (commit interval
60 s, so most partitions had no commit yet): a worker given two more partitions began them at
offsets 70 and 205 instead of 0, and records were decided out of order or not at all.

So when the rebalance completes, before faust seeks the committed offsets and resumes the flow
(`app.on_rebalance_complete`), every assigned partition is put at its earliest offset; faust's seek
then moves those with a commit to it, and the others start where a group with no commit starts."""
from __future__ import annotations

import asyncio
import logging

import faust

log = logging.getLogger("esep.worker")


def install_rebalance_seek(app: faust.App, lifecycle) -> None:
    @app.on_rebalance_complete.connect
    async def seek_to_earliest(sender, **kwargs) -> None:
        consumer = app.consumer
        try:
            tps = consumer.assignment()
            if not tps:
                return
            earliest = await consumer.earliest_offsets(*tps)
            for tp, offset in earliest.items():
                await consumer.seek(tp, offset)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without it, records can be skipped for good: a worker that cannot say where to start stops.
            lifecycle.fail(f"cannot seek the assigned partitions after a rebalance: {type(exc).__name__}: {exc}", exc)


__all__ = ["install_rebalance_seek"]
