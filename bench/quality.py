"""Test AUC / log loss over seeds for OptFusion and the naive fusions (issue 4's quality figures).

    python bench/quality.py [--seeds=1,2,3] [--synthetic_rows=500000] [--workdir=bench/out/quality]

Datasets: (a) the real Criteo sample ../shared/data/criteo_sample.txt (skipped with a note when
absent) and (b) the synthetic demo data (optfusion_tf.demo_data) with --synthetic_rows rows.
Each is preprocessed once (split seed fixed, so every model sees the same test split); for every
training seed a search runs, then OptFusion-Hard, OptFusion-Soft, fixed ADD (the searched
connections, ADD everywhere), and the parallel and stacked presets are re-trained from scratch,
exactly as the demo does (optfusion_tf.demo_models). The last line printed is one JSON object:
per dataset and model, test AUC and log loss as mean and std over the seeds, plus every run.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from optfusion_tf.data.preprocess import PreprocessOptions, preprocess  # noqa: E402
from optfusion_tf.demo_data import write_demo_criteo  # noqa: E402
from optfusion_tf.demo_models import RETRAINS, train_demo_models  # noqa: E402
from optfusion_tf.experiment import TrainingConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["1", "2", "3"], "Training seeds.")
flags.DEFINE_integer("synthetic_rows", 500_000, "Rows of synthetic data (0: skip it).", lower_bound=0)
flags.DEFINE_boolean("real_sample", True, "Include the real Criteo sample (../shared/data).")
flags.DEFINE_string("workdir", "bench/out/quality", "Where datasets and runs go (git-ignored).")
flags.DEFINE_integer("emb_dim", 4, "Embedding size of every model.", lower_bound=1)
flags.DEFINE_integer("epochs", 3, "Maximum epochs per run (early stopping, patience 1).", lower_bound=1)
flags.DEFINE_integer("batch_size", 4096, "Batch size.", lower_bound=1)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITEO_SAMPLE = os.path.join(os.path.dirname(REPO), "shared", "data", "criteo_sample.txt")
EXTRA = (("fixed ADD", {"fusion": "add"}),)


def _datasets(workdir: str) -> dict[str, tuple[str, int]]:
    """name -> (preprocessed dataset dir, batch size to use)."""
    out = {}
    options = PreprocessOptions(overwrite=True)
    if not FLAGS.real_sample:
        pass
    elif os.path.isfile(CRITEO_SAMPLE):
        preprocess("criteo", CRITEO_SAMPLE, os.path.join(workdir, "criteo_sample"), options)
        # 6,400 training rows: batch 4096 would be 2 steps an epoch.
        out["criteo_sample"] = (os.path.join(workdir, "criteo_sample"), 256)
    else:
        logging.warning("%s not found: the real-data row is skipped", CRITEO_SAMPLE)
    if FLAGS.synthetic_rows:
        raw = write_demo_criteo(os.path.join(workdir, "synthetic.txt"), FLAGS.synthetic_rows, seed=2022)
        preprocess("criteo", raw, os.path.join(workdir, "synthetic"), options)
        out[f"synthetic_{FLAGS.synthetic_rows}"] = (os.path.join(workdir, "synthetic"), FLAGS.batch_size)
    return out


def main(argv: Sequence[str]) -> None:
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    report: dict[str, dict] = {}
    for name, (dataset_dir, batch_size) in _datasets(FLAGS.workdir).items():
        runs: dict[str, list[dict]] = {}
        for seed in map(int, FLAGS.seeds):
            base = TrainingConfig(
                dataset_dir=dataset_dir, run_dir="", emb_dim=FLAGS.emb_dim, epochs=FLAGS.epochs,
                batch_size=batch_size, seed=seed, overwrite=True,
            )
            workdir = os.path.join(FLAGS.workdir, f"{name}_seed{seed}")
            for result in train_demo_models(dataset_dir, workdir, base, RETRAINS + EXTRA):
                runs.setdefault(result.model, []).append(
                    {k: result.metrics[k] for k in ("test_auc", "test_logloss", "best_epoch", "seconds")}
                )
        report[name] = {
            model: {
                "test_auc_mean": statistics.fmean(r["test_auc"] for r in rs),
                "test_auc_std": statistics.pstdev(r["test_auc"] for r in rs),
                "test_logloss_mean": statistics.fmean(r["test_logloss"] for r in rs),
                "test_logloss_std": statistics.pstdev(r["test_logloss"] for r in rs),
                "runs": rs,
            }
            for model, rs in runs.items()
        }
        print(f"\n{name} ({len(FLAGS.seeds)} seeds, emb_dim {FLAGS.emb_dim}):")
        print(f"{'model':<20} {'test AUC':>17} {'test log loss':>17}")
        for model, r in report[name].items():
            print(
                f"{model:<20} {r['test_auc_mean']:.4f} ± {r['test_auc_std']:.4f} "
                f"{r['test_logloss_mean']:.4f} ± {r['test_logloss_std']:.4f}"
            )
    print(json.dumps(report))


if __name__ == "__main__":
    app.run(main)
