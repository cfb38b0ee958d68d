"""Access control of the statement API: tokens, roles, refusals (401/403/400/404/405/429/503), the
audit record of every call, and no full IIN or token in any log line at debug."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import stat
from datetime import datetime, timezone

import pytest

from models.audit import AuditAccess
from rules.accounts import Account
from streams import access
from streams.access import (
    AccessError, ApiSettings, Principal, RateLimiter, TokenStore, add_token, audit_record, authorize, check_iin,
    list_tokens,
)
from streams.settings import SettingsError
from streams.statement_api import StatementApi, Unavailable
from tests.account_samples import IIN, OVERPAYMENTS, SOCIAL, contribution

RECIPIENT = IIN  # has social payments
CONTRIBUTOR = "010630534571"  # contributions only
UNKNOWN = "921102423450"  # valid, never recorded
BAD_CHECK_DIGIT = "870314312349"
ALL_IINS = (RECIPIENT, CONTRIBUTOR, UNKNOWN, BAD_CHECK_DIGIT)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Accounts:
    def __init__(self):
        recipient = Account(RECIPIENT)
        recipient.apply("contribution", contribution())
        for rec in SOCIAL:
            recipient.apply("social_payment", rec)
        for rec in OVERPAYMENTS:
            recipient.apply("overpayment", rec)
        contributor = Account(CONTRIBUTOR)
        contributor.apply("contribution", contribution(iin=CONTRIBUTOR, line_no=3, amount="4250.00"))
        self.accounts = {RECIPIENT: recipient, CONTRIBUTOR: contributor}
        self.unavailable = False
        self.asked: list[str] = []

    async def get_account(self, iin):
        self.asked.append(iin)
        if self.unavailable:
            raise Unavailable("partition 3 is being reassigned", retry_after_s=7)
        return self.accounts.get(iin)


class Trail:
    """The audit sink and, for the auditor's endpoint, the source."""

    def __init__(self):
        self.records: list[tuple[str, dict]] = []
        self.broken = False

    async def __call__(self, key, record):
        if self.broken:
            raise OSError("broker unreachable")
        self.records.append((key, record))

    async def audit_records(self, *, iin, token, limit):
        out = [r for _, r in self.records if (iin is None or r["iin"] == iin) and (token is None or r["token"] == token)]
        return out[-limit:]


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens.json"
    return path, {role: add_token(path, f"{role}-1", role) for role in ("operator", "auditor", "fund")}


@pytest.fixture
def env(tokens):
    path, clear = tokens
    clock = Clock()
    trail = Trail()
    accounts = Accounts()
    api = StatementApi(TokenStore(path), accounts, trail, worker="worker-a",
                       limiter=RateLimiter(rate_per_s=1.0, burst=3, clock=clock), audit_source=trail,
                       clock=lambda: NOW)
    return api, clear, trail, accounts, clock


def call(api, path, token=None, method="GET", query=None, accept=None, client="127.0.0.1"):
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if accept:
        headers["Accept"] = accept
    return asyncio.run(api.handle(method, path, query or {}, headers, client=client))


def body(response) -> dict:
    return json.loads(response[2])


# ---- tokens ---------------------------------------------------------------------------------

def test_the_token_file_never_holds_a_clear_token(tokens):
    path, clear = tokens
    text = path.read_text()
    for token in clear.values():
        assert token.startswith("esep_") and len(token) > 40
        assert token not in text and token[5:] not in text
    data = json.loads(text)
    assert {t["name"]: t["role"] for t in data["tokens"]} == {"operator-1": "operator", "auditor-1": "auditor",
                                                              "fund-1": "fund"}
    assert len({t["salt"] for t in data["tokens"]}) == 3  # a salt per token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [name for name, _, _ in list_tokens(path)] == ["operator-1", "auditor-1", "fund-1"]


def test_token_names_are_unique_and_roles_known(tokens):
    path, _ = tokens
    with pytest.raises(ValueError, match="exists"):
        add_token(path, "operator-1", "operator")
    with pytest.raises(ValueError, match="role"):
        add_token(path, "x", "admin")
    for bad in ("", "-x", "a b", "ж", "x" * 65, "a/b"):
        with pytest.raises(ValueError, match="name"):
            add_token(path, bad, "operator")


def test_authentication(tokens):
    path, clear = tokens
    store = TokenStore(path)
    assert store.authenticate(f"Bearer {clear['auditor']}") == Principal("auditor-1", "auditor")
    assert store.authenticate(f"bearer   {clear['fund']} ") == Principal("fund-1", "fund")
    for header, outcome in [(None, "no_token"), ("", "no_token"), (f"Basic {clear['operator']}", "no_token"),
                            ("Bearer", "no_token"), ("Bearer esep_wrong", "bad_token"),
                            (f"Bearer {clear['operator']}x", "bad_token"), ("Bearer " + "a" * 10_000, "bad_token")]:
        with pytest.raises(AccessError) as info:
            store.authenticate(header)
        assert (info.value.status, info.value.outcome) == (401, outcome)
        assert info.value.headers["WWW-Authenticate"].startswith("Bearer")
    # A token added while the store runs is accepted without a restart.
    later = add_token(path, "late", "operator")
    assert store.authenticate(f"Bearer {later}").name == "late"
    assert TokenStore(None)._current() == ()


def test_every_stored_token_is_compared_in_constant_time(tokens, monkeypatch):
    path, clear = tokens
    seen = []
    real = access.hmac.compare_digest

    def spy(a, b):
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    store = TokenStore(path)
    store.authenticate(f"Bearer {clear['operator']}")  # the first stored token: still all three compared
    assert len(seen) == 3 and all(a == b == 32 for a, b in seen)
    with pytest.raises(AccessError):
        store.authenticate("Bearer esep_nope")
    assert len(seen) == 6


def test_authorize_and_iin_checks():
    authorize("operator", "statement")
    authorize("auditor", "audit")
    authorize("fund", "statement", is_recipient=True)
    authorize("fund", "statement")  # not known yet: decided once the account is read
    for role, endpoint, recipient, outcome in [("operator", "audit", None, "forbidden"),
                                               ("fund", "audit", None, "forbidden"),
                                               ("fund", "account", False, "not_recipient"),
                                               ("nobody", "account", None, "forbidden")]:
        with pytest.raises(AccessError) as info:
            authorize(role, endpoint, recipient)
        assert (info.value.status, info.value.outcome) == (403, outcome)
    assert check_iin(IIN) == IIN
    for bad in (BAD_CHECK_DIGIT, "87031431234", "8703143123480", "87031431234a", "８７０３１４３１２３４８"):
        with pytest.raises(AccessError) as info:
            check_iin(bad)
        assert info.value.status == 400


def test_the_rate_limiter_is_a_token_bucket_per_token():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=0.5, burst=2, clock=clock)
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(AccessError) as info:
        limiter.take("a")
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "2"
    limiter.take("b")  # another token has its own bucket
    clock.t += 2.0
    limiter.take("a")
    with pytest.raises(AccessError):
        limiter.take("a")
    clock.t += 3600
    limiter.take("a")
    limiter.take("a")  # refilled to the burst, not beyond
    with pytest.raises(AccessError):
        limiter.take("a")


def test_settings():
    s = ApiSettings.from_env({"ESEP_TOKENS_FILE": "/etc/esep/tokens.json", "ESEP_API_RATE": "2.5"})
    assert (str(s.tokens_file), s.rate_per_s, s.burst, s.tls_cert) == ("/etc/esep/tokens.json", 2.5, 20, None)
    with pytest.raises(SettingsError, match="together"):
        ApiSettings.from_env({"ESEP_TLS_CERT": "/c.pem"})
    with pytest.raises(SettingsError):
        ApiSettings.from_env({"ESEP_API_BURST": "0"})


# ---- the API: each role's allowed and refused calls, each with its audit record -------------------

CASES = [
    # role, path, query, status, outcome
    ("operator", f"/v1/accounts/{CONTRIBUTOR}", {}, 200, "ok"),
    ("operator", f"/v1/accounts/{RECIPIENT}/statement", {"from": "2025-01", "to": "2026-12"}, 200, "ok"),
    ("operator", f"/v1/accounts/{UNKNOWN}", {}, 404, "not_found"),
    ("operator", f"/v1/accounts/{BAD_CHECK_DIGIT}", {}, 400, "bad_request"),
    ("operator", "/v1/accounts/abc/statement", {}, 400, "bad_request"),
    ("operator", f"/v1/accounts/{CONTRIBUTOR}/statement", {"from": "2026-13"}, 400, "bad_request"),
    ("operator", f"/v1/accounts/{CONTRIBUTOR}/statement", {"from": "2026-05", "to": "2026-04"}, 400, "bad_request"),
    ("operator", "/v1/audit", {}, 403, "forbidden"),
    ("operator", "/v1/openapi.json", {}, 200, "ok"),
    ("operator", "/v1/elsewhere", {}, 404, "not_found"),
    ("auditor", f"/v1/accounts/{CONTRIBUTOR}/statement", {}, 200, "ok"),
    ("auditor", f"/v1/accounts/{RECIPIENT}", {}, 200, "ok"),
    ("auditor", "/v1/audit", {"iin": RECIPIENT}, 200, "ok"),
    ("auditor", "/v1/audit", {"token": "operator-1", "limit": "5"}, 200, "ok"),
    ("auditor", "/v1/audit", {"iin": BAD_CHECK_DIGIT}, 400, "bad_request"),
    ("auditor", "/v1/audit", {"limit": "0"}, 400, "bad_request"),
    ("auditor", f"/v1/accounts/{UNKNOWN}/statement", {}, 404, "not_found"),
    ("fund", f"/v1/accounts/{RECIPIENT}/statement", {"from": "2025-04", "to": "2025-04"}, 200, "ok"),
    ("fund", f"/v1/accounts/{RECIPIENT}", {}, 200, "ok"),
    ("fund", f"/v1/accounts/{CONTRIBUTOR}", {}, 403, "not_recipient"),
    ("fund", f"/v1/accounts/{CONTRIBUTOR}/statement", {}, 403, "not_recipient"),
    ("fund", f"/v1/accounts/{UNKNOWN}", {}, 403, "not_recipient"),  # unknown looks like any non-recipient
    ("fund", "/v1/audit", {}, 403, "forbidden"),
    ("fund", "/v1/openapi.json", {}, 200, "ok"),
    (None, f"/v1/accounts/{RECIPIENT}", {}, 401, "no_token"),
    ("wrong", f"/v1/accounts/{RECIPIENT}/statement", {}, 401, "bad_token"),
    (None, "/v1/openapi.json", {}, 401, "no_token"),
]


@pytest.mark.parametrize("role, path, query, status, outcome", CASES)
def test_each_role_and_its_audit_record(env, role, path, query, status, outcome):
    api, clear, trail, accounts, clock = env
    token = {None: None, "wrong": "esep_not-a-token"}.get(role, clear.get(role))
    response = call(api, path, token, query=query)
    assert response[0] == status, response[2]
    assert response[1]["Cache-Control"] == "no-store"
    if status != 200:
        assert body(response) == {"error": outcome, "message": body(response)["message"]}
    if status == 401:
        assert "WWW-Authenticate" in response[1]
    # One audit record, whatever the answer.
    assert len(trail.records) == 1
    key, record = trail.records[0]
    AuditAccess.model_validate(record)
    named = role in ("operator", "auditor", "fund")
    assert key == (f"{role}-1" if named else "-")
    assert (record["token"], record["role"]) == ((f"{role}-1", role) if named else (None, None))
    assert (record["status"], record["outcome"], record["worker"], record["method"]) == (status, outcome,
                                                                                          "worker-a", "GET")
    assert record["at"] == "2026-12-01T10:00:00.000+00:00" and record["client"] == "127.0.0.1"
    asked = path.split("/")[3] if path.startswith("/v1/accounts/") else query.get("iin")
    assert record["iin"] == asked
    assert record["query"] == {k: v for k, v in query.items()}
    assert "{iin}" in record["endpoint"] or not path.startswith("/v1/accounts/")


def test_the_account_is_never_read_before_the_caller_may_see_it(env):
    api, clear, trail, accounts, clock = env
    call(api, f"/v1/accounts/{RECIPIENT}")  # no token
    call(api, f"/v1/accounts/{BAD_CHECK_DIGIT}", clear["operator"])
    call(api, f"/v1/accounts/{RECIPIENT}", clear["operator"], method="POST")
    assert accounts.asked == []


def test_responses_carry_the_account(env):
    api, clear, trail, accounts, clock = env
    totals = body(call(api, f"/v1/accounts/{RECIPIENT}", clear["operator"]))
    assert totals["contributions"]["posted"] == "29750.00"
    assert totals["social_payments"]["payments"]["gross"] == "162903.28"
    stmt = body(call(api, f"/v1/accounts/{RECIPIENT}/statement", clear["fund"], query={"from": "2025-04",
                                                                                         "to": "2025-04"}))
    assert (stmt["from"], stmt["to"]) == ("2025-04", "2025-04")
    assert [s["entry_id"] for s in stmt["social_payments"]] == ["GFSS-TRF-2025-000202", "GFSS-TRF-2025-000204"]
    audit = body(call(api, "/v1/audit", clear["auditor"], query={"iin": RECIPIENT}))
    assert [r["token"] for r in audit["records"]] == ["operator-1", "fund-1"]


def test_csv_on_accept(env):
    api, clear, *_ = env
    status, headers, raw = call(api, f"/v1/accounts/{RECIPIENT}/statement", clear["operator"],
                                accept="text/csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert {r["section"] for r in rows} == {"contributions", "social_payments", "overpayments"}
    status, headers, raw = call(api, f"/v1/accounts/{RECIPIENT}", clear["operator"], accept="text/csv, */*;q=0.1")
    assert headers["Content-Type"].startswith("text/csv") and raw.startswith(b"field,value\r\n")
    for accept in (None, "application/json", "*/*", "text/csv;q=0.2, application/json", "text/csv;q=0", "image/png"):
        status, headers, raw = call(api, f"/v1/accounts/{RECIPIENT}", clear["operator"], accept=accept)
        assert headers["Content-Type"].startswith("application/json"), accept


def test_405_for_other_methods(env):
    api, clear, trail, *_ = env
    status, headers, _ = call(api, f"/v1/accounts/{RECIPIENT}", clear["operator"], method="DELETE")
    assert status == 405 and headers["Allow"] == "GET"
    assert trail.records[-1][1]["outcome"] == "method_not_allowed"


def test_429_per_token_with_retry_after(env):
    api, clear, trail, accounts, clock = env
    statuses = [call(api, f"/v1/accounts/{CONTRIBUTOR}", clear["operator"])[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    status, headers, _ = call(api, f"/v1/accounts/{CONTRIBUTOR}", clear["operator"])
    assert status == 429 and headers["Retry-After"] == "1"
    assert call(api, f"/v1/accounts/{CONTRIBUTOR}", clear["auditor"])[0] == 200  # its own bucket
    clock.t += 1.0
    assert call(api, f"/v1/accounts/{CONTRIBUTOR}", clear["operator"])[0] == 200
    outcomes = [r["outcome"] for _, r in trail.records]
    assert outcomes.count("rate_limited") == 2 and len(outcomes) == 7


def test_503_with_retry_after_during_a_rebalance(env):
    api, clear, trail, accounts, clock = env
    accounts.unavailable = True
    status, headers, raw = call(api, f"/v1/accounts/{RECIPIENT}/statement", clear["operator"])
    assert status == 503 and headers["Retry-After"] == "7"
    assert json.loads(raw)["error"] == "unavailable"
    assert trail.records[-1][1]["status"] == 503


def test_no_answer_without_an_audit_record(env):
    api, clear, trail, accounts, clock = env
    trail.broken = True
    status, headers, raw = call(api, f"/v1/accounts/{RECIPIENT}", clear["operator"])
    assert status == 503 and b"29750" not in raw and headers["Retry-After"]


def test_the_audit_endpoint_needs_a_source(tokens):
    path, clear = tokens
    api = StatementApi(TokenStore(path), Accounts(), Trail(), worker="w")
    assert call(api, "/v1/audit", clear["auditor"])[0] == 501


def test_audit_record_cuts_values_as_sent():
    record = audit_record(principal=None, method="GET" * 10, endpoint="/x" * 500, iin="9" * 100,
                          query={"from": "x" * 500, "other": "ignored"}, status=400, outcome="bad_request",
                          at=NOW, worker="w")
    AuditAccess.model_validate(record)
    assert len(record["iin"]) == 32 and record["query"] == {"from": "x" * 64}


def test_no_full_iin_nor_token_in_any_log_line_at_debug(env, caplog):
    api, clear, trail, accounts, clock = env
    caplog.set_level(logging.DEBUG)

    async def failing(iin):
        raise RuntimeError(f"cannot read account {iin}")  # an error that carries the IIN in its text

    with caplog.at_level(logging.DEBUG):
        for role, path, query, _, _ in CASES:
            clock.t += 100  # no rate limit in the way
            call(api, path, clear.get(role, "esep_bad"), query=query)
        accounts.get_account = failing
        assert call(api, f"/v1/accounts/{RECIPIENT}", clear["auditor"])[0] == 500
        trail.broken = True
        call(api, f"/v1/accounts/{CONTRIBUTOR}/statement", clear["auditor"])
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    lines = [r for r in caplog.records if r.name.startswith("esep")]
    assert len(lines) >= len(CASES)  # the requests are logged (masked), so the check below means something
    assert "87******2348" in text
    for iin in ALL_IINS:
        assert iin not in text, iin
    for token in clear.values():
        assert token not in text and token[5:] not in text


def test_esep_token_add_prints_the_token_once_and_stores_its_hash(tmp_path, monkeypatch, capsys):
    from streams.cli import main

    path = tmp_path / "etc" / "tokens.json"
    monkeypatch.setenv("ESEP_TOKENS_FILE", str(path))
    assert main(["token", "add", "ops-7", "--role", "auditor"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("esep_") and "\n" not in token and token not in err and "shown only now" in err
    assert token not in path.read_text()
    assert TokenStore(path).authenticate(f"Bearer {token}") == Principal("ops-7", "auditor")
    assert main(["token", "add", "ops-7", "--role", "operator"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ops-7" in listing and "auditor" in listing and token not in listing
    with pytest.raises(SystemExit):
        main(["token", "add", "x", "--role", "admin"])
    monkeypatch.delenv("ESEP_TOKENS_FILE")
    assert main(["token", "add", "y", "--role", "fund"]) == 1
    assert "ESEP_TOKENS_FILE" in capsys.readouterr().err
