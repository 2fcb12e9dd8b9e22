"""Errors for unusable input or output (messages name the file, line and what was expected)."""

from __future__ import annotations


class DataError(ValueError):
    """Input or output that preprocessing or reading cannot use: missing file, bad flags, ..."""


class BadRowError(DataError):
    """A bad row met with --on_bad_row=error.

    Attributes:
        path: input file.
        line: 1-based physical line number (the header, if any, is line 1).
        reason: one of bad_rows.REASONS.
        detail: what was found and what was expected.
    """

    def __init__(self, path: str, line: int, reason: str, detail: str):
        super().__init__(f"{path}:{line}: bad row ({reason}): {detail}")
        self.path, self.line, self.reason, self.detail = path, line, reason, detail
