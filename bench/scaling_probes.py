"""Which Keras 3 + tf.distribute paths can hold an embedding table beyond one machine today.

Our table is one `[V, d]` Keras variable read by `tf.gather(table.value, ids)`, ids `[B, F]`,
trained by the sparse `LazyAdam`; once V*d*12 bytes (table + m + v) outgrow one host it must be
split. On small tables, in-process clusters (localhost gRPC, 2 workers + 2 ps) or 2 logical
CPUs, these probes check what works with TF 2.21 / Keras 3 and where each path breaks
(expected outcome in brackets):
- ps_partitioner_shards_variables: PS + FixedShardsPartitioner shard a keras Embedding [ok];
- ps_model_fit: Keras 3 `model.fit` under PS, fed a per-worker dataset [ValueError];
- ps_gather_2d_ids: scheduled step, `tf.gather(sharded table, ids [B, F])` [ValueError: 1-D];
- ps_keras_adam_on_sharded: Keras Adam applies merged shard gradients [NotImplementedError];
- ps_hand_split_table_lazy_adam: no partitioner, one variable per ps task, LazyAdam [ok];
- keras_distribution_model_parallel_tf: ModelParallel table layout, TF backend [ignored];
- central_storage_lazy_adam: CentralStorageStrategy + `model.fit` + LazyAdam, sparse rows [ok];
- lazy_adam_bfloat16: one LazyAdam step on a bfloat16 table [0 rows change: 1 - beta_2 = 0].

Each probe runs in its own subprocess (`--probe=NAME`, with a timeout: parameter-server
clusters are per-process and can hang). The parent relays what a probe printed (indented), then
`NAME: ok` or `NAME: ExceptionType: first line of the message`; an outcome that is no TF/Keras
exception (table not sharded, no row updated) is raised as a `ProbeFinding`. About 80 s on 2 cores.

Usage:
    python bench/scaling_probes.py                        # every probe
    python bench/scaling_probes.py --probes=ps_model_fit,lazy_adam_bfloat16
    python bench/scaling_probes.py --probe=ps_model_fit   # one probe, in this process

The last line printed is one JSON object
{probe_name: "ok" | "error: <ExceptionType>: <first line of the message>"}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import traceback
from typing import Any, Callable

from optfusion_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before keras: hides TensorFlow's C++ start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from optfusion_tf.optimizers.lazy_adam import LazyAdam  # noqa: E402

RESULT_TAG = "SCALING_PROBE_RESULT "
VOCAB, DIM, FIELDS, BATCH = 1000, 8, 3, 8
# Shards the [VOCAB, DIM] table (32 KB) in 2, leaves the Dense kernel whole.
MIN_SIZE_PARTITIONER = tf.distribute.experimental.partitioners.MinSizePartitioner(
    min_shard_bytes=1024, max_shards=2)


class ProbeFinding(Exception):
    """An observed outcome that is not an exception raised by TF/Keras."""


def _free_port() -> int:
    """A localhost port free now (portpicker is not installed)."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def ps_strategy(partitioner: Any = None) -> tf.distribute.experimental.ParameterServerStrategy:
    """ParameterServerStrategy over an in-process cluster of 2 workers and 2 ps tasks."""
    cluster = tf.train.ClusterSpec({
        "worker": [f"localhost:{_free_port()}" for _ in range(2)],
        "ps": [f"localhost:{_free_port()}" for _ in range(2)],
    })
    worker_config = tf.compat.v1.ConfigProto()
    # workers + 1, as in the TF parameter-server tutorial: with 1 thread, join() hangs.
    worker_config.inter_op_parallelism_threads = 3
    for index in range(2):
        tf.distribute.Server(cluster, job_name="worker", task_index=index, config=worker_config)
        tf.distribute.Server(cluster, job_name="ps", task_index=index)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, rpc_layer="grpc")
    return tf.distribute.experimental.ParameterServerStrategy(resolver, partitioner)


def dataset_fn(_: Any = None) -> tf.data.Dataset:
    """Random ids [BATCH, FIELDS] in [0, VOCAB) and labels [BATCH, 1]; differ per worker."""
    rng = np.random.default_rng()
    ids = rng.integers(0, VOCAB, size=(64, FIELDS))
    labels = rng.integers(0, 2, size=(64, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((ids, labels)).repeat().batch(BATCH)


def bce(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean binary cross-entropy on logits."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))


def run_scheduled_steps(strategy: Any, replica_fn: Callable, steps: int = 2) -> Any:
    """Schedules `steps` steps of `replica_fn(ids, labels)` on the workers; the last loss."""
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))

    @tf.function
    def step(iterator: Any) -> Any:
        return strategy.run(replica_fn, args=next(iterator))

    for _ in range(steps):
        result = coordinator.schedule(step, args=(iterator,))
    coordinator.join()
    return result.fetch()


def make_table(rows: int = VOCAB, name: str = "table") -> keras.Variable:
    """A [rows, DIM] Keras variable, in the current scope."""
    return keras.Variable(keras.initializers.RandomNormal(stddev=0.1)(shape=(rows, DIM)), name=name)


def make_dense() -> keras.layers.Dense:
    """Dense(1) on the FIELDS * DIM concatenated embeddings, built."""
    dense = keras.layers.Dense(1)
    dense.build((None, FIELDS * DIM))
    return dense


def changed_rows(before: np.ndarray, after: np.ndarray) -> int:
    """How many rows of a table differ between two snapshots."""
    return int((np.abs(after.astype("float32") - before.astype("float32")).sum(1) > 0).sum())


def two_logical_cpus() -> list[str]:
    """Splits the CPU into 2 logical devices (before TF initializes them)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return ["/cpu:0", "/cpu:1"]


def ps_partitioner_shards_variables() -> None:
    """1a: FixedShardsPartitioner(2) turns a keras Embedding's table into a ShardedVariable."""
    partitioner = tf.distribute.experimental.partitioners.FixedShardsPartitioner(num_shards=2)
    with ps_strategy(partitioner).scope():
        embedding = keras.layers.Embedding(VOCAB, DIM)
        embedding.build((None, FIELDS))
    value = embedding.embeddings.value
    shards = value.variables if hasattr(value, "variables") else [value]
    print(f"embeddings.value: {type(value).__name__}; "
          + ", ".join(f"{s.shape.as_list()} on {s.device}" for s in shards))
    if not isinstance(value, tf.__internal__.distribute.ShardedVariable) or len(shards) < 2:
        raise ProbeFinding(f"not sharded: embeddings.value is a {type(value).__name__}")


def ps_model_fit() -> None:
    """1b: Keras 3 model.fit under ParameterServerStrategy, fed a per-worker dataset."""
    strategy = ps_strategy(MIN_SIZE_PARTITIONER)
    with strategy.scope():
        inputs = keras.Input((FIELDS,), dtype="int64")
        hidden = keras.layers.Flatten()(keras.layers.Embedding(VOCAB, DIM)(inputs))
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
        model.compile(optimizer="adam", loss="binary_crossentropy")
    print("compiled; embedding table:", type(model.layers[1].embeddings.value).__name__)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    data = coordinator.create_per_worker_dataset(dataset_fn)
    history = model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    print("fit returned:", history.history)


def ps_gather_2d_ids() -> None:
    """1c: a scheduled step reading the sharded table with tf.gather and ids [B, F]."""
    strategy = ps_strategy(MIN_SIZE_PARTITIONER)
    with strategy.scope():
        table, dense = make_table(), make_dense()
    print("table:", type(table.value).__name__)

    def replica_fn(ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        embedded = tf.gather(table.value, ids)
        return bce(labels, dense(tf.reshape(embedded, (-1, FIELDS * DIM))))

    print("loss after 2 steps:", run_scheduled_steps(strategy, replica_fn))


def ps_keras_adam_on_sharded() -> None:
    """1c: per-shard gradients, merged into one IndexedSlices, applied by Keras Adam."""
    strategy = ps_strategy(MIN_SIZE_PARTITIONER)
    with strategy.scope():
        table, dense = make_table(), make_dense()
        variables = [table] + dense.trainable_variables
        optimizer = keras.optimizers.Adam(1e-2)
        optimizer.build(variables)
    shards = list(table.value.variables)
    offsets = np.cumsum([0] + [s.shape[0] for s in shards])[:-1]
    print("table:", type(table.value).__name__, "with", len(shards), "shards")

    def replica_fn(ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        dense_values = [v.value for v in dense.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(shards + dense_values)
            embedded = tf.gather(table.value, tf.reshape(ids, [-1]))
            loss = bce(labels, dense(tf.reshape(embedded, (-1, FIELDS * DIM))))
        grads = tape.gradient(loss, shards + dense_values)
        table_grad = tf.IndexedSlices(
            tf.concat([g.values for g in grads[:len(shards)]], 0),
            tf.concat([g.indices + int(o) for g, o in zip(grads[:len(shards)], offsets)], 0),
            [VOCAB, DIM])
        optimizer.apply([table_grad] + grads[len(shards):], variables)
        return loss

    print("loss after 2 steps:", run_scheduled_steps(strategy, replica_fn))


def ps_hand_split_table_lazy_adam() -> None:
    """1d: no partitioner; one [VOCAB/2, DIM] Keras variable per ps task, our LazyAdam."""
    strategy = ps_strategy()
    with strategy.scope():
        table0, table1 = make_table(VOCAB // 2, "table0"), make_table(VOCAB // 2, "table1")
        dense = make_dense()
        variables = [table0, table1] + dense.trainable_variables
        optimizer = LazyAdam(1e-2)
        optimizer.build(variables)
    for table in (table0, table1):
        print(f"{table.path}: {type(table.value).__name__} on {table.value.device}")
    before = table0.numpy()

    def replica_fn(ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            embedded = tf.nn.embedding_lookup([table0.value, table1.value], tf.reshape(ids, [-1]))
            loss = bce(labels, dense(tf.reshape(embedded, (-1, FIELDS * DIM))))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    loss = run_scheduled_steps(strategy, replica_fn)
    changed = changed_rows(before, table0.numpy())
    # Asynchronous workers; Keras' Variable.assign_add is assign(self + 1): may lose an increment.
    print(f"2 steps joined, loss {loss:.4f}; optimizer.iterations "
          f"{int(optimizer.iterations.numpy())}; rows changed in table0: {changed} of {VOCAB // 2}")
    if not 0 < changed < VOCAB // 2:
        raise ProbeFinding(f"{changed} of {VOCAB // 2} rows of table0 changed")


def keras_distribution_model_parallel_tf() -> None:
    """2: keras.distribution.ModelParallel sharding the embedding over 2 CPUs, TF backend."""
    two_logical_cpus()
    devices = keras.distribution.list_devices("cpu")
    mesh = keras.distribution.DeviceMesh((1, 2), axis_names=("batch", "model"), devices=devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["embedding/embeddings"] = ("model", None)
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch"))
    embedding = keras.layers.Embedding(VOCAB, DIM, name="embedding")
    embedding.build((None, FIELDS))
    value = embedding.embeddings.value
    print(f"backend {keras.backend.backend()}, mesh over {devices}; embeddings.value: "
          f"{type(value).__name__} on {value.device}, "
          f"_layout {getattr(embedding.embeddings, '_layout', None)}")
    if type(value).__name__ == "ResourceVariable":
        raise ProbeFinding(f"ignored: table is a plain ResourceVariable on {value.device}")


def central_storage_lazy_adam() -> None:
    """7: CentralStorageStrategy (table on /cpu:0, compute on 2 CPUs), model.fit, LazyAdam."""
    strategy = tf.distribute.experimental.CentralStorageStrategy(
        compute_devices=two_logical_cpus(), parameter_device="/cpu:0")

    class Gather(keras.layers.Layer):
        def build(self, _: Any) -> None:
            self.table = self.add_weight(shape=(VOCAB, DIM), initializer="random_normal")

        def call(self, ids: tf.Tensor) -> tf.Tensor:
            return tf.reshape(tf.gather(self.table.value, ids), (-1, FIELDS * DIM))

    with strategy.scope():
        inputs = keras.Input((FIELDS,), dtype="int64")
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(Gather()(inputs)))
        model.compile(optimizer=LazyAdam(1e-2), loss="binary_crossentropy")
    table = model.layers[1].table
    before = table.numpy()
    history = model.fit(dataset_fn(), epochs=1, steps_per_epoch=2, verbose=0)
    changed = changed_rows(before, table.numpy())
    print(f"fit: {history.history}; table {type(table.value).__name__} on {table.value.device}; "
          f"rows changed: {changed} of {VOCAB} ({2 * BATCH * FIELDS} ids seen)")
    if not 0 < changed <= 2 * BATCH * FIELDS:
        raise ProbeFinding(f"{changed} of {VOCAB} rows changed")


def lazy_adam_bfloat16() -> None:
    """7: one LazyAdam step on a bfloat16 [1000, 16] table (slots take the table's dtype)."""
    rng = np.random.default_rng(0)
    table = keras.Variable(rng.normal(0, 0.01, (VOCAB, 16)).astype("float32"), dtype="bfloat16")
    optimizer = LazyAdam(1e-3)
    optimizer.build([table])
    with tf.GradientTape() as tape:
        embedded = tf.gather(table.value, tf.constant([[1, 2, 3], [3, 4, 5]], tf.int64))
        loss = tf.reduce_sum(tf.cast(embedded, tf.float32) ** 2)
    grads = tape.gradient(loss, [table])
    before = table.numpy()
    optimizer.apply(grads, [table])
    changed = changed_rows(before, table.numpy())
    print(f"table {table.dtype}, m {optimizer._momentums[0].dtype}, v "
          f"{optimizer._velocities[0].dtype}; gradient {type(grads[0]).__name__} for 5 ids; "
          f"1 - beta_2 in bfloat16 = {float(1.0 - tf.constant(0.999, tf.bfloat16))}; "
          f"rows changed: {changed} of {VOCAB}")
    if changed == 0:
        raise ProbeFinding(f"no training: 0 of {VOCAB} rows changed by one LazyAdam step")


PROBES: dict[str, Callable[[], None]] = {f.__name__: f for f in (
    ps_partitioner_shards_variables, ps_model_fit, ps_gather_2d_ids, ps_keras_adam_on_sharded,
    ps_hand_split_table_lazy_adam, keras_distribution_model_parallel_tf,
    central_storage_lazy_adam, lazy_adam_bfloat16,
)}


def message_first_line(error: Exception) -> str:
    """The message's first line; under autograph's "in user code:" trace, the original's."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if lines and lines[0] == "in user code:":
        return lines[-1].removeprefix(f"{type(error).__name__}: ")
    return lines[0] if lines else ""


def run_probe(name: str) -> None:
    """Runs one probe here, prints RESULT_TAG + its JSON outcome and exits at once."""
    try:
        PROBES[name]()
        outcome = "ok"
    except Exception as error:  # noqa: BLE001 - the outcome is what is being measured
        if not isinstance(error, ProbeFinding):
            frame = traceback.extract_tb(error.__traceback__)[-1]
            print(f"raised at {frame.filename}:{frame.lineno}")
        outcome = f"error: {type(error).__name__}: {message_first_line(error)}"
    print(RESULT_TAG + json.dumps(outcome), flush=True)
    os._exit(0)  # gRPC servers and coordinator threads would keep the interpreter alive


def run_in_subprocess(name: str, timeout_s: float) -> str:
    """Runs `--probe=name` in a child process, relays its output, returns its outcome."""
    command = [sys.executable, os.path.abspath(__file__), f"--probe={name}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        stdout = done.stdout
    except subprocess.TimeoutExpired as expired:  # the child was killed; relay what it printed
        done, stdout = None, expired.stdout or ""
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
    lines = stdout.splitlines()
    for line in lines:
        if not line.startswith(RESULT_TAG):
            print("    " + line)
    results = [line[len(RESULT_TAG):] for line in lines if line.startswith(RESULT_TAG)]
    if results:
        return json.loads(results[-1])
    if done is None:
        return f"error: TimeoutExpired: no result in {timeout_s:.0f} s"
    last_error_line = (done.stderr.strip().splitlines() or [""])[-1]
    return f"error: ProbeProcessFailed: exit code {done.returncode}; {last_error_line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probe", choices=sorted(PROBES), help="run one probe in this process")
    parser.add_argument("--probes", default=",".join(PROBES), help="comma-separated subset")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per probe")
    args = parser.parse_args()
    if args.probe:
        run_probe(args.probe)
    outcomes = {}
    for name in args.probes.split(","):
        outcomes[name] = run_in_subprocess(name, args.timeout)
        print(f"{name}: {outcomes[name].removeprefix('error: ')}", flush=True)
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
