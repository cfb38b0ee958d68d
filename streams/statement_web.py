"""The statement API on the worker's web server: where a request is answered (here, or by the worker
that owns the IIN's partition), the audit trail's sink and reader.

Routing, not redirecting (docs/statements.md): a request for an account of a partition this worker
does not own is sent on to the owner with the client's Authorization and Accept and
`X-Esep-Routed: <this worker>`; the owner does the whole handling (token, rate, role, audit), so one
access is one audit record, written by the worker that answered. A request that carries
`X-Esep-Routed` is never sent on again: if the assignment moved meanwhile, the receiving worker does
not own the partition and answers 503. When no assignment is known (a rebalance) or the owner does
not answer in time, this worker answers 503 with Retry-After itself, after the usual checks, and
audits it."""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from monitoring import metrics
from rules.iin import is_valid_iin
from rules import json_bytes

from .accounts import LocalAccounts, Unreachable, iin_partition
from .statement_api import StatementApi, _route

log = logging.getLogger("esep.statements")

ROUTED = "X-Esep-Routed"
LAG = "X-Esep-Account-Lag"
WORKER = "X-Esep-Worker"  # the worker that answered (and wrote the audit record)
FORWARDED_HEADERS = ("Authorization", "Accept")
# What the owner's answer keeps on its way back to the client.
RETURNED_HEADERS = ("Content-Type", "Content-Disposition", "Cache-Control", "X-Content-Type-Options", "Retry-After",
                    "WWW-Authenticate", "Allow", LAG, WORKER)
ENDPOINTS = ("account", "statement", "audit", "openapi")

Response = tuple[int, dict, bytes]


def endpoint_label(path: str) -> str:
    """The bounded name of a path's route, for metrics."""
    endpoint = _route(path)[0]
    return endpoint if endpoint in ENDPOINTS else "other"


def _client(request) -> str | None:
    remote = getattr(request, "remote", None)
    if ROUTED in request.headers:
        # As the forwarding worker saw the client; kept beside the peer so a client that sets these
        # headers itself cannot hide its own address.
        return f"{request.headers.get('X-Forwarded-For', '?')[:64]} via {remote}"
    return remote


class StatementRouter:
    """Answers one request of the API: here, or through the owner of the account's partition."""

    def __init__(self, api: StatementApi, accounts: LocalAccounts, *, worker_id: str,
                 own_url: Callable[[], str], owner_url: Callable[[str], str],
                 session: Callable[[], object], timeout_s: float, lag: Callable[[int], int | None] | None = None,
                 ssl=None):
        self.api = api
        self.accounts = accounts
        self.worker_id = worker_id
        self.own_url = own_url
        self.owner_url = owner_url  # raises KeyError when no assignment is known
        self.session = session
        self.timeout_s = timeout_s
        self.lag = lag
        self.ssl = ssl

    async def respond(self, request) -> Response:
        started = time.perf_counter()
        label = endpoint_label(request.path)
        try:
            response = await self._respond(request)
        finally:
            metrics.api_seconds.labels(label).observe(time.perf_counter() - started)
        return response

    async def _respond(self, request) -> Response:
        _, iin, _ = _route(request.path)
        if iin is None or not is_valid_iin(iin) or ROUTED in request.headers:
            return await self._here(request, iin)
        if self.accounts.rebalancing():
            return await self._here(request, iin, Unreachable("a rebalance is in progress",
                                                              self.accounts.retry_after_s))
        try:
            owner = self.owner_url(iin).rstrip("/")
        except KeyError:
            metrics.api_forwarded.labels("no_owner").inc()
            return await self._here(request, iin, Unreachable("no worker is assigned the account's partition now",
                                                              self.accounts.retry_after_s))
        if owner == self.own_url().rstrip("/"):
            return await self._here(request, iin)
        try:
            response = await self._forward(owner, request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to reach the owner is a 503 here
            metrics.api_forwarded.labels("unreachable").inc()
            log.warning("the owner of a requested account (%s) did not answer: %s", owner, type(exc).__name__)
            return await self._here(request, iin, Unreachable("the worker that holds the account did not answer",
                                                              self.accounts.retry_after_s))
        metrics.api_forwarded.labels("answered").inc()
        return response

    async def _here(self, request, iin: str | None, source=None) -> Response:
        query: dict[str, str] = {}
        for key, value in request.query.items():
            query.setdefault(key, value)
        api = self.api
        if source is not None:
            api = StatementApi(api.tokens, source, api.audit_sink, worker=api.worker, limiter=api.limiter,
                               audit_source=api.audit_source, clock=api.clock)
        status, headers, body = await api.handle(request.method, request.path, query, dict(request.headers),
                                                 client=_client(request))
        metrics.api_requests.labels(endpoint_label(request.path), str(status)).inc()
        headers = {**headers, WORKER: self.worker_id}
        if status == 200 and source is None and iin is not None and self.lag is not None:
            # How far the account trails the ledger topics, so a client can tell (never hidden).
            lag = self.lag(iin_partition(iin, self.accounts.partitions))
            if lag is not None:
                headers[LAG] = str(lag)
        return status, headers, body

    async def _forward(self, owner: str, request) -> Response:
        import aiohttp

        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        headers[ROUTED] = self.worker_id
        if getattr(request, "remote", None):
            headers["X-Forwarded-For"] = request.remote
        url = owner + str(request.rel_url)
        async with self.session().request(request.method, url, headers=headers, allow_redirects=False, ssl=self.ssl,
                                          timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
            body = await resp.read()
            out = {h: resp.headers[h] for h in RETURNED_HEADERS if h in resp.headers}
            return resp.status, out, body


# ---- the audit trail ----------------------------------------------------------------------------------

def audit_sink(app, topic: str):
    """Sends an audit record and waits for the broker's acknowledgement (acks=-1, the app's producer):
    an access that cannot be recorded is not granted."""
    async def send(key: str, record: dict) -> None:
        ack = await app.producer.send(topic, key.encode(), json_bytes.dumps(record), None, None, None)
        await ack
    return send


class AuditTopicReader:
    """The audit trail read back from `audit.access`: a group-less consumer from the beginning to the
    end offsets at the time of the call; a token's records are all in its key's partition."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, timeout_s: float = 30.0):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.timeout_s = timeout_s
        self.lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None

    async def _consumer(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest")
            await consumer.start()
            self.consumer = consumer
        return self.consumer

    async def audit_records(self, *, iin: str | None, token: str | None, limit: int) -> list[dict]:
        from .statement_api import Unavailable

        try:
            async with self.lock:
                return await asyncio.wait_for(self._read(iin, token, limit), self.timeout_s)
        except asyncio.TimeoutError:
            raise Unavailable("the audit trail could not be read in time") from None

    async def _read(self, iin: str | None, token: str | None, limit: int) -> list[dict]:
        consumer = await self._consumer()
        wanted = range(self.partitions) if token is None else [iin_partition(token, self.partitions)]
        tps = [TopicPartition(self.topic, p) for p in wanted]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        # The newest `limit` of each partition hold the newest `limit` of all.
        found = {tp: collections.deque(maxlen=limit) for tp in tps}
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset >= ends[tp] or r.value is None:
                        continue
                    if token is not None and r.key != token.encode():
                        continue
                    rec = orjson.loads(r.value)
                    if iin is not None and rec.get("iin") != iin:
                        continue
                    found[tp].append(rec)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        # Newest last across partitions: by the answering worker's clock.
        return sorted((r for d in found.values() for r in d), key=lambda r: (r.get("at") or "", r.get("audit_id") or ""))[-limit:]

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None


__all__ = ["AuditTopicReader", "StatementRouter", "audit_sink", "endpoint_label"]
