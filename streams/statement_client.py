"""`esep statement IIN` and `esep audit`: the statement API from the command line, through the same
endpoints and tokens as any client (so every call is checked and audited like any other).

The token comes from ESEP_API_TOKEN or a file (`--token-file`, the token on its first line), never
from the command line, where it would stay in the shell's history and the process list. The API's
address is ESEP_API_URL, else this host's worker (ESEP_WEB_URL, or http://127.0.0.1:ESEP_WEB_PORT)."""
from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .access import ApiSettings
from .settings import Settings


class ClientError(RuntimeError):
    """The call could not be made or was refused; the message says why."""


def api_url(settings: Settings) -> str:
    return (os.environ.get("ESEP_API_URL") or settings.web_url or f"http://127.0.0.1:{settings.web_port}").rstrip("/")


def read_token(token_file: str | None) -> str:
    if token_file:
        try:
            token = Path(token_file).expanduser().read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ClientError(f"cannot read a token from {token_file}: {exc}") from None
    else:
        token = os.environ.get("ESEP_API_TOKEN", "").strip()
    if not token:
        raise ClientError("no token: set ESEP_API_TOKEN or give --token-file (`esep token add NAME --role R` makes one)")
    return token


def _context(url: str) -> ssl.SSLContext | None:
    if not url.startswith("https://"):
        return None
    context = ssl.create_default_context()
    cert = ApiSettings.from_env().tls_cert
    if cert is not None:  # workers sharing a self-signed certificate
        context.load_verify_locations(cafile=str(cert))
    return context


def call(base: str, path: str, token: str, query: dict[str, str] | None = None, accept: str = "application/json",
         timeout_s: float = 30.0) -> tuple[int, dict, bytes]:
    """GET `path` (query from the non-empty values); returns (status, headers, body) whatever the status."""
    params = {k: v for k, v in (query or {}).items() if v}
    url = base + path + (("?" + urllib.parse.urlencode(params)) if params else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=_context(url)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ClientError(f"the statement API at {base} does not answer: {getattr(exc, 'reason', exc)}") from None


def refusal(status: int, headers: dict, body: bytes) -> str:
    try:
        detail = json.loads(body)
        text = f"{detail.get('error')}: {detail.get('message')}"
    except ValueError:
        text = body[:200].decode("utf-8", "replace")
    retry = headers.get("Retry-After")
    return f"{status} {text}" + (f" (retry after {retry} s)" if retry else "")


def statement(settings: Settings, iin: str, *, start: str | None, end: str | None, csv: bool, totals: bool,
              token_file: str | None, out=sys.stdout) -> int:
    token = read_token(token_file)
    path = f"/v1/accounts/{urllib.parse.quote(iin, safe='')}" + ("" if totals else "/statement")
    query = {} if totals else {"from": start or "", "to": end or ""}
    status, headers, body = call(api_url(settings), path, token, query, "text/csv" if csv else "application/json")
    if status != 200:
        raise ClientError(refusal(status, headers, body))
    if csv:
        out.write(body.decode("utf-8"))
    else:
        out.write(json.dumps(json.loads(body), ensure_ascii=False, indent=2) + "\n")
    lag = headers.get("X-Esep-Account-Lag")
    if lag and lag != "0":
        print(f"esep: the account trails the ledger by {lag} records", file=sys.stderr)
    return 0


AUDIT_COLUMNS = ("at", "worker", "token", "role", "method", "endpoint", "iin", "status", "outcome", "client")


def format_audit(records: list[dict]) -> list[str]:
    """One line per access, the full IIN included: the audit trail is where it is recorded."""
    lines = ["  ".join(AUDIT_COLUMNS)]
    for r in records:
        lines.append("  ".join(str(r.get(c) if r.get(c) is not None else "-") for c in AUDIT_COLUMNS))
    return lines


def audit(settings: Settings, *, iin: str | None, token_name: str | None, limit: int, token_file: str | None,
          direct: bool, out=sys.stdout) -> int:
    if direct:
        # With the broker's credentials, not a token: the way to read the trail when no worker runs.
        import asyncio

        from .statement_web import AuditTopicReader

        async def read() -> list[dict]:
            reader = AuditTopicReader(settings.resolve_broker(), settings.topics.audit_access, settings.partitions)
            try:
                return await reader.audit_records(iin=iin, token=token_name, limit=limit)
            finally:
                await reader.stop()

        records = asyncio.run(read())
    else:
        token = read_token(token_file)
        status, headers, body = call(api_url(settings), "/v1/audit", token,
                                     {"iin": iin or "", "token": token_name or "", "limit": str(limit)})
        if status != 200:
            raise ClientError(refusal(status, headers, body))
        records = json.loads(body)["records"]
    for line in format_audit(records):
        print(line, file=out)
    return 0
