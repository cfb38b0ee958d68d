"""TLS for the workers' web server (statement API), with the standard library's ssl only."""
from __future__ import annotations

import os
import ssl
from pathlib import Path

__all__ = ["server_context"]


def server_context(cert: str | os.PathLike, key: str | os.PathLike) -> ssl.SSLContext:
    """A server-side context from a PEM certificate (chain) and its private key (ESEP_TLS_CERT,
    ESEP_TLS_KEY). TLS 1.2 at least; the defaults of `create_default_context` otherwise (no
    compression, the library's secure ciphers). A missing or mismatched file fails here, at start,
    not at the first client."""
    cert, key = Path(cert), Path(key)
    for name, path in (("ESEP_TLS_CERT", cert), ("ESEP_TLS_KEY", key)):
        if not path.is_file():
            raise FileNotFoundError(f"{name}={path} is not a file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except ssl.SSLError as exc:
        raise ValueError(f"ESEP_TLS_CERT and ESEP_TLS_KEY do not make a certificate and its key: {exc}") from None
    return context
