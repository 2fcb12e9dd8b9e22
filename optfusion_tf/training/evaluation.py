"""Exact AUC and log loss on a whole split (DESIGN.md section 5), and the callbacks that put them
into training.

- `evaluate_split(model, dataset)`: one pass over the split, one model call per batch, then
  `sklearn.metrics.roc_auc_score` / `log_loss` on all examples at once (not Keras' thresholded,
  streaming AUC). Under `--strategy=multi_worker` each worker predicts its slice of the split and
  the (label, logit) pairs of all workers are gathered first, so every worker computes the same
  exact metrics of the whole split (and early stopping decides alike everywhere).
- `ExactValidationMetrics`: after every epoch writes `val_auc` and `val_logloss` into the epoch's
  `logs`. Keras 3 hands the same dict to every later callback in the list, so EarlyStopping,
  ModelCheckpoint, TensorBoard and History placed after it see them. Both are NaN for an epoch
  whose predictions or weights (`non_finite_weights`) are not all finite.
- `StopOnNaN`: `keras.callbacks.TerminateOnNaN` that remembers where it stopped, so a script can
  exit non-zero with a clear message (the best checkpoint so far is untouched: a NaN val_auc is
  never an improvement for EarlyStopping or for a ModelCheckpoint whose
  `initial_value_threshold` is -inf; with None, Keras saves any first epoch).

Datasets yield (feature_ids int64 [B, F], label float32 [B, 1]); models map feature_ids to logits
[B, 1].
"""

from __future__ import annotations

import json
import math
import os
import time
import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from scipy.special import expit
from sklearn.metrics import log_loss, roc_auc_score

from optfusion_tf.distribute.distribution import gather_rows
from optfusion_tf.training.run_dir import write_json_atomic

# Probabilities are clipped to [eps, 1 - eps] before the log loss (Keras' default epsilon), so a
# saturated sigmoid costs at most -log(1e-7) ~ 16.1 per example instead of infinity.
PROBABILITY_EPSILON = 1e-7


# model -> {(dtype, feature shape): its compiled inference function}.
_FORWARD: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def _forward(model: keras.Model, features: tf.Tensor):
    """`model(x, training=False)` as a tf.function for batches like `features`, cached per
    model: traced once, for any batch size (input signature [None, ...]).

    Not `model.predict_on_batch`: under a distribution strategy that runs the batch on every
    replica (and, multi-worker, concatenates across workers); this runs it once, here.
    """
    functions = _FORWARD.setdefault(model, {})
    key = (features.dtype, tuple(features.shape[1:]))
    if key not in functions:
        held = weakref.ref(model)  # the cached function must not keep its model alive
        functions[key] = tf.function(
            lambda x: held()(x, training=False),
            input_signature=[tf.TensorSpec([None, *key[1]], key[0])],
            autograph=False,
        )
    return functions[key]


def predict_logits(
    model: keras.Model,
    dataset: tf.data.Dataset,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and logits for every example of `dataset`, in dataset order.

    One call of a compiled forward function per batch.

    Args:
        model: maps feature_ids [B, F] to logits [B, 1].
        dataset: yields (feature_ids [B, F], label [B, 1]); under multi_worker, this worker's
            slice of the split.
        strategy: with a multi-worker strategy, the workers' slices are gathered (a
            collective: every worker must call this, in the same order), worker by worker.

    Returns:
        (labels float64 [N], logits float64 [N]).
    """
    labels, logits = [], []
    for element in dataset:
        if not isinstance(element, tuple) or len(element) != 2:
            raise ValueError(
                "Expected a dataset of (feature_ids, label) pairs. Received an element of "
                f"structure {tf.nest.map_structure(lambda t: t.shape, element)}"
            )
        features, label = element
        batch_labels = np.asarray(label, dtype=np.float64).reshape(-1)
        batch_logits = np.asarray(_forward(model, features)(features), dtype=np.float64).reshape(-1)
        if batch_logits.shape != batch_labels.shape:
            raise ValueError(
                f"Expected one logit per label (logits [B, 1]); the model returned "
                f"{batch_logits.size} values for a batch of {batch_labels.size} labels."
            )
        labels.append(batch_labels)
        logits.append(batch_logits)
    rows = np.stack(
        [np.concatenate(labels or [np.zeros(0)]), np.concatenate(logits or [np.zeros(0)])], axis=1
    )
    rows = gather_rows(strategy, rows)  # float64 keeps the float32 logits exactly
    if not len(rows):
        raise ValueError("The dataset is empty; expected at least one batch of examples.")
    return rows[:, 0], rows[:, 1]


def binary_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """Exact AUC and log loss of logits [N] against 0/1 labels [N].

    AUC is computed on the logits (the same ranking as sigmoid(logits), without the ties that a
    saturated float sigmoid would create); log loss on sigmoid(logits) clipped to
    [PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON].

    Returns:
        {"auc": float, "logloss": float, "examples": int, "distinct_logits": int}.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if labels.shape != logits.shape:
        raise ValueError(
            f"Expected as many logits as labels. Received {logits.size} logits and "
            f"{labels.size} labels."
        )
    bad = int(np.count_nonzero(~np.isfinite(logits)))
    if bad:
        raise ValueError(f"{bad} of {logits.size} logits are NaN or infinite.")
    classes = np.unique(labels)
    if not np.isin(classes, (0.0, 1.0)).all():
        raise ValueError(f"Expected 0/1 labels. Received label values {classes[:10].tolist()}")
    if classes.size < 2:
        raise ValueError(
            f"AUC needs both classes, but all {labels.size} examples have label "
            f"{int(classes[0])}. Is the split too small, or the label column wrong?"
        )
    probabilities = np.clip(expit(logits), PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return {
        "auc": float(roc_auc_score(labels, logits)),
        "logloss": float(log_loss(labels, probabilities, labels=[0.0, 1.0])),
        "examples": int(labels.size),
        "distinct_logits": int(np.unique(logits).size),
    }


def evaluate_split(
    model: keras.Model,
    dataset: tf.data.Dataset,
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, Any]:
    """Exact metrics of `model` on the whole `dataset` (`binary_metrics`' keys).

    `strategy`: as for `predict_logits` (multi-worker: `dataset` is this worker's slice).
    """
    return binary_metrics(*predict_logits(model, dataset, strategy))


class ExactValidationMetrics(keras.callbacks.Callback):
    """Exact validation AUC / log loss after every epoch, written into `logs`.

    Sets `logs["val_auc"]` and `logs["val_logloss"]` (NaN when the model predicts NaN/inf, e.g.
    after a NaN loss), so callbacks placed AFTER it in the `callbacks` list can monitor them:

        callbacks = [
            ExactValidationMetrics(valid_ds, history_path=run.epochs_path),
            keras.callbacks.EarlyStopping("val_auc", mode="max", restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(path, monitor="val_auc", mode="max",
                                            save_best_only=True, save_weights_only=True),
        ]

    and logs one line per epoch with absl logging:
    `epoch 2/10: loss 0.45123, val_auc 0.80114, val_logloss 0.44712, 312.4 s`
    (seconds from epoch start to the end of validation).

    Args:
        validation_data: yields (feature_ids [B, F], label [B, 1]); iterated once per epoch.
        strategy: the distribution strategy (multi-worker: `validation_data` is this worker's
            slice and the predictions are gathered; see `predict_logits`).
        history_path: optional JSON file keeping one record per finished epoch
            ({"epoch" (1-based), "loss", "val_auc", "val_logloss", "seconds"}; NaN stored as
            null). It is read here, so after a BackupAndRestore resume `records` and `best`
            cover the epochs of the interrupted process too (already before `fit`, e.g. for
            ModelCheckpoint's `initial_value_threshold`); finishing epoch k first drops any
            record of epoch >= k.

    Attributes:
        records: the per-epoch records, oldest first.
    """

    def __init__(
        self,
        validation_data: tf.data.Dataset,
        *,
        strategy: tf.distribute.Strategy | None = None,
        history_path: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.validation_data = validation_data
        self.strategy = strategy
        self.history_path = None if history_path is None else os.fspath(history_path)
        self.records: list[dict[str, Any]] = []
        if self.history_path and os.path.isfile(self.history_path):
            with open(self.history_path, encoding="utf-8") as f:
                stored = json.load(f)["epochs"]
            self.records = [{k: _nan_if_none(v) for k, v in r.items()} for r in stored]
        self._epoch_start = 0.0

    @property
    def best(self) -> dict[str, Any] | None:
        """The record with the highest finite val_auc (first on ties), or None."""
        finite = [r for r in self.records if _is_finite(r["val_auc"])]
        return max(finite, key=lambda r: r["val_auc"]) if finite else None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            raise ValueError("ExactValidationMetrics needs the epoch's logs dict to write into.")
        labels, logits = predict_logits(self.model, self.validation_data, self.strategy)
        finite = np.isfinite(logits)
        bad_weights = non_finite_weights(self.model)
        if bad_weights:
            logging.warning(
                "epoch %d: %s hold NaN or infinite values; val_auc and val_logloss are NaN "
                "for this epoch, so it is never kept as the best.", epoch + 1,
                ", ".join(bad_weights[:3]) + (" ..." if len(bad_weights) > 3 else ""),
            )
            auc = logloss = math.nan
        elif finite.all():
            metrics = binary_metrics(labels, logits)
            auc, logloss = metrics["auc"], metrics["logloss"]
        else:
            logging.warning(
                "epoch %d: %d of %d validation predictions are NaN or infinite; val_auc and "
                "val_logloss are NaN for this epoch.",
                epoch + 1,
                int(np.count_nonzero(~finite)),
                finite.size,
            )
            auc = logloss = math.nan
        logs["val_auc"] = auc
        logs["val_logloss"] = logloss
        record = {
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", math.nan)),
            "val_auc": auc,
            "val_logloss": logloss,
            "seconds": time.perf_counter() - self._epoch_start,
        }
        self.records = [r for r in self.records if r["epoch"] < record["epoch"]] + [record]
        if self.history_path:
            write_json_atomic(
                self.history_path,
                {"epochs": [{k: _none_if_nan(v) for k, v in r.items()} for r in self.records]},
            )
        logging.info(
            "epoch %d/%s: loss %.5f, val_auc %.5f, val_logloss %.5f, %.1f s",
            record["epoch"],
            self.params.get("epochs", "?"),
            record["loss"],
            auc,
            logloss,
            record["seconds"],
        )


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """`keras.callbacks.TerminateOnNaN` (graceful stop) that records where the loss went bad.

    After `fit`, `stopped_at` is (epoch (1-based), batch) or None, and `message` says what
    happened, for a script to log before exiting non-zero.
    """

    def __init__(self) -> None:
        super().__init__(raise_error=False)
        self.stopped_at: tuple[int, int] | None = None
        self._epoch = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.stopped_at = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if self.stopped_at is None and loss is not None and not _is_finite(loss):
            self.stopped_at = (self._epoch + 1, batch)
        super().on_batch_end(batch, logs)

    @property
    def message(self) -> str:
        """One line for the log; empty when training was not stopped."""
        if self.stopped_at is None:
            return ""
        epoch, batch = self.stopped_at
        return (
            f"Training stopped: the loss became NaN or infinite in epoch {epoch}, batch {batch}. "
            "The best checkpoint so far is kept. Lower the learning rates (or add L2) and run "
            "again in a new run directory (or with --overwrite)."
        )


def non_finite_weights(model: keras.Model) -> list[str]:
    """Paths of the model's weights that hold a NaN or an infinity (none: [])."""
    return [
        w.path for w in model.weights
        if w.dtype.startswith("float") and not bool(tf.reduce_all(tf.math.is_finite(w.value)))
    ]


def _is_finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _nan_if_none(value: Any) -> Any:
    return math.nan if value is None else value


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value

