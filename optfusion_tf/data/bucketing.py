"""Numeric rules and the Avazu hour decomposition, vectorized over numpy arrays.

A numeric field's vocabulary key is the canonical string of its bucket: an integer in decimal
("-1", "0", "12"), or for `identity` a non-integer value's shortest repr ("2.5"); a missing value
(empty cell) is the key "" and is a value of its own, as in the reference.
Serving must apply the same rule before the vocabulary lookup (stats.json records it per field).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def log_square(x: np.ndarray) -> np.ndarray:
    """Criteo's rule: x > 2 -> floor(ln(x)^2), else int(x) (truncation; negatives stay).

    Args:
        x: float64 [N]; NaN = missing.
    Returns:
        float64 [N] of integer buckets; NaN where x is NaN.
    """
    out = np.trunc(x)
    with np.errstate(invalid="ignore"):
        big = x > 2
    out[big] = np.floor(np.log(x[big]) ** 2)
    return out


def apply_rule(rule: str, x: np.ndarray) -> np.ndarray:
    """Applies numeric rule `rule` ("log_square" | "identity") to float64 [N] values.

    Subnormal results (|x| < 2.2e-308, e.g. 1e-320) become 0, as in the exported graph (whose
    CPU kernels may flush them to zero); -0 keys as "0" either way (`canonical_key`).
    """
    if rule == "log_square":
        out = log_square(x)
    elif rule == "identity":
        out = np.array(x, dtype=np.float64, copy=True)
    else:
        raise ValueError(f"numeric rule must be 'log_square' or 'identity'. Received: {rule!r}")
    with np.errstate(invalid="ignore"):
        out[np.abs(out) < np.finfo(np.float64).tiny] = 0.0
    return out


def canonical_key(value: float) -> str:
    """The vocabulary key of one bucketed number: "" for NaN, "12" for 12.0, "2.5" for 2.5."""
    if math.isnan(value):
        return ""
    if value == math.floor(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


@dataclasses.dataclass(frozen=True)
class HourParts:
    """Avazu YYMMDDHH split into fields (float64 [N] each; undefined where `bad`).

    Attributes:
        hour: HH, 0-23.
        weekday: 0-6 with Sunday = 0 (strftime("%w"), as the reference).
        is_weekend: 1 on Saturday and Sunday, else 0.
        bad: bool [N], True where the value is missing or not a valid YYMMDDHH of 20YY.
    """

    hour: np.ndarray
    weekday: np.ndarray
    is_weekend: np.ndarray
    bad: np.ndarray


def decompose_hour(v: np.ndarray) -> HourParts:
    """Splits Avazu `hour` numbers (float64 [N], e.g. 14102100 = 2014-10-21 00h) into HourParts."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (v >= 0) & (v < 1e8) & (np.floor(v) == v)
        n = np.where(ok, v, 0).astype(np.int64)
    yy, mm, dd, hh = n // 1_000_000, n // 10_000 % 100, n // 100 % 100, n % 100
    ok &= (mm >= 1) & (mm <= 12) & (dd >= 1) & (hh <= 23)
    month = ((2000 + yy - 1970) * 12 + np.clip(mm, 1, 12) - 1).astype("datetime64[M]")
    first = month.astype("datetime64[D]")
    days_in_month = ((month + 1).astype("datetime64[D]") - first).astype(np.int64)
    ok &= dd <= days_in_month
    days = (first - np.datetime64("1970-01-01", "D")).astype(np.int64) + dd - 1
    weekday = (days + 4) % 7  # 1970-01-01 was a Thursday (%w = 4)
    return HourParts(
        hour=hh.astype(np.float64),
        weekday=weekday.astype(np.float64),
        is_weekend=((weekday == 0) | (weekday == 6)).astype(np.float64),
        bad=~ok,
    )
