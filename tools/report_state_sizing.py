"""What the report streams' state costs per million participants, as built (streams/report_partitions.py):
one month, one partition, N distinct IINs with one posted KNP 012 line each (N seen ids and N set
members), counted in batches of 5,000 and committed as the streams do; then the rocksdict store is
compacted and its files measured, and the changelog's records summed.

    python -m tools.report_state_sizing [N]
    python -m tools.report_state_sizing --social [N]

`--social`: N recipients of social payments (one partition) over six months: an assign each, a
payment a month (one in twenty overpaid, half of those returned in part), a suspension for one in
ten; counted with the month-end figures and again without them (the timelines switched off), so
the difference is what the month-end figures cost.
"""
from __future__ import annotations

import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

from rules.calendar import default_calendar
from streams.report_partitions import Applied, StreamPartition
from tables.report_state import ReportStore


def measure(n: int = 1_000_000, batch: int = 5_000, seed: int = 7) -> dict:
    rng = random.Random(seed)
    directory = Path(tempfile.mkdtemp(prefix="esep-report-sizing-"))
    store = ReportStore(directory / "report")
    sp = StreamPartition("persons", 0, store, default_calendar())
    changelog_bytes = changelog_records = 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = 0.0
    for start in range(0, n, batch):
        records = [orjson.dumps({
            "entry_id": f"N{j // 20:07d}/{j % 20 + 1}",
            # Distinct 12-digit IINs spread over birth dates, as real ones are.
            "iin": f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{j % 1_000_000:06d}",
            "knp": "012", "amount": "4250.00", "period": "2026-10", "received_at": "2026-11-26T10:15:00+05:00",
            "payer_bin_iin": f"18044{j // 20 % 300_000:07d}"}) for j in range(start, min(n, start + batch))]
        t = time.process_time()
        sp.apply("contributions", records, Applied())
        entries = sp.take_changes()
        store.apply(entries, {})
        sp.committed()
        cpu += time.process_time() - t
        changelog_bytes += sum(len(k) + len(v) for k, v in entries)
        changelog_records += len(entries)
    figures = sp.month("2026-11").figures()
    store.db.compact_range(None, None)
    store.db.flush()
    size = sum(p.stat().st_size for p in (directory / "report").rglob("*") if p.is_file())
    return {"participants": figures["contributions/participants"], "lines": figures["contributions/lines_posted"],
            "store_mib": size / 2**20, "store_bytes_per_participant": size / n,
            "changelog_records": changelog_records, "changelog_mib": changelog_bytes / 2**20,
            "changelog_bytes_per_participant": changelog_bytes / n, "cpu_us_per_line": cpu / n * 1e6,
            "max_rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
            "directory": str(directory)}


def social_records(n: int, seed: int = 7) -> dict[str, list[bytes]]:
    """Decision results and posted transfers of `n` recipients, as the recipients ledger writes them."""
    rng = random.Random(seed)
    decisions, transfers = [], []
    types = ("loss_of_job", "child_care", "loss_of_working_capacity")
    for j in range(n):
        iin = f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{j % 1_000_000:06d}"
        ptype = types[j % 3]
        decisions.append({"decision_id": f"A{j}", "iin": iin, "decision": "assign", "payment_type": ptype,
                          "status": "applied", "assignment_no": 1, "decided_on": "2026-06-03",
                          "effective_from": "2026-06-01", "end_date": "2027-05-31"})
        if j % 10 == 0:
            decisions.append({"decision_id": f"S{j}", "iin": iin, "decision": "suspend", "payment_type": ptype,
                              "status": "applied", "assignment_no": 1, "decided_on": "2026-09-10",
                              "effective_from": "2026-09-10", "end_date": "2027-05-31"})
        for month in range(6, 12):
            overpaid = "30000.00" if rng.random() < 0.05 else "0.00"
            at = f"2026-{month:02d}-20T11:00:00+05:00"
            transfers.append({"entry_id": f"P{j}-{month}", "iin": iin, "payment_type": ptype, "kind": "payment",
                              "gross_amount": "90000.00", "pension_contribution_withheld": "9000.00",
                              "net_amount": "81000.00", "overpaid_amount": overpaid, "applied_to_overpayment": "0.00",
                              "received_at": at})
            if overpaid != "0.00" and rng.random() < 0.5:
                transfers.append({"entry_id": f"R{j}-{month}", "iin": iin, "payment_type": ptype, "kind": "return",
                                  "gross_amount": "10000.00", "pension_contribution_withheld": "0.00",
                                  "net_amount": "10000.00", "overpaid_amount": "0.00",
                                  "applied_to_overpayment": "10000.00", "received_at": at})
    return {"decisions": [orjson.dumps(r) for r in decisions], "social_payments": [orjson.dumps(r) for r in transfers]}


def measure_social(n: int = 200_000, batch: int = 5_000, month_end: bool = True) -> dict:
    import streams.report_partitions as rp

    records = social_records(n)
    directory = Path(tempfile.mkdtemp(prefix="esep-report-social-"))
    store = ReportStore(directory / "report")
    sp = StreamPartition("persons", 0, store, default_calendar())
    saved = rp.TIMELINE_SOURCES
    rp.TIMELINE_SOURCES = saved if month_end else ()
    cpu: dict[str, float] = {}
    changelog_bytes = 0
    try:
        for source in ("decisions", "social_payments"):
            values = records[source]
            t = time.process_time()
            for start in range(0, len(values), batch):
                sp.apply(source, values[start:start + batch], Applied())
                entries = sp.take_changes()
                store.apply(entries, {})
                sp.committed()
                changelog_bytes += sum(len(k) + len(v) for k, v in entries)
            cpu[source] = (time.process_time() - t) / len(values) * 1e6
    finally:
        rp.TIMELINE_SOURCES = saved
    store.db.compact_range(None, None)
    store.db.flush()
    size = sum(p.stat().st_size for p in (directory / "report").rglob("*") if p.is_file())
    base = "social_payments/by_type/loss_of_job/"
    return {"recipients": n, "decisions": len(records["decisions"]), "transfers": len(records["social_payments"]),
            "cpu_us_per_decision": cpu["decisions"], "cpu_us_per_transfer": cpu["social_payments"],
            "store_mib": size / 2**20, "changelog_mib": changelog_bytes / 2**20,
            "active_at_november_end": sp.figures("2026-11").get(base + "recipients_active_at_month_end", 0),
            "month_end_diffs": sum(len(d) for d in sp.month_end.diffs.values())}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--social":
        n = int(args[1]) if len(args) > 1 else 200_000
        with_, without = measure_social(n), measure_social(n, month_end=False)
        print(f"{n:,} recipients, {with_['decisions']:,} decision results, {with_['transfers']:,} posted transfers, "
              f"one partition, batches of 5,000")
        for name, m in (("with the month-end figures", with_), ("without them", without)):
            print(f"{name}: {m['cpu_us_per_decision']:.1f} us CPU per decision, {m['cpu_us_per_transfer']:.1f} us per "
                  f"transfer; store {m['store_mib']:.1f} MiB, changelog {m['changelog_mib']:.1f} MiB; "
                  f"{m['month_end_diffs']} month-end diff entries; loss_of_job active at November's end "
                  f"{m['active_at_november_end']:,}")
        return 0
    m = measure(int(args[0]) if args else 1_000_000)
    print(f"{m['participants']:,} participants, {m['lines']:,} lines in one month of one partition")
    print(f"store (rocksdict, compacted, every file): {m['store_mib']:.1f} MiB = "
          f"{m['store_bytes_per_participant']:.1f} bytes per participant (its seen id included)")
    print(f"changelog: {m['changelog_records']:,} records, {m['changelog_mib']:.1f} MiB of keys and values = "
          f"{m['changelog_bytes_per_participant']:.1f} bytes per participant (uncompressed)")
    print(f"counting and committing: {m['cpu_us_per_line']:.1f} us CPU per line; the process grew by at most "
          f"{m['max_rss_growth_mib']:.0f} MiB (records generated per batch, rocksdb's buffers; no set in memory)")
    print(f"(store left in {m['directory']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
