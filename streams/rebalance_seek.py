"""Every assigned input partition starts, after a rebalance, at the group's committed offset or, with
none, at its earliest offset, and faust never commits past records it did not hand to an agent.

Faust (0.15) hands a partition's records to its agent out of order or not at all around a rebalance
(faust-streaming issues #216, #221: prefetched records; a stream skips records of an older
generation without acknowledging them). It counts on the seek to the committed offset at the end of
the next rebalance to read them again, and on its commit refusing a gap at the head of what was
acknowledged. Neither holds for a partition with no committed offset (None, or 0): aiokafka's
`seek_to_committed` leaves it where the fetcher got to, and faust's gap check is skipped, so faust
commits past the records it skipped and they are lost. The recipients kill test (commit interval
60 s: most partitions have no commit yet) lost decisions so, and got others out of order.

So when a rebalance completes, before faust seeks the committed offsets and resumes the flow
(`app.on_rebalance_complete`), every assigned partition is put at its earliest offset, and faust's
record of its committed offset is set to that earliest offset. Faust's own seek then replaces both
with the group's commit where there is one; where there is none, the partition starts where a group
with no commit starts, and faust's gap check has a start to check against. Records faust skips then
wait (uncommitted) for the next assignment instead of being lost.

Not covered (faust's own rule, for partitions with a commit too): its gap check lets ONE missing
record at the head through (`min(acked) - committed > 1`, which tolerates a transaction marker at
the committed offset), so a single record skipped right at the commit can still be committed past."""
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
            # In the consumer's own thread (`seek` from here races its fetcher: a KeyError in aiokafka).
            await consumer.seek_wait(dict(earliest))
            # Faust's view of the commit, until its seek reads the group's (faust-internal state:
            # the one place it keeps the start its commit checks a head gap against). Faust skips
            # the check for a falsy offset: -1 stands for the start of a partition that begins at 0.
            for tp, offset in earliest.items():
                consumer._committed_offset[tp] = offset if offset > 0 else -1
            log.debug("rebalance: %d assigned partitions put at their earliest offsets before the committed ones",
                      len(earliest))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without it, records can be skipped for good: a worker that cannot say where to start stops.
            lifecycle.fail(f"cannot seek the assigned partitions after a rebalance: {type(exc).__name__}: {exc}", exc)


__all__ = ["install_rebalance_seek"]
