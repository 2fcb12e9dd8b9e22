"""Shared helpers of the tests/test_export_*.py files (no tests here): datasets, run directories,
raw rows of a split. Imported by the other test_export files as `test_export_helpers`."""

import csv
import json
import os

import numpy as np
import tensorflow as tf

from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
from optfusion_tf.data.split import SPLITS, SplitAssigner
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.architecture.search_space import SearchSpace, edge_name

# One architecture for the hard and soft runs: n = 2, D1 is dead (not connected to anything
# live), so a pruned graph must leave its weights out.
ARCH_EDGES = [("E", "S0"), ("S0", "S1"), ("E", "D2"), ("S1", "D2"), ("S1", "S2"), ("S2", "O"), ("D2", "O"), ("E", "O")]


def preprocess_sample(kind, raw_path, out_dir, csv_options=None, **options):
    """Preprocesses one raw file in-process (no worker pool); returns its DatasetStats."""
    return preprocess(kind, str(raw_path), str(out_dir), PreprocessOptions(workers=0, **options), csv_options)


def make_arch(stats, n=2, edges=ARCH_EDGES, emb_dim=4):
    space = SearchSpace(n)
    on = {edge_name(s, d) for s, d in edges}
    alpha = {edge_name(s, d): (1.0 if edge_name(s, d) in on else -1.0) for s, d in space.edges}
    rng = np.random.default_rng(7)
    beta = {node: tuple(float(v) for v in rng.normal(size=4)) for node in space.fusing_nodes}
    return ArchitectureSpec(n=n, shallow="crossnet", alpha=alpha, beta=beta, dataset=stats.dataset,
                    num_fields=stats.num_fields, feature_num=stats.feature_num, emb_dim=emb_dim)


def make_model(stats, fusion, arch=None, emb_dim=4, seed=3):
    """A built, untrained OptFusionModel whose probabilities are spread out (scaled output layer)."""
    arch = arch if arch is not None or fusion in ("search", "search_connections") else make_arch(stats, emb_dim=emb_dim)
    model = OptFusionModel(
        feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=emb_dim, n=2,
        fusion=fusion, arch=arch, seed=seed, dataset=stats.dataset, embedding_init_std=0.3,
    )
    model.build((None, stats.num_fields))
    kernel = model.output_layer.kernel
    kernel.assign(kernel * 60.0)
    return model


def make_retrain_run(run_dir, dataset_dir, fusion="hard", model=None):
    """A run directory as retrain.py leaves it: model.keras, flags.txt, arch.json, metrics.json."""
    stats = DatasetStats.load(str(dataset_dir))
    model = model if model is not None else make_model(stats, fusion)
    os.makedirs(run_dir, exist_ok=True)
    model.save(os.path.join(run_dir, "model.keras"))
    if model.arch is not None:
        model.arch.save(os.path.join(run_dir, "arch.json"))
    flags = [f"--dataset_dir={os.path.abspath(dataset_dir)}", f"--fusion={fusion}", "--emb_dim=4", "--n=2", "--nobatch_norm"]
    with open(os.path.join(run_dir, "flags.txt"), "w") as f:
        f.write("# Re-run: python retrain.py --flagfile=flags.txt\n" + "\n".join(sorted(flags)) + "\n")
    metrics = dict(valid_auc=0.5, valid_logloss=0.7, test_auc=0.5, test_logloss=0.7, best_epoch=1, seconds=1.0)
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    return str(run_dir)


def make_search_run(run_dir, dataset_dir):
    """A run directory as search.py leaves it (flags of its own, no --fusion)."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "flags.txt"), "w") as f:
        f.write(f"--arch_lr=0.1\n--dataset_dir={os.path.abspath(dataset_dir)}\n--selection=one_shot\n")
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump({"valid_auc": 0.5}, f)
    return str(run_dir)


def raw_split_rows(stats, columns, split="test", delimiter="\t", header=False):
    """The raw cells of every line of `split` in stats.input_path, as the split rule assigns them.

    Assumes no bad rows (true of the shared samples). Returns raw column -> list of str.
    """
    with open(stats.input_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if header else csv.QUOTE_NONE))
    if header:
        columns, rows = rows[0], rows[1:]
    chosen = SplitAssigner(stats.ratio, stats.seed).next(len(rows)) == SPLITS.index(split)
    rows = [r for r, keep in zip(rows, chosen) if keep]
    return {c: [r[i] for r in rows] for i, c in enumerate(columns)}


def probabilities(model, ids):
    """The Keras model's probabilities [N] (what every exported signature must reproduce)."""
    return tf.sigmoid(model(ids, training=False)).numpy().reshape(-1)
