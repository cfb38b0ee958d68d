"""What the report streams' state costs per million participants, as built (streams/report_partitions.py):
one month, one partition, N distinct IINs with one posted KNP 012 line each (N seen ids and N set
members), counted in batches of 5,000 and committed as the streams do; then the rocksdict store is
compacted and its files measured, and the changelog's records summed.

    python -m tools.report_state_sizing [N]
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
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
