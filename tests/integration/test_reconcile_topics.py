"""`esep reconcile` on the real broker: it reads what a real worker emitted (every reason code, a
repeat, a re-keyed record, malformed records) and finds it reconciled; then a lost order and a
line posted after its refund are found and named; and the ledger topics are kept forever."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from rules.calendar import ALMATY
from streams.topics import admin_client

from ..cases import A, _line, _order, cases, example_notification, malformed, registry_persons
from .harness import ROOT, Outputs, Stack

pytestmark = pytest.mark.integration


def reconcile(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", "reconcile", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_reconcile_reads_a_real_workers_outputs_and_finds_breaches(broker, tmp_path):
    stack = Stack(broker, tmp_path, ESEP_PENDING="off")
    outputs = Outputs(stack)
    try:
        stack.send_registry(registry_persons())
        worker = stack.worker().start()
        worker.wait_ready()
        expected = {order["notification_id"] for order, _, _ in cases()}
        for order, _, _ in cases():
            key = b"not-its-id" if order["notification_id"] == "T-ALLPOSTED-5" else None
            stack.send_notification(order, key=key)
        stack.send_notification(example_notification())  # a repeat
        bad = malformed()
        for key, value, _, _ in bad:
            stack.send(stack.topics.credit_notifications, key, value)
        stack.flush()
        outputs.wait_for(lambda o: o.result_ids() >= expected and len(o.dead_letters) >= len(bad),
                         what="every result and dead letter", workers=[worker])
        worker.stop()

        clean = reconcile(worker.env, "--strict", "--json", str(tmp_path / "report.json"))
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "RECONCILED" in clean.stdout
        report = json.loads((tmp_path / "report.json").read_text())
        f = report["figures"]
        assert f["orders"] == len(expected) and f["decided"] == len(expected)
        assert f["dead_lettered"] == len(bad)
        assert f["copies"] == 2  # the repeat, and the re-keyed record moved to its id's partition
        assert f["lines_posted"] + f["lines_refunded"] == f["lines"] > 0
        assert f["posted_tiyn"] + f["refunded_tiyn"] == f["received_tiyn"]

        # Breaches: an order no worker decided (none runs), and a refunded line that gets posted too.
        now = datetime.now(ALMATY).isoformat(timespec="seconds")
        stack.send_notification(_order("T-LOST-13", [_line(1, A)], received_at=now))
        refunded = next(r for r in outputs.refunds if r["notification_id"] == "T-LINES-2")
        line = next(ln for ln in refunded["lines"] if ln["reason"] == "NAME_MISMATCH")
        twin = {**next(e for e in outputs.posted if e["entry_id"] == "T-LINES-2/1"),
                "entry_id": f"T-LINES-2/{line['line_no']}", "iin": line["iin"], "amount": line["amount"]}
        stack.send(stack.topics.posted_contributions, line["iin"].encode(), json.dumps(twin).encode())
        stack.flush()
        broken = reconcile(worker.env, "--strict")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "no_result (1)" in broken.stdout and "T-LOST-13" in broken.stdout
        assert "line_doubled (1)" in broken.stdout and f"T-LINES-2/{line['line_no']}" in broken.stdout
        assert line["iin"] not in broken.stdout, "IINs are masked"
        # Not strict: an order still within its deadline may be held, so it is not (yet) lost.
        lenient = reconcile(worker.env)
        assert "no_result" not in lenient.stdout and "line_doubled (1)" in lenient.stdout
    finally:
        outputs.close()
        stack.close()


def test_ledger_topics_are_kept_forever(broker, tmp_path):
    stack = Stack(broker, tmp_path)
    t = stack.topics
    ledger = [t.posted_contributions, t.refunds, t.order_results, t.dead_letters]
    admin = admin_client(broker)
    try:
        def retention() -> dict[str, str]:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n, {"retention.ms": None})
                                                for n in [*ledger, t.credit_notifications]], config_filter="all")
            return {n: c["retention.ms"]["value"] for n, c in described["topic"].items()}

        kept = retention()
        assert {kept[n] for n in ledger} == {"-1"}, kept
        assert kept[t.credit_notifications] != "-1", "only the ledger is kept forever"

        # A ledger topic created before the rule gets it at the next start.
        from streams.topics import ensure_topics

        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.refunds, {"retention.ms": "604800000"})])
        deadline = time.monotonic() + 30
        while retention()[t.refunds] != "604800000" and time.monotonic() < deadline:
            time.sleep(0.2)
        ensure_topics(stack.settings, broker)
        while retention()[t.refunds] != "-1" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert retention()[t.refunds] == "-1"
    finally:
        admin.close()
        stack.close()
