"""Faust wiring of personal accounts and the statement API (issue 13): the feed that reads the
IIN-keyed ledger partitions this worker owns into the accounts, the agent that re-keys refund lines
by IIN, and the API's pages on the worker's web server.

Ownership of an account is the faust assignment of the notifications topic: every topic with
ESEP_PARTITIONS partitions that all workers subscribe is in one co-partitioned group, and the ledger
topics have that count too (checked at start: another count would split a person's records between
workers), so partition p of the ledger belongs with partition p of the notifications and the
faust router knows its worker's URL. The sources are ESEP_ACCOUNT_SOURCES (default all five); one
whose topic does not exist yet (the reversals or the recipients' ledger not deployed) is read once
it appears."""
from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import timedelta
from typing import TYPE_CHECKING

import faust
from faust.exceptions import ConsumerNotStarted
from faust.web import View

from monitoring import metrics
from tables.accounts import AccountStore
from tables.changelog import ChangelogReader

from .access import ApiSettings, RateLimiter, TokenStore
from .accounts import (
    AccountsFeed, AccountsProcessor, LocalAccounts, NotKept, account_inputs, iin_partition, rekey_refunds,
    source_topics,
)
from .records import InputRecord
from .settings import Settings
from .statement_api import StatementApi
from .statement_web import AuditTopicReader, StatementRouter, audit_sink
from .tls import server_context

if TYPE_CHECKING:
    from .app import Runtime

log = logging.getLogger("esep.accounts")

PAGES = ("/v1/accounts/{iin}", "/v1/accounts/{iin}/statement", "/v1/audit", "/v1/openapi.json")


def web_url(settings: Settings, api: ApiSettings | None = None) -> str:
    """The URL the other workers reach this one at (faust's canonical_url, kept in the group's
    assignment): ESEP_WEB_URL, else this host's loopback address and port."""
    if settings.web_url:
        return settings.web_url
    api = api or ApiSettings.from_env()
    scheme = "https" if api.tls_cert else "http"
    return f"{scheme}://127.0.0.1:{settings.web_port}"


def web_options(settings: Settings) -> dict:
    """faust.App keyword arguments of the web server: the advertised URL and TLS when configured."""
    api = ApiSettings.from_env()
    options = {"canonical_url": web_url(settings, api)}
    if api.tls_cert:
        options["web_ssl_context"] = server_context(api.tls_cert, api.tls_key)
    return options


def existing_topics(bootstrap: str, names: list[str]) -> dict[str, int]:
    """Partition counts of those of `names` that exist (a blocking admin call, at start only)."""
    from .topics import admin_client

    admin = admin_client(bootstrap)
    try:
        present = set(admin.list_topics())
        wanted = [n for n in names if n in present]
        described = admin.describe_topics(wanted) if wanted else []
        return {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}
    finally:
        admin.close()


class AccountsRuntime:
    def __init__(self, app: faust.App, settings: Settings, bootstrap: str, runtime: "Runtime",
                 api_settings: ApiSettings):
        self.app = app
        self.settings = settings
        self.inputs = account_inputs(settings)
        self.store = AccountStore(settings.worker_dir / "accounts")
        self.changelog = ChangelogReader(self.store, bootstrap, settings.topics.accounts_changelog)
        self.changelog_started = False
        self.processor = AccountsProcessor(self.store, self, runtime_sink(runtime), settings.topics.accounts_changelog,
                                           self.inputs, owned_partitions=self.owned_partitions)
        # Posting first: during a burst the accounts take one batch per turn (streams/yielding.py).
        self.feed = AccountsFeed(self.processor, bootstrap, self.owned_partitions, pace=runtime.posting.turn)
        self.local = LocalAccounts(self.processor, settings.partitions, rebalancing=lambda: bool(app.rebalancing),
                                   owned=self.owned_partitions, retry_after_s=settings.session_timeout_s)
        self.audit_reader = AuditTopicReader(bootstrap, settings.topics.audit_access, settings.partitions)
        self.api = StatementApi(TokenStore(api_settings.tokens_file), self.local,
                                audit_sink(app, settings.topics.audit_access), worker=settings.worker_id,
                                limiter=RateLimiter(api_settings.rate_per_s, api_settings.burst),
                                audit_source=self.audit_reader)
        if not self.inputs:
            self.api.accounts = NotKept()  # ESEP_ACCOUNT_SOURCES=none: 501 for every account
        self.router = StatementRouter(
            self.api, self.local, worker_id=settings.worker_id, own_url=lambda: str(app.conf.canonical_url),
            owner_url=self.owner_url, session=lambda: app.http_client, timeout_s=api_settings.forward_timeout_s,
            lag=self.feed.lag, ssl=forward_ssl(api_settings))

    # ---- the changelog (as AccountsProcessor's Changelog) ---------------------------------------------

    async def catch_up(self, partitions: list[int]) -> int:
        if not self.changelog_started:
            await self.changelog.start()
            self.changelog_started = True
        return await self.changelog.catch_up(partitions)

    # ---- ownership ----------------------------------------------------------------------------------

    def assignment(self) -> set:
        try:
            return self.app.consumer.assignment()
        except ConsumerNotStarted:
            return set()

    def owned_partitions(self) -> list[int]:
        topic = self.settings.topics.credit_notifications
        return sorted({tp.partition for tp in self.assignment() if tp.topic == topic})

    def owner_url(self, iin: str) -> str:
        """The URL of the worker assigned the IIN's partition, from the group's assignment as faust's
        assignor shares it with every member (KeyError: none known now). The partition is computed
        here: faust's own look-up asks the producer, which knows only topics it has written."""
        topic = self.settings.topics.credit_notifications
        partition = iin_partition(iin, self.settings.partitions)
        for url, topics in self.app.router.external_topics_metadata().items():
            if partition in topics.get(topic, ()):
                return str(url)
        raise KeyError(partition)

    def observe(self) -> None:
        owned = self.owned_partitions()
        metrics.accounts_partitions_ready.set(len(set(owned) & self.processor.restored))
        for topic in self.feed.present:
            for p in owned:
                high = self.feed.highwater(topic, p)
                done = self.processor.next_offsets.get((topic, p))
                if high is not None and done is not None:
                    metrics.consumer_lag.labels(topic, str(p)).set(max(0, high - done))

    async def check_topics(self, bootstrap: str) -> None:
        """The ledger topics that exist and the changelog must have ESEP_PARTITIONS partitions, like
        the notifications whose assignment they follow."""
        names = [*self.inputs, self.settings.topics.accounts_changelog]
        counts = await asyncio.get_running_loop().run_in_executor(None, existing_topics, bootstrap, names)
        wrong = {n: c for n, c in counts.items() if c != self.settings.partitions}
        if wrong:
            raise RuntimeError(f"the account topics must have ESEP_PARTITIONS={self.settings.partitions} partitions "
                               f"(co-partitioned), found {wrong}: recreate them")


def runtime_sink(runtime: "Runtime"):
    from .app import FaustSink

    return FaustSink(runtime.app)


def forward_ssl(api: ApiSettings):
    """Forwarding to another worker under TLS: the system's trust store, plus the workers' own
    certificate (a deployment whose workers share one self-signed certificate)."""
    if not api.tls_cert:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(api.tls_cert))
    return context


def install_accounts(app: faust.App, settings: Settings, bootstrap: str, runtime: "Runtime") -> AccountsRuntime:
    api_settings = ApiSettings.from_env()
    accounts = AccountsRuntime(app, settings, bootstrap, runtime, api_settings)
    batch_size, within = settings.batch_size, timedelta(seconds=settings.batch_within_s)

    @app.task
    async def read_ledger() -> None:
        if not accounts.inputs:
            log.info("no personal accounts kept here (ESEP_ACCOUNT_SOURCES=none)")
            return
        try:
            await accounts.check_topics(bootstrap)
            await accounts.feed.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - accounts that stop following the ledger are wrong: stop
            runtime.lifecycle.fail(f"the accounts feed died: {type(exc).__name__}: {exc}", exc)

    if "refunds" in source_topics(settings):
        refunds_topic = app.topic(settings.topics.refunds, key_type=bytes, value_type=bytes, key_serializer="raw",
                                  value_serializer="raw", partitions=settings.partitions)
        sink = runtime_sink(runtime)

        @app.agent(refunds_topic, name="account-refund-lines")
        async def refund_lines(stream):
            try:
                async for events in stream.noack_take(batch_size, within=within):
                    batch = [InputRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key,
                                         e.message.value) for e in events]
                    await rekey_refunds(sink, batch, settings.topics.account_refund_lines)
                    for e in events:
                        await stream.ack(e)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a refund that cannot be read is skipped: this is worse
                runtime.lifecycle.fail(f"the refund-lines agent died: {type(exc).__name__}: {exc}", exc)

    credit_topic = settings.topics.credit_notifications

    @app.on_partitions_assigned.connect
    async def accounts_assigned(app, assigned, **kwargs) -> None:
        accounts.feed.reassign()  # restores the new partitions, then reads them: 503 until then

    @app.on_partitions_revoked.connect
    async def accounts_revoked(app, revoked, **kwargs) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == credit_topic}
        # After the batch in hand: its changelog write lands before the next owner reads the changelog.
        async with accounts.processor.lock:
            accounts.processor.forget_partitions(gone)
        accounts.feed.reassign()
        for topic in accounts.feed.present:
            for p in gone:
                try:
                    metrics.consumer_lag.remove(topic, str(p))
                except KeyError:
                    pass

    @app.timer(interval=5.0)
    async def observe_accounts() -> None:
        try:
            accounts.observe()
        except Exception:  # noqa: BLE001 - a gauge must never stop the worker
            log.exception("observing the accounts failed")

    class ApiPage(View):
        """Every method reaches the API, so that a refused one is audited too (405)."""

        async def get(self, request, **kwargs):
            status, headers, body = await accounts.router.respond(request)
            # Content-Type travels in `headers`: aiohttp refuses it in both places.
            return self.bytes(body, status=status, headers=headers)

        post = put = patch = delete = options = search = get

    for path in PAGES:
        app.page(path, name=f"api:{path}")(type(f"ApiPage{len(path)}", (ApiPage,), {}))
    return accounts
