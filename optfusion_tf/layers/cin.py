"""CIN: one Compressed Interaction Network layer of xDeepFM (Lian et al., 2018)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from optfusion_tf.layers.initializers import add_kernel_and_bias
from optfusion_tf.layers.shallow_base import ShallowComponent
from optfusion_tf.layers.types import Shape, Tensor, check_positive_int


@keras.saving.register_keras_serializable(package="optfusion")
class CIN(ShallowComponent):
    """One CIN layer with F feature maps, so that the output keeps the width W = F * d.

    With `x0` and `x` seen as F fields of d values ([batch, F, d]):

        y[b, k, :] = sum_{h, m} K[h, m, k] * x[b, h, :] * x0[b, m, :] + bias[k],  k = 1..F

    i.e. xDeepFM's outer product of the two field sets followed by a 1x1 convolution with F
    output maps (the reference hyperparameters use cin_dims = [F, F, F]). No activation, as
    in xDeepFM. It is computed as one [batch * d, F] x [F, F * F] matmul and one batched
    contraction, without materializing the [batch, F, F, d] outer product twice.

    Weights: `K` [F, F, F], indexed [h, m, k] (`kernel_initializer`), and `bias` [F]
    (`bias_initializer`); call and output as `ShallowComponent`: (x0, x), both [batch, W] ->
    [batch, W].

    Args:
        num_fields: F, the number of feature fields (W must be a multiple of it).
        **kwargs: the `ShallowComponent` arguments (initializers) and `keras.layers.Layer`'s.
    """

    def __init__(self, num_fields: int, **kwargs: Any) -> None:
        check_positive_int("num_fields", num_fields)
        super().__init__(**kwargs)
        self.num_fields = num_fields

    def build(self, x0_shape: Shape, x_shape: Shape) -> None:
        width = self._check_inputs(x0_shape, x_shape)
        if width % self.num_fields:
            raise ValueError(
                f"CIN needs W to be a multiple of num_fields={self.num_fields}. "
                f"Received: W={width}"
            )
        self.emb_dim = width // self.num_fields
        f = self.num_fields
        self.kernel, self.bias = add_kernel_and_bias(self, (f, f, f), f)

    def call(self, x0: Tensor, x: Tensor) -> Tensor:
        f, d = self.num_fields, self.emb_dim
        # [batch, W] -> [batch * d, F]: one row per (example, embedding coordinate).
        x_rows = ops.reshape(ops.transpose(ops.reshape(x, (-1, f, d)), (0, 2, 1)), (-1, f))
        x0_rows = ops.reshape(ops.transpose(ops.reshape(x0, (-1, f, d)), (0, 2, 1)), (-1, f))
        # u[n, m, k] = sum_h x[n, h] K[h, m, k]
        u = ops.reshape(ops.matmul(x_rows, ops.reshape(self.kernel, (f, f * f))), (-1, f, f))
        # y[n, k] = sum_m x0[n, m] u[n, m, k]
        y = ops.einsum("nm,nmk->nk", x0_rows, u)
        y = ops.reshape(ops.transpose(ops.reshape(y, (-1, d, f)), (0, 2, 1)), (-1, f * d))
        return ops.add(y, ops.repeat(self.bias, d))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["num_fields"] = self.num_fields
        return config
