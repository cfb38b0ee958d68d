"""Access control of the statement API (Rules, clause 7): bearer tokens kept hashed in a file, roles,
a per-token request rate limit, and the audit record of every request.

Tokens are 256-bit random strings, so a salted SHA-256 is as good as a slow password hash against a
stolen token file (nothing to guess), and keeps each request's check to microseconds. Every stored
hash is compared, with `hmac.compare_digest`, whatever matched first: the time taken does not tell
which token or how much of it was right."""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from models.audit import ANONYMOUS_KEY
from rules.iin import is_valid_iin, mask_iin

from .settings import SettingsError, _env, _float, _int

__all__ = [
    "AccessError",
    "ApiSettings",
    "Principal",
    "RateLimiter",
    "ROLES",
    "TokenStore",
    "add_token",
    "audit_key",
    "audit_record",
    "authorize",
    "check_iin",
    "list_tokens",
]

log = logging.getLogger("esep.access")

ROLES = ("operator", "auditor", "fund")
# What each role may call; "fund" sees statements of recipients of social payments only.
PERMISSIONS = {
    "operator": frozenset({"openapi", "account", "statement"}),
    "auditor": frozenset({"openapi", "account", "statement", "audit"}),
    "fund": frozenset({"openapi", "account", "statement"}),
}
RECIPIENTS_ONLY = frozenset({"fund"})
TOKEN_PREFIX = "esep_"  # lets secret scanners recognise a leaked token
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_TOKEN_CHARS = 256  # longer headers are refused before any hashing
FILE_VERSION = 1


@dataclass(frozen=True)
class ApiSettings:
    """The statement API's settings (environment variables, like streams.settings)."""

    tokens_file: Path | None
    rate_per_s: float
    burst: int
    tls_cert: Path | None
    tls_key: Path | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ApiSettings":
        tokens = _env("ESEP_TOKENS_FILE", "", environ)
        cert, key = _env("ESEP_TLS_CERT", "", environ), _env("ESEP_TLS_KEY", "", environ)
        if bool(cert) != bool(key):
            raise SettingsError("ESEP_TLS_CERT and ESEP_TLS_KEY go together: set both or neither")
        return cls(
            tokens_file=Path(tokens).expanduser() if tokens else None,
            rate_per_s=_float("ESEP_API_RATE", 10.0, 0.001, environ),
            burst=_int("ESEP_API_BURST", 20, 1, environ),
            tls_cert=Path(cert).expanduser() if cert else None,
            tls_key=Path(key).expanduser() if key else None,
        )


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


class AccessError(Exception):
    """A refused request: the HTTP status, the outcome code (as in the audit record), and headers."""

    def __init__(self, status: int, outcome: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.message = message
        self.headers = dict(headers or {})


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="esep"'}


def _digest(token: str, salt: bytes) -> bytes:
    return hmac.new(salt, token.encode("utf-8"), hashlib.sha256).digest()


# ---- the token file -----------------------------------------------------------------------------

def _read_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": FILE_VERSION, "tokens": []}
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION or not isinstance(data.get("tokens"), list):
        raise ValueError(f"{path} is not an esep token file (version {FILE_VERSION})")
    return data


def _write_file(path: Path, data: dict) -> None:
    """Atomically, readable by the owner only: the hashes are not secrets, but need not be public."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def add_token(path: str | os.PathLike, name: str, role: str, *, now: datetime | None = None) -> str:
    """A new token for `name` with `role`, stored as a salted hash; the clear token is returned once
    and exists nowhere else. A name is unique (it keys the audit trail and the rate limit)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError("a token name is 1-64 characters of letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    # Two `esep token add` at once must not lose one of the tokens.
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read_file(path)
        if any(t.get("name") == name for t in data["tokens"]):
            raise ValueError(f"a token named {name!r} exists already")
        data["tokens"].append({
            "name": name,
            "role": role,
            "salt": salt.hex(),
            "sha256": _digest(token, salt).hex(),
            "created_at": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        })
        _write_file(path, data)
    return token


def list_tokens(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """(name, role, created_at) of every token in the file."""
    return [(t["name"], t["role"], t.get("created_at", "")) for t in _read_file(Path(path))["tokens"]]


@dataclass(frozen=True)
class _Stored:
    name: str
    role: str
    salt: bytes
    digest: bytes


class TokenStore:
    """The token file, re-read when it changes on disk, so `esep token add` works without a restart."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._stamp: tuple | None = None
        self._tokens: tuple[_Stored, ...] = ()
        self._lock = threading.Lock()

    def _current(self) -> tuple[_Stored, ...]:
        if self.path is None:
            return ()
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                tokens = []
                for t in _read_file(self.path)["tokens"] if stamp else []:
                    if t.get("role") in ROLES:
                        tokens.append(_Stored(t["name"], t["role"], bytes.fromhex(t["salt"]),
                                              bytes.fromhex(t["sha256"])))
                self._tokens, self._stamp = tuple(tokens), stamp
                log.info("token file loaded: %d tokens", len(tokens))
            return self._tokens

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization: Bearer <token>` header, else AccessError 401."""
        if not authorization:
            raise AccessError(401, "no_token", "a bearer token is required", UNAUTHORIZED_HEADERS)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AccessError(401, "no_token", "use Authorization: Bearer <token>", UNAUTHORIZED_HEADERS)
        if len(token) > MAX_TOKEN_CHARS:
            raise AccessError(401, "bad_token", "the token is not valid", UNAUTHORIZED_HEADERS)
        found = None
        for stored in self._current():
            # No early exit: every stored token is checked, in constant time each.
            if hmac.compare_digest(_digest(token, stored.salt), stored.digest) and found is None:
                found = stored
        if found is None:
            raise AccessError(401, "bad_token", "the token is not valid", UNAUTHORIZED_HEADERS)
        return Principal(found.name, found.role)


# ---- decisions --------------------------------------------------------------------------------

def authorize(role: str, endpoint: str, is_recipient: bool | None = None) -> None:
    """AccessError 403 unless `role` may call `endpoint`. `is_recipient` is asked only for the roles
    limited to recipients of social payments; None means "not known yet" (checked once the account
    is read)."""
    if endpoint not in PERMISSIONS.get(role, ()):
        raise AccessError(403, "forbidden", f"the {role} role may not use this endpoint")
    if role in RECIPIENTS_ONLY and endpoint in ("account", "statement") and is_recipient is False:
        raise AccessError(403, "not_recipient", f"the {role} role sees recipients of social payments only")


def check_iin(value: str) -> str:
    """The IIN of a request, else AccessError 400 (12 digits with a matching check digit)."""
    if not is_valid_iin(value):
        raise AccessError(400, "bad_request", "not a valid IIN (12 digits with a matching check digit)")
    return value


class RateLimiter:
    """A token bucket per principal: `burst` requests at once, refilled at `rate_per_s`."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate, self.burst, self.clock = rate_per_s, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Use one request of `key`'s bucket, else AccessError 429 with Retry-After (whole seconds)."""
        with self._lock:
            now = self.clock()
            level, last = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - last) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return
            self._buckets[key] = (level, now)
        wait = max(1, math.ceil((1.0 - level) / self.rate))
        raise AccessError(429, "rate_limited", "too many requests for this token",
                          {"Retry-After": str(wait)})


# ---- the audit record ---------------------------------------------------------------------------

AUDITED_PARAMS = ("from", "to", "iin", "token", "limit")


def audit_key(principal: Principal | None) -> str:
    return principal.name if principal else ANONYMOUS_KEY


def audit_record(*, principal: Principal | None, method: str, endpoint: str, iin: str | None,
                 query: Mapping[str, str], status: int, outcome: str, at: datetime, worker: str,
                 client: str | None = None) -> dict:
    """The `audit.access` record of one request (models.audit.AuditAccess). The full IIN is kept here
    and nowhere else; values as sent are cut short so that a hostile request cannot flood the trail."""
    return {
        "schema_version": 1,
        "audit_id": uuid.uuid4().hex,
        "token": principal.name if principal else None,
        "role": principal.role if principal else None,
        "method": method[:16],
        "endpoint": endpoint[:200],
        "iin": None if iin is None else iin[:32],
        "query": {k: str(query[k])[:64] for k in AUDITED_PARAMS if k in query},
        "status": status,
        "outcome": outcome,
        "at": at.isoformat(timespec="milliseconds"),
        "worker": worker,
        "client": client,
    }


def describe(record: dict) -> str:
    """A log line for an audit record: the IIN masked, as everywhere outside the audit topic."""
    return (f"{record['method']} {record['endpoint']} iin={mask_iin(record['iin']) if record['iin'] else '-'} "
            f"token={record['token'] or '-'} role={record['role'] or '-'} -> {record['status']} {record['outcome']}")
