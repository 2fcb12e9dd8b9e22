"""absl flag definitions shared by search.py and retrain.py (issue 4; DESIGN.md sections 4, 5, 7).

The training recipe's defaults were chosen by measured test AUC against DeepCTR on the same
rows (bench/recipe.py, bench/peers.py, docs/training-recipe.md): Adam 1e-3 (the network's rate
1e-3 for 3 epochs, 5e-4 for 3, then 1e-3 / 3), gradients clipped
to norm 10, N(0, 1e-4) embeddings, coupled L2 1e-5 on the embedding (FuxiCTR's value) and on
the network (DeepCTR's cross-layer value), dense Adam where a batch looks up at least half of
the table's rows and lazy_adam below (auto), glorot-normal kernels, early stopping after
max(2 epochs, 128 steps at the full rate, i.e. 384 steps at the default rate's floor of 1/3)
without a validation-AUC gain and no step on a plateau (a step at the first flat epoch, or
patience 2 on 17-step epochs, ended Frappe runs on their plateau). The search keeps the reference's arch_lr
0.1 and init_constant 0.5; the paper's per-dataset settings are in configs/*.flags.
"""

from __future__ import annotations

import math

from absl import flags

from optfusion_tf.architecture.presets import PRESETS
from optfusion_tf.architecture.validation import (
    CONCAT_HEADS, DEEP_DTYPES, KERNEL_INITS, OPERATION_NORMS, OPERATIONS, SHALLOW_COMPONENTS,
)
from optfusion_tf.data.choices import SHUFFLES
from optfusion_tf.distribute.choices import DEFAULT_CLUSTER_WAIT_S, STRATEGIES
from optfusion_tf.optimizers.choices import EMBEDDING_OPTIMIZERS, rates_conflict

SELECTIONS = ("one_shot", "sequential")
RETRAIN_FUSIONS = ("hard", "soft", *OPERATIONS)


def require_finite(names: tuple[str, ...]) -> None:
    """Refuses NaN and infinite values of the float flags `names` when flags are parsed
    (absl's bounds let NaN through: every comparison with NaN is false)."""
    for name in names:
        flags.register_validator(
            name, lambda value: value is None or math.isfinite(value),
            message=f"--{name} must be a finite number",
        )


def define_common_flags() -> None:
    """Flags that search.py and retrain.py share."""
    flags.DEFINE_string("dataset_dir", None, "Preprocessed dataset directory (has stats.json).")
    flags.DEFINE_string(
        "run_dir", None, "Run directory to write; default runs/<stage>_<dataset dir name>."
    )
    flags.DEFINE_integer(
        "emb_dim", 16, "Embedding size d; every node has width W = F * d.", lower_bound=1
    )
    flags.DEFINE_integer("n", 3, "Number of shallow (and of deep) components.", lower_bound=1)
    flags.DEFINE_enum("shallow", "crossnet", SHALLOW_COMPONENTS, "Shallow component type.")
    flags.DEFINE_float(
        "dropout", 0.0, "Dropout rate in the deep blocks.", lower_bound=0.0, upper_bound=0.99
    )
    flags.DEFINE_boolean("batch_norm", False, "Batch normalization in the deep blocks.")
    flags.DEFINE_integer("batch_size", 4096, "Global batch size.", lower_bound=1)
    flags.DEFINE_integer(
        "epochs", 100, "Maximum number of epochs (early stopping usually ends training first).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "patience", 2,
        "Early stopping: the least number of epochs in a row without validation-AUC gain "
        "before stopping (see --patience_steps).", lower_bound=0,
    )
    flags.DEFINE_integer(
        "patience_steps", 128,
        "Early stopping waits at least this many optimizer steps at the full learning rate "
        "without validation-AUC gain: max(--patience, ceil(patience_steps x L / steps per "
        "epoch)) epochs, L = --lr_nn_decay_limit with a decay (1 without), so that short epochs "
        "(small data, large batches) do not end a run on a plateau; 0: --patience alone.",
        lower_bound=0,
    )
    flags.DEFINE_float(
        "plateau_lr_factor", 1.0,
        "On every epoch without validation-AUC gain, multiply the learning rate of every "
        "optimizer group (embedding, network, architecture) by this (FuxiCTR: 0.1); 1 (the "
        "default, as DeepCTR) keeps it: a step at the first flat epoch ends the learning phase "
        "that follows a plateau.",
        lower_bound=1e-12, upper_bound=1.0,
    )
    flags.DEFINE_float(
        "min_lr", 1e-6, "The plateau step never takes a learning rate below this.", lower_bound=0.0
    )
    flags.DEFINE_float(
        "lr_emb", 1e-3, "Adam learning rate of the embedding table.", lower_bound=0.0
    )
    flags.DEFINE_float("lr_nn", 1e-3, "Adam learning rate of the network weights.", lower_bound=0.0)
    flags.DEFINE_integer(
        "lr_nn_decay_epochs", 3,
        "The network's learning rate is --lr_nn / (1 + floor(epoch / this)), epochs counted from "
        "0, until the divisor reaches --lr_nn_decay_limit; 0: constant. Give 0 with a "
        "--plateau_lr_factor below 1.",
        lower_bound=0,
    )
    flags.DEFINE_integer(
        "lr_nn_decay_limit", 3,
        "The divisor of --lr_nn_decay_epochs stops at this: with 3 (the default) the network's "
        "rate never goes below --lr_nn / 3; 0: no limit.",
        lower_bound=0,
    )
    flags.DEFINE_float("l2_emb", 1e-5, "Coupled L2 on the embedding rows.", lower_bound=0.0)
    flags.DEFINE_float("l2_nn", 1e-5, "Coupled L2 on the network weights.", lower_bound=0.0)
    flags.DEFINE_enum(
        "embedding_optimizer",
        "auto",
        EMBEDDING_OPTIMIZERS,
        "lazy_adam updates only the embedding rows in the batch; adam updates the whole table "
        "(what the reference does); auto is adam when one batch looks up at least half of the "
        "table's rows on average (from the vocabulary counts), else lazy_adam.",
    )
    flags.DEFINE_float(
        "embedding_init_std", 1e-4, "Standard deviation of the normal embedding initialization.",
        lower_bound=1e-12,
    )
    flags.DEFINE_enum(
        "kernel_init", "glorot_normal", KERNEL_INITS,
        "Initializer of every kernel: glorot_normal (Keras' and DeepCTR's) or torch (PyTorch "
        "nn.Linear's U(+-1/sqrt(fan_in)), how the reference's models start).",
    )
    flags.DEFINE_enum(
        "concat_head", "projected", CONCAT_HEADS,
        "Re-train only, where the output node O fuses by CONCAT (the parallel preset, an arch "
        "whose O is CONCAT): projected = the paper's CONCAT to width W, then the logit layer "
        "(the reference's); direct = one logit layer over O's concatenated inputs (DCN's head; "
        "+0.0016 test AUC for the parallel preset on Frappe, -0.0036 for OptFusion-Hard: see "
        "docs/model.md). The same functions, trained differently.",
    )
    flags.DEFINE_enum(
        "deep_dtype", "float32", DEEP_DTYPES,
        "The deep blocks' dtype policy: float32, or mixed_bfloat16 (float32 weights, the "
        "blocks' matmuls in bfloat16: about 1.4x the training steps/s of the parallel preset at "
        "the Criteo-like shape on a CPU with AVX512_BF16; on Frappe the same test AUC but for "
        "OptFusion-Soft, -0.0013; slower where the hardware has no bfloat16 units, which the "
        "run warns of). docs/training.md, 'Precision'.",
    )
    flags.DEFINE_float(
        "clip_global_norm", 10.0,
        "Clip the gradients of all groups together to this global norm (FuxiCTR: 10); 0: off.",
        lower_bound=0.0,
    )
    flags.DEFINE_enum(
        "shuffle", "examples", SHUFFLES,
        "Training order each epoch: examples = a seeded permutation of the split's 256-row "
        "chunks, rows permuted within windows of 262,144 (uncompressed shards; GZIP falls back "
        "to chunks); chunks = runs of 256 consecutive rows from a 100,000-row window of the file.",
    )
    flags.DEFINE_enum(
        "operation_norm",
        "none",
        OPERATION_NORMS,
        "none: the paper's fusion operations; rms: rescale every operation's output to unit RMS "
        "per example before it is used or mixed (a remedy for PROD's vanishing scale; "
        "docs/model.md, 'PROD over many inputs'). A re-train takes the search's value from arch.json.",
    )
    flags.DEFINE_integer("seed", 2024, "Seed for weights, shuffling and architecture init.",
                         lower_bound=0, upper_bound=2**32 - 1)  # keras.utils.set_random_seed's range
    flags.DEFINE_boolean(
        "overwrite", False, "Replace an existing run directory written with different flags."
    )
    flags.DEFINE_enum(
        "strategy",
        "none",
        STRATEGIES,
        "none: one process, one device; mirrored: tf.distribute.MirroredStrategy over all local "
        "GPUs; multi_worker: tf.distribute.MultiWorkerMirroredStrategy, one process per worker, "
        "cluster and role from TF_CONFIG (docs/distribution.md). --batch_size stays global.",
    )
    flags.DEFINE_float(
        "cluster_wait_s",
        DEFAULT_CLUSTER_WAIT_S,
        "multi_worker: seconds to wait for every worker of TF_CONFIG to join before giving up.",
        lower_bound=1.0,
    )
    flags.register_multi_flags_validator(
        ["patience", "patience_steps", "plateau_lr_factor"],
        lambda v: v["patience"] + v["patience_steps"] > 0 or v["plateau_lr_factor"] == 1.0,
        message="--patience=0 --patience_steps=0 stops at the first epoch without validation-AUC "
        "gain, so the learning-rate step of --plateau_lr_factor<1 would never be trained with: "
        "give --patience >= 1, or --plateau_lr_factor=1",
    )
    flags.register_multi_flags_validator(
        ["plateau_lr_factor", "min_lr", "lr_emb", "lr_nn"],
        lambda v: v["plateau_lr_factor"] == 1.0 or v["min_lr"] < max(v["lr_emb"], v["lr_nn"]),
        message="--plateau_lr_factor<1 with --min_lr at or above both --lr_emb and --lr_nn: "
        "the step could never lower a learning rate; lower --min_lr or give --plateau_lr_factor=1",
    )
    flags.register_multi_flags_validator(
        ["plateau_lr_factor", "lr_nn_decay_epochs"],
        lambda v: not rates_conflict(v["plateau_lr_factor"], v["lr_nn_decay_epochs"]),
        message="--plateau_lr_factor<1 and --lr_nn_decay_epochs>0 both lower the network's "
        "learning rate; give --lr_nn_decay_epochs=0 with a plateau step (or "
        "--plateau_lr_factor=1)",
    )
    require_finite((
        "dropout", "plateau_lr_factor", "min_lr", "lr_emb", "lr_nn", "l2_emb", "l2_nn",
        "embedding_init_std", "clip_global_norm", "cluster_wait_s",
    ))


def define_search_flags() -> None:
    """Flags of search.py only."""
    flags.DEFINE_float("arch_lr", 0.1, "Adam learning rate of alpha and beta.", lower_bound=0.0)
    flags.DEFINE_float("init_constant", 0.5, "Initial value of every connection logit alpha.")
    flags.DEFINE_enum(
        "selection",
        "one_shot",
        SELECTIONS,
        "one_shot: connections and operations together (the paper's algorithm); sequential: "
        "connections with a fixed ADD first, then operations with connections frozen (Table 5).",
    )
    require_finite(("arch_lr", "init_constant"))


def define_retrain_flags() -> None:
    """Flags of retrain.py only."""
    flags.DEFINE_string("arch", None, "arch.json of a search run (or use --preset).")
    flags.DEFINE_enum(
        "fusion",
        "hard",
        RETRAIN_FUSIONS,
        "hard: argmax(beta) per node, pruned graph; soft: fixed softmax(beta) mixture; "
        "add|prod|concat|att: one operation everywhere.",
    )
    flags.DEFINE_enum("preset", None, PRESETS, "A naive fusion that needs no search.")
    flags.DEFINE_boolean(
        "init_from_search",
        False,
        "Start from the search run's weights (what the reference does) instead of fresh ones.",
    )
