"""DeepBlock: the deep component, one fully connected layer of width W."""

from __future__ import annotations

from typing import Any

import keras

from optfusion_tf.layers.initializers import InitializerLike, clone_initializer
from optfusion_tf.layers.types import Shape, Tensor, check_positive_int


@keras.saving.register_keras_serializable(package="optfusion")
class DeepBlock(keras.layers.Layer):
    """Dense(units) -> [BatchNorm] -> ReLU -> [Dropout], the reference's MLP_Layer order.

    Args:
        units: output width (the model uses W = F * d, the input width).
        dropout: dropout rate in [0, 1); 0 adds no dropout layer.
        batch_norm: whether to put a BatchNormalization between the Dense and the ReLU.
        kernel_initializer: initializer of the Dense kernel. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the Dense bias. Defaults to `"zeros"`.
        seed: optional seed of the dropout.
        **kwargs: passed to `keras.layers.Layer`; `dtype="mixed_bfloat16"` (one of
            optfusion_tf.architecture.validation.DEEP_DTYPES) keeps the variables in float32
            and computes the block in bfloat16.

    Call arguments:
        x: float tensor [batch, input_width].
        training: Python bool or None (dropout and batch norm behave accordingly).

    Returns:
        Float tensor [batch, units] in the variable dtype (float32 under "mixed_bfloat16": the
        block's result is cast back, so the layers after it compute as before).
    """

    def __init__(
        self,
        units: int,
        dropout: float = 0.0,
        batch_norm: bool = False,
        kernel_initializer: InitializerLike = "glorot_uniform",
        bias_initializer: InitializerLike = "zeros",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_positive_int("units", units)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        super().__init__(**kwargs)
        self.units = units
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed

    def build(self, input_shape: Shape) -> None:
        self.dense = keras.layers.Dense(
            self.units,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="dense",
        )
        self.dense.build(input_shape)
        self.norm = None
        if self.batch_norm:
            # synchronized: under tf.distribute, the statistics of the global batch (as in one
            # process), so every replica keeps the same moving mean and variance; a no-op
            # without a strategy.
            self.norm = keras.layers.BatchNormalization(
                synchronized=True, dtype=self.dtype_policy, name="batch_norm"
            )
            self.norm.build((*input_shape[:-1], self.units))
        self.drop = None
        if self.dropout > 0:
            self.drop = keras.layers.Dropout(
                self.dropout, seed=self.seed, dtype=self.dtype_policy, name="dropout"
            )

    def call(self, x: Tensor, training: bool | None = None) -> Tensor:
        y = self.dense(x)
        if self.norm is not None:
            y = self.norm(y, training=training)
        y = keras.activations.relu(y)
        if self.drop is not None:
            y = self.drop(y, training=training)
        if self.compute_dtype != self.variable_dtype:
            y = keras.ops.cast(y, self.variable_dtype)
        return y

    def compute_output_shape(self, input_shape: Shape) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "dropout": self.dropout,
                "batch_norm": self.batch_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
