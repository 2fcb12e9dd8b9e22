"""Data-parallel training with TensorFlow's own distribution runtime (`--strategy`, issue 6).

- `none`: no strategy (TensorFlow's default): one process, one device.
- `mirrored`: `tf.distribute.MirroredStrategy` over every local GPU (one CPU replica without).
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`, cluster and role from `TF_CONFIG`
  (`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}`; a
  `"chief"` job is allowed too). Every worker runs the same command; variables are mirrored and
  gradients all-reduced each step (embedding rows as IndexedSlices, all-gathered).

What this module gives the training code:
- `make_strategy(name)` and `WorkerRole` (is this process the chief? which input shard?);
- `Distribution.shard`: (index, count) of this worker's slice of every split;
- `gather_rows(strategy, rows)`: every worker's rows [n_i, k] concatenated in worker order, on
  every worker (exact validation AUC over the whole split, identical everywhere);
- `broadcast_from_chief(dist, values)`: the chief's small integer vector, on every worker,
  and `sum_over_workers` (e.g. how many workers refused their inputs).

The two Keras 3.15 workarounds that `fit` needs under MultiWorkerMirroredStrategy
(keras-team/keras#20585) live beside the train step that applies them, in
`optfusion_tf/models/replica_values.py`.

A collective waits for every worker. A worker that dies is detected by TensorFlow's coordination
service (heartbeats, about 10 s) and the others fail with `tf.errors.UnavailableError`;
a cluster that never forms (a worker not started, a wrong address) is bounded by
`cluster_wait_s`, after which the process exits with status 1 (TensorFlow would wait forever).
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import os
import sys
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from optfusion_tf.distribute.choices import DEFAULT_CLUSTER_WAIT_S, STRATEGIES

_JOBS = ("chief", "worker")


class DistributionError(ValueError):
    """--strategy or TF_CONFIG cannot be used as given (the message says why)."""


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster.

    Attributes:
        task_type: "chief" or "worker" ("worker" outside multi_worker).
        task_index: index within its job.
        worker_index: position among all workers, chief first (the input shard, and the order
            of `gather_rows`), as TensorFlow numbers them.
        num_workers: processes in the cluster (1 outside multi_worker).
    """

    task_type: str = "worker"
    task_index: int = 0
    worker_index: int = 0
    num_workers: int = 1

    @property
    def is_chief(self) -> bool:
        """The one process that writes the run directory, TensorBoard and checkpoints."""
        return self.worker_index == 0

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"


@dataclasses.dataclass(frozen=True)
class Distribution:
    """The strategy of a run (None: TensorFlow's default) and this process's role in it."""

    strategy: tf.distribute.Strategy | None = None
    role: WorkerRole = WorkerRole()

    def scope(self) -> contextlib.AbstractContextManager:
        """Where models and optimizers must be created."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    @property
    def replicas(self) -> int:
        """Replicas in sync: the global batch is split into this many per-replica batches."""
        return 1 if self.strategy is None else self.strategy.num_replicas_in_sync

    @property
    def shard(self) -> tuple[int, int] | None:
        """This worker's (index, count) slice of every split; None when one process reads all."""
        if not in_multi_worker_mode(self.strategy):
            return None
        return self.role.worker_index, self.role.num_workers


def parse_tf_config(text: str | None) -> WorkerRole:
    """The WorkerRole described by a TF_CONFIG value; DistributionError naming what is wrong."""
    if not text:
        raise DistributionError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}} (docs/distribution.md).'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise DistributionError(f"TF_CONFIG is not valid JSON ({err}). Received: {text!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise DistributionError(
            f'TF_CONFIG must be an object with "cluster" and "task". Received: {text!r}'
        )
    unknown = sorted(set(cluster) - set(_JOBS))
    if unknown:
        raise DistributionError(
            f"TF_CONFIG: cluster jobs must be {_JOBS} for multi_worker (no parameter servers). "
            f"Received jobs: {sorted(cluster)}"
        )
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses
        ):
            raise DistributionError(
                f'TF_CONFIG: cluster["{job}"] must be a non-empty list of "host:port" strings. '
                f"Received: {addresses!r}"
            )
    if len(cluster.get("chief", [])) > 1:
        raise DistributionError(f"TF_CONFIG: at most one chief. Received: {cluster['chief']}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise DistributionError(
            f"TF_CONFIG: task type {task_type!r} is not a job of the cluster {sorted(cluster)}."
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise DistributionError(
            f"TF_CONFIG: task index must be an integer in [0, {len(cluster[task_type])}) for job "
            f"{task_type!r}. Received: {index!r}"
        )
    chiefs = len(cluster.get("chief", []))
    return WorkerRole(
        task_type=task_type,
        task_index=index,
        worker_index=index if task_type == "chief" else chiefs + index,
        num_workers=chiefs + len(cluster.get("worker", [])),
    )


def make_strategy(name: str, *, cluster_wait_s: float = DEFAULT_CLUSTER_WAIT_S) -> Distribution:
    """The Distribution for `--strategy=name`.

    For multi_worker this must run before any other TensorFlow op of the process. It blocks
    until every worker of TF_CONFIG has joined; if that takes longer than `cluster_wait_s`, the
    process exits with status 1 (TensorFlow itself would wait forever, ignoring SIGTERM).
    """
    if name not in STRATEGIES:
        raise DistributionError(f"--strategy must be one of {STRATEGIES}. Received: {name!r}")
    if name == "none":
        return Distribution()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        logging.info(
            "MirroredStrategy: %d replica(s) on %s", strategy.num_replicas_in_sync,
            ", ".join(strategy.extended.worker_devices),
        )
        return Distribution(strategy)
    role = parse_tf_config(os.environ.get("TF_CONFIG"))
    cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
    message = (
        f"multi_worker: {role.name} waits for the cluster {cluster} to form. If it has not "
        f"formed after --cluster_wait_s={cluster_wait_s:g} s (a worker not started or "
        "unreachable), this process exits with status 1 after a 'Timeout' traceback."
    )
    logging.info("%s", message)
    print(message, file=sys.stderr, flush=True)
    # TensorFlow blocks in C++ while holding the GIL, so no Python thread or signal handler can
    # run until the cluster forms; faulthandler's watchdog is a C thread that can.
    faulthandler.dump_traceback_later(cluster_wait_s, exit=True)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        sum_over_workers(strategy, [1])  # returns once every worker is there
    finally:
        faulthandler.cancel_dump_traceback_later()
    logging.info(
        "multi_worker: %d workers, %d replicas; this is %s%s", role.num_workers,
        strategy.num_replicas_in_sync, role.name, " (chief)" if role.is_chief else "",
    )
    return Distribution(strategy, role)


def in_multi_worker_mode(strategy: tf.distribute.Strategy | None) -> bool:
    """True for a MultiWorkerMirroredStrategy spanning more than one process."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
    )


def _local_replicas(strategy: tf.distribute.Strategy) -> int:
    return len(strategy.extended.worker_devices)


def _on_first_local_replica(strategy: tf.distribute.Strategy, value: np.ndarray, empty: np.ndarray):
    """A PerReplica holding `value` on this worker's first replica and `empty` on the others."""
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: value if ctx.replica_id_in_sync_group % _local_replicas(strategy) == 0 else empty
    )


def gather_rows(strategy: tf.distribute.Strategy | None, rows: np.ndarray) -> np.ndarray:
    """Every worker's `rows` [n_i, k] concatenated in worker order, [sum n_i, k], on every worker.

    A collective: every worker must call it, in the same order. Without multi_worker it
    returns `rows` unchanged.
    """
    rows = np.asarray(rows)
    if not in_multi_worker_mode(strategy):
        return rows
    empty = np.zeros((0, *rows.shape[1:]), rows.dtype)
    return strategy.gather(_on_first_local_replica(strategy, rows, empty), axis=0).numpy()


def sum_over_workers(strategy: tf.distribute.Strategy | None, values: Any) -> list[int]:
    """The element-wise sum of every worker's small vector of integers, on every worker.

    A collective, like gather_rows; without multi_worker it returns `values`.
    """
    values = np.asarray(values, np.int64).reshape(-1)
    if not in_multi_worker_mode(strategy):
        return values.tolist()
    summed = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        _on_first_local_replica(strategy, values, np.zeros_like(values)),
        axis=None,
    )
    return np.asarray(summed).tolist()


def broadcast_from_chief(dist: Distribution, values: Any) -> list[int]:
    """The chief's small vector of integers, on every worker (a collective, like gather_rows)."""
    values = np.asarray(values, np.int64).reshape(-1)
    return sum_over_workers(dist.strategy, values if dist.role.is_chief else 0 * values)

