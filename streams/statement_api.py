"""The statement API (issue 13) as plain async request handling: `StatementApi.handle(method, path,
query, headers)` returns `(status, headers, body)`. The faust web server (aiohttp) calls it from a
thin view; where the account lives (this worker or the partition's owner) and whether a rebalance is
in progress is the `AccountSource`'s business, so this module is testable without a server.

Order of checks, so that a refusal never tells more than the caller may know: token (401), rate
(429), method (405), route (404), role (403), IIN and parameters (400), the account (503 while a
rebalance moves it, 404 unknown), then for the `fund` role the recipient check (403, the same
whether the IIN is unknown or not a recipient). Every request, allowed or refused, writes one audit
record before it is answered; when the trail cannot be written the answer is 503 (fail closed)."""
from __future__ import annotations

import functools
import json
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Protocol

from rules.accounts import Account, parse_range, statement_csv, totals_csv
from rules.iin import mask_iin

from .access import (
    AccessError, Principal, RateLimiter, TokenStore, audit_key, audit_record, authorize, check_iin, describe,
    NAME_PATTERN,
)

__all__ = ["AccountSource", "AuditSource", "StatementApi", "Unavailable", "openapi_document", "respond_to"]

log = logging.getLogger("esep.statements")

JSON = "application/json; charset=utf-8"
CSV = "text/csv; charset=utf-8"
# Personal data: no cache anywhere on the way may keep a copy.
COMMON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
MAX_AUDIT_LIMIT = 1000

_ACCOUNT = re.compile(r"^/v1/accounts/([^/]{1,64})$")
_STATEMENT = re.compile(r"^/v1/accounts/([^/]{1,64})/statement$")


class Unavailable(Exception):
    """The account cannot be read consistently now (a rebalance in progress, the owner unreachable):
    answered 503 with Retry-After, never with a partial or stale account."""

    def __init__(self, reason: str, retry_after_s: int = 5):
        super().__init__(reason)
        self.retry_after_s = max(1, int(retry_after_s))


class AccountSource(Protocol):
    async def get_account(self, iin: str) -> Account | None:
        """The account of `iin` (read from the partition's owner), None when nothing was ever
        recorded for it; raises Unavailable when it cannot be read consistently now."""


class AuditSource(Protocol):
    async def audit_records(self, *, iin: str | None, token: str | None, limit: int) -> list[dict]:
        """Audit records (newest last) matching the filters; raises Unavailable."""


AuditSink = Callable[[str, dict], Awaitable[None]]


def _route(path: str) -> tuple[str | None, str | None, str]:
    """(endpoint, iin, template) of a path; endpoint None for no route."""
    if path == "/v1/openapi.json":
        return "openapi", None, path
    m = _STATEMENT.match(path)
    if m:
        return "statement", m.group(1), "/v1/accounts/{iin}/statement"
    m = _ACCOUNT.match(path)
    if m:
        return "account", m.group(1), "/v1/accounts/{iin}"
    if path == "/v1/audit":
        return "audit", None, path
    return None, None, path[:200]


def _wants_csv(accept: str | None) -> bool:
    """Content negotiation between JSON (the default) and CSV, by q-value then order."""
    if not accept:
        return False
    best: tuple[float, int, str] | None = None
    for order, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for f in fields[1:]:
            if f.lower().startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        kind = {"text/csv": "csv", "application/json": "json", "*/*": "json", "application/*": "json",
                "text/*": "csv"}.get(media)
        if kind and q > 0 and (best is None or q > best[0]):
            best = (q, order, kind)
    return best is not None and best[2] == "csv"


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> tuple[int, dict, bytes]:
    out = {"Content-Type": JSON, **COMMON_HEADERS, **(headers or {})}
    return status, out, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(exc: AccessError) -> tuple[int, dict, bytes]:
    return _json(exc.status, {"error": exc.outcome, "message": exc.message}, exc.headers)


class StatementApi:
    def __init__(self, tokens: TokenStore, accounts: AccountSource, audit_sink: AuditSink, *, worker: str,
                 limiter: RateLimiter | None = None, audit_source: AuditSource | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.tokens = tokens
        self.accounts = accounts
        self.audit_sink = audit_sink
        self.worker = worker
        self.limiter = limiter
        self.audit_source = audit_source
        self.clock = clock

    async def handle(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
                     client: str | None = None) -> tuple[int, dict, bytes]:
        lower = {k.lower(): v for k, v in headers.items()}
        endpoint, iin, template = _route(path)
        principal: Principal | None = None
        outcome = "ok"
        try:
            principal = self.tokens.authenticate(lower.get("authorization"))
            if self.limiter is not None:
                self.limiter.take(principal.name)
            response = await self._serve(method.upper(), endpoint, iin, query, lower, principal)
        except AccessError as exc:
            outcome, response = exc.outcome, _error(exc)
        except Unavailable as exc:
            outcome = "unavailable"
            response = _json(503, {"error": outcome, "message": str(exc)}, {"Retry-After": str(exc.retry_after_s)})
        except Exception as exc:
            # The trace may quote the IIN (an exception's text): masked like every other log line.
            log.error("statement API failed on %s %s: %s", method, masked_path(template),
                      masked_path("".join(traceback.format_exception(exc))))
            outcome, response = "error", _json(500, {"error": "error", "message": "internal error"})
        record = audit_record(principal=principal, method=method, endpoint=template,
                              iin=iin if iin is not None else query.get("iin"), query=query,
                              status=response[0], outcome=outcome, at=self.clock(), worker=self.worker,
                              client=client)
        try:
            await self.audit_sink(audit_key(principal), record)
        except Exception as exc:
            # An access that cannot be recorded is not granted (clause 7).
            log.error("audit trail not writable; refusing %s %s: %s", method, masked_path(template),
                      masked_path("".join(traceback.format_exception(exc))))
            return _json(503, {"error": "unavailable", "message": "the audit trail cannot be written"},
                         {"Retry-After": "5"})
        log.debug("%s", describe(record))
        return response

    async def _serve(self, method: str, endpoint: str | None, iin: str | None, query: Mapping[str, str],
                     headers: Mapping[str, str], principal: Principal) -> tuple[int, dict, bytes]:
        if method != "GET":
            raise AccessError(405, "method_not_allowed", "only GET is served", {"Allow": "GET"})
        if endpoint is None:
            raise AccessError(404, "not_found", "no such endpoint")
        authorize(principal.role, endpoint)
        if endpoint == "openapi":
            return 200, {"Content-Type": JSON, **COMMON_HEADERS}, _openapi_body()
        if endpoint == "audit":
            return await self._audit(query)
        check_iin(iin)
        start = end = None
        if endpoint == "statement":
            try:
                start, end = parse_range(query.get("from"), query.get("to"))
            except ValueError as exc:
                raise AccessError(400, "bad_request", str(exc)) from None
        account = await self.accounts.get_account(iin)
        if account is None or account.is_empty:
            if principal.role == "fund":
                # The same answer as for a known non-recipient: fund tokens do not learn who has an account.
                authorize(principal.role, endpoint, is_recipient=False)
            raise AccessError(404, "not_found", "nothing is recorded for this IIN")
        authorize(principal.role, endpoint, is_recipient=account.is_recipient)
        csv_wanted = _wants_csv(headers.get("accept"))
        if endpoint == "account":
            view = account.totals()
            if csv_wanted:
                return 200, {"Content-Type": CSV, **COMMON_HEADERS}, totals_csv(view).encode("utf-8")
            return _json(200, view)
        view = account.statement(start, end)
        if csv_wanted:
            return 200, {"Content-Type": CSV, "Content-Disposition": 'attachment; filename="statement.csv"',
                         **COMMON_HEADERS}, statement_csv(view).encode("utf-8")
        return _json(200, view)

    async def _audit(self, query: Mapping[str, str]) -> tuple[int, dict, bytes]:
        iin, token = query.get("iin"), query.get("token")
        if iin is not None:
            check_iin(iin)
        if token is not None and not NAME_PATTERN.fullmatch(token):
            raise AccessError(400, "bad_request", "token= is a token name")
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            raise AccessError(400, "bad_request", "limit= is a whole number") from None
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise AccessError(400, "bad_request", f"limit= is 1..{MAX_AUDIT_LIMIT}")
        if self.audit_source is None:
            raise AccessError(501, "not_configured", "this worker does not serve the audit trail")
        records = await self.audit_source.audit_records(iin=iin, token=token, limit=limit)
        return _json(200, {"records": records})


async def respond_to(api: StatementApi, request) -> tuple[int, dict, bytes]:
    """Adapter for a web framework's request (aiohttp's, which faust's web views wrap): anything with
    `method`, `path`, `query` (a mapping; repeated keys: the first), `headers` and `remote`."""
    query = {}
    for key, value in request.query.items():
        query.setdefault(key, value)
    return await api.handle(request.method, request.path, query, dict(request.headers),
                            client=getattr(request, "remote", None))


# ---- OpenAPI --------------------------------------------------------------------------------------

def _components() -> dict:
    from pydantic.json_schema import models_json_schema

    from models.accounts import AccountTotals, ApiError, AuditList, Statement

    _, top = models_json_schema([(m, "serialization") for m in (AccountTotals, Statement, AuditList, ApiError)],
                                ref_template="#/components/schemas/{model}")
    return top["$defs"]


def _errors(*statuses: int) -> dict:
    text = {400: "malformed IIN, range or filter", 401: "no token, or not a valid one",
            403: "the role may not see this", 404: "unknown IIN or endpoint", 429: "too many requests for the token",
            501: "not served by this deployment",
            503: "a rebalance is moving the account, or the audit trail cannot be written: retry after the delay"}
    out = {}
    for status in statuses:
        response = {"description": text[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}}
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[str(status)] = response
    return out


_IIN_PARAM = {"name": "iin", "in": "path", "required": True, "description": "IIN: 12 digits with a valid check digit",
              "schema": {"type": "string", "pattern": "^[0-9]{12}$"}}
_PERIOD = {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}


def openapi_document() -> dict:
    """The OpenAPI 3.1 document served at /v1/openapi.json; schemas come from models.accounts."""
    csv_text = {"text/csv": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "esep statement API",
            "version": "1",
            "description": "Personal accounts by IIN (Rules, clause 4) under access control and an audit trail "
                           "(clause 7). Every call needs a bearer token (`esep token add NAME --role R`); roles: "
                           "operator (statements), auditor (statements and the audit trail), fund (statements of "
                           "recipients of social payments only). Every call, allowed or refused, is recorded on "
                           "the audit.access topic.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/accounts/{iin}": {"get": {
                "summary": "Totals of a personal account and the months covered",
                "parameters": [_IIN_PARAM],
                "responses": {
                    "200": {"description": "the account's totals (CSV on Accept: text/csv: field,value rows)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AccountTotals"}},
                                        **csv_text}},
                    **_errors(400, 401, 403, 404, 429, 503),
                },
            }},
            "/v1/accounts/{iin}/statement": {"get": {
                "summary": "Statement of a personal account for a range of months",
                "parameters": [
                    _IIN_PARAM,
                    {"name": "from", "in": "query", "required": False, "schema": _PERIOD,
                     "description": "first month (YYYY-MM), inclusive; absent: from the start"},
                    {"name": "to", "in": "query", "required": False, "schema": _PERIOD,
                     "description": "last month (YYYY-MM), inclusive; absent: to the end"},
                ],
                "responses": {
                    "200": {"description": "contributions and penalties by period and payer with document "
                                           "numbers, reversals, refunds, social payments and overpayments "
                                           "(CSV on Accept: text/csv: one row per item)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Statement"}},
                                        **csv_text}},
                    **_errors(400, 401, 403, 404, 429, 503),
                },
            }},
            "/v1/audit": {"get": {
                "summary": "The audit trail (auditor role)",
                "parameters": [
                    {"name": "iin", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "a token's name"},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_LIMIT, "default": 100}},
                ],
                "responses": {
                    "200": {"description": "matching audit records, newest last",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuditList"}}}},
                    **_errors(400, 401, 403, 429, 501, 503),
                },
            }},
            "/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              **_errors(401, 429)},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _components(),
        },
    }


@functools.lru_cache(maxsize=1)
def _openapi_body() -> bytes:
    return json.dumps(openapi_document(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def masked_path(path: str) -> str:
    """A request path fit for a log line: any 12-digit run masked."""
    return re.sub(r"\d{12}", lambda m: mask_iin(m.group(0)), path)
