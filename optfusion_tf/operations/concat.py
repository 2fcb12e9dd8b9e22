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
        return ops.add(ops.matmul(concatenated(inputs), self._masked_kernel(connections)), self.bias)

    def through_linear_head(
        self,
        inputs: Sequence[Tensor],
        connections: Tensor | None,
        head_kernel: Tensor,
        head_bias: Tensor,
    ) -> Tensor:
        """`self(inputs, connections) @ head_kernel + head_bias`, [batch, U], for a linear head
        (kernel [W, U], bias [U]; the model's output layer), computed as
        `concat(x) @ (K @ head_kernel) + (b @ head_kernel + head_bias)`.

        The same function of the same weights, so the same gradients up to float rounding, but
        batch * K * W * U multiplications instead of batch * K * W * W (plus K * W * W * U once
        per step): for the logit (U = 1) the [batch, W] output is never formed. A CONCAT at the
        output node followed by the linear logit layer is two linear maps in a row, which
        DCN-style models write as one. Only without `output_norm` (unit_rms is not linear).
        """
        if self.output_norm != "none":
            raise ValueError(
                f"through_linear_head needs output_norm='none' (a linear map). "
                f"Received: output_norm={self.output_norm!r}"
            )
        head = ops.matmul(self._masked_kernel(connections), head_kernel)
        x = concatenated(self._checked(inputs))
        return ops.add(ops.matmul(x, head), ops.add(ops.matmul(self.bias, head_kernel), head_bias))

    def _masked_kernel(self, connections: Tensor | None) -> Tensor:
        """K with the row blocks of disconnected inputs zeroed ([K * W, W])."""
        if connections is None:
            return self.kernel
        row_mask = ops.repeat(connections, self.width)
        return ops.multiply(self.kernel, ops.expand_dims(row_mask, -1))


def concatenated(inputs: Sequence[Tensor]) -> Tensor:
    """[batch, K * W] from K inputs [batch, W] (no copy for one input)."""
    return inputs[0] if len(inputs) == 1 else ops.concatenate(inputs, axis=-1)
