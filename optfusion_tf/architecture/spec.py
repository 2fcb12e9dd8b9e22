"""The architecture spec and its file format, `arch.json` (plain Python, no TensorFlow).

An `ArchitectureSpec` holds what a search learns (DESIGN.md sections 3-4, paper Eq. 9-13):

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

It also records what it was searched on (`dataset`, `num_fields`, `feature_num`, `emb_dim`,
`shallow`, `operation_norm`) so that re-training on another dataset or with another component is
refused. `operations_for(fusion)` says what a model applies at each fusing node.

The file: `to_dict` / `save` write `FORMAT_VERSION`; `from_dict` / `load` read every version in
`READABLE_FORMAT_VERSIONS` and refuse derived keys that disagree with alpha / beta.
`one_hot_beta` is how a fixed choice of operation is stored.

Elsewhere: the checks, which `ArchitectureSpec` inherits, in validation.py; the presets in presets.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

from optfusion_tf.architecture.atomic_file import write_text_atomically
from optfusion_tf.architecture.search_space import EMBEDDING, OUTPUT, SearchSpace, edge_name
from optfusion_tf.architecture.validation import (
    OPERATIONS,
    ArchitectureSpecChecks,
    ArchitectureSpecError,
    validate,
)

# 2: live_nodes keeps unfed nodes that reach O (version 1 dropped them), implicit_inputs, and
# one-hot choices stored as decisive logits (ONE_HOT_LOGIT). Version 1 files are still read.
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
# A fixed choice of one operation is stored as beta = 0 for it and -ONE_HOT_LOGIT for the
# others, so that softmax(beta) is exactly one-hot (exp(-1e4) is 0 in float32 and float64):
# OptFusion-Soft, the plots and the TensorBoard scalars all show the operation that was meant.
ONE_HOT_LOGIT = 1e4
# The operation a model applies at a fusing node, besides OPERATIONS: the softmax(beta) mixture.
MIXTURE = "mixture"
# Re-train modes (the `fusion` of a model with a fixed architecture) -> how operations_for picks
# each node's operation; a mode in OPERATIONS applies that operation everywhere.
MIXTURE_MODES = ("soft", "search_operations")


@dataclasses.dataclass(frozen=True)
class ArchitectureSpec(ArchitectureSpecChecks):
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
            ("none" | "rms", optfusion_tf/operations/base.py): beta was learned with it, so a
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
        validate(self)

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
        raise ArchitectureSpecError(
            f"fusion must be 'hard', one of {list(MIXTURE_MODES)} or one of {list(OPERATIONS)}. "
            f"Received: {fusion!r}"
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
    def from_dict(cls, data: Mapping[str, Any], where: str = "arch spec") -> "ArchitectureSpec":
        """Builds and validates; `where` (e.g. a file path) prefixes every error message."""
        try:
            if not isinstance(data, Mapping):
                raise ArchitectureSpecError(f"expected a JSON object. Received: {type(data).__name__}")
            version = data.get("format_version")
            if version not in READABLE_FORMAT_VERSIONS:
                raise ArchitectureSpecError(
                    f"format_version must be one of {list(READABLE_FORMAT_VERSIONS)}. "
                    f"Received: {version!r}"
                )
            order = data.get("operation_order", list(OPERATIONS))
            if list(order) != list(OPERATIONS):
                raise ArchitectureSpecError(
                    f"operation_order must be {list(OPERATIONS)}. Received: {order!r}"
                )
            missing = [
                key
                for key in ("n", "shallow", "alpha", "beta", "num_fields", "feature_num", "emb_dim")
                if key not in data
            ]
            if missing:
                raise ArchitectureSpecError(f"missing keys {missing}")
            beta = data["beta"]
            if not isinstance(beta, Mapping):
                raise ArchitectureSpecError(f"beta must be an object. Received: {beta!r}")
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
                        raise ArchitectureSpecError(
                            f"{key!r} disagrees with alpha/beta: stored {given!r}, "
                            f"derived {derived[key]!r}. Edit alpha/beta, not the derived keys."
                        )
            return spec
        except (ArchitectureSpecError, TypeError) as err:
            raise ArchitectureSpecError(f"{where}: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes JSON atomically (temporary sibling, then rename)."""
        write_text_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ArchitectureSpec":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ArchitectureSpecError(f"{path}: no such arch file")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise ArchitectureSpecError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, where=path)



# The names before the layout issue (28): user code written against them keeps working.
ArchSpec = ArchitectureSpec
ArchSpecError = ArchitectureSpecError


def softmax(logits: tuple[float, ...]) -> tuple[float, ...]:
    """Numerically stable softmax of a short tuple of logits."""
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return tuple(v / total for v in exps)


def one_hot_beta(operation: str) -> tuple[float, ...]:
    """beta logits whose softmax is exactly one-hot on `operation` (0 and -ONE_HOT_LOGIT)."""
    if operation not in OPERATIONS:
        raise ArchitectureSpecError(f"operation must be one of {list(OPERATIONS)}. Received: {operation!r}")
    return tuple(0.0 if name == operation else -ONE_HOT_LOGIT for name in OPERATIONS)


def _chosen_not_learned(source: str) -> bool:
    """Whether an arch's beta records fixed choices (a preset, search_connections' ADD)."""
    return source.startswith("preset:") or source == "search_connections"


def _decisive(logits: tuple[Any, ...]) -> tuple[Any, ...]:
    """A version-1 one-hot row [0/1 x 4] -> one_hot_beta of its 1; other rows unchanged."""
    if sorted(logits) == [0, 0, 0, 1]:
        return one_hot_beta(OPERATIONS[list(logits).index(1)])
    return logits
