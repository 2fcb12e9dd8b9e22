"""Early stopping with a learning-rate step on a validation plateau, resumable.

`ValidationPlateau` is FuxiCTR's `checkpoint_and_earlystop` (`fuxictr/pytorch/models/rank_model.py`)
as a Keras callback: after every epoch whose validation AUC does not beat the best so far by
more than `min_delta`, the learning rate of every optimizer group is multiplied by `factor` (not
below `min_lr`), and training stops once `patience` such epochs come in a row; an improvement
resets the count. With `factor=1` it is Keras' `EarlyStopping(mode="max")`.

How many epochs without gain are "a plateau" adapts to the length of an epoch
(`effective_patience`): at least `--patience` epochs, and at least `--patience_steps` optimizer
steps. With 17 steps an epoch (Frappe at batch 4096) a run sits on a validation plateau for
several epochs, its AUC moving by +-0.0004, before the interactions are learned; DeepCTR's DCN
there needs 6 epochs without a strictly higher AUC to reach its second phase (test 0.9521 for
seed 2, where patience 2 stops it at epoch 8 with 0.929). With thousands of steps an epoch the
epoch count rules, as before. The extra epochs cost at most `patience_steps` steps, whatever the
size of the data.

Keras' own callbacks do not fit: `ReduceLROnPlateau` changes `model.optimizer.learning_rate`,
which a `MultiOptimizer` (our three groups) does not have, and both it and `EarlyStopping` start
again from nothing after a `BackupAndRestore` resume, so a resumed run trained at least one epoch
more than an uninterrupted one. Here the state (best value, epochs without improvement) is
replayed, at the first epoch of a fit, from the history of the epochs that finished before it
(`ExactValidationMetrics.records`, kept in epochs.json); the learning rates themselves are
optimizer variables and come back with the backup.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import keras
from absl import logging

from optfusion_tf.architecture.checks import check_int
from optfusion_tf.models.training_step import group_optimizers


class ValidationPlateau(keras.callbacks.Callback):
    """Stops training, and steps the learning rates down, on a plateau of a validation metric.

    Place it after the callback that writes `monitor` into the epoch logs
    (`ExactValidationMetrics`) and before `BackupAndRestore`, so that a backup holds the
    learning rates this callback set.

    Args:
        history: returns the records of the finished epochs (dicts with "epoch", 1-based, and
            `monitor`), e.g. `lambda: metrics.records`; read once, at the first epoch of a fit.
        monitor: the metric to maximize (NaN counts as no improvement).
        patience: epochs without improvement, in a row, before stopping (0: stop at the first).
        factor: learning-rate multiplier on every epoch without improvement, in (0, 1].
        min_lr: the learning rates are not stepped below this.
        min_delta: an improvement must beat the best by more than this.

    Attributes:
        best: the best monitored value so far (None before the first finite one).
        wait: epochs without improvement since the best.
        stopped_epoch: the 1-based epoch after which training stopped, or 0.
    """

    def __init__(
        self,
        history: Callable[[], Sequence[dict[str, Any]]],
        *,
        monitor: str = "val_auc",
        patience: int = 2,
        factor: float = 1.0,
        min_lr: float = 0.0,
        min_delta: float = 0.0,
    ) -> None:
        super().__init__()
        check_int("patience", patience, 0)
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"`factor` must be in (0, 1]. Received: factor={factor!r}")
        if not min_lr >= 0.0 or not min_delta >= 0.0:
            raise ValueError(
                f"`min_lr` and `min_delta` must be >= 0. Received: min_lr={min_lr!r}, "
                f"min_delta={min_delta!r}"
            )
        self.history = history
        self.monitor = monitor
        self.patience = patience
        self.factor = float(factor)
        self.min_lr = float(min_lr)
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.wait = 0
        self.stopped_epoch = 0
        self._replayed = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best, self.wait, self.stopped_epoch, self._replayed = None, 0, 0, False

    def replay(self, finished_epochs: int) -> bool:
        """Sets the state from the history of the first `finished_epochs` epochs (records of
        later epochs belong to an epoch that will be trained again) and returns whether those
        epochs already end training: the last of them was the `patience`-th without a gain
        (0 and 1 both stop at the first), so a fit that starts after them must not train."""
        self.best, self.wait = None, 0
        for record in self.history():
            if record["epoch"] <= finished_epochs:
                self._update(record.get(self.monitor))
        self._replayed = True
        return finished_epochs > 0 and self.wait >= max(self.patience, 1)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._replayed:
            return
        # `epoch` (0-based) is the number of epochs finished before this fit (BackupAndRestore
        # has restored them by now).
        self.replay(epoch)
        if epoch:
            logging.info(
                "Resumed early stopping at epoch %d: best %s %s, %d epoch(s) without improvement.",
                epoch, self.monitor, "none" if self.best is None else f"{self.best:.5f}", self.wait,
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._update((logs or {}).get(self.monitor)):
            return
        if self.factor < 1.0:
            for optimizer in group_optimizers(self.model):
                old = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
                new = max(old * self.factor, self.min_lr)
                if new < old:
                    optimizer.learning_rate.assign(new)
                    logging.info(
                        "epoch %d: no %s gain; learning rate of %s %.3g -> %.3g",
                        epoch + 1, self.monitor, optimizer.name, old, new,
                    )
        if self.wait > self.patience - 1:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
            logging.info(
                "epoch %d: %d epoch(s) without %s gain: early stop (best %.5f).",
                epoch + 1, self.wait, self.monitor, math.nan if self.best is None else self.best,
            )

    def _update(self, value: Any) -> bool:
        """Counts one epoch with this monitored value; returns whether it improved."""
        value = None if value is None else float(value)
        if value is not None and math.isfinite(value) and (
            self.best is None or value > self.best + self.min_delta
        ):
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False


def effective_patience(
    patience: int, patience_steps: int, steps_per_epoch: int, rate_divisor: int = 1
) -> int:
    """Epochs without a validation gain before early stopping: `patience` epochs, or more when
    epochs are short, so that a run gets at least `patience_steps` optimizer steps at the full
    learning rate to beat its best: max(patience, ceil(patience_steps x rate_divisor /
    steps_per_epoch)). A step at a third of the rate moves the weights about a third as far,
    so with the network's rate at lr / 3 (`rate_divisor` 3) a plateau gets three times the steps.

    Args:
        patience: the least number of epochs (>= 0).
        patience_steps: the least number of full-rate steps (>= 0; 0: `patience` alone).
        steps_per_epoch: optimizer steps of one epoch (>= 1).
        rate_divisor: the learning rate's divisor at its lowest (>= 1;
            optimizers.schedules.lowest_rate_divisor).
    """
    for name, value, low in (("patience", patience, 0), ("patience_steps", patience_steps, 0),
                             ("steps_per_epoch", steps_per_epoch, 1),
                             ("rate_divisor", rate_divisor, 1)):
        check_int(name, value, low)
    return max(patience, -(-patience_steps * rate_divisor // steps_per_epoch))

