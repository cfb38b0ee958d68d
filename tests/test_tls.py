"""TLS for the web server: a context from certificate and key paths, checked by a real handshake on
127.0.0.1 with a self-signed certificate made by the openssl command line for the test."""
from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess

import pytest

from streams.tls import server_context

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None,
    reason="needs the openssl command line to make a self-signed certificate (the cryptography package is not a "
           "dependency)")


def self_signed(directory, name="server"):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_a_client_that_trusts_the_certificate_completes_a_handshake(tmp_path):
    cert, key = self_signed(tmp_path)
    context = server_context(cert, key)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2

    async def exchange():
        async def echo(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=str(cert))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="127.0.0.1")
            writer.write(b"ping\n")
            line = await reader.readline()
            version = writer.get_extra_info("ssl_object").version()
            writer.close()
            # A client that does not trust the certificate is refused.
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("127.0.0.1", port, ssl=ssl.create_default_context(),
                                              server_hostname="127.0.0.1")
            return line, version
        finally:
            server.close()
            await server.wait_closed()

    line, version = asyncio.run(exchange())
    assert line == b"ping\n" and version in ("TLSv1.2", "TLSv1.3")


def test_a_key_that_is_not_the_certificates_is_refused_at_start(tmp_path):
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    with pytest.raises(ValueError, match="ESEP_TLS_CERT"):
        server_context(cert, other_key)
    with pytest.raises(FileNotFoundError, match="ESEP_TLS_KEY"):
        server_context(cert, tmp_path / "missing.key")


def test_the_statement_api_over_https_with_aiohttp(tmp_path):
    """The handling behind aiohttp (the server under faust's web views), over TLS, with real requests."""
    from aiohttp import ClientSession, web

    from rules.accounts import Account
    from streams.access import TokenStore, add_token
    from streams.statement_api import StatementApi, respond_to
    from tests.account_samples import IIN, contribution

    cert, key = self_signed(tmp_path)
    token = add_token(tmp_path / "tokens.json", "ops", "operator")
    account = Account(IIN)
    account.apply("contribution", contribution())
    trail = []

    class Source:
        async def get_account(self, iin):
            return account if iin == IIN else None

    async def sink(k, record):
        trail.append((k, record))

    api = StatementApi(TokenStore(tmp_path / "tokens.json"), Source(), sink, worker="w")

    async def view(request):
        status, headers, body = await respond_to(api, request)
        return web.Response(body=body, status=status, headers=headers)

    async def run():
        app = web.Application()
        app.router.add_get("/v1/{tail:.*}", view)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert, key))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        base = f"https://127.0.0.1:{port}"
        client_tls = ssl.create_default_context(cafile=str(cert))
        try:
            async with ClientSession() as session:
                auth = {"Authorization": f"Bearer {token}"}
                async with session.get(f"{base}/v1/accounts/{IIN}/statement?from=2026-10&to=2026-10&from=1999-01",
                                       headers={**auth, "Accept": "text/csv"}, ssl=client_tls) as r:
                    csv_answer = (r.status, r.headers["Content-Type"], await r.text())
                async with session.get(f"{base}/v1/accounts/{IIN}", ssl=client_tls) as r:
                    refused = (r.status, r.headers.get("WWW-Authenticate"))
                async with session.get(f"{base}/v1/accounts/{IIN}", headers=auth, ssl=client_tls) as r:
                    totals = (r.status, r.headers["Cache-Control"], await r.json())
        finally:
            await runner.cleanup()
        return csv_answer, refused, totals

    csv_answer, refused, totals = asyncio.run(run())
    assert csv_answer[0] == 200 and csv_answer[1].startswith("text/csv") and "HSBK-20261126-000421/1" in csv_answer[2]
    assert refused == (401, 'Bearer realm="esep"')
    assert totals[0] == 200 and totals[1] == "no-store" and totals[2]["contributions"]["posted"] == "29750.00"
    assert [r["status"] for _, r in trail] == [200, 401, 200]
    assert trail[0][1]["query"] == {"from": "2026-10", "to": "2026-10"} and trail[0][1]["client"] == "127.0.0.1"
