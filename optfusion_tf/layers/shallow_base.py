"""The base of the shallow components: two inputs (x0, x) of one width W, and their initializers."""

from __future__ import annotations

from typing import Any

import keras

from optfusion_tf.layers.initializers import InitializerLike, initializers_config
from optfusion_tf.layers.types import Shape


class ShallowComponent(keras.layers.Layer):
    """A layer `f(x0, x) -> [batch, W]` with `x0` the flat embedding and `x` the fused input.

    Subclasses create their weights in `build(x0_shape, x_shape)` after calling
    `self._check_inputs(x0_shape, x_shape)`, which returns W; their docstrings give the shapes
    of their kernel and bias.

    Args:
        kernel_initializer: initializer of the layer's kernel. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the layer's bias. Defaults to `"zeros"`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments (every shallow component):
        x0: float tensor [batch, W], the flat embedding.
        x: float tensor [batch, W], the fused input.

    Returns:
        Float tensor [batch, W].
    """

    def __init__(
        self,
        kernel_initializer: InitializerLike = "glorot_uniform",
        bias_initializer: InitializerLike = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _check_inputs(self, x0_shape: Shape, x_shape: Shape) -> int:
        """Validates that both inputs are [batch, W] with the same known W; returns W."""
        if (
            len(x0_shape) != 2
            or len(x_shape) != 2
            or x0_shape[-1] != x_shape[-1]
            or not x_shape[-1]
        ):
            raise ValueError(
                f"{type(self).__name__} expects `x0` and `x` of the same shape [batch, W] with "
                f"a known W. Received: x0_shape={tuple(x0_shape)}, x_shape={tuple(x_shape)}"
            )
        return int(x_shape[-1])

    def compute_output_shape(self, x0_shape: Shape, x_shape: Shape) -> tuple[int | None, ...]:
        return tuple(x_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(initializers_config(self))
        return config
