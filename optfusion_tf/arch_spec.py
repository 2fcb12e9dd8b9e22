"""The architecture spec that `arch.json` stores, with validation (plain Python, no TensorFlow).

An `ArchSpec` holds what a search learns (DESIGN.md sections 3-4, paper Eq. 9-13):

- `alpha`: one connection logit per allowed edge; edge (src -> dst) is connected when alpha > 0.
- `beta`: one logit per fusion operation (`OPERATIONS` order) for every fusing node.

and, derived from them and written alongside for readers of the file:

- `connections`: for every node, its connected inputs.
- `operations`: for every fusing node, argmax(beta) (the OptFusion-Hard choice).
- `live_nodes`: the nodes that a hard re-train builds: fed from E through connected edges and
  reaching O. A node with no connected input carries no information about the example (it would
  output a constant), so it is not live and its outgoing edges are dropped.

It also records what it was searched on (`dataset`, `num_fields`, `feature_num`, `emb_dim`,
`shallow`) so that re-training on another dataset or with another component is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

from optfusion_tf.search_space import (
    AUXILIARY_SHALLOW,
    EMBEDDING,
    OUTPUT,
    SearchSpace,
    edge_name,
)

FORMAT_VERSION = 1
OPERATIONS = ("add", "prod", "concat", "att")
SHALLOW_COMPONENTS = ("crossnet", "crossnetv2", "cin")
PRESETS = ("parallel", "stacked")


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
    def live_nodes(self) -> tuple[str, ...]:
        """Nodes fed from E through connected edges that also reach O, in node order.

        Empty when O is not reachable from E.
        """
        space = self.space
        connections = self.connections
        fed = {EMBEDDING}
        for node in space.nodes[1:]:
            if any(src in fed for src in connections[node]):
                fed.add(node)
        if OUTPUT not in fed:
            return ()
        reaches = {OUTPUT}
        for node in reversed(space.nodes[:-1]):
            if any(node in connections[dst] and dst in reaches for dst in space.nodes[1:]):
                reaches.add(node)
        return tuple(node for node in space.nodes if node in fed and node in reaches)

    def live_inputs(self, node: str) -> tuple[str, ...]:
        """Connected inputs of `node` that are live (what a hard re-train feeds it)."""
        live = set(self.live_nodes)
        return tuple(src for src in self.connections[node] if src in live)

    # ---- checks against a use -------------------------------------------------------------

    def check_trainable(self) -> None:
        """Raises ArchSpecError if no path connects E to O (nothing to re-train)."""
        if not self.live_nodes:
            raise ArchSpecError(
                "The architecture connects nothing from E to O (every path has an edge with "
                "alpha <= 0), so there is no model to re-train."
            )

    def check_compatible(
        self,
        *,
        dataset: str,
        num_fields: int,
        feature_num: int,
        n: int | None = None,
        shallow: str | None = None,
    ) -> None:
        """Raises ArchSpecError naming the first mismatch with the intended use."""
        expected = {"num_fields": num_fields, "feature_num": feature_num}
        if self.dataset and dataset:
            expected["dataset"] = dataset
        if n is not None:
            expected["n"] = n
        if shallow is not None:
            expected["shallow"] = shallow
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
            "operation_order": list(OPERATIONS),
            "alpha": {edge_name(s, d): float(self.alpha[edge_name(s, d)]) for s, d in space.edges},
            "beta": {node: [float(v) for v in self.beta[node]] for node in space.fusing_nodes},
            "connections": {node: list(srcs) for node, srcs in self.connections.items()},
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
            if version != FORMAT_VERSION:
                raise ArchSpecError(
                    f"format_version must be {FORMAT_VERSION}. Received: {version!r}"
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
            spec = cls(
                n=data["n"],
                shallow=data["shallow"],
                alpha=dict(data["alpha"]) if isinstance(data["alpha"], Mapping) else data["alpha"],
                beta={node: tuple(v) for node, v in beta.items()},
                dataset=data.get("dataset", ""),
                num_fields=data["num_fields"],
                feature_num=data["feature_num"],
                emb_dim=data["emb_dim"],
                source=data.get("source", "search"),
            )
            # Derived keys, when present, must agree with alpha/beta: a hand-edited
            # "connections" that contradicts alpha would otherwise be silently ignored.
            for key in ("connections", "operations", "live_nodes"):
                if key in data:
                    derived = spec.to_dict()[key]
                    given = data[key]
                    if key == "connections":
                        given = {k: list(v) for k, v in given.items()}
                    elif key == "live_nodes":
                        given = list(given)
                    if given != derived:
                        raise ArchSpecError(
                            f"{key!r} disagrees with alpha/beta: stored {given!r}, "
                            f"derived {derived!r}. Edit alpha/beta, not the derived keys."
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
) -> ArchSpec:
    """The paper's naive fusions over the same components (DESIGN.md section 4).

    - parallel (DCN): E->S1->..->Sn, E->D1->..->Dn, O = CONCAT(Sn, Dn).
    - stacked: E->S0->D1->..->Dn->O.
    Single-input nodes use ADD (the identity on one input).
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
    beta = {}
    for node in space.fusing_nodes:
        op = output_op if node == OUTPUT else "add"
        beta[node] = tuple(1.0 if name == op else 0.0 for name in OPERATIONS)
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
    )


def _validate(spec: ArchSpec) -> None:
    """Raises ArchSpecError naming what is wrong."""
    space = SearchSpace(spec.n) if _is_int(spec.n) and spec.n >= 1 else None
    if space is None:
        raise ArchSpecError(f"n must be an integer >= 1. Received: {spec.n!r}")
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
