"""The node plan of OptFusionModel: which nodes it builds, what feeds each, which operation fuses
the inputs of each.

The graph (paper Sec. 3.1, DESIGN.md sections 3-4), with W = num_fields * emb_dim everywhere:

    E   = the flat embedding [batch, W] of the example's F feature ids
    S0  = shallow(E, c(E->S0) * E)                      the auxiliary shallow block
    Si  = shallow(E, fuse_Si(candidate inputs of Si))   i = 1..n
    Di  = deep(fuse_Di(candidate inputs of Di))         i = 1..n
    logit = Dense(1)(fuse_O(candidate inputs of O))     [batch, 1]

The model's mode (its `fusion=` argument, one of FUSION_MODES) selects the operation in front
of each node and where the connections come from:

    mode                 connections                    operation at each fusing node
    search               STE(alpha), alpha trainable     softmax(beta) mixture, beta trainable
    search_connections   STE(alpha), alpha trainable     ADD                 (Table 5, step 1)
    search_operations    fixed by `arch`                 softmax(beta) mixture, beta trainable
    hard                 fixed by `arch`                 argmax(beta*) of `arch`
    soft                 fixed by `arch`                 fixed softmax(beta*) mixture of `arch`
    add|prod|concat|att  fixed by `arch`                 that operation everywhere (Table 4)

Search modes build every node and feed every operation all K candidate inputs with their 0/1
connections. Every other mode builds `arch.live_nodes` (every node that reaches O) and feeds
each node only its connected inputs, with no masking work: only nodes that cannot change the
output are pruned, so the model computes what the supernet computes for that architecture
(tested against the supernet, every mode, n = 1..4). A live node with no connected input
("unfed") gets what the supernet's operation gives when every candidate is disconnected: its
operation sees one candidate, E, gated by a constant 0 (ADD -> 0, PROD -> 1, CONCAT -> its bias,
ATT -> 0, the mixture their weighted sum; S0 gets 0). A shallow node still receives x0 = E.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping


from optfusion_tf.architecture.spec import MIXTURE, ArchitectureSpec, softmax
from optfusion_tf.architecture.search_space import EMBEDDING, OUTPUT, SearchSpace
from optfusion_tf.architecture.validation import OPERATIONS

FUSION_MODES = ("search", "search_connections", "search_operations", "hard", "soft", *OPERATIONS)
# Modes whose connections are searched (alpha is a trainable variable).
CONNECTION_SEARCH_MODES = ("search", "search_connections")
# Modes whose operations are searched (beta is a trainable variable).
OPERATION_SEARCH_MODES = ("search", "search_operations")


@dataclasses.dataclass(frozen=True)
class NodePlan:
    """How one built node is computed.

    Attributes:
        node: node name ("S0", "S1", "D1", ..., "O").
        kind: "shallow", "deep" or "output".
        inputs: the nodes whose outputs it receives, in candidate-input order.
        operation: "add" | "prod" | "concat" | "att" | "mixture" (the softmax(beta) mixture of
            the four), or None for S0 (one input, no operation).
        masked: whether the inputs are gated by the connections STE(alpha) (search modes).
        unfed: the node has no connected input (fixed modes): `inputs` is ("E",), gated by a
            constant 0, which gives the value the supernet computes when every candidate is
            disconnected.
    """

    node: str
    kind: str
    inputs: tuple[str, ...]
    operation: str | None
    masked: bool
    unfed: bool = False

    @property
    def fusion(self) -> str | None:
        """The former name of `operation` (kept as an alias for code that read it)."""
        return self.operation


def checked_arch(
    arch: ArchitectureSpec | Mapping[str, Any] | None,
    mode: str,
    dataset: str,
    num_fields: int,
    feature_num: int,
    n: int,
    shallow: str,
    operation_norm: str,
) -> ArchitectureSpec | None:
    """The arch as an ArchitectureSpec, validated against the mode and the model's shape.

    Search-connection modes take no arch (None); every other mode needs one, compatible with
    the model (`ArchitectureSpec.check_compatible`) and trainable in that mode.
    """
    if mode in CONNECTION_SEARCH_MODES:
        if arch is not None:
            raise ValueError(
                f"fusion={mode!r} searches the connections and takes no `arch`. "
                f"Received: arch={arch!r}"
            )
        return None
    if arch is None:
        raise ValueError(
            f"fusion={mode!r} needs an `arch` (an ArchitectureSpec, e.g. ArchitectureSpec.load('arch.json')). "
            "Received: arch=None"
        )
    if not isinstance(arch, ArchitectureSpec):
        arch = ArchitectureSpec.from_dict(arch)
    arch.check_compatible(
        dataset=dataset, num_fields=num_fields, feature_num=feature_num, n=n, shallow=shallow,
        operation_norm=operation_norm,
    )
    arch.check_trainable(mode)
    return arch


def plan_nodes(space: SearchSpace, mode: str, arch: ArchitectureSpec | None) -> tuple[NodePlan, ...]:
    """The nodes to build, in topological order (E excluded), and how each is computed.

    Search-connection modes: every node, fed all its candidate inputs, masked. Other modes:
    `arch.live_nodes`, each fed its connected inputs (("E",) when it has none: unfed).
    """
    plans = []
    if mode in CONNECTION_SEARCH_MODES:
        operation = MIXTURE if mode in OPERATION_SEARCH_MODES else "add"
        for node in space.nodes[1:]:
            plans.append(NodePlan(
                node, node_kind(space, node), space.candidate_inputs(node),
                operation if node in space.fusing_nodes else None, masked=True,
            ))
        return tuple(plans)
    operations = arch.operations_for(mode)
    for node in arch.live_nodes[1:]:
        inputs = arch.connections[node]
        plans.append(NodePlan(
            node, node_kind(space, node), inputs or (EMBEDDING,), operations.get(node),
            masked=False, unfed=not inputs,
        ))
    return tuple(plans)


def node_kind(space: SearchSpace, node: str) -> str:
    """"shallow", "deep" or, for O, "output"."""
    return "output" if node == OUTPUT else space.kind(node)


def edge_slices(space: SearchSpace) -> dict[str, tuple[int, int]]:
    """node -> [start, stop) of its incoming edges in SearchSpace.edges (grouped by dst): the
    slice of alpha, and of the connections STE(alpha), that gates the node's inputs."""
    slices: dict[str, tuple[int, int]] = {}
    for index, (_, dst) in enumerate(space.edges):
        start = slices.get(dst, (index, index))[0]
        slices[dst] = (start, index + 1)
    return slices


def soft_operation_weights(space: SearchSpace, arch: ArchitectureSpec) -> dict[str, tuple[float, ...]]:
    """fusing node -> softmax(beta*) of `arch` (float64, OPERATIONS order): the fixed mixture
    weights of every fusing node in "soft" mode."""
    return {node: softmax(arch.beta[node]) for node in space.fusing_nodes}
