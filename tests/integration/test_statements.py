"""Personal accounts and the statement API on the real broker (issue 13): two workers, each request
sent to the worker that does NOT own the IIN's partition; statements equal a recount from the ledger
topics after a generated day with a SIGKILL mid-stream, and after the other worker is killed too;
each role's allowed and refused calls and the one audit record of each; `esep statement` and
`esep audit`; the OpenAPI document against the actual answers; no IIN in the workers' logs at debug."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from jsonschema import Draft202012Validator

from rules.money import format_tiyn
from streams.access import add_token
from streams.accounts import iin_partition
from streams.statement_api import openapi_document
from tools import account_recount
from tools.reading import TopicReader
from tools.synthetic import Scenario, make_orders, make_registry

from ..account_samples import OVERPAYMENTS, SOCIAL
from .harness import ROOT, Outputs, Stack, until

pytestmark = pytest.mark.integration

PARTITIONS = 4


# ---- the deployment ---------------------------------------------------------------------------------

class Deployment:
    """A stack whose workers keep accounts from all five ledger topics (the reversals and the
    recipients' ledger are produced here, standing in for their agents), with tokens of each role."""

    def __init__(self, broker, tmp_path, **env):
        self.tokens_file = tmp_path / "tokens.json"
        self.tokens = {role: add_token(self.tokens_file, f"{role}-1", role) for role in ("operator", "auditor", "fund")}
        # The test's own waiting and probing: kept apart in the audit trail from the calls it checks.
        self.probe = add_token(self.tokens_file, "probe", "operator")
        self.stack = Stack(broker, tmp_path, partitions=PARTITIONS, ESEP_PENDING="off",
                           ESEP_TOKENS_FILE=str(self.tokens_file), ESEP_API_RATE="100000",
                           ESEP_API_BURST="100000", ESEP_LOG_LEVEL="debug", **env)
        # The reversals agent's and the recipients' ledger topics, written here standing in for them.
        t = self.stack.topics
        self.extra = {"reversals": t.posted_reversals, "social_payments": t.social_payments,
                      "overpayments": t.overpayments}
        self.workers = {}

    @property
    def ledger(self) -> dict[str, str]:
        t = self.stack.topics
        return {"contributions": t.posted_contributions, "refunds": t.refunds, **self.extra}

    def start(self, *ids):
        for wid in ids:
            self.workers[wid] = self.stack.worker(wid).start()
        for w in self.workers.values():
            w.wait_ready()
        return [self.workers[w] for w in ids]

    def close(self):
        self.stack.close()


def get(worker, path, token=None, accept=None, method="GET", headers=None, timeout=30):
    """(status, headers, body) of a call to `worker`'s web server."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if accept:
        h["Accept"] = accept
    req = urllib.request.Request(f"http://127.0.0.1:{worker.port}{path}", headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def owners(dep, token, iins_by_partition) -> dict[int, str]:
    """The worker that owns each partition, as the answers say (X-Esep-Worker: who answered)."""
    any_worker = next(iter(dep.workers.values()))
    out = {}
    for p, iin in iins_by_partition.items():
        def answered():
            status, headers, _ = get(any_worker, f"/v1/accounts/{iin}", token)
            return headers.get("X-Esep-Worker") if status in (200, 404) else None
        out[p] = until(answered, 60, f"an answer for partition {p}", dep.workers.values())
    return out


def other_than(dep, worker_id):
    return next(w for wid, w in dep.workers.items() if wid != worker_id)


# ---- records standing in for the reversals agent and the recipients' ledger --------------------------

def reversal_of(entry, n):
    rec = {k: v for k, v in entry.items() if k not in ("status", "posted_at")}
    rec.update({"entry_id": entry["entry_id"] + "/reversal", "reverses": entry["entry_id"],
                "refund_decision_id": f"GFSS-RFD-TEST-{n:04d}", "received_at": "2026-11-30T15:00:00+05:00",
                "posted_at": "2026-11-30T15:00:01.000+05:00", "status": "reversed"})
    return rec


def recipient_records(person, n):
    who = {"iin": person["iin"], "surname": person["surname"], "name": person["name"],
           "patronymic": person.get("patronymic"), "birth_date": person["birth_date"]}
    social = [{**s, **who, "entry_id": f"{s['entry_id']}-{n}"} for s in SOCIAL]
    over = [{**o, "iin": person["iin"], "overpayment_id": f"{o['overpayment_id']}-{n}"} for o in OVERPAYMENTS]
    return social, over


def send_json(stack, topic, records):
    for r in records:
        stack.send(topic, r["iin"].encode(), json.dumps(r, ensure_ascii=False).encode())
    stack.flush()


def send_paced(stack, records, per_second):
    def feed():
        for i, r in enumerate(records):
            stack.send(stack.topics.credit_notifications, r.key, r.value)
            if i % 10 == 9:
                stack.flush()
                time.sleep(10 / per_second)
        stack.flush()

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


# ---- checks -------------------------------------------------------------------------------------------

def refund_line_ids(bootstrap, topic) -> set[str]:
    with TopicReader(bootstrap, [topic]) as reader:
        return {f"{v['refund_id']}/{v['line_no']}" for v in (json.loads(r.value) for r in reader.read_to_end())}


def wait_accounts_caught_up(dep, token, expected, by_partition, timeout=120):
    """Every partition's answer says it trails the ledger by 0 records, and every refund line of the
    recount has been re-keyed (the lines take one more hop)."""
    stack = dep.stack
    wanted = {f"{line['refund_id']}/{line['line_no']}" for recs in expected.values()
              for source, line in recs if source == "refund_line"}
    until(lambda: wanted <= refund_line_ids(stack.bootstrap, stack.topics.account_refund_lines), timeout,
          "refund lines re-keyed", dep.workers.values())

    def caught_up():
        for iin in by_partition.values():
            status, headers, _ = get(next(iter(dep.workers.values())), f"/v1/accounts/{iin}", token)
            if status not in (200, 404) or headers.get("X-Esep-Account-Lag") != "0":
                return False
        return True

    until(caught_up, timeout, "accounts caught up with the ledger", dep.workers.values())


def check_statements(dep, token, ledger, owner_of):
    """Each IIN asked of the worker that does not own it: the owner answers (routed), and the
    answer equals the recount; the totals equal the plain sums of distinct ids."""
    recount = account_recount.accounts(ledger)
    sums = account_recount.sums(ledger)
    checked = 0
    for iin, account in sorted(recount.items()):
        owner = owner_of[iin_partition(iin, PARTITIONS)]
        asked = other_than(dep, owner)
        status, headers, body = get(asked, f"/v1/accounts/{iin}", token)
        assert status == 200, (iin[:2], status, body[:200])
        assert headers["X-Esep-Worker"] == owner != asked.worker_id
        totals = json.loads(body)
        assert totals == json.loads(json.dumps(account.totals())), f"totals of ...{iin[-4:]} differ from the recount"
        s = sums[iin]
        assert totals["contributions"]["posted"] == format_tiyn(s["contribution"])
        assert totals["penalties"]["posted"] == format_tiyn(s["penalty"])
        assert totals["reversals"]["amount"] == format_tiyn(s["reversed"])
        assert totals["refunds"]["amount"] == format_tiyn(s["refunded"])
        assert totals["social_payments"]["payments"]["gross"] == format_tiyn(s["social_gross"])
        status, headers, body = get(asked, f"/v1/accounts/{iin}/statement", token)
        assert status == 200 and headers["X-Esep-Worker"] == owner
        assert json.loads(body) == json.loads(json.dumps(account.statement())), f"statement of ...{iin[-4:]}"
        checked += 1
    return checked


def grep_logs(dep, iins):
    """No full IIN in any worker's log, at debug."""
    for w in dep.workers.values():
        text = w.log_path.read_text(errors="replace")
        assert "DEBUG" in text, "the workers must log at debug for this check to mean anything"
        leaked = [iin for iin in iins if iin in text]
        assert not leaked, f"{len(leaked)} IINs in {w.log_path.name}, e.g. ...{leaked[0][-4:]}"


# ---- the tests ----------------------------------------------------------------------------------------

def test_statements_equal_a_recount_asked_of_the_non_owner_through_sigkills(broker, tmp_path):
    dep = Deployment(broker, tmp_path)
    stack = dep.stack
    outputs = Outputs(stack)
    token = dep.probe
    try:
        registry = make_registry(400, seed=31)
        stack.send_registry(registry)
        w1, w2 = dep.start("w1", "w2")
        time.sleep(3)  # both members joined: the group has split the partitions
        records = make_orders(registry, 300, 10, seed=31, scenario=Scenario(), id_prefix="STMT")
        expect = {r.expect["notification_id"] for r in records if r.kind == "order"}
        feeder = send_paced(stack, records, per_second=60)
        outputs.wait_for(lambda o: len(o.result_ids()) >= 80, what="80 results", workers=[w1, w2])
        w1.kill()  # mid-stream: its uncommitted orders and ledger records come again
        time.sleep(2)
        w1.start()
        feeder.join(120)
        outputs.wait_for(lambda o: o.result_ids() >= expect, timeout=240, what="every result", workers=[w1, w2])
        outputs.drain()
        redelivered = len(outputs.posted) - len({e["entry_id"] for e in outputs.posted})

        # The other ledgers: reversals of some posted entries, social payments and overpayments of
        # some persons (one with nothing else on the account).
        posted = list({e["entry_id"]: e for e in outputs.posted}.values())
        send_json(stack, dep.extra["reversals"], [reversal_of(e, n) for n, e in enumerate(posted[:25])])
        paid = [p for p in registry if not p.get("death_date")][:6]
        for n, person in enumerate(paid):
            social, over = recipient_records(person, n)
            send_json(stack, dep.extra["social_payments"], social)
            send_json(stack, dep.extra["overpayments"], over)

        ledger = account_recount.read_ledger(stack.bootstrap, dep.ledger)
        by_partition = {}
        for iin in sorted(ledger):
            by_partition.setdefault(iin_partition(iin, PARTITIONS), iin)
        assert len(by_partition) == PARTITIONS
        wait_accounts_caught_up(dep, token, ledger, by_partition)
        # After the restart both workers own partitions again (at once with static membership; after
        # a rebalance when the restart took longer than the session timeout).
        owner_of = until(lambda: (lambda o: o if set(o.values()) == {"w1", "w2"} else None)(
            owners(dep, token, by_partition)), 90, "both workers owning partitions", dep.workers.values())
        checked = check_statements(dep, token, ledger, owner_of)
        assert checked == len(ledger) > 200

        # The second worker dies too: right after, its accounts cannot be read (503 + Retry-After,
        # never a partial answer); once the group gives its partitions to w1, which reads their
        # changelog, w1 answers every account again, equal to the recount.
        lost = next(iin for iin in sorted(ledger) if owner_of[iin_partition(iin, PARTITIONS)] == "w2")
        w2.kill()
        status, headers, body = get(w1, f"/v1/accounts/{lost}", token)
        assert status == 503 and int(headers["Retry-After"]) >= 1, (status, body[:200])
        until(lambda: get(w1, f"/v1/accounts/{lost}", token)[0] == 200, 90, "w1 took the partitions over", [w1])
        assert get(w1, f"/v1/accounts/{lost}", token)[1]["X-Esep-Worker"] == "w1"
        recount = account_recount.accounts(ledger)
        for iin in sorted(ledger):
            status, _, body = get(w1, f"/v1/accounts/{iin}/statement", token)
            assert status == 200 and json.loads(body) == json.loads(json.dumps(recount[iin].statement()))
        print(f"{checked} accounts equal the recount through the non-owner; {redelivered} entries emitted again "
              f"after the SIGKILL; after the second kill w1 answers all {len(ledger)}")
        grep_logs(dep, [p["iin"] for p in registry])
    finally:
        outputs.close()
        dep.close()


def audit_records(stack) -> list[tuple[bytes, dict]]:
    with TopicReader(stack.bootstrap, [stack.topics.audit_access]) as reader:
        return [(r.key, json.loads(r.value)) for r in reader.read_to_end()]


def test_roles_audit_cli_and_the_openapi_document_on_two_workers(broker, tmp_path):
    dep = Deployment(broker, tmp_path)
    stack = dep.stack
    outputs = Outputs(stack)
    tokens = dep.tokens
    document = openapi_document()
    try:
        registry = make_registry(120, seed=5)
        stack.send_registry(registry)
        w1, w2 = dep.start("w1", "w2")
        time.sleep(3)
        records = make_orders(registry, 20, 5, seed=5, scenario=Scenario.clean(), id_prefix="ROLE")
        for r in records:
            stack.send(stack.topics.credit_notifications, r.key, r.value)
        stack.flush()
        outputs.wait_for(lambda o: len(o.result_ids()) >= 20, what="20 results", workers=[w1, w2])
        outputs.drain()
        contributor = outputs.posted[0]["iin"]
        recipient = next(p for p in registry if p["iin"] != contributor and not p.get("death_date"))
        social, over = recipient_records(recipient, 0)
        send_json(stack, dep.extra["social_payments"], social)
        send_json(stack, dep.extra["overpayments"], over)
        unknown = next(p["iin"] for p in registry if p["iin"] not in {e["iin"] for e in outputs.posted}
                       and p["iin"] != recipient["iin"])
        ledger = account_recount.read_ledger(stack.bootstrap, dep.ledger)
        by_partition = {}
        for iin in sorted(set(ledger) | {unknown}):
            by_partition.setdefault(iin_partition(iin, PARTITIONS), iin)
        wait_accounts_caught_up(dep, dep.probe, ledger, by_partition)
        owner_of = owners(dep, dep.probe, {**by_partition,
                                                    **{iin_partition(i, PARTITIONS): i for i in
                                                       (contributor, recipient["iin"], unknown)}})

        def non_owner(iin):
            return other_than(dep, owner_of[iin_partition(iin, PARTITIONS)])

        bad_iin = contributor[:-1] + str((int(contributor[-1]) + 1) % 10)
        ACC, STM = "/v1/accounts/{iin}", "/v1/accounts/{iin}/statement"
        # (token role or None or "bogus", method, path, iin for routing, template, status, outcome)
        calls = [
            ("operator", "GET", f"/v1/accounts/{contributor}", contributor, ACC, 200, "ok"),
            ("operator", "GET", f"/v1/accounts/{contributor}/statement?from=2026-01&to=2026-12", contributor, STM,
             200, "ok"),
            ("operator", "GET", f"/v1/accounts/{unknown}", unknown, ACC, 404, "not_found"),
            ("operator", "GET", f"/v1/accounts/{bad_iin}", None, ACC, 400, "bad_request"),
            ("operator", "GET", f"/v1/accounts/{contributor}/statement?from=2026-13", contributor, STM, 400,
             "bad_request"),
            ("operator", "GET", "/v1/audit", None, "/v1/audit", 403, "forbidden"),
            ("operator", "GET", "/v1/openapi.json", None, "/v1/openapi.json", 200, "ok"),
            ("operator", "POST", f"/v1/accounts/{contributor}", contributor, ACC, 405, "method_not_allowed"),
            ("auditor", "GET", f"/v1/accounts/{recipient['iin']}/statement", recipient["iin"], STM, 200, "ok"),
            ("auditor", "GET", f"/v1/audit?iin={contributor}", None, "/v1/audit", 200, "ok"),
            ("auditor", "GET", "/v1/audit?limit=0", None, "/v1/audit", 400, "bad_request"),
            ("fund", "GET", f"/v1/accounts/{recipient['iin']}", recipient["iin"], ACC, 200, "ok"),
            ("fund", "GET", f"/v1/accounts/{contributor}", contributor, ACC, 403, "not_recipient"),
            ("fund", "GET", f"/v1/accounts/{unknown}/statement", unknown, STM, 403, "not_recipient"),
            ("fund", "GET", "/v1/audit", None, "/v1/audit", 403, "forbidden"),
            (None, "GET", f"/v1/accounts/{contributor}", contributor, ACC, 401, "no_token"),
            ("bogus", "GET", f"/v1/accounts/{contributor}", contributor, ACC, 401, "bad_token"),
        ]
        expected_records = []
        for role, method, path, iin, template, status, outcome in calls:
            token = {"bogus": "esep_not-a-token", None: None}.get(role, tokens.get(role))
            asked = non_owner(iin) if iin else w1
            got, headers, body = get(asked, path, token, method=method)
            answer = json.loads(body)
            said = answer.get("error", "ok") if got != 200 else "ok"
            assert (got, said) == (status, outcome), (role, method, path.replace(contributor, "<iin>"), got, body[:200])
            answered = headers["X-Esep-Worker"]
            if iin:  # routed before any check: the owner answers (and audits) even a refusal
                assert answered == owner_of[iin_partition(iin, PARTITIONS)] != asked.worker_id
            if method == "GET" and status != 405:
                response = document["paths"][template]["get"]["responses"][str(status)]
                media = "application/json"
                schema = response["content"][media]["schema"]
                Draft202012Validator({**schema, "components": document["components"]}).validate(answer)
                for header in response.get("headers", {}):
                    assert header in headers, (template, status, header)
            if status == 200 and template == "/v1/openapi.json":
                assert json.loads(body) == json.loads(json.dumps(document))
            name = {"bogus": None, None: None}.get(role, f"{role}-1")
            path_iin = path.split("/")[3].split("?")[0] if path.startswith("/v1/accounts/") else None
            query_iin = contributor if "iin=" in path else None
            expected_records.append({"token": name, "role": role if name else None, "method": method,
                                     "endpoint": template, "iin": path_iin or query_iin, "status": status,
                                     "outcome": outcome, "worker": answered})
        # CSV on Accept: text/csv, routed like JSON.
        got, headers, body = get(non_owner(contributor), f"/v1/accounts/{contributor}/statement", tokens["operator"],
                                 accept="text/csv")
        assert got == 200 and headers["Content-Type"].startswith("text/csv") and "attachment" in headers[
            "Content-Disposition"]
        expected_records.append({"token": "operator-1", "role": "operator", "method": "GET", "endpoint": STM,
                                 "iin": contributor, "status": 200, "outcome": "ok",
                                 "worker": owner_of[iin_partition(contributor, PARTITIONS)]})

        # `esep statement` through the API and a token from the environment, asked of the non-owner.
        env = {**stack.env, "ESEP_API_TOKEN": tokens["operator"],
               "ESEP_API_URL": f"http://127.0.0.1:{non_owner(contributor).port}", "ESEP_LOG_LEVEL": "info"}
        cli = subprocess.run([sys.executable, "-m", "streams.cli", "statement", contributor, "--from", "2026-01"],
                             env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["iin"] == contributor
        expected_records.append({"token": "operator-1", "role": "operator", "method": "GET", "endpoint": STM,
                                 "iin": contributor, "status": 200, "outcome": "ok",
                                 "worker": owner_of[iin_partition(contributor, PARTITIONS)]})
        # A wrong token file: refused, and the refusal audited.
        bad_file = tmp_path / "bad-token"
        bad_file.write_text("esep_wrong\n")
        env.pop("ESEP_API_TOKEN")
        cli = subprocess.run([sys.executable, "-m", "streams.cli", "statement", contributor, "--token-file",
                              str(bad_file)], env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT,
                             timeout=60)
        assert cli.returncode == 1 and "401" in cli.stderr
        expected_records.append({"token": None, "role": None, "method": "GET", "endpoint": STM, "iin": contributor,
                                 "status": 401, "outcome": "bad_token",
                                 "worker": owner_of[iin_partition(contributor, PARTITIONS)]})

        # The trail: exactly one record per access, by the worker that answered (forwarding writes none).
        def trail_complete():
            recs = [(k, r) for k, r in audit_records(stack) if r["token"] != "probe"]
            return recs if len(recs) >= len(expected_records) else None

        trail = until(trail_complete, 30, "every access on audit.access")
        fields = ("token", "role", "method", "endpoint", "iin", "status", "outcome", "worker")
        got_records = sorted((tuple(r[f] for f in fields) for _, r in trail), key=str)
        want_records = sorted((tuple(r[f] for f in fields) for r in expected_records), key=str)
        assert got_records == want_records
        for key, r in trail:
            assert key == (r["token"] or "-").encode()
            assert r["at"] and r["audit_id"]

        # `esep audit` lists them for an auditor: through the API (itself an audited access) and from
        # the broker directly.
        auditor_env = {**env, "ESEP_API_TOKEN": tokens["auditor"]}
        by_token = subprocess.run([sys.executable, "-m", "streams.cli", "audit", "--token", "fund-1"],
                                  env={**os.environ, **auditor_env}, capture_output=True, text=True, cwd=ROOT,
                                  timeout=60)
        assert by_token.returncode == 0, by_token.stderr
        fund_calls = [r for r in expected_records if r["token"] == "fund-1"]
        lines = by_token.stdout.strip().splitlines()[1:]
        assert len(lines) == len(fund_calls) and all(" fund-1 " in ln for ln in lines)
        by_iin = subprocess.run([sys.executable, "-m", "streams.cli", "audit", "--iin", contributor, "--direct"],
                                env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert by_iin.returncode == 0, by_iin.stderr
        about = [r for r in expected_records if r["iin"] == contributor]
        listed = [ln for ln in by_iin.stdout.strip().splitlines()[1:] if "  probe  " not in ln]
        assert len(listed) == len(about) and all(contributor in ln for ln in listed)
        operator_audit = subprocess.run([sys.executable, "-m", "streams.cli", "audit", "--iin", contributor],
                                        env={**os.environ, **env, "ESEP_API_TOKEN": tokens["operator"]},
                                        capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert operator_audit.returncode == 1 and "403" in operator_audit.stderr

        grep_logs(dep, [p["iin"] for p in registry] + [bad_iin])
    finally:
        outputs.close()
        dep.close()
