"""The soft mixture of all fusion operations at a node (paper Eq. 12-13)."""

from __future__ import annotations

import functools
from typing import Any, Sequence

import keras
from keras import ops

from optfusion_tf.architecture.validation import OPERATIONS
from optfusion_tf.operations.base import check_fusion_inputs, check_num_inputs, check_output_norm
from optfusion_tf.operations.registry import make_fusion_operation
from optfusion_tf.layers.initializers import InitializerLike, clone_initializer
from optfusion_tf.layers.types import Shape, Tensor


@keras.saving.register_keras_serializable(package="optfusion")
class FusionMixture(keras.layers.Layer):
    """`y = sum_o p_o * o(inputs, c)` over the operations ADD, PROD, CONCAT, ATT.

    `p` = softmax(beta) for the node is passed in by the caller (the model owns beta: it is
    trainable in search, a constant in OptFusion-Soft re-training).

    Args:
        num_inputs: K.
        kernel_initializer: initializer of the CONCAT and ATT kernels (each operation gets its
            own clone). Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of their biases. Defaults to `"zeros"`.
        output_norm: "none" or "rms": each operation's output is rescaled to unit RMS before it
            is weighted (see optfusion_tf/operations/base.py).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: list of K float tensors [batch, W].
        operation_weights: float tensor [len(OPERATIONS)], the probabilities p in OPERATIONS
            order (add, prod, concat, att).
        connections: optional float tensor [K] of 0/1 values; None means all connected.

    Returns:
        Float tensor [batch, W].
    """

    def __init__(
        self,
        num_inputs: int,
        kernel_initializer: InitializerLike = "glorot_uniform",
        bias_initializer: InitializerLike = "zeros",
        output_norm: str = "none",
        **kwargs: Any,
    ) -> None:
        check_num_inputs(num_inputs)
        check_output_norm(output_norm)
        super().__init__(**kwargs)
        self.num_inputs = num_inputs
        self.output_norm = output_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape: Sequence[Shape]) -> None:
        check_fusion_inputs(self, self.num_inputs, input_shape)
        self.fusion_operations = {}
        for index, name in enumerate(OPERATIONS):
            operation = make_fusion_operation(
                name,
                self.num_inputs,
                # Seeded initializers get one seed per operation (seed_offset 2 * index + 1 is
                # what ATT uses for its second kernel).
                kernel_initializer=clone_initializer(self.kernel_initializer, 2 * index),
                bias_initializer=clone_initializer(self.bias_initializer, 2 * index),
                output_norm=self.output_norm,
                dtype=self.dtype_policy,
                name=name,
            )
            operation.build(input_shape)
            self.fusion_operations[name] = operation

    def call(
        self,
        inputs: Sequence[Tensor],
        operation_weights: Tensor,
        connections: Tensor | None = None,
    ) -> Tensor:
        inputs = list(inputs)
        terms = [
            ops.multiply(self.fusion_operations[name](inputs, connections), weight)
            for name, weight in zip(OPERATIONS, ops.unstack(operation_weights))
        ]
        return functools.reduce(ops.add, terms)

    def unnormalized_outputs(
        self, inputs: Sequence[Tensor], connections: Tensor | None = None
    ) -> dict[str, Tensor]:
        """operation name -> its output [batch, W] before `output_norm` (for diagnostics)."""
        return {
            name: operation.unnormalized(list(inputs), connections)
            for name, operation in self.fusion_operations.items()
        }

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> tuple[int | None, ...]:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_inputs": self.num_inputs,
                "output_norm": self.output_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
