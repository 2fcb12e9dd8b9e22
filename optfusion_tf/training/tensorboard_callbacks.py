"""TensorBoard summaries of the fusion search that keras.callbacks.TensorBoard does not write.

`ArchitectureSummaries(log_dir)` writes into `<log_dir>/architecture/`, beside the `train/` and
`validation/` runs of `keras.callbacks.TensorBoard(log_dir)`, once per epoch with
step = epoch (0-based, the step Keras uses for its `epoch_*` scalars):

    alpha                     histogram of the connection logits
    alpha/connected           number of edges with alpha > 0
    alpha/connection_matrix   image: alpha, rows dst, cols src, disallowed edges grey
    beta/<node>/<op>          softmax(beta) of every fusing node, e.g. beta/S1/add
    architecture              image: the DAG with chosen edges and operations (architecture_plot)
    lr/embedding, lr/network, lr/architecture
                              current learning rates of the model's optimizer groups, if present
    operation_scale/<node>/<op>, operation_zeros/<node>/<op>
                              mean |output| and share of exact zeros of every operation of every
                              softmax(beta) mixture, on `probe_ids` (a batch of validation rows),
                              before any --operation_norm: whether beta compares like with like
    val_auc, val_logloss      from the epoch logs (place the callback after ExactValidationMetrics)
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.architecture.validation import OPERATIONS, ArchitectureSpecError
from optfusion_tf.analysis.architecture_plot import (
    architecture_image,
    connection_matrix_image,
    softmax,
)

RUN_NAME = "architecture"
OPTIMIZER_GROUPS = (
    ("embedding_optimizer", "lr/embedding"),
    ("network_optimizer", "lr/network"),
    ("architecture_optimizer", "lr/architecture"),
)
LOGGED_METRICS = ("val_auc", "val_logloss")


class ArchitectureSummaries(keras.callbacks.Callback):
    """Per-epoch alpha / beta / architecture-picture / learning-rate / exact-metric summaries.

    The architecture is `model.current_arch()` when the model has it (search), else the fixed
    `arch` given here (re-train). Architecture summaries are written only when it differs from the
    last one written: every epoch during a search, once for a fixed architecture.

    Args:
        log_dir: the same directory given to keras.callbacks.TensorBoard; this callback writes to
            `<log_dir>/architecture`.
        arch: fixed architecture for models without `current_arch()`; optional.
        probe_ids: optional int [batch, F] feature ids for the operation scales (models with
            `operation_scales`, i.e. OptFusionModel; nothing is written without mixtures).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        arch: ArchitectureSpec | None = None,
        probe_ids: Any = None,
    ) -> None:
        super().__init__()
        self.log_dir = os.path.join(os.fspath(log_dir), RUN_NAME)
        self.arch = arch
        self.probe_ids = probe_ids
        self._writer: tf.summary.SummaryWriter | None = None
        self._last_arch: ArchitectureSpec | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._writer = tf.summary.create_file_writer(self.log_dir)
        self._last_arch = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        current_arch = getattr(self.model, "current_arch", None)
        try:
            arch = current_arch() if callable(current_arch) else self.arch
        except ArchitectureSpecError as err:  # NaN alpha / beta: the NaN stop reports it
            logging.warning("epoch %d: no architecture summary (%s)", epoch + 1, err)
            arch = None
        with self._writer.as_default(step=epoch):
            if arch is not None and arch != self._last_arch:
                write_architecture_summaries(arch)
                self._last_arch = arch
            for attribute, tag in OPTIMIZER_GROUPS:
                optimizer = getattr(self.model, attribute, None)
                if isinstance(optimizer, keras.optimizers.Optimizer):
                    learning_rate = keras.ops.convert_to_numpy(optimizer.learning_rate)
                    tf.summary.scalar(tag, float(learning_rate))
            for key in LOGGED_METRICS:
                if key in logs:
                    tf.summary.scalar(key, float(logs[key]))
            scales = getattr(self.model, "operation_scales", None)
            if self.probe_ids is not None and callable(scales):
                for node, by_operation in scales(self.probe_ids).items():
                    for op, (mean_abs, zeros) in by_operation.items():
                        tf.summary.scalar(f"operation_scale/{node}/{op}", mean_abs)
                        tf.summary.scalar(f"operation_zeros/{node}/{op}", zeros)
        self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_architecture_summaries(arch: ArchitectureSpec) -> None:
    """alpha, alpha/connected, alpha/connection_matrix, beta/<node>/<op>, architecture.

    Writes into the default summary writer at its default step.
    """
    alpha = np.array(list(arch.alpha.values()), dtype=np.float32)
    tf.summary.histogram("alpha", alpha)
    tf.summary.scalar("alpha/connected", int(np.count_nonzero(alpha > 0)))
    tf.summary.image("alpha/connection_matrix", connection_matrix_image(arch))
    for node, logits in arch.beta.items():
        for op, probability in zip(OPERATIONS, softmax(tuple(logits))):
            tf.summary.scalar(f"beta/{node}/{op}", probability)
    tf.summary.image("architecture", architecture_image(arch))
