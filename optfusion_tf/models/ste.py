"""The straight-through estimator (STE) that turns connection logits into 0/1 connections.

Paper Sec. 3.2, Eq. 9-11 (and the reference's `STEFunction`): the forward pass is the unit
step `S(alpha) = 1[alpha > 0]`, the backward pass is the identity (`dS/dalpha := 1`), so a
search trains the connection logits `alpha` while every forward pass sees a discrete graph.
"""

from __future__ import annotations

from keras import ops

from optfusion_tf.layers.types import Tensor


@ops.custom_gradient
def _step_with_identity_gradient(alpha):
    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return upstream

    return ops.cast(ops.greater(alpha, 0), alpha.dtype), grad


def straight_through_step(alpha: Tensor) -> Tensor:
    """Forward `1[alpha > 0]` (exactly 0.0 or 1.0), backward identity.

    Args:
        alpha: float tensor of any shape (the connection logits).

    Returns:
        Float tensor of the same shape and dtype as `alpha`, each value 0.0 or 1.0. Its
        gradient with respect to `alpha` is the upstream gradient, unchanged.
    """
    # A tensor, not a variable, must enter the custom-gradient function (convert_to_tensor
    # returns a Keras variable unchanged).
    return _step_with_identity_gradient(ops.copy(alpha))
