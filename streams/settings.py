"""Configuration: environment variables only, read once. The README's configuration table lists
every variable here; `esep config` prints the values in force."""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field, fields
from collections.abc import Mapping
from pathlib import Path

from rules import holds

DEFAULT_TOPICS = {
    "credit_notifications": "bank.credit-notifications",
    "registry_persons": "registry.persons",
    "posted_contributions": "posted.contributions",
    "refunds": "refunds.to-payers",
    "order_results": "orders.results",
    "dead_letters": "errors.dead-letters",
    "deceased_alerts": "alerts.deceased-contributions",
    "registry_changes": "registry.changes",
    "decisions": "esep.decisions",
    "registry_history": "esep.registry-history",
    # The recipients ledger (contract, Part 2).
    "payment_decisions": "fund.payment-decisions",
    "payment_transfers": "fund.payment-transfers",
    "decision_results": "fund.decision-results",
    "recipient_accounts": "recipients.accounts",
    "social_payments": "posted.social-payments",
    "overpayments": "fund.overpayments",
    "recipients_state": "esep.recipients-state",
    # Refunds of posted contributions (contract Part 2; the reversals agent).
    "refund_decisions": "fund.refund-decisions",
    "posted_reversals": "posted.reversals",
    "refunds_reversals": "refunds.reversals",
    "reversals_state": "esep.reversals-state",
    # Personal accounts and the statement API (issue 13).
    "account_refund_lines": "esep.account-refund-lines",
    "accounts_changelog": "esep.accounts-changelog",
    "audit_access": "audit.access",
    # The monthly report (contract Part 2, reports.monthly; docs/report-pipeline.md).
    "reports_monthly": "reports.monthly",
    "report_partials": "reports.partials",
    "report_payers": "esep.report-payers",
    "report_changelog": "esep.report-changelog",
}
PENDING_MODES = holds.MODES
# ESEP_REPORTS: on (the report streams in a process of their own), inline (in the worker's event loop), off.
REPORT_MODES = ("on", "inline", "off")


class SettingsError(ValueError):
    pass


def _env(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = (os.environ if environ is None else environ).get(name)
    return default if value is None or value == "" else value


def _int(name: str, default: int, minimum: int = 0, environ: Mapping[str, str] | None = None) -> int:
    raw = _env(name, str(default), environ)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _float(name: str, default: float, minimum: float = 0.0, environ: Mapping[str, str] | None = None) -> float:
    raw = _env(name, str(default), environ)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...], environ: Mapping[str, str] | None = None) -> str:
    value = _env(name, default, environ)
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _existing_file(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    raw = _env(name, "", environ)
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(f"{name}={raw!r} is not a file")
    return path


# Ledger topics a personal account is built from (issue 13), by the name ESEP_ACCOUNT_SOURCES uses.
ACCOUNT_SOURCES = ("contributions", "refunds", "reversals", "social_payments", "overpayments")


def _sources(name: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The sources named (default all); `none`: this deployment keeps no accounts."""
    raw = _env(name, ",".join(ACCOUNT_SOURCES), environ)
    if raw.strip() == "none":
        return ()
    chosen = tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    unknown = [s for s in chosen if s not in ACCOUNT_SOURCES]
    if unknown:
        raise SettingsError(f"{name}: {', '.join(unknown)} unknown; choose from {', '.join(ACCOUNT_SOURCES)} or none")
    return chosen


def _path(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    raw = _env(name, "", environ)
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class Topics:
    credit_notifications: str
    registry_persons: str
    posted_contributions: str
    refunds: str
    order_results: str
    dead_letters: str
    deceased_alerts: str
    registry_changes: str
    decisions: str
    registry_history: str
    payment_decisions: str
    payment_transfers: str
    decision_results: str
    recipient_accounts: str
    social_payments: str
    overpayments: str
    recipients_state: str
    refund_decisions: str
    posted_reversals: str
    refunds_reversals: str
    reversals_state: str
    account_refund_lines: str
    accounts_changelog: str
    audit_access: str
    reports_monthly: str
    report_partials: str
    report_payers: str
    report_changelog: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Topics":
        return cls(**{k: _env(f"ESEP_TOPIC_{k.upper()}", v, environ) for k, v in DEFAULT_TOPICS.items()})


@dataclass(frozen=True)
class Settings:
    broker: str  # "" = the local broker of `esep kafka start`
    data_dir: Path
    worker_id: str
    app_id: str
    web_port: int
    web_bind: str
    partitions: int
    replication: int
    batch_size: int
    batch_within_s: float
    session_timeout_s: float
    commit_interval_s: float
    kafka_version: str
    log_level: str
    pending: str
    hold_cutoff_min: float
    hold_check_s: float
    store_cache_mb: int
    store_write_buffer_mb: int
    topics: Topics = field(default_factory=Topics.from_env)
    calendar_file: Path | None = None  # None: the calendar shipped in rules/data
    web_url: str = ""  # "": http://127.0.0.1:<web_port> (https under TLS)
    account_sources: tuple[str, ...] = ACCOUNT_SOURCES
    # The monthly report: its streams and assembler run in every worker unless off (bench: the cost).
    reports: bool = True
    report_process: bool = True  # the report streams in a process of their own (streams/report_process.py)
    report_final_business_days: int = 5
    report_partial_interval_s: float = 2.0
    # Tests and drills only: a file holding the instant the report schedule takes as now.
    report_clock_file: Path | None = None
    stall_s: float = 300.0  # an agent with input waiting and no batch finished this long fails the worker; 0: never
    registry_load_processes: int = 0  # processes judging a large registry catch-up; 0: the worker's own
    malloc_arenas: int = 2  # glibc malloc arenas (streams/heap.py); 0: glibc's default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        e = environ
        return cls(
            broker=_env("ESEP_BROKER", "", e),
            data_dir=Path(_env("ESEP_DATA_DIR", str(Path.home() / ".local" / "share" / "esep"), e)).expanduser(),
            worker_id=_env("ESEP_WORKER_ID", socket.gethostname(), e),
            app_id=_env("ESEP_APP_ID", "esep", e),
            web_port=_int("ESEP_WEB_PORT", 6066, 1, e),
            web_bind=_env("ESEP_WEB_BIND", "127.0.0.1", e),
            partitions=_int("ESEP_PARTITIONS", 4, 1, e),
            replication=_int("ESEP_REPLICATION", 1, 1, e),
            batch_size=_int("ESEP_BATCH_SIZE", 200, 1, e),
            batch_within_s=_float("ESEP_BATCH_WITHIN_MS", 10.0, 0.0, e) / 1000.0,
            session_timeout_s=_float("ESEP_SESSION_TIMEOUT_S", 10.0, 1.0, e),
            commit_interval_s=_float("ESEP_COMMIT_INTERVAL_S", 2.8, 0.1, e),
            kafka_version=_env("ESEP_KAFKA_VERSION", "3.9.1", e),
            log_level=_env("ESEP_LOG_LEVEL", "info", e).lower(),
            pending=_choice("ESEP_PENDING", holds.DEFAULT_MODE, PENDING_MODES, e),
            hold_cutoff_min=_float("ESEP_HOLD_CUTOFF_MIN", holds.DEFAULT_MARGIN_MIN, 0.0, e),
            hold_check_s=_float("ESEP_HOLD_CHECK_S", 10.0, 0.1, e),
            # One block cache and one memtable budget shared by all of a worker's stores (tables/budget.py).
            store_cache_mb=_int("ESEP_STORE_CACHE_MB", 64, 1, e),
            store_write_buffer_mb=_int("ESEP_STORE_WRITE_BUFFER_MB", 32, 4, e),
            topics=Topics.from_env(e),
            calendar_file=_existing_file("ESEP_CALENDAR_FILE", e),
            web_url=_env("ESEP_WEB_URL", "", e).rstrip("/"),
            account_sources=_sources("ESEP_ACCOUNT_SOURCES", e),
            reports=_choice("ESEP_REPORTS", "on", REPORT_MODES, e) != "off",
            report_process=_choice("ESEP_REPORTS", "on", REPORT_MODES, e) == "on",
            report_final_business_days=_int("ESEP_REPORT_FINAL_BUSINESS_DAYS", 5, 0, e),
            report_partial_interval_s=_float("ESEP_REPORT_PARTIAL_INTERVAL_S", 2.0, 0.05, e),
            report_clock_file=_path("ESEP_REPORT_CLOCK_FILE", e),
            stall_s=_float("ESEP_STALL_S", 300.0, 0.0, e),
            registry_load_processes=_int("ESEP_REGISTRY_LOAD_PROCESSES", usable_cpus(4), 0, e),
            malloc_arenas=_int("ESEP_MALLOC_ARENAS", 2, 0, e),
        )

    @property
    def worker_dir(self) -> Path:
        return self.data_dir / "workers" / self.worker_id

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    def resolve_broker(self) -> str:
        """The bootstrap address `host:port[,host:port]`; the local broker when ESEP_BROKER is unset."""
        if self.broker:
            return strip_scheme(self.broker)
        local = local_broker(self.kafka_dir)
        if local is None:
            raise SettingsError(
                f"ESEP_BROKER is not set and no local broker runs under {self.kafka_dir}: "
                f"start one with `esep kafka start` or set ESEP_BROKER=kafka://host:port"
            )
        return local

    def describe(self) -> list[tuple[str, str]]:
        rows = [(f.name, str(getattr(self, f.name))) for f in fields(self) if f.name != "topics"]
        rows += [(f"topic.{f.name}", getattr(self.topics, f.name)) for f in fields(self.topics)]
        return rows


def usable_cpus(at_most: int) -> int:
    """The CPUs this process may run on, at most `at_most`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(at_most, cpus))


def local_broker(kafka_dir: Path) -> str | None:
    """The address that the local launcher (`esep kafka start`) keeps in `<dir>/broker.json` while
    its broker runs: the one interface between the tools' launcher and the engine."""
    try:
        state = json.loads((kafka_dir / "broker.json").read_text())
        pid, port = int(state["pid"]), int(state["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"127.0.0.1:{port}"


def strip_scheme(broker: str) -> str:
    return ",".join(part.split("://", 1)[-1] for part in broker.split(","))
