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


# Largest record a topic takes. An order within the input bounds can be over Kafka's 1 MB default
# (5,600 lines of long names: 1.01 MB), and what esep writes for it is larger still (its whole-order
# refund 1.16 MB, its dead letter in base64 1.35 MB): outputs get room for four times the input's.
INPUT_RECORD_MAX_BYTES = 2 * 1024 * 1024
OUTPUT_RECORD_MAX_BYTES = 4 * INPUT_RECORD_MAX_BYTES


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    # The ledger is the record from which anything can be recounted (contract, Part 2): a broker's
    # default retention (7 days) would delete it.
    kept_forever: bool = False
    max_record_bytes: int = OUTPUT_RECORD_MAX_BYTES

    @property
    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": "compact"} if self.compacted else {}
        configs["max.message.bytes"] = str(self.max_record_bytes)
        if self.kept_forever:
            configs["retention.ms"] = "-1"
        return configs


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    n = settings.partitions
    return [
        TopicSpec(t.credit_notifications, n, max_record_bytes=INPUT_RECORD_MAX_BYTES),
        # The decisions changelog is co-partitioned with the notifications it records.
        TopicSpec(t.decisions, n, compacted=True),
        TopicSpec(t.registry_persons, n, compacted=True, max_record_bytes=INPUT_RECORD_MAX_BYTES),
        TopicSpec(t.posted_contributions, n, kept_forever=True),
        TopicSpec(t.refunds, n, kept_forever=True),
        TopicSpec(t.order_results, n, kept_forever=True),
        # What was not posted, with the record as received: the notifications themselves expire.
        TopicSpec(t.dead_letters, n, kept_forever=True),
        TopicSpec(t.deceased_alerts, n),
        TopicSpec(t.registry_changes, n),
        # Person histories follow the registry's partitioning (same key, same partition count).
        TopicSpec(t.registry_history, n, compacted=True),
        *recipients_topic_specs(settings),
        *reversals_topic_specs(settings),
        # Personal accounts (issue 13): refund lines re-keyed by IIN and the accounts' changelog are
        # co-partitioned with the IIN-keyed ledger topics; the audit trail is kept like the ledgers.
        TopicSpec(t.account_refund_lines, n),
        TopicSpec(t.accounts_changelog, n, compacted=True),
        TopicSpec(t.audit_access, n, kept_forever=True),
        # The monthly report: every version kept (not compacted); the partials' latest per key on one
        # partition (its one reader assembles); payers re-keyed, and the streams' state changelog with
        # the inputs' partition numbers.
        TopicSpec(t.reports_monthly, 1, kept_forever=True),
        TopicSpec(t.report_partials, 1, compacted=True),
        TopicSpec(t.report_payers, n),
        TopicSpec(t.report_changelog, n, compacted=True),
    ]


def recipients_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The recipients ledger: both inputs keyed by IIN and its state changelog co-partitioned (same
    N: partition p of each holds the same persons); its ledger topics kept forever."""
    t = settings.topics
    n = settings.partitions
    return [
        TopicSpec(t.payment_decisions, n, max_record_bytes=INPUT_RECORD_MAX_BYTES),
        TopicSpec(t.payment_transfers, n, max_record_bytes=INPUT_RECORD_MAX_BYTES),
        TopicSpec(t.recipients_state, n, compacted=True),
        TopicSpec(t.decision_results, n, kept_forever=True),
        TopicSpec(t.recipient_accounts, n, compacted=True),
        TopicSpec(t.social_payments, n, kept_forever=True),
        TopicSpec(t.overpayments, n, kept_forever=True),
    ]


def reversals_topic_specs(settings: Settings) -> list[TopicSpec]:
    """Refunds of posted contributions: the decisions come keyed by IIN like posted.contributions,
    and the agent's state changelog is written with the input's partition: one group of N. Its
    ledger topics are kept forever (fund.decision-results is the recipients ledger's too)."""
    t = settings.topics
    n = settings.partitions
    return [
        TopicSpec(t.refund_decisions, n),
        TopicSpec(t.reversals_state, n, compacted=True),
        TopicSpec(t.posted_reversals, n, kept_forever=True),
        TopicSpec(t.refunds_reversals, n, kept_forever=True),
    ]


def reversal_group(settings: Settings) -> list[str]:
    """The reversals agent's inputs and its state changelog: partition p of each holds the same IINs;
    and the recipients ledger's input, whose states in partition p give PERIOD_USED_FOR_PAYMENT."""
    t = settings.topics
    return [t.posted_contributions, t.refund_decisions, t.reversals_state, t.payment_decisions]


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
                NewTopic(s.name, s.partitions, settings.replication, topic_configs=s.configs)
                for s in missing
            ]
            try:
                admin.create_topics(new, timeout_ms=30000)
            except TopicAlreadyExistsError:
                pass  # another worker created them first
        keep_forever(admin, [s.name for s in specs if s.kept_forever and s not in missing])
        pair = [settings.topics.credit_notifications, settings.topics.decisions]
        counts = partition_counts(admin, pair)
        if len(set(counts.values())) != 1:
            raise RuntimeError(
                f"{pair[0]} and {pair[1]} must have the same number of partitions, found {counts}: "
                f"recreate {pair[1]} with {counts[pair[0]]} partitions"
            )
        check_copartitioned(admin, [settings.topics.payment_decisions, settings.topics.payment_transfers,
                                    settings.topics.recipients_state])
        check_copartitioned(admin, reversal_group(settings))
        return [s.name for s in missing]
    finally:
        admin.close()


def partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    described = admin.describe_topics(names)
    return {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}


def keep_forever(admin: KafkaAdminClient, names: list[str]) -> None:
    """retention.ms=-1 on ledger topics created before it was the rule (only that key is set)."""
    if not names:
        return
    from kafka.admin import ConfigResource, ConfigResourceType

    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n, {"retention.ms": None})
                                            for n in names], config_filter="all")
        current = described["topic"]
        stale = [n for n in names if str(current.get(n, {}).get("retention.ms", {}).get("value")) != "-1"]
        if stale:
            done = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, n, {"retention.ms": "-1"})
                                        for n in stale], raise_on_unknown=False)
            failed = {n: r for n, r in done.get("topic", {}).items() if r != "OK"}
            if failed:
                raise RuntimeError(str(failed))
            log.warning("ledger topics %s were not kept forever: retention.ms set to -1", ", ".join(stale))
    except Exception as exc:  # noqa: BLE001 - the worker can still post; the operator must fix this
        log.error("could not make the ledger topics %s keep their records forever (retention.ms=-1): %s: %s",
                  ", ".join(names), type(exc).__name__, exc)


def check_copartitioned(admin: KafkaAdminClient, names: list[str]) -> None:
    """Topics one agent decides together, and the changelog written with their partition numbers:
    a mismatch would split a person's records between workers."""
    counts = partition_counts(admin, names)
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"{', '.join(names)} must have the same number of partitions, found {counts}: "
                           f"recreate the ones that differ")
