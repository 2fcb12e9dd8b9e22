"""Fusion operations by name: the keys are validation.OPERATIONS (add|prod|concat|att)."""

from __future__ import annotations

from typing import Any

from optfusion_tf.operations.add import AddFusion
from optfusion_tf.operations.attention import AttentionFusion
from optfusion_tf.operations.base import FusionOperation, WeightedFusionOperation
from optfusion_tf.operations.concat import ConcatFusion
from optfusion_tf.operations.prod import ProdFusion
from optfusion_tf.layers.initializers import InitializerLike

FUSION_OPERATIONS: dict[str, type[FusionOperation]] = {
    "add": AddFusion,
    "prod": ProdFusion,
    "concat": ConcatFusion,
    "att": AttentionFusion,
}


def make_fusion_operation(
    operation: str,
    num_inputs: int,
    kernel_initializer: InitializerLike = "glorot_uniform",
    bias_initializer: InitializerLike = "zeros",
    **kwargs: Any,
) -> FusionOperation:
    """A new fusion operation `operation` (a key of FUSION_OPERATIONS) for `num_inputs` inputs.

    The initializers go to the operations that have weights (CONCAT, ATT) and are ignored by
    ADD and PROD; `kwargs` go to the layer (name, dtype, ...).
    """
    if operation not in FUSION_OPERATIONS:
        raise ValueError(
            f"The fusion operation must be one of {list(FUSION_OPERATIONS)}. "
            f"Received: {operation!r}"
        )
    cls = FUSION_OPERATIONS[operation]
    if issubclass(cls, WeightedFusionOperation):
        kwargs.update(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer)
    return cls(num_inputs, **kwargs)
