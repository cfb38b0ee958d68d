"""Personal accounts on disk: IIN -> `Account.to_json()` in a `KeyedStore` backed by the compacted
changelog `esep.accounts-changelog` (key: IIN, partition: the partition of the ledger records the
account was built from), so an account follows its partition to whichever worker is assigned it.

Beside the accounts, the changelog and the store keep the position reached in each ledger topic
partition (key `\\x00pos/<partition>/<topic>`, value the next offset to read, written with the
accounts of the same batch): a worker that takes a partition over reads the ledger from there.

Two ways in:
- `put` (the accounts feed): what a batch changed, already written to the changelog, with the
  changelog's next offsets, in one write batch;
- `apply` (the `ChangelogReader` at a restore): each value is MERGED into what the store holds
  rather than put over it: accounts only grow (items kept by id, a conflict keeps the smaller
  item), and a position only moves forward. So the order of the writes does not matter: a late write
  of a worker that was losing the partition cannot take away what the new owner applied (and its
  position covers only what its own accounts hold), and a store that kept the accounts of a
  partition it owned before reads the changelog again from its offset without losing anything."""
from __future__ import annotations

from pathlib import Path

from rules.accounts import Account

from .keyed import KeyedStore

POSITION = "\x00pos/"


def position_key(partition: int, topic: str) -> str:
    return f"{POSITION}{partition}/{topic}"


def encode_position(offset: int) -> bytes:
    return str(offset).encode()


class AccountStore:
    def __init__(self, path: Path):
        self.store = KeyedStore(path)

    def get(self, iin: str) -> Account | None:
        raw = self.store.get(iin)
        return None if raw is None else Account.from_json(raw)

    def get_many(self, iins: list[str]) -> dict[str, Account | None]:
        return {iin: None if raw is None else Account.from_json(raw)
                for iin, raw in self.store.get_many(iins).items()}

    def positions(self, partition: int, topics: list[str]) -> dict[str, int]:
        """The next ledger offset to read, by topic, for the topics with a position in `partition`."""
        raw = self.store.get_many([position_key(partition, t) for t in topics])
        return {t: int(raw[position_key(partition, t)]) for t in topics if raw[position_key(partition, t)] is not None}

    def put(self, entries: list[tuple[str, bytes]], next_offsets: dict[int, int]) -> None:
        """Accounts and positions as this worker computed them (from what the store held), and the
        changelog's next offsets: one write batch."""
        self.store.apply(entries, next_offsets)

    # ---- the ChangelogStore protocol ----------------------------------------------------------------

    def next_offset(self, partition: int) -> int | None:
        return self.store.next_offset(partition)

    def apply(self, entries: list[tuple[str, bytes | None]], next_offsets: dict[int, int]) -> None:
        incoming: dict[str, bytes] = {}
        merged: dict[str, Account] = {}
        keys = list(dict.fromkeys(k for k, v in entries if v is not None))
        current = self.store.get_many(keys)
        for key, raw in entries:
            if raw is None:
                continue  # accounts are never deleted; a tombstone is not ours
            if key.startswith(POSITION):
                held = incoming.get(key, current.get(key))
                if held is None or int(raw) > int(held):
                    incoming[key] = raw
                continue
            account = Account.from_json(raw)
            if key in merged:
                merged[key].merge(account)
            elif current.get(key) is not None:
                held_account = Account.from_json(current[key])
                held_account.merge(account)
                merged[key] = held_account
            else:
                merged[key] = account
        out = list(incoming.items()) + [(iin, a.to_json()) for iin, a in merged.items()]
        self.store.apply(out, next_offsets)

    def close(self) -> None:
        self.store.close()
