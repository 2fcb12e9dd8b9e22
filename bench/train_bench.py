"""Training-step throughput of OptFusion and the cost of the embedding update (issue 3 figures).

For three shapes -- Criteo-like (F=39, d=16), Avazu-like (F=24, d=16), Frappe-like (F=10,
d=10) -- with a 1M-row table, n=3 and CrossNet shallow components, at batch 4096:
- samples/s of a search step (the supernet, three optimizer groups, lazy_adam) and of a hard
  re-train step of the `parallel` preset (DCN-like: S1->S2->S3 and D1->D2->D3 from E,
  O = CONCAT(S3, D3)), each with `jit_compile` off and on (keys `search`, `search_jit`, ...);
  both also with `--deep_dtype=mixed_bfloat16` (keys `search_bf16`, `hard_bf16`, ..._jit: the
  deep blocks' matmuls in bfloat16, float32 weights; `--deep_dtypes`);
- the analytic training FLOPs per sample (3 x optfusion_tf.analysis.flops.analytic_flops_per_sample) and
  the achieved GFLOP/s as a fraction of this machine's fp32 matmul GFLOP/s at the same W: a
  warmed-up chain of [4096, W] x [W, W] tf.matmul, measured in the same run, in alternation
  with the steps (the median of those measurements is the reference);
- the Criteo-like search step with a 10M-row table, to check the step does not grow with it;
- the embedding update alone: `optimizer.apply` of an IndexedSlices gradient for a batch of
  4096 x 39 ids, d=16, with lazy_adam and dense adam, at 1M and 10M rows; ids are drawn per
  field, uniformly and Zipf(1.1)-distributed (hot ids hashed to scattered rows), for the 1M
  table and spread injectively over the 10M one (the same batch: same distinct ids);
- (issue 29) a DeepCTR 0.9.4 DCN training step at each shape (key `dcn`, the `peers` extra:
  deepctr + tf-keras; without it a line names `pip install -e ".[peers]"` and the DCN entries
  are skipped), timed in alternation with the hard `parallel` step: DeepCTR needs legacy Keras,
  so DCN runs in its own process (bench/deepctr_step.py, built by deepctr_peer.build_model as
  for the quality comparison: DeepCTR's defaults, dnn_hidden_units=(F*d,)*3, cross_num=3, Adam
  1e-3, binary cross-entropy, a 1M-row table split over the F fields, the same batch size and
  random in-memory ids), which times one round of steps per round of ours. `dcn_ratios` gives
  ours / DCN samples/s per shape (`hard_over_dcn`: the `parallel` preset as the scripts run it,
  jit off; also with jit, bfloat16 deep blocks and the search step when measured); the
  target is >= 1.5x at every shape (`parallel_ge_1.5x_dcn`: float32, the scripts' default;
  `parallel_bf16_ge_1.5x_dcn`: --deep_dtype=mixed_bfloat16; DCN computes in float32 both
  times). The steps are not the same work: ours updates the embedding with lazy_adam (only the
  rows in the batch, coupled L2 on them) and the network with Adam, and clips the global
  gradient norm; DeepCTR's uses tf_keras' Adam on every variable (moments of every table row
  decay each step), L2 regularizers over the whole embedding and linear tables (a dense [V, d]
  gradient each step), and adds a linear part (a 1-dim embedding per field) and an L2 on the
  cross kernels;
- (issue 29) one full validation pass over 1M rows (Criteo-like shape; `--validation_shape`):
  our exact AUC (`optfusion_tf.training.evaluation.evaluate_split`: compiled forward per batch
  of 16384, sklearn AUC and log loss on all logits) against Keras' `model.evaluate` of the same
  model with `keras.metrics.AUC(from_logits=True)` (200 thresholds), in alternation; seconds of
  each, their ratio and both AUCs.

This machine is shared (2 cores): whatever is compared is timed in alternation, so that the
load of other processes affects both sides alike. Data are random ids and labels in memory (a
repeated tf.data pipeline of a few batches), so the figures are the model's, not the input
pipeline's. Step times are medians; the first step of each `fit` call is not timed.

Usage:
    python bench/train_bench.py            # full size (about 45 minutes on 2 cores)
    python bench/train_bench.py --quick    # batch 512, 100k rows, fewer steps: a smoke run
    python bench/train_bench.py --parts=hard,dcn,validation   # only the issue-29 comparisons

`--parts` picks sections (search, hard, dcn, big_table, embedding_update, validation; default
all); `--jit`, `--shapes`, `--rounds`, `--steps_per_round` as below.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from optfusion_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before keras: hides TensorFlow's C++ start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from optfusion_tf.analysis.flops import analytic_flops_per_sample  # noqa: E402
from optfusion_tf.architecture.validation import DEEP_DTYPES  # noqa: E402
from optfusion_tf.optimizers.lazy_adam import make_embedding_optimizer  # noqa: E402
from optfusion_tf.models.model import OptFusionModel  # noqa: E402
from optfusion_tf.training.evaluation import evaluate_split  # noqa: E402
from optfusion_tf.training.fit import EVAL_BATCH_SIZE  # noqa: E402
from optfusion_tf.training.precision import bfloat16_matmul_is_native  # noqa: E402

SHAPES = {"criteo": (39, 16), "avazu": (24, 16), "frappe": (10, 10)}
# The paper's Criteo setting (F=39, d=40, W=1560), for an accelerator: `--shapes=paper`.
PAPER_SHAPE = {"paper": (39, 40)}
N_PAIRS = 3
SHALLOW = "crossnet"
HARD_PRESET = "parallel"
PARTS = ("search", "hard", "dcn", "big_table", "embedding_update", "validation")
PEERS_INSTALL = 'pip install -e ".[peers]"'
DEEPCTR_STEP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepctr_step.py")
# Reference search hyperparameters for Criteo (DESIGN.md section 8); they do not change speed.
LR_EMB, LR_NN, ARCH_LR, L2 = 3e-4, 3e-4, 0.3, 3e-6


def random_batches(
    batch: int, num_fields: int, vocab: int, count: int = 4, zipf: float | None = None,
    base_vocab: int | None = None, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`count` batches of global ids [count * batch, F] (field f owns rows f*V/F..) and labels.

    Ids are uniform over each field's rows, or Zipf(`zipf`) ranks hashed to scattered rows. With
    `base_vocab`, the ids are drawn for a `base_vocab` table and spread injectively over the
    `vocab` rows, so a bigger table sees the same batch (same duplicates, same distinct count).
    """
    rng = np.random.default_rng(seed)
    base_vocab = base_vocab or vocab
    base_per_field = base_vocab // num_fields
    shape = (count * batch, num_fields)
    if zipf is None:
        local = rng.integers(0, base_per_field, size=shape)
    else:
        ranks = np.minimum(rng.zipf(zipf, size=shape), base_per_field) - 1
        local = (ranks * 2654435761) % base_per_field
    spread = vocab // base_vocab
    local = local * spread + (local * 40503) % spread  # injective: l -> [l*k, (l+1)*k)
    ids = (local + np.arange(num_fields) * (vocab // num_fields)).astype("int64")
    labels = rng.integers(0, 2, size=(count * batch, 1)).astype("float32")
    return ids, labels


def matmul_gflops(width: int, batch: int, chain: int = 8, repeats: int = 5) -> float:
    """fp32 GFLOP/s of a warmed-up chain of [batch, W] x [W, W] matmuls (median of repeats)."""
    x = tf.random.normal([batch, width], seed=1)
    w = tf.random.normal([width, width], seed=2) / np.sqrt(width)  # keeps the values O(1)

    @tf.function
    def run(x: tf.Tensor) -> tf.Tensor:
        for _ in range(chain):
            x = tf.matmul(x, w)
        return x

    run(x).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x).numpy()
        times.append(time.perf_counter() - start)
    return chain * 2 * batch * width * width / statistics.median(times) / 1e9


class _StepTimer(keras.callbacks.Callback):
    """Records the wall time at the start of training and at the end of every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())


def build_model(
    fusion: str, num_fields: int, emb_dim: int, vocab: int, jit: bool,
    metrics: list | None = None, lr_emb: float = LR_EMB, deep_dtype: str = "float32",
) -> OptFusionModel:
    """A compiled search model, or the hard `parallel` preset, as our scripts build them."""
    shape = dict(feature_num=vocab, num_fields=num_fields, emb_dim=emb_dim, n=N_PAIRS,
                 shallow=SHALLOW, seed=0, deep_dtype=deep_dtype)
    if fusion == "search":
        model = OptFusionModel(fusion="search", **shape)
    else:
        model = OptFusionModel.from_preset(HARD_PRESET, **shape)
    model.compile(
        embedding_optimizer=make_embedding_optimizer("lazy_adam", lr_emb),
        network_optimizer=keras.optimizers.Adam(LR_NN),
        architecture_optimizer=keras.optimizers.Adam(ARCH_LR) if fusion == "search" else None,
        l2_emb=L2,
        l2_nn=L2,
        jit_compile=jit,
        metrics=metrics,
    )
    return model


def variant_key(fusion: str, jit: bool, deep_dtype: str) -> str:
    """The result key of a step: "hard", "hard_jit", "hard_bf16", "hard_bf16_jit", ..."""
    return fusion + ("_bf16" if deep_dtype == "mixed_bfloat16" else "") + ("_jit" if jit else "")


def measure_steps(
    fusion: str, num_fields: int, emb_dim: int, vocab: int, batch: int, jits: list[bool],
    rounds: int, steps_per_round: int, peer: "DeepCTRStep | None" = None,
    deep_dtypes: tuple[str, ...] = ("float32",),
) -> dict[str, dict[str, Any]]:
    """Step throughput of one model per `jit_compile` value and deep dtype (`--deep_dtype`),
    timed in alternation (keys from `variant_key`).

    Each round measures the matmul reference, then runs `1 + steps_per_round` steps of each
    model (the first step of a `fit` call includes its setup and is not timed) and, with a
    `peer`, as many DeepCTR steps in its process (key "dcn"); a last matmul measurement closes
    the series.
    """
    ids, labels = random_batches(batch, num_fields, vocab)
    data = tf.data.Dataset.from_tensor_slices((ids, labels)).batch(batch).repeat()
    models = {
        variant_key(fusion, jit, dtype): build_model(fusion, num_fields, emb_dim, vocab, jit,
                                                     deep_dtype=dtype)
        for dtype in deep_dtypes for jit in jits
    }
    for model in models.values():
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace (and XLA-compile)
    width = num_fields * emb_dim
    matmul: list[float] = []
    seconds: dict[str, list[float]] = {key: [] for key in models}
    peer_seconds: list[float] = []
    for _ in range(rounds):
        matmul.append(matmul_gflops(width, batch))
        for key, model in models.items():
            timer = _StepTimer()
            model.fit(data, steps_per_epoch=1 + steps_per_round, epochs=1, verbose=0,
                      callbacks=[timer])
            seconds[key] += np.diff(timer.times)[1:].tolist()
        if peer is not None:
            peer_seconds += peer.steps(steps_per_round)
    matmul.append(matmul_gflops(width, batch))
    reference = float(statistics.median(matmul))
    results = {}
    for key, model in models.items():
        step = float(statistics.median(seconds[key]))
        forward = analytic_flops_per_sample(model)
        achieved = batch / step * 3 * forward / 1e9
        result = {
            "step_seconds": round(step, 4),
            "samples_per_second": round(batch / step, 1),
            "forward_flops_per_sample": forward,
            "train_flops_per_sample": 3 * forward,
            "achieved_gflops": round(achieved, 2),
            "matmul_gflops": round(reference, 2),
            "matmul_gflops_all": [round(g, 1) for g in matmul],
            "fraction_of_matmul": round(achieved / reference, 3),
        }
        print(f"  {key:13s} F={num_fields:2d} d={emb_dim:2d} V={vocab:>10,d} "
              f"{result['samples_per_second']:9.1f} samples/s  {achieved:7.2f} GFLOP/s  "
              f"{result['fraction_of_matmul']:.0%} of fp32 matmul ({reference:.1f})", flush=True)
        results[key] = result
    if peer is not None:
        step = float(statistics.median(peer_seconds))
        results["dcn"] = {"step_seconds": round(step, 4),
                          "samples_per_second": round(batch / step, 1),
                          "steps_timed": len(peer_seconds), **peer.info}
        print(f"  DeepCTR DCN F={num_fields:2d} d={emb_dim:2d} V={vocab:>10,d} "
              f"{batch / step:9.1f} samples/s (tf_keras, its own process)", flush=True)
    return results


def peers_missing() -> list[str]:
    """The DeepCTR peer's packages that are not importable (see bench/deepctr_step.py)."""
    return [name for name in ("deepctr", "tf_keras") if importlib.util.find_spec(name) is None]


class DeepCTRStep:
    """DeepCTR's DCN at one shape, in its own process (bench/deepctr_step.py: legacy Keras).

    The process builds the model and warms up once; `steps(k)` then times k more training steps
    there while this process waits, so that DCN is timed in alternation with our steps.
    """

    def __init__(self, num_fields: int, emb_dim: int, vocab: int, batch: int) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(
            [sys.executable, DEEPCTR_STEP, f"--num_fields={num_fields}",
             f"--emb_dim={emb_dim}", f"--vocab={vocab}", f"--batch={batch}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )
        self.info = self._read()
        self.info.pop("ready")

    def _read(self) -> dict[str, Any]:
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            self._stderr.seek(0)
            tail = "".join(self._stderr.readlines()[-20:])
            raise RuntimeError(f"{DEEPCTR_STEP} exited with {self._process.returncode}:\n{tail}")
        return json.loads(line)

    def steps(self, count: int) -> list[float]:
        self._process.stdin.write(f"steps {count}\n")
        self._process.stdin.flush()
        return self._read()["step_seconds"]

    def close(self) -> None:
        self._process.stdin.write("quit\n")
        self._process.stdin.close()
        self._process.wait(timeout=60)
        self._stderr.close()


def measure_validation(
    num_fields: int, emb_dim: int, vocab: int, rows: int, batch: int, train_steps: int,
    repeats: int,
) -> dict[str, Any]:
    """Seconds of one full validation pass over `rows` rows: our exact AUC against Keras'.

    Ours: `optfusion_tf.training.evaluation.evaluate_split` (one compiled forward call per batch
    of EVAL_BATCH_SIZE rows, then sklearn's exact AUC and log loss on all the logits). Keras':
    `model.evaluate` of the same model, compiled with `keras.metrics.AUC(from_logits=True)`
    (bucketed: 200 thresholds, streaming) and its binary cross-entropy loss, on the same dataset
    object (same batches). The model is the hard `parallel` preset; labels depend on the ids
    (a random effect per table row, summed over the fields) and the model is trained
    `train_steps` steps on the first rows (lazy_adam lr 1e-2 on the embedding), so that both
    AUCs are about something. Both are traced on one batch first; then the two passes are timed
    in alternation, `repeats` times each (medians).
    """
    rng = np.random.default_rng(1)
    per_field = vocab // num_fields
    ids = rng.integers(0, per_field, size=(rows, num_fields)) + np.arange(num_fields) * per_field
    effect = rng.normal(size=vocab)
    score = 2 * effect[ids].sum(axis=1) / np.sqrt(num_fields)
    labels = (rng.random(rows) < 1 / (1 + np.exp(-score))).astype("float32")[:, None]
    model = build_model("hard", num_fields, emb_dim, vocab, jit=False, lr_emb=1e-2,
                        metrics=[keras.metrics.AUC(from_logits=True, name="auc")])
    train = tf.data.Dataset.from_tensor_slices((ids[: batch * train_steps],
                                                labels[: batch * train_steps]))
    model.fit(train.batch(batch).repeat(), steps_per_epoch=train_steps, epochs=1, verbose=0)
    valid = tf.data.Dataset.from_tensor_slices((ids, labels)).batch(EVAL_BATCH_SIZE)
    del ids
    evaluate_split(model, valid.take(1))  # traces our forward function
    model.evaluate(valid.take(1), verbose=0)  # ... and Keras' test function
    seconds: dict[str, list[float]] = {"exact": [], "keras": []}
    for _ in range(repeats):
        start = time.perf_counter()
        ours = evaluate_split(model, valid)
        seconds["exact"].append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs = model.evaluate(valid, verbose=0, return_dict=True)
        seconds["keras"].append(time.perf_counter() - start)
    exact, bucketed = (float(statistics.median(seconds[k])) for k in ("exact", "keras"))
    result = {
        "rows": rows, "num_fields": num_fields, "emb_dim": emb_dim, "vocab": vocab,
        "eval_batch": EVAL_BATCH_SIZE, "model": f"preset {HARD_PRESET}, trained {train_steps} "
        f"steps of {batch}", "repeats": repeats,
        "exact_seconds": round(exact, 3), "keras_evaluate_seconds": round(bucketed, 3),
        "exact_over_keras": round(exact / bucketed, 3),
        "exact_seconds_all": [round(t, 2) for t in seconds["exact"]],
        "keras_evaluate_seconds_all": [round(t, 2) for t in seconds["keras"]],
        "exact_auc": round(ours["auc"], 6), "exact_logloss": round(ours["logloss"], 6),
        "distinct_logits": ours["distinct_logits"],
        "keras_auc_200_thresholds": round(float(theirs["auc"]), 6),
        "keras_loss": round(float(theirs["loss"]), 6),
        "exact": "evaluate_split: compiled forward per batch + sklearn roc_auc_score / log_loss",
        "keras": "model.evaluate, metrics=[keras.metrics.AUC(from_logits=True)] (200 buckets)",
    }
    print(f"  validation pass, {rows:,d} rows, F={num_fields} d={emb_dim}: exact AUC "
          f"{exact:.2f} s (AUC {ours['auc']:.5f}), keras evaluate {bucketed:.2f} s (AUC "
          f"{float(theirs['auc']):.5f}), ratio {exact / bucketed:.2f}", flush=True)
    return result


def embedding_update_ms(
    name: str, vocabs: tuple[int, ...], batch: int, num_fields: int, zipf: float | None,
    repeats: int, dim: int = 16,
) -> dict[int, dict[str, Any]]:
    """Milliseconds (min and median) of `optimizer.apply` of one sparse gradient, per table size.

    The same batch of ids (drawn for the smallest table, spread over the bigger ones) updates a
    [V, dim] table for each V; the sizes are timed in alternation, so that load from other
    processes on the machine affects them alike.
    """
    applies = {}
    for vocab in vocabs:
        table = keras.Variable(tf.zeros([vocab, dim]), name=f"table_{vocab}")
        optimizer = make_embedding_optimizer(name, LR_EMB)
        optimizer.build([table])
        ids, _ = random_batches(batch, num_fields, vocab, count=1, zipf=zipf,
                                base_vocab=min(vocabs))
        indices = tf.constant(ids.reshape(-1))
        values = tf.random.normal([indices.shape[0], dim], seed=3)
        apply = _sparse_apply_function(optimizer, table)
        apply(indices, values)
        applies[vocab] = (apply, indices, values)
    times: dict[int, list[float]] = {vocab: [] for vocab in vocabs}
    for _ in range(repeats):
        for vocab, (apply, indices, values) in applies.items():
            start = time.perf_counter()
            apply(indices, values).numpy()
            times[vocab].append(time.perf_counter() - start)
    results = {}
    for vocab, (_, indices, _) in applies.items():
        median, best = 1000 * statistics.median(times[vocab]), 1000 * min(times[vocab])
        unique = int(tf.size(tf.unique(indices)[0]))
        print(f"  {name:9s} V={vocab:>11,d} ids={'zipf' if zipf else 'uniform':7s} "
              f"{best:9.2f} ms min {median:9.2f} ms median  "
              f"({indices.shape[0]:,d} ids, {unique:,d} distinct)", flush=True)
        results[vocab] = {"ms_min": round(best, 2), "ms_median": round(median, 2),
                          "ids": int(indices.shape[0]), "distinct_ids": unique}
    return results


def _sparse_apply_function(
    optimizer: keras.optimizers.Optimizer, table: keras.Variable
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A compiled `optimizer.apply` of the sparse gradient (indices [N], values [N, d])."""
    dense_shape = tf.constant(table.shape, dtype=tf.int64)

    @tf.function(autograph=False)  # no control flow; avoids autograph's closure warnings
    def apply(indices: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
        optimizer.apply([tf.IndexedSlices(values, indices, dense_shape)], [table])
        # Return the step, not the table: after a sparse update TF keeps the variable in
        # copy-on-read mode, and a dense read would copy all of it (as keras.ops.take does).
        return optimizer.iterations

    return apply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="alternation rounds per model")
    parser.add_argument("--steps_per_round", type=int, default=2, help="timed steps per round")
    parser.add_argument("--jit", choices=("off", "on", "both"), default="both",
                        help="jit_compile of the search and hard steps")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma-separated, of {[*SHAPES, *PAPER_SHAPE]} (paper: for a GPU)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)} (dcn implies hard)")
    parser.add_argument("--deep_dtypes", default=",".join(DEEP_DTYPES),
                        help="comma-separated --deep_dtype values of the search and hard steps")
    parser.add_argument("--validation_shape", choices=tuple(SHAPES), default="criteo")
    parser.add_argument("--validation_repeats", type=int, default=None)
    args = parser.parse_args()
    unknown = [shape for shape in args.shapes.split(",") if shape not in {**SHAPES, **PAPER_SHAPE}]
    if unknown:
        parser.error(f"--shapes: unknown {unknown}; expected some of {[*SHAPES, *PAPER_SHAPE]}")
    deep_dtypes = tuple(args.deep_dtypes.split(","))
    if not set(deep_dtypes) <= set(DEEP_DTYPES):
        parser.error(f"--deep_dtypes: unknown {sorted(set(deep_dtypes) - set(DEEP_DTYPES))}; "
                     f"expected some of {list(DEEP_DTYPES)}")
    if "mixed_bfloat16" in deep_dtypes and not bfloat16_matmul_is_native():
        print("train_bench: this machine shows no bfloat16 matmul units: its mixed_bfloat16 "
              "steps time TensorFlow's emulation (--deep_dtypes=float32 leaves them out)",
              flush=True)
    parts = set(args.parts.split(","))
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; allowed: {', '.join(PARTS)}")
    batch = args.batch or (512 if args.quick else 4096)
    rounds = args.rounds or (2 if args.quick else 3)
    vocab = 100_000 if args.quick else 1_000_000
    big_vocab = 1_000_000 if args.quick else 10_000_000
    validation_rows = 100_000 if args.quick else 1_000_000
    validation_repeats = args.validation_repeats or (1 if args.quick else 2)
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
    keras.utils.set_random_seed(0)
    if "dcn" in parts:
        parts.add("hard")
        missing = peers_missing()
        if missing:
            print(f"train_bench: {' and '.join(missing)} not importable: DeepCTR DCN skipped "
                  f"(`{PEERS_INSTALL}` installs them)", flush=True)
            parts.discard("dcn")

    print(f"train_bench: batch {batch}, vocab {vocab:,d}, n={N_PAIRS}, {SHALLOW}, "
          f"{rounds} x {args.steps_per_round} timed steps per model, parts "
          f"{','.join(p for p in PARTS if p in parts)}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    shapes: dict[str, Any] = {}
    dcn_ratios: dict[str, dict[str, float]] = {}
    for shape in args.shapes.split(","):
        num_fields, emb_dim = {**SHAPES, **PAPER_SHAPE}[shape]
        entry: dict[str, Any] = {"num_fields": num_fields, "emb_dim": emb_dim,
                                 "width": num_fields * emb_dim}
        for fusion in ("search", "hard"):
            if fusion not in parts:
                continue
            peer = None
            if fusion == "hard" and "dcn" in parts:
                peer = DeepCTRStep(num_fields, emb_dim, vocab, batch)
            try:
                entry.update(measure_steps(
                    fusion, num_fields, emb_dim, vocab, batch, jits, rounds,
                    args.steps_per_round, peer,
                    deep_dtypes=deep_dtypes,
                ))
            finally:
                if peer is not None:
                    peer.close()
        if "dcn" in entry:
            dcn = entry["dcn"]["samples_per_second"]
            dcn_ratios[shape] = {
                f"{key}_over_dcn": round(entry[key]["samples_per_second"] / dcn, 3)
                for key in entry if key.startswith(("hard", "search"))
            }
            print(f"  {shape}: " + ", ".join(f"{k} {v:.2f}x" for k, v in dcn_ratios[shape].items()),
                  flush=True)
        shapes[shape] = entry

    big_table: dict[str, Any] = {}
    if "big_table" in parts:
        print("search step, Criteo-like, with the big table:", flush=True)
        num_fields, emb_dim = SHAPES["criteo"]
        big_table["vocab"] = big_vocab
        big_table.update(measure_steps("search", num_fields, emb_dim, big_vocab, batch, jits,
                                       rounds, args.steps_per_round))
        for key in [k for k in big_table
                    if k.startswith("search") and k in shapes.get("criteo", {})]:
            big_table[key]["step_seconds_over_small_table"] = round(
                big_table[key]["step_seconds"] / shapes["criteo"][key]["step_seconds"], 3
            )

    updates: dict[str, Any] = {}
    lazy_ratio: dict[str, float] = {}
    if "embedding_update" in parts:
        print("embedding update (optimizer.apply of one sparse gradient):", flush=True)
        for name in ("lazy_adam", "adam"):
            for zipf in (None, 1.1) if name == "lazy_adam" else (None,):
                timed = embedding_update_ms(name, (vocab, big_vocab), batch, SHAPES["criteo"][0],
                                            zipf, repeats=5 if name == "adam" else 20)
                for rows, figures in timed.items():
                    updates[f"{name}/{rows}/{'zipf' if zipf else 'uniform'}"] = figures
        lazy_ratio = {
            f"{dist}_{stat}": round(updates[f"lazy_adam/{big_vocab}/{dist}"][f"ms_{stat}"]
                                    / updates[f"lazy_adam/{vocab}/{dist}"][f"ms_{stat}"], 3)
            for dist in ("uniform", "zipf") for stat in ("min", "median")
        }

    validation: dict[str, Any] = {}
    if "validation" in parts:
        print("validation pass (exact AUC vs keras model.evaluate with keras.metrics.AUC):",
              flush=True)
        num_fields, emb_dim = SHAPES[args.validation_shape]
        validation = measure_validation(num_fields, emb_dim, vocab, validation_rows, batch,
                                        train_steps=10 if args.quick else 30,
                                        repeats=validation_repeats)

    criteo = shapes.get("criteo", {})
    fractions = {key: criteo[key]["fraction_of_matmul"] for key in ("search", "search_jit")
                 if key in criteo}
    jit_speedup = {
        f"{shape}/{fusion}": round(entry[f"{fusion}_jit"]["samples_per_second"]
                                   / entry[fusion]["samples_per_second"], 3)
        for shape, entry in shapes.items()
        for fusion in ("search", "search_bf16", "hard", "hard_bf16")
        if f"{fusion}_jit" in entry and fusion in entry
    }
    targets: dict[str, Any] = {}
    if fractions:
        targets["criteo_search_fraction_of_matmul"] = fractions
        targets["criteo_search_fraction_of_matmul_ge_0.5"] = max(fractions.values()) >= 0.5
    if lazy_ratio:
        # min over interleaved repetitions: the run least disturbed by other processes
        targets["lazy_adam_big_over_small_le_1.2"] = all(
            r <= 1.2 for key, r in lazy_ratio.items() if key.endswith("_min")
        )
    if dcn_ratios:
        # our parallel preset as the scripts run it (jit_compile "auto": off on a CPU) when
        # measured, else with XLA
        for name, prefix in (("parallel", "hard"), ("parallel_bf16", "hard_bf16")):
            if any(f"{prefix}_over_dcn" in r or f"{prefix}_jit_over_dcn" in r
                   for r in dcn_ratios.values()):
                targets[f"{name}_ge_1.5x_dcn"] = {
                    shape: ratios.get(f"{prefix}_over_dcn",
                                      ratios.get(f"{prefix}_jit_over_dcn", 0)) >= 1.5
                    for shape, ratios in dcn_ratios.items()
                }
    result = {
        "bench": "train_bench",
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "batch": batch, "vocab": vocab, "n": N_PAIRS, "shallow": SHALLOW, "quick": args.quick,
        "parts": [p for p in PARTS if p in parts],
        "hard_arch": f"preset {HARD_PRESET}",
        "optimizers": {
            "ours": "lazy_adam on the embedding (rows in the batch, coupled L2 on them), Adam on "
                    "the network; global-norm clip 10",
            "dcn": "DeepCTR 0.9.4 DCN, tf_keras Adam on every variable (dense moments of the "
                   "whole table), L2 regularizers over the whole embedding and linear tables, "
                   "a linear part; cross_num 3, dnn_hidden_units (F*d,)*3",
        } if "dcn" in parts else {},
        "shapes": shapes,
        "dcn_ratios": dcn_ratios,
        "jit_speedup": jit_speedup,
        "criteo_search_step_big_table": big_table,
        "embedding_update": updates,
        "lazy_adam_big_over_small_table": lazy_ratio,
        "validation_pass": validation,
        "targets": targets,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
