"""Domain metrics (prometheus-client). Labels are bounded enums (outcomes, reason codes, KNPs,
error kinds): never an IIN, a name, a payer or a notification id."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds from 5 ms to 2 days: posting is milliseconds, a registry-lag hold can be hours.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600,
    3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600,
)

notifications = Counter(
    "esep_notifications_total", "Credit notifications by outcome", ["outcome"], registry=REGISTRY
)
lines = Counter("esep_lines_total", "Order lines decided, by outcome and reason", ["outcome", "reason"], registry=REGISTRY)
orders = Counter("esep_orders_total", "Orders decided, by status", ["status"], registry=REGISTRY)
amount_posted = Counter("esep_amount_posted_tenge_total", "Tenge posted, by KNP", ["knp"], registry=REGISTRY)
amount_refunded = Counter("esep_amount_refunded_tenge_total", "Tenge refunded, by KNP", ["knp"], registry=REGISTRY)
dead_letters = Counter(
    "esep_dead_letters_total", "Records dead-lettered, by source and error kind", ["source", "error_kind"],
    registry=REGISTRY,
)
batches = Histogram(
    "esep_batch_notifications", "Notifications per processed batch", buckets=(1, 5, 10, 25, 50, 100, 200, 500),
    registry=REGISTRY,
)
latency_received = Histogram(
    "esep_posting_latency_from_received_seconds", "Bank received_at to decision", buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
latency_ingest = Histogram(
    "esep_posting_latency_from_ingest_seconds", "Kafka ingest timestamp to decision", buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
deadline_breaches = Counter(
    "esep_deadline_breaches_total", "Lines decided after their business-day deadline (must stay 0)",
    registry=REGISTRY,
)
registry_records = Counter(
    "esep_registry_records_total", "Registry records applied to the replica, by kind", ["kind"], registry=REGISTRY
)
registry_ready = Gauge("esep_registry_ready", "1 once the registry replica reached its high watermark", registry=REGISTRY)
output_retries = Counter(
    "esep_output_retries_total", "Batches whose sends failed and were retried", ["stage"], registry=REGISTRY
)
