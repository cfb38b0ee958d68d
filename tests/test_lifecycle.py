"""The worker's life as a process (streams/lifecycle.py), in process: what /ready says when, and a
failure recorded once with its reason. The exits themselves are proven on the real broker
(tests/integration/test_crash_only.py)."""
from __future__ import annotations

import logging
import signal

import pytest

from streams import faults
from streams.lifecycle import EXIT_FAILED, Lifecycle


def test_ready_only_while_posting_and_never_again_after_a_failure(caplog):
    life = Lifecycle()
    assert life.readiness(False)[0] is False and life.readiness(False)[1].startswith("starting")
    assert life.readiness(True) == (True, "posting")
    with caplog.at_level(logging.CRITICAL, logger="esep.worker"):
        life.fail("the posting agent died: OSError: disk")
        life.fail("a second reason")
    assert life.readiness(True) == (False, "failed: the posting agent died: OSError: disk")
    assert life.exit_code == EXIT_FAILED
    assert [r.levelno for r in caplog.records] == [logging.CRITICAL], "logged loudly, once"


def test_a_stop_signal_makes_it_unready():
    life = Lifecycle()
    life.stop_requested(signal.SIGTERM)
    assert life.readiness(True) == (False, "stopping")
    assert life.exit_code == 0


def test_the_fault_hook_knows_its_faults_only(monkeypatch):
    monkeypatch.delenv(faults.VARIABLE, raising=False)
    assert faults.configured() is None
    monkeypatch.setenv(faults.VARIABLE, "agent-crash")
    assert faults.configured() == "agent-crash"
    monkeypatch.setenv(faults.VARIABLE, "everything")
    with pytest.raises(ValueError, match="tests only"):
        faults.configured()


def test_a_part_that_ends_while_the_worker_stops_is_no_failure(caplog):
    life = Lifecycle()
    life.stop_requested(signal.SIGTERM)
    with caplog.at_level(logging.WARNING, logger="esep.worker"):
        life.fail("the reversals' posted-entry feed died: NotReady: Producer service not yet started")
    assert life.failure is None and life.exit_code == 0
    assert "while stopping" in caplog.text
    assert life.readiness(True) == (False, "stopping")
