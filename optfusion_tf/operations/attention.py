"""ATT: attention pooling over the connected inputs (paper Table 1)."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from optfusion_tf.operations.base import WeightedFusionOperation
from optfusion_tf.layers.initializers import add_kernel_and_bias, clone_initializer
from optfusion_tf.layers.types import Shape, Tensor

# exp() of a disconnected input's score relative to the connected maximum is capped at
# exp(_MAX_DISCONNECTED_LOGIT): the forward value is unaffected (that term is multiplied by
# c_k = 0) and its gradient with respect to c_k stays finite.
_MAX_DISCONNECTED_LOGIT = 30.0


@keras.saving.register_keras_serializable(package="optfusion")
class AttentionFusion(WeightedFusionOperation):
    """ATT: `y = sum_k a_k x_k`, a = softmax over the connected k of `s_k = w2 . relu(W1 x_k + b1)`.

    As in the paper's Table 1, W1 [W, W], b1 [W] and w2 [W] are shared by the node's inputs
    and the attention weight of an input is one scalar per example. W1 is applied to all K
    inputs in one [K * batch, W] x [W, W] matmul.

    With a connection vector c the weights are `a_k = c_k exp(s_k - m) / sum_j c_j exp(s_j - m)`
    (m: the largest connected score, for stability): disconnected inputs get weight 0, the
    connected ones a softmax among themselves, and c stays differentiable so the gradient
    reaches alpha. With no connected input the output is 0 (guarded denominator, no NaN).

    Deliberate difference from the reference implementation, whose AttentionPooling gives
    every input its own two dense layers [W, W] and a feature-wise softmax over the W
    coordinates of that single input, applied to masked (zero) inputs too.

    Weights: `kernel` (W1) [W, W], `bias` (b1) [W], `score_kernel` (w2) [W, 1].
    See `WeightedFusionOperation` for the arguments and `FusionOperation` for the call.
    """

    def build(self, input_shape: Sequence[Shape]) -> None:
        super().build(input_shape)
        width = self.width
        self.kernel, self.bias = add_kernel_and_bias(self, (width, width), width)
        self.score_kernel = self.add_weight(
            name="score_kernel",
            shape=(width, 1),
            initializer=clone_initializer(self.kernel_initializer, seed_offset=1),
        )

    def _fuse(self, inputs: list[Tensor], connections: Tensor | None) -> Tensor:
        if len(inputs) == 1 and connections is None:
            return inputs[0]  # a softmax over one input is 1
        stacked = ops.stack(inputs, axis=0)  # [K, batch, W]
        rows = ops.reshape(stacked, (-1, self.width))  # [K * batch, W]
        hidden = keras.activations.relu(ops.add(ops.matmul(rows, self.kernel), self.bias))
        scores = ops.reshape(ops.matmul(hidden, self.score_kernel), (len(inputs), -1))  # [K, batch]
        if connections is None:
            weights = ops.softmax(scores, axis=0)
        else:
            weights = _masked_softmax(scores, ops.expand_dims(connections, -1))
        return ops.sum(ops.multiply(ops.expand_dims(weights, -1), stacked), axis=0)


def _masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over axis 0 restricted to rows with mask 1; differentiable in the 0/1 mask.

    Args:
        scores: [K, batch].
        mask: [K, 1] of 0/1 values.

    Returns:
        [K, batch]; columns sum to 1, or are all 0 when the mask is all 0.
    """
    connected = ops.greater(mask, 0)
    floor = ops.min(scores, axis=0, keepdims=True)
    top = ops.stop_gradient(ops.max(ops.where(connected, scores, floor), axis=0, keepdims=True))
    logits = ops.minimum(ops.subtract(scores, top), _MAX_DISCONNECTED_LOGIT)
    numerators = ops.multiply(ops.exp(logits), mask)
    total = ops.sum(numerators, axis=0, keepdims=True)
    return ops.divide(numerators, ops.where(ops.greater(total, 0), total, 1.0))
