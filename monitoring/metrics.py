"""Domain metrics (prometheus-client), served at each worker's `/metrics`.

Labels are bounded enums (outcomes, reason codes, KNPs, error kinds, topic and partition numbers):
never an IIN, a name, a payer or a notification id. Amounts are exported in tenge as floats: a
metric is an observation, never money the engine computes with."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds from 5 ms to 2 days: posting takes milliseconds, a registry-lag hold can take a day.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600,
    3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600,
)

notifications = Counter(
    "esep_notifications_total",
    "Credit notifications by outcome: decided, redelivered (re-emitted from its record), duplicate "
    "(repeat of a known notification_id, ignored), rerouted (re-keyed), dead_letter",
    ["outcome"], registry=REGISTRY,
)
lines = Counter("esep_lines_total", "Order lines decided, by outcome (posted, refunded) and reason",
                ["outcome", "reason"], registry=REGISTRY)
orders = Counter("esep_orders_total", "Orders decided, by status", ["status"], registry=REGISTRY)
amount_posted = Counter("esep_amount_posted_tenge_total", "Tenge posted, by KNP", ["knp"], registry=REGISTRY)
amount_refunded = Counter("esep_amount_refunded_tenge_total", "Tenge refunded, by KNP", ["knp"], registry=REGISTRY)
dead_letters = Counter("esep_dead_letters_total", "Records dead-lettered, by source and error kind",
                       ["source", "error_kind"], registry=REGISTRY)
deadline_breaches = Counter(
    "esep_deadline_breaches_total", "Lines decided after their business-day deadline (must stay 0)",
    registry=REGISTRY,
)
pending_lines = Gauge("esep_pending_lines", "Lines held for the registry (registry-lag hold)", registry=REGISTRY)
pending_oldest_age = Gauge(
    "esep_pending_oldest_age_seconds", "Age of the oldest held line since its received_at (0 when none)",
    registry=REGISTRY,
)
pending_next_cutoff = Gauge(
    "esep_pending_next_cutoff_seconds", "Seconds until the earliest cut-off of a held line (0 when none)",
    registry=REGISTRY,
)
latency_received = Histogram(
    "esep_posting_latency_from_received_seconds", "Bank received_at to the order's decision",
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
latency_ingest = Histogram(
    "esep_posting_latency_from_ingest_seconds", "Kafka ingest timestamp to the order's decision",
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
batches = Histogram("esep_batch_notifications", "Notifications per processed batch",
                    buckets=(1, 5, 10, 25, 50, 100, 200, 500), registry=REGISTRY)
consumer_lag = Gauge("esep_consumer_lag_messages", "Messages behind the high watermark, per topic-partition",
                     ["topic", "partition"], registry=REGISTRY)
registry_persons = Gauge("esep_registry_persons", "Persons in the registry replica (estimate)", registry=REGISTRY)
store_memory = Gauge("esep_store_memory_bytes", "Memory of the worker's stores, by part: the shared block cache "
                     "(cache) and the memtables (write_buffers), against ESEP_STORE_CACHE_MB and "
                     "ESEP_STORE_WRITE_BUFFER_MB", ["part"], registry=REGISTRY)
registry_records = Counter("esep_registry_records_total", "Registry records applied, by kind (upsert, delete, rejected)",
                           ["kind"], registry=REGISTRY)
registry_changes = Counter("esep_registry_changes_total", "Personal-data changes published, by kind",
                           ["kind"], registry=REGISTRY)
registry_ready = Gauge("esep_registry_ready", "1 once the registry replica reached its high watermark",
                       registry=REGISTRY)
rebalances = Counter("esep_rebalances_total", "Partition assignments received by this worker", registry=REGISTRY)
recovery_seconds = Histogram("esep_recovery_seconds", "State recovery duration, by store", ["store"],
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=REGISTRY)
partitions_owned = Gauge("esep_partitions_owned", "Input partitions assigned to this worker", registry=REGISTRY)
output_retries = Counter("esep_output_retries_total", "Sends that failed and were retried, by stage", ["stage"],
                         registry=REGISTRY)
calendar_days_known_ahead = Gauge(
    "esep_calendar_days_known_ahead",
    "Days from today (Asia/Almaty) to the first day whose non-working days are not published in full "
    "in the worker's calendar (a missing or provisional year); 0 or less: today's year is not known",
    registry=REGISTRY,
)
worker_info = Info("esep_worker", "Worker identity and version", registry=REGISTRY)
ledger_records = Counter(
    "esep_ledger_records_total",
    "Records of the keyed ledgers (recipients, reversals) by input and outcome: decided, held, redelivered "
    "(re-emitted from its record), redelivered_acked (outputs already acknowledged), duplicate (repeat of a "
    "known id), rerouted (re-keyed to its IIN), dead_letter",
    ["input", "outcome"], registry=REGISTRY,
)
ledger_batches = Histogram("esep_ledger_batch_records", "Records per batch of the keyed ledgers", ["store"],
                           buckets=(1, 5, 10, 25, 50, 100, 200, 500), registry=REGISTRY)
# ---- the recipients ledger (contract, Part 2) ---------------------------------------------------------
fund_decisions = Counter(
    "esep_fund_decisions_total", "The Fund's decisions on social payments, by payment type, decision, status "
    "(applied, rejected) and reason (ILLEGAL_TRANSITION, RECIPIENT_MISMATCH, or empty)",
    ["payment_type", "decision", "status", "reason"], registry=REGISTRY,
)
fund_transfers = Counter(
    "esep_fund_transfers_total", "Transfers of the Fund by payment type, kind (payment, return), outcome (covered, "
    "partly_overpaid, overpaid; applied, partly_unmatched, unmatched; held: waiting for a decision, counted again "
    "when decided) and reason",
    ["payment_type", "kind", "outcome", "reason"], registry=REGISTRY,
)
social_paid = Counter("esep_social_paid_tenge_total", "Gross of posted social payments, covered or not, by payment "
                      "type", ["payment_type"], registry=REGISTRY)
social_overpaid = Counter("esep_social_overpaid_tenge_total", "Overpaid part of posted payments, by payment type",
                          ["payment_type"], registry=REGISTRY)
social_returned = Counter("esep_social_returned_tenge_total", "Gross of posted returns, matched or not, by payment type",
                          ["payment_type"], registry=REGISTRY)
overpaid_outstanding = Gauge(
    "esep_overpaid_outstanding_tenge", "Overpayments still to recover in the partitions this worker owns (sum over "
    "workers: the whole ledger), by payment type", ["payment_type"], registry=REGISTRY,
)
held_transfers = Gauge("esep_held_transfers", "Social payments held for a decision (recipients lag hold) in the "
                       "partitions this worker owns", registry=REGISTRY)
held_next_cutoff = Gauge("esep_held_transfers_next_cutoff_seconds", "Seconds until the earliest cut-off of a held "
                         "social payment (0 when none, or when it passed)", registry=REGISTRY)

# Refunds of posted contributions (issue 11): the reversals agent over fund.refund-decisions. Its
# records by outcome (decided, waiting, redelivered, duplicate, ...) are esep_ledger_records_total.
refund_results = Counter("esep_refund_results_total", "Refund decisions decided, by status (applied, rejected)",
                         ["status"], registry=REGISTRY)
reversal_entries = Counter(
    "esep_reversal_entries_total",
    "Entries named by decided refund decisions, by outcome (reversed, rejected) and rejection reason",
    ["outcome", "reason"], registry=REGISTRY,
)
amount_reversed = Counter("esep_amount_reversed_tenge_total", "Tenge reversed (refunded to payers), by KNP",
                          ["knp"], registry=REGISTRY)
refund_decisions_waiting = Gauge(
    "esep_refund_decisions_waiting", "Refund decisions waiting for an entry not yet posted", registry=REGISTRY,
)
refund_oldest_wait = Gauge(
    "esep_refund_decisions_oldest_wait_seconds",
    "Age of the oldest waiting refund decision since its received_at (0 when none)", registry=REGISTRY,
)
# Personal accounts and the statement API (issue 13). `endpoint` is a route name (account, statement,
# audit, openapi, other), never a path: paths carry IINs.
account_records = Counter(
    "esep_account_records_total",
    "Ledger records applied to personal accounts, by source and outcome (applied, duplicate, conflict: the "
    "same id with other content, an upstream fault; rejected: not an account's record)",
    ["source", "outcome"], registry=REGISTRY,
)
accounts_partitions_ready = Gauge(
    "esep_accounts_partitions_ready", "Owned account partitions restored and served (the others answer 503)",
    registry=REGISTRY,
)
api_requests = Counter("esep_api_requests_total", "Statement API requests answered by this worker, by endpoint "
                       "and status", ["endpoint", "status"], registry=REGISTRY)
api_seconds = Histogram("esep_api_request_seconds", "Statement API requests answered by this worker, by endpoint "
                        "(forwarded ones included, from arrival to answer)", ["endpoint"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY)
api_forwarded = Counter(
    "esep_api_forwarded_total",
    "Statement API requests for an account of another worker's partition, by outcome (answered by the owner; "
    "unreachable: 503 here; no_owner: no assignment known, 503 here)",
    ["outcome"], registry=REGISTRY,
)

# ---- the monthly report (contract Part 2, reports.monthly; docs/report-pipeline.md) ------------------
# `month` (YYYY-MM, open months only) and `version` (preliminary, final, revised) are bounded labels.
report_records = Counter("esep_report_records_total",
                         "Output records read by the report streams, by source and outcome (counted, repeat: an id "
                         "already counted or not counted by its source, unreadable)",
                         ["source", "outcome"], registry=REGISTRY)
report_batch_seconds = Histogram("esep_report_batch_seconds",
                                 "Report stream batches: counting, the transaction and the store write",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY)
report_process_restarts = Counter("esep_report_process_restarts_total",
                                  "Times the report streams' process exited and was started again (ESEP_REPORTS=on)",
                                  registry=REGISTRY)
report_partials_published = Counter("esep_report_partials_published_total",
                                    "Partials (and partition progress records) written to reports.partials",
                                    registry=REGISTRY)
report_partials_received = Counter("esep_report_partials_received_total",
                                   "Partials read by the assembler (on the worker that assembles)", registry=REGISTRY)
report_partials_held = Gauge("esep_report_partials_held", "Partition partials the assembler holds, per open month",
                             ["month"], registry=REGISTRY)
report_months_open = Gauge("esep_report_months_open",
                           "Months counted whose final is not published, or that changed since their last version",
                           registry=REGISTRY)
report_versions = Counter("esep_report_versions_published_total", "Report versions published, by version",
                          ["version"], registry=REGISTRY)
report_last_version = Gauge("esep_report_last_version_timestamp_seconds",
                            "generated_at of the last version published (one series: its month and version)",
                            ["month", "version"], registry=REGISTRY)
report_last_version_age = Gauge("esep_report_last_version_age_seconds",
                                "Report clock minus generated_at of the last version published", registry=REGISTRY)
report_version_late = Gauge("esep_report_version_late_seconds",
                            "How far past its due time the most overdue report version is (0 when none is)",
                            registry=REGISTRY)
report_assembler = Gauge("esep_report_assembler", "1 on the worker that assembles the monthly reports",
                         registry=REGISTRY)
