"""The plumbing of the three optimizer groups of `GroupedOptimizerModel` (training_step.py).

- `_GroupMultiOptimizer`: Keras' MultiOptimizer over the group optimizers, writing its state
  once; `GroupSelector`: its map from a variable to its group's optimizer;
- `partition` / `VariableGroups`: each trainable variable's group, checked to be a partition;
- `get_optimizer`, `copy_optimizer`: compile's optimizer arguments as plain optimizer
  instances; `hand_l2_to_lazy_adam`: a group's coupled L2 given to its LazyAdam;
- `check_factor`, `Untracked`: compile's argument checks, and a value Keras does not track.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import keras

from optfusion_tf.optimizers.lazy_adam import LazyAdam, make_embedding_optimizer


class _GroupMultiOptimizer(keras.optimizers.MultiOptimizer):
    """Keras' `MultiOptimizer`, whose state is written once.

    Keras 3.15's `MultiOptimizer.variables` lists its own variables and every inner optimizer's,
    and its saving writes `variables` under the wrapper *and* each inner optimizer under it
    again: a `.keras` or `.weights.h5` file held every Adam moment twice (5 copies of the
    embedding table's size instead of 3). This one writes only its own variables (`iterations`);
    the inner optimizers write theirs. Files written the old way are still read.

    Its class name gives the optimizer's own variable paths (`__group_multi_optimizer/...`):
    kept when it moved here from training_step.py.
    """

    def save_own_variables(self, store: Any) -> None:
        for i, variable in enumerate(self._variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store: Any) -> None:
        if len(store.keys()) != len(self._variables):  # a file with the duplicated state
            super().load_own_variables(store)
            return
        for i, variable in enumerate(self._variables):
            variable.assign(store[str(i)])


class GroupSelector:
    """The MultiOptimizer's optimizer map: `values()` lists the group optimizers in the order
    embedding, network, architecture (the order of `model.optimizer.optimizers`), and calling
    it on a variable gives the optimizer of the variable's group (`model` is a
    training_step.GroupedOptimizerModel)."""

    def __init__(self, model: keras.Model) -> None:
        self._model = model

    def values(self) -> list[keras.optimizers.Optimizer]:
        return list(self._model._group_optimizers().values())

    def __call__(self, variable: keras.Variable) -> keras.optimizers.Optimizer:
        group = self._model._group_of_variables().group_of[id(variable)]
        return self._model._group_optimizers()[group]


@dataclasses.dataclass(frozen=True)
class Untracked:
    """Holds a value out of sight of Keras' and tf.train's automatic attribute tracking."""

    value: Any


@dataclasses.dataclass(frozen=True)
class VariableGroups:
    """`group_of[id(variable)]` is the variable's group name; `key` the ids of the trainable
    variables it was checked against. A plain object, so that neither Keras nor tf.train try to
    track a dict with integer keys."""

    key: tuple[int, ...]
    group_of: dict[int, str]


def partition(
    groups: dict[str, Sequence[keras.Variable]],
    trainable_variables: Sequence[keras.Variable],
    *,
    has_architecture_optimizer: bool,
) -> VariableGroups:
    """Checks that `groups` partition `trainable_variables`."""
    owner: dict[int, str] = {}
    for group, variables in groups.items():
        for variable in variables:
            if id(variable) in owner:
                raise ValueError(
                    f"Variable '{variable.path}' is in both the {owner[id(variable)]} and the "
                    f"{group} optimizer groups; each trainable variable must be in exactly one."
                )
            owner[id(variable)] = group
    trainable = {id(v): v for v in trainable_variables}
    missing = [v.path for i, v in trainable.items() if i not in owner]
    extra = [
        v.path for variables in groups.values() for v in variables if id(v) not in trainable
    ]
    if missing or extra:
        raise ValueError(
            "The embedding, network and architecture variable groups must partition the "
            f"model's trainable variables. Trainable but in no group: {missing}; in a group but "
            f"not trainable (or not in the model): {extra}"
        )
    if groups["architecture"] and not has_architecture_optimizer:
        raise ValueError(
            "The model has architecture variables "
            f"{[v.path for v in groups['architecture']]} but `compile` received no "
            "`architecture_optimizer`. Received: architecture_optimizer=None"
        )
    return VariableGroups(tuple(id(v) for v in trainable_variables), owner)


def copy_optimizer(
    optimizer: str | keras.optimizers.Optimizer, name: str
) -> str | keras.optimizers.Optimizer:
    """One group's own copy of the optimizer given as compile's `optimizer`, named `name`."""
    if isinstance(optimizer, str):
        return keras.optimizers.get({"class_name": optimizer, "config": {"name": name}})
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            f"`optimizer` must be a Keras optimizer name or instance. Received: {optimizer!r}"
        )
    get_optimizer(optimizer, name=name)  # refuses wrappers (MultiOptimizer, loss scaling)
    return type(optimizer).from_config({**optimizer.get_config(), "name": name})


def get_optimizer(
    identifier: str | keras.optimizers.Optimizer,
    *,
    embedding: bool = False,
    name: str = "embedding_optimizer",
) -> keras.optimizers.Optimizer:
    """An optimizer instance from a name or an instance."""
    if isinstance(identifier, keras.optimizers.Optimizer):
        wrappers = (keras.optimizers.MultiOptimizer, keras.optimizers.LossScaleOptimizer)
        if isinstance(identifier, wrappers):
            raise ValueError(
                "A group optimizer must be a plain Keras optimizer. "
                f"Received: {type(identifier).__name__}"
            )
        return identifier
    if isinstance(identifier, str):
        if embedding:
            return make_embedding_optimizer(identifier)
        return keras.optimizers.get({"class_name": identifier, "config": {"name": name}})
    raise ValueError(
        f"Expected an optimizer name or a keras.optimizers.Optimizer instance for the {name}. "
        f"Received: {identifier!r}"
    )


def hand_l2_to_lazy_adam(optimizer: keras.optimizers.Optimizer, l2: float, arg: str) -> float:
    """Gives a group's coupled L2 to its `LazyAdam`, which applies it itself; returns the L2.

    A `LazyAdam` created with its own `l2` keeps it when the compile argument is 0; two
    different non-zero values are an error.
    """
    if not isinstance(optimizer, LazyAdam):
        return l2
    if optimizer.l2 and l2 and optimizer.l2 != l2:
        raise ValueError(
            f"The coupled L2 was given twice with different values. Received: {arg}={l2!r} "
            f"and {optimizer.name}.l2={optimizer.l2!r}"
        )
    optimizer.l2 = l2 or optimizer.l2
    return optimizer.l2


def check_factor(name: str, value: float) -> float:
    """Validates a finite factor >= 0 (a coupled L2, a clipping norm)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"`{name}` must be a finite float >= 0. Received: {name}={value!r}")
    return float(value)
