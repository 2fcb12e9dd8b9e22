"""Serving latency of the exported SavedModel, hard and soft, and the raw signature's overhead (issue 5).

    python bench/serving_bench.py [--workdir=bench/out/serving] [--rows=100000] [--emb_dim=16] [--n=3]
    python bench/serving_bench.py --run_dirs=runs/retrain_hard,runs/retrain_soft   # existing runs

Without --run_dirs it makes the demo model: demo data (optfusion_tf.demo.demo_data) of --rows rows ->
preprocessing -> search.py -> retrain.py --fusion=hard and --fusion=soft (--epochs each), as
subprocesses, cached in --workdir. Each run is exported (export_savedmodel), loaded back in this
process with tf.saved_model.load, and its two signatures are timed on real test-split rows
(the same rows as ids and as raw strings), the two signatures called in turn: --warmup rounds,
then --calls rounds at batch 1 and --calls_512 at batch 512; per-call wall latency p50/p99 in
ms, examples/s (rows / total time), and raw_overhead_ms = the median over rounds of
predict_raw's minus serving_default's latency (paired, so a shared machine's load cancels).
In-process means no network or TF Serving (de)serialization: a lower bound of a served latency.
The last line printed is one JSON object with every figure (and the machine's load average,
since the machine may be shared).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Sequence

from optfusion_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before keras: hides TensorFlow's C++ start-up lines

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from optfusion_tf.data.preprocess import PreprocessOptions, preprocess  # noqa: E402
from optfusion_tf.demo.demo_data import write_demo_criteo  # noqa: E402
from optfusion_tf.export.raw_features import signature_input_names  # noqa: E402
from optfusion_tf.export.request_example import example_rows  # noqa: E402
from optfusion_tf.export.retrain_run import open_retrain_run  # noqa: E402
from optfusion_tf.export.savedmodel import export_savedmodel  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "bench/out/serving", "Demo data, runs and exports (git-ignored).")
flags.DEFINE_list("run_dirs", [], "Re-train runs to export and time instead of making the demo ones.")
flags.DEFINE_integer("rows", 100_000, "Rows of demo data.", lower_bound=1000)
flags.DEFINE_integer("emb_dim", 16, "Demo model embedding size.", lower_bound=1)
flags.DEFINE_integer("n", 3, "Demo model shallow/deep pairs.", lower_bound=1)
flags.DEFINE_integer("epochs", 1, "Epochs of the demo search and of each re-train.", lower_bound=1)
flags.DEFINE_integer("seed", 2022, "Seed of the demo data and runs.")
flags.DEFINE_integer("warmup", 20, "Untimed calls before each measurement.", lower_bound=1)
flags.DEFINE_integer("calls", 500, "Timed calls at batch 1.", lower_bound=10)
flags.DEFINE_integer("calls_512", 100, "Timed calls at batch 512.", lower_bound=10)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES = (1, 512)


def _run(script: str, *args: str) -> None:
    subprocess.run([sys.executable, os.path.join(REPO, script), *args], check=True, stdout=subprocess.DEVNULL)


def demo_runs(workdir: str) -> list[str]:
    """The demo's hard and soft re-train runs (made once, reused from `workdir`)."""
    raw = os.path.join(workdir, "demo_criteo.txt")
    dataset = os.path.join(workdir, "demo_criteo_2")
    if not os.path.isfile(os.path.join(dataset, "stats.json")):
        os.makedirs(workdir, exist_ok=True)
        write_demo_criteo(raw, FLAGS.rows, FLAGS.seed)
        preprocess("criteo", raw, dataset, PreprocessOptions(seed=FLAGS.seed, overwrite=True))
    common = [f"--dataset_dir={os.path.abspath(dataset)}", f"--epochs={FLAGS.epochs}", f"--seed={FLAGS.seed}"]
    search = os.path.join(workdir, "search")
    if not os.path.isfile(os.path.join(search, "metrics.json")):
        _run("search.py", *common, f"--run_dir={search}", f"--emb_dim={FLAGS.emb_dim}", f"--n={FLAGS.n}")
    runs = []
    for fusion in ("hard", "soft"):
        run = os.path.join(workdir, f"retrain_{fusion}")
        if not os.path.isfile(os.path.join(run, "metrics.json")):
            _run("retrain.py", *common, f"--run_dir={run}", f"--arch={search}/arch.json", f"--fusion={fusion}")
        runs.append(run)
    return runs


def _paired_latencies(functions: list[Any], inputs: list[dict[str, tf.Tensor]], calls: int) -> np.ndarray:
    """Wall seconds [calls, len(functions)]: each round calls every function once, in turn, so
    that a shared machine's load falls on all of them alike (after FLAGS.warmup rounds)."""
    times = np.empty((calls, len(functions)))
    for i in range(-FLAGS.warmup, calls):
        for j, (function, kwargs) in enumerate(zip(functions, inputs)):
            start = time.perf_counter()
            function(**kwargs)["probability"].numpy()
            if i >= 0:
                times[i, j] = time.perf_counter() - start
    return times


def time_export(path: str, ids: np.ndarray, raw: dict[str, np.ndarray]) -> dict[str, Any]:
    """p50/p99 (ms) and examples/s of both signatures of the SavedModel at `path`, and the raw
    signature's overhead: the median over rounds of (predict_raw - serving_default) latency."""
    signatures = tf.saved_model.load(path).signatures
    names = ("serving_default", "predict_raw")
    figures: dict[str, Any] = {name: {} for name in names}
    figures["raw_overhead_ms"] = {}
    for batch in BATCHES:
        inputs = [{"feature_ids": tf.constant(ids[:batch])}, {k: tf.constant(v[:batch]) for k, v in raw.items()}]
        times = _paired_latencies([signatures[n] for n in names], inputs, FLAGS.calls if batch == 1 else FLAGS.calls_512)
        for j, name in enumerate(names):
            figures[name][f"batch_{batch}"] = {
                "p50_ms": round(float(np.percentile(times[:, j], 50)) * 1e3, 3),
                "p99_ms": round(float(np.percentile(times[:, j], 99)) * 1e3, 3),
                "examples_per_s": round(batch * len(times) / float(times[:, j].sum())),
            }
        figures["raw_overhead_ms"][f"batch_{batch}"] = round(float(np.median(times[:, 1] - times[:, 0])) * 1e3, 3)
    return figures


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    runs = FLAGS.run_dirs or demo_runs(FLAGS.workdir)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "models": {}}
    for run_dir in runs:
        run = open_retrain_run(run_dir)
        exported = export_savedmodel(run_dir, os.path.join(FLAGS.workdir, "export"), os.path.basename(os.path.normpath(run_dir)))
        rows = example_rows(run.stats, run.dataset_dir, signature_input_names(run.stats), max(BATCHES))
        if rows.raw is None or len(rows.ids) < max(BATCHES):
            raise app.UsageError(f"{run_dir}: need {max(BATCHES)} raw and id rows of the test split ({rows.raw_note})")
        figures = time_export(exported.path, rows.ids, rows.raw_columns())
        figures.update(fusion=exported.fusion, parameters=int(run.load_model().count_params()), export=exported.path)
        result["models"][run_dir] = figures
        print(f"{run_dir} ({exported.fusion}): {json.dumps(figures)}")
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    app.run(main)
