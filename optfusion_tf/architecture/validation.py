"""What a valid architecture spec is, and the checks of one (plain Python, no TensorFlow).

- The names a spec may use: `OPERATIONS` (the fusion operations, in beta's order),
  `SHALLOW_COMPONENTS`, `OPERATION_NORMS`; the names of the model's other options
  (`CONCAT_HEADS`, `KERNEL_INITS`, `DEEP_DTYPES`), which the scripts' flags take without
  importing TensorFlow; and `ArchitectureSpecError`, which every check raises.
- `validate(spec)`: the checks of an `ArchitectureSpec`'s fields against its n's search space (every
  edge and fusing node, finite logits, known names), each with a message naming what is wrong.
- `ArchitectureSpecChecks`, which `ArchitectureSpec` inherits: the checks of a spec against a use.
  `depends_on_example(operations)` says which nodes' outputs vary with the example under the
  operations a model applies (see `ArchitectureSpec.operations_for`): `check_trainable` refuses a model
  whose O does not. `check_compatible` refuses re-training on another dataset or with another
  component than the search ran with; `numerical_warnings` names PROD nodes that get almost no
  signal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from optfusion_tf.architecture.checks import is_int
from optfusion_tf.architecture.search_space import (
    AUXILIARY_SHALLOW,
    EMBEDDING,
    OUTPUT,
    SearchSpace,
    edge_name,
)

if TYPE_CHECKING:
    from optfusion_tf.architecture.spec import ArchitectureSpec

OPERATIONS = ("add", "prod", "concat", "att")
SHALLOW_COMPONENTS = ("crossnet", "crossnetv2", "cin")
# Normalizations of the fusion operations' outputs (optfusion_tf/operations/base.py OUTPUT_NORMS).
OPERATION_NORMS = ("none", "rms")
# How a fixed O = CONCAT meets the logit (OptFusionModel's `concat_head`): "direct" trains one
# Dense(1) over the concatenated inputs (DCN's head); "projected" the paper's CONCAT to width W,
# then the logit layer (the reference's parametrization of the same functions).
CONCAT_HEADS = ("direct", "projected")
# The kernel initializers of the model (optfusion_tf/layers/initializers.py kernel_initializer).
KERNEL_INITS = ("glorot_normal", "torch")
# The dtype policies of the deep blocks (OptFusionModel's `deep_dtype`, optfusion_tf/layers/
# deep_block.py): "float32", or "mixed_bfloat16" (float32 variables, the matmul in bfloat16:
# 1.9x the float32 matmul rate on this project's AVX512_BF16 CPU; meant for CPUs with AVX512_BF16
# or AMX and GPUs with bfloat16 units; the blocks' output is cast back to float32).
DEEP_DTYPES = ("float32", "mixed_bfloat16")


class ArchitectureSpecError(ValueError):
    """An arch spec (usually an arch.json file) is malformed or does not fit its use."""


class ArchitectureSpecChecks:
    """The checks of a spec against a use, as methods of `ArchitectureSpec` (which inherits them): they
    read its fields and its `space`, `connections`, `live_nodes` and `operations_for`."""

    def depends_on_example(self, operations: Mapping[str, str]) -> tuple[str, ...]:
        """The live nodes whose output varies with the example, given each fusing node's
        operation (`operations_for`), in node order.

        What each node computes from its connected inputs, each either varying or a constant
        (a node's output is never exactly zero: every component adds a trainable bias):
        - the fused input: ADD and ATT of no input are 0, PROD of none is 1, CONCAT of none its
          bias, the mixture of none a non-zero constant; with inputs, it varies if one does.
          S0's input is E when E->S0 is connected, else 0.
        - a shallow node sees x0 = E: CrossNetV2(x0, x) = x0 (W x + b) + x always varies;
          CrossNet and CIN vary unless their fused input is exactly 0 (then they output their
          bias).
        - a deep node and O vary if their fused input does.
        """
        connections = self.connections
        varies = {EMBEDDING}
        for node in self.live_nodes[1:]:
            inputs = connections[node]
            fused_varies = any(src in varies for src in inputs)
            if node == AUXILIARY_SHALLOW:
                fused_is_zero = not inputs
            else:
                fused_is_zero = not inputs and operations[node] in ("add", "att")
            kind = self.space.kind(node)
            if kind == "shallow":
                node_varies = self.shallow == "crossnetv2" or fused_varies or not fused_is_zero
            else:
                node_varies = fused_varies
            if node_varies:
                varies.add(node)
        return tuple(v for v in self.live_nodes if v in varies)

    def numerical_warnings(self, fusion: str) -> list[str]:
        """One line per live node where `fusion` applies PROD to more than two inputs or to a
        deep node's (ReLU) output: such products are tiny or exactly zero (at init, F=39, n=3:
        mean |PROD| 4e-18 at O over 8 inputs, 87% exact zeros), so the node gets almost no
        signal to train on."""
        operations = self.operations_for(fusion)
        lines = []
        for node in self.live_nodes[1:]:
            inputs = self.connections[node]
            if operations.get(node) != "prod" or not inputs:
                continue
            relu = [src for src in inputs if self.space.kind(src) == "deep"]
            if len(inputs) <= 2 and not relu:
                continue
            what = [f"{len(inputs)} inputs ({', '.join(inputs)})"] if len(inputs) > 2 else []
            if relu:
                what.append(f"the ReLU output of {', '.join(relu)}")
            remedy = (
                "; --operation_norm=rms (search and re-train) or --fusion=soft may help"
                if self.operation_norm == "none" else ""
            )
            lines.append(
                f"{node}: fusion={fusion} applies PROD to {' and '.join(what)}: its output is "
                f"tiny or exactly zero for most examples (docs/model.md, 'PROD over many inputs'){remedy}."
            )
        return lines

    def check_trainable(self, fusion: str = "hard") -> None:
        """Raises ArchitectureSpecError if, under `fusion` (see `operations_for`), the model's output
        would not depend on the example (nothing to learn but a constant)."""
        operations = self.operations_for(fusion)
        if OUTPUT not in self.depends_on_example(operations):
            inputs = self.connections[OUTPUT]
            why = (
                "O has no connected input"
                if not inputs
                else f"O's connected inputs {list(inputs)} output constants"
            )
            raise ArchitectureSpecError(
                f"The architecture's output does not depend on the example under "
                f"fusion={fusion!r}: {why} (every path from E to O has an edge with alpha <= 0, "
                "and no shallow node on the way turns its x0 = E into a varying output), so "
                "there is no model to re-train."
            )

    def check_compatible(
        self,
        *,
        dataset: str,
        num_fields: int,
        feature_num: int,
        n: int | None = None,
        shallow: str | None = None,
        operation_norm: str | None = None,
    ) -> None:
        """Raises ArchitectureSpecError naming the first mismatch with the intended use."""
        expected = {"num_fields": num_fields, "feature_num": feature_num}
        if self.dataset and dataset:
            expected["dataset"] = dataset
        for key, value in (("n", n), ("shallow", shallow), ("operation_norm", operation_norm)):
            if value is not None:
                expected[key] = value
        for key, want in expected.items():
            have = getattr(self, key)
            if have != want:
                raise ArchitectureSpecError(
                    f"The architecture was searched with {key}={have!r}, but this run has "
                    f"{key}={want!r}."
                )


def validate(spec: ArchitectureSpec) -> None:
    """Raises ArchitectureSpecError naming what is wrong with `spec`'s fields."""
    space = SearchSpace(spec.n) if is_int(spec.n) and spec.n >= 1 else None
    if space is None:
        raise ArchitectureSpecError(f"n must be an integer >= 1. Received: {spec.n!r}")
    if spec.operation_norm not in OPERATION_NORMS:
        raise ArchitectureSpecError(
            f"operation_norm must be one of {list(OPERATION_NORMS)}. Received: {spec.operation_norm!r}"
        )
    if spec.shallow not in SHALLOW_COMPONENTS:
        raise ArchitectureSpecError(
            f"shallow must be one of {list(SHALLOW_COMPONENTS)}. Received: {spec.shallow!r}"
        )
    for key in ("num_fields", "feature_num", "emb_dim"):
        value = getattr(spec, key)
        if not is_int(value) or value < 1:
            raise ArchitectureSpecError(f"{key} must be a positive integer. Received: {value!r}")
    if not isinstance(spec.dataset, str):
        raise ArchitectureSpecError(f"dataset must be a string. Received: {spec.dataset!r}")
    if not isinstance(spec.alpha, Mapping):
        raise ArchitectureSpecError(f"alpha must be an object. Received: {spec.alpha!r}")
    expected_edges = [edge_name(s, d) for s, d in space.edges]
    missing = [e for e in expected_edges if e not in spec.alpha]
    extra = sorted(set(spec.alpha) - set(expected_edges))
    if extra:
        raise ArchitectureSpecError(
            f"alpha has edges that n={spec.n} does not allow (an edge must go from a lower "
            f"to a higher level; S0 takes E only): {extra}"
        )
    if missing:
        raise ArchitectureSpecError(f"alpha lacks edges of the n={spec.n} search space: {missing}")
    for name, value in spec.alpha.items():
        if not _is_finite_number(value):
            raise ArchitectureSpecError(f"alpha[{name!r}] must be a finite number. Received: {value!r}")
    missing_nodes = [v for v in space.fusing_nodes if v not in spec.beta]
    extra_nodes = sorted(set(spec.beta) - set(space.fusing_nodes))
    if missing_nodes or extra_nodes:
        raise ArchitectureSpecError(
            f"beta must have exactly the fusing nodes {list(space.fusing_nodes)}; "
            f"missing {missing_nodes}, unexpected {extra_nodes}"
        )
    for node, logits in spec.beta.items():
        if len(logits) != len(OPERATIONS) or not all(_is_finite_number(v) for v in logits):
            raise ArchitectureSpecError(
                f"beta[{node!r}] must be {len(OPERATIONS)} finite numbers (order "
                f"{list(OPERATIONS)}). Received: {list(logits)!r}"
            )


def _is_finite_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
