"""Analytic forward FLOPs per example of an OptFusionModel (for throughput figures).

What is counted, per example, for the nodes the model builds (`model.graph`):
- every matmul as 2 x its multiply-adds (components, CONCAT, ATT, output layer); a CONCAT at the
  output node of a fixed model is computed with the output layer as one [K * W] -> 1 map
  (`ConcatFusion.through_linear_head`) and counted so;
- every element-wise operation of the dense parts as 1 FLOP per element (bias adds, ReLU,
  residual adds, masking by the connections, PROD's products, ADD's sums, ATT's weighting,
  the mixture's weighted sum, batch norm as 4 and dropout as 1 per element).

Not counted: the embedding gather (memory traffic, no arithmetic), and work done once per
step whatever the batch size (STE(alpha), softmax(beta), masking CONCAT's kernel rows), and
O(K) scalar work (ATT's softmax over K scores). A training step costs about 3x the forward
FLOPs (forward + backward with respect to activations and weights); the benchmark applies
that factor.
"""

from __future__ import annotations

from optfusion_tf.architecture.search_space import OUTPUT
from optfusion_tf.architecture.spec import MIXTURE
from optfusion_tf.architecture.validation import OPERATIONS
from optfusion_tf.models.model import OptFusionModel


def analytic_flops_per_sample(model: OptFusionModel) -> int:
    """Forward FLOPs per example of `model` (see the module docstring for what counts)."""
    width = model.width
    total = 2 * width + 1  # the output Dense(1)
    for plan in model.graph:
        k = len(plan.inputs)
        gated = plan.masked or plan.unfed
        if plan.node == OUTPUT and model.concat_into_logit:
            # CONCAT and Dense(1) as one [K * W] -> 1 map (ConcatFusion.through_linear_head):
            # 2 * K * W + 1 in all, of which the Dense(1)'s 2 * W + 1 is counted above
            total += 2 * (k - 1) * width
        elif plan.operation is None:
            total += width if gated else 0  # S0's c * E
        elif plan.operation == MIXTURE:
            total += sum(_operation_flops(op, k, width, gated) for op in OPERATIONS)
            total += (2 * len(OPERATIONS) - 1) * width  # scale each result, sum them
        else:
            total += _operation_flops(plan.operation, k, width, gated)
        if plan.kind == "shallow":
            total += _shallow_flops(model.shallow, model.num_fields, model.emb_dim)
        elif plan.kind == "deep":
            total += 2 * width * width + 2 * width  # Dense (matmul, bias) and ReLU
            total += 4 * width if model.batch_norm else 0
            total += width if model.dropout > 0 else 0
    return total


def _operation_flops(operation: str, k: int, width: int, masked: bool) -> int:
    """One operation over k inputs of the given width."""
    if operation == "add":
        return (k - 1) * width + (k * width if masked else 0)
    if operation == "prod":
        return (k - 1) * width + (3 * k * width if masked else 0)
    if operation == "concat":
        return 2 * k * width * width + width
    if operation == "att":
        if k == 1 and not masked:
            return 0  # a softmax over one input is the identity
        # W1 on every input, bias + ReLU, the score w2 . h, then sum_k a_k x_k.
        return 2 * k * width * width + 2 * k * width + 2 * k * width + 2 * k * width
    raise ValueError(f"Unknown fusion operation. Received: {operation!r}")


def _shallow_flops(shallow: str, num_fields: int, emb_dim: int) -> int:
    """One shallow component at width W = num_fields * emb_dim."""
    width = num_fields * emb_dim
    if shallow == "crossnet":
        return 2 * width + 3 * width  # x . w, then x0 * s + b + x
    if shallow == "crossnetv2":
        return 2 * width * width + 3 * width  # x @ K, + b, x0 *, + x
    if shallow == "cin":
        f, d = num_fields, emb_dim
        # [d, F] x [F, F * F] matmul, the [d, F] x [F, F] contraction with x0, the bias.
        return 2 * d * f * f * f + 2 * d * f * f + width
    raise ValueError(f"Unknown shallow component. Received: {shallow!r}")
