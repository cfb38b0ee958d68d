"""A month's figures as a flat map of leaf paths to integers, and the report shape they render into.

Flat because every operation the report needs is then one line: partials of different partitions
merge by summing, a revision's delta is a subtraction, and a recount compares with `==`. Amounts are
integer tiyn until they are rendered as the contract's two-decimal strings.

Paths: "contributions/lines_posted", "contributions/by_period/2026-01/amount",
"contributions/by_day/2026-02-03/lines",
"contributions/refunds/by_reason/INVALID_IIN", "social_payments/by_type/loss_of_job/payments/gross".
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from rules.codes import LINE_REASONS, ORDER_REASONS, PAYMENT_TYPES
from rules.money import format_tiyn, parse_amount

__all__ = [
    "AMOUNT_LEAVES",
    "PAYMENT_TYPES",
    "REFUND_REASONS",
    "Figures",
    "delta",
    "flatten",
    "merge",
    "render",
    "render_delta",
]

Figures = dict[str, int]

REFUND_REASONS = ORDER_REASONS + LINE_REASONS

# Leaves held in tiyn and rendered as amounts; every other leaf is a count.
AMOUNT_LEAVES = frozenset({
    "amount", "amount_contributions", "amount_penalties", "gross", "withheld", "net",
    "overpaid_outstanding_at_month_end",
})

_CONTRIBUTION_COUNTS = ("participants", "payers", "lines_posted", "amount_contributions", "amount_penalties")
_DECISION_COUNTS = ("assigned", "recalculated", "suspended", "resumed", "terminated", "refused")


def merge(partials: Iterable[Mapping[str, int]]) -> Figures:
    """Sum partials leaf by leaf: partitions hold disjoint persons, orders and payers."""
    total: Counter[str] = Counter()
    for p in partials:
        total.update(p)
    return {k: v for k, v in total.items() if v}


def delta(new: Mapping[str, int], old: Mapping[str, int]) -> Figures:
    """Leaves that changed, each new - old (signed); {} when nothing changed."""
    out = {}
    for key in sorted(new.keys() | old.keys()):
        d = new.get(key, 0) - old.get(key, 0)
        if d:
            out[key] = d
    return out


def _leaf(name: str, value: int) -> int | str:
    return format_tiyn(value) if name in AMOUNT_LEAVES else value


def _nest(flat: Mapping[str, int]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        parts = path.split("/")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _leaf(parts[-1], value)
    return tree


def _keyed_list(name: str, items: Mapping[str, Mapping[str, int | str]]) -> list[dict]:
    return [{name: key, **items[key]} for key in sorted(items)]


# Lists in the report, each item named by its key field: flat segment -> item key.
_LISTS = {"by_period": "period", "by_day": "day"}


def _type_figures(flat: Mapping[str, int], ptype: str) -> dict:
    base = f"social_payments/by_type/{ptype}/"

    def g(leaf: str) -> int:
        return flat.get(base + leaf, 0)

    return {
        "recipients_active_at_month_end": g("recipients_active_at_month_end"),
        **{name: g(name) for name in _DECISION_COUNTS},
        "payments": {"count": g("payments/count"), "gross": format_tiyn(g("payments/gross")),
                     "withheld": format_tiyn(g("payments/withheld")), "net": format_tiyn(g("payments/net"))},
        "returns": {"count": g("returns/count"), "amount": format_tiyn(g("returns/amount"))},
        "overpaid": {"count": g("overpaid/count"), "amount": format_tiyn(g("overpaid/amount"))},
        "overpaid_outstanding_at_month_end": format_tiyn(g("overpaid_outstanding_at_month_end")),
    }


def render(flat: Mapping[str, int], parts: Iterable[str] = ("contributions",)) -> dict:
    """The report's `contributions` and `social_payments` sections, every leaf present (zeros too).

    `social_payments` is None until that part is held (the recipients ledger feeds it).
    """
    def g(leaf: str) -> int:
        return flat.get("contributions/" + leaf, 0)

    lists: dict[str, dict[str, dict]] = {name: {} for name in _LISTS}
    for key, value in flat.items():
        path = key.split("/")
        if path[0] == "contributions" and path[1] in _LISTS:
            _, segment, item, leaf = path
            lists[segment].setdefault(item, {"lines": 0, "amount": format_tiyn(0)})[leaf] = _leaf(leaf, value)
    contributions = {
        **{name: _leaf(name, g(name)) for name in _CONTRIBUTION_COUNTS},
        "by_period": _keyed_list("period", lists["by_period"]),
        # Product addition: the day of receipt, for the month's chart.
        "by_day": _keyed_list("day", lists["by_day"]),
        "reversals": {"lines": g("reversals/lines"), "amount": format_tiyn(g("reversals/amount"))},
        "refunds": {
            "orders": g("refunds/orders"),
            "lines": g("refunds/lines"),
            "amount": format_tiyn(g("refunds/amount")),
            "by_reason": {r: g(f"refunds/by_reason/{r}") for r in REFUND_REASONS},
        },
        "deceased_alerts": g("deceased_alerts"),
        "decided_after_deadline": g("decided_after_deadline"),
    }
    parts = tuple(parts)
    social = None
    if "social_payments" in parts:
        social = {"by_type": {t: _type_figures(flat, t) for t in PAYMENT_TYPES}}
    return {"contributions": contributions, "social_payments": social}


def render_delta(changes: Mapping[str, int]) -> dict:
    """The report's shape holding only the changed leaves (amounts as signed strings).

    `by_period` and `by_day` stay lists; each item names its period or day and holds only its changed
    leaves.
    """
    tree = _nest(changes)
    contributions = tree.get("contributions")
    for segment, name in _LISTS.items():
        if contributions and segment in contributions:
            contributions[segment] = _keyed_list(name, contributions[segment])
    return tree


def _to_int(leaf: str, value: object) -> int:
    if leaf in AMOUNT_LEAVES:
        tiyn = parse_signed_amount(value)
        if tiyn is None:
            raise ValueError(f"{leaf}: not an amount: {value!r}")
        return tiyn
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{leaf}: not a count: {value!r}")
    return value


def parse_signed_amount(value: object) -> int | None:
    if isinstance(value, str) and value.startswith("-"):
        tiyn = parse_amount(value[1:])
        return None if tiyn is None else -tiyn
    return parse_amount(value)


def _flatten(node: object, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}{key}/", out)
    elif isinstance(node, list):
        segment = prefix.rstrip("/").rsplit("/", 1)[-1]
        name = _LISTS[segment]
        for item in node:
            for leaf, value in item.items():
                if leaf != name:
                    _flatten(value, f"{prefix}{item[name]}/{leaf}/", out)
    else:
        path = prefix.rstrip("/")
        value = _to_int(path.rsplit("/", 1)[-1], node)
        if value:
            out[path] = value


def flatten(sections: Mapping[str, object]) -> Figures:
    """The flat figures of a published report (or of its delta): `render`'s inverse, zeros dropped.

    The assembler restores the last published figures of each month from `reports.monthly` with it.
    """
    out: dict[str, int] = {}
    for name in ("contributions", "social_payments"):
        if sections.get(name) is not None:
            _flatten(sections[name], f"{name}/", out)
    return out
