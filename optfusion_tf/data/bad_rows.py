"""Bad input rows: the reasons, what a parsed block reports, and the per-run log.

With --on_bad_row=skip a bad row is dropped and counted under its first reason (in REASONS
order), keeping the first few line numbers; with `error` the first bad row stops the run with
a `BadRowError` naming file, line and reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from optfusion_tf.data.errors import BadRowError

WRONG_COLUMN_COUNT = "wrong_column_count"
BAD_LABEL = "bad_label"
NON_NUMERIC = "non_numeric"
BAD_HOUR = "bad_hour"
REASONS = (WRONG_COLUMN_COUNT, BAD_LABEL, NON_NUMERIC, BAD_HOUR)
ON_BAD_ROW = ("skip", "error")
FIRST_LINES_KEPT = 5


@dataclasses.dataclass(frozen=True)
class BadRows:
    """Rows of one block that failed for one reason.

    Attributes:
        reason: one of REASONS.
        lines: 1-based file line numbers, ascending (int64 [n]).
        first_detail: what is wrong with the first of them.
    """

    reason: str
    lines: np.ndarray
    first_detail: str


class BadRowLog:
    """Counts bad rows per reason over a run, or raises at the first one.

    Args:
        path: input file, for messages.
        on_bad_row: "skip" or "error".
    """

    def __init__(self, path: str, on_bad_row: str):
        if on_bad_row not in ON_BAD_ROW:
            raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW}. Received: {on_bad_row!r}")
        self.path = path
        self.on_bad_row = on_bad_row
        self.counts = {r: 0 for r in REASONS}
        self.first_lines: dict[str, list[int]] = {r: [] for r in REASONS}

    def record(self, bad: list[BadRows]) -> None:
        """Adds one block's bad rows; with on_bad_row=error raises for the earliest one."""
        bad = [b for b in bad if b.lines.size]
        if not bad:
            return
        if self.on_bad_row == "error":
            first = min(bad, key=lambda b: b.lines[0])
            raise BadRowError(self.path, int(first.lines[0]), first.reason, first.first_detail)
        for b in bad:
            self.add(b.reason, int(b.lines.size), [int(x) for x in b.lines[:FIRST_LINES_KEPT]],
                     b.first_detail)

    def add(self, reason: str, count: int, first_lines: list[int], first_detail: str) -> None:
        """Adds `count` bad rows of one reason, the first of them at `first_lines` (ascending,
        after every line added before), as with on_bad_row=skip."""
        if not count:
            return
        if self.counts[reason] == 0:
            logging.warning(
                "%s:%d: skipping bad row (%s): %s", self.path, first_lines[0], reason, first_detail
            )
        self.counts[reason] += count
        room = FIRST_LINES_KEPT - len(self.first_lines[reason])
        self.first_lines[reason] += first_lines[:room]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, dict[str, object]]:
        """stats.json form: reason -> {"count": n, "first_lines": [...]}, every reason listed."""
        return {
            r: {"count": self.counts[r], "first_lines": list(self.first_lines[r])} for r in REASONS
        }

    def log_summary(self) -> None:
        if not self.total:
            logging.info("%s: no bad rows", self.path)
        for r in REASONS:
            if self.counts[r]:
                logging.warning(
                    "%s: skipped %d bad rows (%s), first at lines %s",
                    self.path,
                    self.counts[r],
                    r,
                    self.first_lines[r],
                )
