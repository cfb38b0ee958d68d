"""Whenever faust puts the assigned partitions back at the group's committed offsets, a partition with
no commit goes back to its earliest offset, and faust's commit never goes past records it skipped.

Faust (0.15) hands a partition's records to its agents out of order or not at all around a rebalance
(faust-streaming issues #216, #221: prefetched records; a stream skips, unacknowledged, records of an
older generation; a fetch that returns while the flow is stopped is dropped). It counts on
`Consumer.perform_seek` (the seek to the committed offsets, at the end of every rebalance and after
such a dropped fetch) to read them again, and on its commit refusing a gap at the head of what was
acknowledged. Neither holds for a partition with no committed offset (None, or 0): aiokafka's
`seek_to_committed` leaves it where the fetcher got to, past the dropped records, and faust skips the
gap check, so it commits past them. Seen in the recipients kill test (commit interval 60 s: most
partitions have no commit yet): decisions lost, records out of order, and a restarted worker whose
partitions sat at their end with 910 records never handed to its agent.

So faust's `perform_seek` is wrapped: first every assigned partition is put at its earliest offset
(in the consumer's own thread) and faust's record of its committed offset set to that start; then
faust's seek moves the partitions with a commit to it. Records faust skips then come again instead
of being lost or stuck behind the fetch position.

Not covered (faust's own rule, for partitions with a commit too): its gap check lets ONE missing
record at the head through (`min(acked) - committed > 1`, which tolerates a transaction marker at
the committed offset), so a single record skipped right at the commit can still be committed past."""
from __future__ import annotations

import asyncio
import logging

import faust

log = logging.getLogger("esep.worker")


async def seek_to_earliest(consumer) -> None:
    """Every assigned partition at its earliest offset, and faust's view of its commit there (the
    one place faust keeps the start its commit checks a head gap against; it skips the check for
    a falsy offset: -1 stands for the start of a partition that begins at 0)."""
    tps = consumer.assignment()
    if not tps:
        return
    earliest = await consumer.earliest_offsets(*tps)
    # In the consumer's own thread (`seek` from here races its fetcher: a KeyError in aiokafka).
    await consumer.seek_wait(dict(earliest))
    for tp, offset in earliest.items():
        consumer._committed_offset[tp] = offset if offset > 0 else -1


def wrap_perform_seek(consumer) -> None:
    if getattr(consumer, "_esep_seek_wrapped", False):
        return
    faust_seek = consumer.perform_seek

    async def perform_seek() -> None:
        try:
            await seek_to_earliest(consumer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # mid-rebalance: the seek at its end comes again
            log.warning("cannot put the assigned partitions at their earliest offsets: %s: %s",
                        type(exc).__name__, exc)
        await faust_seek()

    consumer.perform_seek = perform_seek
    consumer._esep_seek_wrapped = True


def install_rebalance_seek(app: faust.App) -> None:
    # The consumer exists by the first completed rebalance, whose perform_seek comes right after.
    @app.on_rebalance_complete.connect
    async def wrap_seek(sender, **kwargs) -> None:
        wrap_perform_seek(app.consumer)


__all__ = ["install_rebalance_seek", "seek_to_earliest", "wrap_perform_seek"]
