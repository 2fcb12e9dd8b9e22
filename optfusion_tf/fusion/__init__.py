"""Fusion operations (paper Table 1) and their softmax(beta) mixture (Eq. 12-13)."""

from optfusion_tf.fusion.add import AddFusion
from optfusion_tf.fusion.attention import AttentionFusion
from optfusion_tf.fusion.base import FusionOperation, WeightedFusionOperation
from optfusion_tf.fusion.concat import ConcatFusion
from optfusion_tf.fusion.mixture import FusionMixture
from optfusion_tf.fusion.prod import ProdFusion
from optfusion_tf.fusion.registry import FUSION_OPERATIONS, make_fusion_operation

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
