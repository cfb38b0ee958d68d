"""The month-end figures of the social payments (docs/report-pipeline.md, section 7): recipients
active on the month's last day within the term, and overpayments outstanding, as decided and
received by the month's end. Checked on hand-made cases, against the recount, and against the
recipients ledger's own state (rules/recipients) on ledger-made outputs."""
from __future__ import annotations

import datetime as _dt

from hypothesis import given, settings, strategies as st

from rules import recipients as rr
from rules.recipients.months import month_of_iso, status_on
from rules.report import Partial, merge, recount
from rules.report.month_end import ACTIVE, OWED, MonthEnd, Timeline, active_at, active_steps, figure_path
from rules.report.months import last_day

from ..fund_cases import IIN, PERSON, decision as fund_decision, transfer as fund_transfer
from .report_records import decision, social_payment

JOB = "loss_of_job"
CARE = "child_care"
A = figure_path(JOB, ACTIVE)
O = figure_path(JOB, OWED)


def active_by_month(records: list[dict], months: list[str]) -> dict[str, int]:
    p = Partial()
    for r in records:
        p.apply("decisions", r)
    return {m: p.figures(m).get(A, 0) for m in months}


MONTHS = ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]


def test_an_assignment_counts_from_its_first_month_to_the_month_holding_its_last_day():
    # Assigned from 20 January for three months: the term ends 31 March (a month's last day).
    got = active_by_month([decision("D1", decided_on="2026-01-15", effective_from="2026-01-20",
                                    end_date="2026-03-31")], MONTHS)
    assert got == {"2025-12": 0, "2026-01": 1, "2026-02": 1, "2026-03": 1, "2026-04": 0, "2026-05": 0}


def test_an_end_before_the_months_last_day_is_not_active_at_that_months_end():
    got = active_by_month([decision("D1", decided_on="2026-01-15", end_date="2026-03-15")], MONTHS)
    assert got["2026-02"] == 1 and got["2026-03"] == 0


def test_suspend_and_resume_take_effect_from_their_dates_and_the_last_arrived_wins():
    records = [
        decision("D1", decided_on="2026-01-05"),
        decision("D2", decision="suspend", decided_on="2026-02-10", effective_from="2026-02-01"),
        decision("D3", decision="resume", decided_on="2026-03-31", effective_from="2026-03-31"),
        # Arrives last, effective before the resume: as in the ledger, the last arrived of those in
        # effect wins, so April on (when it is decided) shows it; March stays as it was at its end.
        decision("D4", decision="suspend", decided_on="2026-04-02", effective_from="2026-03-01"),
    ]
    assert active_by_month(records, MONTHS) == {"2025-12": 0, "2026-01": 1, "2026-02": 0, "2026-03": 1,
                                                "2026-04": 0, "2026-05": 0}


def test_a_decision_counts_from_the_month_it_was_decided_even_when_effective_earlier():
    """A suspension decided in March, effective from January, leaves January and February as they
    were at their ends; March on shows it."""
    records = [decision("D1", decided_on="2026-01-05"),
               decision("D2", decision="suspend", decided_on="2026-03-04", effective_from="2026-01-10")]
    assert active_by_month(records, MONTHS) == {"2025-12": 0, "2026-01": 1, "2026-02": 1, "2026-03": 0,
                                                "2026-04": 0, "2026-05": 0}


def test_a_future_termination_ends_the_term_the_day_before():
    records = [decision("D1", decided_on="2026-01-05"),
               decision("D2", decision="terminate", decided_on="2026-01-20", effective_from="2026-04-01",
                        end_date="2026-03-31")]
    got = active_by_month(records, MONTHS)
    assert (got["2026-01"], got["2026-03"], got["2026-04"]) == (1, 1, 0)


def test_a_new_assignment_after_a_termination_counts_again():
    records = [decision("D1", decided_on="2026-01-05", end_date=None),
               decision("D2", decision="terminate", decided_on="2026-02-03", effective_from="2026-02-01",
                        end_date="2026-01-31"),
               decision("D3", decided_on="2026-04-10", effective_from="2026-04-10", assignment_no=2,
                        end_date="2026-04-30")]
    assert active_by_month(records, MONTHS) == {"2025-12": 0, "2026-01": 1, "2026-02": 0, "2026-03": 0,
                                                "2026-04": 1, "2026-05": 0}


def test_a_result_without_end_date_keeps_the_end_it_had():
    """A result written before fund.decision-results carried the end: the end stays as it was."""
    suspend = decision("D2", decision="suspend", decided_on="2026-01-20", effective_from="2026-03-01")
    del suspend["end_date"]
    records = [decision("D1", decided_on="2026-01-05", end_date="2026-02-28"), suspend]
    got = active_by_month(records, MONTHS)
    assert (got["2026-02"], got["2026-03"]) == (1, 0)


def test_outstanding_is_overpaid_minus_applied_by_month_of_receipt_never_below_zero():
    records = [
        social_payment("T1", overpaid="5000.00", received_at="2026-01-25T11:00:00+05:00"),
        social_payment("T2", kind="return", gross="3000.00", applied="3000.00", received_at="2026-02-03T11:00:00+05:00"),
        social_payment("T3", kind="return", gross="1900.00", applied="1900.00", received_at="2026-03-03T11:00:00+05:00"),
        # A return received in December, delivered late and applied by the ledger to January's overpayment:
        # December shows nothing owed by this recipient (not -100.00).
        social_payment("T4", kind="return", gross="100.00", applied="100.00", received_at="2025-12-30T11:00:00+05:00"),
        social_payment("T5", iin="921102423450", overpaid="10.00", received_at="2025-12-01T11:00:00+05:00"),
        # A return with nothing applied (all unmatched) changes nothing owed.
        social_payment("T6", kind="return", gross="50.00", received_at="2026-01-26T11:00:00+05:00"),
    ]
    p = Partial()
    for r in records:
        p.apply("social_payments", r)
    got = {m: p.figures(m).get(O, 0) for m in MONTHS}
    assert got == {"2025-12": 1000, "2026-01": 491000, "2026-02": 191000, "2026-03": 1000, "2026-04": 1000,
                   "2026-05": 1000}
    assert all(recount(m, {"social_payments": records}).get(O, 0) == got[m] for m in MONTHS)


def test_a_repeat_changes_nothing_and_the_diffs_stay_sparse():
    p = Partial()
    r = decision("D1", decided_on="2026-01-15", end_date="2030-12-31")
    p.apply("decisions", r)
    p.apply("decisions", dict(r))
    # A five-year term is two change points, not sixty months.
    assert p.month_end.diffs == {A: {"2026-01": 1, "2031-01": -1}}
    assert p.figures("2028-06")[A] == 1


def test_month_end_diffs_survive_json():
    p = Partial()
    p.apply("decisions", decision("D1", decided_on="2026-01-15"))
    again = MonthEnd(p.month_end.to_json())
    assert again.figures("2026-07") == p.month_end.figures("2026-07") == {A: 1}
    t = Timeline([["2026-01-15", "2026-01-15", "assign", 1, None]], {"2026-01": 5})
    assert Timeline.from_json(t.to_json()) == t


def test_steps_change_only_where_the_value_does():
    ds = [["2026-01-15", "2026-01-15", "assign", 1, "2026-06-30"],
          ["2026-02-01", "2026-02-01", "recalculate", 1, "2026-06-30"]]
    assert active_steps(ds) == [("2026-01", 1), ("2026-07", 0)]
    assert active_at(ds, "2026-06") and not active_at(ds, "2026-07")


# ---- ledger-made outputs against the ledger's own state ---------------------------------------------

START = _dt.date(2026, 1, 1)
CLOCK = "2026-06-01T00:00:00+05:00"


def _day(n: int) -> str:
    return (START + _dt.timedelta(days=n)).isoformat()


steps_strategy = st.lists(st.tuples(
    st.integers(0, 140),  # business day of the step
    st.sampled_from([JOB, CARE]),
    st.one_of(
        st.tuples(st.just("decision"),
                  st.sampled_from(["assign", "assign", "recalculate", "suspend", "suspend", "resume", "terminate",
                                   "refuse"]),
                  st.integers(-40, 40),  # effective_from - decided_on, days
                  st.sampled_from(["open", "term", "end"]), st.integers(1, 4), st.integers(10, 120)),
        st.tuples(st.just("transfer"), st.sampled_from(["payment", "payment", "return"]),
                  st.sampled_from(["60000.00", "90000.00", "5000.00", "30000.00"]), st.integers(-1, 0)),
    )), min_size=1, max_size=25)


def _ledger_outputs(steps):
    """Feed the steps to the recipients ledger in business order; (date, kind, key, outputs, states
    after) per step."""
    states: dict[str, rr.RecipientState] = {}
    out = []
    for n, (day_n, ptype, step) in enumerate(sorted(steps, key=lambda s: s[0])):
        day = _day(day_n)
        state = states.get(ptype) or rr.new_state(IIN, ptype)
        if step[0] == "decision":
            _, kind, shift, end_kind, months, days = step
            effective = (_dt.date.fromisoformat(day) + _dt.timedelta(days=shift)).isoformat()
            fields = {}
            if kind in ("assign", "recalculate"):
                if end_kind == "term":
                    fields["term_months"] = months
                elif end_kind == "end":
                    fields["end_date"] = (_dt.date.fromisoformat(effective) + _dt.timedelta(days=days)).isoformat()
            d = fund_decision(kind, effective, day, decision_id=f"D{n}", payment_type=ptype, **fields)
            decided = rr.decide_decision(state, d, PERSON, CLOCK)
        else:
            _, kind, gross, shift = step
            month = _dt.date.fromisoformat(day).replace(day=1) + _dt.timedelta(days=31 * shift)
            t = fund_transfer(month.strftime("%Y-%m"), gross, kind=kind, received_at=f"{day}T11:00:00+05:00",
                              transfer_id=f"T{n}", payment_type=ptype)
            decided = rr.decide_transfer(state, t, PERSON, CLOCK, hold=False)
        states[ptype] = decided.state
        out.append((day, step[0], decided.emission, {k: v.copy() for k, v in states.items()}))
    return out


def _oracle(outputs, month: str) -> dict[str, int]:
    """The ledger's own state after every step by the month's end (the steps are in business order,
    so that is a prefix): active on the last day within the term, and what is outstanding."""
    day = last_day(month).isoformat()
    states: dict[str, rr.RecipientState] = {}
    for step_day, _kind, _emission, after in outputs:
        if step_day <= day:
            states = after
    out = {}
    for ptype, state in states.items():
        for a in reversed(state.assignments):
            if a.first_month <= month_of_iso(month) and (a.end is None or day <= a.end):
                if status_on(a, day) == "active":
                    out[figure_path(ptype, ACTIVE)] = 1
                break
        if state.outstanding:
            out[figure_path(ptype, OWED)] = state.outstanding
    return out


@settings(max_examples=200, deadline=None)
@given(steps_strategy, st.randoms(use_true_random=False))
def test_ledger_outputs_give_the_ledgers_own_month_end_state(steps, rng):
    outputs = _ledger_outputs(steps)
    topics = {"decisions": [], "social_payments": []}
    for _day_, _kind, emission, _after in outputs:
        topics["decisions"] += [i["value"] for i in emission.get(rr.DECISION_RESULTS)]
        topics["social_payments"] += [i["value"] for i in emission.get(rr.POSTED)]
    p = Partial()
    # Redelivered: some records emitted again later (a re-emission), each topic in its order.
    queues = {s: [r for r in rs for _ in range(1 + (rng.random() < 0.2))] for s, rs in topics.items()}
    while any(queues.values()):
        source = rng.choice([s for s, q in queues.items() if q])
        p.apply(source, queues[source].pop(0))
    for month in ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-09"]:
        month_end = {k: v for k, v in p.figures(month).items() if k.endswith((ACTIVE, OWED))}
        assert month_end == _oracle(outputs, month), month
        recounted = recount(month, topics)
        assert merge([p.figures(month)]) == recounted, month
