"""The end of a run: the best model's exact metrics in metrics.json (which marks the run
complete), the test split's reliability diagram, and the run in results.csv and TensorBoard's
HParams dashboard."""

from __future__ import annotations

import datetime
import glob
import json
import os
import shutil
import time
from typing import Any

import tensorflow as tf
from absl import logging
from scipy.special import expit

from optfusion_tf.analysis.architecture_plot import figure_to_array
from optfusion_tf.analysis.calibration import calibration, draw_reliability_diagram
from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.data.reader import make_dataset
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.distribute.distribution import Distribution
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.training.config import TrainingConfig
from optfusion_tf.training.evaluation import binary_metrics, evaluate_split, predict_logits
from optfusion_tf.training.fit import EVAL_BATCH_SIZE
from optfusion_tf.training.run_dir import RunDir
from optfusion_tf.training.tracking import (
    RESULTS_FILE,
    ResultsTableError,
    append_result,
    hparam_values,
    write_hparams,
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


def write_results(
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
    arch: ArchitectureSpec = extras.pop("arch")
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


def _write_reliability_diagram(run: RunDir, calibrated: dict[str, Any], title: str) -> None:
    """calibration_test.png in the run directory and the same picture in TensorBoard."""
    figure = draw_reliability_diagram(calibrated, title)
    figure.savefig(run.calibration_png)
    writer = tf.summary.create_file_writer(os.path.join(run.tensorboard_dir, "calibration"))
    with writer.as_default():
        tf.summary.image("calibration/test", figure_to_array(figure), step=0)
    writer.close()


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
