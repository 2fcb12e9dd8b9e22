"""Initializer helpers shared by the layers and the model."""

from __future__ import annotations

import keras

from optfusion_tf.architecture.validation import KERNEL_INITS

InitializerLike = str | dict | keras.initializers.Initializer


def clone_initializer(
    initializer: keras.initializers.Initializer, seed_offset: int = 0
) -> keras.initializers.Initializer:
    """A fresh copy, so that two variables never share one (stateless) initializer instance.

    An unseeded initializer draws a new seed on construction, so two clones give different
    values. A seeded one would give the same values again (Keras' documented behaviour), so a
    layer that derives several initializers from one passes a distinct `seed_offset` to each.
    """
    config = initializer.get_config()
    if isinstance(config.get("seed"), int):
        config["seed"] += seed_offset
    return initializer.__class__.from_config(config)


def add_kernel_and_bias(
    layer: keras.layers.Layer, kernel_shape: tuple[int, ...], bias_width: int
) -> tuple[keras.Variable, keras.Variable]:
    """Adds `kernel` (`kernel_shape`) and then `bias` ([bias_width]) to `layer`, each from a
    clone of the layer's `kernel_initializer` / `bias_initializer` attribute."""
    kernel = layer.add_weight(
        name="kernel", shape=kernel_shape, initializer=clone_initializer(layer.kernel_initializer)
    )
    bias = layer.add_weight(
        name="bias", shape=(bias_width,), initializer=clone_initializer(layer.bias_initializer)
    )
    return kernel, bias


def initializers_config(layer: keras.layers.Layer) -> dict[str, object]:
    """The `get_config` entries of a layer's `kernel_initializer` and `bias_initializer`."""
    return {
        "kernel_initializer": keras.initializers.serialize(layer.kernel_initializer),
        "bias_initializer": keras.initializers.serialize(layer.bias_initializer),
    }


def kernel_initializer(kind: str, seed: int | None = None) -> keras.initializers.Initializer:
    """The kernel initializer every sublayer of the model starts from.

    Args:
        kind: "glorot_normal" (truncated normal, std sqrt(2 / (fan_in + fan_out)): Keras'
            and DeepCTR's kernels) or "torch" (PyTorch's nn.Linear default, the reference's
            start: see `torch_linear_kernel_initializer`).
        seed: the initializer's seed (None: drawn from Keras' global seed).
    """
    if kind == "glorot_normal":
        return keras.initializers.GlorotNormal(seed=seed)
    if kind == "torch":
        return torch_linear_kernel_initializer(seed)
    raise ValueError(f"`kernel_init` must be one of {list(KERNEL_INITS)}. Received: {kind!r}")


def torch_linear_kernel_initializer(seed: int | None = None) -> keras.initializers.Initializer:
    """PyTorch's default `nn.Linear` / `nn.Conv1d` weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    torch uses kaiming_uniform(a=sqrt(5)), whose bound is sqrt(6 / ((1 + 5) * fan_in)); that is
    VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform"). The model uses it for
    every kernel with `kernel_init="torch"`, so that a fresh model starts like the reference's (biases start at zero,
    Keras' convention, where torch draws them from the same uniform).
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed
    )
