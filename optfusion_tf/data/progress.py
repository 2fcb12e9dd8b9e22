"""Progress logging for long passes: rows done and rows/s, every N rows (absl logging)."""

from __future__ import annotations

import time

from absl import logging


class Progress:
    """Logs rows and rows/s every `every` rows."""

    def __init__(self, what: str, every: int):
        self.what, self.every = what, every
        self.start = time.monotonic()
        self.done = 0
        self._next = every

    def add(self, n: int) -> None:
        self.done += n
        if self.done >= self._next:
            self._next = (self.done // self.every + 1) * self.every
            rate = self.done / max(time.monotonic() - self.start, 1e-9)
            logging.info("%s: %s rows, %s rows/s", self.what, f"{self.done:,}", f"{rate:,.0f}")
