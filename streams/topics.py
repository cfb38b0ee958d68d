"""Creating the topics: faust creates only its internal topics, and the broker must not auto-create
ours with one partition, so every topic is declared here with its partitions and cleanup policy."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from .settings import Settings

log = logging.getLogger("esep.topics")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None  # -1: kept forever (contract Part 2's ledger topics)

    def configs(self) -> dict[str, str]:
        out = {"cleanup.policy": "compact"} if self.compacted else {}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        return out


FOREVER = -1


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    n = settings.partitions
    return [
        TopicSpec(t.credit_notifications, n),
        # The decisions changelog is co-partitioned with the notifications it records.
        TopicSpec(t.decisions, n, compacted=True),
        TopicSpec(t.registry_persons, n, compacted=True),
        TopicSpec(t.posted_contributions, n),
        TopicSpec(t.refunds, n),
        TopicSpec(t.order_results, n),
        TopicSpec(t.dead_letters, n),
        TopicSpec(t.deceased_alerts, n),
        TopicSpec(t.registry_changes, n),
        # Person histories follow the registry's partitioning (same key, same partition count).
        TopicSpec(t.registry_history, n, compacted=True),
        # Refunds of posted contributions: the decisions come keyed by IIN like posted.contributions,
        # and the agent's state changelog is written with the input's partition: one group of N.
        TopicSpec(t.refund_decisions, n),
        TopicSpec(t.reversals_state, n, compacted=True),
        TopicSpec(t.posted_reversals, n, retention_ms=FOREVER),
        TopicSpec(t.refunds_reversals, n, retention_ms=FOREVER),
        TopicSpec(t.decision_results, n, retention_ms=FOREVER),
    ]


def reversal_group(settings: Settings) -> list[str]:
    """The reversals agent's inputs and its state changelog: partition p of each holds the same IINs."""
    t = settings.topics
    return [t.posted_contributions, t.refund_decisions, t.reversals_state]


def check_copartitioned(admin: KafkaAdminClient, group: list[str]) -> None:
    counts = partition_counts(admin, group)
    if len(set(counts.values())) != 1:
        raise RuntimeError(
            f"{', '.join(group)} must have the same number of partitions, found {counts}: "
            f"recreate the others with {counts[group[0]]} partitions"
        )


def admin_client(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="esep-admin",
        request_timeout_ms=30000,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=500,
    )


def ensure_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create the missing topics; returns the names created. Fails loudly when an existing topic
    of the notifications/decisions pair has another partition count (co-partitioning is required)."""
    specs = topic_specs(settings)
    admin = admin_client(bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            new = [
                NewTopic(
                    s.name,
                    s.partitions,
                    settings.replication,
                    topic_configs=s.configs(),
                )
                for s in missing
            ]
            try:
                admin.create_topics(new, timeout_ms=30000)
            except TopicAlreadyExistsError:
                pass  # another worker created them first
        pair = [settings.topics.credit_notifications, settings.topics.decisions]
        counts = partition_counts(admin, pair)
        if len(set(counts.values())) != 1:
            raise RuntimeError(
                f"{pair[0]} and {pair[1]} must have the same number of partitions, found {counts}: "
                f"recreate {pair[1]} with {counts[pair[0]]} partitions"
            )
        check_copartitioned(admin, reversal_group(settings))
        return [s.name for s in missing]
    finally:
        admin.close()


def partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    described = admin.describe_topics(names)
    return {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}
