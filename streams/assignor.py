"""faust's partition assignor, for workers that keep their static id when their address changes.

A worker joins its group as a static member (consumer_group_instance_id = ESEP_WORKER_ID), so that a
restart is not a rebalance: when a known static member rejoins a stable group, the broker hands it
the assignment the group's leader computed for it last time (KIP-345), without asking the leader
again. faust's assignor puts the member's URL (its web host and port) into the assignment's user
data and, in `on_assignment`, asserts that the URL it gets back is its own. A worker restarted with
another web port (a container with a new address) gets its old URL back: the AssertionError kills
aiokafka's coordination task, and the worker consumes nothing until a later rebalance (65-195 s
measured, issue 14).

The URL in the assignment only tells faust's table router where each partition's table lives; this
worker has no faust tables (its stores are its own, reached by nobody over HTTP). So the assignor
accepts an assignment made for its previous address: it puts its own URL in its copy of the
metadata and keeps the partitions it was given, which is what static membership is for. The other
members still hold the old URL in their routing maps until the next rebalance; nothing reads them."""
from __future__ import annotations

import logging

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientMetadata

log = logging.getLogger("esep.assignor")


class StaticMemberAssignor(PartitionAssignor):
    """faust's PartitionAssignor that accepts the assignment of its previous address."""

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        metadata = ClientMetadata.loads(self._decompress(assignment.user_data))
        url = str(self._url)
        if metadata.url != url:
            log.info("the group handed this static member the assignment made for its previous address %s; "
                     "keeping the partitions at the new address %s", metadata.url, url)
            assignment = ConsumerProtocolMemberAssignment(
                assignment.version, assignment.assignment, self._compress(readdressed(metadata, url).dumps()))
        super().on_assignment(assignment)


def readdressed(metadata: ClientMetadata, url: str) -> ClientMetadata:
    """The same metadata for a member now at `url`: its own entries in the distributions follow it."""
    old = metadata.url

    def moved(distribution):
        return {url if host == old else host: tps for host, tps in distribution.items()}

    return ClientMetadata(
        assignment=metadata.assignment,
        url=url,
        changelog_distribution=moved(metadata.changelog_distribution),
        external_topic_distribution=moved(metadata.external_topic_distribution),
        topic_groups=metadata.topic_groups,
    )
