"""`audit.access` (key: the token's name, `-` when no valid token was shown): one record per request
to the statement API, allowed or refused (Rules, clause 7). The one place where the full IIN of a
request is recorded: logs and metrics mask it."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import OutputModel

AUDIT_TOPIC = "audit.access"
ANONYMOUS_KEY = "-"

Outcome = Literal[
    "ok",  # 200
    "bad_request",  # 400: malformed IIN, range or filter
    "no_token",  # 401: no bearer token
    "bad_token",  # 401: a token that is not in the token file
    "forbidden",  # 403: the role may not use the endpoint
    "not_recipient",  # 403: the fund role asked for someone who is not a recipient
    "not_found",  # 404: unknown IIN or endpoint
    "method_not_allowed",  # 405
    "rate_limited",  # 429
    "unavailable",  # 503: rebalance in progress, the owner unreachable, or the audit trail not writable
    "not_configured",  # 501
    "error",  # 500
]


class AuditAccess(OutputModel):
    schema_version: Literal[1]
    audit_id: str = Field(description="unique per request (random): consumers de-duplicate by it")
    token: str | None = Field(description="the token's name; null when no valid token was shown")
    role: Literal["operator", "auditor", "fund"] | None
    method: str = Field(max_length=16)
    endpoint: str = Field(description="the route template, e.g. /v1/accounts/{iin}/statement; the path as "
                                      "requested (cut to 200 characters) when no route matched", max_length=200)
    iin: str | None = Field(description="the IIN asked for, as sent (cut to 32 characters); null when none",
                            max_length=32)
    query: dict[str, str] = Field(description="the known query parameters as sent (from, to, iin, token, limit)")
    status: int = Field(ge=100, le=599)
    outcome: Outcome
    at: str = Field(description="the worker's clock when the request was answered (RFC 3339)")
    worker: str = Field(description="ESEP_WORKER_ID of the worker that answered")
    client: str | None = Field(description="the peer address as the web server saw it, when known")
