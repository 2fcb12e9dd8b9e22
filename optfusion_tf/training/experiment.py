"""The two-stage workflow (paper Alg. 1): what a search or a re-train runs, in what order.

`run_search` trains the supernet (alpha, beta, weights in one step; or the sequential variant)
and writes arch.json; `run_retrain` trains a fixed architecture (hard / soft / one operation, or
a preset). Both write the run directory of DESIGN.md section 7 (see optfusion_tf/training/run_dir.py):
flags.txt, epochs.json, metrics.json, checkpoints/, backup/, tensorboard/, arch.json,
architecture.png and model.keras (the best epoch's model, for export_savedmodel.py).

A stage reads top to bottom, one `config` going forward through:
1. `workers.join_cluster`, then the checks of the inputs (`config.py`: the dataset directory,
   the arch; `workers.check_the_split_of_work`), which every worker passes or every worker
   stops: a bad dataset dir, arch.json or flag value raises `ExperimentError` and leaves no run
   directory behind;
2. under the strategy's scope, `workers.open_run` (the chief's run directory, the other
   workers' scratch copies), the model, and `fit.fit_phase` once per phase;
3. `results.write_results`: the best model's exact metrics in metrics.json.

`config.strategy` ("none" | "mirrored" | "multi_worker", optfusion_tf/distribute/distribution.py) trains
data-parallel: the model and optimizers are created under the strategy's scope, each worker
reads its slice of every split (training in per-replica batches of batch_size / replicas),
validation and test predictions are gathered so that every worker computes the same exact AUC,
and only the chief writes the run directory (optfusion_tf/training/workers.py says who writes
what).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import keras
from absl import logging

from optfusion_tf.analysis.architecture_plot import draw_architecture
from optfusion_tf.architecture.spec import MIXTURE, ArchitectureSpec
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.distribute.distribution import Distribution
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.training.config import (
    TrainingConfig,
    arch_flag_lines,
    load_dataset_stats,
    refuse_conflicting_rates,
    retrain_arch,
    search_model_path,
)
from optfusion_tf.training.fit import Phase, fit_phase
from optfusion_tf.training.precision import warn_unless_native
from optfusion_tf.training.results import earlier_seconds, write_results
from optfusion_tf.training.run_dir import RunDir
from optfusion_tf.training.workers import (
    INPUTS_REFUSED,
    check_the_split_of_work,
    join_cluster,
    open_run,
    stop_unless_every_worker_succeeds,
)

__all__ = ["run_retrain", "run_search"]


def run_search(config: TrainingConfig, flag_lines: list[str]) -> dict[str, Any]:
    """Stage 1: searches connections and operations; writes arch.json. Returns metrics.json."""
    refuse_conflicting_rates(config)
    dist = join_cluster(config)
    with stop_unless_every_worker_succeeds(dist, INPUTS_REFUSED):
        stats = load_dataset_stats(config.dataset_dir)
        check_the_split_of_work(config, stats, dist)
    with dist.scope():
        return _search(config, flag_lines, stats, dist)


def _search(
    config: TrainingConfig, flag_lines: list[str], stats: DatasetStats, dist: Distribution
) -> dict[str, Any]:
    run = open_run(config, flag_lines, dist)
    started = time.perf_counter()
    earlier = earlier_seconds(run)
    build = dict(
        feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=config.emb_dim,
        n=config.n, shallow=config.shallow, dropout=config.dropout,
        batch_norm=config.batch_norm, init_constant=config.init_constant, seed=config.seed,
        dataset=stats.dataset, operation_norm=config.operation_norm,
        embedding_init_std=config.embedding_init_std, kernel_init=config.kernel_init,
        deep_dtype=config.deep_dtype,
    )
    warn_unless_native(config.deep_dtype)
    if config.selection == "one_shot":
        model, best_epoch = fit_phase(
            config, stats,
            Phase("search", OptFusionModel(fusion="search", **build), run, run, dist),
        )
    else:
        # Sequential selection (paper Table 5): connections under a fixed ADD, then the
        # operations with those connections frozen. Each phase keeps its own checkpoints.
        first, _ = fit_phase(
            config, stats,
            Phase("connections", OptFusionModel(fusion="search_connections", **build),
                  RunDir(os.path.join(run.path, "phase1_connections")), run, dist),
        )
        second = OptFusionModel(fusion="search_operations", arch=first.current_arch(), **build)
        second.load_search_weights(first)
        model, best_epoch = fit_phase(
            config, stats,
            Phase("operations", second, RunDir(os.path.join(run.path, "phase2_operations")),
                  run, dist),
        )
    arch = model.current_arch()
    arch.save(run.arch_path)
    draw_architecture(arch, path=run.architecture_png, title=f"searched on {stats.dataset}")
    return write_results(
        config, stats, run, model, (started, earlier), best_epoch, dist, stage="search", arch=arch
    )


def run_retrain(config: TrainingConfig, flag_lines: list[str], given: set[str]) -> dict[str, Any]:
    """Stage 2: re-trains a fixed architecture. Returns metrics.json.

    `given` names the flags the user set explicitly (`retrain_arch`)."""
    refuse_conflicting_rates(config)
    dist = join_cluster(config)
    with stop_unless_every_worker_succeeds(dist, INPUTS_REFUSED):
        stats = load_dataset_stats(config.dataset_dir)
        arch = retrain_arch(config, stats, given)
        check_the_split_of_work(config, stats, dist)
    with dist.scope():
        return _retrain(config, flag_lines, stats, arch, dist)


def _retrain(
    config: TrainingConfig,
    flag_lines: list[str],
    stats: DatasetStats,
    arch: ArchitectureSpec,
    dist: Distribution,
) -> dict[str, Any]:
    if config.arch:
        flag_lines = arch_flag_lines(flag_lines, arch)
    run = open_run(config, flag_lines, dist)
    started = time.perf_counter()
    earlier = earlier_seconds(run)
    mode = "hard" if config.preset is not None else config.fusion
    model = OptFusionModel(
        feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=arch.emb_dim,
        n=arch.n, shallow=arch.shallow, fusion=mode, arch=arch, dropout=config.dropout,
        batch_norm=config.batch_norm, seed=config.seed, dataset=stats.dataset,
        operation_norm=arch.operation_norm, embedding_init_std=config.embedding_init_std,
        kernel_init=config.kernel_init, concat_head=config.concat_head,
        deep_dtype=config.deep_dtype,
    )
    warn_unless_native(config.deep_dtype)
    _explain_operations_without_gradient(arch, mode)
    warnings = arch.numerical_warnings(mode)
    for warning in warnings:
        logging.warning("%s", warning)
    if config.init_from_search and not run.resuming:
        model.load_search_weights(keras.saving.load_model(search_model_path(config.arch)))
    arch.save(run.arch_path)
    draw_architecture(arch, path=run.architecture_png, title=f"{mode} re-train on {stats.dataset}")
    model, best_epoch = fit_phase(config, stats, Phase("retrain", model, run, run, dist))
    return write_results(
        config, stats, run, model, (started, earlier), best_epoch, dist, stage="retrain", arch=arch,
        fusion=mode, warnings=warnings,
    )


def _explain_operations_without_gradient(arch: ArchitectureSpec, mode: str) -> None:
    """Says once, in our words, which weights of operation layers get no gradient, and hides Keras' "Gradients
    do not exist" warning for those weights only (it names them at every model's first step).

    Two cases: ATT over a single input (softmax of one score is 1, so its scores do not matter)
    and a kept node with no connected input (a constant 0 goes into its operation).
    """
    operations = arch.operations_for(mode)
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
