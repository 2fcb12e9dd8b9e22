"""PROD: Hadamard product of the connected inputs (paper Table 1)."""

from __future__ import annotations

import functools

import keras
from keras import ops

from optfusion_tf.operations.base import FusionOperation
from optfusion_tf.layers.types import Tensor


@keras.saving.register_keras_serializable(package="optfusion")
class ProdFusion(FusionOperation):
    """`y = prod_k (c_k * x_k + (1 - c_k))`: a disconnected input contributes 1.

    Deliberate difference from the reference implementation, which multiplies the masked
    inputs `c_k * x_k` and so returns an all-zero vector as soon as one candidate input is
    disconnected (its hard re-train then drops the zero inputs, so search and re-train
    disagree). Here search and re-train compute the same function. If no input is connected
    the result is a vector of ones.

    See `FusionOperation` for the arguments and shapes. No weights.
    """

    def _fuse(self, inputs: list[Tensor], connections: Tensor | None) -> Tensor:
        if connections is not None:
            # c * x + (1 - c) == 1 + c * (x - 1)
            inputs = [
                ops.add(ops.multiply(ops.subtract(x, 1.0), connections[k]), 1.0)
                for k, x in enumerate(inputs)
            ]
        return functools.reduce(ops.multiply, inputs)
