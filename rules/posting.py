"""Posting decisions for one credit notification: whole-order checks, then line checks and the
registry match. Pure: the caller supplies the registry view of every IIN the order names and the
business calendar.

Amounts are read here once, at the edge, into integer tiyn that the decision carries: everything
rendered from a decision (entries, refunds, results, metrics) counts with those, via `summarize`."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from . import codes
from .dates import format_period, parse_period
from .iin import is_valid_iin
from .money import parse_amount
from .names import normalize_name

if TYPE_CHECKING:
    from .calendar import BusinessCalendar

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
    tiyn: int | None = None  # the line's amount; None when it cannot be read (the order is TOTAL_MISMATCH)


@dataclass(frozen=True, slots=True)
class OrderDecision:
    """One decision per line, in the order's own line sequence (duplicate line numbers included)."""

    order_reason: str | None
    lines: tuple[LineDecision, ...]
    total_tiyn: int | None = None  # the order's total_amount; None only in records of format 1

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


@dataclass(frozen=True, slots=True)
class Amounts:
    """An order's amounts in tiyn, read once: one per line in sequence (None: unreadable), and the total."""

    lines: tuple[int | None, ...]
    total: int


def read_amounts(order) -> Amounts:
    total = parse_amount(order.total_amount)
    if total is None:  # the model admits only readable totals: a caller passed something else
        raise ValueError("total_amount is not an amount")
    return Amounts(tuple(parse_amount(line.amount) for line in order.lines), total)


def order_check(order, amounts: Amounts) -> str | None:
    """The first whole-order check that fails, or None."""
    if order.knp not in codes.CONTRIBUTION_KNPS:
        return codes.KNP_NOT_ACCEPTED
    if order.currency != codes.ACCEPTED_CURRENCY:
        return codes.CURRENCY_NOT_ACCEPTED
    line_nos = [line.line_no for line in order.lines]
    if len(set(line_nos)) != len(line_nos):
        return codes.DUPLICATE_LINE_NO
    if not order.lines or None in amounts.lines or sum(amounts.lines) != amounts.total:
        return codes.TOTAL_MISMATCH
    return None


def line_period(line, order) -> str | None:
    """The period a line pays for: its own, else the order's (as received, possibly invalid)."""
    return line.period if line.period is not None else order.period


def static_line_check(line, order, tiyn: int, receipt_month: tuple[int, int]) -> str | None:
    """Checks that need no registry: check digit, period, amount."""
    if not is_valid_iin(line.iin):
        return codes.INVALID_IIN
    period = parse_period(line_period(line, order))
    if period is None or period > receipt_month:
        return codes.PERIOD_INVALID
    if tiyn == 0:
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


def _line_outcome(line, order, person: Person | None, hold: bool, tiyn: int | None) -> LineDecision:
    reason = registry_check(line, person, parse_period(line_period(line, order)))
    if reason is None:
        return LineDecision(line.line_no, POSTED, None, person, tiyn)
    if hold and reason in codes.REGISTRY_LAG_REASONS:
        return LineDecision(line.line_no, HELD, reason, None, tiyn)
    # A deceased person's record is kept with the refund: the Fund is alerted from it.
    return LineDecision(line.line_no, REFUNDED, reason, person if reason == codes.DECEASED else None, tiyn)


def decide_order(order, persons: Mapping[str, Person | None], calendar: BusinessCalendar,
                 hold: bool = False) -> OrderDecision:
    """Decide every line of `order`; `persons` maps each IIN of the order to its registry record
    (missing or None: not in the registry). With `hold`, a line that fails only on what a late
    registry record can cure (IIN_NOT_FOUND, NAME_MISMATCH, BIRTH_DATE_MISMATCH) is HELD instead."""
    amounts = read_amounts(order)
    order_reason = order_check(order, amounts)
    if order_reason is not None:
        return OrderDecision(order_reason, tuple(
            LineDecision(line.line_no, REFUNDED, order_reason, None, tiyn)
            for line, tiyn in zip(order.lines, amounts.lines)
        ), amounts.total)
    receipt_month = calendar.month_of(order.received_at)
    decisions = []
    for line, tiyn in zip(order.lines, amounts.lines):
        reason = static_line_check(line, order, tiyn, receipt_month)
        if reason is None:
            decisions.append(_line_outcome(line, order, persons.get(line.iin), hold, tiyn))
        else:
            decisions.append(LineDecision(line.line_no, REFUNDED, reason, None, tiyn))
    return OrderDecision(None, tuple(decisions), amounts.total)


def recheck_held(order, decision: OrderDecision, persons: Mapping[str, Person | None],
                 final: bool) -> OrderDecision:
    """Re-check the held lines against the registry as it is now. A match is posted; a line still
    failing stays held, or, when `final` (the hold's cut-off passed), is refunded with this
    check's reason. Lines already decided never change."""
    if not decision.held:
        return decision
    out = []
    for line, d in paired_lines(order, decision):
        if d.outcome != HELD:
            out.append(d)
            continue
        out.append(_line_outcome(line, order, persons.get(line.iin), not final, d.tiyn))
    return OrderDecision(decision.order_reason, tuple(out), decision.total_tiyn)


def with_amounts(order, decision: OrderDecision) -> OrderDecision:
    """A decision read from a record of format 1 (before amounts were recorded), with its amounts."""
    if decision.total_tiyn is not None:
        return decision
    amounts = read_amounts(order)
    return OrderDecision(decision.order_reason, tuple(
        replace(d, tiyn=tiyn) for d, tiyn in zip(decision.lines, amounts.lines)), amounts.total)


def paired_lines(order, decision: OrderDecision):
    """(line, its decision) in the order's sequence. A decision belongs to its order line for line:
    anything else is a record of another order, and rendering it would be wrong."""
    if len(order.lines) != len(decision.lines) or any(
            line.line_no != d.line_no for line, d in zip(order.lines, decision.lines)):
        raise ValueError(f"decision of {len(decision.lines)} lines does not belong to order "
                         f"{order.notification_id!r} of {len(order.lines)} lines")
    return zip(order.lines, decision.lines)


def order_status(lines_total: int, lines_posted: int, whole_order_refund: bool) -> str:
    """Every line posted is `posted`, none posted is `refunded`, else `partially_refunded` (contract)."""
    if not whole_order_refund and lines_posted == lines_total:
        return codes.STATUS_POSTED
    if lines_posted == 0:
        return codes.STATUS_REFUNDED
    return codes.STATUS_PARTIAL


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An order's decision counted once: what its entries, refund, result and metrics are made of."""

    lines_total: int
    lines_posted: int
    lines_refunded: int
    lines_held: int
    total_tiyn: int
    posted_tiyn: int
    refunded_tiyn: int  # a whole-order refund returns the money received: the total
    status: str | None  # None while lines are held: no refund and no result yet


def summarize(decision: OrderDecision) -> OrderSummary:
    posted = [d for d in decision.lines if d.outcome == POSTED]
    refunded = [d for d in decision.lines if d.outcome == REFUNDED]
    held = len(decision.lines) - len(posted) - len(refunded)
    total = decision.total_tiyn
    whole = decision.order_reason is not None
    posted_tiyn = sum(d.tiyn for d in posted)
    refunded_tiyn = total if whole else sum(d.tiyn for d in refunded)
    status = None
    if not held:
        status = order_status(len(decision.lines), len(posted), whole)
        if posted_tiyn + refunded_tiyn != total:  # holds for every complete decision (order_check)
            raise ValueError(f"amounts not conserved: {posted_tiyn} + {refunded_tiyn} != {total} tiyn")
    return OrderSummary(len(decision.lines), len(posted), len(refunded), held, total, posted_tiyn,
                        refunded_tiyn, status)


def iins_to_look_up(order) -> list[str]:
    """IINs the registry must answer for this order (only well-formed ones can match)."""
    return [line.iin for line in order.lines if is_valid_iin(line.iin)]


__all__ = [
    "POSTED",
    "REFUNDED",
    "HELD",
    "Amounts",
    "recheck_held",
    "Person",
    "LineDecision",
    "OrderDecision",
    "OrderSummary",
    "decide_order",
    "order_check",
    "order_status",
    "paired_lines",
    "read_amounts",
    "static_line_check",
    "registry_check",
    "summarize",
    "iins_to_look_up",
    "line_period",
    "with_amounts",
    "format_period",
]
