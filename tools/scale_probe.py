"""Scale probe: how the registry replica loads a registry of millions, against the broker's own rate.

    python -m tools.scale_probe --persons 1000000 [--persons 5000000] [--broker host:port] [--json out.json]

For each size (ascending; the topic grows from one size to the next) it
1. fills a compacted topic with that many persons (valid IINs, ~30 % with document and address),
2. reads the topic once with a plain aiokafka consumer and no store: the broker's raw read rate,
3. loads it into a fresh `RegistryReplica` (tables/registry.py) in a child process until ready:
   time to ready, the child's RSS at ready and its peak, the store's size on disk,
4. SIGKILLs that child and starts another on the same store: time to ready after a crash,
   then closes it cleanly and measures the disk again,
and prints one table row per size, with the cost per million persons and its extrapolation.

Every measurement runs in its own child process, so the RSS figures are the loading process's own.
Starts a local broker (tools.localkafka) under a temporary directory unless --broker is given, and
stops it at the end."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import orjson

from rules.iin import check_digit

SURNAMES = (("Ахметов", "Ахметова"), ("Иванов", "Иванова"), ("Сейткали", "Сейткали"), ("Нурланов", "Нурланова"),
            ("Ким", "Ким"), ("Жумабаев", "Жумабаева"), ("Омаров", "Омарова"), ("Петренко", "Петренко"))
NAMES = (("Ерлан", "Айгерим"), ("Данияр", "Асель"), ("Сергей", "Ольга"), ("Арман", "Динара"), ("Нурлан", "Жанна"))
PATRONYMICS = (("Серикович", "Сериковна"), ("Ерланулы", "Ерланкызы"), (None, None), ("Петрович", "Петровна"))
FIRST_BIRTH = date(1960, 1, 1)
BIRTH_DAYS = (date(2006, 12, 31) - FIRST_BIRTH).days + 1
MiB = 1024 * 1024


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Persons, cheaply: the i-th person has a unique IIN (birth day, sex and serial drawn from i), so the
# topic can grow from one size to the next without remembering what it holds.

def person(i: int) -> tuple[bytes, bytes] | None:
    """(key, value) of the i-th person; None when its serial is never issued (1 in 121)."""
    day, rest = i % BIRTH_DAYS, i // BIRTH_DAYS
    sex_index, serial = rest % 2, rest // 2
    if serial > 9999:
        raise ValueError(f"person {i}: the probe's IIN space holds {BIRTH_DAYS * 2 * 10000:,} persons")
    birth = FIRST_BIRTH + timedelta(days=day)
    sex = "MF"[sex_index]
    century = 3 + sex_index if birth.year < 2000 else 5 + sex_index
    first11 = f"{birth.year % 100:02d}{birth.month:02d}{birth.day:02d}{century}{serial:04d}"
    digit = check_digit(first11)
    if digit is None:
        return None
    iin = f"{first11}{digit}"
    h = zlib.crc32(iin.encode())
    rec = {
        "iin": iin,
        "surname": SURNAMES[h % len(SURNAMES)][sex_index],
        "name": NAMES[(h >> 4) % len(NAMES)][sex_index],
        "patronymic": PATRONYMICS[(h >> 8) % len(PATRONYMICS)][sex_index],
        "birth_date": birth.isoformat(),
        "sex": sex,
        "citizenship": "KZ",
        "death_date": None,
        "updated_at": "2024-03-01T09:00:00+05:00",
    }
    if h % 10 < 3:
        rec["document"] = {"kind": "id_card", "series": None, "number": f"0{h % 10**8:08d}",
                           "issued_on": "2015-06-01", "issuer": "МВД РК"}
        rec["address"] = {"text": f"г. Алматы, ул. Абая, {h % 250 + 1}, кв. {h % 180 + 1}",
                          "postal_index": "050000"}
    return iin.encode(), orjson.dumps(rec)


async def produce(bootstrap: str, topic: str, partitions: int, first: int, count: int) -> int:
    """Produce `count` persons starting at person index `first`; returns the next index. Batches are
    built by hand (create_batch/send_batch): send() costs ~25 µs a record, too slow for millions."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_batch_size=1024 * 1024,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        batches = [producer.create_batch() for _ in range(partitions)]
        pending = []
        i, made = first, 0
        while made < count:
            rec = person(i)
            i += 1
            if rec is None:
                continue
            key, value = rec
            p = zlib.crc32(key) % partitions
            if batches[p].append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=key, value=value, timestamp=None)
                if len(pending) > 32:
                    await asyncio.gather(*pending)
                    pending.clear()
            made += 1
        for p, b in enumerate(batches):
            if b.record_count():
                pending.append(await producer.send_batch(b, topic, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return i


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import NewTopic

    from streams.topics import admin_client

    admin = admin_client(bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1, topic_configs={"cleanup.policy": "compact"})],
                            timeout_ms=30000)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = admin.describe_topics([topic])
            if described and all(p.get("leader_id", -1) >= 0 for p in described[0].get("partitions") or [{}]):
                return
            time.sleep(0.1)
    finally:
        admin.close()


def delete_topic(bootstrap: str, topic: str) -> None:
    from streams.topics import admin_client

    admin = admin_client(bootstrap)
    try:
        admin.delete_topics([topic], timeout_ms=30000)
    except Exception as exc:  # cleanup of a probe topic: report, don't fail the probe
        say(f"could not delete {topic}: {exc}")
    finally:
        admin.close()


# ------------------------------------------------------------------------------------------------
# Child processes: one measurement each, one JSON line on stdout.

def cpu_seconds() -> float:
    """User + system CPU seconds of this process: unlike wall time, barely moved by other load."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB: now and peak."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def child_raw(bootstrap: str, topic: str) -> dict:
    """The broker's raw read rate: every record fetched, nothing decoded or stored."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from tables.metadata import topic_partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * MiB)
    await consumer.start()
    try:
        started = time.monotonic()
        tps = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = nbytes = 0
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(timeout_ms=500, max_records=20000)
            for tp, recs in batches.items():
                records += len(recs)
                nbytes += sum(len(r.value) for r in recs)
                if recs[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        seconds = time.monotonic() - started
    finally:
        await consumer.stop()
    rss, peak = memory_kib()
    return {"records": records, "bytes": nbytes, "seconds": seconds, "cpu_s": cpu_seconds(), "rss_kib": rss,
            "peak_kib": peak}


async def child_load(bootstrap: str, topic: str, store_dir: str, cache_mb: int, write_buffer_mb: int,
                     changes: str = "caught-up") -> None:
    """Load the replica until ready, report, then wait: the parent kills it (crash) or closes its
    stdin (clean stop: close the store). `changes`: how the changed IINs are heard before ready,
    "caught-up" (one call at ready) or "each" (every batch's IINs kept until ready, as the worker
    of issue 14 did)."""
    from streams.settings import Settings
    from tables.budget import StoreBudget, use_budget
    from tables.registry import RegistryReplica, RegistryStore

    budget = use_budget(StoreBudget(cache_mb, write_buffer_mb))
    started, cpu_started = time.monotonic(), cpu_seconds()
    store = RegistryStore(Path(store_dir))
    heard: set[str] = set()
    replica = RegistryReplica(store, bootstrap, topic, on_change=heard.update,
                              on_caught_up=(lambda: None) if changes == "caught-up" else None,
                              load_processes=Settings.from_env().registry_load_processes)  # as the worker
    follower = asyncio.ensure_future(replica.run())
    ready = asyncio.ensure_future(replica.ready.wait())
    done, _ = await asyncio.wait({follower, ready}, return_when=asyncio.FIRST_COMPLETED)
    if follower in done:
        follower.result()
    seconds = time.monotonic() - started
    rss, peak = memory_kib()
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_seconds() - cpu_started, "records": replica.stats.records,
                      "rss_kib": rss, "peak_kib": peak, "heard": len(heard),
                      "store_usage": budget.usage(),
                      "replica_s": replica.stats.caught_up_s}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    follower.cancel()
    try:
        await follower
    except asyncio.CancelledError:
        pass
    store.close()


def spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tools.scale_probe", "--child", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"the probe's child exited with {proc.returncode} before reporting")
    return json.loads(line)


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------

@dataclass
class Row:
    persons: int
    topic_mib: float
    raw_s: float
    raw_cpu_s: float
    raw_rate: float
    ready_s: float
    ready_cpu_s: float
    load_rate: float
    ratio: float
    cpu_ratio: float
    rss_ready_mib: float
    rss_peak_mib: float
    store_mem_mib: float
    disk_ready_mib: float
    disk_closed_mib: float
    restart_after_kill_s: float
    restart_records: int
    load_average: float


def measure(bootstrap: str, topic: str, persons: int, workdir: Path, cache_mb: int, write_buffer_mb: int,
            changes: str) -> Row:
    raw = spawn(["raw", bootstrap, topic])
    r = first_line(raw)
    raw.communicate()
    say(f"  raw read: {r['records']:,} records, {r['bytes'] / MiB:.0f} MiB in {r['seconds']:.1f} s")
    store = workdir / f"store-{persons}"
    shutil.rmtree(store, ignore_errors=True)
    budget = [str(cache_mb), str(write_buffer_mb), changes]
    first = spawn(["load", bootstrap, topic, str(store), *budget])
    a = first_line(first)
    disk_ready = disk_bytes(store)
    first.send_signal(signal.SIGKILL)  # a crash right at ready: whatever was not durable is lost
    first.wait()
    say(f"  replica ready in {a['seconds']:.1f} s, {a['cpu_s']:.1f} CPU s ({a['records']:,} records, "
        f"{a['heard']:,} IINs heard before ready); RSS {a['rss_kib'] / 1024:.0f} MiB, "
        f"peak {a['peak_kib'] / 1024:.0f} MiB; SIGKILLed")
    second = spawn(["load", bootstrap, topic, str(store), *budget])
    b = first_line(second)
    second.communicate("")  # clean stop: the store is closed (memtables flushed)
    say(f"  restart after SIGKILL ready in {b['seconds']:.1f} s ({b['records']:,} records re-read)")
    return Row(
        persons=persons, topic_mib=r["bytes"] / MiB, raw_s=r["seconds"], raw_cpu_s=r["cpu_s"],
        raw_rate=r["records"] / r["seconds"], ready_s=a["seconds"], ready_cpu_s=a["cpu_s"],
        load_rate=a["records"] / a["seconds"], ratio=r["seconds"] / a["seconds"], cpu_ratio=r["cpu_s"] / a["cpu_s"],
        rss_ready_mib=a["rss_kib"] / 1024, rss_peak_mib=a["peak_kib"] / 1024,
        store_mem_mib=sum(a["store_usage"].values()) / MiB, disk_ready_mib=disk_ready / MiB,
        disk_closed_mib=disk_bytes(store) / MiB, restart_after_kill_s=b["seconds"], restart_records=b["records"],
        load_average=os.getloadavg()[0],
    )


def table(rows: list[Row], cache_mb: int, write_buffer_mb: int) -> str:
    out = [f"store budget: cache {cache_mb} MiB, write buffers {write_buffer_mb} MiB; wall times depend on the "
           f"machine's other load (1-minute load average in the last column), CPU seconds much less",
           "| persons | topic MiB | raw read: wall s / CPU s | replica ready: wall s / CPU s | replica/raw rate: "
           "wall / CPU | RSS ready / peak MiB (stores' cache + memtables) | disk at ready / closed MiB "
           "| ready after SIGKILL s | load |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.persons:,} | {r.topic_mib:.0f} | {r.raw_s:.1f} / {r.raw_cpu_s:.1f} | {r.ready_s:.1f} / "
                   f"{r.ready_cpu_s:.1f} | {r.ratio:.2f} / {r.cpu_ratio:.2f} | {r.rss_ready_mib:.0f} / "
                   f"{r.rss_peak_mib:.0f} ({r.store_mem_mib:.0f}) | {r.disk_ready_mib:.0f} / {r.disk_closed_mib:.0f} "
                   f"| {r.restart_after_kill_s:.1f} | {r.load_average:.1f} |")
    big = rows[-1]
    per_m = big.persons / 1e6
    out.append(f"per million persons (from {big.persons:,}): {big.ready_s / per_m:.1f} s to ready "
               f"({big.ready_cpu_s / per_m:.1f} CPU s), {big.disk_closed_mib / per_m:.0f} MiB on disk; "
               f"extrapolated to 20M: {big.ready_s / per_m * 20:.0f} s ({big.ready_cpu_s / per_m * 20:.0f} CPU s), "
               f"{big.disk_closed_mib / per_m * 20 / 1024:.1f} GiB on disk; RSS peak {big.rss_peak_mib:.0f} MiB "
               f"at {big.persons:,} (bounded by the store budget, not the registry size)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, *rest = argv[1:]
        if kind == "raw":
            print(json.dumps(asyncio.run(child_raw(*rest))), flush=True)
        else:
            bootstrap, topic, store, cache_mb, wb_mb, changes = rest
            asyncio.run(child_load(bootstrap, topic, store, int(cache_mb), int(wb_mb), changes))
        return 0
    from tables.budget import DEFAULT_CACHE_MB, DEFAULT_WRITE_BUFFER_MB

    ap = argparse.ArgumentParser(prog="python -m tools.scale_probe", description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, action="append", help="registry size; repeat for several (ascending)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--broker", default="", help="host:port of a running broker (default: start a local one)")
    ap.add_argument("--cache-mb", type=int, default=DEFAULT_CACHE_MB)
    ap.add_argument("--write-buffer-mb", type=int, default=DEFAULT_WRITE_BUFFER_MB)
    ap.add_argument("--changes", choices=("caught-up", "each"), default="caught-up",
                    help="how the replica reports changes before ready (each = as the worker of issue 14 did)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    sizes = sorted(args.persons or [1_000_000])
    workdir = Path(tempfile.mkdtemp(prefix="esep-scale-"))
    broker_dir = None
    try:
        bootstrap = args.broker
        if not bootstrap:
            from tools import localkafka

            broker_dir = workdir / "kafka"
            bootstrap = localkafka.start(broker_dir, log=say).bootstrap
        topic = f"esep-scale-{uuid.uuid4().hex[:8]}.registry.persons"
        create_topic(bootstrap, topic, args.partitions)
        rows: list[Row] = []
        produced, next_index = 0, 0
        try:
            for n in sizes:
                started = time.monotonic()
                next_index = asyncio.run(produce(bootstrap, topic, args.partitions, next_index, n - produced))
                say(f"{n:,} persons: produced {n - produced:,} in {time.monotonic() - started:.1f} s")
                produced = n
                rows.append(measure(bootstrap, topic, n, workdir, args.cache_mb, args.write_buffer_mb, args.changes))
        finally:
            delete_topic(bootstrap, topic)
        print(table(rows, args.cache_mb, args.write_buffer_mb))
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    finally:
        if broker_dir is not None:
            from tools import localkafka

            localkafka.stop(broker_dir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
