"""Personal accounts on disk, one key per item so that an entry costs the same whatever the length
of the account's history (a working life is ~500 entries): a `KeyedStore` backed by the compacted
changelog `esep.accounts-changelog`, whose partition is the partition of the ledger records the
items come from, so an account follows its partition to whichever worker is assigned it.

Keys (the same in the store and on the changelog):
- `<iin>/<section>/<item id>` -> `{"item": <the item as rules.accounts.Account keeps it>, "person":
  <the person as that record spells it, with its rank, or null>}` (sections: contributions,
  reversals, refunds, social_payments, overpayments); the account's person is the one of highest
  rank among its items, as `Account` chooses it, so one ledger record is one changelog record;
- `\\x00pos/<partition>/<topic>` -> the next ledger offset to read (written with the items of the
  same batch): a worker that takes the partition over reads the ledger from there.

Two ways in:
- `put` (the accounts feed): what a batch changed, already written to the changelog, with the
  changelog's next offsets, in one write batch;
- `apply` (the `ChangelogReader` at a restore): each value is MERGED with what the store holds:
  items are kept by id (the same id with other content keeps the smaller, as `Account.merge` does;
  the same item with another person keeps the higher rank), a position only moves forward. So the order of the writes
  does not matter: a late write of a worker that was losing the partition cannot take away what the
  new owner applied, and a store that held the partition before reads its changelog again safely."""
from __future__ import annotations

from pathlib import Path

import orjson

from rules.accounts import SECTIONS, Account
from rules import json_bytes

from .keyed import KeyedStore

POSITION = "\x00pos/"


def position_key(partition: int, topic: str) -> str:
    return f"{POSITION}{partition}/{topic}"


def encode_position(offset: int) -> bytes:
    return str(offset).encode()


def item_key(iin: str, section: str, item_id: str) -> str:
    return f"{iin}/{section}/{item_id}"


def encode(value: dict) -> bytes:
    return json_bytes.dumps(value, option=orjson.OPT_SORT_KEYS)


def _rank(value: dict) -> list:
    return list(value["person"]["rank"]) if value.get("person") else []


def resolve(iin: str, key: str, held: bytes | None, incoming: bytes) -> bytes | None:
    """The value to keep for `key` when `incoming` meets `held`; None when `held` stays. A choice
    by a total order, so any number of values resolve to the same one in any order."""
    if held is None:
        return incoming
    if held == incoming:
        return None
    if key.startswith(POSITION):
        return incoming if int(incoming) > int(held) else None
    _, section, item_id = key.split("/", 2)
    new, old = orjson.loads(incoming), orjson.loads(held)
    if new["item"] == old["item"]:
        return incoming if _rank(new) > _rank(old) else None
    kept = Account(iin, **{section: {item_id: old["item"]}})
    kept.merge(Account(iin, **{section: {item_id: new["item"]}}))
    return incoming if getattr(kept, section)[item_id] == new["item"] else None


class AccountStore:
    def __init__(self, path: Path):
        self.store = KeyedStore(path)

    def get(self, iin: str) -> Account | None:
        """The account of `iin` (None when nothing was ever recorded for it)."""
        account = Account(iin)
        found = False
        best: list = []
        for key, raw in self.store.scan(iin + "/"):
            _, section, item_id = key.split("/", 2)
            if section not in SECTIONS:
                continue
            found = True
            value = orjson.loads(raw)
            getattr(account, section)[item_id] = value["item"]
            if _rank(value) > best:
                best, account.person = _rank(value), value["person"]
        return account if found else None

    def get_many(self, keys: list[str]) -> dict[str, bytes | None]:
        return self.store.get_many(keys)

    def positions(self, partition: int, topics: list[str]) -> dict[str, int]:
        """The next ledger offset to read, by topic, for the topics with a position in `partition`."""
        raw = self.store.get_many([position_key(partition, t) for t in topics])
        return {t: int(raw[position_key(partition, t)]) for t in topics if raw[position_key(partition, t)] is not None}

    def put(self, entries: list[tuple[str, bytes]], next_offsets: dict[int, int]) -> None:
        """Values as this worker resolved them against the store, and the changelog's next offsets:
        one write batch."""
        self.store.apply(entries, next_offsets)

    # ---- the ChangelogStore protocol ----------------------------------------------------------------

    def next_offset(self, partition: int) -> int | None:
        return self.store.next_offset(partition)

    def apply(self, entries: list[tuple[str, bytes | None]], next_offsets: dict[int, int]) -> None:
        keys = list(dict.fromkeys(k for k, v in entries if v is not None))
        current = self.store.get_many(keys)
        out: dict[str, bytes] = {}
        for key, raw in entries:
            if raw is None:
                continue  # accounts are never deleted; a tombstone is not ours
            held = out.get(key, current.get(key))
            chosen = resolve(key.split("/", 1)[0], key, held, raw)
            if chosen is not None:
                out[key] = chosen
        self.store.apply(list(out.items()), next_offsets)

    def close(self) -> None:
        self.store.close()
