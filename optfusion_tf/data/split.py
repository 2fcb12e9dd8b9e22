"""The random train/validation/test assignment, reproducible from a seed.

One numpy Generator, seeded once, draws one uniform number per data line (bad and blank lines
included) in file order; line i goes to train if u_i < r_train, to validation if
u_i < r_train + r_validation, else to test. Sequential draws do not depend on how the file is
cut into blocks, so the assignment is a function of (seed, ratio, line) only.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

SPLITS = ("train", "validation", "test")
TRAIN, VALIDATION, TEST = 0, 1, 2


def parse_ratio(ratio: Sequence[float | str]) -> tuple[float, float, float]:
    """Validates a train/validation/test ratio: three numbers >= 0 summing to 1, train > 0."""
    try:
        values = tuple(float(r) for r in ratio)
    except ValueError as e:
        raise ValueError(
            f"--ratio must be three numbers such as 0.8,0.1,0.1. Received: {list(ratio)}"
        ) from e
    if (
        len(values) != 3
        or min(values) < 0
        or values[0] <= 0
        or not math.isclose(sum(values), 1.0, abs_tol=1e-6)
    ):
        raise ValueError(
            "--ratio must be three numbers >= 0 (train > 0) that sum to 1, such as 0.8,0.1,0.1. "
            f"Received: {list(ratio)}"
        )
    return values  # type: ignore[return-value]


class SplitAssigner:
    """Draws the split of each line, block after block.

    Args:
        ratio: train/validation/test fractions (see parse_ratio).
        seed: the run's --seed.
        lines_before: data lines of the file before the first one this assigner draws for
            (their draws are skipped with PCG64's jump-ahead, in O(log n)), so that a worker
            can start mid-file and draw what a sequential pass draws there.
    """

    def __init__(self, ratio: Sequence[float], seed: int, lines_before: int = 0):
        r = parse_ratio(ratio)
        self._bounds = np.array([r[0], r[0] + r[1]])
        bits = np.random.PCG64(seed)  # what np.random.default_rng(seed) uses
        bits.advance(lines_before)  # one 64-bit draw per uniform double
        self._rng = np.random.Generator(bits)

    def next(self, n_lines: int) -> np.ndarray:
        """uint8 [n_lines]: TRAIN, VALIDATION or TEST for the next n_lines lines of the file."""
        u = self._rng.random(n_lines)
        return np.searchsorted(self._bounds, u, side="right").astype(np.uint8)
