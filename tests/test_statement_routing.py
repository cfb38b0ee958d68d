"""Routing between workers (streams/statement_web.py) on two real aiohttp servers of 127.0.0.1, no
broker: a request for another worker's account is answered by the owner, who writes the one audit
record; a routed request is never routed again; an owner that does not answer, or no known owner,
is a 503 with Retry-After written by the worker asked."""
from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess

import aiohttp
import pytest
from aiohttp import web

from rules.accounts import Account
from streams.access import ApiSettings, TokenStore, add_token
from streams.accounts_agent import forward_ssl
from streams.accounts import iin_partition
from streams.statement_api import StatementApi, Unavailable
from streams.statement_web import ROUTED, StatementRouter
from streams.tls import server_context
from tests.account_samples import IIN, OTHER, contribution

PARTITIONS = 4


class Accounts:
    """LocalAccounts' surface: owns some partitions; `get_account` refuses the others (503)."""

    partitions = PARTITIONS
    retry_after_s = 7

    def __init__(self, owned):
        self.owned = set(owned)
        self.rebalancing_now = False

    def rebalancing(self):
        return self.rebalancing_now

    async def get_account(self, iin):
        if iin_partition(iin, PARTITIONS) not in self.owned:
            raise Unavailable("not assigned here", self.retry_after_s)
        account = Account(iin)
        account.apply("contribution", contribution(iin=iin))
        return account


class Cluster:
    def __init__(self, tokens_path):
        self.trail = []
        self.urls = {}
        self.runners = []
        self.sessions = []
        self.owner = {}  # partition -> worker id; missing: no assignment known
        self.tokens_path = tokens_path

    async def add(self, worker_id, owned, session, tls=None):
        async def sink(key, record):
            self.trail.append(record)

        accounts = Accounts(owned)
        api = StatementApi(TokenStore(self.tokens_path), accounts, sink, worker=worker_id)

        def owner_url(iin):
            return self.urls[self.owner[iin_partition(iin, PARTITIONS)]]

        router = StatementRouter(api, accounts, worker_id=worker_id, own_url=lambda: self.urls[worker_id],
                                 owner_url=owner_url, session=lambda: session, timeout_s=2.0,
                                 ssl=None if tls is None else tls[1])

        async def handle(request):
            status, headers, body = await router.respond(request)
            return web.Response(body=body, status=status, headers=headers)

        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=None if tls is None else tls[0])
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.urls[worker_id] = f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
        self.runners.append(runner)
        for p in owned:
            self.owner[p] = worker_id
        return accounts

    async def close(self):
        for r in self.runners:
            await r.cleanup()


def owned_by_a():
    a = {iin_partition(IIN, PARTITIONS)}
    return a, set(range(PARTITIONS)) - a


@pytest.fixture
def token(tmp_path):
    return add_token(tmp_path / "tokens.json", "ops", "operator")


def run(coro):
    return asyncio.run(coro)


def test_the_owner_answers_and_audits_once(tmp_path, token):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            cluster = Cluster(tmp_path / "tokens.json")
            a_parts, b_parts = owned_by_a()
            await cluster.add("a", a_parts, session)
            await cluster.add("b", b_parts, session)
            try:
                async with session.get(f"{cluster.urls['b']}/v1/accounts/{IIN}/statement?from=2026-10",
                                       headers={"Authorization": f"Bearer {token}", "Accept": "text/csv"}) as r:
                    body = await r.read()
                    assert r.status == 200 and r.headers["X-Esep-Worker"] == "a"
                    assert r.headers["Content-Type"].startswith("text/csv") and "Content-Disposition" in r.headers
                    assert "Cache-Control" in r.headers and body.count(b"\r\n") == 2
                assert [(t["worker"], t["status"], t["iin"], t["query"]) for t in cluster.trail] == [
                    ("a", 200, IIN, {"from": "2026-10"})]
                assert cluster.trail[0]["client"].endswith("via 127.0.0.1")
                # A refusal is the owner's too: no token.
                async with session.get(f"{cluster.urls['b']}/v1/accounts/{IIN}") as r:
                    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
                assert [t["worker"] for t in cluster.trail] == ["a", "a"]
            finally:
                await cluster.close()

    run(scenario())


def test_a_routed_request_is_never_routed_again(tmp_path, token):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            cluster = Cluster(tmp_path / "tokens.json")
            a_parts, b_parts = owned_by_a()
            await cluster.add("a", a_parts, session)
            await cluster.add("b", b_parts, session)
            try:
                # b believes a owns the IIN; the request says it was routed already: b answers itself, 503.
                async with session.get(f"{cluster.urls['b']}/v1/accounts/{IIN}",
                                       headers={"Authorization": f"Bearer {token}", ROUTED: "x"}) as r:
                    assert r.status == 503 and r.headers["Retry-After"] == "7" and r.headers["X-Esep-Worker"] == "b"
                assert [(t["worker"], t["outcome"]) for t in cluster.trail] == [("b", "unavailable")]
            finally:
                await cluster.close()

    run(scenario())


def test_an_owner_that_does_not_answer_or_none_known_is_a_503_here(tmp_path, token):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            cluster = Cluster(tmp_path / "tokens.json")
            a_parts, b_parts = owned_by_a()
            await cluster.add("a", a_parts, session)
            await cluster.add("b", b_parts, session)
            try:
                cluster.urls["a"] = "http://127.0.0.1:9"  # nobody listens there
                async with session.get(f"{cluster.urls['b']}/v1/accounts/{IIN}",
                                       headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 503 and r.headers["Retry-After"] == "7"
                    assert json.loads(await r.read())["error"] == "unavailable"
                del cluster.owner[iin_partition(IIN, PARTITIONS)]  # a rebalance: no assignment known
                async with session.get(f"{cluster.urls['b']}/v1/accounts/{IIN}",
                                       headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 503
                # Still checked first: a bad IIN is a 400 and a missing token a 401, whoever owns what.
                async with session.get(f"{cluster.urls['b']}/v1/accounts/{IIN[:-1]}0") as r:
                    assert r.status == 401
                assert [(t["worker"], t["status"]) for t in cluster.trail] == [("b", 503), ("b", 503), ("b", 401)]
            finally:
                await cluster.close()

    run(scenario())


def test_other_accounts_and_endpoints_are_answered_here(tmp_path, token):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            cluster = Cluster(tmp_path / "tokens.json")
            everything = set(range(PARTITIONS))
            await cluster.add("a", everything, session)
            try:
                for path in (f"/v1/accounts/{OTHER}", "/v1/openapi.json"):
                    async with session.get(cluster.urls["a"] + path,
                                           headers={"Authorization": f"Bearer {token}"}) as r:
                        assert r.status == 200 and r.headers["X-Esep-Worker"] == "a"
                async with session.post(f"{cluster.urls['a']}/v1/accounts/{OTHER}",
                                        headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 405 and r.headers["Allow"] == "GET"
                assert [t["status"] for t in cluster.trail] == [200, 200, 405]
            finally:
                await cluster.close()

    run(scenario())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line for a certificate")
def test_routing_between_workers_under_tls(tmp_path, token):
    """Workers sharing one certificate: each trusts it when it forwards (streams.accounts_agent.forward_ssl)."""
    cert, key = tmp_path / "w.crt", tmp_path / "w.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    api_settings = ApiSettings.from_env({"ESEP_TLS_CERT": str(cert), "ESEP_TLS_KEY": str(key)})
    tls = (server_context(cert, key), forward_ssl(api_settings))

    async def scenario():
        client = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            cluster = Cluster(tmp_path / "tokens.json")
            a_parts, b_parts = owned_by_a()
            await cluster.add("a", a_parts, session, tls)
            await cluster.add("b", b_parts, session, tls)
            try:
                async with session.get(f"{cluster.urls['b']}/v1/accounts/{IIN}", ssl=client,
                                       headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 200 and r.headers["X-Esep-Worker"] == "a"
            finally:
                await cluster.close()

    run(scenario())
