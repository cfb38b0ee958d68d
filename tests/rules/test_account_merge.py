"""Merging account states (what a restore from the accounts changelog does): the merge of states
built from parts of the records equals the account built from all of them, whatever the split, the
order of the merges and how often a state is merged again."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings, strategies as st

from rules.accounts import Account, AccountRecordError, refund_lines_by_iin
from tests.account_samples import IIN, OTHER, OVERPAYMENTS, SOCIAL, contribution, order_refund, reversal


def _records() -> list[tuple[str, dict]]:
    contribs = [
        contribution(line_no=n, period=f"2025-{(n % 12) + 1:02d}", amount=f"{n * 11}.{n:02d}",
                     knp="012" if n % 3 else "017", received_at=f"2025-12-{n + 1:02d}T09:00:00+05:00",
                     surname=f"Ахметов{n}")
        for n in range(1, 7)
    ]
    records = [("contribution", c) for c in contribs]
    records += [("reversal", reversal(contribs[0])), ("reversal", reversal(contribs[3], decision="D9"))]
    records += [("refund_line", line) for _, line in
                refund_lines_by_iin(order_refund([(1, "2025-02", "3.00"), (2, None, "x")]))]
    records += [("social_payment", s) for s in SOCIAL] + [("overpayment", o) for o in OVERPAYMENTS]
    return records


RECORDS = _records()


def _built(records) -> Account:
    account = Account(IIN)
    for source, rec in records:
        account.apply(source, copy.deepcopy(rec))
    return account


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=len(RECORDS), max_size=len(RECORDS)),
       st.lists(st.integers(0, 3), max_size=6), st.randoms(use_true_random=False))
def test_merging_partial_states_in_any_order_gives_the_whole_account(parts, again, rnd):
    reference = _built(RECORDS)
    states = [_built([r for r, p in zip(RECORDS, parts) if p == k]) for k in range(4)]
    order = [0, 1, 2, 3] + again  # some states merged twice: a changelog read again
    rnd.shuffle(order)
    merged = Account(IIN)
    for k in order:
        merged.merge(Account.from_json(states[k].to_json()))
    assert merged.to_json() == reference.to_json()


def test_merge_reports_what_it_added_and_nothing_the_second_time():
    whole = _built(RECORDS)
    empty = Account(IIN)
    assert empty.merge(whole) == len(RECORDS)
    assert empty.merge(whole) == 0
    assert empty.to_json() == whole.to_json()


def test_a_conflicting_item_resolves_the_same_whichever_state_is_merged_first():
    a = _built([("contribution", contribution(amount="10.00"))])
    b = _built([("contribution", contribution(amount="12.00"))])
    ab, ba = Account.from_json(a.to_json()), Account.from_json(b.to_json())
    ab.merge(b)
    ba.merge(a)
    assert ab.to_json() == ba.to_json()


def test_the_state_of_another_iin_is_refused():
    with pytest.raises(AccountRecordError):
        Account(IIN).merge(Account(OTHER))
