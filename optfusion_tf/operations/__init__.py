"""Fusion operations (paper Table 1) and their softmax(beta) mixture (Eq. 12-13)."""

from optfusion_tf.operations.add import AddFusion
from optfusion_tf.operations.attention import AttentionFusion
from optfusion_tf.operations.base import FusionOperation, WeightedFusionOperation
from optfusion_tf.operations.concat import ConcatFusion
from optfusion_tf.operations.mixture import FusionMixture
from optfusion_tf.operations.prod import ProdFusion
from optfusion_tf.operations.registry import FUSION_OPERATIONS, make_fusion_operation

__all__ = [
    "AddFusion",
    "AttentionFusion",
    "ConcatFusion",
    "FUSION_OPERATIONS",
    "FusionMixture",
    "FusionOperation",
    "ProdFusion",
    "WeightedFusionOperation",
    "make_fusion_operation",
]
