"""Personal-data changes (Rules, clause 6) on the real broker: each change published once to
registry.changes even with two workers, and a person's history read back by `esep person history`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from models.outputs import PersonChange

from ..cases import A, registry_persons
from .harness import ROOT, Outputs, Stack

pytestmark = pytest.mark.integration


def test_each_change_is_published_once_and_history_reads_back(broker, tmp_path):
    stack = Stack(broker, tmp_path)
    changes = Outputs(stack)
    changes.consumer.subscribe([stack.topics.registry_changes])
    try:
        w1 = stack.worker("w1").start()
        w2 = stack.worker("w2").start()
        w1.wait_ready()
        w2.wait_ready()
        persons = registry_persons()
        stack.send_registry(persons)
        a = next(p for p in persons if p["iin"] == A["iin"])
        renamed = {**a, "surname": "Ахметов-Сейтов", "updated_at": "2026-11-27T10:00:00+05:00"}
        stack.send_registry([renamed])
        stack.send_registry([{**renamed, "updated_at": "2026-11-27T11:00:00+05:00"}])  # no personal change
        documented = {**renamed, "document": {"kind": "id_card", "series": None, "number": "051234567",
                                              "issued_on": "2026-11-20", "issuer": "МВД РК"},
                      "updated_at": "2026-11-27T12:00:00+05:00"}
        stack.send_registry([documented])
        gone = persons[2]["iin"]
        stack.send(stack.topics.registry_persons, gone.encode(), None)
        broken = {k: v for k, v in a.items() if k != "surname"}
        stack.send(stack.topics.registry_persons, b"870314312348", json.dumps(broken).encode())
        stack.send(stack.topics.registry_persons, b"870314312348", b"\xff not utf-8")
        stack.flush()
        expected = len(persons) + 2 + 1  # created each, two updates of A, one deletion
        topic = stack.topics.registry_changes
        changes.wait_for(lambda o: len(o.records[topic]) >= expected, what="the change events", workers=[w1, w2])
        changes.drain(quiet_s=3.0)
        events = [v for _, v in changes.records[topic]]
        for e in events:
            PersonChange.model_validate(e)
        assert len(events) == expected, "each change published once"
        assert len({e["change_id"] for e in events}) == expected
        of_a = sorted((e for e in events if e["iin"] == A["iin"]), key=lambda e: e["version"])
        assert [e["kind"] for e in of_a] == ["created", "updated", "updated"]
        assert of_a[1]["changes"] == [{"field": "surname", "before": "Ахметов", "after": "Ахметов-Сейтов"}]
        assert [c["field"] for c in of_a[2]["changes"]] == ["document"]
        assert of_a[2]["changed_at"] == "2026-11-27T12:00:00+05:00"
        deleted = next(e for e in events if e["iin"] == gone and e["kind"] == "deleted")
        assert {c["field"] for c in deleted["changes"]} >= {"surname", "name", "birth_date"}

        # Invalid registry records: dead-lettered once although two replicas skipped them.
        dead = Outputs(stack)
        dead.consumer.subscribe([stack.topics.dead_letters])
        dead.wait_for(lambda o: len(o.records[stack.topics.dead_letters]) >= 2, what="registry dead letters",
                      workers=[w1, w2])
        dead.drain()
        letters = [v for _, v in dead.records[stack.topics.dead_letters]]
        dead.close()
        assert sorted(d["error_kind"] for d in letters) == ["not_utf8", "schema"]
        assert all(d["source_topic"] == stack.topics.registry_persons for d in letters)
        assert any("surname" in d["error"] for d in letters)

        env = {**w1.env}
        out = subprocess.run([sys.executable, "-m", "streams.cli", "person", "history", A["iin"]], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"IIN {A['iin']}: 3 version(s)" in out.stdout
        assert "Ахметов -> Ахметов-Сейтов" in out.stdout
        assert "number=051234567" in out.stdout
        bad = subprocess.run([sys.executable, "-m", "streams.cli", "person", "history", "123"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "not a valid IIN" in bad.stderr
    finally:
        changes.close()
        stack.close()
