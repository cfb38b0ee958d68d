"""`esep person entries IIN`: each reversal printed beside the entry it reverses, the net amount,
and the refund decisions with their outcomes; and the reversal topics' specs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rules import reversals as R
from streams.cli import parser
from streams.keyed_ledger import Entry, encode_entry
from streams.person_entries import format_entries, person_index
from streams.settings import Settings
from streams.topics import reversal_group, topic_specs

from .rules.test_reversals import C, index_of, posted, request

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)


def test_a_reversal_is_printed_under_the_entry_it_reverses():
    index = index_of(posted("N-1", 1), posted("N-1", 2, amount="1000.50"), posted("N-1", 3, knp="017"))
    index, _, _ = R.receive(index, request("RFD-1", ["N-1/2", "N-1/3"], nid="N-1"), (0, 5))
    index, _, _ = R.receive(index, request("RFD-2", ["N-1/2"], nid="N-1"), (0, 6))
    rows = format_entries(C["iin"], index)
    text = "\n".join(rows)
    assert rows[0].startswith(f"IIN {C['iin']} (Фёдоров Дмитрий): 3 posted entries, 2 reversed")
    assert "posted 9500.50, reversed 5250.50, net 4250.00" in rows[0]
    at = {row.split()[0] if not row.startswith("  └") else row.split()[1]: i for i, row in enumerate(rows) if row}
    assert at["N-1/2/reversal"] == at["N-1/2"] + 1, "the reversal sits right under its entry"
    assert at["N-1/3/reversal"] == at["N-1/3"] + 1
    assert "N-1/1/reversal" not in at
    assert "-1000.50  by RFD-1" in rows[at["N-1/2/reversal"]]
    assert "RFD-1  decided_on 2026-12-01  N-1  applied" in text
    # What the command reads: the reversals ledger's changelog values of the person, one per notification.
    other = index_of(posted("N-2", 1, amount="1.00"))
    values = {f"{C['iin']}/{nid}": encode_entry(Entry(f"{C['iin']}/{nid}", 2, i, src={"r:RFD-1": ["t", 2, 5]}),
                                                i.to_obj())
              for nid, i in (("N-1", index), ("N-2", other))}
    merged = format_entries(C["iin"], person_index(C["iin"], values))
    assert merged[0].startswith(f"IIN {C['iin']} (Фёдоров Дмитрий): 4 posted entries, 2 reversed")
    assert [r for r in merged[1:] if "N-2" not in r] == rows[1:]
    assert person_index(C["iin"], {}) is None
    assert "RFD-2  decided_on 2026-12-01  N-1  rejected NOTHING_REVERSED; rejected: N-1/2 ALREADY_REVERSED" in text


def test_a_waiting_decision_and_an_unknown_person():
    index = index_of(posted("N-1", 1))
    index, what, _ = R.receive(index, request("RFD-9", ["N-1/2"], nid="N-1"), (1, 0),
                               hold_margin=timedelta(minutes=30), now=NOW)
    assert what == R.WAITING
    last = format_entries(C["iin"], index)[-1]
    assert "RFD-9" in last and "waiting for an entry" in last
    assert format_entries(C["iin"], None)[0].startswith("no posted entries recorded")


def test_the_cli_has_the_command():
    args = parser().parse_args(["person", "entries", C["iin"]])
    assert args.iin == C["iin"] and args.func.__name__ == "_person_entries"


def test_ledger_topics_are_kept_forever_and_the_state_is_compacted():
    settings = Settings.from_env({})
    specs = {s.name: s for s in topic_specs(settings)}
    for name in ("posted.reversals", "refunds.reversals", "fund.decision-results"):
        assert specs[name].configs["retention.ms"] == "-1" and "cleanup.policy" not in specs[name].configs
    assert specs["esep.reversals-state"].configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in specs["esep.reversals-state"].configs
    assert specs["fund.refund-decisions"].partitions == specs["posted.contributions"].partitions
    assert reversal_group(settings) == ["posted.contributions", "fund.refund-decisions", "esep.reversals-state",
                                        "fund.payment-decisions"]
