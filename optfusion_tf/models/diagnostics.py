"""Looking inside an OptFusionModel's forward pass: `operation_scales` (what each operation of a
softmax(beta) mixture outputs, before any `operation_norm`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras import ops

from optfusion_tf.architecture.spec import MIXTURE
from optfusion_tf.layers.types import Tensor
from optfusion_tf.models.node_plan import NodePlan

if TYPE_CHECKING:
    from optfusion_tf.models.model import OptFusionModel


def operation_scales(
    model: OptFusionModel, feature_ids: Tensor
) -> dict[str, dict[str, tuple[float, float]]]:
    """`OptFusionModel.operation_scales`: for every node of `model` with a softmax(beta)
    mixture, operation -> (mean |output|, share of exact zeros) on these examples."""
    model._ensure_built()
    scales: dict[str, dict[str, tuple[float, float]]] = {}

    def observe(plan: NodePlan, inputs: list[Tensor], connections: Tensor | None) -> None:
        if plan.operation != MIXTURE:
            return
        outputs = model.fusions[plan.node].unnormalized_outputs(inputs, connections)
        scales[plan.node] = {
            name: (
                float(ops.mean(ops.abs(value))),
                float(ops.mean(ops.cast(ops.equal(value, 0.0), "float32"))),
            )
            for name, value in outputs.items()
        }

    model._forward(feature_ids, training=False, observe=observe)
    return scales
