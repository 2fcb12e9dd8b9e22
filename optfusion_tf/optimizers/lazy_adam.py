"""LazyAdam: Adam that updates only the embedding rows present in the batch.

The gradient of an embedding lookup is a `tf.IndexedSlices` with one row per looked-up id. Keras
3's TensorFlow optimizer hands such a gradient unchanged to `update_step`
(`keras/src/optimizers/base_optimizer.py` filters and clips it, `TFOptimizer` all-reduces it
across replicas), but `keras.optimizers.Adam.update_step` then mixes it with the dense moment
tensors, which densifies it: every step reads and writes the whole table and both moments
(about 0.3 s per step for a 2M x 40 table on our 2-core CPU; keras-team/keras#19992, where the
Keras maintainers confirm the dense update). TF Addons' `LazyAdam` solved this for Keras 2, but
TF Addons is end-of-life and does not support Keras 3; Keras 3 provides no lazy Adam and we know
of no maintained library that does (NVIDIA Merlin's was written for Keras 2), so it is ours.

For an `IndexedSlices` gradient `LazyAdam`:
1. sums the rows of duplicate ids (`tf.unique` + `tf.math.unsorted_segment_sum`), so a row's
   gradient is exactly the dense gradient's row;
2. adds the coupled L2 term `l2 * w` of those rows (torch `Adam(weight_decay=l2)` semantics,
   restricted to the rows in the batch);
3. gathers those rows of the weights, m and v, updates them with Keras Adam's formula and bias
   correction from the optimizer's global step (as TF Addons' `LazyAdam` did), and writes them
   back with scatter updates.

Rows absent from the batch keep their weights and moments, so a step costs O(batch ids x d),
independent of the table size. When every row is in every batch the result equals dense Adam.
Dense gradients take Keras Adam's update, with the coupled L2 added to the gradient.

For the whole training step to stay O(batch), the model must look rows up with a resource
gather (`tf.gather(table.value, ids)`), never read the table densely (`keras.ops.take(table,
ids)` does): after a sparse update TensorFlow keeps the variable in copy-on-read mode, and a
dense read then copies the entire table (about 2 s a step for a 10M x 16 table here).

`make_embedding_optimizer` builds the embedding optimizer by name: `lazy_adam` (this class) or
`adam` (dense Keras Adam: what the reference's torch `Adam` does, every row every step).
`resolve_embedding_optimizer` turns the scripts' default, `auto`, into one of them from the
fraction of the table one batch looks up.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from optfusion_tf.optimizers.choices import AUTO, DENSE_ADAM, LAZY_ADAM

DENSE_ADAM_MIN_COVERAGE = 0.5  # `auto`: dense Adam from this expected fraction of rows a batch


def resolve_embedding_optimizer(name: str, batch_coverage: float) -> str:
    """The embedding optimizer that `name` stands for, given the expected fraction of the
    table's rows one batch looks up (`optfusion_tf.data.vocabulary.batch_coverage`).

    `auto` is dense `adam` when a batch looks up at least `DENSE_ADAM_MIN_COVERAGE` of the
    table: a dense step then costs at most twice the rows a lazy step touches, and dense Adam,
    whose moments and coupled L2 keep every row moving, measured higher test AUC there (Frappe at
    batch 4096: 57% of the rows a batch). Below, most rows are absent from most steps: dense
    Adam would move them by stale momentum and by an L2 gradient that Adam normalises to about
    the learning rate a step, at O(table) a step; `auto` is then `lazy_adam` (docs/training-recipe.md
    has the measurements). Other names are returned unchanged.
    """
    if name != AUTO:
        return name
    return DENSE_ADAM if batch_coverage >= DENSE_ADAM_MIN_COVERAGE else LAZY_ADAM


@keras.saving.register_keras_serializable(package="optfusion")
class LazyAdam(keras.optimizers.Adam):
    """Adam whose update for an `IndexedSlices` gradient touches only the rows it names.

    Args:
        learning_rate: float, schedule or callable, as for `keras.optimizers.Adam`.
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: Keras Adam's "epsilon hat" (added to sqrt(v), after bias correction of lr).
        l2: coupled L2 factor (torch `Adam(weight_decay=l2)`): `l2 * w` is added to the gradient
            of the rows in the batch (sparse gradients) or of the whole variable (dense ones),
            after the gradients have been summed across replicas. `>= 0`.
        name: optimizer name.
        **kwargs: other `keras.optimizers.Optimizer` arguments (`clipnorm`, `use_ema`, ...).
            `weight_decay` (decoupled, whole table every step) and `amsgrad` are not supported.

    Shapes: a sparse gradient for a `[V, d]` table has `indices` `[N]` (int, duplicates allowed)
    and `values` `[N, d]`; each step reads and writes `U <= N` rows of the weights, m and v.
    """

    def __init__(
        self,
        learning_rate: float | Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        l2: float = 0.0,
        name: str = "lazy_adam",
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("amsgrad", False):
            raise ValueError("LazyAdam does not support `amsgrad`. Received: amsgrad=True")
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                "LazyAdam does not support decoupled `weight_decay` (it would rewrite every row "
                "each step); use the coupled `l2` instead. "
                f"Received: weight_decay={kwargs['weight_decay']!r}"
            )
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=False, name=name, **kwargs)
        self.l2 = l2

    @property
    def l2(self) -> float:
        """The coupled L2 factor; settable before the first step (it is read when tracing)."""
        return self._l2

    @l2.setter
    def l2(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"`l2` must be a float >= 0. Received: l2={value!r}")
        self._l2 = float(value)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """Applies one Adam step; sparse (lazy) for `IndexedSlices`, Keras Adam otherwise."""
        if not isinstance(gradient, tf.IndexedSlices):
            if self._l2:
                gradient = gradient + tf.cast(self._l2, variable.dtype) * variable
            super().update_step(gradient, variable, learning_rate)
            return
        dtype = variable.dtype
        ids, grad = sum_duplicate_rows(gradient)
        weights = tf.gather(variable, ids)
        grad = tf.cast(grad, dtype)
        if self._l2:
            grad += tf.cast(self._l2, dtype) * weights

        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = (
            tf.cast(learning_rate, dtype)
            * tf.sqrt(1.0 - tf.pow(beta_2, step))
            / (1.0 - tf.pow(beta_1, step))
        )
        index = self._get_variable_index(variable)
        m_var = _as_tf_variable(self._momentums[index])
        v_var = _as_tf_variable(self._velocities[index])
        # Same arithmetic as keras.optimizers.Adam: m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2).
        m = tf.gather(m_var, ids)
        v = tf.gather(v_var, ids)
        m += (grad - m) * (1.0 - beta_1)
        v += (tf.square(grad) - v) * (1.0 - beta_2)
        weights -= m * alpha / (tf.sqrt(v) + self.epsilon)
        # Overwriting the rows (scatter_update) is much cheaper on CPU than a read-modify-write
        # scatter_sub: random-access writes do not wait on memory latency.
        self.assign(m_var, tf.IndexedSlices(m, ids))
        self.assign(v_var, tf.IndexedSlices(v, ids))
        self.assign(variable, tf.IndexedSlices(weights, ids))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("amsgrad")
        config["l2"] = self._l2
        return config


def sum_duplicate_rows(gradient: tf.IndexedSlices) -> tuple[tf.Tensor, tf.Tensor]:
    """Sums the rows of repeated ids of a sparse gradient.

    Args:
        gradient: `IndexedSlices` with `indices` `[N]` and `values` `[N, ...]`.

    Returns:
        `(ids [U], values [U, ...])`: the distinct ids in order of first appearance and the sum
        of their rows.
    """
    ids, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(ids)[0])
    return ids, values


def make_embedding_optimizer(
    name: str,
    learning_rate: float | Any = 0.001,
    *,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
    optimizer_name: str = "embedding_optimizer",
) -> keras.optimizers.Optimizer:
    """Builds the embedding-table optimizer by name.

    Args:
        name: `"lazy_adam"` (rows in the batch only) or `"adam"` (dense Keras Adam, every row
            every step, as the reference's torch `Adam`); resolve the scripts' default `"auto"`
            with `resolve_embedding_optimizer` first.
        learning_rate: the embedding learning rate (lr_emb).
        beta_1, beta_2: Adam decays.
        epsilon: defaults to 1e-8, torch Adam's default, which the reference uses.
        optimizer_name: the optimizer's `name` (TensorBoard logs `learning_rate_<name>`).

    Returns:
        A `LazyAdam` or a `keras.optimizers.Adam`. The coupled L2 is not set here: give it to
        `GroupedOptimizerModel.compile(l2_emb=...)`, which hands it to a `LazyAdam` (rows in the
        batch) or adds it to the dense gradient for `adam` (every row, as torch does).
    """
    if name == LAZY_ADAM:
        return LazyAdam(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=optimizer_name,
        )
    if name == DENSE_ADAM:
        return keras.optimizers.Adam(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=optimizer_name,
        )
    raise ValueError(
        f"The embedding optimizer must be {LAZY_ADAM!r} or {DENSE_ADAM!r} (resolve {AUTO!r} with "
        f"resolve_embedding_optimizer first). Received: name={name!r}"
    )


def _as_tf_variable(variable: Any) -> tf.Variable:
    """The backing `tf.Variable` of a Keras variable, so `tf.gather` reads rows, not the table."""
    return variable.value if isinstance(variable, keras.Variable) else variable
