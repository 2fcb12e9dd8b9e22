"""OptFusionModel: the OptFusion supernet (search) and its re-trained architectures.

The graph (paper Sec. 3.1, DESIGN.md sections 3-4), with W = num_fields * emb_dim everywhere:

    E   = the flat embedding [batch, W] of the example's F feature ids
    S0  = shallow(E, c(E->S0) * E)                      the auxiliary shallow block
    Si  = shallow(E, fuse_Si(candidate inputs of Si))   i = 1..n
    Di  = deep(fuse_Di(candidate inputs of Di))         i = 1..n
    logit = Dense(1)(fuse_O(candidate inputs of O))     [batch, 1]

`fusion` selects what the fusion in front of each node is and where connections come from:

    mode                 connections                    operation at each fusing node
    search               STE(alpha), alpha trainable     softmax(beta) mixture, beta trainable
    search_connections   STE(alpha), alpha trainable     ADD                 (Table 5, step 1)
    search_operations    fixed by `arch`                 softmax(beta) mixture, beta trainable
    hard                 fixed by `arch`                 argmax(beta*) of `arch`
    soft                 fixed by `arch`                 fixed softmax(beta*) mixture of `arch`
    add|prod|concat|att  fixed by `arch`                 that operation everywhere (Table 4)

Search modes build every node and feed every fusion all K candidate inputs with their 0/1
connections. Every other mode builds `arch.live_nodes` (every node that reaches O) and feeds
each node only its connected inputs, with no masking work: only nodes that cannot change the
output are pruned, so the model computes what the supernet computes for that architecture
(tested against the supernet, every mode, n = 1..4). A live node with no connected input
("unfed") gets what the supernet's fusion gives when every candidate is disconnected: its
fusion sees one candidate, E, gated by a constant 0 (ADD -> 0, PROD -> 1, CONCAT -> its bias,
ATT -> 0, the mixture their weighted sum; S0 gets 0). A shallow node still receives x0 = E.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from optfusion_tf.architecture.arch_spec import MIXTURE, ArchSpec, one_hot_beta
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import OPERATIONS, SHALLOW_COMPONENTS
from optfusion_tf.fusion import (
    FUSION_OPERATIONS,
    FusionMixture,
    FusionOperation,
    make_fusion_operation,
)
from optfusion_tf.fusion.base import check_output_norm
from optfusion_tf.layers import DeepBlock, make_shallow_layer
from optfusion_tf.layers.initializers import KERNEL_INITS, kernel_initializer
from optfusion_tf.layers.types import Tensor
from optfusion_tf.architecture.search_space import EMBEDDING, OUTPUT, SearchSpace, edge_name
from optfusion_tf.models.ste import straight_through_step
from optfusion_tf.models.training_step import GroupedOptimizerModel

FUSION_MODES = ("search", "search_connections", "search_operations", "hard", "soft", *OPERATIONS)
# Modes whose connections are searched (alpha is a trainable variable).
CONNECTION_SEARCH_MODES = ("search", "search_connections")
# Modes whose operations are searched (beta is a trainable variable).
OPERATION_SEARCH_MODES = ("search", "search_operations")
# PyTorch's xavier_normal_ on the reference's [1, 4] beta of each node: sqrt(2 / (4 + 1)).
BETA_INIT_STDDEV = math.sqrt(2.0 / (len(OPERATIONS) + 1))
# Seeds of the sublayers' initializers are spaced so that a layer may derive a few from its own.
_SEED_STRIDE = 16


@dataclasses.dataclass(frozen=True)
class NodePlan:
    """How one built node is computed.

    Attributes:
        node: node name ("S0", "S1", "D1", ..., "O").
        kind: "shallow", "deep" or "output".
        inputs: the nodes whose outputs it receives, in candidate-input order.
        fusion: "add" | "prod" | "concat" | "att" | "mixture", or None for S0 (one input, no
            fusion operation).
        masked: whether the inputs are gated by the connections STE(alpha) (search modes).
        unfed: the node has no connected input (fixed modes): `inputs` is ("E",), gated by a
            constant 0, which gives the value the supernet computes when every candidate is
            disconnected.
    """

    node: str
    kind: str
    inputs: tuple[str, ...]
    fusion: str | None
    masked: bool
    unfed: bool = False


@keras.saving.register_keras_serializable(package="optfusion")
class OptFusionModel(GroupedOptimizerModel):
    """The OptFusion CTR model: embedding, 2n + 1 components, learned or fixed fusion, logit.

    Args:
        feature_num: size of the embedding table (global feature ids in [0, feature_num)).
        num_fields: F, the number of feature fields of an example.
        emb_dim: d, the embedding size. Every node has width W = F * d.
        n: number of shallow/deep component pairs (S1..Sn, D1..Dn); >= 1.
        shallow: shallow component type, one of `crossnet | crossnetv2 | cin`.
        fusion: one of FUSION_MODES (see the module docstring).
        arch: the architecture (`ArchSpec` or its `to_dict()`); required by every mode but
            "search" and "search_connections", which take none.
        dropout: dropout rate after each deep block's ReLU.
        batch_norm: batch normalization inside each deep block.
        init_constant: initial value of every connection logit alpha (0.5 as the reference:
            every edge starts connected).
        embedding_init_std: standard deviation of the normal embedding init; default 1e-4, the
            scripts' `--embedding_init_std` (FuxiCTR's and DeepCTR's; the reference's
            `--emb_std` default is 1e-2).
        kernel_init: the initializer of every kernel (components, fusion operations, output),
            one of KERNEL_INITS: "glorot_normal" (default; Keras' and DeepCTR's) or "torch"
            (PyTorch nn.Linear's U(+-1/sqrt(fan_in)), the reference's start). Biases start at 0.
        operation_norm: "none" (the paper's operations) or "rms": every fusion operation's
            output is rescaled to unit RMS per example (optfusion_tf/fusion/base.py), in search
            and re-train alike.
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
        arch: ArchSpec | Mapping[str, Any] | None = None,
        dropout: float = 0.0,
        batch_norm: bool = False,
        init_constant: float = 0.5,
        embedding_init_std: float = 1e-4,
        kernel_init: str = "glorot_normal",
        seed: int | None = None,
        dataset: str = "",
        operation_norm: str = "none",
        **kwargs: Any,
    ) -> None:
        for key, value in (("feature_num", feature_num), ("num_fields", num_fields),
                           ("emb_dim", emb_dim), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")
        if shallow not in SHALLOW_COMPONENTS:
            raise ValueError(
                f"`shallow` must be one of {list(SHALLOW_COMPONENTS)}. "
                f"Received: shallow={shallow!r}"
            )
        if fusion not in FUSION_MODES:
            raise ValueError(
                f"`fusion` must be one of {list(FUSION_MODES)}. Received: fusion={fusion!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        if not isinstance(init_constant, (int, float)) or not math.isfinite(init_constant):
            raise ValueError(
                "`init_constant` must be a finite number. "
                f"Received: init_constant={init_constant!r}"
            )
        if not isinstance(embedding_init_std, (int, float)) or not embedding_init_std > 0:
            raise ValueError(
                "`embedding_init_std` must be a positive number. "
                f"Received: embedding_init_std={embedding_init_std!r}"
            )
        if kernel_init not in KERNEL_INITS:
            raise ValueError(
                f"`kernel_init` must be one of {list(KERNEL_INITS)}. "
                f"Received: kernel_init={kernel_init!r}"
            )
        check_output_norm(operation_norm)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        arch = _checked_arch(
            arch, fusion, dataset, num_fields, feature_num, n, shallow, operation_norm
        )
        super().__init__(**kwargs)
        self.feature_num = feature_num
        self.num_fields = num_fields
        self.emb_dim = emb_dim
        self.width = num_fields * emb_dim
        self.n = n
        self.shallow = shallow
        self.fusion = fusion
        self.arch = arch
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.init_constant = float(init_constant)
        self.embedding_init_std = float(embedding_init_std)
        self.kernel_init = kernel_init
        self.seed = seed
        self.dataset = dataset
        self.operation_norm = operation_norm
        self.space = SearchSpace(n)

        self._graph = _plan(self.space, fusion, arch)
        self._edge_slices = _edge_slices(self.space)
        self._fusing_row = {node: row for row, node in enumerate(self.space.fusing_nodes)}
        if fusion == "soft":
            self._soft_weights = {
                node: _softmax(arch.beta[node]) for node in self.space.fusing_nodes
            }
        # Sublayer k gets seeds from seed + k * _SEED_STRIDE on (the embedding and beta use
        # seed and seed + 1), so that each layer may derive a few distinct seeds.
        layer_seeds = (
            None if seed is None else seed + k * _SEED_STRIDE for k in itertools.count(1)
        )
        self.components: dict[str, keras.layers.Layer] = {}
        self.fusions: dict[str, keras.layers.Layer] = {}
        for plan in self._graph:
            if plan.fusion is not None:
                make = FusionMixture if plan.fusion == MIXTURE else functools.partial(
                    make_fusion_operation, plan.fusion
                )
                self.fusions[plan.node] = make(
                    len(plan.inputs), name=f"fusion_{plan.node}", output_norm=operation_norm,
                    **_initializers(kernel_init, next(layer_seeds)),
                )
            if plan.kind == "shallow":
                self.components[plan.node] = make_shallow_layer(
                    shallow, num_fields=num_fields, name=f"shallow_{plan.node}",
                    **_initializers(kernel_init, next(layer_seeds)),
                )
            elif plan.kind == "deep":
                layer_seed = next(layer_seeds)
                self.components[plan.node] = DeepBlock(
                    self.width, dropout=dropout, batch_norm=batch_norm, name=f"deep_{plan.node}",
                    seed=layer_seed, **_initializers(kernel_init, layer_seed),
                )
        self.output_layer = keras.layers.Dense(
            1, name="output", **_initializers(kernel_init, next(layer_seeds))
        )

    # ---- structure -------------------------------------------------------------------------

    @property
    def graph(self) -> tuple[NodePlan, ...]:
        """The built nodes in topological order (E excluded), with their inputs and fusion."""
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
        if self.fusion in CONNECTION_SEARCH_MODES:
            self.alpha = self.add_weight(
                name="alpha",
                shape=(len(self.space.edges),),
                initializer=keras.initializers.Constant(self.init_constant),
            )
        self.beta = None
        if self.fusion in OPERATION_SEARCH_MODES:
            self.beta = self.add_weight(
                name="beta",
                shape=(len(self.space.fusing_nodes), len(OPERATIONS)),
                initializer=keras.initializers.RandomNormal(
                    stddev=BETA_INIT_STDDEV, seed=None if self.seed is None else self.seed + 1
                ),
            )
        node_shape = (None, self.width)
        for plan in self._graph:
            if plan.node in self.fusions:
                self.fusions[plan.node].build([node_shape] * len(plan.inputs))
            if plan.kind == "shallow":
                self.components[plan.node].build(node_shape, node_shape)
            elif plan.kind == "deep":
                self.components[plan.node].build(node_shape)
        self.output_layer.build(node_shape)
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
        """Every other trainable variable: components, fusion operations, output layer."""
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
        """The logits [batch, 1]; `observe(plan, inputs, connections)` sees every fusion's
        inputs (diagnostics)."""
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
            if plan.fusion is None:  # S0: its single input E, gated in search
                fused = inputs[0] if node_connections is None else ops.multiply(
                    inputs[0], node_connections[0]
                )
            elif plan.fusion == MIXTURE:
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
        self._ensure_built()
        scales: dict[str, dict[str, tuple[float, float]]] = {}

        def observe(plan: NodePlan, inputs: list[Tensor], connections: Tensor | None) -> None:
            if plan.fusion != MIXTURE:
                return
            outputs = self.fusions[plan.node].unnormalized_outputs(inputs, connections)
            scales[plan.node] = {
                name: (
                    float(ops.mean(ops.abs(value))),
                    float(ops.mean(ops.cast(ops.equal(value, 0.0), "float32"))),
                )
                for name, value in outputs.items()
            }

        self._forward(feature_ids, training=False, observe=observe)
        return scales

    def _operation_weights(self, node: str, searched: Tensor | None) -> Tensor:
        """softmax(beta) of `node`: the live variable's row in search, else the arch's."""
        if searched is not None:
            return searched[self._fusing_row[node]]
        return ops.convert_to_tensor(self._soft_weights[node], dtype=self.compute_dtype)

    # ---- the architecture ------------------------------------------------------------------

    def current_arch(self) -> ArchSpec:
        """The architecture now: from the live alpha/beta in search modes, else `arch`.

        In "search_connections" every node's beta is `one_hot_beta("add")` (the operation used).
        """
        self._ensure_built()
        if self.fusion not in CONNECTION_SEARCH_MODES + OPERATION_SEARCH_MODES:
            return self.arch
        if self.alpha is not None:
            values = self.alpha.numpy().tolist()
            alpha = {edge_name(s, d): values[i] for i, (s, d) in enumerate(self.space.edges)}
        else:
            alpha = dict(self.arch.alpha)
        if self.beta is not None:
            rows = self.beta.numpy().tolist()
            beta = {node: tuple(rows[i]) for i, node in enumerate(self.space.fusing_nodes)}
        else:
            beta = {node: one_hot_beta("add") for node in self.space.fusing_nodes}
        return ArchSpec(
            n=self.n, shallow=self.shallow, alpha=alpha, beta=beta, dataset=self.dataset,
            num_fields=self.num_fields, feature_num=self.feature_num, emb_dim=self.emb_dim,
            source=self.fusion, operation_norm=self.operation_norm,
        )

    def load_search_weights(self, search_model: "OptFusionModel") -> None:
        """Initializes this model's weights from a trained search model (`--init_from_search`).

        Copies the embedding, the component and output weights of every node built here, and
        the weights of each fusion operation the search model has at that node; a CONCAT
        kernel keeps the row blocks of this node's inputs (disconnected slots contributed
        nothing in search). alpha/beta are not copied (they are fixed by `arch` here).
        Operations the search model did not have (e.g. after "search_connections") keep their
        fresh initialization.
        """
        for key in ("feature_num", "num_fields", "emb_dim", "n", "shallow"):
            if getattr(self, key) != getattr(search_model, key):
                raise ValueError(
                    f"The search model has {key}={getattr(search_model, key)!r}, this model "
                    f"{key}={getattr(self, key)!r}."
                )
        search_plans = {plan.node: plan for plan in search_model.graph}
        missing = [
            plan.node
            for plan in self._graph
            if plan.node not in search_plans
            or not set(plan.inputs) <= set(search_plans[plan.node].inputs)
        ]
        if missing:
            raise ValueError(
                "The search model does not build these nodes with (at least) this model's "
                f"inputs, so their weights cannot come from it: {missing}"
            )
        self._ensure_built()
        search_model._ensure_built()
        self.embedding.assign(search_model.embedding.value)
        self.output_layer.set_weights(search_model.output_layer.get_weights())
        for plan in self._graph:
            source_plan = search_plans[plan.node]
            if plan.node in self.components:
                self.components[plan.node].set_weights(
                    search_model.components[plan.node].get_weights()
                )
            if plan.node in self.fusions:
                _copy_fusion_weights(
                    search_model.fusions[source_plan.node], source_plan.inputs,
                    self.fusions[plan.node], plan.inputs,
                )

    # ---- serialization ---------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "feature_num": self.feature_num,
                "num_fields": self.num_fields,
                "emb_dim": self.emb_dim,
                "n": self.n,
                "shallow": self.shallow,
                "fusion": self.fusion,
                "arch": None if self.arch is None else self.arch.to_dict(),
                "dropout": self.dropout,
                "batch_norm": self.batch_norm,
                "init_constant": self.init_constant,
                "embedding_init_std": self.embedding_init_std,
                "kernel_init": self.kernel_init,
                "seed": self.seed,
                "dataset": self.dataset,
                "operation_norm": self.operation_norm,
            }
        )
        return config

    # ---- helpers ---------------------------------------------------------------------------

    def _ensure_built(self) -> None:
        if not self.built:
            self.build((None, self.num_fields))


def _initializers(kind: str, seed: int | None) -> dict[str, keras.initializers.Initializer]:
    """A sublayer's kernel (`kernel_initializer(kind)`) and bias (zeros) initializers."""
    return {
        "kernel_initializer": kernel_initializer(kind, seed),
        "bias_initializer": keras.initializers.Zeros(),
    }


def _checked_arch(
    arch: ArchSpec | Mapping[str, Any] | None,
    fusion: str,
    dataset: str,
    num_fields: int,
    feature_num: int,
    n: int,
    shallow: str,
    operation_norm: str,
) -> ArchSpec | None:
    """The arch as an ArchSpec, validated against the mode and the model's shape."""
    if fusion in CONNECTION_SEARCH_MODES:
        if arch is not None:
            raise ValueError(
                f"fusion={fusion!r} searches the connections and takes no `arch`. "
                f"Received: arch={arch!r}"
            )
        return None
    if arch is None:
        raise ValueError(
            f"fusion={fusion!r} needs an `arch` (an ArchSpec, e.g. ArchSpec.load('arch.json')). "
            "Received: arch=None"
        )
    if not isinstance(arch, ArchSpec):
        arch = ArchSpec.from_dict(arch)
    arch.check_compatible(
        dataset=dataset, num_fields=num_fields, feature_num=feature_num, n=n, shallow=shallow,
        operation_norm=operation_norm,
    )
    arch.check_trainable(fusion)
    return arch


def _plan(space: SearchSpace, fusion: str, arch: ArchSpec | None) -> tuple[NodePlan, ...]:
    """The nodes to build and how each is computed."""
    plans = []
    if fusion in CONNECTION_SEARCH_MODES:
        operation = MIXTURE if fusion in OPERATION_SEARCH_MODES else "add"
        for node in space.nodes[1:]:
            plans.append(NodePlan(
                node, _kind(space, node), space.candidate_inputs(node),
                operation if node in space.fusing_nodes else None, masked=True,
            ))
        return tuple(plans)
    operations = arch.operations_for(fusion)
    for node in arch.live_nodes[1:]:
        inputs = arch.connections[node]
        plans.append(NodePlan(
            node, _kind(space, node), inputs or (EMBEDDING,), operations.get(node),
            masked=False, unfed=not inputs,
        ))
    return tuple(plans)


def _kind(space: SearchSpace, node: str) -> str:
    return "output" if node == OUTPUT else space.kind(node)


def _edge_slices(space: SearchSpace) -> dict[str, tuple[int, int]]:
    """node -> [start, stop) of its incoming edges in SearchSpace.edges (grouped by dst)."""
    slices: dict[str, tuple[int, int]] = {}
    for index, (_, dst) in enumerate(space.edges):
        start = slices.get(dst, (index, index))[0]
        slices[dst] = (start, index + 1)
    return slices


def _softmax(logits: tuple[float, ...]) -> tuple[float, ...]:
    values = np.asarray(logits, dtype=np.float64)
    exp = np.exp(values - values.max())
    return tuple((exp / exp.sum()).tolist())


def _copy_fusion_weights(
    source: keras.layers.Layer,
    source_inputs: tuple[str, ...],
    target: keras.layers.Layer,
    target_inputs: tuple[str, ...],
) -> None:
    """Copies the weights of each operation of `target` that `source` also has."""
    source_ops = _operations_of(source)
    for name, operation in _operations_of(target).items():
        if name not in source_ops or not operation.weights:
            continue
        weights = source_ops[name].get_weights()
        if name == "concat":
            width = operation.width
            blocks = [source_inputs.index(src) for src in target_inputs]
            weights[0] = np.concatenate(
                [weights[0][k * width:(k + 1) * width] for k in blocks], axis=0
            )
        operation.set_weights(weights)


def _operations_of(fusion: keras.layers.Layer) -> dict[str, FusionOperation]:
    """operation name -> layer, for a FusionMixture or a single FusionOperation."""
    if isinstance(fusion, FusionMixture):
        return dict(fusion.fusion_operations)
    return {name: fusion for name, cls in FUSION_OPERATIONS.items() if type(fusion) is cls}
