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

    Args:
        kernel_initializer: initializer of `w` ([W, 1]). Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of `b` ([W]). Defaults to `"zeros"`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        x0: float tensor [batch, W], the flat embedding.
        x: float tensor [batch, W], the fused input.

    Returns:
        Float tensor [batch, W].
    """

    def build(self, x0_shape: Shape, x_shape: Shape) -> None:
        width = self._check_inputs(x0_shape, x_shape)
        self.kernel, self.bias = add_kernel_and_bias(self, (width, 1), width)

    def call(self, x0: Tensor, x: Tensor) -> Tensor:
        return ops.add(ops.add(ops.multiply(x0, ops.matmul(x, self.kernel)), self.bias), x)
