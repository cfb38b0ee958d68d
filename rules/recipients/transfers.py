"""Transfers of the Fund (contract, Part 2, "Transfers"): which part of a payment an assignment
covers, how a return is applied, and which payments may wait for a decision still to come."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .. import codes
from ..calendar import month_of
from ..money import parse_amount
from .months import amount_in_force, coverage_reason, holding_assignment, judged_assignment, month_of_iso, rate_in_force
from .state import RecipientState


@dataclass(frozen=True, slots=True)
class PaymentSplit:
    covered: int  # tiyn
    overpaid: int
    reason: str | None  # why `overpaid` is (None when nothing is)
    assignment_no: int | None  # the assignment whose term holds the period


@dataclass(frozen=True, slots=True)
class ReturnSplit:
    applied: int
    unmatched: int
    reason: str | None


def withheld_at(gross: int, rate: str) -> int:
    """The pension contribution withheld from `gross` tiyn at `rate`, rounded half up to the tiyn."""
    return int((Decimal(gross) * Decimal(rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def amounts_consistent(gross: int, withheld: int, net: int, rate: str | None) -> bool:
    """gross = withheld + net, and where a rate is in force, withheld = gross x rate (half up).
    Without a rate any withheld from 0 to gross passes."""
    if gross != withheld + net:
        return False
    return rate is None or withheld == withheld_at(gross, rate)


def _tiyn(transfer) -> tuple[int, int, int]:
    return (parse_amount(transfer.gross_amount), parse_amount(transfer.pension_contribution_withheld),
            parse_amount(transfer.net_amount))


def classify_payment(state: RecipientState, transfer) -> PaymentSplit:
    """Split a payment into covered and overpaid: KNP, amounts, the period's coverage, then the cap
    (covered gross already posted for the period plus this one, beyond the amount in force)."""
    gross, withheld, net = _tiyn(transfer)
    index = month_of_iso(transfer.period)
    holding = holding_assignment(state, index)
    number = holding.no if holding is not None else None
    if transfer.knp != codes.SOCIAL_PAYMENT_KNPS[state.payment_type][0]:
        return PaymentSplit(0, gross, codes.KNP_MISMATCH, number)
    judged = judged_assignment(state, index)
    if not amounts_consistent(gross, withheld, net, rate_in_force(judged, index)):
        return PaymentSplit(0, gross, codes.AMOUNT_INCONSISTENT, number)
    receipt_year, receipt_month = month_of(transfer.received_at)
    reason = coverage_reason(state, index, receipt_year * 12 + receipt_month - 1)
    if reason is not None:
        return PaymentSplit(0, gross, reason, number)
    limit = amount_in_force(judged, index) or 0
    already = state.covered.get(transfer.period, 0)
    overpaid = min(gross, max(0, already + gross - limit))
    return PaymentSplit(gross - overpaid, overpaid, codes.EXCEEDS_ASSIGNED if overpaid else None, number)


def classify_return(state: RecipientState, transfer) -> ReturnSplit:
    """A return: wholly unmatched on a wrong KNP or inconsistent amounts, else applied to what is
    outstanding and the rest unmatched."""
    gross, withheld, net = _tiyn(transfer)
    if transfer.knp != codes.SOCIAL_PAYMENT_KNPS[state.payment_type][1]:
        return ReturnSplit(0, gross, codes.KNP_MISMATCH)
    if gross != withheld + net:
        return ReturnSplit(0, gross, codes.AMOUNT_INCONSISTENT)
    applied = min(gross, state.outstanding)
    unmatched = gross - applied
    return ReturnSplit(applied, unmatched, codes.RETURN_EXCEEDS_OUTSTANDING if unmatched else None)


def held(split: PaymentSplit) -> bool:
    """A payment failing only on what a later decision can cure waits for it (the lag hold)."""
    return split.reason in codes.DECISION_LAG_REASONS


def apply_to_overpayments(overpayments: list[list], amount: int) -> list[list]:
    """Recover `amount` (at most what is outstanding) from the overpayments, oldest first; cleared
    ones are dropped."""
    out = []
    for transfer_id, period, remaining in overpayments:
        take = min(amount, remaining)
        amount -= take
        if remaining - take:
            out.append([transfer_id, period, remaining - take])
    if amount:
        raise ValueError("return applied beyond the outstanding overpayments")
    return out
