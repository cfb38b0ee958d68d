"""The group-less ledger feed's wait for its target (streams/ledger_feed.py), without a broker: a
consumer that answers the first and end offsets, a target whose positions the test moves."""
from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from streams.ledger_feed import LedgerFeed

TOPIC = "posted.contributions"


class Consumer:
    def __init__(self, bounds: dict[int, tuple[int, int]]):
        self.bounds = bounds  # partition -> (first offset, end offset)
        self.asked = 0

    async def end_offsets(self, tps):
        self.asked += 1
        return {tp: self.bounds[tp.partition][1] for tp in tps}

    async def beginning_offsets(self, tps):
        return {tp: self.bounds[tp.partition][0] for tp in tps}


class Target:
    def __init__(self):
        self.at: dict[int, int] = {}
        self.next_offsets = {}

    def positions(self, partition, topics):
        return {TOPIC: self.at[partition]} if partition in self.at else {}


def make(bounds, owned):
    target = Target()
    feed = LedgerFeed(target, "127.0.0.1:1", lambda: owned, [TOPIC], name="test")
    feed.consumer = Consumer(bounds)
    return feed, target


def test_caught_up_waits_for_the_end_offsets_read_when_asked():
    async def scenario():
        owned = {0, 1, 2}
        # p0 behind, p1 empty since its first offset (nothing to read, no position), p2 at its end.
        feed, target = make({0: (0, 10), 1: (4, 4), 2: (0, 3)}, owned)
        target.at = {0: 5, 2: 3}
        waiting = asyncio.ensure_future(feed.caught_up([0, 1, 2], poll_s=5))
        await asyncio.sleep(0.01)
        assert not waiting.done(), "the feed has not followed the assignment yet"
        feed.present = [TOPIC]
        feed.followed.set()  # as run() does after following the assignment
        feed._advance()
        await asyncio.sleep(0.01)
        assert not waiting.done() and feed.consumer.asked == 1
        feed.consumer.bounds[0] = (0, 50)  # posted after the call: not waited for
        target.at[0] = 10
        feed._advance()
        assert await asyncio.wait_for(waiting, 1) == {0, 1, 2}

    asyncio.run(scenario())


def test_a_partition_that_leaves_is_not_waited_for():
    async def scenario():
        owned = {0, 1}
        feed, target = make({0: (0, 10), 1: (0, 10)}, owned)
        feed.present = [TOPIC]
        feed.followed.set()
        target.at = {0: 10}
        waiting = asyncio.ensure_future(feed.caught_up([0, 1], poll_s=5))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        owned.discard(1)
        feed._advance()
        assert await asyncio.wait_for(waiting, 1) == {0}

    asyncio.run(scenario())


def test_a_topic_that_does_not_exist_holds_nothing_to_wait_for():
    async def scenario():
        feed, _ = make({}, {0})
        feed.followed.set()  # followed: the topic is not there
        assert await asyncio.wait_for(feed.caught_up([0]), 1) == {0}

    asyncio.run(scenario())


def test_highwater_of_a_partition_not_read_yet_is_unknown():
    feed, _ = make({}, {0})

    class Assigned:
        def assignment(self):
            return {TopicPartition(TOPIC, 0)}

        def highwater(self, tp):
            return 7

    feed.consumer = Assigned()
    feed.present = [TOPIC]
    assert feed.highwater(TOPIC, 0) == 7 and feed.highwater(TOPIC, 1) is None
    assert feed.lag(0) == 7 and feed.lag(1) is None


def test_a_paced_feed_waits_while_posting_works_and_never_longer_than_its_bound():
    from streams.yielding import PostingActivity

    async def scenario():
        first = PostingActivity()
        await asyncio.wait_for(first.turn(quiet_s=0.01, max_wait_s=30.0), 10)  # posting idle: at once
        with first.batch():
            waiting = asyncio.ensure_future(first.turn(quiet_s=0.01, max_wait_s=30.0))
            await asyncio.sleep(0.2)
            assert not waiting.done(), "posting is working: the feed waits"
        await asyncio.wait_for(waiting, 10)  # posting quiet: the feed's turn
        bounded = PostingActivity()
        with bounded.batch():
            await asyncio.wait_for(bounded.turn(quiet_s=0.01, max_wait_s=0.05), 10)  # a burst never stops the feed for good

    asyncio.run(scenario())


def test_waiting_for_a_feed_that_stopped_raises_instead_of_waiting_for_ever():
    from streams.ledger_feed import FeedStopped

    async def scenario():
        feed, target = make({0: (0, 10)}, {0})
        waiting = asyncio.ensure_future(feed.caught_up([0], poll_s=5))
        await asyncio.sleep(0.01)
        feed.stopped = True  # as run() leaves it
        feed._advance()
        try:
            await asyncio.wait_for(waiting, 1)
        except FeedStopped:
            return
        raise AssertionError("caught_up returned for a feed that stopped before following")

    asyncio.run(scenario())
