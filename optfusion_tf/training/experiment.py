"""The two-stage workflow (paper Alg. 1): one search or re-train run, from flags to run directory.

`run_search` trains the supernet (alpha, beta, weights in one step; or the sequential variant)
and writes arch.json; `run_retrain` trains a fixed architecture (hard / soft / one operation, or
a preset). Both write the run directory of DESIGN.md section 7 (see optfusion_tf/training/run_dir.py):
flags.txt, epochs.json, metrics.json, checkpoints/, backup/, tensorboard/, arch.json,
architecture.png and model.keras (the best epoch's model, for export_savedmodel.py).

Every input is validated before anything is written: a bad dataset dir, arch.json or flag
value raises `ExperimentError` and leaves no run directory behind.

`config.strategy` ("none" | "mirrored" | "multi_worker", optfusion_tf/distribute/distribution.py) trains
data-parallel: the model and optimizers are created under the strategy's scope, each worker
reads its slice of every split (training in per-replica batches of batch_size / replicas),
validation and test predictions are gathered so that every worker computes the same exact AUC,
and only the chief writes the run directory (the other workers write a scratch copy that is
deleted at the end).
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import math
import os
import shutil
import sys
import time
import warnings
from typing import Any, Callable

import keras
import tensorflow as tf
from absl import logging
from scipy.special import expit

from optfusion_tf.architecture.arch_spec import MIXTURE, ArchSpec
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import ArchSpecError
from optfusion_tf.analysis.architecture_plot import draw_architecture, figure_to_array
from optfusion_tf.analysis.calibration import calibration, draw_reliability_diagram
from optfusion_tf.training.checkpoints import METADATA as BACKUP_METADATA
from optfusion_tf.training.checkpoints import AtomicBestWeights, ResumeBackup, log_repair
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.reader import make_dataset
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.data.vocabulary import batch_coverage
from optfusion_tf.distribute.distribution import (
    DEFAULT_CLUSTER_WAIT_S,
    Distribution,
    DistributionError,
    broadcast_from_chief,
    make_strategy,
    sum_over_workers,
)
from optfusion_tf.training.evaluation import (
    ExactValidationMetrics,
    StopOnNaN,
    binary_metrics,
    evaluate_split,
    predict_logits,
)
from optfusion_tf.optimizers.lazy_adam import (
    DENSE_ADAM_MIN_COVERAGE,
    make_embedding_optimizer,
    resolve_embedding_optimizer,
)
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.training.plateau import ValidationPlateau, effective_patience
from optfusion_tf.training.run_dir import (
    RunDir,
    RunDirError,
    open_run_dir,
    open_worker_run_dir,
    set_seed,
)
from optfusion_tf.training.tensorboard_callbacks import ArchitectureSummaries
from optfusion_tf.training.tracking import (
    RESULTS_FILE,
    ResultsTableError,
    append_result,
    hparam_values,
    write_hparams,
)

MODEL_FILE = "model.keras"
EVAL_BATCH_SIZE = 16384
# Validation rows on which the per-operation output scales are logged every epoch.
PROBE_ROWS = 4096


class ExperimentError(RuntimeError):
    """A run cannot start or did not finish; the message says why."""


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The flags of search.py / retrain.py (optfusion_tf/cli/training_flags.py)."""

    dataset_dir: str
    run_dir: str
    emb_dim: int = 16
    n: int = 3
    shallow: str = "crossnet"
    dropout: float = 0.0
    batch_norm: bool = False
    batch_size: int = 4096
    epochs: int = 100
    patience: int = 2
    patience_steps: int = 128
    plateau_lr_factor: float = 1.0
    min_lr: float = 1e-6
    lr_emb: float = 1e-3
    lr_nn: float = 1e-3
    l2_emb: float = 1e-5
    l2_nn: float = 1e-5
    embedding_optimizer: str = "auto"
    embedding_init_std: float = 1e-4
    kernel_init: str = "glorot_normal"
    clip_global_norm: float = 10.0
    shuffle: str = "examples"
    operation_norm: str = "none"
    seed: int = 2024
    overwrite: bool = False
    strategy: str = "none"
    cluster_wait_s: float = DEFAULT_CLUSTER_WAIT_S
    # search only
    arch_lr: float = 0.1
    init_constant: float = 0.5
    selection: str = "one_shot"
    # retrain only
    arch: str | None = None
    fusion: str = "hard"
    preset: str | None = None
    init_from_search: bool = False


@dataclasses.dataclass(frozen=True)
class _Phase:
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


SEARCH_ONLY = ("arch_lr", "init_constant", "selection")
RETRAIN_ONLY = ("arch", "fusion", "preset", "init_from_search")


def config_flag_lines(config: TrainingConfig, stage: str) -> list[str]:
    """flags.txt lines of a run started from Python (the CLIs write the parsed flags instead):
    every flag of `stage` ("search" | "retrain") that is set, so that
    `python <stage>.py --flagfile=<run>/flags.txt` repeats the run."""
    skipped = {"overwrite", "cluster_wait_s", *(RETRAIN_ONLY if stage == "search" else SEARCH_ONLY)}
    lines = []
    for field in sorted(dataclasses.fields(config), key=lambda f: f.name):
        value = getattr(config, field.name)
        if field.name in skipped or value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{field.name}" if value else f"--no{field.name}")
        else:
            lines.append(f"--{field.name}={value}")
    return lines


def load_dataset_stats(dataset_dir: str) -> DatasetStats:
    """stats.json of a complete dataset directory, or ExperimentError saying what is wrong."""
    if not dataset_dir:
        raise ExperimentError("--dataset_dir is required (a directory written by dataprocess/*2TF.py).")
    try:
        stats = DatasetStats.load(dataset_dir)
        for split in ("train", "validation", "test"):
            if stats.rows.get(split, 0) < 1:
                raise DataError(f"{dataset_dir}: the {split} split is empty; nothing to train or evaluate on")
        one_class = stats.one_class_splits()
        if one_class:
            split, label = next(iter(one_class.items()))
            raise DataError(
                f"{dataset_dir}: every one of the {stats.rows[split]:,} {split} rows has label "
                f"{label}; AUC needs both classes (another --seed or --ratio in preprocessing, "
                "or more data)"
            )
        problems = stats.shard_problems(dataset_dir)
        if problems:
            raise DataError(
                f"{dataset_dir}: the shards do not match stats.json: {'; '.join(problems[:5])}"
                " (copy the dataset again or re-run preprocessing)"
            )
    except DataError as err:
        raise ExperimentError(f"--dataset_dir: {err}") from None
    return stats


def retrain_arch(config: TrainingConfig, stats: DatasetStats, given: set[str]) -> ArchSpec:
    """The architecture to re-train: --arch's arch.json or --preset, checked against the run.

    `given` names the flags the user set explicitly; --n/--shallow/--emb_dim must then agree
    with the arch (otherwise they are taken from it).
    """
    if (config.arch is None) == (config.preset is None):
        raise ExperimentError("retrain.py needs exactly one of --arch=<search run>/arch.json and --preset.")
    if config.preset is not None:
        if config.init_from_search:
            raise ExperimentError("--init_from_search needs --arch (a preset has no search run).")
        return preset_arch(
            config.preset, n=config.n, shallow=config.shallow, dataset=stats.dataset,
            num_fields=stats.num_fields, feature_num=stats.feature_num, emb_dim=config.emb_dim,
            operation_norm=config.operation_norm,
        )
    try:
        arch = ArchSpec.load(config.arch)
        arch.check_compatible(
            dataset=stats.dataset, num_fields=stats.num_fields, feature_num=stats.feature_num
        )
        for key in ("n", "shallow", "emb_dim", "operation_norm"):
            if key in given and getattr(config, key) != getattr(arch, key):
                raise ArchSpecError(
                    f"--{key}={getattr(config, key)!r} does not match the arch, which was searched "
                    f"with {key}={getattr(arch, key)!r}; drop --{key} or search again."
                )
        arch.check_trainable(config.fusion)
    except ArchSpecError as err:
        raise ExperimentError(f"--arch: {err}") from None
    if config.init_from_search:
        search = RunDir(os.path.dirname(os.path.abspath(config.arch)))
        for path in (_search_model_path(config.arch), search.metrics_path):  # metrics.json: complete
            if not os.path.isfile(path):
                raise ExperimentError(
                    f"--init_from_search: {path} not found (the search run that wrote --arch "
                    "did not finish)."
                )
    return arch


def run_search(config: TrainingConfig, flag_lines: list[str]) -> dict[str, Any]:
    """Stage 1: searches connections and operations; writes arch.json. Returns metrics.json."""
    return _distributed(
        config,
        lambda: (load_dataset_stats(config.dataset_dir), None),
        lambda dist, stats, _: _search(config, flag_lines, stats, dist),
    )


def _search(
    config: TrainingConfig, flag_lines: list[str], stats: DatasetStats, dist: Distribution
) -> dict[str, Any]:
    run = _open_run(config, flag_lines, dist)
    started = time.perf_counter()
    earlier = earlier_seconds(run)
    build = dict(
        feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=config.emb_dim,
        n=config.n, shallow=config.shallow, dropout=config.dropout,
        batch_norm=config.batch_norm, init_constant=config.init_constant, seed=config.seed,
        dataset=stats.dataset, operation_norm=config.operation_norm,
        embedding_init_std=config.embedding_init_std, kernel_init=config.kernel_init,
    )
    if config.selection == "one_shot":
        model, best_epoch = _fit(
            config, stats,
            _Phase("search", OptFusionModel(fusion="search", **build), run, run, dist),
        )
    else:
        # Sequential selection (paper Table 5): connections under a fixed ADD, then the
        # operations with those connections frozen. Each phase keeps its own checkpoints.
        first, _ = _fit(
            config, stats,
            _Phase("connections", OptFusionModel(fusion="search_connections", **build),
                   RunDir(os.path.join(run.path, "phase1_connections")), run, dist),
        )
        second = OptFusionModel(fusion="search_operations", arch=first.current_arch(), **build)
        second.load_search_weights(first)
        model, best_epoch = _fit(
            config, stats,
            _Phase("operations", second, RunDir(os.path.join(run.path, "phase2_operations")),
                   run, dist),
        )
    arch = model.current_arch()
    arch.save(run.arch_path)
    draw_architecture(arch, path=run.architecture_png, title=f"searched on {stats.dataset}")
    return _finish(
        config, stats, run, model, (started, earlier), best_epoch, dist, stage="search", arch=arch
    )


def run_retrain(config: TrainingConfig, flag_lines: list[str], given: set[str]) -> dict[str, Any]:
    """Stage 2: re-trains a fixed architecture. Returns metrics.json."""

    def validate() -> tuple[DatasetStats, ArchSpec]:
        stats = load_dataset_stats(config.dataset_dir)
        return stats, retrain_arch(config, stats, given)

    return _distributed(
        config, validate, lambda dist, stats, arch: _retrain(config, flag_lines, stats, arch, dist)
    )


def _retrain(
    config: TrainingConfig,
    flag_lines: list[str],
    stats: DatasetStats,
    arch: ArchSpec,
    dist: Distribution,
) -> dict[str, Any]:
    if config.arch:
        flag_lines = arch_flag_lines(flag_lines, arch)
    run = _open_run(config, flag_lines, dist)
    started = time.perf_counter()
    earlier = earlier_seconds(run)
    fusion = "hard" if config.preset is not None else config.fusion
    model = OptFusionModel(
        feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=arch.emb_dim,
        n=arch.n, shallow=arch.shallow, fusion=fusion, arch=arch, dropout=config.dropout,
        batch_norm=config.batch_norm, seed=config.seed, dataset=stats.dataset,
        operation_norm=arch.operation_norm, embedding_init_std=config.embedding_init_std,
        kernel_init=config.kernel_init,
    )
    _explain_fusions_without_gradient(arch, fusion)
    warnings = arch.numerical_warnings(fusion)
    for warning in warnings:
        logging.warning("%s", warning)
    if config.init_from_search and not run.resuming:
        model.load_search_weights(keras.saving.load_model(_search_model_path(config.arch)))
    arch.save(run.arch_path)
    draw_architecture(arch, path=run.architecture_png, title=f"{fusion} re-train on {stats.dataset}")
    model, best_epoch = _fit(config, stats, _Phase("retrain", model, run, run, dist))
    return _finish(
        config, stats, run, model, (started, earlier), best_epoch, dist, stage="retrain", arch=arch,
        fusion=fusion, warnings=warnings,
    )


def _explain_fusions_without_gradient(arch: ArchSpec, fusion: str) -> None:
    """Says once, in our words, which fusion weights get no gradient, and hides Keras' "Gradients
    do not exist" warning for those weights only (it names them at every model's first step).

    Two cases: ATT over a single input (softmax of one score is 1, so its scores do not matter)
    and a kept node with no connected input (a constant 0 goes into its fusion).
    """
    operations = arch.operations_for(fusion)
    connections = arch.connections
    single_att = [v for v in arch.live_nodes if operations.get(v) in ("att", MIXTURE)
                  and len(connections.get(v, ())) == 1]
    unfed = [v for v in arch.unfed_nodes if v in operations]
    if not single_att and not unfed:
        return
    reasons = []
    if single_att:
        reasons.append(f"{', '.join(single_att)}: ATT over a single input (its softmax is 1 "
                       "whatever the scores)")
    if unfed:
        reasons.append(f"{', '.join(unfed)}: no connected input (a constant 0 into the fusion)")
    logging.info("fusion weights that get no gradient and keep their initial values, as "
                 "expected: %s.", "; ".join(reasons))
    for node in single_att + unfed:
        warnings.filterwarnings(
            "ignore", message=rf"Gradients do not exist for variables \[.*fusion_{node}/",
            category=UserWarning,
        )


def constant_model_warning(valid: dict[str, Any]) -> str:
    """A loud line when the best model ranks nothing (validation AUC 0.5 within 1e-6, or one
    distinct logit over the split), e.g. a PROD over many inputs that trained to a constant;
    empty otherwise."""
    if valid["distinct_logits"] > 1 and abs(valid["auc"] - 0.5) > 1e-6:
        return ""
    return (
        f"THE MODEL IS CONSTANT: validation AUC {valid['auc']:.6f} with "
        f"{valid['distinct_logits']:,} distinct logit(s) over {valid['examples']:,} rows; it "
        "learned nothing and should not be exported (see the PROD warnings above, if any, or "
        "lower the learning rates)."
    )


def earlier_seconds(run: RunDir) -> float:
    """Seconds that earlier processes of a resumed run spent on the epochs they finished (the
    epochs.json records under the run directory, phases included); 0 for a new run."""
    if not run.resuming:
        return 0.0
    total = 0.0
    for path in glob.glob(os.path.join(run.path, "**", "epochs.json"), recursive=True):
        with open(path, encoding="utf-8") as f:
            total += sum(float(r.get("seconds") or 0.0) for r in json.load(f).get("epochs", []))
    return total


ARCH_FLAGS = ("emb_dim", "n", "operation_norm", "shallow")


def arch_flag_lines(flag_lines: list[str], arch: ArchSpec) -> list[str]:
    """`flag_lines` of a `--arch` re-train with the values --arch decides (ARCH_FLAGS) taken
    from the arch, so that `retrain.py --flagfile=<run>/flags.txt` agrees with it."""
    def from_arch(line: str) -> str:
        name = line.split("=", 1)[0][2:]
        return f"--{name}={getattr(arch, name)}" if name in ARCH_FLAGS else line

    return [from_arch(line) for line in flag_lines]


def _distributed(
    config: TrainingConfig,
    validate: Callable[[], tuple[DatasetStats, Any]],
    stage: Callable[[Distribution, DatasetStats, Any], dict[str, Any]],
) -> dict[str, Any]:
    """Joins --strategy's cluster, validates the inputs, and runs `stage` under the strategy's
    scope.

    `validate` returns (stats, anything `stage` needs) or raises ExperimentError. Under
    multi_worker the workers then agree: if any of them refused its inputs (a dataset or arch
    missing on its machine), every worker stops with a message instead of waiting for it.
    """
    try:
        dist = make_strategy(config.strategy, cluster_wait_s=config.cluster_wait_s)
    except DistributionError as err:
        raise ExperimentError(str(err)) from None
    error, checked = None, None
    try:
        stats, checked = validate()
        _check_the_split_of_work(config, stats, dist)
    except ExperimentError as err:
        error = err
    _stop_unless_every_worker_succeeded(
        dist, error, "{failed} other worker(s) refused their inputs (see their logs); stopping too."
    )
    with dist.scope():
        return stage(dist, stats, checked)


def _stop_unless_every_worker_succeeded(
    dist: Distribution, error: ExperimentError | None, others_failed: str
) -> None:
    """Raises this worker's `error`, or, if another worker failed, `others_failed` with
    "{failed}" replaced by their number. A collective: every worker calls it, error or not."""
    failed = sum_over_workers(dist.strategy, [error is not None])[0]
    if error is not None:
        raise error
    if failed:
        raise ExperimentError(others_failed.replace("{failed}", str(failed)))


def _check_the_split_of_work(config: TrainingConfig, stats: DatasetStats, dist: Distribution) -> None:
    """The global batch must split evenly over the replicas, the training split over the workers."""
    if config.batch_size % dist.replicas:
        raise ExperimentError(
            f"--batch_size={config.batch_size} is the global batch and must be a multiple of "
            f"the {dist.replicas} replicas of --strategy={config.strategy}."
        )
    workers = dist.shard[1] if dist.shard else 1
    if stats.rows["train"] < workers:
        raise ExperimentError(
            f"--dataset_dir: the train split has {stats.rows['train']} rows, fewer than the "
            f"{workers} workers that each need a slice of it."
        )
    if dist.replicas > 1:
        # training_batches cuts each worker's slice into steps x (its replicas) batches.
        steps = epoch_steps(stats, config.batch_size)
        needed = steps * (dist.replicas // workers)
        smallest = stats.rows["train"] // workers
        if smallest < needed:
            raise ExperimentError(
                f"--batch_size={config.batch_size}: an epoch is {steps} "
                f"steps, and each of the {dist.replicas} replicas needs a row in every step, but "
                f"a worker's slice of the train split has {smallest} rows, fewer than the "
                f"{needed} batches it must make; use a larger --batch_size."
            )


def _open_run(config: TrainingConfig, flag_lines: list[str], dist: Distribution) -> RunDir:
    """The chief opens the run directory (open_run_dir's rules) and tells the other workers
    whether it resumes; they open a scratch copy (open_worker_run_dir). No worker goes on (and
    the chief writes nothing more) until every worker has its directory."""
    error = None
    if dist.role.is_chief:
        try:
            run = open_run_dir(config.run_dir, flag_lines, overwrite=config.overwrite)
        except RunDirError as err:
            broadcast_from_chief(dist, [0, 0])
            raise ExperimentError(f"--run_dir: {err}") from None
        broadcast_from_chief(dist, [1, int(run.resuming)])
    else:
        opened, resuming = broadcast_from_chief(dist, [0, 0])
        if not opened:
            raise ExperimentError(
                f"--run_dir: the chief could not open {config.run_dir}; see the chief's log."
            )
        try:
            run = open_worker_run_dir(config.run_dir, resuming=bool(resuming), worker=dist.role.name)
        except RunDirError as err:
            error = ExperimentError(f"--run_dir: {err}")
    _stop_unless_every_worker_succeeded(
        dist, error, f"--run_dir: {{failed}} worker(s) could not copy {config.run_dir} to resume "
        "it (see their logs): it must be on a filesystem every worker can read.",
    )
    set_seed(config.seed)
    if run.resuming:
        logging.info("Resuming %s from its last finished epoch (backup/).", run.path)
    return run


def _search_model_path(arch_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(arch_path)), MODEL_FILE)


def _fit(config: TrainingConfig, stats: DatasetStats, phase: _Phase) -> tuple[OptFusionModel, int]:
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
    patience = effective_patience(config.patience, config.patience_steps, steps)
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
        "validation-AUC gain (--patience=%d, --patience_steps=%d)", phase.name, config.epochs,
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


def _write_reliability_diagram(run: RunDir, calibrated: dict[str, Any], title: str) -> None:
    """calibration_test.png in the run directory and the same picture in TensorBoard."""
    figure = draw_reliability_diagram(calibrated, title)
    figure.savefig(run.calibration_png)
    writer = tf.summary.create_file_writer(os.path.join(run.tensorboard_dir, "calibration"))
    with writer.as_default():
        tf.summary.image("calibration/test", figure_to_array(figure), step=0)
    writer.close()


def compile_for_training(
    model: OptFusionModel, config: TrainingConfig, stats: DatasetStats
) -> None:
    """The three optimizer groups and coupled L2 of config (call under the strategy's scope);
    `--embedding_optimizer=auto` is resolved from the fraction of the table a batch looks up."""
    embedding_optimizer = config.embedding_optimizer
    if embedding_optimizer == "auto":
        coverage = batch_coverage(config.dataset_dir, stats, config.batch_size)
        embedding_optimizer = resolve_embedding_optimizer("auto", coverage)
        logging.info("embedding optimizer: %s (auto: a batch of %d rows looks up %.0f%% of the "
                     "table's %s rows on average; dense adam from %.0f%%)", embedding_optimizer,
                     config.batch_size, 100 * coverage, f"{stats.feature_num:,}",
                     100 * DENSE_ADAM_MIN_COVERAGE)
    model.compile(
        embedding_optimizer=make_embedding_optimizer(embedding_optimizer, config.lr_emb),
        network_optimizer=keras.optimizers.Adam(config.lr_nn),
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


def _finish(
    config: TrainingConfig,
    stats: DatasetStats,
    run: RunDir,
    model: OptFusionModel,
    timing: tuple[float, float],
    best_epoch: int,
    dist: Distribution,
    **extras: Any,
) -> dict[str, Any]:
    """Exact validation and test metrics of the best epoch -> metrics.json (marks completion).

    `timing`: (this process' start on perf_counter, seconds that earlier processes of a resumed
    run spent, `earlier_seconds`): metrics.json's `seconds` is the whole run's time,
    `seconds_this_process` this process' part.
    """
    started, earlier = timing
    valid = evaluate_split(
        model, make_dataset(config.dataset_dir, "validation", EVAL_BATCH_SIZE, shard=dist.shard),
        dist.strategy,
    )
    labels, logits = predict_logits(
        model, make_dataset(config.dataset_dir, "test", EVAL_BATCH_SIZE, shard=dist.shard),
        dist.strategy,
    )
    test = binary_metrics(labels, logits)
    calibrated = calibration(labels, expit(logits))
    _write_reliability_diagram(run, calibrated, f"test split of {stats.dataset}")
    arch: ArchSpec = extras.pop("arch")
    constant = constant_model_warning(valid)
    if constant:
        logging.warning("%s", constant)
        extras["warnings"] = [*extras.get("warnings", []), constant]
    elapsed = time.perf_counter() - started
    metrics = run.write_metrics(
        valid_auc=valid["auc"],
        valid_logloss=valid["logloss"],
        test_auc=test["auc"],
        test_logloss=test["logloss"],
        test_ece=calibrated["ece"],
        test_mean_predicted=calibrated["mean_predicted"],
        test_observed_rate=calibrated["observed_rate"],
        test_calibration_bins=calibrated["bins"],
        best_epoch=best_epoch,
        seconds=earlier + elapsed,
        seconds_this_process=elapsed,
        dataset=stats.dataset,
        live_nodes=list(arch.live_nodes),
        operations={node: arch.operations[node] for node in arch.live_nodes if node in arch.operations},
        parameters=int(model.count_params()),
        strategy=config.strategy,
        replicas=dist.replicas,
        **extras,
    )
    shutil.rmtree(run.backup_dir, ignore_errors=True)  # complete: nothing left to resume
    if dist.role.is_chief:
        _track(config, run, metrics)
    return metrics


def _track(config: TrainingConfig, run: RunDir, metrics: dict[str, Any]) -> None:
    """The finished run in TensorBoard's HParams dashboard and in <runs parent>/results.csv."""
    name = os.path.basename(os.path.normpath(run.path))
    write_hparams(run.tensorboard_dir, name, hparam_values(config), metrics)
    epochs = []
    if os.path.isfile(run.epochs_path):
        with open(run.epochs_path, encoding="utf-8") as f:
            epochs = json.load(f)["epochs"]
    results = os.path.join(os.path.dirname(os.path.abspath(run.path)), RESULTS_FILE)
    row = {key: metrics[key] for key in ("valid_auc", "valid_logloss", "test_auc", "test_logloss",
                                         "best_epoch", "seconds", "dataset", "stage")}
    row |= {key: getattr(config, key) for key in ("emb_dim", "batch_size", "lr_emb", "lr_nn",
                                                  "l2_emb", "l2_nn", "embedding_optimizer", "seed")}
    model = "search" if metrics["stage"] == "search" else (config.preset or metrics["fusion"])
    row |= {"finished": datetime.datetime.now().isoformat(timespec="seconds"), "run": run.path,
            "model": model, "epochs": len(epochs) or None}
    try:
        append_result(results, row)
    except (ResultsTableError, OSError) as e:
        logging.warning("results table not updated: %s", e)
