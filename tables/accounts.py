"""Personal accounts on disk: IIN -> `Account.to_json()` in a `KeyedStore` backed by the compacted
changelog `esep.accounts-changelog` (key: IIN, partition: the partition of the ledger records the
account was built from), so an account follows its partition to whichever worker is assigned it.

Two ways in:
- `put` (the accounts agent): the accounts a batch changed, already written to the changelog, with
  the changelog's next offsets, in one write batch;
- `apply` (the `ChangelogReader` at a restore): each changelog value is MERGED into what the store
  holds rather than put over it. An account only grows (items are kept by id, a conflict keeps the
  smaller item), so merging is order-independent: a late write of a worker that was losing the
  partition (a zombie) cannot take away what the new owner applied, and a store that kept accounts
  of a partition it owned before reads them again from its offset without losing anything."""
from __future__ import annotations

from pathlib import Path

from rules.accounts import Account

from .keyed import KeyedStore


class AccountStore:
    def __init__(self, path: Path):
        self.store = KeyedStore(path)

    def get(self, iin: str) -> Account | None:
        raw = self.store.get(iin)
        return None if raw is None else Account.from_json(raw)

    def get_many(self, iins: list[str]) -> dict[str, Account | None]:
        return {iin: None if raw is None else Account.from_json(raw)
                for iin, raw in self.store.get_many(iins).items()}

    def put(self, accounts: list[tuple[str, bytes]], next_offsets: dict[int, int]) -> None:
        """Accounts as this worker computed them (from what the store held), and the changelog's
        next offsets: one write batch."""
        self.store.apply(accounts, next_offsets)

    # ---- the ChangelogStore protocol ----------------------------------------------------------------

    def next_offset(self, partition: int) -> int | None:
        return self.store.next_offset(partition)

    def apply(self, entries: list[tuple[str, bytes | None]], next_offsets: dict[int, int]) -> None:
        merged: dict[str, Account] = {}
        current = self.store.get_many(list(dict.fromkeys(k for k, v in entries if v is not None)))
        for iin, raw in entries:
            if raw is None:
                continue  # accounts are never deleted; a tombstone is not ours
            incoming = Account.from_json(raw)
            if iin in merged:
                merged[iin].merge(incoming)
            elif current.get(iin) is not None:
                held = Account.from_json(current[iin])
                held.merge(incoming)
                merged[iin] = held
            else:
                merged[iin] = incoming
        self.store.apply([(iin, a.to_json()) for iin, a in merged.items()], next_offsets)

    def close(self) -> None:
        self.store.close()
