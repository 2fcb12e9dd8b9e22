"""How large a run directory grows: measured on one dataset, predicted for the paper's.

    python bench/run_dir_size.py [--dataset=frappe] [--epochs=3]

Runs a search and a re-train of the parallel preset on --dataset (bench/bench_data.py) while a
thread samples each run directory's size every 20 ms, and prints, per run: its parameters, the
sampled peak (during training the best weights and the two backups exist, then model.keras is
written before the backup is removed) and the final size, and the bytes per parameter of each.
Every weights file holds the parameters and Adam's two moments (3 x 4 bytes a parameter), so
both sizes are (bytes per parameter) x (parameters), and the embedding table is nearly all of the
parameters on real data. The same costs give the sizes for the paper's datasets (their shapes
below); the last line is one JSON object with everything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from typing import Sequence

from optfusion_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before keras: hides TensorFlow's C++ start-up lines

import keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import bench_data  # noqa: E402
from optfusion_tf.models.model import OptFusionModel  # noqa: E402
from optfusion_tf.training.config import TrainingConfig  # noqa: E402
from optfusion_tf.training.experiment import run_retrain, run_search  # noqa: E402

# (name, ids V, fields F, emb_dim d): the paper's settings (d: Section 4.1.4; F: DESIGN.md
# section 8's widths W = F * d). V from the reference's data-loader comments where it gives one.
PAPER = (
    ("Criteo (threshold 2)", 6_780_368, 39, 40),
    ("Avazu (threshold 5)", 1_544_272, 24, 40),
    ("KDD12, per million ids", 1_000_000, 11, 16),
)
GIB = 2**30

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "frappe", "A bench/bench_data.py dataset name.")
bench_data.register_dataset_names_validator("dataset")
flags.DEFINE_integer("epochs", 3, "Epochs of each run.", lower_bound=1)
flags.DEFINE_integer("emb_dim", 10, "Embedding size of the measured runs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 4096, "Batch size of frappe and the synthetic sets.", lower_bound=1)
flags.DEFINE_string("workdir", "bench/out/run_dir_size", "Datasets and runs (git-ignored).")


def _size(path: str) -> int:
    """Bytes of every file under `path` (0 while it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:  # renamed or removed while walking
                pass
    return total


class PeakSampler:
    """Samples the size of a directory every `interval` seconds in a thread; `peak` is the
    largest size seen."""

    def __init__(self, path: str, interval: float = 0.02) -> None:
        self.path, self.interval, self.peak = path, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _size(self.path))
            time.sleep(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _size(self.path))


def network_parameters(preset: str | None, num_fields: int, emb_dim: int) -> int:
    """Parameters outside the embedding table (components, fusions, output; alpha and beta in
    search) of the --preset model, or of the search supernet when `preset` is None."""
    kwargs = dict(feature_num=1, num_fields=num_fields, emb_dim=emb_dim)
    if preset:
        model = OptFusionModel.from_preset(preset, **kwargs)
    else:
        model = OptFusionModel(fusion="search", **kwargs)
    model.build((None, num_fields))
    return model.count_params() - emb_dim  # the 1 x d table


def main(argv: Sequence[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    keras.utils.disable_interactive_logging()
    (data,) = bench_data.prepare([FLAGS.dataset], FLAGS.workdir, FLAGS.batch_size)
    with open(os.path.join(data.path, "stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    base = TrainingConfig(dataset_dir=data.path, run_dir="", emb_dim=FLAGS.emb_dim,
                          batch_size=data.batch_size, epochs=FLAGS.epochs, patience=FLAGS.epochs,
                          seed=1, overwrite=True)
    runs = {"search": dataclasses.replace(base, run_dir=os.path.join(FLAGS.workdir, "runs", "search")),
            "retrain (parallel preset)": dataclasses.replace(
                base, run_dir=os.path.join(FLAGS.workdir, "runs", "parallel"), preset="parallel")}
    measured = {}
    for name, config in runs.items():
        with PeakSampler(config.run_dir) as sampler:
            if config.preset:
                run_retrain(config, [], given=set())
            else:
                run_search(config, [])
        params = stats["feature_num"] * FLAGS.emb_dim + network_parameters(
            config.preset, stats["num_fields"], FLAGS.emb_dim)
        final = _size(config.run_dir)
        files = sorted(os.path.relpath(os.path.join(root, f), config.run_dir)
                       for root, _, fs in os.walk(config.run_dir) for f in fs if f.endswith((".h5", ".keras")))
        measured[name] = {"parameters": params, "peak_bytes": sampler.peak, "final_bytes": final,
                          "peak_bytes_per_parameter": sampler.peak / params,
                          "final_bytes_per_parameter": final / params, "weight_files": files}
        print(f"{FLAGS.dataset} {name}: {params:,} parameters; peak {sampler.peak / 2**20:.1f} MiB "
              f"({sampler.peak / params:.1f} bytes a parameter), final {final / 2**20:.1f} MiB "
              f"({final / params:.1f} bytes a parameter); weight files {files}")

    print("\npredicted run directory sizes (GiB), from the bytes per parameter measured above:")
    print("| dataset | V | F | d | run | parameters | peak | final |")
    print("|---|---|---|---|---|---|---|---|")
    predicted = []
    for dataset, ids, fields, dim in PAPER:
        for name, m in measured.items():
            params = ids * dim + network_parameters(
                runs[name].preset, fields, dim)
            peak = m["peak_bytes_per_parameter"] * params / GIB
            final = m["final_bytes_per_parameter"] * params / GIB
            predicted.append({"dataset": dataset, "run": name, "parameters": params,
                              "peak_gib": peak, "final_gib": final})
            print(f"| {dataset} | {ids:,} | {fields} | {dim} | {name} | {params:,} | "
                  f"{peak:.2f} | {final:.2f} |")
    print(json.dumps({"dataset": FLAGS.dataset, "measured": measured, "predicted": predicted}))


if __name__ == "__main__":
    app.run(main)
