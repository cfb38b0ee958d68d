"""The assignor accepts the assignment a static member got at its previous address (issue 14)."""
from __future__ import annotations

import faust
import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from streams.assignor import StaticMemberAssignor

TOPIC = "bank.credit-notifications"
OLD_URL = "http://127.0.0.1:6066"


def make_app(port: int, assignor=StaticMemberAssignor) -> faust.App:
    return faust.App("esep-assignor-test", broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False,
                     web_host="127.0.0.1", web_port=port, PartitionAssignor=assignor)


def cached_assignment(url: str, partitions: list[int], other_url: str = "http://127.0.0.1:7000"):
    """What the broker hands a rejoining static member: the assignment made for it last time."""
    mine = ClientAssignment(actives={TOPIC: partitions}, standbys={})
    metadata = ClientMetadata(
        assignment=mine, url=url,
        changelog_distribution={url: {}, other_url: {}},
        external_topic_distribution={url: {TOPIC: partitions}, other_url: {TOPIC: [3]}},
        topic_groups={TOPIC: 0},
    )
    return ConsumerProtocolMemberAssignment(
        4, [ConsumerProtocolMemberAssignment.Assignment(TOPIC, partitions)],
        PartitionAssignor._compress(metadata.dumps()))


def test_faust_own_assignor_refuses_the_assignment_of_the_previous_address():
    # The failure of issue 14, reproduced without a broker: if faust ever accepts it, this module can go.
    app = make_app(7311, PartitionAssignor)
    with pytest.raises(AssertionError):
        app.assignor.on_assignment(cached_assignment(OLD_URL, [0, 1, 2]))


def test_the_partitions_assigned_at_the_previous_address_are_kept():
    app = make_app(7311)
    assert isinstance(app.assignor, StaticMemberAssignor)
    app.assignor.on_assignment(cached_assignment(OLD_URL, [0, 2]))
    assert {(tp.topic, tp.partition) for tp in app.assignor.assigned_actives()} == {(TOPIC, 0), (TOPIC, 2)}
    new_url = str(app.conf.canonical_url)
    assert new_url.endswith(":7311")
    # Its own partitions are now listed under its new address, the other member's are unchanged.
    assert app.assignor.external_topics_metadata() == {new_url: {TOPIC: [0, 2]}, "http://127.0.0.1:7000": {TOPIC: [3]}}


def test_an_assignment_for_the_same_address_is_taken_as_faust_takes_it():
    app = make_app(7312)
    url = str(app.conf.canonical_url)
    app.assignor.on_assignment(cached_assignment(url, [1]))
    assert {tp.partition for tp in app.assignor.assigned_actives()} == {1}
    assert set(app.assignor.external_topics_metadata()) == {url, "http://127.0.0.1:7000"}
