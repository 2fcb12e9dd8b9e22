"""CrossNet: one cross layer of DCN (Wang et al., 2017), the default shallow component."""

from __future__ import annotations

import keras
from keras import ops

from optfusion_tf.layers.initializers import add_kernel_and_bias
from optfusion_tf.layers.shallow_base import ShallowComponent
from optfusion_tf.layers.types import Shape, Tensor


@keras.saving.register_keras_serializable(package="optfusion")
class CrossNet(ShallowComponent):
    """One DCN cross layer: `y = x0 * (x . w) + b + x`.

    `x0` is the flat embedding of the example (never masked) and `x` the component's fused
    input, as in the reference's `cross_layer(X_0=emb, X_i=fused)`. The weight `w` is a
    vector, so the layer costs O(W) per example.

    Weights: `w` [W, 1] (`kernel_initializer`) and `b` [W] (`bias_initializer`); arguments,
    call and output as `ShallowComponent`: (x0, x), both [batch, W] -> [batch, W].
    """

    def build(self, x0_shape: Shape, x_shape: Shape) -> None:
        width = self._check_inputs(x0_shape, x_shape)
        self.kernel, self.bias = add_kernel_and_bias(self, (width, 1), width)

    def call(self, x0: Tensor, x: Tensor) -> Tensor:
        return ops.add(ops.add(ops.multiply(x0, ops.matmul(x, self.kernel)), self.bias), x)
