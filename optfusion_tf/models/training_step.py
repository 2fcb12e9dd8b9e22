"""One loss, one tape, three optimizer groups: the one-shot training step (paper Alg. 1).

`GroupedOptimizerModel` is the base of `OptFusionModel`. Subclasses say which variables form
each group; `compile` takes one optimizer per group and `train_step` applies them all from the
gradients of a single loss:

    group          variables                     optimizer (typical)     coupled L2
    embedding      the embedding table           lazy_adam, lr_emb       l2_emb
    network        components, fusion, output    Adam, lr_nn             l2_nn
    architecture   alpha, beta (search only)     Adam, arch_lr           none

Coupled L2 means `l2 * w` is added to the gradient before Adam, as torch `Adam(weight_decay)`
(the reference) does, not AdamW's decoupled decay. A `LazyAdam` group applies it itself, after
the cross-replica sum and only to the rows in the batch; for any other optimizer the train step
adds it to the (dense) gradient, scaled like the loss under `tf.distribute` so that the summed
gradient carries it once.

The three optimizers are wrapped in a `keras.optimizers.MultiOptimizer`, which becomes
`model.optimizer`, so Keras' own machinery keeps working: `fit` builds it, `save_weights`,
`.keras` files, `tf.train.Checkpoint` and `BackupAndRestore` save and restore every group's
iterations and moments, and `TensorBoard` / `ReduceLROnPlateau` see each group's learning rate
(`learning_rate_<optimizer name>`). They are also exposed as `embedding_optimizer`,
`network_optimizer` and `architecture_optimizer`.

The groups' plumbing (the MultiOptimizer, the partition check, optimizer arguments) is in
`optimizer_groups.py`; the Keras 3.15 multi-worker workarounds of `fit` in `replica_values.py`.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from optfusion_tf.models.optimizer_groups import (
    GroupSelector,
    _GroupMultiOptimizer,
    Untracked,
    VariableGroups,
    check_factor,
    copy_optimizer,
    get_optimizer,
    hand_l2_to_lazy_adam,
    partition,
)
from optfusion_tf.models.replica_values import first_local_values, logs_for_multi_worker_reduce
from optfusion_tf.optimizers.choices import LAZY_ADAM
from optfusion_tf.optimizers.lazy_adam import (
    LazyAdam,
    make_embedding_optimizer,
    sum_duplicate_rows,
)

GROUPS = ("embedding", "network", "architecture")
# compile's defaults when nothing is given: the scripts' --lr_emb / --lr_nn, --arch_lr, --l2_emb.
DEFAULT_LR = 1e-3
DEFAULT_ARCH_LR = 0.1
DEFAULT_L2_EMB = 1e-5
DEFAULT_L2_NN = 1e-5


class GroupedOptimizerModel(keras.Model):
    """A Keras model trained by three optimizer groups from one loss.

    Subclasses implement `call(feature_ids [B, F] int) -> logits [B, 1]` and the properties
    `embedding_variables`, `network_variables` and `architecture_variables` (the last empty
    outside search). The three must partition `trainable_variables`: every trainable variable in
    exactly one group; the first training step checks it.
    """

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        """Variables of the embedding table(s)."""
        raise NotImplementedError(f"{type(self).__name__} must define `embedding_variables`.")

    @property
    def network_variables(self) -> list[keras.Variable]:
        """Trainable variables of the components, fusion operations and output layer."""
        raise NotImplementedError(f"{type(self).__name__} must define `network_variables`.")

    @property
    def architecture_variables(self) -> list[keras.Variable]:
        """Architecture parameters (alpha, beta); empty outside search."""
        return []

    @property
    def embedding_optimizer(self) -> keras.optimizers.Optimizer | None:
        """The embedding group's optimizer (None before `compile`)."""
        return getattr(self, "_embedding_optimizer", None)

    @property
    def network_optimizer(self) -> keras.optimizers.Optimizer | None:
        """The network group's optimizer (None before `compile`)."""
        return getattr(self, "_network_optimizer", None)

    @property
    def architecture_optimizer(self) -> keras.optimizers.Optimizer | None:
        """The architecture group's optimizer (None when not given)."""
        return getattr(self, "_architecture_optimizer", None)

    def compile(
        self,
        optimizer: str | keras.optimizers.Optimizer | None = None,
        *,
        embedding_optimizer: str | keras.optimizers.Optimizer | None = None,
        network_optimizer: str | keras.optimizers.Optimizer | None = None,
        architecture_optimizer: str | keras.optimizers.Optimizer | None = None,
        l2_emb: float | None = None,
        l2_nn: float = DEFAULT_L2_NN,
        clip_global_norm: float = 10.0,
        loss: Any = None,
        **kwargs: Any,
    ) -> None:
        """Configures the three optimizer groups and Keras' usual compile options.

        `compile()` with no optimizer gives the scripts' recipe: `lazy_adam` 1e-3 on the
        embedding, Adam 1e-3 on the network, Adam 0.1 on the architecture variables (if any);
        the scripts' network rate (`--lr_nn_decay_epochs=3 --lr_nn_decay_limit=3` by default)
        is `network_optimizer=keras.optimizers.Adam(epoch_decayed_rate(1e-3, 3,
        steps_per_epoch, 3))` (optfusion_tf.optimizers.schedules); compile's own default is the
        constant 1e-3.
        (The scripts' `--embedding_optimizer=auto` picks dense `"adam"` for a table with no
        more rows than a batch has ids; compile does not know the batch: pass
        `embedding_optimizer="adam"` for such a table.)

        Args:
            optimizer: as for any Keras model, one optimizer (a name or an instance) for every
                variable: each group gets its own copy (`from_config(get_config())`), so a
                dense Adam also updates the embedding table. Not with the group optimizers.
            embedding_optimizer: `"lazy_adam"`, `"adam"` (see `make_embedding_optimizer`; default
                learning rate) or an optimizer instance, e.g.
                `make_embedding_optimizer("lazy_adam", lr_emb)`; default lazy_adam 1e-3.
            network_optimizer: a Keras optimizer name or instance (e.g. `Adam(lr_nn)`); default
                Adam 1e-3.
            architecture_optimizer: idem (e.g. `Adam(arch_lr)`), for the architecture variables
                when the model has any (ignored otherwise); default Adam 0.1.
            l2_emb: coupled L2 on the embedding (rows in the batch with `LazyAdam`, every row
                with a dense optimizer). A `LazyAdam` applies it itself: compile sets its `l2`
                (an instance created with a different non-zero `l2` is an error). None (the
                default): the `l2` of a `LazyAdam` that has one, else DEFAULT_L2_EMB (1e-5,
                the scripts' `--l2_emb`).
            l2_nn: coupled L2 on the network variables (idem for a `LazyAdam`); default
                DEFAULT_L2_NN (1e-5, the scripts' `--l2_nn`).
            clip_global_norm: when > 0, the gradients of all groups together are clipped to this
                global norm before the optimizers see them (FuxiCTR's `max_gradient_norm`,
                torch `clip_grad_norm_` over every parameter); 0 turns it off. The default,
                10, is the scripts' (`--clip_global_norm`). Under a strategy of R replicas
                each replica's share of the step (its gradient of loss / R) is clipped at
                C / R before the cross-replica sum, so the step's norm is at most C at any R;
                it equals the clip of the summed gradient when the shares point the same way,
                and clips more when they disagree.
            loss: defaults to binary cross-entropy on logits.
            **kwargs: the other `keras.Model.compile` arguments (`metrics`, `jit_compile`,
                `steps_per_execution`, `run_eagerly`, ...).

        Optimizer instances, like the model, must be created under the distribution strategy's
        scope when one is used. One instance cannot serve two groups.
        """
        groups = {"embedding": embedding_optimizer, "network": network_optimizer,
                  "architecture": architecture_optimizer}
        if optimizer is not None:
            given = [f"{group}_optimizer" for group, opt in groups.items() if opt is not None]
            if given:
                raise ValueError(
                    "compile takes one `optimizer` (copied for every group) or the group "
                    "optimizers (`embedding_optimizer`, `network_optimizer`, "
                    f"`architecture_optimizer`), not both. Received: optimizer={optimizer!r} "
                    f"and {', '.join(given)}"
                )
            groups = {group: copy_optimizer(optimizer, f"{group}_optimizer") for group in groups}
        defaults = {
            "embedding": lambda: make_embedding_optimizer(LAZY_ADAM, DEFAULT_LR),
            "network": lambda: keras.optimizers.Adam(DEFAULT_LR, name="network_optimizer"),
            "architecture": lambda: keras.optimizers.Adam(
                DEFAULT_ARCH_LR, name="architecture_optimizer"
            ),
        }
        groups = {g: defaults[g]() if opt is None else opt for g, opt in groups.items()}
        if not self.architecture_variables:
            groups["architecture"] = None
        embedding_optimizer, network_optimizer, architecture_optimizer = groups.values()
        optimizers = {
            "embedding": get_optimizer(embedding_optimizer, embedding=True),
            "network": get_optimizer(network_optimizer, name="network_optimizer"),
        }
        if l2_emb is None:
            own = optimizers["embedding"].l2 if isinstance(optimizers["embedding"], LazyAdam) else 0
            l2_emb = own or DEFAULT_L2_EMB
        l2 = {"embedding": check_factor("l2_emb", l2_emb), "network": check_factor("l2_nn", l2_nn)}
        if architecture_optimizer is not None:
            optimizers["architecture"] = get_optimizer(
                architecture_optimizer, name="architecture_optimizer"
            )
        if len({id(opt) for opt in optimizers.values()}) != len(optimizers):
            raise ValueError(
                "Each optimizer group needs its own optimizer instance. Received the same "
                f"instance for several groups: {optimizers}"
            )
        for group, arg in (("embedding", "l2_emb"), ("network", "l2_nn")):
            l2[group] = hand_l2_to_lazy_adam(optimizers[group], l2[group], arg)

        # Plain attributes, so that tf.train.Checkpoint tracks each group's optimizer (it does
        # not look into the MultiOptimizer's list of inner optimizers).
        self._embedding_optimizer = optimizers["embedding"]
        self._network_optimizer = optimizers["network"]
        self._architecture_optimizer = optimizers.get("architecture")
        self._group_l2 = l2
        self._clip_global_norm = check_factor("clip_global_norm", clip_global_norm)
        self._variable_groups: VariableGroups | None = None
        if loss is None:
            loss = keras.losses.BinaryCrossentropy(from_logits=True)
        super().compile(
            optimizer=_GroupMultiOptimizer(GroupSelector(self)),
            loss=loss,
            **kwargs,
        )
        # Keras' own compile config holds the MultiOptimizer, whose selector refers to this
        # model and cannot be serialized; ours holds the three optimizers instead.
        config = {
            "embedding_optimizer": optimizers["embedding"],
            "network_optimizer": optimizers["network"],
            "architecture_optimizer": optimizers.get("architecture"),
            "l2_emb": l2["embedding"],
            "l2_nn": l2["network"],
            "clip_global_norm": self._clip_global_norm,
            "loss": loss,
            **kwargs,
        }
        config["jit_compile"] = self.jit_compile  # resolved, as Keras records it
        self._grouped_compile_config = Untracked(config)

    def get_compile_config(self) -> dict[str, Any]:
        """The `compile` arguments, serialized (saved in `.keras` files)."""
        if not self.compiled:
            return {}
        return keras.saving.serialize_keras_object(self._grouped_compile_config.value)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Re-compiles from `get_compile_config()` (used by `.keras` loading)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data: Any) -> dict[str, Any]:
        """One step: forward, one loss, one tape, then every group's optimizer.

        Args:
            data: `(feature_ids [B, F], labels [B] or [B, 1])`, optionally with sample weights.

        Returns:
            Logs: `loss` (running mean over the epoch) and the compiled metrics.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)  # builds the model on its first call
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        grads = [self._with_coupled_l2(g, v) for g, v in zip(grads, variables)]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if self._clip_global_norm:
            # The norm of a sparse gradient is exact only with the rows of repeated ids summed;
            # the gradients themselves stay as they are (summing them here, before LazyAdam
            # sums them again, gave a different step under jit_compile).
            # Under a strategy each replica holds its share of the step (the gradient of
            # loss / R), summed across replicas later, inside the optimizers: each share is
            # clipped at C / R, so the step's global norm is at most C at any R (R = 1: the
            # exact clip of the step).
            norm = tf.linalg.global_norm([_summed_rows(g) for g in grads])
            grads, _ = tf.clip_by_global_norm(
                grads, self._clip_global_norm / replicas, use_norm=norm
            )
        self.optimizer.apply(grads, variables)

        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        for metric in self.metrics:
            if metric.name == "loss":
                # compute_loss divides by the number of replicas; the log shows the true mean.
                metric.update_state(loss * replicas, sample_weight=batch_size)
        return logs_for_multi_worker_reduce(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Keras' symbolic build from a first batch, without a cross-replica reduction.

        Keras 3.15 MEAN-reduces the first distributed batch over replicas just to learn its
        shapes, which MultiWorkerMirroredStrategy rejects for an (x, y) structure
        (keras-team/keras#20585); the first local replica's batch has the same shapes and keeps
        the integer dtype of the ids.
        """
        if iterator is not None and self._distribute_strategy is not None:
            for _, _, batches in iterator:
                data_batch = first_local_values(self._distribute_strategy, next(batches))
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _with_coupled_l2(self, grad: Any, variable: keras.Variable) -> Any:
        """`grad + l2 * w` for groups whose optimizer does not apply the L2 itself."""
        group = self._group_of_variables().group_of[id(variable)]
        l2 = self._group_l2.get(group, 0.0)
        if grad is None or not l2 or isinstance(self._group_optimizers()[group], LazyAdam):
            return grad
        if isinstance(grad, tf.IndexedSlices):
            grad = tf.convert_to_tensor(grad)  # a dense optimizer decays every row, as torch
        # The summed-over-replicas gradient must carry l2 * w once, like the scaled loss.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return grad + tf.cast(l2 / replicas, grad.dtype) * variable

    def _group_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        """`{group: optimizer}` for the groups that have an optimizer, in GROUPS order."""
        optimizers = {group: getattr(self, f"{group}_optimizer") for group in GROUPS}
        return {group: opt for group, opt in optimizers.items() if opt is not None}

    def _group_of_variables(self) -> VariableGroups:
        """Each variable's group; checks the partition whenever the trainable variables change."""
        trainable = self.trainable_variables
        key = tuple(id(v) for v in trainable)
        if self._variable_groups is None or self._variable_groups.key != key:
            self._variable_groups = partition(
                {group: getattr(self, f"{group}_variables") for group in GROUPS},
                trainable,
                has_architecture_optimizer=self.architecture_optimizer is not None,
            )
        return self._variable_groups


def group_optimizers(model: keras.Model) -> list[keras.optimizers.Optimizer]:
    """The optimizers that hold the model's learning rates: each group's of a
    GroupedOptimizerModel (in GROUPS order), the inner ones of another model's MultiOptimizer,
    else the model's one optimizer."""
    if isinstance(model, GroupedOptimizerModel):
        return list(model._group_optimizers().values())
    optimizer = model.optimizer
    if isinstance(optimizer, keras.optimizers.MultiOptimizer):
        return list(optimizer.optimizers)
    return [optimizer]


def _summed_rows(grad: Any) -> Any:
    """A sparse gradient with the rows of repeated ids summed (its norm is then the dense
    gradient's); anything else unchanged."""
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    ids, values = sum_duplicate_rows(grad)
    return tf.IndexedSlices(values, ids, grad.dense_shape)
