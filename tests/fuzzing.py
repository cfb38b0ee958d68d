"""Fuzzed records for the posting path (issue 9), shared by tests/test_fuzz.py and the broker test: generated and mutated credit notifications (wrong
types, huge and negative numbers, odd Unicode, truncation, byte flips, deep nesting, missing and
extra fields, tombstones, keys that differ from the id) through the processor's public entry.

Each record must end as exactly one of: one dead letter (its own), one decided order with its
amounts conserved, or one re-keyed copy that, fed again, is decided once. The processor must never
raise. The generator is seeded `random.Random` so that the broker test
(tests/integration/test_fuzz_broker.py) feeds the same kinds of records at scale."""
from __future__ import annotations

import asyncio
import base64
import json
import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson
from pydantic import ValidationError

from models import bounds
from models.notifications import CreditNotification
from models.outputs import DeadLetter, DeceasedContribution, OrderResult, PostedContribution, Refund
from rules.calendar import default_calendar
from rules.holds import NO_HOLD
from streams.processor import PostingProcessor
from streams.records import InputRecord, OutputRecord
from streams.settings import Settings, Topics
from tables.decisions import DecisionStore
from tables.registry import RegistryStore, judge_record

from .cases import A, B, C, D, E, F_UNKNOWN, registry_persons
from .conftest import MemorySink, NoChangelog

# ---- the processor under test: built here only (adapt this one function when the processor changes) --


def build_processor(registry: RegistryStore, data_dir: Path) -> tuple[PostingProcessor, MemorySink, Topics]:
    """A processor deciding at once (no registry-lag hold), with an in-memory sink and a fresh
    decision store in `data_dir`; `await processor.process([InputRecord...])` is the entry."""
    topics = Settings.from_env({}).topics
    sink = MemorySink()
    processor = PostingProcessor(topics, registry, DecisionStore(data_dir / "decisions"), NoChangelog(), sink,
                                 default_calendar(), NO_HOLD)
    return processor, sink, topics


def close_processor(processor: PostingProcessor) -> None:
    processor.decisions.close()


def load_registry(path: Path) -> RegistryStore:
    registry = RegistryStore(path)
    puts = {}
    for person in registry_persons():
        iin, value, error = judge_record(person["iin"].encode(), json.dumps(person).encode())
        assert error is None
        puts[iin] = value
    registry.apply(puts, {0: len(puts)})
    return registry


# ---- the generator -------------------------------------------------------------------------------------

PEOPLE = (A, B, C, D, E)
ODD_TEXT = (
    "", " ", "\u0000", "\t\n", "\u200b", "\u200d", "\u202e", "\ufeff", "\ufffd", "\U0001F600", "\U0001F1F0\U0001F1FF",
    "e\u0301", "\u0415\u0308", "ё", "Ё", "Ә", "ғ", "қ", "ң", "ө", "ұ", "ү", "һ", "і", "İ", "ß", "ﬁ", "Ⅻ",
    "٤٢٥٠", "４２５０", "²", "𝟘", "\u00a0", "\u3000", "\\", "\"", "'", "<script>", "%s%n", "${jndi:x}", "NaN",
)
TOP_STRINGS = ("notification_id", "bank_bic", "document_number", "document_date", "sent_date", "received_at",
               "knp", "recipient_name", "total_amount", "currency", "period")
PAYER_STRINGS = ("name", "bin_iin", "iban")
LINE_STRINGS = ("iin", "surname", "name", "patronymic", "birth_date", "amount", "period")
REQUIRED_TOP = ("notification_id", "bank_bic", "document_number", "document_date", "sent_date", "received_at",
                "knp", "payer", "recipient_name", "total_amount", "currency", "lines")
OPTIONAL_TOP = ("period",)
REQUIRED_LINE = ("line_no", "iin", "surname", "name", "birth_date", "amount")
OPTIONAL_LINE = ("patronymic", "period")
# Beyond each bound by a little and by a lot (models/bounds.py); each must be a schema dead letter.
BEYOND = (
    ("line", "line_no", lambda r: r.choice((0, -1, bounds.MAX_LINE_NO + 1, 10**19, 10**30, -(10**30), 10**300))),
    ("top", "received_at", lambda r: r.choice(("8026-11-26T10:15:00+05:00", "1999-12-31T23:59:59Z",
                                              "2100-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
                                              "0001-01-01T00:00:00+14:00"))),
    ("top", "document_date", lambda r: r.choice(("1999-12-31", "2100-01-01", "8026-11-25", "0001-01-01"))),
    ("top", "sent_date", lambda r: r.choice(("1999-12-31", "9999-12-31"))),
    ("top", "total_amount", lambda r: r.choice(("1000000000000.01", "9" * 31, "1" * 33))),
    ("top", "notification_id", lambda r: "N" * r.choice((bounds.MAX_ID_CHARS + 1, 100_000))),
    ("top", "bank_bic", lambda r: "HSBKKZKX" * r.randint(2, 50)),
    ("top", "document_number", lambda r: "9" * r.choice((bounds.MAX_DOCUMENT_NUMBER_CHARS + 1, 10_000))),
    ("top", "knp", lambda r: "0" * (bounds.MAX_CODE_CHARS + 1)),
    ("top", "currency", lambda r: "KZT" * 6),
    ("top", "recipient_name", lambda r: "Н" * (bounds.MAX_ORG_NAME_CHARS + r.randint(1, 5000))),
    ("payer", "iban", lambda r: "KZ" + "8" * r.randint(33, 1000)),
    ("payer", "bin_iin", lambda r: "1" * r.randint(13, 100)),
    ("payer", "name", lambda r: "Т" * (bounds.MAX_ORG_NAME_CHARS + 1)),
    ("line", "iin", lambda r: "8" * r.randint(bounds.MAX_LINE_IIN_CHARS + 1, 5000)),
    ("line", "surname", lambda r: r.choice(ODD_TEXT[9:]) * (bounds.MAX_PERSON_NAME_CHARS + 1)),
    ("line", "amount", lambda r: "1" * (bounds.MAX_AMOUNT_CHARS + 1)),
    ("line", "birth_date", lambda r: "1987-03-14" * 4),
    ("line", "period", lambda r: "2026-10" * 3),
)
KINDS = ("valid", "valid", "rekeyed", "extra_fields", "wrong_type", "huge_number", "odd_unicode", "truncated",
         "byte_flip", "deep_nesting", "missing_field", "tombstone", "beyond_bound", "not_object", "duplicate_key",
         "not_utf8", "whitespace")
# What a kind must end as; "any" is judged by the oracle (the model and the key) alone.
EXPECT = {"valid": "decided", "rekeyed": "rerouted", "extra_fields": "decided", "wrong_type": "dead_letter",
          "huge_number": "dead_letter", "truncated": "dead_letter", "tombstone": "dead_letter",
          "beyond_bound": "dead_letter", "not_object": "dead_letter", "not_utf8": "dead_letter",
          "whitespace": "decided"}


@dataclass(frozen=True)
class FuzzRecord:
    kind: str
    key: bytes | None
    value: bytes | None


def _amount(rng: random.Random) -> str:
    tiyn = rng.choice((0, 1, 99, 425000, rng.randint(0, 3_000_000), rng.randint(0, 10**12)))
    text = f"{tiyn // 100}.{tiyn % 100:02d}"
    return rng.choice((text, text, text.rstrip("0").rstrip(".") if tiyn % 100 == 0 else text, f"{tiyn // 100}"))


def base_order(rng: random.Random, nid: str, lines: int | None = None) -> dict:
    """A notification that the model accepts: lines of known and unknown people, correct and not."""
    n = lines if lines is not None else rng.choice((1, 1, 2, 3, 4, 5, 8, 12, rng.randint(1, 40)))
    order_lines = []
    for i in range(n):
        person = rng.choice(PEOPLE)
        line = {"line_no": i + 1, **person, "amount": _amount(rng)}
        change = rng.random()
        if change < 0.08:
            line["iin"] = F_UNKNOWN
        elif change < 0.14:
            line["iin"] = line["iin"][:-1] + str((int(line["iin"][-1]) + 1) % 10)
        elif change < 0.20:
            line["surname"] = line["surname"].upper() + " "
        elif change < 0.24:
            line["name"] = "Другое"
        elif change < 0.28:
            line["birth_date"] = "1987-02-30"
        elif change < 0.32:
            line["period"] = rng.choice(("2026-13", "2027-01", "2026-08", "1999-01", "x"))
        elif change < 0.36:
            line["patronymic"] = None
        order_lines.append(line)
    if order_lines and rng.random() < 0.03:
        order_lines[-1]["line_no"] = order_lines[0]["line_no"]  # DUPLICATE_LINE_NO
    total = sum((Decimal(ln["amount"]) for ln in order_lines), Decimal(0))
    if total <= 0 or rng.random() < 0.05:
        total += Decimal(rng.choice(("0.01", "1", "100")))
    when = rng.choice(("2026-11-26T10:15:00+05:00", "2026-11-26T05:15:00Z", "2025-03-21T23:59:59+06:00",
                       "2024-02-29T23:30:00+05:00", "2020-01-01T00:00:00+05:00", "2099-12-31T23:59:59Z"))
    return {
        "notification_id": nid, "bank_bic": "HSBKKZKX", "document_number": str(rng.randint(1, 99999)),
        "document_date": "2026-11-25", "sent_date": "2026-11-25", "received_at": when,
        "knp": rng.choice(("012", "012", "012", "017", "010")), "payer": {
            "name": "ТОО «Дала Құрылыс»", "bin_iin": "180440000019", "iban": "KZ86125KZT5004100100"},
        "recipient_name": "НАО «Государственная корпорация «Правительство для граждан»",
        "total_amount": f"{total:.2f}", "currency": rng.choice(("KZT",) * 12 + ("USD",)),
        "period": rng.choice(("2026-10", "2026-10", None)), "lines": order_lines,
    }


def _json_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice((True, False))
    if kind == 2:
        return rng.choice((0, -1, 1, 2**63, -(2**63) - 1, 10**30, rng.randint(-10**9, 10**9)))
    if kind == 3:
        return rng.choice((0.5, -0.0, 1e308, -1e-308, 3.14))
    if kind == 4:
        return "".join(rng.choice(ODD_TEXT) for _ in range(rng.randint(0, 6)))
    if kind in (5, 6):
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(ODD_TEXT) + str(i): _json_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _other_type(rng: random.Random, original):
    """A JSON value of a type the field never accepts (null only where the field is required)."""
    while True:
        value = _json_value(rng)
        if value is None:
            continue
        if isinstance(original, str) and isinstance(value, str):
            continue
        if isinstance(original, bool) == isinstance(value, bool) and isinstance(original, int) \
                and isinstance(value, int):
            continue
        if isinstance(original, list) and isinstance(value, list):
            continue
        if isinstance(original, dict) and isinstance(value, dict):
            continue
        return value


def _target(rng: random.Random, order: dict) -> tuple[dict, str]:
    """A (container, field) of the order: top level, payer, or a line."""
    where = rng.random()
    if where < 0.4 or not order["lines"]:
        return order, rng.choice(TOP_STRINGS + ("payer", "lines"))
    if where < 0.55:
        return order["payer"], rng.choice(PAYER_STRINGS)
    line = rng.choice(order["lines"])
    return line, rng.choice(LINE_STRINGS + ("line_no",))


def _dumps(order) -> bytes:
    return json.dumps(order, ensure_ascii=False).encode("utf-8")


def fuzz_record(rng: random.Random, nid: str, kind: str | None = None) -> FuzzRecord:
    """One record of `kind` (drawn when None) built around a notification with id `nid`."""
    kind = kind or rng.choice(KINDS)
    order = base_order(rng, nid)
    key: bytes | None = nid.encode()
    value: bytes | None
    if kind in ("valid", "whitespace"):
        value = _dumps(order)
        if kind == "whitespace":
            value = rng.choice((b" ", b"\n", b"\t\r\n ")) + value + rng.choice((b"", b" ", b"\n"))
    elif kind == "rekeyed":
        value = _dumps(order)
        key = rng.choice((None, b"", b"x", nid.encode() + b" ", nid.lower().encode() + b"-0", b"\xff\xfe",
                          str(rng.random()).encode()))
    elif kind == "extra_fields":
        for container in [order, order["payer"], *order["lines"]]:
            if rng.random() < 0.5:
                container[rng.choice(ODD_TEXT[9:]) + "_extra"] = _json_value(rng)
        order["future_field"] = {"nested": [_json_value(rng) for _ in range(3)]}
        value = _dumps(order)
    elif kind == "wrong_type":
        container, field = _target(rng, order)
        container[field] = _other_type(rng, container[field] if container.get(field) is not None else "")
        value = _dumps(order)
    elif kind == "huge_number":
        if order["lines"] and rng.random() < 0.6:
            rng.choice(order["lines"])["line_no"] = rng.choice(
                (10**30, -(10**30), 2**64, -(2**63) - 1, 10**4000, -1, 0))
            value = _dumps(order)
        else:  # amounts and dates sent as numbers
            container, field = _target(rng, order)
            container[field] = rng.choice((10**30, -(10**30), 1e308, 2**64, -5))
            value = _dumps(order)
    elif kind == "odd_unicode":
        container, field = _target(rng, order)
        if field in ("payer", "lines", "line_no"):
            container, field = order, "recipient_name"
        container[field] = "".join(rng.choice(ODD_TEXT) for _ in range(rng.randint(0, 8)))
        if container is order and field == "notification_id":
            key = order["notification_id"].encode("utf-8")
        value = _dumps(order)
    elif kind == "truncated":
        full = _dumps(order)
        value = full[: rng.randint(0, len(full) - 1)]
    elif kind == "byte_flip":
        raw = bytearray(_dumps(order))
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        value = bytes(raw)
    elif kind == "deep_nesting":
        depth = rng.choice((10, 150, 300, 1000, 100_000))
        nested = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
        text = _dumps(order).decode("utf-8")
        where = rng.choice(("extra", "lines", "payer"))
        if where == "extra":
            value = (text[:-1] + ',"deep":' + nested + "}").encode()
        else:
            order[where] = "@@NESTED@@"
            value = _dumps(order).replace(b'"@@NESTED@@"', nested.encode())
    elif kind == "missing_field":
        if rng.random() < 0.3 and order["lines"]:
            rng.choice(order["lines"]).pop(rng.choice(REQUIRED_LINE + OPTIONAL_LINE), None)
        elif rng.random() < 0.2:
            del order["payer"][rng.choice(PAYER_STRINGS)]
        else:
            order.pop(rng.choice(REQUIRED_TOP + OPTIONAL_TOP), None)
        value = _dumps(order)
    elif kind == "tombstone":
        value = None
    elif kind == "beyond_bound":
        where, field, make = rng.choice(BEYOND)
        if where == "line" and not order["lines"]:
            where, field, make = BEYOND[1]
        container = {"top": order, "payer": order["payer"]}.get(where) or rng.choice(order["lines"])
        container[field] = make(rng)
        if rng.random() < 0.03:  # one line more than an order can hold (costly: rare)
            order["lines"] = [{**order["lines"][0], "line_no": i + 1} for i in range(bounds.MAX_LINES + 1)] \
                if order["lines"] else order["lines"]
        value = _dumps(order)
    elif kind == "not_object":
        value = rng.choice((b"[]", b"[1, 2, 3]", b'"text"', b"42", b"null", b"true", b"-0.0",
                            _dumps([order]), _dumps(json.dumps(order))))
    elif kind == "duplicate_key":
        text = _dumps(order).decode("utf-8")
        field = rng.choice(('"total_amount":', '"notification_id":', '"line_no":', '"lines":', '"knp":'))
        at = text.find(field)
        value = (text[:at] + field + json.dumps(_json_value(rng)) + "," + text[at:]).encode() if at >= 0 \
            else text.encode()
    elif kind == "not_utf8":
        text = _dumps(order)
        value = rng.choice((
            text.decode("utf-8").encode("cp1251", errors="replace"),
            text.decode("utf-8").encode("utf-16"),
            text[:10] + b"\xff" + text[10:],
            text.replace("Дала".encode(), b"\xc3\x28"),  # a broken two-byte sequence
            b"\xc0\xaf" + text,  # an overlong encoding
        ))
        if value == text or _is_utf8(value):
            value = text[:10] + b"\xff" + text[10:]
    else:
        raise ValueError(kind)
    return FuzzRecord(kind, key, value)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---- the oracle and the checks -------------------------------------------------------------------------

def judge(record: FuzzRecord) -> tuple[str, CreditNotification | None]:
    """What must become of a record by the contract: "dead_letter", "rerouted" or "decided", and the
    order when it is valid. Kinds with a fixed outcome must agree with it."""
    order = None
    if record.value is not None:
        try:
            order = CreditNotification.model_validate_json(record.value)
        except ValidationError:
            pass
    if order is None:
        outcome = "dead_letter"
    elif record.key != order.notification_id.encode():
        outcome = "rerouted"
    else:
        outcome = "decided"
    expected = EXPECT.get(record.kind, "any")
    assert expected in ("any", outcome), f"a {record.kind} record must be {expected}, the model says {outcome}"
    return outcome, order


def tiyn(amount: str) -> int:
    return int(Decimal(amount) * 100)


def check_decided(order: CreditNotification, by_topic: dict[str, list[OutputRecord]], topics: Topics) -> None:
    """One result, at most one refund, every line ending once, amounts conserved; every record valid
    by its output model."""
    nid = order.notification_id
    mine = lambda topic: [orjson.loads(r.value) for r in by_topic.get(topic, []) if r.key == nid.encode()]  # noqa: E731
    results = mine(topics.order_results)
    assert len(results) == 1, f"{nid}: {len(results)} results"
    result = OrderResult.model_validate(results[0]).model_dump()
    refunds = [Refund.model_validate(r).model_dump() for r in mine(topics.refunds)]
    assert len(refunds) <= 1
    posted = [PostedContribution.model_validate(orjson.loads(r.value)).model_dump()
              for r in by_topic.get(topics.posted_contributions, [])
              if orjson.loads(r.value)["entry_id"].rsplit("/", 1)[0] == nid]
    for r in by_topic.get(topics.deceased_alerts, []):
        DeceasedContribution.model_validate(orjson.loads(r.value))
    total = tiyn(order.total_amount)
    assert tiyn(result["amount_posted"]) + tiyn(result["amount_refunded"]) == total, f"{nid}: not conserved"
    assert sum(tiyn(e["amount"]) for e in posted) == tiyn(result["amount_posted"])
    refund_lines = refunds[0]["lines"] if refunds else []
    assert (tiyn(refunds[0]["amount"]) if refunds else 0) == tiyn(result["amount_refunded"])
    line_nos = sorted(line.line_no for line in order.lines)
    if refunds and refunds[0]["scope"] == "order":
        assert not posted and sorted(ln["line_no"] for ln in refund_lines) == line_nos
        assert tiyn(refunds[0]["amount"]) == total
    else:
        ended = sorted([int(e["entry_id"].rsplit("/", 1)[1]) for e in posted] + [ln["line_no"] for ln in refund_lines])
        assert ended == line_nos, f"{nid}: a line did not end exactly once"
    assert result["lines_total"] == len(order.lines) == result["lines_posted"] + result["lines_refunded"]


class Fuzzer:
    """One processor fed batch after batch: input offsets keep growing (a reused offset would be a
    redelivery) and the ids decided so far are known (the same id again is a repeat)."""

    def __init__(self, registry: RegistryStore, data_dir: Path):
        self.processor, self.sink, self.topics = build_processor(registry, data_dir)
        self.known: set[str] = set()
        self.offset = 0
        self.stats: Counter = Counter()
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()
        close_processor(self.processor)

    def feed(self, records: list[FuzzRecord]) -> None:
        """A batch, then its re-keyed copies (decided once), then those copies again (nothing new)."""
        again = self.loop.run_until_complete(self.batch(records))
        if again:
            before = len(self.sink.sent)
            self.loop.run_until_complete(self.batch(again))
            ids = {CreditNotification.model_validate_json(r.value).notification_id for r in again}
            decided = {orjson.loads(o.value)["notification_id"] for o in self.sink.sent[before:]
                       if o.topic == self.topics.order_results}
            assert decided <= ids
            before = len(self.sink.sent)
            self.loop.run_until_complete(self.processor.process(self._inputs(again)))
            assert self.sink.sent[before:] == [], "a re-keyed record decided twice"

    def _inputs(self, records: list[FuzzRecord]) -> list[InputRecord]:
        first, self.offset = self.offset, self.offset + len(records)
        return [InputRecord(self.topics.credit_notifications, 0, first + i, r.key, r.value)
                for i, r in enumerate(records)]

    async def batch(self, records: list[FuzzRecord]) -> list[FuzzRecord]:
        """Feed `records` as one batch and check every outcome; returns the re-keyed copies."""
        topics, inputs = self.topics, self._inputs(records)
        sent_before = len(self.sink.sent)
        summary = await self.processor.process(inputs)  # must not raise: a crash fails the test
        by_topic: dict[str, list[OutputRecord]] = {}
        for out in self.sink.sent[sent_before:]:
            by_topic.setdefault(out.topic, []).append(out)

        letters = {}
        for out in by_topic.get(topics.dead_letters, []):
            letter = DeadLetter.model_validate(orjson.loads(out.value)).model_dump()
            assert letter["offset"] not in letters, "two dead letters for one record"
            letters[letter["offset"]] = letter
        reroutes = by_topic.get(topics.credit_notifications, [])
        again: list[FuzzRecord] = []
        decided_ids: set[str] = set()
        outcomes = []
        for rec, inp in zip(records, inputs):
            outcome, order = judge(rec)
            outcomes.append(outcome)
            if outcome == "dead_letter":
                letter = letters.pop(inp.offset, None)
                assert letter is not None, f"no dead letter for a {rec.kind} record"
                assert letter["value"] == (None if rec.value is None else base64.b64encode(rec.value).decode())
                assert letter["key"] == (None if rec.key is None else base64.b64encode(rec.key).decode())
                assert letter["error"] and letter["error_kind"] in ("not_json", "not_utf8", "schema")
                self.stats["dead_letters"] += 1
                self.stats[f"dead_letters:{letter['error_kind']}"] += 1
            elif outcome == "rerouted":
                copy_ = next((o for o in reroutes if o.value == rec.value), None)
                assert copy_ is not None and copy_.key == order.notification_id.encode(), "not re-keyed"
                reroutes.remove(copy_)
                again.append(FuzzRecord("valid", copy_.key, copy_.value))
                self.stats["rerouted"] += 1
            elif order.notification_id in decided_ids or order.notification_id in self.known:
                self.stats["repeats"] += 1  # the same id again: the first one counts, this one adds nothing
            else:
                decided_ids.add(order.notification_id)
                check_decided(order, by_topic, topics)
                self.stats["decided"] += 1
        assert not letters, f"dead letters for records that are valid: {letters}"
        assert not reroutes, "re-keyed copies of records that are not valid"
        assert len(by_topic.get(topics.order_results, [])) == len(decided_ids), "a result of a repeat"
        assert len(by_topic.get(topics.decisions, [])) == len(decided_ids)
        assert summary.dead_letters == outcomes.count("dead_letter")
        assert summary.rerouted == outcomes.count("rerouted")
        self.known.update(decided_ids)
        self.stats["records"] += len(records)
        return again


