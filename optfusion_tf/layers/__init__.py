"""Components of the OptFusion search space as Keras layers (one layer per module)."""

from optfusion_tf.layers.cin import CIN
from optfusion_tf.layers.cross_net import CrossNet
from optfusion_tf.layers.cross_net_v2 import CrossNetV2
from optfusion_tf.layers.deep_block import DeepBlock
from optfusion_tf.layers.registry import SHALLOW_LAYERS, make_shallow_layer
from optfusion_tf.layers.shallow_base import ShallowComponent

__all__ = [
    "CIN",
    "CrossNet",
    "CrossNetV2",
    "DeepBlock",
    "SHALLOW_LAYERS",
    "ShallowComponent",
    "make_shallow_layer",
]
