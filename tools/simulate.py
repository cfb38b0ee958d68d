"""`esep simulate`: the bank integration and the registry feed, simulated: publishes a synthetic
registry and a stream of credit notifications to the configured topics (those the workers
consume), at a given rate. It starts no worker: point it at a running deployment."""
from __future__ import annotations

import json
import time
from datetime import datetime

from kafka import KafkaProducer

from rules.calendar import ALMATY

from streams.settings import Settings
from .synthetic import Scenario, make_orders, make_registry, split_late, summary_of
from streams.topics import ensure_topics


def run_simulation(settings: Settings, orders: int, persons: int, rate: float, seed: int, lines: int = 20,
                   late_ratio: float = 0.01) -> int:
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    bootstrap = settings.resolve_broker()
    ensure_topics(settings, bootstrap)
    t = settings.topics
    registry = make_registry(persons, seed)
    early, late = split_late(registry, 0.02, seed)
    prefix = f"SIM{seed}-" + time.strftime("%Y%m%d%H%M%S")
    records = make_orders(early, orders, lines, seed, Scenario(), received_at=lambda: datetime.now(ALMATY),
                          id_prefix=prefix, late=late, late_ratio=late_ratio)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
    for p in early:
        producer.send(t.registry_persons, key=p["iin"].encode(), value=json.dumps(p, ensure_ascii=False).encode())
    producer.flush()
    say(f"published {len(early):,} registry persons to {t.registry_persons} on {bootstrap}")
    started = time.time()
    for i, rec in enumerate(records):
        producer.send(t.credit_notifications, key=rec.key, value=rec.value)
        wait = started + (i + 1) / rate - time.time()
        if wait > 0:
            producer.flush()
            time.sleep(wait)
        if (i + 1) % max(1, int(rate * 5)) == 0:
            say(f"  sent {i + 1:,}/{len(records):,} records to {t.credit_notifications}")
    for p in late:
        producer.send(t.registry_persons, key=p["iin"].encode(), value=json.dumps(p, ensure_ascii=False).encode())
    producer.flush()
    producer.close()
    expected = summary_of(records, late_arrives=True)
    say(f"done in {time.time() - started:.1f} s: {expected['orders']:,} notifications ({expected['lines']:,} lines), "
        f"{expected['repeats']} repeats, {expected['dead_letters']} malformed, then {len(late):,} late registry "
        f"persons; expected {expected['lines_posted']:,} lines posted and {expected['lines_refunded']:,} refunded "
        f"once every hold has ended (ids start with {prefix})")
    return 0
