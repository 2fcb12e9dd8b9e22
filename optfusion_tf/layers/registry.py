"""Shallow components by name; the keys are validation.SHALLOW_COMPONENTS."""

from __future__ import annotations

from typing import Any

from optfusion_tf.layers.cin import CIN
from optfusion_tf.layers.cross_net import CrossNet
from optfusion_tf.layers.cross_net_v2 import CrossNetV2
from optfusion_tf.layers.shallow_base import ShallowComponent

SHALLOW_LAYERS: dict[str, type[ShallowComponent]] = {
    "crossnet": CrossNet,
    "crossnetv2": CrossNetV2,
    "cin": CIN,
}


def make_shallow_layer(component: str, *, num_fields: int, **kwargs: Any) -> ShallowComponent:
    """A new shallow component of type `component`; `kwargs` go to its constructor.

    `num_fields` is used by CIN only (the cross layers work on the flat width).
    """
    if component not in SHALLOW_LAYERS:
        raise ValueError(
            f"`shallow` must be one of {list(SHALLOW_LAYERS)}. Received: shallow={component!r}"
        )
    if component == "cin":
        kwargs["num_fields"] = num_fields
    return SHALLOW_LAYERS[component](**kwargs)
