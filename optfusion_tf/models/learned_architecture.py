"""The architecture a model holds now: its live alpha / beta in the search modes, else its arch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optfusion_tf.architecture.search_space import edge_name
from optfusion_tf.architecture.spec import ArchitectureSpec, one_hot_beta
from optfusion_tf.models.node_plan import CONNECTION_SEARCH_MODES, OPERATION_SEARCH_MODES

if TYPE_CHECKING:
    from optfusion_tf.models.model import OptFusionModel


def current_arch(model: "OptFusionModel") -> ArchitectureSpec:
    """`model.arch` in the fixed modes; else an ArchitectureSpec of the live alpha ([E] edge
    logits) and beta ([nodes, 4] operation logits) of a built model.

    In "search_connections" every node's beta is `one_hot_beta("add")` (the operation used);
    in "search_operations" alpha is the arch's.
    """
    if model.mode not in CONNECTION_SEARCH_MODES + OPERATION_SEARCH_MODES:
        return model.arch
    space = model.space
    if model.alpha is not None:
        values = model.alpha.numpy().tolist()
        alpha = {edge_name(s, d): values[i] for i, (s, d) in enumerate(space.edges)}
    else:
        alpha = dict(model.arch.alpha)
    if model.beta is not None:
        rows = model.beta.numpy().tolist()
        beta = {node: tuple(rows[i]) for i, node in enumerate(space.fusing_nodes)}
    else:
        beta = {node: one_hot_beta("add") for node in space.fusing_nodes}
    return ArchitectureSpec(
        n=model.n, shallow=model.shallow, alpha=alpha, beta=beta, dataset=model.dataset,
        num_fields=model.num_fields, feature_num=model.feature_num, emb_dim=model.emb_dim,
        source=model.mode, operation_norm=model.operation_norm,
    )
