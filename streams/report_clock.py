"""The clock the monthly report's schedule runs on: the system clock, or, for tests and drills,
the instant written in a file (`ESEP_REPORT_CLOCK_FILE`), read at every tick so that a test can
move a running deployment past a month's end and its final's due time.

Only the report schedule (when a version is due, its `generated_at`, the lateness gauge) reads it;
posting never does."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("esep.report")


class ReportClock:
    def __init__(self, path: Path | None = None):
        self.path = path
        self._complained = False

    def __call__(self) -> datetime:
        if self.path is None:
            return datetime.now(timezone.utc)
        try:
            moment = datetime.fromisoformat(self.path.read_text(encoding="utf-8").strip())
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError("the instant has no UTC offset")
        except (OSError, ValueError) as exc:
            # A schedule on a wrong clock publishes wrong versions: stop it rather than guess.
            if not self._complained:
                log.error("ESEP_REPORT_CLOCK_FILE %s is unreadable (%s): the report schedule waits", self.path, exc)
                self._complained = True
            raise ClockUnreadable(str(exc)) from None
        self._complained = False
        return moment


class ClockUnreadable(RuntimeError):
    pass


def write_clock(path: Path, moment: datetime) -> None:
    """Set a file clock (tests, drills): written aside and renamed, so a reader never sees half."""
    if moment.tzinfo is None:
        raise ValueError("the clock needs an aware instant")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(moment.isoformat(), encoding="utf-8")
    tmp.replace(path)
