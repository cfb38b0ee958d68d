"""The faust app: the worker's parts built in one place (`Runtime`), started in a stated order, and
the posting agent, a thin adapter that hands batches to `PostingProcessor` (streams/processor.py).

One faust event is one payment order (~20 lines), and `noack_take` hands the agent batches of
them: faust's per-event cost (~0.8 ms here) is paid per order, and sends are awaited once per batch.
Offsets are acknowledged by hand, after the batch's outputs were acknowledged by the broker. A part
that dies stops the worker (streams/lifecycle.py): it is never half-alive."""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import faust
from faust.exceptions import ConsumerNotStarted
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring import metrics
from rules.calendar import default_calendar
from rules.holds import HoldPolicy
from tables.budget import StoreBudget, shared_budget, use_budget
from tables.changelog import ChangelogReader
from tables.decisions import DecisionStore
from tables.history import HistoryStore
from tables.registry import RegistryReplica, RegistryStore

from . import faults, heap
from .accounts_agent import install_accounts, web_options
from .assignor import StaticMemberAssignor
from .lifecycle import Lifecycle
from .observe import Observer
from .processor import PostingProcessor, utc_now
from .rebalance_seek import install_rebalance_seek
from .recipients_agent import install_recipients
from .records import InputRecord, OutputRecord
from .registry_changes import RegistryChangePublisher
from .report_process import budget_shares
from .settings import Settings
from .topics import OUTPUT_RECORD_MAX_BYTES
from .yielding import PostingActivity

if TYPE_CHECKING:
    from rules.calendar import BusinessCalendar

log = logging.getLogger("esep.worker")


def package_version() -> str:
    try:
        return importlib.metadata.version("esep")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class FaustSink:
    """Sends through the app's own producer (no second producer beside faust)."""

    def __init__(self, app: faust.App):
        self.app = app

    async def send(self, record: OutputRecord):
        return await self.app.producer.send(record.topic, record.key, record.value, record.partition, None, None)


class Runtime:
    """Every part of the worker, built here in one place; `run` starts them in a stated order."""

    def __init__(self, app: faust.App, settings: Settings, bootstrap: str, calendar: BusinessCalendar,
                 lifecycle: Lifecycle):
        s = settings
        self.app = app
        self.lifecycle = lifecycle
        self.settings = settings
        self.bootstrap = bootstrap
        self.calendar = calendar
        # Set once the registry replica caught up and the owned decisions are restored: posting waits.
        self.ready = asyncio.Event()
        self.changed_iins: set[str] = set()
        self.registry_changed = asyncio.Event()
        # The other ledgers' handlers of registry changes (the recipients' records follow a person).
        self.registry_listeners: list[Callable[[set[str]], None]] = []
        sink = FaustSink(app)
        # One cache and one write-buffer budget for every store of this worker (tables/budget.py).
        # With the report streams in their own process, a quarter of it is theirs (streams/report_process.py).
        use_budget(StoreBudget(*budget_shares(s)[0]) if s.reports and s.report_process
                   else StoreBudget(s.store_cache_mb, s.store_write_buffer_mb))
        registry = RegistryStore(s.worker_dir / "registry")
        decisions = DecisionStore(s.worker_dir / "decisions")
        self.observer = Observer(calendar)
        self.replica = RegistryReplica(registry, bootstrap, s.topics.registry_persons,
                                       on_change=self.on_registry_change,
                                       on_caught_up=self.on_registry_caught_up,
                                       load_processes=s.registry_load_processes)
        self.changelog = ChangelogReader(decisions, bootstrap, s.topics.decisions)
        self.processor = PostingProcessor(s.topics, registry, decisions, self.changelog, sink, calendar,
                                          HoldPolicy.from_mode(s.pending, s.hold_cutoff_min),
                                          owned_partitions=self.owned_partitions, observer=self.observer)
        # Posting's batches, so that the change publisher yields to them (streams/yielding.py).
        self.posting = PostingActivity(backlog=lambda: sum(self.notification_lag().values()))
        self.changes = RegistryChangePublisher(s, bootstrap, HistoryStore(s.worker_dir / "history"), sink, utc_now,
                                               posting=self.posting)
        self.reports = report_parts(s, bootstrap, calendar, pace=self.posting.turn,
                                    stopping=lambda: lifecycle.stopping)

    async def run(self) -> None:
        """Start-up, in this order, then watch the parts that run on:
        1. the registry replica, followed until it reaches the high watermarks noted at start
           (a line is matched against the whole registry or not at all);
        2. restore: the decisions changelog of the partitions owned now (later ones on assignment);
        3. the change publisher (registry.changes);
        4. the hold re-checks;
        5. the agents: ready, posting begins.
        A part that stops for any reason stops the worker."""
        replica = asyncio.ensure_future(self.replica.run())
        await self._until_caught_up(replica)                                           # 1
        metrics.registry_ready.set(1)
        await self.changelog.start()                                                   # 2
        await self.processor.restore(set(self.owned_partitions()))
        changes = asyncio.ensure_future(self.changes.run())                            # 3
        holds = asyncio.ensure_future(self.run_holds())                                # 4
        reports = {asyncio.ensure_future(r.run()): "monthly report" for r in self.reports}
        self.ready.set()                                                               # 5
        log.info("worker %s ready: registry replica caught up, decisions restored", self.settings.worker_id)
        parts = {replica: "registry replica", changes: "registry change publisher", holds: "hold re-checks",
                 **reports}
        try:
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
            stopped = done.pop()
            stopped.result()  # re-raises what stopped it
            raise RuntimeError(f"the {parts[stopped]} stopped")
        finally:
            for task in parts:
                task.cancel()

    async def _until_caught_up(self, replica: asyncio.Future) -> None:
        caught_up = asyncio.ensure_future(self.replica.ready.wait())
        done, _ = await asyncio.wait({replica, caught_up}, return_when=asyncio.FIRST_COMPLETED)
        if replica in done:
            caught_up.cancel()
            replica.result()  # re-raise what stopped the replica before it was ready
            raise RuntimeError("the registry replica stopped before it caught up")

    def on_registry_change(self, iins) -> None:
        self.changed_iins.update(iins)
        self.registry_changed.set()
        for listener in self.registry_listeners:
            listener(iins)

    def on_registry_caught_up(self) -> None:
        # The persons loaded before ready (the whole registry at a first start) are not reported
        # one by one, which would keep every IIN in `changed_iins` until the holds start: the
        # restore that follows (2. in `run`, and on every later assignment) re-checks every held
        # order of its partitions against the caught-up replica anyway.
        pass

    async def run_holds(self) -> None:
        """Re-check held lines when a person changes in the registry, and at every tick for the
        cut-offs that passed (business deadlines against the worker's clock)."""
        while True:
            try:
                await asyncio.wait_for(self.registry_changed.wait(), timeout=self.settings.hold_check_s)
            except asyncio.TimeoutError:
                pass
            self.registry_changed.clear()
            changed, self.changed_iins = self.changed_iins, set()
            # An order a re-check fails on is dead-lettered there; what is raised here is broken
            # beyond an order, and stops the worker (its restore re-checks every held order).
            await self.processor.recheck(changed)

    def notification_lag(self) -> dict[int, int]:
        """Notifications not yet processed, per owned partition (known once a partition had a batch)."""
        topic = self.settings.topics.credit_notifications
        try:
            assignment = self.app.consumer.assignment()
        except ConsumerNotStarted:
            assignment = set()
        out = {}
        for tp in assignment:
            if tp.topic != topic:
                continue
            high = self.app.consumer.highwater(tp)
            done = self.processor.next_offsets.get(tp.partition)
            if high is not None and done is not None:
                out[tp.partition] = max(0, high - done)
        return out

    def observe_lag(self) -> None:
        topic = self.settings.topics.credit_notifications
        for partition, lag in self.notification_lag().items():
            metrics.consumer_lag.labels(topic, str(partition)).set(lag)
        registry_topic = self.settings.topics.registry_persons
        for partition, lag in self.replica.stats.lag.items():
            metrics.consumer_lag.labels(registry_topic, str(partition)).set(lag)
        metrics.registry_persons.set(self.replica.store.estimated_count())
        for part, used in shared_budget().usage().items():
            metrics.store_memory.labels(part).set(used)

    def log_summary(self) -> None:
        t = self.observer.take_totals()
        if t.notifications:
            log.info(
                "last 30 s: %d notifications, %d decided, %d re-emitted, %d duplicates, %d dead letters; "
                "lines %d posted, %d refunded %s",
                t.notifications, t.new, t.redelivered, t.repeats, t.dead_letters, t.lines_posted,
                t.lines_refunded, dict(t.reasons) or "",
            )

    def owned_partitions(self) -> list[int]:
        topic = self.settings.topics.credit_notifications
        try:
            assignment = self.app.consumer.assignment()
        except ConsumerNotStarted:  # faust's test_context: no consumer, nothing owned
            return []
        return [tp.partition for tp in assignment if tp.topic == topic]


def report_parts(settings: Settings, bootstrap: str, calendar: BusinessCalendar,
                 pace: Callable[[], Awaitable[None]] | None = None,
                 stopping: Callable[[], bool] = lambda: False) -> list:
    """The monthly report's streams and assembler (issue 12), unless ESEP_REPORTS=off; the streams
    give way to posting's batches through `pace`."""
    if not settings.reports:
        return []
    from .report_assembler import ReportAssembler
    from .report_clock import ReportClock
    from .report_process import ReportProcess
    from .report_streams import ReportStreams

    streams = (ReportProcess(settings, bootstrap, calendar, pace=pace, stopping=stopping) if settings.report_process
               else ReportStreams(settings, bootstrap, calendar, pace=pace))
    return [streams, ReportAssembler(settings, bootstrap, calendar, ReportClock(settings.report_clock_file))]


def build_app(settings: Settings, bootstrap: str, calendar: BusinessCalendar | None = None,
              lifecycle: Lifecycle | None = None) -> tuple[faust.App, Runtime]:
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{bootstrap.split(',')[0]}",
        store="memory://",
        datadir=str(settings.worker_dir / "faust"),
        autodiscover=False,
        web_enabled=True,
        web_bind=settings.web_bind,
        web_host="127.0.0.1",
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.worker_id,
        # Static membership hands a restarted worker its previous assignment, made for its previous
        # web address: faust's own assignor refuses it when the port changed (streams/assignor.py).
        PartitionAssignor=StaticMemberAssignor,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_s / 5),
        broker_commit_interval=settings.commit_interval_s,
        producer_acks=-1,
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=OUTPUT_RECORD_MAX_BYTES + 64 * 1024,
        stream_wait_empty=True,
        stream_ack_exceptions=False,
        stream_ack_cancelled_tasks=False,
        stream_recovery_delay=0.0,
        **web_options(settings),  # the URL other workers reach this one at; TLS when configured
    )
    lifecycle = lifecycle or Lifecycle()
    install_rebalance_seek(app)  # no partition resumes past records faust abandoned
    runtime = Runtime(app, settings, bootstrap, calendar or default_calendar(), lifecycle)
    fault = faults.configured()
    metrics.worker_info.info({"version": package_version(), "worker_id": settings.worker_id, "app_id": settings.app_id})
    credit_topic = app.topic(
        settings.topics.credit_notifications, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw", partitions=settings.partitions,
    )

    @app.task
    async def start_worker() -> None:
        try:
            await runtime.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without its registry, decisions or publisher the worker cannot post: it stops.
            lifecycle.fail(f"{type(exc).__name__}: {exc}", exc)

    @app.agent(credit_topic, name="post-orders")
    async def post_orders(stream):
        await runtime.ready.wait()
        within = timedelta(seconds=settings.batch_within_s)
        try:
            async for events in stream.noack_take(settings.batch_size, within=within):
                if fault is not None:
                    await faults.on_batch(fault)
                batch = [
                    InputRecord(
                        e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value,
                        e.message.timestamp and int(e.message.timestamp * 1000),
                    )
                    for e in events
                ]

                async def acknowledge(_: Sequence[InputRecord], events=events) -> None:
                    for e in events:
                        await stream.ack(e)

                with runtime.posting.batch():
                    await runtime.processor.process(batch, acknowledge)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # One record costs only itself (the steps dead-letter it): what reaches here is broken
            # beyond a record, and a worker that cannot post must not look alive.
            lifecycle.fail(f"the posting agent died: {type(exc).__name__}: {exc}", exc)

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web, request):
        return web.json({"alive": True, "worker": settings.worker_id})

    @app.page("/ready")
    async def ready(web, request):
        # Ready once the registry replica caught up and decisions are restored, until it fails or stops.
        ok, reason = lifecycle.readiness(runtime.ready.is_set())
        return web.json({"ready": ok, "reason": reason}, status=200 if ok else 503)

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == settings.topics.credit_notifications}
        metrics.rebalances.inc()
        metrics.partitions_owned.set(len(mine))
        if runtime.ready.is_set() and mine:
            # Restore now, during the rebalance, rather than on the first batch: no first-batch stall.
            await runtime.processor.restore(mine)

    @app.timer(interval=5.0)
    async def observe_lag() -> None:
        if app.crashed and lifecycle.failure is None:  # a part of faust itself died
            lifecycle.fail(f"faust: {app.crash_reason!r}", app.crash_reason)
        try:
            runtime.observe_lag()
        except Exception:  # noqa: BLE001 - observation must never stop posting
            log.exception("observing lag failed")

    @app.timer(interval=30.0)
    async def summary_log() -> None:
        runtime.log_summary()
        heap.trim()  # what a burst or a compaction freed goes back to the system (streams/heap.py)

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs) -> None:
        for tp in revoked:
            if tp.topic == settings.topics.credit_notifications:
                try:  # a partition we no longer own has no lag of ours
                    metrics.consumer_lag.remove(tp.topic, str(tp.partition))
                except KeyError:
                    pass
        runtime.processor.forget_partitions(
            tp.partition for tp in revoked if tp.topic == settings.topics.credit_notifications)

    recipients = install_recipients(app, settings, bootstrap, runtime)  # the second ledger (contract, Part 2)
    # Refunds of posted contributions: its own agent over posted.contributions and fund.refund-decisions.
    from .reversals_agent import install_reversals

    runtime.reversals = install_reversals(app, settings, bootstrap, FaustSink(app), utc_now,
                                          recipients=recipients, lifecycle=lifecycle,
                                          posting=runtime.posting)
    runtime.accounts = install_accounts(app, settings, bootstrap, runtime)  # personal accounts, statement API
    return app, runtime
