"""The warm start of a re-train from a search (`--init_from_search`): copying its weights.

`load_search_weights(model, search_model)` is `OptFusionModel.load_search_weights`: the
embedding, every built node's component and output weights, and each operation the search
model has at that node, a CONCAT kernel cut down to this node's inputs; a direct head (O =
CONCAT and the logit layer as one map) gets the product of the search's two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np

from optfusion_tf.architecture.search_space import OUTPUT
from optfusion_tf.operations import FUSION_OPERATIONS, FusionMixture, FusionOperation

if TYPE_CHECKING:
    from optfusion_tf.models.model import OptFusionModel


def load_search_weights(model: OptFusionModel, search_model: OptFusionModel) -> None:
    """Initializes `model`'s weights from a trained search model.

    Copies the embedding, the component and output weights of every node built in `model`, and
    the weights of each operation the search model has at that node; a CONCAT kernel
    keeps the row blocks of this node's inputs (disconnected slots contributed nothing in
    search). alpha/beta are not copied (they are fixed by `arch` in `model`). Operations the
    search model did not have (e.g. after "search_connections") keep their fresh
    initialization.

    Raises:
        ValueError: the models differ in shape, or the search model lacks a node of `model`
            or one of its inputs.
    """
    for key in ("feature_num", "num_fields", "emb_dim", "n", "shallow"):
        if getattr(model, key) != getattr(search_model, key):
            raise ValueError(
                f"The search model has {key}={getattr(search_model, key)!r}, this model "
                f"{key}={getattr(model, key)!r}."
            )
    search_plans = {plan.node: plan for plan in search_model.graph}
    missing = [
        plan.node
        for plan in model.graph
        if plan.node not in search_plans
        or not set(plan.inputs) <= set(search_plans[plan.node].inputs)
    ]
    if missing:
        raise ValueError(
            "The search model does not build these nodes with (at least) this model's "
            f"inputs, so their weights cannot come from it: {missing}"
        )
    model._ensure_built()
    search_model._ensure_built()
    model.embedding.assign(search_model.embedding.value)
    if model.direct_head:
        _copy_direct_head(
            search_model, search_plans[OUTPUT].inputs, model, model.output_plan.inputs
        )
    else:
        model.output_layer.set_weights(search_model.output_layer.get_weights())
    for plan in model.graph:
        source_plan = search_plans[plan.node]
        if plan.node in model.components:
            model.components[plan.node].set_weights(
                search_model.components[plan.node].get_weights()
            )
        if plan.node in model.fusions:
            _copy_operation_weights(
                search_model.fusions[source_plan.node], source_plan.inputs,
                model.fusions[plan.node], plan.inputs,
            )


def _copy_direct_head(
    search_model: OptFusionModel,
    source_inputs: tuple[str, ...],
    model: OptFusionModel,
    target_inputs: tuple[str, ...],
) -> None:
    """The direct head [K * W, 1] of `model` from the search's CONCAT at O, cut down to
    `target_inputs`, times its logit layer: `concat(x) @ (K @ k) + (b @ k + c)`, the function
    the search's CONCAT branch and logit compute. Without a CONCAT at the search's O, the head
    keeps its fresh initialization."""
    concat = _operations_of(search_model.fusions[OUTPUT]).get("concat")
    if concat is None:
        return
    kernel, bias = _cut_concat_kernel(concat, source_inputs, target_inputs)
    head_kernel, head_bias = search_model.output_layer.get_weights()
    model.output_layer.set_weights([kernel @ head_kernel, bias @ head_kernel + head_bias])


def _cut_concat_kernel(
    concat: FusionOperation, source_inputs: tuple[str, ...], target_inputs: tuple[str, ...]
) -> list[np.ndarray]:
    """A CONCAT's [kernel, bias] with the kernel's row blocks of `target_inputs` only."""
    kernel, bias = concat.get_weights()
    width = concat.width
    blocks = [source_inputs.index(src) for src in target_inputs]
    return [np.concatenate([kernel[k * width:(k + 1) * width] for k in blocks], axis=0), bias]


def _copy_operation_weights(
    source: keras.layers.Layer,
    source_inputs: tuple[str, ...],
    target: keras.layers.Layer,
    target_inputs: tuple[str, ...],
) -> None:
    """Copies the weights of each operation of `target` that `source` also has."""
    source_ops = _operations_of(source)
    for name, operation in _operations_of(target).items():
        if name not in source_ops or not operation.weights:
            continue
        weights = (
            _cut_concat_kernel(source_ops[name], source_inputs, target_inputs)
            if name == "concat" else source_ops[name].get_weights()
        )
        operation.set_weights(weights)


def _operations_of(layer: keras.layers.Layer) -> dict[str, FusionOperation]:
    """operation name -> layer, for a FusionMixture or a single FusionOperation."""
    if isinstance(layer, FusionMixture):
        return dict(layer.fusion_operations)
    return {name: layer for name, cls in FUSION_OPERATIONS.items() if type(layer) is cls}
