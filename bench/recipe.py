"""How the training recipe changes test AUC: the measurements behind the default flags.

    python bench/recipe.py [--datasets=frappe,criteo_sample,avazu_sample]
                           [--recipes=...] [--seeds=1,2,3] [--emb_dim=10] [--preset=parallel]
                           [--split_seeds=2022]

Trains the --preset model (a fixed architecture, so that only the recipe changes) with each
recipe, on every dataset (bench/bench_data.py: the same rows for every recipe and seed; with
--split_seeds, on each split of it), and prints test AUC / log loss as mean ± std over the seeds
(and splits), the mean best epoch and seconds. The
last line is one JSON object with every run.

A recipe is a set of TrainingConfig fields (the flags of search.py / retrain.py) over the
defaults; "defaults" is what the flags give today. RECIPES lists what was compared: "before"
(this project's recipe until issue 11), "issue 11 defaults" (FuxiCTR's protocol with lazy_adam
and torch kernels), "round 1 defaults" (issue 23's first recipe: lazy_adam everywhere, no L2 on
the network) with one thing changed ("round 1 - ..."), "round 5 defaults" (today's with a
constant network rate) with one thing changed ("round 5 - ..." / "round 5 + ..."), and
"defaults", today's (round 6).
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
from optfusion_tf.training.config import TrainingConfig  # noqa: E402
from optfusion_tf.training.experiment import run_retrain  # noqa: E402

# The recipe of this project before issue 11 (the reference's search_stage.py settings).
BEFORE = dict(
    epochs=5, patience=1, patience_steps=0, plateau_lr_factor=1.0, lr_emb=3e-3, lr_nn=3e-3,
    l2_emb=3e-6, l2_nn=3e-6, embedding_optimizer="lazy_adam", embedding_init_std=1e-2,
    kernel_init="torch", clip_global_norm=0.0, shuffle="chunks", lr_nn_decay_epochs=0,
)
# The defaults of issue 11: BARS / FuxiCTR's protocol (Adam 1e-3, x0.1 on every epoch without a
# gain, stop after 2, clip 10, N(0, 1e-4) embeddings, L2 1e-5 on the embedding only) with
# lazy_adam, and the reference's torch kernels.
ISSUE_11 = dict(
    epochs=100, patience=2, patience_steps=0, plateau_lr_factor=0.1, lr_emb=1e-3, lr_nn=1e-3,
    l2_emb=1e-5, l2_nn=0.0, embedding_optimizer="lazy_adam", embedding_init_std=1e-4,
    kernel_init="torch", clip_global_norm=10.0, shuffle="examples", lr_nn_decay_epochs=0,
)
# The first defaults of issue 23 (round 1): lazy_adam on every table and no L2 on the network.
ROUND_1 = dict(embedding_optimizer="lazy_adam", l2_nn=0.0, lr_nn_decay_epochs=0)
# The defaults of rounds 3 to 5 of issue 23: today's with a constant network rate.
ROUND_5 = dict(lr_nn_decay_epochs=0)
# Each "round 1 - X" changes one part of round 1 back or to an alternative, each "round 5 - X"
# or "round 5 + X" one part of round 5's.
RECIPES = {
    "before": BEFORE,
    "issue 11 defaults": ISSUE_11,
    "issue 11 defaults + glorot_normal kernels": {**ISSUE_11, "kernel_init": "glorot_normal"},
    "round 1 defaults": ROUND_1,
    "round 1 - torch kernels": {**ROUND_1, "kernel_init": "torch"},
    "round 1 - x0.1 lr step": {**ROUND_1, "plateau_lr_factor": 0.1},
    "round 1 - patience_steps 0": {**ROUND_1, "patience_steps": 0},
    "round 1 - chunks shuffle": {**ROUND_1, "shuffle": "chunks"},
    "round 1 - embedding init 1e-3": {**ROUND_1, "embedding_init_std": 1e-3},
    "round 1 - l2_emb 0": {**ROUND_1, "l2_emb": 0.0},
    "round 1 - no clipping": {**ROUND_1, "clip_global_norm": 0.0},
    "round 5 - lazy_adam": {**ROUND_5, "embedding_optimizer": "lazy_adam"},
    "round 5 - adam": {**ROUND_5, "embedding_optimizer": "adam"},
    "round 5 - l2_nn 0": {**ROUND_5, "l2_nn": 0.0},
    "round 5 defaults": ROUND_5,
    "round 5 + direct head": {**ROUND_5, "concat_head": "direct"},
    "round 5 + lr_nn 3e-4": {**ROUND_5, "lr_nn": 3e-4},
    "round 5 + lr_nn_decay_epochs 3": {"lr_nn_decay_limit": 0},
    "round 5 + lr_nn_decay_epochs 5": {"lr_nn_decay_epochs": 5, "lr_nn_decay_limit": 0},
    "defaults": {},
}

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["frappe", "criteo_sample", "avazu_sample"],
                  "Datasets (bench/bench_data.py names).")
bench_data.register_dataset_names_validator("datasets")
flags.DEFINE_list("recipes", list(RECIPES), "Recipes to compare (keys of RECIPES).")
flags.DEFINE_list("seeds", ["1", "2", "3"], "Training seeds.")
flags.DEFINE_integer("emb_dim", 10, "Embedding size.", lower_bound=1)
flags.DEFINE_integer("batch_size", 4096,
                     "Batch size of frappe and the synthetic sets (the real samples use 256).",
                     lower_bound=1)
flags.DEFINE_enum("preset", "parallel", ["parallel", "stacked"], "The fixed model trained.")
flags.DEFINE_string("workdir", "bench/out/recipe", "Datasets and runs (git-ignored).")
bench_data.define_split_seeds_flag()


def main(argv: Sequence[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    keras.utils.disable_interactive_logging()  # no progress bars: one line per run
    unknown = [r for r in FLAGS.recipes if r not in RECIPES]
    if unknown:
        raise app.UsageError(f"--recipes: unknown {unknown}; known: {list(RECIPES)}")
    os.makedirs(FLAGS.workdir, exist_ok=True)
    report = {}
    datasets = bench_data.prepare(FLAGS.datasets, FLAGS.workdir, FLAGS.batch_size,
                                  bench_data.flag_split_seeds())
    for name, splits in bench_data.by_name(datasets):
        rows = {recipe: bench_data.summary(
                    [run for data in splits for run in recipe_runs(data, recipe)])
                for recipe in FLAGS.recipes}
        report[name] = rows
        bench_data.print_table(
            f"{name}: {FLAGS.preset} preset, emb_dim {FLAGS.emb_dim}, batch "
            f"{splits[0].batch_size}, {bench_data.runs_label(FLAGS.seeds, splits)}", rows,
        )
    print(json.dumps(report))


def recipe_runs(data: bench_data.BenchDataset, recipe: str) -> list[dict]:
    """The --preset model with one recipe on one split of a dataset, every seed: the metrics
    of each run, with its seed and split seed."""
    runs = []
    for seed in map(int, FLAGS.seeds):
        config = TrainingConfig(
            dataset_dir=data.path,
            run_dir=os.path.join(FLAGS.workdir, "runs", os.path.basename(data.path), recipe,
                                 str(seed)),
            emb_dim=FLAGS.emb_dim, batch_size=data.batch_size, seed=seed,
            overwrite=True, preset=FLAGS.preset,
        )
        metrics = run_retrain(dataclasses.replace(config, **RECIPES[recipe]), [], given=set())
        runs.append({k: metrics[k] for k in ("test_auc", "test_logloss", "best_epoch", "seconds")}
                    | {"seed": seed, "split_seed": data.split_seed})
        logging.warning("%s (split %d) / %s / seed %d: test AUC %.4f (best epoch %d)", data.name,
                        data.split_seed, recipe, seed, metrics["test_auc"], metrics["best_epoch"])
    return runs


if __name__ == "__main__":
    app.run(main)
