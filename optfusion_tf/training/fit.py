"""One model.fit of a run (a phase): its optimizers, its batches, its callbacks and its resume.

`fit_phase` trains a phase with early stopping on exact validation AUC, resumes it from its
backup after a kill, and leaves the best epoch's weights loaded and saved (model.keras);
`compile_for_training` gives a model the three optimizer groups of a config;
`training_batches` is the training split as the fit reads it, with or without a strategy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
from typing import Any

import keras
from absl import logging

from optfusion_tf.data.reader import make_dataset
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.data.vocabulary import batch_coverage
from optfusion_tf.distribute.distribution import Distribution
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.optimizers.choices import AUTO
from optfusion_tf.optimizers.lazy_adam import (
    DENSE_ADAM_MIN_COVERAGE,
    make_embedding_optimizer,
    resolve_embedding_optimizer,
)
from optfusion_tf.optimizers.schedules import epoch_decayed_rate, lowest_rate_divisor
from optfusion_tf.training.checkpoints import METADATA as BACKUP_METADATA
from optfusion_tf.training.checkpoints import AtomicBestWeights, ResumeBackup, log_repair
from optfusion_tf.training.config import MODEL_FILE, ExperimentError, TrainingConfig
from optfusion_tf.training.evaluation import ExactValidationMetrics, StopOnNaN
from optfusion_tf.training.plateau import ValidationPlateau, effective_patience
from optfusion_tf.training.run_dir import RunDir
from optfusion_tf.training.tensorboard_callbacks import ArchitectureSummaries

EVAL_BATCH_SIZE = 16384
# Validation rows on which the per-operation output scales are logged every epoch.
PROBE_ROWS = 4096


@dataclasses.dataclass(frozen=True)
class Phase:
    """One model.fit of a run: its model, where it writes, and how to name it in logs.

    `run` holds the phase's checkpoints, epochs.json and TensorBoard logs (the run directory
    itself, or a sub-directory per phase of a sequential search); its resume state lives in
    `<top run>/backup/<name>/` and, once the phase has finished, `<top run>/backup/<name>.done`:
    backup/ stays non-empty until the run is complete, so the same command resumes it.
    """

    name: str
    model: OptFusionModel
    run: RunDir
    top: RunDir
    dist: Distribution

    @property
    def backup_dir(self) -> str:
        return os.path.join(self.top.backup_dir, self.name)

    @property
    def done_marker(self) -> str:
        return os.path.join(self.top.backup_dir, f"{self.name}.done")


def fit_phase(config: TrainingConfig, stats: DatasetStats, phase: Phase) -> tuple[OptFusionModel, int]:
    """Trains `phase.model` with early stopping on exact validation AUC; returns it with the
    best epoch's weights loaded, and that epoch (1-based). Raises ExperimentError if the loss
    became NaN.

    A phase that finished in an earlier process (its done marker exists) is not trained again:
    its best weights are loaded.
    """
    model, run, dist = phase.model, phase.run, phase.dist
    valid = make_dataset(config.dataset_dir, "validation", EVAL_BATCH_SIZE, shard=dist.shard)
    metrics = ExactValidationMetrics(valid, strategy=dist.strategy, history_path=run.epochs_path)
    if os.path.isfile(phase.done_marker) and metrics.best is not None:
        logging.info("%s: finished in an earlier process; loading its best weights.", phase.name)
        model.build((None, stats.num_fields))
        model.load_weights(run.best_weights_path)
        return model, int(metrics.best["epoch"])
    os.makedirs(run.checkpoints_dir, exist_ok=True)
    log_repair(phase.backup_dir)  # a kill while a backup was written: the previous one
    finished_epochs = _backed_up_epochs(phase.backup_dir)
    steps = epoch_steps(stats, config.batch_size)
    train = training_batches(config, dist, steps, first_pass=finished_epochs)
    patience = stop_patience(config, steps)
    nan_guard = StopOnNaN()
    best_so_far = metrics.best
    plateau = ValidationPlateau(
        lambda: metrics.records, monitor="val_auc", patience=patience,
        factor=config.plateau_lr_factor, min_lr=config.min_lr,
    )
    callbacks = [
        nan_guard,
        metrics,  # writes val_auc / val_logloss into the logs the callbacks below read
        plateau,
        AtomicBestWeights(
            run.best_weights_path, monitor="val_auc",
            initial_value_threshold=None if best_so_far is None else best_so_far["val_auc"],
        ),
        keras.callbacks.TensorBoard(run.tensorboard_dir, histogram_freq=0),
        ArchitectureSummaries(run.tensorboard_dir, probe_ids=next(iter(valid))[0][:PROBE_ROWS]),
        ResumeBackup(phase.backup_dir),  # last: a backup means the epoch is done
    ]
    logging.info(
        "%s: at most %d epochs of %d steps (batch %d) on %s; early stop after %d epochs without "
        "validation-AUC gain (--patience=%d, --patience_steps=%d at the full rate)", phase.name,
        config.epochs,
        steps, config.batch_size, config.dataset_dir, patience, config.patience,
        config.patience_steps,
    )
    if finished_epochs >= config.epochs or plateau.replay(finished_epochs):
        # The fit ended in an earlier process, killed before the phase's results were written
        # (the backup is kept until they are): write them without training again.
        logging.info("%s: training ended in an earlier process after epoch %d; writing its "
                     "results.", phase.name, finished_epochs)
        model.build((None, stats.num_fields))
        compile_for_training(model, config, stats)
    else:
        compile_for_training(model, config, stats)
        # Keras' progress bar on a terminal; in a file (CI, `> log`) every refresh would be
        # written, so there the epoch line ExactValidationMetrics logs is the progress.
        model.fit(
            train, epochs=config.epochs, steps_per_epoch=steps, callbacks=callbacks, shuffle=False,
            verbose=1 if sys.stdout.isatty() else 0,
        )
    if nan_guard.stopped_at is not None:
        # Keras backed up the NaN epoch as finished (on_epoch_end runs after a stop): the same
        # command must start the phase anew, not resume from NaN weights.
        shutil.rmtree(phase.backup_dir, ignore_errors=True)
        kept = (
            f"the best checkpoint so far stays at {run.best_weights_path}"
            if os.path.isfile(run.best_weights_path)
            else "no epoch finished with finite weights, so there is no checkpoint"
        )
        raise ExperimentError(f"{phase.name}: {nan_guard.message}; {kept}.")
    if not os.path.isfile(run.best_weights_path) or metrics.best is None:
        raise ExperimentError(f"{phase.name}: no epoch produced a finite validation AUC.")
    model.load_weights(run.best_weights_path)
    # Every worker saves (the chief into the run directory): under multi_worker, reading some
    # variables for saving is a collective that all workers must join.
    model.save(os.path.join(run.path, MODEL_FILE))
    with open(phase.done_marker, "w", encoding="utf-8") as f:
        f.write(f"best epoch {metrics.best['epoch']}\n")
    return model, int(metrics.best["epoch"])


def compile_for_training(
    model: OptFusionModel, config: TrainingConfig, stats: DatasetStats
) -> None:
    """The three optimizer groups and coupled L2 of config (call under the strategy's scope);
    `--embedding_optimizer=auto` is resolved from the fraction of the table a batch looks up,
    and the network's rate decays per `--lr_nn_decay_epochs` (0: constant) down to
    `--lr_nn_decay_limit`."""
    embedding_optimizer = config.embedding_optimizer
    if embedding_optimizer == AUTO:
        coverage = batch_coverage(config.dataset_dir, stats, config.batch_size)
        embedding_optimizer = resolve_embedding_optimizer(AUTO, coverage)
        logging.info("embedding optimizer: %s (auto: a batch of %d rows looks up %.0f%% of the "
                     "table's %s rows on average; dense adam from %.0f%%)", embedding_optimizer,
                     config.batch_size, 100 * coverage, f"{stats.feature_num:,}",
                     100 * DENSE_ADAM_MIN_COVERAGE)
    model.compile(
        embedding_optimizer=make_embedding_optimizer(embedding_optimizer, config.lr_emb),
        network_optimizer=keras.optimizers.Adam(epoch_decayed_rate(
            config.lr_nn, config.lr_nn_decay_epochs, epoch_steps(stats, config.batch_size),
            config.lr_nn_decay_limit,
        )),
        architecture_optimizer=(
            keras.optimizers.Adam(config.arch_lr) if model.architecture_variables else None
        ),
        l2_emb=config.l2_emb,
        l2_nn=config.l2_nn,
        clip_global_norm=config.clip_global_norm,
    )


def _backed_up_epochs(backup_dir: str) -> int:
    """The epochs BackupAndRestore has saved in `backup_dir` (0 when there is no backup)."""
    path = os.path.join(backup_dir, BACKUP_METADATA)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


def stop_patience(config: TrainingConfig, steps: int) -> int:
    """Epochs without a validation-AUC gain before a run of `config` stops, at `steps` optimizer
    steps an epoch: `effective_patience`, `--patience_steps` counted at the full rate (times
    the divisor of the network's lowest rate)."""
    return effective_patience(
        config.patience, config.patience_steps, steps,
        lowest_rate_divisor(config.lr_nn_decay_epochs, config.lr_nn_decay_limit),
    )


def epoch_steps(stats: DatasetStats, batch_size: int) -> int:
    """Optimizer steps of one epoch: one pass over the training split in global batches."""
    return math.ceil(stats.rows["train"] / batch_size)


def training_batches(
    config: TrainingConfig, dist: Distribution, steps: int, first_pass: int = 0
) -> Any:
    """The training split, repeated from pass `first_pass` on (one pass an epoch, each in its
    own seeded order): global batches of config.batch_size, or, under a strategy, per-replica
    batches from each worker's slice of the split.

    Under a strategy every input pipeline splits each pass of its slice into exactly
    steps x (its replicas) batches of near-equal size (`batches_per_pass`), about
    batch_size / replicas rows each: batches of exactly batch_size / replicas would give a
    pipeline ceil(rows of its slice / (batch_size / replicas)) batches a pass, which need not
    be a whole number of steps, and epochs would then straddle passes (a resumed run would read
    another order than an uninterrupted one). `steps`: `epoch_steps` of the split.
    """

    def batches(ctx: Any) -> Any:  # a tf.distribute.InputContext, or None without a strategy
        if ctx is None:
            batch_size, shard, per_pass = config.batch_size, None, None
        else:
            batch_size = ctx.get_per_replica_batch_size(config.batch_size)
            pipelines = ctx.num_input_pipelines
            shard = (ctx.input_pipeline_id, pipelines) if pipelines > 1 else None
            per_pass = steps * (ctx.num_replicas_in_sync // pipelines)
        return make_dataset(
            config.dataset_dir, "train", batch_size, seed=config.seed, repeat=True,
            first_pass=first_pass, shard=shard, shuffle_mode=config.shuffle,
            batches_per_pass=per_pass,
        )

    if dist.strategy is None:
        return batches(None)
    return dist.strategy.distribute_datasets_from_function(batches)
