"""ADD: element-wise sum of the connected inputs (paper Table 1)."""

from __future__ import annotations

import functools

import keras
from keras import ops

from optfusion_tf.operations.base import FusionOperation
from optfusion_tf.layers.types import Tensor


@keras.saving.register_keras_serializable(package="optfusion")
class AddFusion(FusionOperation):
    """`y = sum_k c_k * x_k`: a disconnected input adds 0, the identity of the sum.

    See `FusionOperation` for the arguments and shapes. No weights.
    """

    def _fuse(self, inputs: list[Tensor], connections: Tensor | None) -> Tensor:
        if connections is not None:
            inputs = [ops.multiply(x, connections[k]) for k, x in enumerate(inputs)]
        return functools.reduce(ops.add, inputs)
