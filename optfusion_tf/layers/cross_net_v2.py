"""CrossNetV2: one cross layer of DCN-V2 (Wang et al., 2021), full-rank."""

from __future__ import annotations

import keras
from keras import ops

from optfusion_tf.layers.initializers import add_kernel_and_bias
from optfusion_tf.layers.shallow_base import ShallowComponent
from optfusion_tf.layers.types import Shape, Tensor


@keras.saving.register_keras_serializable(package="optfusion")
class CrossNetV2(ShallowComponent):
    """One DCN-V2 cross layer: `y = x0 * (x @ K + b) + x`, with a full [W, W] kernel K.

    Weights: `K` [W, W] (`kernel_initializer`) and `b` [W] (`bias_initializer`); arguments,
    call and output as `ShallowComponent`: (x0, x), both [batch, W] -> [batch, W].
    """

    def build(self, x0_shape: Shape, x_shape: Shape) -> None:
        width = self._check_inputs(x0_shape, x_shape)
        self.kernel, self.bias = add_kernel_and_bias(self, (width, width), width)

    def call(self, x0: Tensor, x: Tensor) -> Tensor:
        return ops.add(ops.multiply(x0, ops.add(ops.matmul(x, self.kernel), self.bias)), x)
