"""CONCAT: a linear map of the concatenated inputs back to width W (paper Table 1)."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from optfusion_tf.operations.base import WeightedFusionOperation
from optfusion_tf.layers.initializers import add_kernel_and_bias
from optfusion_tf.layers.types import Shape, Tensor


@keras.saving.register_keras_serializable(package="optfusion")
class ConcatFusion(WeightedFusionOperation):
    """`y = concat_k(c_k * x_k) @ K + b`, K of shape [K * W, W]: disconnected slots are zero.

    Zero is the right identity here: a zero slot contributes nothing to the matmul, exactly
    as dropping the input and its rows of K. The mask is applied to the rows of the kernel
    instead of the inputs (`x_k @ (c_k K_k)` equals `(c_k x_k) @ K_k`), which costs
    K * W * W multiplications per step instead of batch * K * W. As in the reference, a node
    with a single input still applies the linear map.

    Weights: `kernel` [K * W, W] (row block k belongs to input k), `bias` [W].
    See `WeightedFusionOperation` for the arguments and `FusionOperation` for the call.
    """

    def build(self, input_shape: Sequence[Shape]) -> None:
        super().build(input_shape)
        self.kernel, self.bias = add_kernel_and_bias(
            self, (self.num_inputs * self.width, self.width), self.width
        )

    def _fuse(self, inputs: list[Tensor], connections: Tensor | None) -> Tensor:
        kernel = self.kernel
        if connections is not None:
            row_mask = ops.repeat(connections, self.width)
            kernel = ops.multiply(kernel, ops.expand_dims(row_mask, -1))
        x = inputs[0] if len(inputs) == 1 else ops.concatenate(inputs, axis=-1)
        return ops.add(ops.matmul(x, kernel), self.bias)
