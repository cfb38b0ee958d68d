"""For any split of the records over partitions, any interleaving of the topics and any repetition of
their delivery, the merged partials equal the recount of the records (month-end figures included:
they depend on the order of one recipient's decisions, which one topic partition keeps)."""
from __future__ import annotations

import zlib

from hypothesis import given, settings, strategies as st

from rules.report import Partial, flatten, merge, recount, render, render_delta
from rules.report.figures import delta

from .report_records import alert, decision, posted, refund, result, reversal, social_payment

IINS = ["870314312348", "921102423450", "010630534571", "040109645673", "581225356784", "900505300407"]
PAYERS = ["180440000019", "990340001234", "ИП-7"]
TYPES = ["loss_of_job", "child_care"]
# Around the January/February boundary in Almaty (the 19:30Z instant is already 1 February).
INSTANTS = ["2026-01-02T09:00:00+05:00", "2026-01-31T23:59:59+05:00", "2026-01-31T19:30:00Z",
            "2026-02-16T10:00:00+05:00"]
AMOUNTS = ["0.01", "4250.00", "29750.50", "595000.00"]
MONTHS = ["2026-01", "2026-02", "2026-03"]
DAYS = ["2025-12-20", "2026-01-01", "2026-01-20", "2026-01-31", "2026-02-01", "2026-02-28", "2026-03-15"]
ENDS = [None, "2026-01-31", "2026-02-15", "2026-03-31", "2026-02-28"]

PERSON_SOURCES = ("contributions", "reversals", "alerts", "decisions", "social_payments")
ORDER_SOURCES = ("refunds", "results")

ids = st.integers(min_value=0, max_value=7)
iins = st.sampled_from(IINS)
instants = st.sampled_from(INSTANTS)
amounts = st.sampled_from(AMOUNTS)

records_of = {
    "contributions": st.builds(
        lambda n, line, iin, knp, amount, period, at, payer: posted(f"N{n}/{line}", iin, knp=knp, amount=amount,
                                                                    period=period, received_at=at, payer=payer),
        ids, st.integers(1, 3), iins, st.sampled_from(["012", "017"]), amounts,
        st.sampled_from(["2025-11", "2025-12", "2026-01"]), instants, st.sampled_from(PAYERS)),
    "reversals": st.builds(lambda n, iin, amount, at: reversal(f"N{n}/1", iin, amount=amount, received_at=at),
                           ids, iins, amounts, instants),
    "alerts": st.builds(lambda n, iin, at: alert(f"N{n}/1", iin, received_at=at), ids, iins, instants),
    "decisions": st.builds(
        lambda n, iin, kind, status, ptype, day, effective, number, end, has_end: _without_end(decision(
            f"D{n}", iin, decision=kind, status=status, payment_type=None if kind == "refund" else ptype,
            decided_on=day, effective_from=effective, assignment_no=number, end_date=end), not has_end),
        # Few recipients, so that one recipient's decisions meet: their order and dates matter.
        st.integers(0, 15), st.sampled_from(IINS[:2]),
        st.sampled_from(["assign", "assign", "suspend", "suspend", "resume", "recalculate", "terminate", "refuse",
                         "refund"]),
        st.sampled_from(["applied", "applied", "applied", "rejected"]), st.sampled_from(TYPES), st.sampled_from(DAYS),
        st.sampled_from(DAYS), st.sampled_from([1, 1, 2, None]), st.sampled_from(ENDS),
        st.sampled_from([True, True, True, False])),
    "social_payments": st.builds(
        lambda n, iin, kind, ptype, amount, at: social_payment(
            f"T{n}", iin, kind=kind, payment_type=ptype, received_at=at,
            **({"overpaid": amount} if kind == "payment" else {"applied": amount})),
        ids, iins, st.sampled_from(["payment", "return"]), st.sampled_from(TYPES),
        st.sampled_from(["0.00", "5000.00", "120.00"]), instants),
    "refunds": st.builds(
        lambda n, reasons, order_reason, amount, at: refund(f"N{n}", reasons, order_reason=order_reason,
                                                            amount=amount, received_at=at),
        ids, st.lists(st.sampled_from(["INVALID_IIN", "DECEASED", "NAME_MISMATCH"]), min_size=1, max_size=3),
        st.sampled_from([None, "TOTAL_MISMATCH"]), amounts, instants),
    "results": st.builds(
        lambda n, at, decided: result(f"N{n}", received_at=at, decided_at=decided), ids, instants,
        st.sampled_from(["2026-01-02T10:00:00+05:00", "2026-02-20T10:00:00+05:00"])),
}

def _without_end(record: dict, drop: bool) -> dict:
    """A decision result written before `end_date` existed: its assignment's end stays as it was."""
    if drop:
        record.pop("end_date")
    return record


ID_FIELD = {"contributions": "entry_id", "reversals": "entry_id", "alerts": "alert_id", "decisions": "decision_id",
            "social_payments": "entry_id", "refunds": "refund_id", "results": "notification_id"}


@st.composite
def topics(draw):
    """Records per source as a topic would hold them: one content per id, the first emission kept."""
    out = {}
    for source, strategy in records_of.items():
        drawn = draw(st.lists(strategy, max_size=16 if source == "decisions" else 12))
        first = {r[ID_FIELD[source]]: r for r in reversed(drawn)}
        out[source] = list(reversed(first.values()))
    return out


def _home(source: str, record: dict, partitions: int) -> int:
    key = record["notification_id"] if source in ORDER_SOURCES else (
        record["payer_bin_iin"] if source == "payers" else record["iin"])
    return zlib.crc32(key.encode()) % partitions


@settings(max_examples=150, deadline=None)
@given(topics(), st.integers(1, 4), st.randoms(use_true_random=False))
def test_merged_partials_equal_the_recount(records, partitions, rng):
    streams = {"persons": [Partial() for _ in range(partitions)], "orders": [Partial() for _ in range(partitions)],
               "payers": [Partial() for _ in range(partitions)]}
    # (stream, partition) -> source -> the records of that topic partition, in topic order.
    topics_of: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for source, rs in records.items():
        stream = "orders" if source in ORDER_SOURCES else "persons"
        for r in rs:
            topics_of.setdefault((stream, _home(source, r, partitions)), {}).setdefault(source, []).append(r)
            if source == "contributions":
                topics_of.setdefault(("payers", _home("payers", r, partitions)), {}).setdefault("payers", []).append(r)
    for (stream, partition), by_source in topics_of.items():
        queues = {source: _redelivered(rs, rng) for source, rs in by_source.items()}
        # The stream reads its topics interleaved in any way; each topic partition in its order.
        while queues:
            source = rng.choice(sorted(queues))
            streams[stream][partition].apply(source, dict(queues[source].pop(0)))
            if not queues[source]:
                del queues[source]
    for month in MONTHS:
        merged = merge(p.figures(month) for ps in streams.values() for p in ps)
        assert merged == recount(month, records), month


def _redelivered(records: list[dict], rng) -> list[dict]:
    """A topic partition after redeliveries: some records emitted again, later than the first time."""
    out = list(records)
    for r in records:
        if rng.random() < 0.3:
            out.insert(rng.randint(out.index(r) + 1, len(out)), r)
    return out


@settings(max_examples=60, deadline=None)
@given(topics(), st.randoms(use_true_random=False))
def test_recount_ignores_repeats(records, rng):
    """The recount of a topic with re-emitted records equals that of the topic without them."""
    noisy = {}
    for source, rs in records.items():
        noisy[source] = _redelivered(rs, rng)
    for month in MONTHS:
        assert recount(month, noisy) == recount(month, records)


@settings(max_examples=60, deadline=None)
@given(topics(), topics())
def test_a_published_report_and_its_delta_flatten_back_to_their_figures(a, b):
    for month in MONTHS:
        new, old = recount(month, a), recount(month, b)
        assert flatten(render(new, ("contributions", "social_payments"))) == new
        assert flatten(render_delta(delta(new, old))) == delta(new, old)


@settings(max_examples=150, deadline=None)
@given(st.lists(records_of["decisions"], min_size=3, max_size=24), st.lists(records_of["social_payments"], max_size=10),
       st.integers(1, 3), st.randoms(use_true_random=False))
def test_month_end_figures_equal_the_recount(decisions, transfers, partitions, rng):
    """The month-end figures alone, with many decisions of few recipients (their order, dates and ends
    meet), split over partitions, interleaved and redelivered."""
    records = {"decisions": list(reversed({r["decision_id"]: r for r in reversed(decisions)}.values())),
               "social_payments": list(reversed({r["entry_id"]: r for r in reversed(transfers)}.values()))}
    persons = [Partial() for _ in range(partitions)]
    queues: dict[tuple[int, str], list[dict]] = {}
    for source, rs in records.items():
        for r in rs:
            queues.setdefault((_home(source, r, partitions), source), []).append(r)
    queues = {k: _redelivered(v, rng) for k, v in queues.items()}
    while queues:
        key = rng.choice(sorted(queues))
        persons[key[0]].apply(key[1], dict(queues[key].pop(0)))
        if not queues[key]:
            del queues[key]
    for month in ["2025-12", *MONTHS, "2026-04"]:
        merged = merge(p.figures(month) for p in persons)
        assert merged == recount(month, records), month
