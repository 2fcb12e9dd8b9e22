"""Initializer helpers shared by the layers and the model."""

from __future__ import annotations

import keras

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


def torch_linear_kernel_initializer(seed: int | None = None) -> keras.initializers.Initializer:
    """PyTorch's default `nn.Linear` / `nn.Conv1d` weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    torch uses kaiming_uniform(a=sqrt(5)), whose bound is sqrt(6 / ((1 + 5) * fan_in)); that is
    VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform"). The model uses it for
    every kernel so that a fresh model starts like the reference's (biases start at zero,
    Keras' convention, where torch draws them from the same uniform).
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed
    )
