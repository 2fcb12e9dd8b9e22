"""The architecture spec that `arch.json` stores, with validation (plain Python, no TensorFlow).

An `ArchSpec` holds what a search learns (DESIGN.md sections 3-4, paper Eq. 9-13):

- `alpha`: one connection logit per allowed edge; edge (src -> dst) is connected when alpha > 0.
- `beta`: one logit per fusion operation (`OPERATIONS` order) for every fusing node.

and, derived from them and written alongside for readers of the file:

- `connections`: for every node, its connected inputs.
- `implicit_inputs`: x0 = E, the cross term every shallow node receives whatever alpha says
  (CrossNet(x0, x) = x0 (x . w) + b + x); it is not an edge of the search space and never masked.
- `operations`: for every fusing node, argmax(beta) (the OptFusion-Hard choice).
- `live_nodes`: the nodes a re-train builds: E and every node whose output reaches O through
  connected edges. A live node with no connected input is kept: the supernet computes it too
  (a shallow node still sees x0 = E; a deep node outputs a constant, which still shifts a
  downstream ADD / CONCAT, scales a PROD and competes in an ATT). Only nodes that do not reach
  O are pruned: they provably cannot change the output.

`depends_on_example(operations)` says which nodes' outputs vary with the example under the
operations a model applies (see `operations_for`): a model whose O does not is refused.

It also records what it was searched on (`dataset`, `num_fields`, `feature_num`, `emb_dim`,
`shallow`) so that re-training on another dataset or with another component is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

from optfusion_tf.architecture.search_space import (
    AUXILIARY_SHALLOW,
    EMBEDDING,
    OUTPUT,
    SearchSpace,
    edge_name,
)

# 2: live_nodes keeps unfed nodes that reach O (version 1 dropped them), implicit_inputs, and
# one-hot choices stored as decisive logits (ONE_HOT_LOGIT). Version 1 files are still read.
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
OPERATIONS = ("add", "prod", "concat", "att")
SHALLOW_COMPONENTS = ("crossnet", "crossnetv2", "cin")
PRESETS = ("parallel", "stacked")
# Normalizations of the fusion operations' outputs (optfusion_tf/fusion/base.py OUTPUT_NORMS).
OPERATION_NORMS = ("none", "rms")
# A fixed choice of one operation is stored as beta = 0 for it and -ONE_HOT_LOGIT for the
# others, so that softmax(beta) is exactly one-hot (exp(-1e4) is 0 in float32 and float64):
# OptFusion-Soft, the plots and the TensorBoard scalars all show the operation that was meant.
ONE_HOT_LOGIT = 1e4
# The operation a model applies at a fusing node, besides OPERATIONS: the softmax(beta) mixture.
MIXTURE = "mixture"
# Re-train modes (the `fusion` of a model with a fixed architecture) -> how operations_for picks
# each node's operation; a mode in OPERATIONS applies that operation everywhere.
MIXTURE_MODES = ("soft", "search_operations")


class ArchSpecError(ValueError):
    """An arch spec (usually an arch.json file) is malformed or does not fit its use."""


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A searched (or preset) fusion architecture.

    Attributes:
        n: number of shallow/deep pairs.
        shallow: shallow component type, one of SHALLOW_COMPONENTS.
        alpha: edge name ("E->S1") -> connection logit, for every edge of SearchSpace(n).
        beta: fusing node -> len(OPERATIONS) operation logits.
        dataset: dataset kind the search ran on (stats.json "dataset"), or "" if unknown.
        num_fields: F, number of feature fields.
        feature_num: size of the embedding table.
        emb_dim: embedding size d.
        source: what produced it ("search", "preset:parallel", ...).
        operation_norm: the fusion operations' output normalization the search ran with
            ("none" | "rms", optfusion_tf/fusion/base.py): beta was learned with it, so a
            re-train uses it too.
    """

    n: int
    shallow: str
    alpha: Mapping[str, float]
    beta: Mapping[str, tuple[float, ...]]
    dataset: str
    num_fields: int
    feature_num: int
    emb_dim: int
    source: str = "search"
    operation_norm: str = "none"

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived -------------------------------------------------------------------------

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(self.n)

    def is_connected(self, src: str, dst: str) -> bool:
        """1[alpha > 0] for edge (src, dst)."""
        return self.alpha[edge_name(src, dst)] > 0

    @property
    def connections(self) -> dict[str, tuple[str, ...]]:
        """node -> its connected inputs (in node order), for every node but E."""
        space = self.space
        return {
            dst: tuple(src for src in space.candidate_inputs(dst) if self.is_connected(src, dst))
            for dst in space.nodes
            if dst != EMBEDDING
        }

    @property
    def operations(self) -> dict[str, str]:
        """fusing node -> argmax(beta) operation name (first maximum on ties)."""
        return {
            node: OPERATIONS[max(range(len(OPERATIONS)), key=lambda k: logits[k])]
            for node, logits in self.beta.items()
        }

    @property
    def implicit_inputs(self) -> dict[str, tuple[str, ...]]:
        """shallow node -> ("E",): x0, the cross term, which no alpha switches off."""
        return {node: (EMBEDDING,) for node in self.space.nodes if self.space.kind(node) == "shallow"}

    @property
    def live_nodes(self) -> tuple[str, ...]:
        """E and every node whose output reaches O through connected edges, in node order.

        Fed or not: a live node with no connected input still computes what the supernet
        computes for it (see the module docstring).
        """
        space = self.space
        connections = self.connections
        reaches = {OUTPUT}
        for node in reversed(space.nodes[:-1]):
            if any(node in connections[dst] for dst in reaches):
                reaches.add(node)
        reaches.add(EMBEDDING)
        return tuple(node for node in space.nodes if node in reaches)

    @property
    def unfed_nodes(self) -> tuple[str, ...]:
        """Live nodes with no connected input (shallow ones still see x0 = E)."""
        connections = self.connections
        return tuple(v for v in self.live_nodes if v != EMBEDDING and not connections[v])

    def operations_for(self, fusion: str) -> dict[str, str]:
        """fusing node -> what a model with `fusion` applies there: an operation name or MIXTURE.

        `fusion`: "hard" (argmax beta), "soft" / "search_operations" (the mixture), or one of
        OPERATIONS (that operation everywhere).
        """
        if fusion == "hard":
            return self.operations
        if fusion in MIXTURE_MODES:
            return {node: MIXTURE for node in self.beta}
        if fusion in OPERATIONS:
            return {node: fusion for node in self.beta}
        raise ArchSpecError(
            f"fusion must be 'hard', one of {list(MIXTURE_MODES)} or one of {list(OPERATIONS)}. "
            f"Received: {fusion!r}"
        )

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

    # ---- checks against a use -------------------------------------------------------------

    def check_trainable(self, fusion: str = "hard") -> None:
        """Raises ArchSpecError if, under `fusion` (see `operations_for`), the model's output
        would not depend on the example (nothing to learn but a constant)."""
        operations = self.operations_for(fusion)
        if OUTPUT not in self.depends_on_example(operations):
            inputs = self.connections[OUTPUT]
            why = (
                "O has no connected input"
                if not inputs
                else f"O's connected inputs {list(inputs)} output constants"
            )
            raise ArchSpecError(
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
        """Raises ArchSpecError naming the first mismatch with the intended use."""
        expected = {"num_fields": num_fields, "feature_num": feature_num}
        if self.dataset and dataset:
            expected["dataset"] = dataset
        for key, value in (("n", n), ("shallow", shallow), ("operation_norm", operation_norm)):
            if value is not None:
                expected[key] = value
        for key, want in expected.items():
            have = getattr(self, key)
            if have != want:
                raise ArchSpecError(
                    f"The architecture was searched with {key}={have!r}, but this run has "
                    f"{key}={want!r}."
                )

    # ---- (de)serialization ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        space = self.space
        return {
            "format_version": FORMAT_VERSION,
            "source": self.source,
            "n": self.n,
            "shallow": self.shallow,
            "dataset": self.dataset,
            "num_fields": self.num_fields,
            "feature_num": self.feature_num,
            "emb_dim": self.emb_dim,
            "operation_norm": self.operation_norm,
            "operation_order": list(OPERATIONS),
            "alpha": {edge_name(s, d): float(self.alpha[edge_name(s, d)]) for s, d in space.edges},
            "beta": {node: [float(v) for v in self.beta[node]] for node in space.fusing_nodes},
            "connections": {node: list(srcs) for node, srcs in self.connections.items()},
            "implicit_inputs": {node: list(srcs) for node, srcs in self.implicit_inputs.items()},
            "operations": self.operations,
            "live_nodes": list(self.live_nodes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "arch spec") -> "ArchSpec":
        """Builds and validates; `where` (e.g. a file path) prefixes every error message."""
        try:
            if not isinstance(data, Mapping):
                raise ArchSpecError(f"expected a JSON object. Received: {type(data).__name__}")
            version = data.get("format_version")
            if version not in READABLE_FORMAT_VERSIONS:
                raise ArchSpecError(
                    f"format_version must be one of {list(READABLE_FORMAT_VERSIONS)}. "
                    f"Received: {version!r}"
                )
            order = data.get("operation_order", list(OPERATIONS))
            if list(order) != list(OPERATIONS):
                raise ArchSpecError(
                    f"operation_order must be {list(OPERATIONS)}. Received: {order!r}"
                )
            missing = [
                key
                for key in ("n", "shallow", "alpha", "beta", "num_fields", "feature_num", "emb_dim")
                if key not in data
            ]
            if missing:
                raise ArchSpecError(f"missing keys {missing}")
            beta = data["beta"]
            if not isinstance(beta, Mapping):
                raise ArchSpecError(f"beta must be an object. Received: {beta!r}")
            beta = {node: tuple(v) for node, v in beta.items()}
            source = data.get("source", "search")
            if version == 1 and _chosen_not_learned(source):
                # Version 1 stored a preset's or search_connections' fixed choices as one-hot
                # logits [1, 0, 0, 0], whose softmax is a mixture nobody meant.
                beta = {node: _decisive(logits) for node, logits in beta.items()}
            spec = cls(
                n=data["n"],
                shallow=data["shallow"],
                alpha=dict(data["alpha"]) if isinstance(data["alpha"], Mapping) else data["alpha"],
                beta=beta,
                dataset=data.get("dataset", ""),
                num_fields=data["num_fields"],
                feature_num=data["feature_num"],
                emb_dim=data["emb_dim"],
                source=source,
                operation_norm=data.get("operation_norm", "none"),
            )
            # Derived keys, when present, must agree with alpha/beta: a hand-edited
            # "connections" that contradicts alpha would otherwise be silently ignored.
            # (Version 1 computed live_nodes by an older rule: it is recomputed, not compared.)
            derived = spec.to_dict()
            checked = ("connections", "operations") if version == 1 else (
                "connections", "implicit_inputs", "operations", "live_nodes"
            )
            for key in checked:
                if key in data:
                    given = data[key]
                    if isinstance(given, Mapping):
                        given = {k: list(v) if isinstance(v, (list, tuple)) else v
                                 for k, v in given.items()}
                    elif isinstance(given, (list, tuple)):
                        given = list(given)
                    if given != derived[key]:
                        raise ArchSpecError(
                            f"{key!r} disagrees with alpha/beta: stored {given!r}, "
                            f"derived {derived[key]!r}. Edit alpha/beta, not the derived keys."
                        )
            return spec
        except (ArchSpecError, TypeError) as err:
            raise ArchSpecError(f"{where}: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes JSON atomically (temporary sibling, then rename)."""
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ArchSpec":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ArchSpecError(f"{path}: no such arch file")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise ArchSpecError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, where=path)


def preset_arch(
    preset: str,
    *,
    n: int,
    shallow: str,
    dataset: str,
    num_fields: int,
    feature_num: int,
    emb_dim: int,
    operation_norm: str = "none",
) -> ArchSpec:
    """The paper's naive fusions over the same components (DESIGN.md section 4).

    - parallel (DCN): E->S1->..->Sn, E->D1->..->Dn, O = CONCAT(Sn, Dn).
    - stacked: E->S0->D1->..->Dn->O.
    Single-input nodes use ADD (the identity on one input). beta is one_hot_beta of each choice,
    so that softmax(beta) (OptFusion-Soft, the plots) is exactly that choice.
    """
    if preset not in PRESETS:
        raise ArchSpecError(f"preset must be one of {list(PRESETS)}. Received: {preset!r}")
    space = SearchSpace(n)
    if preset == "parallel":
        chains = [[EMBEDDING] + [f"{k}{i}" for i in range(1, n + 1)] + [OUTPUT] for k in "SD"]
        output_op = "concat"
    else:
        chains = [[EMBEDDING, AUXILIARY_SHALLOW] + [f"D{i}" for i in range(1, n + 1)] + [OUTPUT]]
        output_op = "add"
    on = {edge_name(a, b) for chain in chains for a, b in zip(chain, chain[1:])}
    alpha = {edge_name(s, d): (1.0 if edge_name(s, d) in on else -1.0) for s, d in space.edges}
    beta = {
        node: one_hot_beta(output_op if node == OUTPUT else "add") for node in space.fusing_nodes
    }
    return ArchSpec(
        n=n,
        shallow=shallow,
        alpha=alpha,
        beta=beta,
        dataset=dataset,
        num_fields=num_fields,
        feature_num=feature_num,
        emb_dim=emb_dim,
        source=f"preset:{preset}",
        operation_norm=operation_norm,
    )


def one_hot_beta(operation: str) -> tuple[float, ...]:
    """beta logits whose softmax is exactly one-hot on `operation` (0 and -ONE_HOT_LOGIT)."""
    if operation not in OPERATIONS:
        raise ArchSpecError(f"operation must be one of {list(OPERATIONS)}. Received: {operation!r}")
    return tuple(0.0 if name == operation else -ONE_HOT_LOGIT for name in OPERATIONS)


def _chosen_not_learned(source: str) -> bool:
    """Whether an arch's beta records fixed choices (a preset, search_connections' ADD)."""
    return source.startswith("preset:") or source == "search_connections"


def _decisive(logits: tuple[Any, ...]) -> tuple[Any, ...]:
    """A version-1 one-hot row [0/1 x 4] -> one_hot_beta of its 1; other rows unchanged."""
    if sorted(logits) == [0, 0, 0, 1]:
        return one_hot_beta(OPERATIONS[list(logits).index(1)])
    return logits


def _validate(spec: ArchSpec) -> None:
    """Raises ArchSpecError naming what is wrong."""
    space = SearchSpace(spec.n) if _is_int(spec.n) and spec.n >= 1 else None
    if space is None:
        raise ArchSpecError(f"n must be an integer >= 1. Received: {spec.n!r}")
    if spec.operation_norm not in OPERATION_NORMS:
        raise ArchSpecError(
            f"operation_norm must be one of {list(OPERATION_NORMS)}. Received: {spec.operation_norm!r}"
        )
    if spec.shallow not in SHALLOW_COMPONENTS:
        raise ArchSpecError(
            f"shallow must be one of {list(SHALLOW_COMPONENTS)}. Received: {spec.shallow!r}"
        )
    for key in ("num_fields", "feature_num", "emb_dim"):
        value = getattr(spec, key)
        if not _is_int(value) or value < 1:
            raise ArchSpecError(f"{key} must be a positive integer. Received: {value!r}")
    if not isinstance(spec.dataset, str):
        raise ArchSpecError(f"dataset must be a string. Received: {spec.dataset!r}")
    if not isinstance(spec.alpha, Mapping):
        raise ArchSpecError(f"alpha must be an object. Received: {spec.alpha!r}")
    expected_edges = [edge_name(s, d) for s, d in space.edges]
    missing = [e for e in expected_edges if e not in spec.alpha]
    extra = sorted(set(spec.alpha) - set(expected_edges))
    if extra:
        raise ArchSpecError(
            f"alpha has edges that n={spec.n} does not allow (an edge must go from a lower "
            f"to a higher level; S0 takes E only): {extra}"
        )
    if missing:
        raise ArchSpecError(f"alpha lacks edges of the n={spec.n} search space: {missing}")
    for name, value in spec.alpha.items():
        if not _is_finite_number(value):
            raise ArchSpecError(f"alpha[{name!r}] must be a finite number. Received: {value!r}")
    missing_nodes = [v for v in space.fusing_nodes if v not in spec.beta]
    extra_nodes = sorted(set(spec.beta) - set(space.fusing_nodes))
    if missing_nodes or extra_nodes:
        raise ArchSpecError(
            f"beta must have exactly the fusing nodes {list(space.fusing_nodes)}; "
            f"missing {missing_nodes}, unexpected {extra_nodes}"
        )
    for node, logits in spec.beta.items():
        if len(logits) != len(OPERATIONS) or not all(_is_finite_number(v) for v in logits):
            raise ArchSpecError(
                f"beta[{node!r}] must be {len(OPERATIONS)} finite numbers (order "
                f"{list(OPERATIONS)}). Received: {list(logits)!r}"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
