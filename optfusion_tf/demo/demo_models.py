"""The demo's training stage: search, re-train hard and soft, the two presets, a results table.

Runs the same library functions as search.py and retrain.py (optfusion_tf.training.experiment), with a
small embedding so that the whole demo stays within minutes on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf

from optfusion_tf.data.reader import load_split
from optfusion_tf.training.evaluation import binary_metrics
from optfusion_tf.training.config import TrainingConfig, config_flag_lines
from optfusion_tf.training.experiment import run_retrain, run_search
from optfusion_tf.export.savedmodel import ExportResult, export_savedmodel

# (label in the table, retrain.py flags); the arch path is filled in after the search.
RETRAINS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("OptFusion-Hard", {"fusion": "hard"}),
    ("OptFusion-Soft", {"fusion": "soft"}),
    ("parallel (DCN)", {"preset": "parallel"}),
    ("stacked", {"preset": "stacked"}),
)


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """One row of the results table."""

    model: str
    run_dir: str
    metrics: dict[str, Any]


def train_demo_models(
    dataset_dir: str,
    workdir: str,
    base: TrainingConfig,
    retrains: tuple[tuple[str, dict[str, Any]], ...] = RETRAINS,
    *,
    always_search: bool = True,
) -> list[DemoResult]:
    """Searches on `dataset_dir`, then re-trains every entry of `retrains` (bench/peers.py and
    bench/quality.py train their runs of ours here too).

    Args:
        dataset_dir: a preprocessed dataset directory.
        workdir: runs go to <workdir>/runs/<name>.
        base: training settings shared by every run (its dataset_dir/run_dir are replaced).
        retrains: (label, retrain overrides: "fusion" with the searched arch, or "preset").
        always_search: False: no search when every entry of `retrains` is a preset.

    Returns:
        The search's result first (when it ran), then one per entry of `retrains`.
    """
    runs = os.path.join(workdir, "runs")
    search = dataclasses.replace(base, dataset_dir=dataset_dir, run_dir=os.path.join(runs, "search"))
    results = []
    if always_search or any("preset" not in overrides for _, overrides in retrains):
        results.append(DemoResult("search (supernet)", search.run_dir,
                                  run_search(search, config_flag_lines(search, "search"))))
    arch = os.path.join(search.run_dir, "arch.json")
    for label, overrides in retrains:
        name = overrides.get("preset") or overrides["fusion"]
        config = dataclasses.replace(
            search, run_dir=os.path.join(runs, f"retrain_{name}"),
            arch=None if "preset" in overrides else arch, **overrides,
        )
        metrics = run_retrain(config, config_flag_lines(config, "retrain"), given=set())
        results.append(DemoResult(label, config.run_dir, metrics))
    return results


def results_table(results: list[DemoResult]) -> str:
    """A fixed-width table: model, test AUC, test log loss, best epoch, seconds."""
    lines = [f"{'model':<20} {'test AUC':>9} {'log loss':>9} {'epoch':>6} {'seconds':>8}"]
    for r in results:
        m = r.metrics
        lines.append(
            f"{r.model:<20} {m['test_auc']:>9.4f} {m['test_logloss']:>9.4f} "
            f"{m['best_epoch']:>6} {m['seconds']:>8.1f}"
        )
    return "\n".join(lines)


def export_and_score(run_dir: str, dataset_dir: str, export_dir: str) -> tuple[ExportResult, dict]:
    """Exports a re-train run for TF Serving and scores the test split with the SavedModel
    alone (tf.saved_model.load, serving_default), as a server would.

    Returns:
        (what was exported, {"auc", "logloss", "examples"} of the exported model's scores).
    """
    result = export_savedmodel(run_dir, export_dir=export_dir)
    serve = tf.saved_model.load(result.path).signatures["serving_default"]
    ids, labels = load_split(dataset_dir, "test")
    probability = np.concatenate([
        serve(feature_ids=tf.constant(ids[i:i + 8192]))["probability"].numpy()
        for i in range(0, len(ids), 8192)
    ]).astype(np.float64)
    eps = 1e-7  # back to logits for binary_metrics (same ranking, same log loss)
    p = np.clip(probability, eps, 1 - eps)
    return result, binary_metrics(labels, np.log(p / (1 - p)))
