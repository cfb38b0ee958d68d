"""The recipients ledger's topics: co-partitioned inputs and changelog, ledger topics kept forever."""
from __future__ import annotations

import pytest

from streams.settings import Settings
from streams.topics import check_copartitioned, topic_specs


class Admin:
    def __init__(self, counts):
        self.counts = counts

    def describe_topics(self, names):
        return [{"topic": n, "partitions": list(range(self.counts[n]))} for n in names]


def test_ledger_topics_are_kept_forever_and_the_state_compacted():
    s = Settings.from_env({"ESEP_PARTITIONS": "6"})
    specs = {spec.name: spec for spec in topic_specs(s)}
    t = s.topics
    for name in (t.decision_results, t.social_payments, t.overpayments):
        assert specs[name].configs["retention.ms"] == "-1" and "cleanup.policy" not in specs[name].configs
    for name in (t.recipients_state, t.recipient_accounts):
        assert specs[name].configs["cleanup.policy"] == "compact" and "retention.ms" not in specs[name].configs
    assert {specs[n].partitions for n in (t.payment_decisions, t.payment_transfers, t.recipients_state)} == {6}


def test_a_partition_mismatch_of_the_inputs_or_the_changelog_is_refused():
    t = Settings.from_env({}).topics
    names = [t.payment_decisions, t.payment_transfers, t.recipients_state]
    check_copartitioned(Admin(dict.fromkeys(names, 4)), names)
    with pytest.raises(RuntimeError, match="same number of partitions"):
        check_copartitioned(Admin({**dict.fromkeys(names, 4), t.payment_transfers: 8}), names)
