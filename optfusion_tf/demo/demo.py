"""The main job on demo data, end to end: synthetic Criteo-format raw log -> preprocessing ->
OptFusion search -> re-train hard and soft -> the parallel and stacked presets -> results table
-> export OptFusion-Hard for TF Serving and score the test split with the SavedModel alone.

    python -m optfusion_tf.demo [--workdir=demo_run] [--rows=300000] [--seed=2022] ...

Writes <workdir>/raw/demo_criteo.txt (see optfusion_tf.demo.demo_data for the planted model),
preprocesses it like dataprocess/criteo2TF.py into <workdir>/tfrecords/demo_criteo_2, then runs
search.py / retrain.py's library functions into <workdir>/runs/<name>/ and prints the table and
the TensorBoard command. Everything is rewritten on every run.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from optfusion_tf.cli.flag_help import show_flags_in_help
from optfusion_tf.cli.quiet import import_tensorflow_quietly, quiet_library_logs

import_tensorflow_quietly()

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from optfusion_tf.data.preprocess import PreprocessOptions, preprocess  # noqa: E402
from optfusion_tf.data.stats import DatasetStats  # noqa: E402
from optfusion_tf.demo.demo_data import DemoChunk, write_demo_criteo  # noqa: E402
from optfusion_tf.demo.demo_models import export_and_score, results_table, train_demo_models  # noqa: E402
from optfusion_tf.training.config import TrainingConfig  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The demo's flags (defined when it runs, not at import)."""
    flags.DEFINE_string(
        "workdir", "demo_run", "Directory for the demo's raw data, dataset and runs."
    )
    flags.DEFINE_integer("rows", 300_000, "Rows of synthetic Criteo-format data.", lower_bound=1000)
    flags.DEFINE_integer("seed", 2022, "Seed of the synthetic data, the split and the training.")
    flags.DEFINE_integer("emb_dim", 4, "Embedding size of every model (small, for a CPU demo).", lower_bound=1)
    flags.DEFINE_integer("epochs", 2, "Maximum epochs of the search and of each re-train.", lower_bound=1)
    flags.DEFINE_integer("batch_size", 4096, "Batch size.", lower_bound=1)


def prepare_data(workdir: str, rows: int, seed: int) -> tuple[DatasetStats, str, float]:
    """Writes the demo raw file and preprocesses it.

    Returns:
        (the dataset's stats, its directory, the planted model's AUC over all rows).
    """
    raw_dir = os.path.join(workdir, "raw")
    os.makedirs(raw_dir, exist_ok=True)
    labels, probability = [], []

    def collect(chunk: DemoChunk) -> None:
        labels.append(chunk.labels)
        probability.append(chunk.probability)

    raw = write_demo_criteo(os.path.join(raw_dir, "demo_criteo.txt"), rows, seed, on_chunk=collect)
    ceiling = float(roc_auc_score(np.concatenate(labels), np.concatenate(probability)))
    dataset_dir = os.path.join(workdir, "tfrecords", "demo_criteo_2")
    stats = preprocess(
        "criteo", raw, dataset_dir, PreprocessOptions(threshold=2, seed=seed, overwrite=True)
    )
    return stats, dataset_dir, ceiling


def summary(stats: DatasetStats, dataset_dir: str, ceiling: float) -> str:
    """A few lines on what was written."""
    lines = [
        f"raw data:  {stats.input_path} ({stats.input_lines:,} rows; "
        f"planted-model AUC ceiling {ceiling:.4f})",
        f"dataset:   {dataset_dir} ({stats.num_fields} fields, feature_num {stats.feature_num:,}, "
        f"vocabulary from {stats.vocab_scope}, threshold {stats.threshold})",
    ]
    for split, n in stats.rows.items():
        rate = stats.positives[split] / max(n, 1)
        lines.append(
            f"  {split:<10} {n:>10,} rows, {rate:6.2%} positive, shards {stats.shards[split]}"
        )
    bad = {r: v["count"] for r, v in stats.bad_rows.items() if v["count"]}
    lines.append(f"  bad rows: {bad or 'none'}")
    largest = sorted(stats.fields, key=lambda f: -f.size)[:3]
    lines.append("  largest fields: " + ", ".join(f"{f.name} {f.size:,} ids" for f in largest))
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    quiet_library_logs(FLAGS.verbosity)
    stats, dataset_dir, ceiling = prepare_data(FLAGS.workdir, FLAGS.rows, FLAGS.seed)
    print(summary(stats, dataset_dir, ceiling), flush=True)
    base = TrainingConfig(
        dataset_dir=dataset_dir, run_dir="", emb_dim=FLAGS.emb_dim, epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size, seed=FLAGS.seed, overwrite=True,
    )
    results = train_demo_models(dataset_dir, FLAGS.workdir, base)
    print(f"\nResults on the demo test split (planted-model AUC ceiling {ceiling:.4f}):")
    print(results_table(results))
    hard = next(r for r in results if r.model == "OptFusion-Hard")
    exported, served = export_and_score(
        hard.run_dir, dataset_dir, os.path.join(FLAGS.workdir, "export")
    )
    print(
        f"\nExported OptFusion-Hard for TF Serving: {exported.path} (signatures serving_default, "
        f"predict_raw; request bodies in request_example.json).\nScored by the SavedModel alone: "
        f"test AUC {served['auc']:.4f}, log loss {served['logloss']:.4f} on "
        f"{served['examples']:,} rows (Keras: {hard.metrics['test_auc']:.4f}, "
        f"{hard.metrics['test_logloss']:.4f})."
    )
    print("Run directories: " + ", ".join(r.run_dir for r in results))
    print(f"TensorBoard: tensorboard --logdir {os.path.join(FLAGS.workdir, 'runs')}")


def run() -> None:
    """Entry point: python -m optfusion_tf.demo."""
    define_flags()
    show_flags_in_help(sys.modules[__name__])
    app.run(main)


if __name__ == "__main__":
    run()
