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
