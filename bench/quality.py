"""Test AUC / log loss over seeds for OptFusion, its ablations and the naive fusions.

    python bench/quality.py [--datasets=criteo_sample,avazu_sample,synthetic_100000]
                            [--seeds=1,2,3] [--emb_dim=10] [--operation_norm_variant]

For every dataset (bench/bench_data.py: the same rows for every model and seed) and training
seed, with the default flags of search.py / retrain.py (only --emb_dim, --batch_size, --seed
set): a search, then OptFusion-Hard, OptFusion-Soft and "fixed ADD" (the searched connections,
ADD at every node, paper Table 4) re-trained from it, the parallel and stacked presets, and,
with --operation_norm_variant, a second search with --operation_norm=rms followed by its Hard
and Soft re-trains (docs/model.md, "PROD over many inputs"); a variant run that fails (a NaN stop) is
listed as FAILED, and its seed is left out of that variant's rows. The last line printed is one
JSON object: per dataset and model, test AUC and log loss as mean and std over the seeds, plus
every run, and "failures".
bench/peers.py puts the same models beside DeepCTR's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

from optfusion_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before keras: hides TensorFlow's C++ start-up lines

import keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import bench_data  # noqa: E402
from curves import plot_test_auc  # noqa: E402
from optfusion_tf.demo.demo_models import RETRAINS, train_demo_models  # noqa: E402
from optfusion_tf.training.config import ExperimentError, TrainingConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["criteo_sample", "avazu_sample", "synthetic_100000"],
                  "Datasets (bench/bench_data.py names).")
bench_data.register_dataset_names_validator("datasets")
flags.DEFINE_list("seeds", ["1", "2", "3"], "Training seeds.")
flags.DEFINE_integer("emb_dim", 10, "Embedding size of every model.", lower_bound=1)
flags.DEFINE_integer("batch_size", 4096, "Batch size of the synthetic sets.", lower_bound=1)
flags.DEFINE_boolean("operation_norm_variant", True,
                     "Also search and re-train with --operation_norm=rms.")
flags.DEFINE_boolean("base_models", True,
                     "Train the search and its re-trains with the default --operation_norm "
                     "(--nobase_models: only the rms variant).")
flags.DEFINE_string("workdir", "bench/out/quality", "Where datasets and runs go (git-ignored).")

EXTRA = (("fixed ADD", {"fusion": "add"}),)
RMS = (("OptFusion-Hard, rms", {"fusion": "hard"}), ("OptFusion-Soft, rms", {"fusion": "soft"}))
KEYS = ("test_auc", "test_logloss", "best_epoch", "seconds")


def main(argv: Sequence[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    keras.utils.disable_interactive_logging()
    os.makedirs(FLAGS.workdir, exist_ok=True)
    report: dict[str, dict] = {}
    failures: list[str] = []
    for data in bench_data.prepare(FLAGS.datasets, FLAGS.workdir, FLAGS.batch_size):
        runs: dict[str, list[dict]] = {}
        for seed in map(int, FLAGS.seeds):
            base = TrainingConfig(
                dataset_dir=data.path, run_dir="", emb_dim=FLAGS.emb_dim,
                batch_size=data.batch_size, seed=seed, overwrite=True,
            )
            workdir = os.path.join(FLAGS.workdir, f"{data.name}_seed{seed}")
            results = (
                train_demo_models(data.path, workdir, base, RETRAINS + EXTRA)
                if FLAGS.base_models else []
            )
            if FLAGS.operation_norm_variant:
                rms = dataclasses.replace(base, operation_norm="rms")
                try:
                    results += [
                        dataclasses.replace(r, model="search (supernet), rms" if i == 0 else r.model)
                        for i, r in enumerate(
                            train_demo_models(data.path, f"{workdir}_rms", rms, RMS))
                    ]
                except ExperimentError as err:  # e.g. a NaN stop: reported, not hidden
                    failures.append(f"{data.name} / rms / seed {seed}: {err}")
                    logging.warning("%s", failures[-1])
            for result in results:
                runs.setdefault(result.model, []).append(
                    {k: result.metrics[k] for k in KEYS} | {"seed": seed}
                )
                logging.warning("%s / %s / seed %d: test AUC %.4f", data.name, result.model,
                                seed, result.metrics["test_auc"])
        report[data.name] = {model: bench_data.summary(rs) for model, rs in runs.items()}
        title = (f"{data.name}: emb_dim {FLAGS.emb_dim}, batch {data.batch_size}, "
                 f"{len(FLAGS.seeds)} seeds (mean ± std)")
        bench_data.print_table(title, report[data.name])
        png = plot_test_auc(report[data.name],
                            os.path.join(FLAGS.workdir, f"{data.name}_test_auc.png"), title)
        print(f"test AUC picture: {png}")
    for failure in failures:
        print(f"FAILED {failure}")
    print(json.dumps(report | {"failures": failures}))


if __name__ == "__main__":
    app.run(main)
