"""The report streams' per-partition state and the assembler's knowledge, without Kafka: records
counted once across batches, failed batches (rolled back, then redelivered), restarts from the
store; partials merged, stale ones ignored, versions due on the clock."""
from __future__ import annotations

import datetime as _dt

from hypothesis import given, settings, strategies as st

from rules.calendar import ALMATY, default_calendar
from rules.report import build_report, final_due, flatten, recount
from streams.report_assembly import Assembly, held
from streams.report_partitions import Applied, StreamPartition, report_inputs
from streams.settings import Topics
from tables.report_state import ReportStore

from .rules.report_records import alert, posted, refund, result

NOV_30 = "2026-11-30T23:59:00+05:00"
DEC_1 = "2026-11-30T19:30:00Z"  # already 1 December in Almaty
IINS = ["870314312348", "921102423450", "010630534571", "040109645673"]
PAYERS = ["180440000019", "990340001234", "ИП-7"]
CAL = default_calendar()


def encode(record: dict) -> bytes:
    import orjson

    return orjson.dumps(record)


class Partition:
    """One stream partition and the runner's commit, as report_streams does it (changelog skipped)."""

    def __init__(self, store: ReportStore, stream: str = "persons", partition: int = 0):
        self.store = store
        self.sp = StreamPartition(stream, partition, store, CAL)
        self.forwards: list[tuple[bytes, bytes]] = []

    def apply(self, source: str, records: list[dict]) -> Applied:
        out = Applied()
        self.sp.apply(source, [encode(r) for r in records], out)
        self.forwards.extend(out.forwards)
        return out

    def commit(self) -> None:
        self.store.apply(self.sp.take_changes(), {})
        self.sp.committed()

    def rollback(self) -> None:
        self.sp.rollback()


def test_an_entry_counts_once_across_batches_and_restarts(tmp_path):
    store = ReportStore(tmp_path / "r")
    p = Partition(store)
    a = p.apply("contributions", [posted("N1/1", IINS[0], received_at=NOV_30),
                                  posted("N1/1", IINS[0], received_at=NOV_30)])
    assert (a.counted, a.repeats) == (1, 1)
    p.commit()
    # A re-emission in a later batch, then in a new process reading the same store.
    assert p.apply("contributions", [posted("N1/1", IINS[0], received_at=NOV_30)]).repeats == 1
    again = Partition(store)
    assert again.apply("contributions", [posted("N1/1", IINS[0], received_at=NOV_30)]).repeats == 1
    assert again.apply("contributions", [posted("N1/2", IINS[0], received_at=NOV_30)]).counted == 1
    again.commit()
    f = Partition(store).sp.month("2026-11").figures()
    assert f["contributions/lines_posted"] == 2
    assert f["contributions/participants"] == 1


def test_a_failed_batch_leaves_nothing_and_counts_once_when_redelivered(tmp_path):
    p = Partition(ReportStore(tmp_path / "r"))
    batch = [posted("N1/1", IINS[0], received_at=NOV_30), posted("N1/2", IINS[1], received_at=NOV_30)]
    p.apply("contributions", batch)
    p.rollback()
    assert p.sp.month("2026-11").figures() == {}
    p.forwards.clear()
    p.apply("contributions", batch)
    p.commit()
    f = p.sp.month("2026-11").figures()
    assert (f["contributions/lines_posted"], f["contributions/participants"]) == (2, 2)
    assert len(p.forwards) == 1, "the payer is forwarded again after the failed batch, once"


def test_payers_are_forwarded_once_per_month_and_partition(tmp_path):
    p = Partition(ReportStore(tmp_path / "r"))
    p.apply("contributions", [posted(f"N{i}/1", IINS[i % 4], received_at=at, payer=PAYERS[i % 2])
                              for i, at in enumerate([NOV_30, NOV_30, NOV_30, DEC_1, DEC_1])])
    months = sorted((k.decode(), v) for k, v in p.forwards)
    assert len(months) == 4  # two payers, two months


def test_partials_carry_the_month_figures_and_the_covers(tmp_path):
    p = Partition(ReportStore(tmp_path / "r"), stream="orders", partition=3)
    p.apply("refunds", [refund("N1", ["INVALID_IIN"], received_at=NOV_30)])
    p.apply("results", [result("N1", received_at=NOV_30)])
    p.sp.advance("refunds.to-payers", 7)
    p.commit()
    partials = dict(p.sp.partials(_dt.datetime(2026, 12, 1, tzinfo=ALMATY)))
    import orjson

    month = orjson.loads(partials[b"2026-11/orders/3"])
    progress = orjson.loads(partials[b"orders/3"])
    assert month["figures"]["contributions/refunds/orders"] == 1
    assert month["covers"] == progress["covers"] == {"refunds.to-payers": {"3": 7}}
    assert progress["month"] is None and progress["figures"] == {}
    from models.report import ReportPartial

    ReportPartial.model_validate(month)
    ReportPartial.model_validate(progress)


def test_report_inputs_are_the_output_topics_by_stream():
    inputs = {i.topic: (i.stream, i.source) for i in report_inputs(Topics.from_env({}))}
    assert inputs == {
        "posted.contributions": ("persons", "contributions"), "alerts.deceased-contributions": ("persons", "alerts"),
        "posted.reversals": ("persons", "reversals"), "posted.social-payments": ("persons", "social_payments"),
        "fund.decision-results": ("persons", "decisions"), "refunds.to-payers": ("orders", "refunds"),
        "orders.results": ("orders", "results"), "esep.report-payers": ("payers", "payers")}


entries = st.builds(
    lambda n, line, iin, knp, at, payer: posted(f"N{n}/{line}", iin, knp=knp, received_at=at, payer=payer),
    st.integers(0, 6), st.integers(1, 3), st.sampled_from(IINS), st.sampled_from(["012", "017"]),
    st.sampled_from([NOV_30, DEC_1]), st.sampled_from(PAYERS))


@settings(max_examples=60, deadline=None)
@given(st.lists(entries, min_size=1, max_size=30), st.data())
def test_any_batching_with_failures_and_redeliveries_gives_the_recount(tmp_path_factory, drawn, data):
    """Each record of the topic is delivered in batches; a batch may fail (rolled back) and is then
    delivered again; a worker may restart from the store between batches. Entries are re-emitted
    as the posting path does (same id, same content)."""
    unique = list({r["entry_id"]: r for r in reversed(drawn)}.values())
    records = data.draw(st.permutations(unique + data.draw(st.lists(st.sampled_from(unique), max_size=10))))
    store = ReportStore(tmp_path_factory.mktemp("r") / "r")
    p = Partition(store)
    delivered: list[dict] = []
    i = 0
    while i < len(records):
        size = data.draw(st.integers(1, 5))
        batch = records[i:i + size]
        if data.draw(st.booleans()):
            p.apply("contributions", batch)
            p.rollback()
        if data.draw(st.booleans()):
            p = Partition(store)  # a restart: nothing but the store survives
        p.apply("contributions", batch)
        p.commit()
        delivered.extend(batch)
        i += size
    for month in ("2026-11", "2026-12"):
        expected = recount(month, {"contributions": records})
        expected.pop("contributions/payers", None)  # counted by the payers stream
        assert Partition(store).sp.month(month).figures() == expected


# ---- the assembler's knowledge ----------------------------------------------------------------------

def partial(month, stream, p, figures, covers):
    return {"schema_version": 1, "month": month, "stream": stream, "partition": p, "figures": figures,
            "covers": covers, "updated_at": "2026-12-01T00:00:00.000+05:00"}


def test_partials_merge_and_a_stale_one_is_ignored():
    a = Assembly(CAL, 5, internal_topics=["esep.report-payers"])
    assert a.receive("2026-11/persons/0", partial("2026-11", "persons", 0, {"contributions/lines_posted": 3},
                                                  {"posted.contributions": {"0": 10}}))
    assert a.receive("2026-11/persons/1", partial("2026-11", "persons", 1, {"contributions/lines_posted": 4},
                                                  {"posted.contributions": {"1": 5}}))
    # A revoked owner's late write, behind what is held: ignored.
    assert not a.receive("2026-11/persons/0", partial("2026-11", "persons", 0, {"contributions/lines_posted": 1},
                                                      {"posted.contributions": {"0": 4}}))
    a.receive("persons/0", partial(None, "persons", 0, {}, {"posted.contributions": {"0": 12}}))
    a.receive("payers/0", partial(None, "payers", 0, {}, {"esep.report-payers": {"0": 3}}))
    assert a.figures("2026-11") == {"contributions/lines_posted": 7}
    assert a.covers() == {"posted.contributions": {"0": 12}}
    assert a.covered({("posted.contributions", 0): 12, ("esep.report-payers", 0): 3})
    assert not a.covered({("posted.contributions", 1): 1})


def test_versions_fall_due_on_the_clock_and_a_revision_needs_a_change():
    a = Assembly(CAL, 5)
    a.receive("2026-11/persons/0", partial("2026-11", "persons", 0, {"contributions/lines_posted": 3}, {}))
    assert a.tick(_dt.datetime(2026, 11, 30, 23, 59, tzinfo=ALMATY)) == []
    midnight = _dt.datetime(2026, 12, 1, 0, 0, tzinfo=ALMATY)
    (month, d), = a.tick(midnight)
    assert (month, d.version) == ("2026-11", "preliminary")
    a.published(a.build(month, d, midnight))
    late = final_due("2026-11", CAL, 5) + _dt.timedelta(minutes=7)
    assert a.lateness(late) == 420.0  # the final, seven minutes overdue
    (_, d), = a.tick(late)
    report = a.build("2026-11", d, late)
    assert (report["version"], report["delta"]) == ("final", {})
    a.published(report)
    assert a.tick(late + _dt.timedelta(days=3)) == [] and a.open_months() == []
    a.receive("2026-11/persons/0", partial("2026-11", "persons", 0, {"contributions/lines_posted": 5}, {}))
    a.tick(late + _dt.timedelta(days=3))
    assert a.open_months() == ["2026-11"]
    (_, d), = a.tick(late + _dt.timedelta(days=4))
    assert (d.version, d.revision) == ("revised", 1)
    # Back to the published figures before the revision was built: nothing to publish.
    a.receive("2026-11/persons/0", partial("2026-11", "persons", 0, {"contributions/lines_posted": 3}, {"x": {"0": 1}}))
    assert a.build("2026-11", d, late + _dt.timedelta(days=4)) is None


def test_a_restarted_assembler_knows_the_published_versions():
    figures = {"contributions/lines_posted": 3, "contributions/participants": 2}
    at = _dt.datetime(2026, 12, 8, 1, 0, tzinfo=ALMATY)
    final = build_report("2026-11", "final", 0, at, figures, {}, None)
    a = Assembly(CAL, 5)
    a.restore_version(final)
    assert held(flatten(final)) == figures
    a.receive("2026-11/persons/0", partial("2026-11", "persons", 0, figures, {}))
    assert a.tick(at + _dt.timedelta(days=30)) == [], "nothing changed since the final"
    assert a.last.version == "final" and a.last.generated_at == at
