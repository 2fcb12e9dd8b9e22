"""The preprocessing's numeric rules and Avazu hour decomposition as TensorFlow ops.

Serving must turn a raw value into the key preprocessing gave it. Where a rule needs arithmetic
that another implementation could round differently (the logarithm, the calendar), the graph
takes its results from `optfusion_tf.data.bucketing`, the code preprocessing runs:

- Parsing: a cell is a number when pandas' C parser (preprocessing) reads it as a finite
  float: optional spaces, sign, digits with an optional point, optional exponent. "" is the
  missing value. Anything else ("abc", "nan", "inf", "1e999") made preprocessing drop the row;
  serving maps it to the field's OOV id.
- `log_square` (x > 2 -> floor(ln(x)^2), else trunc(x)): for x > 2 the bucket is the number of
  thresholds <= x, where threshold k is the smallest float64 above 2 that
  `bucketing.log_square` puts in bucket >= k (found by bisection with that very function).
  So the graph never evaluates a logarithm of its own, and agrees with numpy's to the bit.
  Buckets above the vocabulary's largest key are all OOV, so the thresholds stop there.
- `identity`: the number itself.
- Avazu `hour` (YYMMDDHH): the weekday and is_weekend of every YYMMDD come from tables that
  `bucketing.decompose_hour` fills (invalid dates marked -1); the graph only splits the digits.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from optfusion_tf.data import bucketing

# What pandas' float parser accepts (see the module docstring), as an RE2 full match.
NUMBER_PATTERN = r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*"
_LOG_SQUARE_MIN = 2.0  # log_square's x > 2 branch
_YEARS, _MONTHS, _DAYS = 100, 13, 32  # table shape: YY 0..99, MM 0..12, DD 0..31


def parse_numbers(text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Raw cells -> numbers.

    Args:
        text: tf.string of any shape S.
    Returns:
        (values float64 S (0 where not valid), missing bool S (the cell is ""), valid bool S
        (a finite number)).
    """
    matches = tf.strings.regex_full_match(text, NUMBER_PATTERN)
    values = tf.strings.to_number(tf.where(matches, text, "0"), out_type=tf.float64)
    valid = matches & tf.math.is_finite(values)
    return tf.where(valid, values, tf.zeros_like(values)), tf.equal(text, ""), valid


def log_square_thresholds(max_bucket: int) -> np.ndarray:
    """Bucket thresholds of `bucketing.log_square` above 2.

    Args:
        max_bucket: the largest bucket that needs its own threshold (>= 0).
    Returns:
        float64 [max_bucket + 1]: entry k - 1 is the smallest float64 x > 2 with
        log_square(x) >= k, for k = 1..max_bucket + 1 (inf if no finite x reaches k).
    """
    targets = np.arange(1, max_bucket + 2, dtype=np.float64)
    # Bisection over the bit patterns of positive float64s, which sort as the numbers do.
    low = np.full(targets.shape, np.float64(_LOG_SQUARE_MIN).view(np.int64))
    high = np.full(targets.shape, np.float64(np.finfo(np.float64).max).view(np.int64))
    reachable = bucketing.log_square(high.view(np.float64)) >= targets
    while np.any(high - low > 1):
        mid = low + (high - low) // 2
        above = bucketing.log_square(mid.view(np.float64)) >= targets
        high, low = np.where(above, mid, high), np.where(above, low, mid)
    return np.where(reachable, high.view(np.float64), np.inf)


def padded_thresholds(max_buckets: list[int | None]) -> np.ndarray:
    """Per-column `log_square_thresholds`, padded with inf to one width.

    Args:
        max_buckets: per numeric column, its largest kept bucket, or None for a column that does
            not use log_square (its row is all inf and unused).
    Returns:
        float64 [N, K].
    """
    rows = [np.full(1, np.inf) if m is None else log_square_thresholds(m) for m in max_buckets]
    width = max(len(r) for r in rows)
    return np.stack([np.pad(r, (0, width - len(r)), constant_values=np.inf) for r in rows])


def bucket_numbers(values: tf.Tensor, log_square: tf.Tensor, thresholds: tf.Tensor) -> tf.Tensor:
    """Each column's numeric rule: `log_square` where its flag is set, else `identity`.

    Args:
        values: float64 [B, N], finite.
        log_square: bool [N], the columns that use log_square.
        thresholds: float64 [N, K] from `padded_thresholds`.
    Returns:
        float64 [B, N] buckets.
    """
    truncated = tf.where(values < 0, tf.math.ceil(values), tf.math.floor(values))
    # How many of the column's (sorted, inf-padded) thresholds are <= the value: what
    # searchsorted(side="right") gives, counted by broadcasting [B, N, 1] against [N, K]. Not
    # searchsorted itself: its int32 output needs a transpose, which oneDNN then reports on
    # stderr at every call on CPUs without AVX-512 ("oneDNN supports DT_INT32 only ...").
    above = tf.reduce_sum(
        tf.cast(thresholds[tf.newaxis] <= values[:, :, tf.newaxis], tf.float64), axis=-1
    )
    buckets = tf.where(values > _LOG_SQUARE_MIN, above, truncated)
    return tf.where(log_square, buckets, values)


def zero_signed_and_subnormal(buckets: tf.Tensor) -> tf.Tensor:
    """float64 buckets with -0 and subnormals (|x| < 2.2e-308) replaced by +0, as
    `bucketing.apply_rule` does, so that their bit-pattern keys are those of "0". (`x + 0.0`
    did this eagerly but is optimised away in a tf.function, and CPUs may flush subnormals.)"""
    return tf.where(tf.abs(buckets) < np.finfo(np.float64).tiny, tf.zeros_like(buckets), buckets)


def date_tables() -> tuple[np.ndarray, np.ndarray]:
    """Weekday and is_weekend of every YYMMDD by `bucketing.decompose_hour`.

    Returns:
        (weekday, is_weekend), int8 [100, 13, 32] each, indexed [YY, MM, DD]; -1 where
        YYMMDD is not a date.
    """
    yy, mm, dd = np.meshgrid(np.arange(_YEARS), np.arange(_MONTHS), np.arange(_DAYS), indexing="ij")
    parts = bucketing.decompose_hour((yy * 1_000_000 + mm * 10_000 + dd * 100).ravel().astype(np.float64))
    tables = [np.where(parts.bad, -1, getattr(parts, name)).astype(np.int8).reshape(yy.shape) for name in ("weekday", "is_weekend")]
    return tables[0], tables[1]


def decompose_hour(
    values: tf.Tensor, valid: tf.Tensor, weekday_table: tf.Tensor, weekend_table: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Avazu YYMMDDHH numbers -> (hour, weekday, is_weekend) float64 [B] each, and ok bool [B].

    Args:
        values: float64 [B] from `parse_numbers`.
        valid: bool [B] from `parse_numbers`.
        weekday_table, weekend_table: `date_tables()` as int8 tensors.
    """
    ok = valid & (values >= 0) & (values < 1e8) & tf.equal(tf.math.floor(values), values)
    n = tf.cast(tf.where(ok, values, tf.zeros_like(values)), tf.int64)
    yy, mm, dd, hh = n // 1_000_000, n // 10_000 % 100, n // 100 % 100, n % 100
    ok &= (mm < _MONTHS) & (dd < _DAYS) & (hh <= 23)
    index = tf.stack([tf.where(ok, part, tf.zeros_like(part)) for part in (yy, mm, dd)], axis=1)
    weekday = tf.cast(tf.gather_nd(weekday_table, index), tf.float64)
    is_weekend = tf.cast(tf.gather_nd(weekend_table, index), tf.float64)
    ok &= weekday >= 0
    return tf.cast(hh, tf.float64), weekday, is_weekend, ok
