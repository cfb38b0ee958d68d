"""Background work yields to posting (streams/yielding.py): the registry-change publisher pauses after
a batch while posting is busy, in proportion to what the batch took, and not at all when posting idles."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import registry_changes
from streams.yielding import BACKGROUND_SHARE, MAX_PAUSE_S, PostingActivity, pause_after


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_posting_is_busy_during_a_batch_and_shortly_after():
    clock = FakeClock()
    posting = PostingActivity(clock, idle_after_s=0.5)
    assert not posting.busy()  # never posted
    posting.begin()
    clock.now += 10.0  # a long batch: busy all along
    assert posting.busy()
    posting.end()
    clock.now += 0.4
    assert posting.busy()  # between two batches of a backlog
    clock.now += 0.2
    assert not posting.busy()


@given(st.floats(min_value=1e-4, max_value=0.1), st.floats(min_value=0.01, max_value=0.9))
def test_a_pause_keeps_the_background_to_its_share(spent, share):
    pause = pause_after(spent, share, max_pause_s=1e9)
    assert spent / (spent + pause) == pytest.approx(share)


def test_a_pause_is_bounded_and_none_for_no_work():
    assert pause_after(10.0) == MAX_PAUSE_S
    assert pause_after(0.0) == 0.0
    assert pause_after(0.01, share=1.0) == 0.0


def _publisher(posting):
    publisher = registry_changes.RegistryChangePublisher.__new__(registry_changes.RegistryChangePublisher)
    publisher.posting = posting
    return publisher


@pytest.mark.parametrize("busy, expected", [(True, 0.04 * (1 - BACKGROUND_SHARE) / BACKGROUND_SHARE), (False, 0.0)])
def test_the_publisher_pauses_only_while_posting_is_busy(monkeypatch, busy, expected):
    clock = FakeClock()
    posting = PostingActivity(clock)
    if busy:
        posting.begin()
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(registry_changes.asyncio, "sleep", sleep)
    asyncio.run(_publisher(posting).yield_to_posting(0.04))
    assert slept == [pytest.approx(expected)]


def test_a_publisher_without_posting_never_pauses(monkeypatch):
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(registry_changes.asyncio, "sleep", sleep)
    asyncio.run(_publisher(None).yield_to_posting(0.04))
    assert slept == [0.0]


def test_posting_with_notifications_waiting_is_busy_long_after_its_last_batch():
    clock = FakeClock()
    waiting = [0]
    posting = PostingActivity(clock, idle_after_s=0.5, backlog=lambda: waiting[0])
    posting.begin()
    posting.end()
    clock.now += 5.0  # the other agents' turns on a loaded machine
    assert not posting.busy()
    waiting[0] = 120
    assert posting.busy()
