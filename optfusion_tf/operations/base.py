"""The base of the fusion operations: K candidate inputs, a connection vector, one output.

A fusion operation sits in front of a component (paper Eq. 6, 13). It receives the outputs of
the K candidate inputs of its node, each [batch, W], in `SearchSpace.candidate_inputs` order,
and a connection vector c of K values in {0, 1} (the STE output, differentiable with respect
to alpha). A disconnected input acts as the operation's identity (DESIGN.md section 3), never
as a zero vector that would, e.g., zero a whole Hadamard product.

`connections=None` means that every input is connected: the fixed (re-train) modes feed a node
only its live inputs and pass None, so no masking work is done there.

`output_norm="rms"` (off by default: the paper's operations) rescales each operation's output
to unit root-mean-square per example before it is used (and, in the softmax(beta) mixture,
before it is weighted): a remedy for operations whose scale differs by orders of magnitude, e.g.
PROD over many ReLU outputs (~1e-18 at O at init, against ~0.03 for ADD), which otherwise
makes beta's gradient measure "should this input be larger" rather than the operation's merit.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from optfusion_tf.architecture.checks import check_int
from optfusion_tf.architecture.validation import OPERATION_NORMS

from optfusion_tf.layers.initializers import InitializerLike, initializers_config
from optfusion_tf.layers.types import Shape, Tensor


def check_fusion_inputs(layer: keras.layers.Layer, num_inputs: int, input_shape: Any) -> int:
    """Validates K input shapes [batch, W] with one known W; returns W."""
    shapes = list(input_shape) if isinstance(input_shape, (list, tuple)) else []
    if not shapes or not all(isinstance(s, (list, tuple)) for s in shapes):
        raise ValueError(
            f"{type(layer).__name__} expects a list of {num_inputs} tensors [batch, W]. "
            f"Received: input_shape={input_shape}"
        )
    widths = {s[-1] for s in shapes}
    if (
        len(shapes) != num_inputs
        or len(widths) != 1
        or None in widths
        or any(len(s) != 2 for s in shapes)
    ):
        raise ValueError(
            f"{type(layer).__name__} expects {num_inputs} inputs of shape [batch, W] with one "
            f"known W. Received: input shapes {[tuple(s) for s in shapes]}"
        )
    return int(widths.pop())


OUTPUT_NORMS = OPERATION_NORMS
# Below this, an example's largest |value| counts as all-zero output (float32 normals reach 1e-38).
_TINY = 1e-30


def unit_rms(x: Tensor) -> Tensor:
    """`x / rms(x)` per row of a [batch, W] tensor, robust to tiny values.

    Rows are first divided by their largest |value|, so that squaring a 1e-20 product does not
    underflow, then by the root-mean-square of the result. The result does not depend on that
    first scale (x / rms(x) = z / rms(z) for z = x / c, any c > 0), so no gradient flows
    through it. A row whose largest |value| is at most 1e-30 (exact zeros, e.g. a PROD with a
    dead ReLU input) gives 0 and no gradient: dividing it by a 1e-30 floor used to send
    gradients of 1e36 and more into the graph, which overflowed to inf, became NaN in the
    PROD's backward pass (inf * 0) and stopped rms searches (2 of 3 seeds on the Criteo sample).
    """
    scale = ops.stop_gradient(ops.max(ops.abs(x), axis=-1, keepdims=True))
    alive = ops.greater(scale, _TINY)
    z = ops.divide(x, ops.where(alive, scale, ops.ones_like(scale)))
    unit = ops.multiply(z, ops.rsqrt(ops.mean(ops.square(z), axis=-1, keepdims=True) + 1e-12))
    return ops.where(alive, unit, ops.zeros_like(unit))


def check_output_norm(output_norm: str) -> None:
    """Raises ValueError unless `output_norm` is one of OUTPUT_NORMS."""
    if output_norm not in OUTPUT_NORMS:
        raise ValueError(
            f"`output_norm` must be one of {list(OUTPUT_NORMS)}. Received: output_norm={output_norm!r}"
        )


def check_num_inputs(num_inputs: int) -> None:
    """Raises ValueError unless `num_inputs` (K) is a positive integer."""
    check_int("num_inputs", num_inputs, wording="a positive integer")


class FusionOperation(keras.layers.Layer):
    """Fuses K inputs [batch, W] into one [batch, W]; subclasses implement `_fuse`.

    Args:
        num_inputs: K, the number of candidate inputs the node receives.
        output_norm: "none" or "rms" (`unit_rms` of the output; see the module docstring).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: list of K float tensors [batch, W].
        connections: optional float tensor [K] of 0/1 values; None means all connected.

    Returns:
        Float tensor [batch, W].
    """

    def __init__(self, num_inputs: int, output_norm: str = "none", **kwargs: Any) -> None:
        check_num_inputs(num_inputs)
        check_output_norm(output_norm)
        super().__init__(**kwargs)
        self.num_inputs = num_inputs
        self.output_norm = output_norm

    def build(self, input_shape: Sequence[Shape]) -> None:
        self.width = check_fusion_inputs(self, self.num_inputs, input_shape)

    def call(self, inputs: Sequence[Tensor], connections: Tensor | None = None) -> Tensor:
        fused = self.unnormalized(inputs, connections)
        return unit_rms(fused) if self.output_norm == "rms" else fused

    def unnormalized(self, inputs: Sequence[Tensor], connections: Tensor | None = None) -> Tensor:
        """The operation's output before `output_norm` ([batch, W]; same arguments as call)."""
        return self._fuse(self._checked(inputs), connections)

    def _checked(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """`inputs` as a list, checked to hold K tensors."""
        inputs = list(inputs)
        if len(inputs) != self.num_inputs:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_inputs} inputs. "
                f"Received: {len(inputs)}"
            )
        return inputs

    def _fuse(self, inputs: list[Tensor], connections: Tensor | None) -> Tensor:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> tuple[int | None, ...]:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["num_inputs"] = self.num_inputs
        config["output_norm"] = self.output_norm
        return config


class WeightedFusionOperation(FusionOperation):
    """A fusion operation with a kernel and a bias (CONCAT, ATT).

    Args:
        num_inputs: K.
        kernel_initializer: initializer of the kernels. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        **kwargs: passed to `FusionOperation` (output_norm) and `keras.layers.Layer`.
    """

    def __init__(
        self,
        num_inputs: int,
        kernel_initializer: InitializerLike = "glorot_uniform",
        bias_initializer: InitializerLike = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(num_inputs, **kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(initializers_config(self))
        return config
