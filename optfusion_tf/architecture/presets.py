"""The preset architectures (`PRESETS`, `preset_arch`): the paper's naive fusions of the same
components, which need no search (plain Python, no TensorFlow)."""

from __future__ import annotations

from optfusion_tf.architecture.spec import ArchitectureSpec, one_hot_beta
from optfusion_tf.architecture.search_space import (
    AUXILIARY_SHALLOW,
    EMBEDDING,
    OUTPUT,
    SearchSpace,
    edge_name,
)
from optfusion_tf.architecture.validation import ArchitectureSpecError

PRESETS = ("parallel", "stacked")


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
) -> ArchitectureSpec:
    """The paper's naive fusions over the same components (DESIGN.md section 4).

    - parallel (DCN): E->S1->..->Sn, E->D1->..->Dn, O = CONCAT(Sn, Dn).
    - stacked: E->S0->D1->..->Dn->O.
    Single-input nodes use ADD (the identity on one input). beta is one_hot_beta of each choice,
    so that softmax(beta) (OptFusion-Soft, the plots) is exactly that choice.
    """
    if preset not in PRESETS:
        raise ArchitectureSpecError(f"preset must be one of {list(PRESETS)}. Received: {preset!r}")
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
    return ArchitectureSpec(
        n=n, shallow=shallow, alpha=alpha, beta=beta, dataset=dataset, num_fields=num_fields,
        feature_num=feature_num, emb_dim=emb_dim, source=f"preset:{preset}",
        operation_norm=operation_norm,
    )
