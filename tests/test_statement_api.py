"""The OpenAPI document served at /v1/openapi.json describes what the API answers: every sample
response is validated against the schema the document gives for its path, status and media type."""
from __future__ import annotations

import asyncio
import json

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from models.accounts import AccountTotals, Statement
from rules.accounts import Account, refund_lines_by_iin
from streams.access import RateLimiter, TokenStore, add_token
from streams.statement_api import StatementApi, Unavailable, openapi_document, respond_to
from tests.account_samples import IIN, OVERPAYMENTS, SOCIAL, contribution, order_refund, reversal

OTHER = "010630534571"


def full_account() -> Account:
    account = Account(IIN)
    posted = [contribution(line_no=n, period=p, knp=k, amount=a)
              for n, (p, k, a) in enumerate([("2026-09", "012", "100.00"), ("2026-10", "012", "29750.00"),
                                             ("2026-10", "017", "12.34")], start=1)]
    for rec in posted:
        account.apply("contribution", rec)
    account.apply("reversal", reversal(posted[0]))
    for _, line in refund_lines_by_iin(order_refund([(1, None, "1.00"), (2, "2026-10", "x")])):
        account.apply("refund_line", line)
    for rec in SOCIAL:
        account.apply("social_payment", rec)
    for rec in OVERPAYMENTS:
        account.apply("overpayment", rec)
    return account


class Source:
    def __init__(self):
        self.unavailable = False

    async def get_account(self, iin):
        if self.unavailable:
            raise Unavailable("rebalance")
        return full_account() if iin == IIN else None


class Trail:
    def __init__(self):
        self.records = []

    async def __call__(self, key, record):
        self.records.append(record)

    async def audit_records(self, *, iin, token, limit):
        return self.records[-limit:]


@pytest.fixture(scope="module")
def document():
    return openapi_document()


def schema_for(document, template, status, media="application/json"):
    response = document["paths"][template]["get"]["responses"][str(status)]
    schema = response["content"][media]["schema"]
    return Draft202012Validator({**schema, "components": document["components"]})


def test_the_document_is_well_formed(document):
    assert document["openapi"].startswith("3.1")
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(document)
    assert refs <= set(document["components"]["schemas"]), refs - set(document["components"]["schemas"])
    assert {"/v1/accounts/{iin}", "/v1/accounts/{iin}/statement", "/v1/audit", "/v1/openapi.json"} == set(
        document["paths"])
    assert json.loads(json.dumps(document)) == document  # plain JSON


def test_rendered_views_match_the_models_and_the_document(document):
    account = full_account()
    totals, stmt = account.totals(), account.statement()
    AccountTotals.model_validate(totals)
    Statement.model_validate(stmt)
    schema_for(document, "/v1/accounts/{iin}", 200).validate(totals)
    schema_for(document, "/v1/accounts/{iin}/statement", 200).validate(stmt)
    schema_for(document, "/v1/accounts/{iin}/statement", 200).validate(account.statement("2026-10", "2026-10"))
    schema_for(document, "/v1/accounts/{iin}/statement", 200).validate(Account(OTHER).statement())
    schema_for(document, "/v1/accounts/{iin}", 200).validate(Account(OTHER).totals())


@pytest.mark.parametrize("mutate", [
    lambda v: v["totals"].__setitem__("contributions", 29850.0),  # a float amount
    lambda v: v["periods"][0].__setitem__("period", "2026-13"),
    lambda v: v.__setitem__("surprise", 1),
    lambda v: v["refunds"][0].pop("reason"),
    lambda v: v["social_payments"][0].__setitem__("kind", "gift"),
])
def test_the_schemas_can_refuse(document, mutate):
    view = json.loads(json.dumps(full_account().statement()))
    mutate(view)
    with pytest.raises(ValidationError):
        schema_for(document, "/v1/accounts/{iin}/statement", 200).validate(view)


def test_every_answer_of_the_api_is_described(tmp_path, document):
    path = tmp_path / "tokens.json"
    tokens = {role: add_token(path, role, role) for role in ("operator", "auditor", "fund")}
    source, trail = Source(), Trail()
    api = StatementApi(TokenStore(path), source, trail, worker="w", audit_source=trail,
                       limiter=RateLimiter(rate_per_s=0.001, burst=30, clock=lambda: 0.0))
    calls = [
        ("operator", f"/v1/accounts/{IIN}", {}, "/v1/accounts/{iin}"),
        ("operator", f"/v1/accounts/{IIN}/statement", {"from": "2025-01", "to": "2026-12"},
         "/v1/accounts/{iin}/statement"),
        ("operator", f"/v1/accounts/{OTHER}", {}, "/v1/accounts/{iin}"),
        ("operator", "/v1/accounts/870314312349", {}, "/v1/accounts/{iin}"),
        ("operator", f"/v1/accounts/{IIN}/statement", {"from": "2026-00"}, "/v1/accounts/{iin}/statement"),
        ("fund", f"/v1/accounts/{OTHER}/statement", {}, "/v1/accounts/{iin}/statement"),
        (None, f"/v1/accounts/{IIN}", {}, "/v1/accounts/{iin}"),
        ("operator", "/v1/audit", {}, "/v1/audit"),
        ("auditor", "/v1/audit", {"iin": IIN}, "/v1/audit"),
        ("auditor", "/v1/audit", {"limit": "x"}, "/v1/audit"),
        ("auditor", "/v1/openapi.json", {}, "/v1/openapi.json"),
    ]
    seen = set()
    for role, url, query, template in calls:
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        status, out, raw = asyncio.run(api.handle("GET", url, query, headers))
        schema_for(document, template, status).validate(json.loads(raw))
        seen.add(status)
    source.unavailable = True
    status, out, raw = asyncio.run(api.handle("GET", f"/v1/accounts/{IIN}", {},
                                              {"Authorization": f"Bearer {tokens['operator']}"}))
    assert status == 503 and "Retry-After" in document["paths"]["/v1/accounts/{iin}"]["get"]["responses"]["503"][
        "headers"]
    schema_for(document, "/v1/accounts/{iin}", 503).validate(json.loads(raw))
    # Exhaust a bucket: 429 is described too.
    while status != 429:
        status, out, raw = asyncio.run(api.handle("GET", "/v1/openapi.json", {},
                                                  {"Authorization": f"Bearer {tokens['fund']}"}))
    schema_for(document, "/v1/openapi.json", 429).validate(json.loads(raw))
    assert seen == {200, 400, 401, 403, 404}
    # The document served is the document.
    status, _, raw = asyncio.run(api.handle("GET", "/v1/openapi.json", {},
                                            {"Authorization": f"Bearer {tokens['auditor']}"}))
    assert json.loads(raw) == document


def test_the_web_adapter_passes_the_request_through(tmp_path):
    path = tmp_path / "tokens.json"
    token = add_token(path, "ops", "operator")
    trail = Trail()
    api = StatementApi(TokenStore(path), Source(), trail, worker="w")

    class Request:  # the attributes of aiohttp's request that the adapter reads
        method = "GET"
        path = f"/v1/accounts/{IIN}/statement"
        query = {"from": "2026-10", "to": "2026-10"}
        headers = {"authorization": f"Bearer {token}", "accept": "text/csv"}
        remote = "127.0.0.1"

    status, headers, raw = asyncio.run(respond_to(api, Request()))
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert raw.decode().count("\r\n") == 1 + 2 + 1  # header, two entries of 2026-10, the refund line of 2026-10
    assert trail.records[-1]["client"] == "127.0.0.1" and trail.records[-1]["query"] == Request.query
