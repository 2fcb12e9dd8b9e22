"""Two Keras 3.15 workarounds that `GroupedOptimizerModel` applies under a tf.distribute strategy.

keras-team/keras#20585: `fit` under MultiWorkerMirroredStrategy fails in
`_maybe_symbolic_build` (it MEAN-reduces the first (x, y) batch across replicas only to learn
its shapes) and when reducing scalar step logs along an axis they lack.
`first_local_values` gives the symbolic build a batch without a reduction;
`logs_for_multi_worker_reduce` shapes the logs so that Keras' reduction yields the scalar mean.
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf


def first_local_values(strategy: tf.distribute.Strategy, structure: Any) -> Any:
    """`structure` with each DistributedValues replaced by its first local value (a batch with
    the per-replica shapes and the original dtypes, for Keras' symbolic build)."""
    local = strategy.experimental_local_results
    return tf.nest.map_structure(
        lambda v: local(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v, structure
    )


def logs_for_multi_worker_reduce(logs: Mapping[str, Any]) -> dict[str, Any]:
    """Train-step logs shaped [1] under multi_worker, scalars otherwise.

    Keras 3.15 reduces multi-worker logs with `strategy.reduce("MEAN", v, axis=0)`, which
    rejects scalars; a [1] value reduces over replicas and that axis to the scalar mean.
    """
    if not _spans_several_workers(tf.distribute.get_strategy()):
        return dict(logs)
    return {key: tf.reshape(value, [1]) for key, value in logs.items()}


def _spans_several_workers(strategy: tf.distribute.Strategy) -> bool:
    """A MultiWorkerMirroredStrategy over more than one process: the test of
    `distribute.distribution.in_multi_worker_mode`, which models/ may not import."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
    )
