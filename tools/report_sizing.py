"""Memory of the monthly report's exact distinct counts at the scale of Kazakhstan.

`python -m tools.report_sizing` builds one month's participant set (default 8,000,000 IINs) and payer
set (default 300,000 BIN/IIN) the way the partials hold them, split over 1 and over 12 partitions,
and prints a table: bytes held by the structures (sys.getsizeof over containers and members), the
process's resident growth while building them, the snapshot size a changelog would carry, and the
cost of one `add`. For comparison it measures a plain `set` of ints on the same members, and the
on-disk size of the entry-id de-duplication store (rocksdict) per million ids.

IINs are drawn like real ones: the first six digits a birth date of a person aged 16 to 63, the
seventh the century/sex digit, then a serial (the check digit is not computed: the set stores any
12 digits alike).
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from rules.report.idset import IdSet

MIB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def participant_iins(n: int, seed: int = 12) -> list[str]:
    rng = random.Random(seed)
    first = date(1963, 1, 1)
    days = (date(2010, 1, 1) - first).days
    out: set[str] = set()
    while len(out) < n:
        born = first + timedelta(days=int(rng.random() * days))
        century = (3 if born.year < 2000 else 5) + (rng.random() < 0.5)
        out.add(f"{born:%y%m%d}{century}{int(rng.random() * 100_000):05d}")
    iins = list(out)
    rng.shuffle(iins)  # arrival order is not sorted
    return iins


def payer_ids(n: int, seed: int = 13) -> list[str]:
    """Three in four payers are companies (BIN: YYMM of registration, type, unit, serial), the rest
    individual entrepreneurs paying with their IIN."""
    rng = random.Random(seed)
    out: set[str] = set()
    people = participant_iins(n // 4 + 1, seed)
    while len(out) < n - n // 4:
        out.add(f"{rng.randint(95, 125) % 100:02d}{rng.randint(1, 12):02d}{rng.choice('456')}{rng.choice('0123')}"
                f"{rng.randrange(10**6):06d}")
    out.update(people[: n // 4])
    ids = list(out)
    rng.shuffle(ids)
    return ids


def _split(ids: list[str], partitions: int) -> list[list[str]]:
    parts: list[list[str]] = [[] for _ in range(partitions)]
    for v in ids:
        parts[hash(v) % partitions].append(v)
    return parts


def measure_idsets(ids: list[str], partitions: int) -> dict:
    parts = _split(ids, partitions)
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    sets = []
    for part in parts:
        s = IdSet()
        add = s.add
        for v in part:
            add(v)
        sets.append(s)
    elapsed = time.perf_counter() - started
    for s in sets:
        s.compact()
    gc.collect()
    grown = rss_bytes() - before
    held = sum(s.nbytes() for s in sets)
    snapshot = sum(len(s.to_bytes()) for s in sets)
    buckets = sum(len(s._buckets) for s in sets)  # noqa: SLF001 - a measurement
    assert sum(len(s) for s in sets) == len(ids)
    del sets
    gc.collect()
    return {"held": held, "rss": grown, "snapshot": snapshot, "add_us": elapsed / len(ids) * 1e6,
            "buckets": buckets}


def measure_int_set(ids: list[str]) -> dict:
    gc.collect()
    before = rss_bytes()
    s = {int(v) for v in ids}
    gc.collect()
    grown = rss_bytes() - before
    held = sys.getsizeof(s) + sum(sys.getsizeof(v) for v in s)
    del s
    gc.collect()
    return {"held": held, "rss": grown}


def measure_seen_store(n: int) -> dict:
    """On-disk bytes of the entry-id store per id: what de-duplication of additive figures costs."""
    from rocksdict import Options, Rdict

    rng = random.Random(14)
    directory = Path(tempfile.mkdtemp(prefix="esep-seen-"))
    try:
        db = Rdict(str(directory), Options())
        started = time.perf_counter()
        batch = 0
        while batch * 20 < n:
            nid = f"{rng.randrange(10**12):012d}-{rng.randrange(10**6):06d}"
            for line in range(1, 21):
                db[f"2026-01|contributions|{nid}/{line}".encode()] = b""
            batch += 1
        elapsed = time.perf_counter() - started
        db.flush()
        db.compact_range(None, None)
        db.close()
        on_disk = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and p.suffix == ".sst")
        return {"ids": batch * 20, "disk": on_disk, "put_us": elapsed / (batch * 20) * 1e6}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=8_000_000)
    parser.add_argument("--payers", type=int, default=300_000)
    parser.add_argument("--partitions", default="1,12", help="comma-separated partition counts")
    parser.add_argument("--seen-ids", type=int, default=1_000_000, help="entry ids for the store row (0: skip)")
    parser.add_argument("--no-int-set", action="store_true", help="skip the plain set comparison")
    args = parser.parse_args(argv)

    rows = []
    print(f"drawing {args.participants:,} participant IINs and {args.payers:,} payer ids ...", file=sys.stderr)
    people = participant_iins(args.participants)
    payers = payer_ids(args.payers)
    for partitions in (int(p) for p in args.partitions.split(",")):
        for label, ids in (("participants", people), ("payers", payers)):
            m = measure_idsets(ids, partitions)
            rows.append((f"{label}, IdSet, {partitions} partition(s)", len(ids), m["held"], m["rss"], m["snapshot"],
                         f"{m['add_us']:.2f}", m["buckets"]))
    if not args.no_int_set:
        m = measure_int_set(people)
        rows.append(("participants, Python set of int", len(people), m["held"], m["rss"], None, "", None))
    rows.append(("participants, sorted array('Q') (bound)", len(people), 8 * len(people), None, None, "", None))

    print()
    print("| structure | members | held MiB | bytes/member | RSS growth MiB | snapshot MiB | add µs | buckets |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, held, rss, snap, add_us, buckets in rows:
        print(f"| {name} | {n:,} | {held / MIB:.1f} | {held / n:.2f} | "
              f"{'' if rss is None else f'{rss / MIB:.1f}'} | {'' if snap is None else f'{snap / MIB:.1f}'} | "
              f"{add_us} | {'' if buckets is None else f'{buckets:,}'} |")
    if args.seen_ids:
        s = measure_seen_store(args.seen_ids)
        print()
        print("| entry-id store (rocksdict, on disk, compacted) | ids | MiB | bytes/id | put µs |")
        print("|---|---:|---:|---:|---:|")
        print(f"| `<month>|<source>|<notification_id>/<line_no>` | {s['ids']:,} | {s['disk'] / MIB:.1f} | "
              f"{s['disk'] / s['ids']:.1f} | {s['put_us']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
