"""Trains one DeepCTR 0.9.4 model on one of our preprocessed dataset directories; exact metrics.

    TF_USE_LEGACY_KERAS=1 python bench/deepctr_peer.py --dataset_dir=DIR \\
        --model=dcn|dcnmix|deepfm|xdeepfm [--seed=1] [--emb_dim=10] [--batch_size=4096] \\
        [--epochs=100] [--patience=2] [--lr=1e-3] [--init_seed=N] [--out=result.json]

The peer half of bench/peers.py: DeepCTR (https://github.com/shenweichen/DeepCTR) trained on the
very train/validation/test rows our models see, so that the two are compared on equal terms.
Needs the `peers` extra (`pip install -e ".[peers]"`: deepctr, tf-keras). Always run it in its
own process: DeepCTR is written against tf.keras 2 (legacy Keras, the `tf_keras` package), which
TensorFlow 2.21 serves as `tf.keras` only when TF_USE_LEGACY_KERAS=1 is set before TensorFlow is
first imported. The script sets TF_USE_LEGACY_KERAS=1 itself, at the very top, whatever the
caller's environment says (so it also works when it is not set), and never imports Keras 3.

What it does
1. Reads <dataset_dir>/stats.json (optfusion_tf.data.stats; a directory without one: exit 2) and
   loads the three splits whole, in file order, with optfusion_tf.data.reader.load_split
   (global ids int64 [N, F], labels). Each field f becomes one DeepCTR
   `SparseFeat(name, vocabulary_size=size_f, embedding_dim=emb_dim)` fed with local ids
   (global id - offset_f, checked to lie in [0, size_f); the field's OOV id is its last local id).
2. Builds the model with DeepCTR's defaults except dnn_hidden_units = (F * emb_dim,) * 3 and, for
   DCN / DCNMix, cross_num = 3 (xDeepFM keeps DeepCTR's cin_layer_size=(128, 128)); compiles it
   with Adam(lr) and binary_crossentropy. The JSON's "settings" lists every keyword argument the
   model constructor got (DeepCTR defaults included).
3. Seeds Python, numpy and TensorFlow (tf.keras.utils.set_random_seed(seed)) and turns on
   tf.config.experimental.enable_op_determinism(), so that equal seeds give equal numbers.
   Trains with model.fit(shuffle=True) (Keras reshuffles the train rows every epoch, from the
   seed). NOTE: DeepCTR seeds some initializers with constants, which the global seed does not
   change (checked): the embeddings (RandomNormal(seed=2020), tf_keras, stateless) and the DNN
   kernels (tensorflow.python.ops.init_ops_v2.glorot_normal(seed=1024)); the CrossNet /
   CrossNetMix / CIN kernels (init_ops v1 initializers, op seed 1024 combined with the global
   seed), the DCNMix gates and the Dense(1) logit heads (unseeded) do change with --seed, as does
   the row order. So by default --seed varies DeepFM only through its logit head and the row
   order. --init_seed=N passes seed=N to the model and RandomNormal(0, 1e-4, seed=N) to every
   SparseFeat, so that the whole initialization varies (pass --init_seed=<seed> for seed studies).
4. After every epoch predicts the whole validation split and computes the exact AUC
   (sklearn roc_auc_score); keeps the best epoch's weights in memory (model.get_weights()) and
   stops after --patience epochs without a strictly higher AUC (or at --epochs); restores the
   best weights; then exact test AUC and log loss (sklearn log_loss, predictions clipped to
   [1e-7, 1 - 1e-7]) over the whole test split.
5. One progress line per epoch on stderr (epoch, train loss = mean batch loss including the L2
   penalties, validation AUC, seconds), and at the end exactly one JSON line on stdout (everything
   else, DeepCTR's own prints included, goes to stderr); --out also writes it to a file
   atomically (a temporary file, then os.replace).
Exit codes: 0 done; 1 deepctr / tf_keras not importable (or tf.keras is not legacy Keras);
2 bad input (no stats.json, unknown model, bad flag value, ids out of range, a split with one
class).

Workarounds for DeepCTR 0.9.4 under TensorFlow 2.21 (everything else runs unmodified: its
`tensorflow.python.ops.init_ops_v2` / `tensorflow.python.layers.utils` imports still exist in
TF 2.21, and its `tensorflow.keras.*` imports resolve to tf_keras 2.21 under the variable):
- `import deepctr` runs deepctr.utils.check_version, which starts a (non-daemon) thread that
  GETs https://pypi.python.org/pypi/deepctr/json without a timeout and print()s to stdout when
  that fails (offline machines). We load deepctr/utils.py ourselves, replace check_version with
  a no-op and register it in sys.modules as "deepctr.utils" before importing deepctr (see
  _import_deepctr), so no network access and no stray stdout.
- DeepCTR's CrossNet print()s "CrossNet parameterization: ..." when built: sys.stdout points to
  stderr for the whole run; only the final JSON line is written to the real stdout.

How DeepCTR 0.9.4 builds these models (from its source: deepctr/feature_column.py,
deepctr/inputs.py, deepctr/layers/core.py, deepctr/layers/utils.py, deepctr/layers/interaction.py,
deepctr/models/{dcn,dcnmix,deepfm,xdeepfm}.py)
- Inputs: one Keras Input of shape (1,) int32 per SparseFeat (feature_column.build_input_features).
- Embeddings (inputs.create_embedding_dict): one tf.keras Embedding(size_f, emb_dim) per field,
  embeddings_initializer = SparseFeat's default RandomNormal(mean 0, stddev 1e-4, seed=2020) (the
  same seed for every field: row i of every field's table starts with the same 10 numbers),
  embeddings_regularizer = l2(l2_reg_embedding = 1e-5): a Keras regularizer on the WHOLE
  embedding matrix (1e-5 * sum of squares of all rows, added to the loss every step, so every
  row decays every step, not only the looked-up ones).
- Linear logit (feature_column.get_linear_logit, layers/utils.Linear mode 0): a second set of
  per-field Embedding(size_f, 1) tables, initialized with Zeros, with l2(l2_reg_linear = 1e-5) on
  the whole table; the logit is the sum of the F looked-up scalars (no bias in Linear:
  use_bias=False). All four models include it (every field is a linear feature here).
- DNN (layers/core.DNN): input = the F embeddings concatenated and flattened (F * emb_dim);
  dense layers kernel glorot_normal(seed=1024) with l2(l2_reg_dnn = 0), bias zeros, activation
  relu, dnn_dropout = 0 (Dropout(seed=1024 + i) after every layer), dnn_use_bn = False (BN
  before the activation when on). Its output (last hidden layer, not a logit) goes to a
  Dense(1, use_bias=False) head (glorot_uniform, unseeded) except in DCN/DCNMix, below.
- DCN (models/dcn.py, layers/interaction.CrossNet): cross_parameterization = 'vector' by default
  (DCN v1: x_{l+1} = x0 * (x_l . w_l) + b_l + x_l, w_l a [d, 1] kernel; 'matrix' is DCN v2:
  x_{l+1} = x0 * (W_l x_l + b_l) + x_l); kernels glorot_normal(seed=1024), biases zeros,
  l2(l2_reg_cross = 1e-5) on the kernels; the layer's input is the flattened embeddings.
  The cross output and the DNN output are concatenated and a Dense(1, use_bias=False) gives the
  logit; the linear logit is added.
- DCNMix (models/dcnmix.py, layers/interaction.CrossNetMix): DCN v2 mixture of low-rank experts,
  low_rank = 32, num_experts = 4; per layer and expert U, V [d, 32] and C [32, 32]
  (glorot_normal(seed=1024), l2(l2_reg_cross)), E(x) = x0 * (U tanh(C tanh(V^T x_l)) + b_l),
  gates Dense(1, use_bias=False) on x_l with a softmax over the experts, x_{l+1} = sum of
  gated experts + x_l. Then as DCN: concat(cross, DNN) -> Dense(1, no bias) + linear logit.
- DeepFM (models/deepfm.py, layers/interaction.FM): logit = linear + FM (0.5 * sum over the
  embedding dims of (sum_f e_f)^2 - sum_f e_f^2, on the same embeddings as the DNN, no weights)
  + Dense(1, no bias)(DNN output).
- xDeepFM (models/xdeepfm.py, layers/interaction.CIN): logit = linear + Dense(1, no bias)(DNN)
  + Dense(1, no bias)(CIN output). CIN: cin_layer_size = (128, 128), split_half = True (half of
  every layer but the last feeds the next layer, half goes to the output: 64 + 128 = 192 sum-
  pooled feature maps), activation relu, filters glorot_uniform(seed=1024 + i), l2_reg_cin = 0.
- Output (layers/core.PredictionLayer): a global bias (zeros) added to the summed logit, then
  sigmoid (task='binary'). The loss Keras minimizes is binary cross-entropy + all the L2 terms.
"""

from __future__ import annotations

import os

# Before TensorFlow is imported anywhere: DeepCTR needs tf.keras to be legacy Keras (tf_keras).
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

PROG = "bench/deepctr_peer.py"
INSTALL = 'pip install -e ".[peers]"'
MODELS = ("dcn", "dcnmix", "deepfm", "xdeepfm")
DEEPCTR_NAMES = {"dcn": "DCN", "dcnmix": "DCNMix", "deepfm": "DeepFM", "xdeepfm": "xDeepFM"}
EMBEDDING_STDDEV = 1e-4  # DeepCTR SparseFeat's default RandomNormal stddev
DEEPCTR_EMBEDDING_SEED = 2020  # ... and seed
PREDICT_BATCH = 8192
CLIP = 1e-7

_STDOUT = sys.stdout  # the final JSON line only; everything else goes to stderr


class UsageError(Exception):
    """Bad input: exit 2."""


class MissingPackages(Exception):
    """deepctr / tf_keras not importable: exit 1."""


def log(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", required=True, help="A preprocessed dataset directory.")
    parser.add_argument("--model", required=True, help=f"One of {', '.join(MODELS)}.")
    parser.add_argument("--seed", type=int, default=1, help="Python/numpy/TF seed.")
    parser.add_argument("--emb_dim", type=int, default=10, help="Embedding size.")
    parser.add_argument("--batch_size", type=int, default=4096, help="Training batch size.")
    parser.add_argument("--epochs", type=int, default=100, help="Maximum epochs.")
    parser.add_argument("--patience", type=int, default=2,
                        help="Stop after this many epochs without a validation-AUC gain.")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate.")
    parser.add_argument("--init_seed", type=int, default=None,
                        help="Seed of DeepCTR's initializers (model seed and embedding "
                        "RandomNormal); default: DeepCTR's fixed 1024 / 2020.")
    parser.add_argument("--out", default=None, help="Also write the JSON result here.")
    args = parser.parse_args(argv)
    if args.model not in MODELS:
        raise UsageError(f"unknown --model={args.model!r}; allowed: {', '.join(MODELS)}")
    for name in ("emb_dim", "batch_size", "epochs", "patience"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    return args


def load_stats(dataset_dir: str):
    from optfusion_tf.data.errors import DataError
    from optfusion_tf.data.stats import STATS_FILE, DatasetStats

    if not os.path.isdir(dataset_dir):
        raise UsageError(f"{dataset_dir}: dataset directory not found (run dataprocess/*2TF.py)")
    if not os.path.isfile(os.path.join(dataset_dir, STATS_FILE)):
        raise UsageError(
            f"{os.path.join(dataset_dir, STATS_FILE)}: not found; --dataset_dir must be a "
            "dataset directory written by dataprocess/*2TF.py"
        )
    try:
        return DatasetStats.load(dataset_dir)
    except DataError as e:
        raise UsageError(str(e)) from e


def check_packages() -> None:
    missing = [m for m in ("deepctr", "tf_keras") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingPackages(
            f"{' and '.join(missing)} not importable; `{INSTALL}` installs the DeepCTR peers' "
            "packages (deepctr, tf-keras)"
        )


def _import_deepctr():
    """Imports deepctr without its import-time PyPI version check (see the module docstring)."""
    if "deepctr" not in sys.modules:
        spec = importlib.util.find_spec("deepctr")
        path = os.path.join(os.path.dirname(spec.origin), "utils.py")
        utils_spec = importlib.util.spec_from_file_location("deepctr.utils", path)
        utils = importlib.util.module_from_spec(utils_spec)
        utils_spec.loader.exec_module(utils)
        utils.check_version = lambda version: None
        sys.modules["deepctr.utils"] = utils
    import deepctr
    from deepctr import models
    from deepctr.feature_column import SparseFeat

    return deepctr, models, SparseFeat


def load_local_ids(dataset_dir: str, stats) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (local ids int32 [N, F], labels float32 [N])."""
    from optfusion_tf.data.reader import load_split

    offsets = np.array([f.offset for f in stats.fields], np.int64)
    sizes = np.array([f.size for f in stats.fields], np.int64)
    splits = {}
    for split in ("train", "validation", "test"):
        ids, labels = load_split(dataset_dir, split, num_fields=stats.num_fields)
        if len(ids) != stats.rows[split]:
            raise UsageError(
                f"{dataset_dir}: read {len(ids)} {split} rows, stats.json says {stats.rows[split]}"
            )
        local = ids - offsets
        bad = (local < 0) | (local >= sizes)
        if bad.any():
            row, field = map(int, np.argwhere(bad)[0])
            raise UsageError(
                f"{dataset_dir}: {split} row {row} field {stats.field_names[field]!r} has global "
                f"id {int(ids[row, field])}, outside the field's range [{int(offsets[field])}, "
                f"{int(offsets[field] + sizes[field])})"
            )
        if len(labels) == 0 or labels.min() == labels.max():
            raise UsageError(
                f"{dataset_dir}: the {split} split has {len(labels)} rows and a single class; "
                "AUC is undefined"
            )
        splits[split] = (local.astype(np.int32), labels.astype(np.float32))
    return splits


def input_names(field_names: list[str]) -> list[str]:
    """Keras-safe, unique input names: f<index>_<field name with odd characters replaced>."""
    return [f"f{j:02d}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}" for j, name in enumerate(field_names)]


def as_inputs(names: list[str], ids: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(ids[:, j : j + 1]) for j, name in enumerate(names)}


def model_kwargs(model: str, num_fields: int, emb_dim: int, init_seed: int | None) -> dict:
    width = num_fields * emb_dim
    kwargs = {"dnn_hidden_units": (width,) * 3, "task": "binary"}
    if model in ("dcn", "dcnmix"):
        kwargs["cross_num"] = 3
    if init_seed is not None:
        kwargs["seed"] = init_seed
    return kwargs


def build_model(model: str, names: list[str], sizes: list[int], emb_dim: int,
                init_seed: int | None, lr: float):
    """A compiled DeepCTR model, one SparseFeat per field (local ids < size), DeepCTR's defaults
    but `model_kwargs`; Adam(lr) and binary_crossentropy (step 2 of the module docstring).

    Needs legacy Keras (TF_USE_LEGACY_KERAS=1 before TensorFlow is imported) and deepctr.
    Returns (model, the DeepCTR constructor, its keyword arguments, the embeddings' seed).
    """
    import tensorflow as tf

    _, models, SparseFeat = _import_deepctr()
    emb_seed = DEEPCTR_EMBEDDING_SEED if init_seed is None else init_seed
    columns = [
        SparseFeat(
            name, vocabulary_size=size, embedding_dim=emb_dim,
            embeddings_initializer=tf.keras.initializers.RandomNormal(
                mean=0.0, stddev=EMBEDDING_STDDEV, seed=emb_seed
            ),
        )
        for name, size in zip(names, sizes)
    ]
    build = getattr(models, DEEPCTR_NAMES[model])
    kwargs = model_kwargs(model, len(names), emb_dim, init_seed)
    keras_model = build(columns, columns, **kwargs)
    keras_model.compile(tf.keras.optimizers.Adam(learning_rate=lr), "binary_crossentropy")
    return keras_model, build, kwargs, emb_seed


def effective_settings(fn, kwargs: dict) -> dict:
    """Every keyword argument of the DeepCTR constructor: its defaults, overridden by kwargs."""
    settings = {}
    for name, param in inspect.signature(fn).parameters.items():
        if name in ("linear_feature_columns", "dnn_feature_columns"):
            continue
        value = kwargs.get(name, param.default)
        settings[name] = list(value) if isinstance(value, tuple) else value
    return settings


def exact_metrics(labels: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    p = np.clip(predictions.astype(np.float64), CLIP, 1 - CLIP)
    return float(roc_auc_score(labels, p)), float(log_loss(labels, p, labels=[0, 1]))


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    stats = load_stats(args.dataset_dir)
    check_packages()

    import tensorflow as tf

    if not tf.keras.__name__.startswith("tf_keras"):
        raise MissingPackages(
            f"tf.keras is {tf.keras.__name__}, not legacy Keras (tf_keras); `{INSTALL}` installs "
            "tf-keras, and TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is imported"
        )
    deepctr, _, _ = _import_deepctr()

    splits = load_local_ids(args.dataset_dir, stats)
    names = input_names(stats.field_names)
    x = {split: as_inputs(names, ids) for split, (ids, _) in splits.items()}
    y = {split: labels for split, (_, labels) in splits.items()}
    load_seconds = time.perf_counter() - start

    tf.keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()

    model, build, kwargs, emb_seed = build_model(
        args.model, names, [field.size for field in stats.fields], args.emb_dim, args.init_seed,
        args.lr,
    )

    state = {"best_auc": -np.inf, "best_logloss": None, "best_epoch": 0, "weights": None,
             "bad": 0, "epochs": 0, "train_seconds": 0.0, "eval_seconds": 0.0,
             "first_epoch_seconds": 0.0, "val_auc_curve": []}

    class ValidationAUC(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            t1 = time.perf_counter()
            state["train_seconds"] += t1 - self.t0
            if epoch == 0:
                state["first_epoch_seconds"] = t1 - self.t0  # includes tf.function tracing
            p = self.model.predict(x["validation"], batch_size=PREDICT_BATCH, verbose=0)[:, 0]
            auc, logloss = exact_metrics(y["validation"], p)
            t2 = time.perf_counter()
            state["eval_seconds"] += t2 - t1
            state["epochs"] = epoch + 1
            state["val_auc_curve"].append(auc)
            better = auc > state["best_auc"]
            if better:
                state.update(best_auc=auc, best_logloss=logloss, best_epoch=epoch + 1, bad=0,
                             weights=self.model.get_weights())
            else:
                state["bad"] += 1
                if state["bad"] >= args.patience:
                    self.model.stop_training = True
            log(f"{args.model} epoch {epoch + 1}: train loss {logs['loss']:.6f} (incl. L2), "
                f"valid AUC {auc:.6f} logloss {logloss:.6f}{' *' if better else ''}, "
                f"{t1 - self.t0:.1f} s train + {t2 - t1:.1f} s eval")

    model.fit(x["train"], y["train"], batch_size=args.batch_size, epochs=args.epochs,
              shuffle=True, verbose=0, callbacks=[ValidationAUC()])
    model.set_weights(state["weights"])
    t0 = time.perf_counter()
    p_test = model.predict(x["test"], batch_size=PREDICT_BATCH, verbose=0)[:, 0]
    test_auc, test_logloss = exact_metrics(y["test"], p_test)
    state["eval_seconds"] += time.perf_counter() - t0

    settings = effective_settings(build, kwargs)
    settings.update(
        deepctr_model=DEEPCTR_NAMES[args.model],
        embeddings_initializer=f"RandomNormal(mean=0.0, stddev={EMBEDDING_STDDEV}, "
        f"seed={emb_seed})",
        embedding_dim=args.emb_dim,
        optimizer=f"Adam(learning_rate={args.lr})",
        loss="binary_crossentropy",
        epochs_max=args.epochs,
        patience=args.patience,
        init_seed=args.init_seed,
    )
    if args.model == "xdeepfm":
        settings["cin_layer_size_note"] = "DeepCTR default (128, 128), split_half=True"
    train_rows = len(y["train"])
    return {
        "model": args.model,
        "seed": args.seed,
        "emb_dim": args.emb_dim,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epochs"],
        "valid_auc": state["best_auc"],
        "valid_logloss": state["best_logloss"],
        "val_auc_curve": state["val_auc_curve"],
        "test_auc": test_auc,
        "test_logloss": test_logloss,
        "seconds": round(time.perf_counter() - start, 3),
        "train_seconds": round(state["train_seconds"], 3),
        "eval_seconds": round(state["eval_seconds"], 3),
        "load_seconds": round(load_seconds, 3),
        "train_samples_per_s": round(train_rows * state["epochs"] / state["train_seconds"], 1),
        # the same without epoch 1 (tracing, warm-up); None after a single epoch
        "train_samples_per_s_after_first_epoch": (
            round(train_rows * (state["epochs"] - 1)
                  / (state["train_seconds"] - state["first_epoch_seconds"]), 1)
            if state["epochs"] > 1 else None
        ),
        "parameters": int(model.count_params()),
        "rows": {split: len(labels) for split, labels in y.items()},
        "num_fields": stats.num_fields,
        "feature_num": stats.feature_num,
        "dataset_dir": os.path.abspath(args.dataset_dir),
        "deepctr_version": deepctr.__version__,
        "tensorflow_version": tf.__version__,
        "tf_keras_version": importlib.import_module("tf_keras").__version__,
        "settings": settings,
    }


def main(argv: list[str] | None = None) -> int:
    sys.stdout = sys.stderr  # DeepCTR print()s; only the result goes to the real stdout
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        result = run(args)
    except UsageError as e:
        log(f"error: {e}")
        return 2
    except MissingPackages as e:
        log(f"error: {e}")
        return 1
    finally:
        sys.stdout = _STDOUT
    line = json.dumps(result, sort_keys=False)
    if args.out:
        write_atomically(args.out, line + "\n")
    print(line, file=_STDOUT, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
