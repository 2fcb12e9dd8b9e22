"""Synthetic click logs in the raw Criteo format, with labels from a documented planted model.

`write_demo_criteo(path, rows, seed)` writes `rows` lines of `label<TAB>I1..I13<TAB>C1..C26`
(plain text, or gzip when `path` ends in .gz), exactly the format of Criteo's train.txt, so the
demo exercises the real preprocessing path. Everything is a function of (rows, seed).

Raw values
- C1..C26: categorical, 8 hex digits (as Criteo's hashed values). Field j draws a rank
  r in [0, K_j) from a Zipf law p(r) ~ (r + 1)^-s_j; the value is a fixed hash of (j, r).
  Cardinalities K_j run from a handful to 30% of `rows` (`CATEGORICAL_CARDINALITY`: fixed
  numbers up to 10,000 with s_j in [1.05, 1.4], then 1%, 2%, 5%, 10%, 30% of rows with flatter
  laws, s_j in [0.9, 1.05], so that, as in Criteo, the largest fields keep seeing new values:
  about 15-20% of the rows bring a value unseen before in the largest field).
  Some fields have missing values (empty cells), at rates up to 40%.
- I1..I13: integer counts, floor(exp(N(mu_i, sigma_i))) - 1, with missing cells at rates up to
  45%; I2 also takes the negative values -1, -2, -3 (10% of its rows), as real Criteo I2.

Planted model: the label is Bernoulli(sigmoid(logit)), with
  logit = b + a_lin * LIN + a_cross * CROSS + a_deep * DEEP + a_fuse * CROSS * tanh(DEEP)
- LIN   = sum over informative categorical fields j of w_j[r_j] + sum_i u_i * x_i, where
          x_i = standardized log(1 + max(I_i, 0)) (0 when missing);
- CROSS = sum over the planted field pairs (j, l) of <e_j[r_j], e_l[r_l]>, e in R^4
          (factorization-machine crosses; pairs in `CROSS_PAIRS`, between fields with up to
          ~1% of rows as cardinality, so their values repeat enough to be learnt);
- DEEP  = sum_h c_h * relu(sum_j <V_hj, e_j[r_j]> + sum_i B_hi x_i + d_h), a random one-hidden-
          layer ReLU network (16 units) over the same embeddings and the integer features;
- CROSS * tanh(DEEP): a product of the shallow and deep parts, so an architecture that fuses
  them (feeds one into the other or multiplies them) can fit what a late concatenation cannot.
Each part is scaled to unit variance on a pilot sample, then weighted by `PART_WEIGHTS`; the
bias b sets the positive rate to `POSITIVE_RATE` (about 0.22). Missing categorical values have
zero weights and embeddings. The Bayes-optimal AUC (scoring rows by the planted probability,
`DemoChunk.probability`) is about 0.80; a model only sees values kept by the vocabulary
threshold, so its achievable AUC is somewhat lower.
"""

from __future__ import annotations

import dataclasses
import gzip
from typing import Callable, Iterator

import numpy as np

NUM_INT, NUM_CAT = 13, 26
CHUNK_ROWS = 100_000
EMB_DIM, HIDDEN = 4, 16
POSITIVE_RATE = 0.22
# Zipf exponent ranges: fixed-size fields (False), fields sized as a fraction of rows (True).
ZIPF_EXPONENTS = {False: (1.05, 1.4), True: (0.9, 1.05)}
# Fixed cardinalities, then fractions of `rows` (the last five fields).
CATEGORICAL_CARDINALITY = (
    3,
    4,
    5,
    8,
    10,
    15,
    20,
    30,
    50,
    80,
    100,
    150,
    200,
    300,
    500,
    800,
    1000,
    2000,
    3000,
    5000,
    10000,
    0.01,
    0.02,
    0.05,
    0.1,
    0.3,
)
# Planted crosses (0-based categorical field indexes): fields with cardinality up to 1% of rows.
CROSS_PAIRS = (
    (0, 5),
    (1, 9),
    (2, 14),
    (3, 20),
    (4, 12),
    (6, 16),
    (7, 18),
    (8, 21),
    (10, 17),
    (11, 19),
    (13, 15),
    (5, 20),
)
INFORMATIVE = tuple(range(22))  # categorical fields with first-order and deep effects
PART_WEIGHTS = {"lin": 0.9, "cross": 0.9, "deep": 0.8, "fuse": 0.7}
_PILOT_ROWS = 20_000


@dataclasses.dataclass(frozen=True)
class DemoChunk:
    """A run of generated rows.

    Attributes:
        text: the rows as raw Criteo lines, each ending in a newline.
        labels: int8 [n], 0 or 1 (the first column of `text`).
        probability: float64 [n], the planted P(label = 1) of each row.
    """

    text: str
    labels: np.ndarray
    probability: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Model:
    cardinality: np.ndarray  # int64 [NUM_CAT]
    cdf: list[np.ndarray]  # Zipf CDF per categorical field
    missing: np.ndarray  # float [NUM_CAT]
    values: list[np.ndarray]  # object [K_j] hex strings
    weight: list[np.ndarray]  # float [K_j + 1] first-order weights (last = missing, 0)
    emb: list[np.ndarray]  # float [K_j + 1, EMB_DIM] (last row = missing, 0)
    int_mu: np.ndarray
    int_sigma: np.ndarray
    int_missing: np.ndarray
    int_weight: np.ndarray  # [NUM_INT]
    deep_v: np.ndarray  # [len(INFORMATIVE) * EMB_DIM + NUM_INT, HIDDEN]
    deep_d: np.ndarray  # [HIDDEN]
    deep_c: np.ndarray  # [HIDDEN]
    scale: dict[str, float]
    bias: float


def _cardinality(rows: int) -> np.ndarray:
    return np.array(
        [c if c >= 1 else max(10, int(c * rows)) for c in CATEGORICAL_CARDINALITY], np.int64
    )


def _sample_raw(model: _Model, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws n rows: categorical ranks int64 [n, NUM_CAT] (K_j = missing), integer values
    float64 [n, NUM_INT] (NaN = missing)."""
    ranks = np.empty((n, NUM_CAT), np.int64)
    for j in range(NUM_CAT):
        r = np.searchsorted(model.cdf[j], rng.random(n), side="right")
        ranks[:, j] = np.where(
            rng.random(n) < model.missing[j],
            model.cardinality[j],
            np.minimum(r, model.cardinality[j] - 1),
        )
    ints = np.floor(np.exp(rng.normal(model.int_mu, model.int_sigma, size=(n, NUM_INT)))) - 1
    negative = rng.random(n) < 0.1
    ints[negative, 1] = -rng.integers(1, 4, size=int(negative.sum()))
    ints[rng.random((n, NUM_INT)) < model.int_missing] = np.nan
    return ranks, ints


def _parts(model: _Model, ranks: np.ndarray, ints: np.ndarray) -> dict[str, np.ndarray]:
    """The planted model's parts (unscaled) for rows given as ranks and integer values."""
    x = np.log1p(np.maximum(np.nan_to_num(ints, nan=0.0), 0.0))
    x = np.where(np.isnan(ints), 0.0, (x - model.int_mu) / model.int_sigma)
    lin = x @ model.int_weight
    for j in INFORMATIVE:
        lin += model.weight[j][ranks[:, j]]
    cross = np.zeros(len(ranks))
    for j, l in CROSS_PAIRS:
        cross += np.einsum("nd,nd->n", model.emb[j][ranks[:, j]], model.emb[l][ranks[:, l]])
    deep_in = np.concatenate([model.emb[j][ranks[:, j]] for j in INFORMATIVE] + [x], axis=1)
    deep = np.maximum(deep_in @ model.deep_v + model.deep_d, 0.0) @ model.deep_c
    return {"lin": lin, "cross": cross, "deep": deep}


def _logit(model: _Model, parts: dict[str, np.ndarray]) -> np.ndarray:
    s = {
        k: (parts[k] - model.scale[k + "_mean"]) / model.scale[k] for k in ("lin", "cross", "deep")
    }
    fuse = s["cross"] * np.tanh(s["deep"])
    w = PART_WEIGHTS
    return (
        model.bias
        + w["lin"] * s["lin"]
        + w["cross"] * s["cross"]
        + w["deep"] * s["deep"]
        + w["fuse"] * fuse
    )


def _build_model(rows: int, seed: int) -> _Model:
    model_rng, pilot_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 1]).spawn(2)
    )
    card = _cardinality(rows)
    cdf, values, weight, emb = [], [], [], []
    for j, k in enumerate(card.tolist()):
        flat = CATEGORICAL_CARDINALITY[j] < 1  # the fields sized as a fraction of rows
        p = np.arange(1, k + 1, dtype=np.float64) ** -model_rng.uniform(*ZIPF_EXPONENTS[flat])
        cdf.append(np.cumsum(p) / p.sum())
        salt = int(model_rng.integers(1, 2**31))
        hashed = (
            np.arange(k, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(salt)
        ) % np.uint64(2**32)
        values.append(np.array([f"{h:08x}" for h in hashed.tolist()] + [""], dtype=object))
        weight.append(np.append(model_rng.normal(0, 1, k), 0.0))
        emb.append(np.vstack([model_rng.normal(0, 1, (k, EMB_DIM)), np.zeros((1, EMB_DIM))]))
    missing = np.where(model_rng.random(NUM_CAT) < 0.4, model_rng.uniform(0.05, 0.4, NUM_CAT), 0.0)
    model = _Model(
        cardinality=card,
        cdf=cdf,
        missing=missing,
        values=values,
        weight=weight,
        emb=emb,
        int_mu=model_rng.uniform(0.5, 3.0, NUM_INT),
        int_sigma=model_rng.uniform(0.5, 1.5, NUM_INT),
        int_missing=np.where(
            model_rng.random(NUM_INT) < 0.5, model_rng.uniform(0.02, 0.45, NUM_INT), 0.0
        ),
        int_weight=model_rng.normal(0, 1, NUM_INT),
        deep_v=model_rng.normal(0, 1, (len(INFORMATIVE) * EMB_DIM + NUM_INT, HIDDEN)),
        deep_d=model_rng.normal(0, 1, HIDDEN),
        deep_c=model_rng.normal(0, 1, HIDDEN),
        scale={},
        bias=0.0,
    )
    ranks, ints = _sample_raw(model, _PILOT_ROWS, pilot_rng)
    parts = _parts(model, ranks, ints)
    scale = {}
    for k, v in parts.items():
        scale[k], scale[k + "_mean"] = float(v.std()) or 1.0, float(v.mean())
    model = dataclasses.replace(model, scale=scale)
    logit0 = _logit(model, parts)
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bisection: bias giving the target positive rate on the pilot sample
        mid = (lo + hi) / 2
        lo, hi = (
            (mid, hi) if np.mean(1 / (1 + np.exp(-(logit0 + mid)))) < POSITIVE_RATE else (lo, mid)
        )
    return dataclasses.replace(model, bias=(lo + hi) / 2)


def _format_ints(ints: np.ndarray) -> list[np.ndarray]:
    """Integer values float64 [n, NUM_INT] (NaN = missing) -> per column object arrays of text."""
    finite = np.nan_to_num(ints, nan=0.0).astype(np.int64)
    low, high = int(finite.min()), int(finite.max())
    table = np.array([str(v) for v in range(low, high + 1)] + [""], dtype=object)  # last: missing
    index = np.where(np.isnan(ints), len(table) - 1, finite - low)
    return [table[index[:, i]] for i in range(NUM_INT)]


def demo_chunks(rows: int, seed: int, chunk_rows: int = CHUNK_ROWS) -> Iterator[DemoChunk]:
    """Generates the demo dataset as chunks of rows (the content of write_demo_criteo's file).

    Args:
        rows: total rows (also sets the largest cardinalities).
        seed: seed of the model and the rows.
        chunk_rows: rows per chunk.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1. Received: {rows}")
    model = _build_model(rows, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    for start in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - start)
        ranks, ints = _sample_raw(model, n, rng)
        prob = 1 / (1 + np.exp(-_logit(model, _parts(model, ranks, ints))))
        labels = (rng.random(n) < prob).astype(np.int8)
        columns = [np.array(["0", "1"], dtype=object)[labels]] + _format_ints(ints)
        columns += [model.values[j][ranks[:, j]] for j in range(NUM_CAT)]
        text = "\n".join(map("\t".join, zip(*columns))) + "\n"
        yield DemoChunk(text, labels, prob)


def write_demo_criteo(
    path: str, rows: int, seed: int, on_chunk: Callable[[DemoChunk], None] | None = None
) -> str:
    """Writes `rows` synthetic Criteo-format lines to `path` (gzip if it ends in .gz).

    Args:
        path: output file.
        rows: number of rows.
        seed: seed of the planted model and the rows.
        on_chunk: called with every DemoChunk as it is written (e.g. to collect the planted
            probabilities for the AUC ceiling).
    Returns:
        path.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="ascii", newline="\n") as f:
        for chunk in demo_chunks(rows, seed):
            f.write(chunk.text)
            if on_chunk is not None:
                on_chunk(chunk)
    return path
