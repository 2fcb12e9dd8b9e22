"""Our models beside DeepCTR's on the same rows: test AUC and log loss, mean ± std over seeds.

    python bench/peers.py --dataset_dir=DIR [--seeds=1,2,3] [--emb_dim=10] [--batch_size=4096]
    python bench/peers.py --datasets=criteo_sample,avazu_sample,synthetic_500000 [...]
    python bench/peers.py --datasets=criteo_sample --split_seeds=1,2,3,4,5 [...]

For every dataset (a directory written by dataprocess/*2TF.py, or bench/bench_data.py names)
and seed (and, with --split_seeds, every split of the named datasets: the same raw rows
split again by each seed; the tables pool them), trains
- ours, with the default flags of search.py / retrain.py (only --emb_dim, --batch_size,
  --seed and --deep_dtype set): the parallel and stacked presets, and a search followed by
  OptFusion-Hard and -Soft re-trained from it;
- DeepCTR 0.9.4's DCN, DCNMix, DeepFM and xDeepFM (bench/deepctr_peer.py, each in its own
  process with TF_USE_LEGACY_KERAS=1, on the same train / validation / test rows, exact sklearn
  AUC, Adam 1e-3, DeepCTR's defaults otherwise; the seed also seeds every initializer,
  --init_seed), stopped by our default rule: the best validation AUC, no learning-rate step,
  early stop after max(--patience, ceil(--patience_steps x the network rate's lowest divisor /
  steps per epoch)) epochs without a gain (optfusion_tf.training.plateau.effective_patience),
  best weights restored;
then prints one table per dataset, writes <workdir>/<dataset>_val_auc.png (validation AUC per
epoch of every model, first seed) and <workdir>/<dataset>_test_auc.png (test AUC per model,
mean ± std and every seed), and, last, prints one JSON object with every run.

Needs the `peers` extra (`pip install -e ".[peers]"`: deepctr and tf-keras): without it the
script says which command installs it and exits 1 (`--peers=` with no model trains ours only).
A DeepCTR run that fails stops the script with exit code 1 and the tail of its stderr.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from typing import Sequence

from optfusion_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before keras: hides TensorFlow's C++ start-up lines

import keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import bench_data  # noqa: E402
from curves import plot_test_auc, plot_validation_curves  # noqa: E402
from optfusion_tf.data.stats import DatasetStats  # noqa: E402
from optfusion_tf.training.config import TrainingConfig  # noqa: E402
from optfusion_tf.architecture.presets import PRESETS  # noqa: E402
from optfusion_tf.architecture.validation import DEEP_DTYPES  # noqa: E402
from optfusion_tf.demo.demo_models import train_demo_models  # noqa: E402
from optfusion_tf.training import fit  # noqa: E402

PEERS = {"dcn": "DeepCTR DCN", "dcnmix": "DeepCTR DCNMix", "deepfm": "DeepCTR DeepFM",
         "xdeepfm": "DeepCTR xDeepFM"}
OURS = {"parallel": "ours: parallel preset", "stacked": "ours: stacked preset",
        "hard": "ours: OptFusion-Hard", "soft": "ours: OptFusion-Soft"}
# What bench/peers.py keeps of each of our runs' metrics.json.
KEPT = ("test_auc", "test_logloss", "best_epoch", "seconds", "val_auc_curve")
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepctr_peer.py")
INSTALL = 'pip install -e ".[peers]"'
STDERR_TAIL = 3000

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset_dir", None, "One preprocessed dataset directory (has stats.json).")
flags.DEFINE_list("datasets", [], "Or bench/bench_data.py dataset names, e.g. criteo_sample.")
bench_data.register_dataset_names_validator("datasets")
flags.DEFINE_list("seeds", ["1", "2", "3"], "Training seeds.")
flags.DEFINE_integer("emb_dim", 10, "Embedding size of every model.", lower_bound=1)
flags.DEFINE_integer("batch_size", 4096,
                     "Batch size (the real samples of --datasets use 256).", lower_bound=1)
flags.DEFINE_list("peers", list(PEERS), f"DeepCTR models, of {list(PEERS)} (empty: none).")
flags.DEFINE_list("ours", list(OURS), f"Our models, of {list(OURS)}.")
flags.DEFINE_integer("peer_epochs", 100, "DeepCTR: maximum epochs.", lower_bound=1)
flags.DEFINE_integer("peer_patience", None, "DeepCTR: epochs without validation-AUC gain before "
                     "stopping (its best weights are kept); default: the epochs our default "
                     "rule waits on that dataset (effective_patience); >= 1, as "
                     "bench/deepctr_peer.py requires (our --patience=0 stops as 1 does).",
                     lower_bound=1)
flags.DEFINE_enum("deep_dtype", "float32", DEEP_DTYPES,
                  "Ours: retrain.py's / search.py's --deep_dtype (DeepCTR computes in float32).")
flags.DEFINE_string("workdir", "bench/out/peers", "Datasets and runs (git-ignored).")
bench_data.define_split_seeds_flag()


class PeerError(RuntimeError):
    """A DeepCTR run failed; the message holds its stderr tail."""


def stop_patience(dataset_dir: str, batch_size: int) -> int:
    """Epochs without validation gain before our default rule stops on this dataset: DeepCTR
    gets the same (--peer_patience overrides it)."""
    if FLAGS.peer_patience is not None:
        return FLAGS.peer_patience
    defaults = TrainingConfig(dataset_dir=dataset_dir, run_dir="")
    return fit.stop_patience(defaults, fit.epoch_steps(DatasetStats.load(dataset_dir), batch_size))


def peer_run(dataset_dir: str, model: str, seed: int, batch_size: int, patience: int) -> dict:
    """One DeepCTR model in its own process (legacy Keras); its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [
            sys.executable, PEER_SCRIPT, f"--dataset_dir={dataset_dir}", f"--model={model}",
            f"--seed={seed}", f"--init_seed={seed}", f"--emb_dim={FLAGS.emb_dim}",
            f"--batch_size={batch_size}",
            f"--epochs={FLAGS.peer_epochs}",
            f"--patience={patience}", f"--out={out}",
        ]
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.isfile(out):
            raise PeerError(
                f"DeepCTR {model} (seed {seed}) on {dataset_dir} failed with exit code "
                f"{proc.returncode}. Command: {' '.join(command)}\n--- its stderr (tail) ---\n"
                f"{proc.stderr[-STDERR_TAIL:]}"
            )
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def our_runs(dataset_dir: str, workdir: str, seed: int, batch_size: int) -> dict[str, dict]:
    """Our models with the default recipe: model key -> metrics.json, with the run's
    validation AUC per epoch added as "val_auc_curve"."""
    base = TrainingConfig(dataset_dir=dataset_dir, run_dir="", emb_dim=FLAGS.emb_dim,
                          batch_size=batch_size, seed=seed, overwrite=True,
                          deep_dtype=FLAGS.deep_dtype)
    retrains = tuple(
        (key, {"preset": key} if key in PRESETS else {"fusion": key})
        for key in OURS if key in FLAGS.ours
    )
    runs = {}
    for result in train_demo_models(dataset_dir, workdir, base, retrains, always_search=False):
        with open(os.path.join(result.run_dir, "epochs.json"), encoding="utf-8") as f:
            result.metrics["val_auc_curve"] = [r["val_auc"] for r in json.load(f)["epochs"]]
        runs[result.model] = result.metrics
    return runs


def _datasets() -> list[bench_data.BenchDataset]:
    if bool(FLAGS.dataset_dir) == bool(FLAGS.datasets):
        raise app.UsageError("Give exactly one of --dataset_dir and --datasets.")
    if FLAGS.dataset_dir:
        if not os.path.isfile(os.path.join(FLAGS.dataset_dir, "stats.json")):
            raise app.UsageError(
                f"--dataset_dir={FLAGS.dataset_dir}: no stats.json (expected a directory "
                "written by dataprocess/*2TF.py)"
            )
        stats = DatasetStats.load(FLAGS.dataset_dir)
        if not stats.rows.get("test"):
            raise app.UsageError(
                f"--dataset_dir={FLAGS.dataset_dir}: no test split (stats.json: rows "
                f"{stats.rows}); the bench reports test AUC, so the directory needs test rows: "
                "preprocess it with a --ratio whose third part is above 0"
            )
        if FLAGS["split_seeds"].present:
            raise app.UsageError("--split_seeds needs --datasets: a --dataset_dir is already "
                                 "split; preprocess it once per split seed instead")
        name = os.path.basename(os.path.normpath(FLAGS.dataset_dir))
        return [bench_data.BenchDataset(name, FLAGS.dataset_dir, FLAGS.batch_size, stats.seed)]
    return bench_data.prepare(FLAGS.datasets, FLAGS.workdir, FLAGS.batch_size,
                              bench_data.flag_split_seeds())


def main(argv: Sequence[str]) -> None:
    del argv
    for flag, known in (("peers", PEERS), ("ours", OURS)):
        unknown = [m for m in FLAGS[flag].value if m not in known]
        if unknown:
            raise app.UsageError(f"--{flag}: unknown {unknown}; known: {list(known)}")
    missing = [m for m in ("deepctr", "tf_keras") if importlib.util.find_spec(m) is None]
    if FLAGS.peers and missing:
        print(f"bench/peers.py: {', '.join(missing)} not installed; the DeepCTR peers need the "
              f"peers extra: {INSTALL}", file=sys.stderr)
        sys.exit(1)
    logging.set_verbosity(logging.WARNING)
    keras.utils.disable_interactive_logging()
    os.makedirs(FLAGS.workdir, exist_ok=True)
    report = {}
    for name, splits in bench_data.by_name(_datasets()):
        runs: dict[str, list[dict]] = {}
        patience = {data.split_seed: train_split(data, runs) for data in splits}
        rows = {model: bench_data.summary(rs) for model, rs in runs.items()}
        batch_size = splits[0].batch_size
        png = plot_validation_curves(
            {model: [rs[0].get("val_auc_curve", [])] for model, rs in runs.items()},
            os.path.join(FLAGS.workdir, f"{name}_val_auc.png"),
            f"{name}: validation AUC per epoch, seed {FLAGS.seeds[0]} (split "
            f"{splits[0].split_seed}), emb_dim "
            f"{FLAGS.emb_dim}, batch {batch_size}, the same stopping rule "
            f"(dot: best epoch)",
        )
        dtype = "" if FLAGS.deep_dtype == "float32" else f"ours' deep blocks {FLAGS.deep_dtype}, "
        title = (f"{name}: emb_dim {FLAGS.emb_dim}, batch {batch_size}, {dtype}"
                 f"{bench_data.runs_label(FLAGS.seeds, splits)} (mean ± std)")
        auc_png = plot_test_auc(rows, os.path.join(FLAGS.workdir, f"{name}_test_auc.png"), title)
        report[name] = {"batch_size": batch_size, "emb_dim": FLAGS.emb_dim,
                        "deep_dtype": FLAGS.deep_dtype,
                        "split_seeds": list(patience), "patience_epochs": patience,
                        "models": rows, "verdict": verdict(rows), "curves_png": png,
                        "test_auc_png": auc_png}
        bench_data.print_table(title, rows)
        for line in report[name]["verdict"]["lines"]:
            print(line)
        print(f"validation curves: {png}\ntest AUC picture: {auc_png}")
    print(json.dumps(report))


def train_split(data: bench_data.BenchDataset, runs: dict[str, list[dict]]) -> int:
    """Every model and seed on one split of a dataset, appended to `runs` (model name -> runs,
    each with its seed and split seed); returns the epochs of patience both sides stopped by."""
    patience = stop_patience(data.path, data.batch_size)  # DeepCTR stops as we do
    where = f"{data.name} (split {data.split_seed})"
    for seed in map(int, FLAGS.seeds):
        tags = {"seed": seed, "split_seed": data.split_seed}
        for model in FLAGS.peers:
            try:
                result = peer_run(data.path, model, seed, data.batch_size, patience)
            except PeerError as err:
                print(f"bench/peers.py: {err}", file=sys.stderr)
                sys.exit(1)
            runs.setdefault(PEERS[model], []).append(result | tags)
            logging.warning("%s / %s / seed %d: test AUC %.4f", where, PEERS[model], seed,
                            result["test_auc"])
        run_dir = os.path.join(FLAGS.workdir, "runs",
                               os.path.basename(os.path.normpath(data.path)), str(seed))
        for key, metrics in our_runs(data.path, run_dir, seed, data.batch_size).items():
            if key in OURS:
                runs.setdefault(OURS[key], []).append({k: metrics[k] for k in KEPT} | tags)
                logging.warning("%s / %s / seed %d: test AUC %.4f", where, OURS[key], seed,
                                metrics["test_auc"])
    return patience


def verdict(rows: dict[str, dict]) -> dict:
    """The issue's checks on mean test AUC: our parallel preset and the best OptFusion against
    the best DeepCTR model, and the best OptFusion against the best preset; each also paired,
    run by run on the same split and seed (`paired_gap`)."""
    out: dict = {"lines": []}
    auc = {model: r["test_auc_mean"] for model, r in rows.items()}

    def best(models: list[str]) -> str | None:
        present = [m for m in models if m in rows]
        return max(present, key=auc.get) if present else None

    peer = best(list(PEERS.values()))
    preset = best([OURS["parallel"], OURS["stacked"]])
    optfusion = best([OURS["hard"], OURS["soft"]])
    for key, ours, rival in (("parallel_minus_best_deepctr", OURS["parallel"] if OURS["parallel"]
                              in rows else None, peer),
                             ("optfusion_minus_best_deepctr", optfusion, peer),
                             ("optfusion_minus_best_preset", optfusion, preset)):
        if ours is not None and rival is not None:
            gap = auc[ours] - auc[rival]
            paired = paired_gap(rows[ours]["runs"], rows[rival]["runs"])
            out[key] = gap
            out[f"{key}_paired"] = paired
            out["lines"].append(
                f"{ours} - {rival}: {gap:+.4f} AUC "
                f"({'at or above' if gap >= 0 else 'below'}; stds {rows[ours]['test_auc_std']:.4f}"
                f" / {rows[rival]['test_auc_std']:.4f}; paired: {paired['mean']:+.4f} ± "
                f"{paired['std']:.4f}, at or above in {paired['at_or_above']} of "
                f"{paired['pairs']} runs)"
            )
    return out


def paired_gap(ours: Sequence[dict], rival: Sequence[dict]) -> dict:
    """Test-AUC differences run by run, on the same split seed and training seed: their mean,
    std and how many are >= 0. On a small test split most of a model's spread is the split's
    (every model is high or low on the same rows), which the pairing takes out."""
    rival_auc = {(r["split_seed"], r["seed"]): r["test_auc"] for r in rival}
    gaps = [r["test_auc"] - rival_auc[(r["split_seed"], r["seed"])] for r in ours]
    mean, std = bench_data.mean_std(gaps)
    return {"mean": mean, "std": std, "at_or_above": sum(g >= 0 for g in gaps),
            "pairs": len(gaps)}


if __name__ == "__main__":
    app.run(main)
