"""The registry-lag hold (contract, Clarifications: Registry-lag hold): its one default, when a held
line's cut-off comes, and which held orders are due for a re-check. Pure: the caller passes the
calendar and the clock's reading."""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .calendar import BusinessCalendar

# The modes of ESEP_PENDING: hold until the business-day cut-off, or decide every line at once.
BUSINESS_DAY = "business-day"
OFF = "off"
MODES = (BUSINESS_DAY, OFF)
# The one default: on, ending 30 minutes before the business deadline (contract).
DEFAULT_MODE = BUSINESS_DAY
DEFAULT_MARGIN_MIN = 30.0


def hold_cutoff(received_at: datetime, margin: timedelta, calendar: BusinessCalendar) -> datetime:
    """When a held line must be decided: `margin` before the receipt's business-day deadline."""
    return calendar.receipt_deadline(received_at) - margin


@dataclass(frozen=True)
class HoldPolicy:
    """The hold as configured: on or off, and how long before the business deadline it ends."""

    enabled: bool = DEFAULT_MODE == BUSINESS_DAY
    margin: timedelta = timedelta(minutes=DEFAULT_MARGIN_MIN)

    @classmethod
    def from_mode(cls, mode: str, margin_min: float) -> "HoldPolicy":
        if mode not in MODES:
            raise ValueError(f"hold mode {mode!r} is not one of {', '.join(MODES)}")
        return cls(enabled=mode == BUSINESS_DAY, margin=timedelta(minutes=margin_min))

    def cutoff(self, received_at: datetime, calendar: BusinessCalendar) -> datetime | None:
        """The cut-off of an order's held lines, or None when the hold is off."""
        return hold_cutoff(received_at, self.margin, calendar) if self.enabled else None


NO_HOLD = HoldPolicy(enabled=False)


@dataclass(frozen=True, slots=True)
class HeldOrder:
    """An open order in the decision store's index: lines held, or outputs not yet acknowledged."""

    notification_id: str
    partition: int
    cutoff: float  # epoch seconds: when its held lines must be decided
    received: float  # epoch seconds of received_at: the age of its held lines
    held_lines: int
    emit_pending: bool  # decided outside the input stream, outputs not yet acknowledged


def due_for_recheck(open_orders: Iterable[HeldOrder], owned: Collection[int], touched: Collection[str],
                    now: float, restoring: bool = False) -> set[str]:
    """Notification ids to re-check now, among the orders of the `owned` partitions: those whose
    outputs are not acknowledged yet, those naming a person that changed (`touched`), those whose
    cut-off has passed, and on restore every one (a re-check a crash lost must still happen)."""
    return {o.notification_id for o in open_orders
            if o.partition in owned
            and (restoring or o.emit_pending or o.notification_id in touched or o.cutoff <= now)}


@dataclass(frozen=True, slots=True)
class PendingView:
    """What the hold's gauges show for the owned partitions."""

    lines: int
    oldest_age_s: float
    next_cutoff_s: float


def pending_view(open_orders: Iterable[HeldOrder], owned: Collection[int], now: float) -> PendingView:
    mine = [o for o in open_orders if o.partition in owned]
    return PendingView(
        lines=sum(o.held_lines for o in mine),
        oldest_age_s=max((now - o.received for o in mine), default=0.0),
        next_cutoff_s=max(0.0, min((o.cutoff - now for o in mine), default=0.0)),
    )


__all__ = ["BUSINESS_DAY", "OFF", "MODES", "DEFAULT_MODE", "DEFAULT_MARGIN_MIN", "HoldPolicy", "NO_HOLD",
           "HeldOrder", "hold_cutoff", "due_for_recheck", "PendingView", "pending_view"]
