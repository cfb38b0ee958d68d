"""For any split of the records over partitions and any order and repetition of their delivery, the
merged partials equal the recount of the records."""
from __future__ import annotations

import zlib

from hypothesis import given, settings, strategies as st

from rules.report import Partial, flatten, merge, recount, render, render_delta
from rules.report.figures import delta

from .report_records import alert, decision, posted, recipient, refund, result, reversal, social_payment

IINS = ["870314312348", "921102423450", "010630534571", "040109645673", "581225356784", "900505300407"]
PAYERS = ["180440000019", "990340001234", "ИП-7"]
TYPES = ["loss_of_job", "child_care"]
# Around the January/February boundary in Almaty (the 19:30Z instant is already 1 February).
INSTANTS = ["2026-01-02T09:00:00+05:00", "2026-01-31T23:59:59+05:00", "2026-01-31T19:30:00Z",
            "2026-02-16T10:00:00+05:00"]
AMOUNTS = ["0.01", "4250.00", "29750.50", "595000.00"]
MONTHS = ["2026-01", "2026-02"]

PERSON_SOURCES = ("contributions", "reversals", "alerts", "decisions", "social_payments", "recipients")
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
        lambda n, iin, kind, status, ptype, day: decision(f"D{n}", iin, decision=kind, status=status,
                                                          payment_type=None if kind == "refund" else ptype,
                                                          decided_on=day),
        ids, iins, st.sampled_from(["assign", "recalculate", "suspend", "resume", "terminate", "refuse", "refund"]),
        st.sampled_from(["applied", "rejected"]), st.sampled_from(TYPES),
        st.sampled_from(["2026-01-01", "2026-01-31", "2026-02-01"])),
    "social_payments": st.builds(
        lambda n, iin, kind, ptype, overpaid, at: social_payment(f"T{n}", iin, kind=kind, payment_type=ptype,
                                                                 overpaid=overpaid, received_at=at),
        ids, iins, st.sampled_from(["payment", "return"]), st.sampled_from(TYPES),
        st.sampled_from(["0.00", "5000.00"]), instants),
    "recipients": st.builds(lambda iin, ptype, month, active, owed: recipient(iin, payment_type=ptype, month=month,
                                                                             active=active, outstanding=owed),
                            iins, st.sampled_from(TYPES), st.sampled_from(MONTHS), st.booleans(),
                            st.sampled_from(["0.00", "12.34"])),
    "refunds": st.builds(
        lambda n, reasons, order_reason, amount, at: refund(f"N{n}", reasons, order_reason=order_reason,
                                                            amount=amount, received_at=at),
        ids, st.lists(st.sampled_from(["INVALID_IIN", "DECEASED", "NAME_MISMATCH"]), min_size=1, max_size=3),
        st.sampled_from([None, "TOTAL_MISMATCH"]), amounts, instants),
    "results": st.builds(
        lambda n, at, decided: result(f"N{n}", received_at=at, decided_at=decided), ids, instants,
        st.sampled_from(["2026-01-02T10:00:00+05:00", "2026-02-20T10:00:00+05:00"])),
}

ID_FIELD = {"contributions": "entry_id", "reversals": "entry_id", "alerts": "alert_id", "decisions": "decision_id",
            "social_payments": "entry_id", "refunds": "refund_id", "results": "notification_id"}


@st.composite
def topics(draw):
    """Records per source as a topic would hold them: one content per id, the first emission kept."""
    out = {}
    for source, strategy in records_of.items():
        drawn = draw(st.lists(strategy, max_size=12))
        if source == "recipients":
            # One month-end snapshot per (iin, type, month): which of two came last is the ledger's to say.
            first = {(r["iin"], r["payment_type"], r["month"]): r for r in reversed(drawn)}
        else:
            first = {r[ID_FIELD[source]]: r for r in reversed(drawn)}
        out[source] = list(first.values())
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
    deliveries: dict[tuple[str, int], list[tuple[str, dict]]] = {}
    for source, rs in records.items():
        stream = "orders" if source in ORDER_SOURCES else "persons"
        for r in rs:
            deliveries.setdefault((stream, _home(source, r, partitions)), []).append((source, r))
            if source == "contributions":
                deliveries.setdefault(("payers", _home("payers", r, partitions)), []).append(("payers", r))
    for (stream, partition), items in deliveries.items():
        # Redeliveries repeat records; the order within a partition is any order.
        items = items + [rng.choice(items) for _ in range(rng.randint(0, len(items)))]
        rng.shuffle(items)
        for source, r in items:
            streams[stream][partition].apply(source, dict(r))
    for month in MONTHS:
        merged = merge(p.figures(month) for ps in streams.values() for p in ps)
        assert merged == recount(month, records), month


@settings(max_examples=60, deadline=None)
@given(topics(), st.randoms(use_true_random=False))
def test_recount_ignores_repeats_and_order(records, rng):
    """The recount of a topic with re-emitted records equals that of the topic without them."""
    noisy = {}
    for source, rs in records.items():
        if source == "recipients":
            noisy[source] = rs
            continue
        extra = [rng.choice(rs) for _ in range(len(rs))] if rs else []
        noisy[source] = rs + extra
    for month in MONTHS:
        assert recount(month, noisy) == recount(month, records)


@settings(max_examples=60, deadline=None)
@given(topics(), topics())
def test_a_published_report_and_its_delta_flatten_back_to_their_figures(a, b):
    for month in MONTHS:
        new, old = recount(month, a), recount(month, b)
        assert flatten(render(new, ("contributions", "social_payments"))) == new
        assert flatten(render_delta(delta(new, old))) == delta(new, old)
