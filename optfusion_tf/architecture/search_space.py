"""The OptFusion search space as plain Python (no TensorFlow).

Nodes and levels (paper Sec. 3.1, Eq. 5; DESIGN.md section 3), for n >= 1 shallow/deep pairs:

    E   embedding                         level 0
    S0  auxiliary shallow block           level 1   (input: E only)
    Si  shallow component, i = 1..n       level i + 1
    Di  deep component,    i = 1..n       level i + 1
    O   output                            level n + 2

An edge (src -> dst) is allowed when level(src) < level(dst), except that S0 takes E only.
The node order below ("E", "S0", "S1", "D1", ..., "Sn", "Dn", "O") is the reference
implementation's row/column order of its connection matrix.

For n = 3 there are 9 nodes, 33 edges and 7 fusing nodes (S1..D3 and O).
"""

from __future__ import annotations

import dataclasses
import functools

from optfusion_tf.architecture.checks import check_int

EMBEDDING = "E"
AUXILIARY_SHALLOW = "S0"
OUTPUT = "O"

NODE_KINDS = ("embedding", "shallow", "deep", "output")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The DAG of candidate connections for `n` shallow/deep pairs.

    Attributes:
        n: number of shallow components S1..Sn (and of deep components D1..Dn); >= 1.
    """

    n: int

    def __post_init__(self) -> None:
        check_int("n", self.n)

    @functools.cached_property
    def nodes(self) -> tuple[str, ...]:
        """All nodes in topological (reference) order."""
        middle = []
        for i in range(1, self.n + 1):
            middle += [f"S{i}", f"D{i}"]
        return (EMBEDDING, AUXILIARY_SHALLOW, *middle, OUTPUT)

    def level(self, node: str) -> int:
        """Level L(node) of Eq. 5: E 0, S0 1, Si/Di i+1, O n+2."""
        self._check_node(node)
        if node == EMBEDDING:
            return 0
        if node == OUTPUT:
            return self.n + 2
        return int(node[1:]) + 1

    def kind(self, node: str) -> str:
        """One of NODE_KINDS."""
        self._check_node(node)
        return {"E": "embedding", "S": "shallow", "D": "deep", "O": "output"}[node[0]]

    def candidate_inputs(self, node: str) -> tuple[str, ...]:
        """The lower-level nodes that may feed `node`, in node order."""
        self._check_node(node)
        if node == EMBEDDING:
            return ()
        if node == AUXILIARY_SHALLOW:
            return (EMBEDDING,)
        return tuple(src for src in self.nodes if self.level(src) < self.level(node))

    @functools.cached_property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """Every allowed edge (src, dst), grouped by dst in node order."""
        return tuple((src, dst) for dst in self.nodes for src in self.candidate_inputs(dst))

    @functools.cached_property
    def fusing_nodes(self) -> tuple[str, ...]:
        """Nodes with more than one candidate input: they carry a fusion operation (beta)."""
        return tuple(node for node in self.nodes if len(self.candidate_inputs(node)) > 1)

    def _check_node(self, node: str) -> None:
        if node not in self.nodes:
            raise ValueError(
                f"Unknown node for n={self.n}; expected one of {list(self.nodes)}. "
                f"Received: {node!r}"
            )


def edge_name(src: str, dst: str) -> str:
    """The key of edge (src, dst) in arch.json, e.g. "E->S1"."""
    return f"{src}->{dst}"


def parse_edge_name(name: str) -> tuple[str, str]:
    """Inverse of `edge_name`."""
    parts = name.split("->")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"An edge name looks like 'E->S1'. Received: {name!r}")
    return parts[0], parts[1]
