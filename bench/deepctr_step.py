"""Times DeepCTR 0.9.4 DCN training steps on random in-memory ids, served to bench/train_bench.py.

    python bench/deepctr_step.py --num_fields=39 --emb_dim=16 --vocab=1000000 --batch=4096

The peer side of train_bench's DCN comparison. It runs in its own process because DeepCTR needs
legacy Keras (tf_keras), which TensorFlow serves as `tf.keras` only when TF_USE_LEGACY_KERAS=1 is
set before TensorFlow is first imported (done below, before anything else); train_bench itself
runs Keras 3. The model is built by bench/deepctr_peer.build_model, exactly as deepctr_peer.py
builds it for the quality comparison: DCN with DeepCTR's defaults except
dnn_hidden_units = (F * d,) * 3 and cross_num = 3, one SparseFeat of vocab // F rows per field
(d-dim embedding, plus DeepCTR's 1-dim linear embedding), Adam(1e-3), binary_crossentropy.

Data: `count` (4) batches of random local ids (uniform per field, numpy seed 0) and 0/1 labels,
as a repeated tf.data pipeline of in-memory tensors, like train_bench.random_batches (uniform
case), so the figures are the model's, not the input pipeline's.

Protocol (so that the parent can time DCN in alternation with its own steps without paying this
process' start-up every round): after building the model and running `--warmup` steps (tracing
included) it prints one JSON line {"ready": true, ...settings}; then, for every line
"steps K" read on stdin, it runs one `fit` call of 1 + K steps and prints one JSON line
{"step_seconds": [K floats]} (the first step of the call is not timed, as in train_bench); on
"quit" or end of input it exits 0. Each timed step is forward + backward + the Adam update of
every variable (a `fit` step), the same kind of step as train_bench's.

What DeepCTR's step does that ours does not (and the reverse), at DeepCTR's defaults:
- its optimizer is tf_keras' dense Adam on every variable: the embedding's gradient is sparse,
  but Adam decays both moments of every row each step (O(V)); ours uses lazy_adam (only the
  rows in the batch) on the embedding and Adam on the network;
- l2_reg_embedding = l2_reg_linear = 1e-5 are Keras `embeddings_regularizer`s: a loss term over
  the whole table, so the gradient has a dense [V, d] part every step; ours applies a coupled
  L2 to the rows in the batch only;
- it has a linear part (a second, 1-dim embedding per field, summed into the logit) and
  l2_reg_cross = 1e-5 on the CrossNet kernels; ours has neither, but clips the global gradient
  norm at 10 (the scripts' default).

On a machine without deepctr or tf_keras it prints an error naming the install command
(`pip install -e ".[peers]"`) on stderr and exits 1.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported (see the docstring)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import deepctr_peer  # noqa: E402  (bench/ is on sys.path: this script's directory)

PROG = "bench/deepctr_step.py"
_STDOUT = sys.stdout  # the protocol's JSON lines only; everything else goes to stderr


def reply(obj: dict) -> None:
    print(json.dumps(obj), file=_STDOUT, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dcn", choices=deepctr_peer.MODELS)
    parser.add_argument("--num_fields", type=int, required=True)
    parser.add_argument("--emb_dim", type=int, required=True)
    parser.add_argument("--vocab", type=int, required=True, help="table rows, split over fields")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--count", type=int, default=4, help="distinct batches in memory")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before 'ready'")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sys.stdout = sys.stderr  # DeepCTR print()s
    try:
        deepctr_peer.check_packages()
    except deepctr_peer.MissingPackages as e:
        print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return 1

    import tensorflow as tf

    if not tf.keras.__name__.startswith("tf_keras"):
        print(f"{PROG}: error: tf.keras is {tf.keras.__name__}, not tf_keras; "
              f"`{deepctr_peer.INSTALL}` installs tf-keras", file=sys.stderr, flush=True)
        return 1
    tf.keras.utils.set_random_seed(0)

    per_field = args.vocab // args.num_fields
    names = deepctr_peer.input_names([f"C{j + 1}" for j in range(args.num_fields)])
    model, build, kwargs, _ = deepctr_peer.build_model(
        args.model, names, [per_field] * args.num_fields, args.emb_dim, None, args.lr
    )
    rng = np.random.default_rng(0)
    rows = args.count * args.batch
    ids = rng.integers(0, per_field, size=(rows, args.num_fields)).astype("int32")
    labels = rng.integers(0, 2, size=(rows, 1)).astype("float32")
    data = (
        tf.data.Dataset.from_tensor_slices((deepctr_peer.as_inputs(names, ids), labels))
        .batch(args.batch)
        .repeat()
    )

    class StepTimer(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    settings = deepctr_peer.effective_settings(build, kwargs)
    reply({
        "ready": True,
        "model": deepctr_peer.DEEPCTR_NAMES[args.model],
        "parameters": int(model.count_params()),
        "rows_per_field": per_field,
        "optimizer": f"tf_keras Adam(learning_rate={args.lr}) on every variable (dense moments)",
        "loss": "binary_crossentropy + DeepCTR's L2 regularizers",
        "settings": settings,
        "deepctr_version": importlib.import_module("deepctr").__version__,
        "tf_keras_version": importlib.import_module("tf_keras").__version__,
    })
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] != "steps" or len(command) != 2:
            print(f"{PROG}: error: unknown command {line.strip()!r}", file=sys.stderr, flush=True)
            return 2
        timer = StepTimer()
        model.fit(data, steps_per_epoch=1 + int(command[1]), epochs=1, verbose=0,
                  callbacks=[timer])
        reply({"step_seconds": np.diff(timer.times)[1:].tolist()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
