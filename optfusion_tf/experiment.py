"""The two-stage workflow (paper Alg. 1): one search or re-train run, from flags to run directory.

`run_search` trains the supernet (alpha, beta, weights in one step; or the sequential variant)
and writes arch.json; `run_retrain` trains a fixed architecture (hard / soft / one operation, or
a preset). Both write the run directory of DESIGN.md section 7 (see optfusion_tf/run_dir.py):
flags.txt, epochs.json, metrics.json, checkpoints/, backup/, tensorboard/, arch.json,
architecture.png and model.keras (the best epoch's model, for export_savedmodel.py).

Every input is validated before anything is written: a bad dataset dir, arch.json or flag
value raises `ExperimentError` and leaves no run directory behind.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from typing import Any

import keras
from absl import logging

from optfusion_tf.arch_spec import ArchSpec, ArchSpecError, preset_arch
from optfusion_tf.architecture_plot import draw_architecture
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.reader import make_dataset
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.evaluation import ExactValidationMetrics, StopOnNaN, evaluate_split
from optfusion_tf.lazy_adam import make_embedding_optimizer
from optfusion_tf.model import OptFusionModel
from optfusion_tf.run_dir import RunDir, RunDirError, open_run_dir, set_seed
from optfusion_tf.tensorboard_callbacks import ArchitectureSummaries

MODEL_FILE = "model.keras"
EVAL_BATCH_SIZE = 16384


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
    epochs: int = 5
    patience: int = 1
    lr_emb: float = 3e-3
    lr_nn: float = 3e-3
    l2_emb: float = 3e-6
    l2_nn: float = 3e-6
    embedding_optimizer: str = "lazy_adam"
    seed: int = 2024
    overwrite: bool = False
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
    skipped = {"overwrite", *(RETRAIN_ONLY if stage == "search" else SEARCH_ONLY)}
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
        )
    try:
        arch = ArchSpec.load(config.arch)
        arch.check_compatible(
            dataset=stats.dataset, num_fields=stats.num_fields, feature_num=stats.feature_num
        )
        for key in ("n", "shallow", "emb_dim"):
            if key in given and getattr(config, key) != getattr(arch, key):
                raise ArchSpecError(
                    f"--{key}={getattr(config, key)!r} does not match the arch, which was searched "
                    f"with {key}={getattr(arch, key)!r}; drop --{key} or search again."
                )
        arch.check_trainable()
    except ArchSpecError as err:
        raise ExperimentError(f"--arch: {err}") from None
    if config.init_from_search and not os.path.isfile(_search_model_path(config.arch)):
        raise ExperimentError(
            f"--init_from_search: {_search_model_path(config.arch)} not found (the search run "
            "that wrote --arch did not finish)."
        )
    return arch


def run_search(config: TrainingConfig, flag_lines: list[str]) -> dict[str, Any]:
    """Stage 1: searches connections and operations; writes arch.json. Returns metrics.json."""
    stats = load_dataset_stats(config.dataset_dir)
    run = _open_run(config, flag_lines)
    started = time.perf_counter()
    build = dict(
        feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=config.emb_dim,
        n=config.n, shallow=config.shallow, dropout=config.dropout,
        batch_norm=config.batch_norm, init_constant=config.init_constant, seed=config.seed,
        dataset=stats.dataset,
    )
    if config.selection == "one_shot":
        model, best_epoch = _fit(
            config, stats, _Phase("search", OptFusionModel(fusion="search", **build), run, run)
        )
    else:
        # Sequential selection (paper Table 5): connections under a fixed ADD, then the
        # operations with those connections frozen. Each phase keeps its own checkpoints.
        first, _ = _fit(
            config, stats,
            _Phase("connections", OptFusionModel(fusion="search_connections", **build),
                   RunDir(os.path.join(run.path, "phase1_connections")), run),
        )
        second = OptFusionModel(fusion="search_operations", arch=first.current_arch(), **build)
        second.load_search_weights(first)
        model, best_epoch = _fit(
            config, stats,
            _Phase("operations", second, RunDir(os.path.join(run.path, "phase2_operations")), run),
        )
    arch = model.current_arch()
    arch.save(run.arch_path)
    draw_architecture(arch, path=run.architecture_png, title=f"searched on {stats.dataset}")
    return _finish(config, stats, run, model, started, best_epoch, stage="search", arch=arch)


def run_retrain(config: TrainingConfig, flag_lines: list[str], given: set[str]) -> dict[str, Any]:
    """Stage 2: re-trains a fixed architecture. Returns metrics.json."""
    stats = load_dataset_stats(config.dataset_dir)
    arch = retrain_arch(config, stats, given)
    run = _open_run(config, flag_lines)
    started = time.perf_counter()
    fusion = "hard" if config.preset is not None else config.fusion
    model = OptFusionModel(
        feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=arch.emb_dim,
        n=arch.n, shallow=arch.shallow, fusion=fusion, arch=arch, dropout=config.dropout,
        batch_norm=config.batch_norm, seed=config.seed, dataset=stats.dataset,
    )
    if config.init_from_search and not run.resuming:
        model.load_search_weights(keras.saving.load_model(_search_model_path(config.arch)))
    arch.save(run.arch_path)
    draw_architecture(arch, path=run.architecture_png, title=f"{fusion} re-train on {stats.dataset}")
    model, best_epoch = _fit(config, stats, _Phase("retrain", model, run, run))
    return _finish(
        config, stats, run, model, started, best_epoch, stage="retrain", arch=arch, fusion=fusion
    )


def _open_run(config: TrainingConfig, flag_lines: list[str]) -> RunDir:
    try:
        run = open_run_dir(config.run_dir, flag_lines, overwrite=config.overwrite)
    except RunDirError as err:
        raise ExperimentError(f"--run_dir: {err}") from None
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
    model, run = phase.model, phase.run
    valid = make_dataset(config.dataset_dir, "validation", EVAL_BATCH_SIZE)
    metrics = ExactValidationMetrics(valid, history_path=run.epochs_path)
    if os.path.isfile(phase.done_marker) and metrics.best is not None:
        logging.info("%s: finished in an earlier process; loading its best weights.", phase.name)
        model.build((None, stats.num_fields))
        model.load_weights(run.best_weights_path)
        return model, int(metrics.best["epoch"])
    os.makedirs(run.checkpoints_dir, exist_ok=True)
    model.compile(
        embedding_optimizer=make_embedding_optimizer(config.embedding_optimizer, config.lr_emb),
        network_optimizer=keras.optimizers.Adam(config.lr_nn),
        architecture_optimizer=(
            keras.optimizers.Adam(config.arch_lr) if model.architecture_variables else None
        ),
        l2_emb=config.l2_emb,
        l2_nn=config.l2_nn,
    )
    train = make_dataset(
        config.dataset_dir, "train", config.batch_size, seed=config.seed, repeat=True
    )
    steps = math.ceil(stats.rows["train"] / config.batch_size)
    nan_guard = StopOnNaN()
    best_so_far = metrics.best
    callbacks = [
        nan_guard,
        metrics,  # writes val_auc / val_logloss into the logs the callbacks below read
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=config.patience, restore_best_weights=False
        ),
        keras.callbacks.ModelCheckpoint(
            run.best_weights_path, monitor="val_auc", mode="max", save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=None if best_so_far is None else best_so_far["val_auc"],
        ),
        keras.callbacks.TensorBoard(run.tensorboard_dir, histogram_freq=0),
        ArchitectureSummaries(run.tensorboard_dir),
        keras.callbacks.BackupAndRestore(phase.backup_dir),  # last: a backup means the epoch is done
    ]
    logging.info(
        "%s: %d epochs of %d steps (batch %d) on %s", phase.name, config.epochs, steps,
        config.batch_size, config.dataset_dir,
    )
    model.fit(
        train, epochs=config.epochs, steps_per_epoch=steps, callbacks=callbacks, shuffle=False
    )
    if nan_guard.stopped_at is not None:
        kept = (
            f"the best checkpoint so far stays at {run.best_weights_path}"
            if os.path.isfile(run.best_weights_path)
            else "no epoch finished, so there is no checkpoint"
        )
        raise ExperimentError(f"{phase.name}: {nan_guard.message}; {kept}.")
    if not os.path.isfile(run.best_weights_path) or metrics.best is None:
        raise ExperimentError(f"{phase.name}: no epoch produced a finite validation AUC.")
    model.load_weights(run.best_weights_path)
    model.save(os.path.join(run.path, MODEL_FILE))
    with open(phase.done_marker, "w", encoding="utf-8") as f:
        f.write(f"best epoch {metrics.best['epoch']}\n")
    return model, int(metrics.best["epoch"])


def _finish(
    config: TrainingConfig,
    stats: DatasetStats,
    run: RunDir,
    model: OptFusionModel,
    started: float,
    best_epoch: int,
    **extras: Any,
) -> dict[str, Any]:
    """Exact validation and test metrics of the best epoch -> metrics.json (marks completion)."""
    valid = evaluate_split(model, make_dataset(config.dataset_dir, "validation", EVAL_BATCH_SIZE))
    test = evaluate_split(model, make_dataset(config.dataset_dir, "test", EVAL_BATCH_SIZE))
    arch: ArchSpec = extras.pop("arch")
    metrics = run.write_metrics(
        valid_auc=valid["auc"],
        valid_logloss=valid["logloss"],
        test_auc=test["auc"],
        test_logloss=test["logloss"],
        best_epoch=best_epoch,
        seconds=time.perf_counter() - started,
        dataset=stats.dataset,
        live_nodes=list(arch.live_nodes),
        operations={node: arch.operations[node] for node in arch.live_nodes if node in arch.operations},
        parameters=int(model.count_params()),
        **extras,
    )
    shutil.rmtree(run.backup_dir, ignore_errors=True)  # complete: nothing left to resume
    return metrics
