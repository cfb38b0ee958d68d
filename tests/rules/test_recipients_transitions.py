"""The recipient state machine: every pair of the contract's table, the registry check of an
assign, and what each applied decision changes in the assignment."""
from __future__ import annotations

import pytest

from rules import codes
from rules.recipients import TRANSITIONS, apply_decision, decide_decision, new_state
from rules.recipients.months import amount_in_force, month_index, rate_in_force
from tests.fund_cases import IIN, PERSON, TYPE, decision, recipient

AT = "2025-01-01T00:00:00.000+05:00"
# decision -> states it is allowed from, and the state after (contract's table)
TABLE = {
    "assign": ({"none", "terminated", "refused"}, "active"),
    "recalculate": ({"active", "suspended"}, None),
    "suspend": ({"active"}, "suspended"),
    "resume": ({"suspended"}, "active"),
    "terminate": ({"active", "suspended"}, "terminated"),
    "refuse": ({"none", "terminated", "refused"}, "refused"),
}
# How to reach each state from none.
PATHS = {
    "none": [],
    "active": [("assign", "2025-03-01")],
    "suspended": [("assign", "2025-03-01"), ("suspend", "2025-04-01")],
    "terminated": [("assign", "2025-03-01"), ("terminate", "2025-05-01")],
    "refused": [("refuse", "2025-03-01")],
}


def reach(state_name: str):
    state = new_state(IIN, TYPE)
    for kind, day in PATHS[state_name]:
        outcome, state = apply_decision(state, decision(kind, day), PERSON)
        assert outcome.status == "applied"
    assert state.state == state_name
    return state


def test_the_table_is_the_contracts():
    assert {k: (set(v[0]), v[1]) for k, v in TRANSITIONS.items()} == TABLE


@pytest.mark.parametrize("start", sorted(PATHS))
@pytest.mark.parametrize("kind", sorted(TABLE))
def test_every_pair(kind, start):
    state = reach(start)
    outcome, new = apply_decision(state, decision(kind, "2025-06-10"), PERSON)
    sources, after = TABLE[kind]
    assert outcome.state_before == start
    if start in sources:
        assert (outcome.status, outcome.reason) == ("applied", None)
        assert outcome.state_after == new.state == (after or start)
        assert new.state_since == "2025-06-10"
    else:
        assert (outcome.status, outcome.reason) == ("rejected", codes.ILLEGAL_TRANSITION)
        assert outcome.state_after == start
        assert outcome.assignment_no == state.assignment_no
        # Nothing changes but the remembered id.
        assert {**new.to_json(), "dseen": []} == {**state.to_json(), "dseen": []}


def test_rejected_decision_emits_its_result_and_no_account():
    state = reach("active")
    out = decide_decision(state, decision("resume", "2025-06-01"), PERSON, AT)
    assert [r["value"]["status"] for r in out.emission.get("fund.decision-results")] == ["rejected"]
    assert out.emission.get("recipients.accounts") == []


def test_applied_decision_emits_result_and_account():
    out = decide_decision(new_state(IIN, TYPE), decision("assign", "2025-03-15"), PERSON, AT)
    result = out.emission.get("fund.decision-results")[0]
    assert result["key"] == IIN and result["value"]["assignment_no"] == 1
    account = out.emission.get("recipients.accounts")[0]
    assert account["key"] == f"{IIN}/{TYPE}" and account["value"]["state"] == "active"


def test_a_repeated_decision_id_changes_and_emits_nothing():
    state = reach("active")
    d = decision("suspend", "2025-06-01")
    first = decide_decision(state, d, PERSON, AT)
    again = decide_decision(first.state, d, PERSON, AT)
    assert again.repeat and not again.emission and again.state is first.state
    # The same id with another content is still a repeat.
    other = decision("resume", "2025-07-01", decision_id=d.decision_id)
    assert decide_decision(first.state, other, PERSON, AT).repeat


def test_rejected_id_is_used_up():
    state = reach("active")
    d = decision("resume", "2025-06-01")
    outcome, state = apply_decision(state, d, PERSON)
    assert outcome.status == "rejected"
    assert apply_decision(state, d, PERSON)[0] is None


# --- the registry check of an assign ---------------------------------------------------------------

@pytest.mark.parametrize("block, registry, mismatch", [
    ({}, PERSON, False),
    ({}, None, True),  # not in the registry
    ({"surname": "Ахметова"}, PERSON, True),
    ({"name": "Ерлан2"}, PERSON, True),
    ({"patronymic": "Иванович"}, PERSON, True),
    ({"patronymic": None}, PERSON, False),  # only one side has one
    ({}, {**PERSON, "patronymic": None}, False),
    ({"birth_date": "1987-03-15"}, PERSON, True),
    ({"surname": "  АХМЕТОВ ", "name": "ерлан"}, PERSON, False),  # part 1's normalization
    ({"surname": "Фёдоров"}, {**PERSON, "surname": "Федоров"}, False),  # ё = е
    ({"document": None, "sex": "F"}, PERSON, False),  # only names and birth date are matched
])
def test_recipient_mismatch(block, registry, mismatch):
    d = decision("assign", "2025-03-01", recipient=recipient(**block))
    outcome, state = apply_decision(new_state(IIN, TYPE), d, registry)
    if mismatch:
        assert (outcome.status, outcome.reason, outcome.state_after) == ("rejected", codes.RECIPIENT_MISMATCH, "none")
        assert outcome.assignment_no is None and not state.assignments
    else:
        assert outcome.status == "applied"


def test_registry_is_checked_before_the_table():
    state = reach("active")
    d = decision("assign", "2025-06-01", recipient=recipient(surname="Другой"))
    assert apply_decision(state, d, PERSON)[0].reason == codes.RECIPIENT_MISMATCH


@pytest.mark.parametrize("kind", ["recalculate", "suspend", "terminate"])
def test_only_assign_is_checked_against_the_registry(kind):
    state = reach("active")
    d = decision(kind, "2025-06-01", recipient=recipient(surname="Другой"))
    assert apply_decision(state, d, None)[0].status == "applied"


# --- effects -----------------------------------------------------------------------------------------

def test_assign_with_term_months_ends_on_the_last_day_of_the_last_month():
    _, state = apply_decision(new_state(IIN, TYPE), decision("assign", "2025-03-15", term_months=6), PERSON)
    a = state.current
    assert (a.no, a.first_month, a.end) == (1, month_index(2025, 3), "2025-08-31")
    assert state.terms["end_date"] == "2025-08-31"


def test_assign_end_date_wins_over_term_months_and_open_without_either():
    _, s = apply_decision(new_state(IIN, TYPE), decision("assign", "2025-03-15", term_months=6,
                                                         end_date="2025-05-20"), PERSON)
    assert s.current.end == "2025-05-20"
    _, s = apply_decision(new_state(IIN, TYPE), decision("assign", "2025-03-15"), PERSON)
    assert s.current.end is None


def test_assignment_no_counts_assigns():
    state = reach("terminated")
    outcome, state = apply_decision(state, decision("assign", "2025-09-01"), PERSON)
    assert outcome.assignment_no == 2 and len(state.assignments) == 2
    outcome, state = apply_decision(state, decision("terminate", "2025-10-01"), PERSON)
    outcome, state = apply_decision(state, decision("refuse", "2025-11-01"), PERSON)
    assert (outcome.assignment_no, state.state) == (2, "refused")
    outcome, state = apply_decision(state, decision("assign", "2025-12-01"), PERSON)
    assert outcome.assignment_no == 3


def test_refuse_from_none_has_no_assignment_and_keeps_nothing_assigned():
    outcome, state = apply_decision(new_state(IIN, TYPE), decision("refuse", "2025-03-01"), PERSON)
    assert outcome.assignment_no is None and state.state == "refused" and not state.assignments


def test_refuse_keeps_earlier_assignment_fields():
    state = reach("terminated")
    terms = dict(state.terms)
    _, state = apply_decision(state, decision("refuse", "2025-07-01"), PERSON)
    assert state.terms == terms and state.assignment_no == 1


@pytest.mark.parametrize("effective, first_new", [("2025-05-10", (2025, 6)), ("2025-05-01", (2025, 5))])
def test_recalculation_from_the_first_month_starting_on_or_after(effective, first_new):
    state = reach("active")
    _, state = apply_decision(state, decision("recalculate", effective, monthly_amount="65000.00"), PERSON)
    a = state.current
    before = month_index(*first_new) - 1
    assert amount_in_force(a, before) == 6000000
    assert amount_in_force(a, month_index(*first_new)) == 6500000
    assert amount_in_force(a, month_index(2025, 2)) is None  # before the first month
    assert state.terms["monthly_amount"] == 6500000


def test_recalculation_rate_null_keeps_the_rate():
    _, state = apply_decision(new_state(IIN, TYPE), decision("assign", "2025-03-01",
                                                             pension_contribution_rate="0.10"), PERSON)
    _, state = apply_decision(state, decision("recalculate", "2025-05-01", pension_contribution_rate=None), PERSON)
    assert rate_in_force(state.current, month_index(2025, 6)) == "0.10"
    _, state = apply_decision(state, decision("recalculate", "2025-07-01", pension_contribution_rate="0.05"), PERSON)
    assert rate_in_force(state.current, month_index(2025, 6)) == "0.10"
    assert rate_in_force(state.current, month_index(2025, 7)) == "0.05"
    assert state.terms["pension_contribution_rate"] == "0.05"


def test_recalculation_replaces_the_end_only_when_given():
    _, state = apply_decision(new_state(IIN, TYPE), decision("assign", "2025-03-15", term_months=6), PERSON)
    _, state = apply_decision(state, decision("recalculate", "2025-04-01"), PERSON)
    assert state.current.end == "2025-08-31"
    _, state = apply_decision(state, decision("recalculate", "2025-04-01", term_months=3), PERSON)
    assert state.current.end == "2025-05-31"  # counted from the assignment's first month
    _, state = apply_decision(state, decision("recalculate", "2025-04-01", end_date="2025-12-31"), PERSON)
    assert state.current.end == "2025-12-31" and state.terms["end_date"] == "2025-12-31"


def test_recalculation_while_suspended_stays_suspended():
    state = reach("suspended")
    outcome, state = apply_decision(state, decision("recalculate", "2025-05-01"), PERSON)
    assert (outcome.state_after, state.state) == ("suspended", "suspended")


@pytest.mark.parametrize("end, effective, new_end, terminated", [
    (None, "2025-06-15", "2025-06-14", True),
    ("2025-12-31", "2025-06-01", "2025-05-31", True),
    ("2025-04-30", "2025-06-01", "2025-04-30", False),  # already ended earlier: stays
])
def test_terminate_moves_the_end_to_the_day_before_unless_earlier(end, effective, new_end, terminated):
    _, state = apply_decision(new_state(IIN, TYPE), decision("assign", "2025-03-01", end_date=end), PERSON)
    _, state = apply_decision(state, decision("terminate", effective), PERSON)
    assert (state.current.end, state.current.terminated, state.terms["end_date"]) == (new_end, terminated, new_end)


def test_type_specific_fields_not_carried_are_null():
    _, state = apply_decision(new_state(IIN, TYPE), decision("assign", "2025-03-01",
                                                             unemployed_registered_on="2025-02-20"), PERSON)
    assert state.terms["unemployed_registered_on"] == "2025-02-20"
    assert state.terms["disability_degree"] is None and state.terms["dependants"] is None


def test_the_given_state_is_never_changed():
    state = reach("active")
    before = state.to_json()
    for kind in TABLE:
        apply_decision(state, decision(kind, "2025-06-01"), PERSON)
    assert state.to_json() == before
