"""Constructing an OptFusionModel: the checks of its arguments and the Keras layers of its plan.

`check_arguments` raises the ValueError that names a wrong constructor argument.
`add_node_layers` creates each planned node's operation layer (one operation or the
softmax(beta) mixture) and component (shallow or deep), then the output layer, each with its own seeded
initializers; `build_node_layers` builds them for nodes of width W.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import keras

from optfusion_tf.architecture.spec import MIXTURE
from optfusion_tf.architecture.checks import check_choice, check_int
from optfusion_tf.architecture.validation import (
    CONCAT_HEADS, DEEP_DTYPES, KERNEL_INITS, SHALLOW_COMPONENTS,
)
from optfusion_tf.operations import FusionMixture, make_fusion_operation
from optfusion_tf.operations.base import check_output_norm
from optfusion_tf.layers import DeepBlock, make_shallow_layer
from optfusion_tf.layers.initializers import kernel_initializer
from optfusion_tf.models.node_plan import FUSION_MODES, NodePlan

# Seeds of the sublayers' initializers are spaced so that a layer may derive a few from its own.
_SEED_STRIDE = 16


def check_arguments(
    *,
    feature_num: Any,
    num_fields: Any,
    emb_dim: Any,
    n: Any,
    shallow: Any,
    fusion: Any,
    dropout: Any,
    init_constant: Any,
    embedding_init_std: Any,
    kernel_init: Any,
    operation_norm: Any,
    concat_head: Any,
    deep_dtype: Any,
    seed: Any,
) -> None:
    """Raises a ValueError naming the first OptFusionModel argument that is not valid (the
    `arch` is checked by `node_plan.checked_arch`)."""
    for key, value in (("feature_num", feature_num), ("num_fields", num_fields),
                       ("emb_dim", emb_dim), ("n", n)):
        check_int(key, value, wording="a positive integer")
    check_choice("shallow", shallow, SHALLOW_COMPONENTS)
    check_choice("fusion", fusion, FUSION_MODES)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    if not isinstance(init_constant, (int, float)) or not math.isfinite(init_constant):
        raise ValueError(
            "`init_constant` must be a finite number. "
            f"Received: init_constant={init_constant!r}"
        )
    if not isinstance(embedding_init_std, (int, float)) or not embedding_init_std > 0:
        raise ValueError(
            "`embedding_init_std` must be a positive number. "
            f"Received: embedding_init_std={embedding_init_std!r}"
        )
    check_choice("kernel_init", kernel_init, KERNEL_INITS)
    check_output_norm(operation_norm)
    check_choice("concat_head", concat_head, CONCAT_HEADS)
    check_choice("deep_dtype", deep_dtype, DEEP_DTYPES)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")


def add_node_layers(
    graph: tuple[NodePlan, ...],
    components: dict[str, keras.layers.Layer],
    operation_layers: dict[str, keras.layers.Layer],
    *,
    shallow: str,
    num_fields: int,
    width: int,
    dropout: float,
    batch_norm: bool,
    kernel_init: str,
    operation_norm: str,
    direct_head: bool,
    deep_dtype: str,
    seed: int | None,
) -> keras.layers.Dense:
    """Puts each planned node's operation layer in `operation_layers` and its component in `components`, node by
    node in plan order (the model's dicts: Keras tracks the layers, and so orders the model's
    variables, as they are added); returns the output layer, created last. With `direct_head`
    O gets no operation layer: the output layer itself takes O's concatenated inputs. Deep
    blocks compute in the dtype policy `deep_dtype` (DEEP_DTYPES), every other layer in the global
    policy (Keras' default: float32).

    Sublayer k gets seeds from seed + k * _SEED_STRIDE on (the model's embedding and beta use
    seed and seed + 1), so that each layer may derive a few distinct seeds.
    """
    layer_seeds = (
        None if seed is None else seed + k * _SEED_STRIDE for k in itertools.count(1)
    )
    for plan in graph:
        if plan.operation is not None and not (direct_head and plan.kind == "output"):
            make = FusionMixture if plan.operation == MIXTURE else functools.partial(
                make_fusion_operation, plan.operation
            )
            operation_layers[plan.node] = make(
                len(plan.inputs), name=f"fusion_{plan.node}", output_norm=operation_norm,
                **_initializers(kernel_init, next(layer_seeds)),
            )
        if plan.kind == "shallow":
            components[plan.node] = make_shallow_layer(
                shallow, num_fields=num_fields, name=f"shallow_{plan.node}",
                **_initializers(kernel_init, next(layer_seeds)),
            )
        elif plan.kind == "deep":
            layer_seed = next(layer_seeds)
            components[plan.node] = DeepBlock(
                width, dropout=dropout, batch_norm=batch_norm, name=f"deep_{plan.node}",
                seed=layer_seed, dtype=deep_dtype, **_initializers(kernel_init, layer_seed),
            )
    return keras.layers.Dense(1, name="output", **_initializers(kernel_init, next(layer_seeds)))


def build_node_layers(
    graph: tuple[NodePlan, ...],
    components: dict[str, keras.layers.Layer],
    operation_layers: dict[str, keras.layers.Layer],
    output_layer: keras.layers.Layer,
    width: int,
) -> None:
    """Builds the layers of `add_node_layers` for node outputs [batch, width]; the output layer
    for O's input [batch, width] or, without an operation layer at O (`direct_head`), for the
    concatenation of O's inputs [batch, K * width]."""
    node_shape = (None, width)
    output_width = width
    for plan in graph:
        if plan.node in operation_layers:
            operation_layers[plan.node].build([node_shape] * len(plan.inputs))
        if plan.kind == "shallow":
            components[plan.node].build(node_shape, node_shape)
        elif plan.kind == "deep":
            components[plan.node].build(node_shape)
        elif plan.node not in operation_layers:  # O without its operation layer
            output_width = len(plan.inputs) * width
    output_layer.build((None, output_width))


def _initializers(kind: str, seed: int | None) -> dict[str, keras.initializers.Initializer]:
    """A sublayer's kernel (`kernel_initializer(kind)`) and bias (zeros) initializers."""
    return {
        "kernel_initializer": kernel_initializer(kind, seed),
        "bias_initializer": keras.initializers.Zeros(),
    }
