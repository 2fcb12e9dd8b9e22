"""OptFusionModel: the OptFusion supernet (search) and its re-trained architectures.

The model builds the nodes of its plan (`node_plan.py`: the graph, the modes, which nodes live
and what feeds them) and computes them in order: the embedding E, each node's operation on its
inputs (gated by STE(alpha) in search), its component, and the logit at O. Variables
come in the three groups of `training_step.py`; `warm_start.py` copies a search's weights into
a re-train (`load_search_weights`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import keras
import tensorflow as tf
from keras import ops

from optfusion_tf.architecture.spec import MIXTURE, ArchitectureSpec
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import OPERATIONS
from optfusion_tf.layers.types import Tensor
from optfusion_tf.architecture.search_space import EMBEDDING, OUTPUT, SearchSpace
from optfusion_tf.models import diagnostics, learned_architecture, warm_start
from optfusion_tf.models.construction import add_node_layers, build_node_layers, check_arguments
from optfusion_tf.models.node_plan import (
    CONNECTION_SEARCH_MODES,
    OPERATION_SEARCH_MODES,
    NodePlan,
    checked_arch,
    edge_slices,
    plan_nodes,
    soft_operation_weights,
)
from optfusion_tf.models.ste import straight_through_step
from optfusion_tf.models.training_step import GroupedOptimizerModel
from optfusion_tf.operations.concat import ConcatFusion, concatenated

# PyTorch's xavier_normal_ on the reference's [1, 4] beta of each node: sqrt(2 / (4 + 1)).
BETA_INIT_STDDEV = math.sqrt(2.0 / (len(OPERATIONS) + 1))
# The constructor arguments that get_config records, as attributes of the same name ("fusion" is
# the mode, `self.mode`, under its public name).
_CONFIG_KEYS = (
    "feature_num", "num_fields", "emb_dim", "n", "shallow", "fusion", "arch", "dropout",
    "batch_norm", "init_constant", "embedding_init_std", "kernel_init", "seed", "dataset",
    "operation_norm", "concat_head", "deep_dtype",
)


@keras.saving.register_keras_serializable(package="optfusion")
class OptFusionModel(GroupedOptimizerModel):
    """The OptFusion CTR model: embedding, 2n + 1 components, learned or fixed fusion, logit.

    Args:
        feature_num: size of the embedding table (global feature ids in [0, feature_num)).
        num_fields: F, the number of feature fields of an example.
        emb_dim: d, the embedding size. Every node has width W = F * d.
        n: number of shallow/deep component pairs (S1..Sn, D1..Dn); >= 1.
        shallow: shallow component type, one of `crossnet | crossnetv2 | cin`.
        fusion: the mode, one of FUSION_MODES (see node_plan.py): searched or fixed connections
            and operations. Read back as `model.mode` (or `model.fusion`).
        arch: the architecture (`ArchitectureSpec` or its `to_dict()`); required by every mode but
            "search" and "search_connections", which take none.
        dropout: dropout rate after each deep block's ReLU.
        batch_norm: batch normalization inside each deep block.
        init_constant: initial value of every connection logit alpha (0.5 as the reference:
            every edge starts connected).
        embedding_init_std: standard deviation of the normal embedding init; default 1e-4, the
            scripts' `--embedding_init_std` (FuxiCTR's and DeepCTR's; the reference's
            `--emb_std` default is 1e-2).
        kernel_init: the initializer of every kernel (components, operations, output),
            one of KERNEL_INITS: "glorot_normal" (default; Keras' and DeepCTR's) or "torch"
            (PyTorch nn.Linear's U(+-1/sqrt(fan_in)), the reference's start). Biases start at 0.
        operation_norm: "none" (the paper's operations) or "rms": every fusion operation's
            output is rescaled to unit RMS per example (optfusion_tf/operations/base.py), in search
            and re-train alike.
        concat_head: where O fuses by CONCAT with fixed connections (the parallel preset, a
            re-train whose O is CONCAT) and `operation_norm="none"`, the paper's CONCAT
            ([K * W] -> W) and the logit layer (W -> 1) are two linear maps in a row.
            "projected" (default) trains them as two (the paper's CONCAT, then the logit
            layer: the reference's parametrization, and exactly what the supernet computes);
            "direct" as one, the logit layer over the concatenated inputs (kernel [K * W, 1]:
            DCN's head). The same functions, trained differently (docs/model.md, "The output
            node"). Other models build the same with either.
        deep_dtype: the dtype policy of the deep blocks, one of DEEP_DTYPES: "float32"
            (default) or "mixed_bfloat16" (float32 weights, the blocks' matmuls in bfloat16:
            faster where the hardware has bfloat16 units, docs/training.md). Everything else,
            the logits included, stays in the global policy (Keras' default: float32).
        seed: seeds every initializer (and the dropout) for a reproducible model; None draws
            them from Keras' global seed (`keras.utils.set_random_seed`).
        dataset: dataset kind, recorded in `current_arch()` and checked against `arch`.
        **kwargs: passed to `keras.Model` (name, ...).

    Call arguments:
        feature_ids: int tensor [batch, F] (int32 or int64) of global feature ids.
        training: Python bool or None (dropout, batch norm).

    Returns:
        Float32 logits [batch, 1].
    """

    def __init__(
        self,
        feature_num: int,
        num_fields: int,
        emb_dim: int,
        n: int = 3,
        shallow: str = "crossnet",
        fusion: str = "search",
        arch: ArchitectureSpec | Mapping[str, Any] | None = None,
        dropout: float = 0.0,
        batch_norm: bool = False,
        init_constant: float = 0.5,
        embedding_init_std: float = 1e-4,
        kernel_init: str = "glorot_normal",
        seed: int | None = None,
        dataset: str = "",
        operation_norm: str = "none",
        concat_head: str = "projected",
        deep_dtype: str = "float32",
        **kwargs: Any,
    ) -> None:
        mode = fusion  # the public spelling of the argument and config key is `fusion`
        check_arguments(
            feature_num=feature_num, num_fields=num_fields, emb_dim=emb_dim, n=n,
            shallow=shallow, fusion=fusion, dropout=dropout, init_constant=init_constant,
            embedding_init_std=embedding_init_std, kernel_init=kernel_init,
            operation_norm=operation_norm, concat_head=concat_head, deep_dtype=deep_dtype,
            seed=seed,
        )
        arch = checked_arch(
            arch, mode, dataset, num_fields, feature_num, n, shallow, operation_norm
        )
        super().__init__(**kwargs)
        self.feature_num = feature_num
        self.num_fields = num_fields
        self.emb_dim = emb_dim
        self.width = num_fields * emb_dim
        self.n = n
        self.shallow = shallow
        self.mode = mode
        self.arch = arch
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.init_constant = float(init_constant)
        self.embedding_init_std = float(embedding_init_std)
        self.kernel_init = kernel_init
        self.seed = seed
        self.dataset = dataset
        self.operation_norm = operation_norm
        self.concat_head = concat_head
        self.deep_dtype = deep_dtype
        self.space = SearchSpace(n)

        self._graph = plan_nodes(self.space, mode, arch)
        self._edge_slices = edge_slices(self.space)
        self._fusing_row = {node: row for row, node in enumerate(self.space.fusing_nodes)}
        if mode == "soft":
            self._soft_weights = soft_operation_weights(self.space, arch)
        # Keras orders the model's variables as the layers are added to these dicts. `fusions`
        # holds each fusing node's operation layer; its name is part of the weight paths of
        # saved .keras files, so it stays.
        self._output_plan = next(plan for plan in self._graph if plan.node == OUTPUT)
        # O = CONCAT with fixed connections, then the linear logit layer: one linear map.
        self._direct_head = (
            concat_head == "direct" and self._output_plan.operation == "concat"
            and not self._output_plan.masked and operation_norm == "none"
        )
        self.components: dict[str, keras.layers.Layer] = {}
        self.fusions: dict[str, keras.layers.Layer] = {}
        self.output_layer = add_node_layers(
            self._graph, self.components, self.fusions, shallow=shallow, num_fields=num_fields,
            width=self.width, dropout=dropout, batch_norm=batch_norm, kernel_init=kernel_init,
            operation_norm=operation_norm, direct_head=self._direct_head,
            deep_dtype=deep_dtype, seed=seed,
        )
        # "projected": the two maps computed as one (ConcatFusion.through_linear_head: same
        # function and weights, a fraction of the work).
        self._concat_into_logit = self._direct_head or (
            isinstance(self.fusions.get(OUTPUT), ConcatFusion) and operation_norm == "none"
        )

    @property
    def concat_into_logit(self) -> bool:
        """Whether O = CONCAT and the logit layer run as one linear map (fixed modes without
        operation norm: `concat_head="direct"`, or ConcatFusion.through_linear_head)."""
        return self._concat_into_logit

    @property
    def output_plan(self) -> NodePlan:
        """The plan of the output node O (its inputs, operation and masking)."""
        return self._output_plan

    @property
    def direct_head(self) -> bool:
        """Whether the output layer takes O's concatenated inputs itself (`concat_head`)."""
        return self._direct_head

    # ---- structure -------------------------------------------------------------------------

    @property
    def fusion(self) -> str:
        """The mode under its public name: the `fusion=` argument and config key."""
        return self.mode

    @property
    def graph(self) -> tuple[NodePlan, ...]:
        """The built nodes in topological order (E excluded), with their inputs and operation."""
        return self._graph

    @classmethod
    def from_preset(
        cls,
        preset: str,
        *,
        feature_num: int,
        num_fields: int,
        emb_dim: int,
        n: int = 3,
        shallow: str = "crossnet",
        dataset: str = "",
        **kwargs: Any,
    ) -> "OptFusionModel":
        """A naive-fusion baseline over the same components, in hard mode (DESIGN.md section 4).

        Args:
            preset: "parallel" (E->S1->..->Sn, E->D1->..->Dn, O = CONCAT(Sn, Dn), DCN-like) or
                "stacked" (E->S0->D1->..->Dn->O).
            **kwargs: the other constructor arguments (dropout, seed, ...), except fusion/arch.
        """
        arch = preset_arch(
            preset, n=n, shallow=shallow, dataset=dataset, num_fields=num_fields,
            feature_num=feature_num, emb_dim=emb_dim,
            operation_norm=kwargs.get("operation_norm", "none"),
        )
        return cls(
            feature_num=feature_num, num_fields=num_fields, emb_dim=emb_dim, n=n,
            shallow=shallow, fusion="hard", arch=arch, dataset=dataset, **kwargs,
        )

    # ---- weights ---------------------------------------------------------------------------

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 2 or input_shape[-1] not in (None, self.num_fields):
            raise ValueError(
                f"OptFusionModel expects feature ids of shape [batch, {self.num_fields}]. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.embedding = self.add_weight(
            name="embedding",
            shape=(self.feature_num, self.emb_dim),
            initializer=keras.initializers.RandomNormal(
                stddev=self.embedding_init_std, seed=self.seed
            ),
        )
        self.alpha = None
        if self.mode in CONNECTION_SEARCH_MODES:
            self.alpha = self.add_weight(
                name="alpha",
                shape=(len(self.space.edges),),
                initializer=keras.initializers.Constant(self.init_constant),
            )
        self.beta = None
        if self.mode in OPERATION_SEARCH_MODES:
            self.beta = self.add_weight(
                name="beta",
                shape=(len(self.space.fusing_nodes), len(OPERATIONS)),
                initializer=keras.initializers.RandomNormal(
                    stddev=BETA_INIT_STDDEV, seed=None if self.seed is None else self.seed + 1
                ),
            )
        build_node_layers(self._graph, self.components, self.fusions, self.output_layer, self.width)
        self.built = True

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        """The embedding table [feature_num, emb_dim]."""
        self._ensure_built()
        return [self.embedding]

    @property
    def architecture_variables(self) -> list[keras.Variable]:
        """alpha [num_edges] (SearchSpace.edges order) and/or beta [num_fusing_nodes, 4]
        (SearchSpace.fusing_nodes x OPERATIONS order), when the mode trains them."""
        self._ensure_built()
        return [v for v in (self.alpha, self.beta) if v is not None]

    @property
    def network_variables(self) -> list[keras.Variable]:
        """Every other trainable variable: components, operation layers, output layer."""
        excluded = {id(v) for v in self.embedding_variables + self.architecture_variables}
        return [v for v in self.trainable_variables if id(v) not in excluded]

    # ---- forward ---------------------------------------------------------------------------

    def call(self, feature_ids: Tensor, training: bool | None = None) -> Tensor:
        return self._forward(feature_ids, training)

    def _forward(
        self,
        feature_ids: Tensor,
        training: bool | None = None,
        observe: Callable[[NodePlan, list[Tensor], Tensor | None], None] | None = None,
    ) -> Tensor:
        """The logits [batch, 1]; `observe(plan, inputs, connections)` sees the inputs of every
        node's operation (diagnostics)."""
        ids = ops.convert_to_tensor(feature_ids)
        if keras.backend.standardize_dtype(ids.dtype) not in ("int32", "int64"):
            ids = ops.cast(ids, "int32")
        # tf.gather on the tf.Variable itself is a sparse read (ResourceGather): its gradient is
        # IndexedSlices and it never reads the whole table. keras.ops.take would read the full
        # variable, which after a sparse update copies the table: 2.2 s per step at 10M rows
        # instead of 22 ms (bench/train_bench.py).
        flat = ops.reshape(tf.gather(self.embedding.value, ids), (-1, self.width))
        connections = None if self.alpha is None else straight_through_step(self.alpha)
        operation_weights = None if self.beta is None else ops.softmax(self.beta, axis=-1)
        outputs = {EMBEDDING: flat}
        for plan in self._graph:
            inputs = [outputs[src] for src in plan.inputs]
            node_connections = None
            if plan.masked:
                start, stop = self._edge_slices[plan.node]
                node_connections = connections[start:stop]
            elif plan.unfed:
                node_connections = ops.zeros((1,), dtype=flat.dtype)
            if observe is not None:
                observe(plan, inputs, node_connections)
            if plan.node == OUTPUT and self._direct_head:
                return self.output_layer(_connected_side_by_side(inputs, node_connections))
            if plan.node == OUTPUT and self._concat_into_logit:
                return self.fusions[OUTPUT].through_linear_head(
                    inputs, node_connections, self.output_layer.kernel, self.output_layer.bias
                )
            if plan.operation is None:  # S0: its single input E, gated in search
                fused = inputs[0] if node_connections is None else ops.multiply(
                    inputs[0], node_connections[0]
                )
            elif plan.operation == MIXTURE:
                fused = self.fusions[plan.node](
                    inputs, self._operation_weights(plan.node, operation_weights), node_connections
                )
            else:
                fused = self.fusions[plan.node](inputs, node_connections)
            if plan.kind == "shallow":
                outputs[plan.node] = self.components[plan.node](flat, fused)
            elif plan.kind == "deep":
                outputs[plan.node] = self.components[plan.node](fused, training=training)
            else:  # O, the last node
                outputs[plan.node] = self.output_layer(fused)
        return outputs[OUTPUT]

    def operation_scales(self, feature_ids: Tensor) -> dict[str, dict[str, tuple[float, float]]]:
        """For every node with a softmax(beta) mixture: operation -> (mean |output|, share of
        exact zeros) of that operation on these examples, before any `operation_norm`.

        Args:
            feature_ids: int [batch, F], e.g. a batch of validation rows.

        Shows whether the mixture compares like with like: at init (F=39, n=3) PROD at O, over
        8 mostly-ReLU inputs, is ~4e-18 with 87% exact zeros while ADD is ~0.03.
        """
        return diagnostics.operation_scales(self, feature_ids)

    def _operation_weights(self, node: str, searched: Tensor | None) -> Tensor:
        """softmax(beta) of `node`: the live variable's row in search, else the arch's."""
        if searched is not None:
            return searched[self._fusing_row[node]]
        return ops.convert_to_tensor(self._soft_weights[node], dtype=self.compute_dtype)

    # ---- the architecture ------------------------------------------------------------------

    def current_arch(self) -> ArchitectureSpec:
        """The architecture now: from the live alpha/beta in search modes, else `arch`
        (`learned_architecture.py`)."""
        self._ensure_built()
        return learned_architecture.current_arch(self)

    def load_search_weights(self, search_model: "OptFusionModel") -> None:
        """Initializes this model's weights from a trained search model (`--init_from_search`):
        the embedding and every built node's weights, not alpha/beta (`warm_start.py`)."""
        warm_start.load_search_weights(self, search_model)

    # ---- serialization ---------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({key: getattr(self, key) for key in _CONFIG_KEYS})
        config["arch"] = None if self.arch is None else self.arch.to_dict()
        return config

    # ---- helpers ---------------------------------------------------------------------------

    def _ensure_built(self) -> None:
        if not self.built:
            self.build((None, self.num_fields))


def _connected_side_by_side(inputs: list[Tensor], connections: Tensor | None) -> Tensor:
    """O's inputs side by side, [batch, K * W]; each times its constant connection where there
    is one (an unfed O: its one candidate E, gated by 0)."""
    if connections is not None:
        inputs = [ops.multiply(x, connections[k]) for k, x in enumerate(inputs)]
    return concatenated(inputs)
