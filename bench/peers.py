"""Our models beside DeepCTR's on the same rows: test AUC and log loss, mean ± std over seeds.

    python bench/peers.py --dataset_dir=DIR [--seeds=1,2,3] [--emb_dim=10] [--batch_size=4096]
    python bench/peers.py --datasets=criteo_sample,avazu_sample,synthetic_500000 [...]

For every dataset (a directory written by dataprocess/*2TF.py, or bench/bench_data.py names)
and seed, trains
- ours, with the default flags of search.py / retrain.py (only --emb_dim, --batch_size and
  --seed set): the parallel and stacked presets, and a search followed by OptFusion-Hard and
  -Soft re-trained from it;
- DeepCTR 0.9.4's DCN, DCNMix, DeepFM and xDeepFM (bench/deepctr_peer.py, each in its own
  process with TF_USE_LEGACY_KERAS=1, on the same train / validation / test rows, exact sklearn
  AUC, early stopping on validation AUC with patience 2, Adam 1e-3, DeepCTR's defaults
  otherwise; the seed also seeds every initializer, --init_seed);
then prints one table per dataset and, last, one JSON object with every run.

Needs the `peers` extra (`pip install -e ".[peers]"`: deepctr and tf-keras): without it the
script says which command installs it and exits 1 (`--peers=` with no model trains ours only).
A DeepCTR run that fails stops the script with exit code 1 and the tail of its stderr.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import bench_data  # noqa: E402
from optfusion_tf.experiment import TrainingConfig, run_retrain, run_search  # noqa: E402

PEERS = {"dcn": "DeepCTR DCN", "dcnmix": "DeepCTR DCNMix", "deepfm": "DeepCTR DeepFM",
         "xdeepfm": "DeepCTR xDeepFM"}
OURS = {"parallel": "ours: parallel preset", "stacked": "ours: stacked preset",
        "hard": "ours: OptFusion-Hard", "soft": "ours: OptFusion-Soft"}
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepctr_peer.py")
INSTALL = 'pip install -e ".[peers]"'
STDERR_TAIL = 3000

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset_dir", None, "One preprocessed dataset directory (has stats.json).")
flags.DEFINE_list("datasets", [], "Or bench/bench_data.py dataset names, e.g. criteo_sample.")
flags.DEFINE_list("seeds", ["1", "2", "3"], "Training seeds.")
flags.DEFINE_integer("emb_dim", 10, "Embedding size of every model.", lower_bound=1)
flags.DEFINE_integer("batch_size", 4096,
                     "Batch size (the real samples of --datasets use 256).", lower_bound=1)
flags.DEFINE_list("peers", list(PEERS), f"DeepCTR models, of {list(PEERS)} (empty: none).")
flags.DEFINE_list("ours", list(OURS), f"Our models, of {list(OURS)}.")
flags.DEFINE_integer("peer_epochs", 100, "DeepCTR: maximum epochs.", lower_bound=1)
flags.DEFINE_integer("peer_patience", 2, "DeepCTR: epochs without validation-AUC gain before "
                     "stopping (its best weights are kept).", lower_bound=0)
flags.DEFINE_string("workdir", "bench/out/peers", "Datasets and runs (git-ignored).")


class PeerError(RuntimeError):
    """A DeepCTR run failed; the message holds its stderr tail."""


def peer_run(dataset_dir: str, model: str, seed: int, batch_size: int) -> dict:
    """One DeepCTR model in its own process (legacy Keras); its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [
            sys.executable, PEER_SCRIPT, f"--dataset_dir={dataset_dir}", f"--model={model}",
            f"--seed={seed}", f"--init_seed={seed}", f"--emb_dim={FLAGS.emb_dim}", f"--batch_size={batch_size}",
            f"--epochs={FLAGS.peer_epochs}", f"--patience={FLAGS.peer_patience}", f"--out={out}",
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
    """Our models with the default recipe: model key -> metrics.json."""
    base = TrainingConfig(dataset_dir=dataset_dir, run_dir="", emb_dim=FLAGS.emb_dim,
                          batch_size=batch_size, seed=seed, overwrite=True)
    runs = {}
    for preset in ("parallel", "stacked"):
        if preset in FLAGS.ours:
            config = dataclasses.replace(base, preset=preset,
                                         run_dir=os.path.join(workdir, preset))
            runs[preset] = run_retrain(config, [], given=set())
    fusions = [f for f in ("hard", "soft") if f in FLAGS.ours]
    if fusions:
        search = dataclasses.replace(base, run_dir=os.path.join(workdir, "search"))
        runs["search"] = run_search(search, [])
        for fusion in fusions:
            config = dataclasses.replace(
                base, fusion=fusion, arch=os.path.join(search.run_dir, "arch.json"),
                run_dir=os.path.join(workdir, fusion),
            )
            runs[fusion] = run_retrain(config, [], given=set())
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
        name = os.path.basename(os.path.normpath(FLAGS.dataset_dir))
        return [bench_data.BenchDataset(name, FLAGS.dataset_dir, FLAGS.batch_size)]
    return bench_data.prepare(FLAGS.datasets, FLAGS.workdir, FLAGS.batch_size)


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
    for data in _datasets():
        runs: dict[str, list[dict]] = {}
        for seed in map(int, FLAGS.seeds):
            for model in FLAGS.peers:
                try:
                    result = peer_run(data.path, model, seed, data.batch_size)
                except PeerError as err:
                    print(f"bench/peers.py: {err}", file=sys.stderr)
                    sys.exit(1)
                runs.setdefault(PEERS[model], []).append(result)
                logging.warning("%s / %s / seed %d: test AUC %.4f", data.name, PEERS[model], seed,
                                result["test_auc"])
            ours = our_runs(data.path, os.path.join(FLAGS.workdir, "runs", data.name, str(seed)),
                            seed, data.batch_size)
            for key, metrics in ours.items():
                if key in OURS:
                    runs.setdefault(OURS[key], []).append(
                        {k: metrics[k] for k in ("test_auc", "test_logloss", "best_epoch", "seconds")}
                        | {"seed": seed}
                    )
                    logging.warning("%s / %s / seed %d: test AUC %.4f", data.name, OURS[key],
                                    seed, metrics["test_auc"])
        rows = {model: bench_data.summary(rs) for model, rs in runs.items()}
        report[data.name] = {"batch_size": data.batch_size, "emb_dim": FLAGS.emb_dim,
                             "models": rows, "verdict": verdict(rows)}
        bench_data.print_table(
            f"{data.name}: emb_dim {FLAGS.emb_dim}, batch {data.batch_size}, "
            f"{len(FLAGS.seeds)} seeds (mean ± std)", rows,
        )
        for line in report[data.name]["verdict"]["lines"]:
            print(line)
    print(json.dumps(report))


def verdict(rows: dict[str, dict]) -> dict:
    """The issue's two checks: our parallel preset within one std of DeepCTR DCN (or better),
    and the best OptFusion at or above the best DeepCTR model and the best preset."""
    out: dict = {"lines": []}
    auc = {model: r["test_auc_mean"] for model, r in rows.items()}
    parallel, dcn = OURS["parallel"], PEERS["dcn"]
    if parallel in rows and dcn in rows:
        gap = auc[parallel] - auc[dcn]
        ok = gap >= -max(rows[dcn]["test_auc_std"], rows[parallel]["test_auc_std"])
        out["parallel_minus_dcn"] = gap
        out["lines"].append(
            f"parallel preset - DeepCTR DCN: {gap:+.4f} AUC "
            f"({'within one std or better' if ok else 'more than one std behind'})"
        )
    optfusion = [m for m in (OURS["hard"], OURS["soft"]) if m in rows]
    others = [m for m in rows if m in PEERS.values() or m in (OURS["parallel"], OURS["stacked"])]
    if optfusion and others:
        best = max(optfusion, key=auc.get)
        rival = max(others, key=auc.get)
        out["optfusion_minus_best_other"] = auc[best] - auc[rival]
        out["lines"].append(
            f"best OptFusion ({best}) - best other ({rival}): {auc[best] - auc[rival]:+.4f} AUC"
        )
    return out


if __name__ == "__main__":
    app.run(main)
