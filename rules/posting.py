"""Posting decisions for one credit notification: whole-order checks, then line checks and the
registry match. Pure: the caller supplies the registry view of every IIN the order names."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from . import codes
from .calendar import default_calendar
from .dates import format_period, parse_period
from .iin import is_valid_iin
from .money import parse_amount
from .names import normalize_name

POSTED = "P"
REFUNDED = "R"
HELD = "H"  # waiting for the registry (registry-lag hold): decided later, once


@dataclass(frozen=True, slots=True)
class Person:
    """What the registry says of one IIN, as far as matching and posting need it."""

    surname: str
    name: str
    patronymic: str | None
    birth_date: str
    death_date: str | None = None

    def key_fields(self) -> tuple[str, str, str]:
        return normalize_name(self.surname), normalize_name(self.name), normalize_name(self.patronymic)


@dataclass(frozen=True, slots=True)
class LineDecision:
    line_no: int
    outcome: str  # POSTED, REFUNDED or HELD
    reason: str | None = None  # for HELD: the reason it would be refunded with now
    # The registry's record at decision time (posted lines, and refunded ones of a deceased person):
    # re-emissions must not depend on later registry changes.
    person: Person | None = None


@dataclass(frozen=True, slots=True)
class OrderDecision:
    order_reason: str | None
    lines: tuple[LineDecision, ...]

    @property
    def posted(self) -> tuple[LineDecision, ...]:
        return tuple(d for d in self.lines if d.outcome == POSTED)

    @property
    def refunded(self) -> tuple[LineDecision, ...]:
        return tuple(d for d in self.lines if d.outcome == REFUNDED)

    @property
    def held(self) -> tuple[LineDecision, ...]:
        return tuple(d for d in self.lines if d.outcome == HELD)

    @property
    def complete(self) -> bool:
        """Every line decided: the refund and the result can be emitted."""
        return all(d.outcome != HELD for d in self.lines)


def order_check(order) -> str | None:
    """The first whole-order check that fails, or None."""
    if order.knp not in codes.CONTRIBUTION_KNPS:
        return codes.KNP_NOT_ACCEPTED
    if order.currency != codes.ACCEPTED_CURRENCY:
        return codes.CURRENCY_NOT_ACCEPTED
    line_nos = [line.line_no for line in order.lines]
    if len(set(line_nos)) != len(line_nos):
        return codes.DUPLICATE_LINE_NO
    if not order.lines:
        return codes.TOTAL_MISMATCH
    total = 0
    for line in order.lines:
        tiyn = parse_amount(line.amount)
        if tiyn is None:
            return codes.TOTAL_MISMATCH
        total += tiyn
    if total != parse_amount(order.total_amount):
        return codes.TOTAL_MISMATCH
    return None


def line_period(line, order) -> str | None:
    """The period a line pays for: its own, else the order's (as received, possibly invalid)."""
    return line.period if line.period is not None else order.period


def static_line_check(line, order, receipt_month: tuple[int, int]) -> str | None:
    """Checks that need no registry: check digit, period, amount."""
    if not is_valid_iin(line.iin):
        return codes.INVALID_IIN
    period = parse_period(line_period(line, order))
    if period is None or period > receipt_month:
        return codes.PERIOD_INVALID
    if parse_amount(line.amount) == 0:
        return codes.AMOUNT_INVALID
    return None


def registry_check(line, person: Person | None, period: tuple[int, int]) -> str | None:
    """Match against the registry (contract, Semantics): IIN, names after normalization, birth date,
    then death before the period."""
    if person is None:
        return codes.IIN_NOT_FOUND
    surname, name, patronymic = person.key_fields()
    if normalize_name(line.surname) != surname or normalize_name(line.name) != name:
        return codes.NAME_MISMATCH
    line_patronymic = normalize_name(line.patronymic)
    if line_patronymic and patronymic and line_patronymic != patronymic:
        return codes.NAME_MISMATCH
    # The registry's date is canonical YYYY-MM-DD, so string equality also rejects a line date that
    # is not a real date (or not in that form) without parsing it.
    if line.birth_date != person.birth_date:
        return codes.BIRTH_DATE_MISMATCH
    if person.death_date is not None:
        died: date = date.fromisoformat(person.death_date)
        if period > (died.year, died.month):
            return codes.DECEASED
    return None


def _line_outcome(line, order, person: Person | None, hold: bool) -> LineDecision:
    reason = registry_check(line, person, parse_period(line_period(line, order)))
    if reason is None:
        return LineDecision(line.line_no, POSTED, None, person)
    if hold and reason in codes.REGISTRY_LAG_REASONS:
        return LineDecision(line.line_no, HELD, reason)
    # A deceased person's record is kept with the refund: the Fund is alerted from it.
    return LineDecision(line.line_no, REFUNDED, reason, person if reason == codes.DECEASED else None)


def decide_order(order, persons: Mapping[str, Person | None], hold: bool = False) -> OrderDecision:
    """Decide every line of `order`; `persons` maps each IIN of the order to its registry record
    (missing or None: not in the registry). With `hold`, a line that fails only on what a late
    registry record can cure (IIN_NOT_FOUND, NAME_MISMATCH, BIRTH_DATE_MISMATCH) is HELD instead."""
    order_reason = order_check(order)
    if order_reason is not None:
        return OrderDecision(
            order_reason, tuple(LineDecision(line.line_no, REFUNDED, order_reason) for line in order.lines)
        )
    receipt_month = default_calendar().month_of(order.received_at)
    decisions = []
    for line in order.lines:
        reason = static_line_check(line, order, receipt_month)
        if reason is None:
            decisions.append(_line_outcome(line, order, persons.get(line.iin), hold))
        else:
            decisions.append(LineDecision(line.line_no, REFUNDED, reason))
    return OrderDecision(None, tuple(decisions))


def recheck_held(order, decision: OrderDecision, persons: Mapping[str, Person | None],
                 final: bool) -> OrderDecision:
    """Re-check the held lines against the registry as it is now. A match is posted; a line still
    failing stays held, or, when `final` (the hold's cut-off passed), is refunded with this
    check's reason. Lines already decided never change."""
    if not decision.held:
        return decision
    lines = {line.line_no: line for line in order.lines}
    out = []
    for d in decision.lines:
        if d.outcome != HELD:
            out.append(d)
            continue
        line = lines[d.line_no]
        out.append(_line_outcome(line, order, persons.get(line.iin), hold=not final))
    return OrderDecision(decision.order_reason, tuple(out))


def hold_cutoff(received_at: datetime, margin: timedelta) -> datetime:
    """When a held line must be decided: `margin` before the receipt's business-day deadline."""
    return default_calendar().receipt_deadline(received_at) - margin


def iins_to_look_up(order) -> list[str]:
    """IINs the registry must answer for this order (only well-formed ones can match)."""
    return [line.iin for line in order.lines if is_valid_iin(line.iin)]


__all__ = [
    "POSTED",
    "REFUNDED",
    "HELD",
    "recheck_held",
    "hold_cutoff",
    "Person",
    "LineDecision",
    "OrderDecision",
    "decide_order",
    "order_check",
    "static_line_check",
    "registry_check",
    "iins_to_look_up",
    "line_period",
    "format_period",
]
