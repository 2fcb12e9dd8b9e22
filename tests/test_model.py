"""OptFusionModel: modes, the supernet equivalence, gradients, serialization, FLOPs (the node
plan: test_node_plan.py; the warm start: test_warm_start.py)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from optfusion_tf.architecture.spec import ArchitectureSpec, one_hot_beta
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import OPERATIONS, ArchitectureSpecError
from optfusion_tf.training.config import TrainingConfig
from optfusion_tf.analysis.flops import analytic_flops_per_sample
from optfusion_tf.operations import AddFusion, FusionMixture
from optfusion_tf.optimizers.lazy_adam import LazyAdam, make_embedding_optimizer
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.models.node_plan import FUSION_MODES
from optfusion_tf.architecture.search_space import SearchSpace, edge_name

# W = 6. Embeddings at N(0, 1e-2), not the default 1e-4, so that the equivalence checks compare
# values far above float32 noise (RMS-normalising 1e-4 inputs amplifies it past 1e-5).
SHAPE = dict(feature_num=20, num_fields=3, emb_dim=2, embedding_init_std=1e-2)
IDS = np.random.default_rng(0).integers(0, 20, size=(8, 3))
LABELS = np.random.default_rng(1).integers(0, 2, size=(8, 1)).astype("float32")


def make_arch(n, connected, operations=None, shallow="crossnet"):
    space = SearchSpace(n)
    assert set(connected) <= set(space.edges)
    on = {edge_name(s, d) for s, d in connected}
    alpha = {edge_name(s, d): (0.5 if edge_name(s, d) in on else -0.5) for s, d in space.edges}
    operations = operations or {}
    rng = np.random.default_rng(n)
    beta = {}
    for node in space.fusing_nodes:
        logits = rng.normal(size=len(OPERATIONS))
        if node in operations:
            logits[OPERATIONS.index(operations[node])] = 5.0
        beta[node] = tuple(float(v) for v in logits)
    return ArchitectureSpec(n=n, shallow=shallow, alpha=alpha, beta=beta, dataset="", num_fields=3,
                    feature_num=20, emb_dim=2)


# A fully fed architecture (every node that reaches O is fed from E), used by most tests.
FED_ARCH_EDGES = [
    ("E", "S0"), ("S0", "S1"), ("E", "D1"), ("S1", "S2"), ("D1", "D2"), ("S0", "D2"),
    ("S2", "O"), ("D2", "O"), ("E", "O"),
]
ARCH = make_arch(2, FED_ARCH_EDGES, operations={"S1": "prod", "D2": "concat", "O": "att"})


def make_model(fusion="search", n=2, arch=None, **kwargs):
    if fusion not in ("search", "search_connections") and arch is None:
        arch = ARCH
    return OptFusionModel(**SHAPE, n=n, fusion=fusion, arch=arch, seed=0, **kwargs)


@pytest.mark.parametrize("fusion", FUSION_MODES)
def test_every_mode_predicts_logits_from_int32_and_int64_ids(fusion):
    model = make_model(fusion)
    for dtype in ("int32", "int64"):
        logits = model(IDS.astype(dtype))
        assert logits.shape == (8, 1) and logits.dtype == tf.float32
        assert np.isfinite(logits.numpy()).all()


def test_search_mode_variables_and_groups():
    model = make_model("search", n=3)
    model.build((None, 3))
    alpha, beta = model.architecture_variables
    assert alpha.shape == (33,) and beta.shape == (7, 4)
    np.testing.assert_array_equal(alpha.numpy(), 0.5)
    assert model.embedding_variables[0].shape == (20, 2)
    groups = model.embedding_variables + model.network_variables + model.architecture_variables
    assert sorted(v.path for v in groups) == sorted(v.path for v in model.trainable_variables)
    assert len(groups) == len(model.trainable_variables)
    assert [type(model.fusions[v]) for v in ("S1", "O")] == [FusionMixture, FusionMixture]


def test_fixed_modes_have_no_architecture_variables():
    for fusion in ("hard", "soft", "concat"):
        model = make_model(fusion)
        model.build((None, 3))
        assert model.architecture_variables == []
        assert not any("alpha" in v.path or "beta" in v.path for v in model.variables)


def test_search_connections_trains_alpha_with_add_everywhere():
    model = make_model("search_connections")
    model.build((None, 3))
    assert [v.path.split("/")[-1] for v in model.architecture_variables] == ["alpha"]
    assert all(type(f) is AddFusion for f in model.fusions.values())
    assert set(model.current_arch().operations.values()) == {"add"}
    assert set(model.current_arch().beta.values()) == {one_hot_beta("add")}


@pytest.mark.parametrize("preset", ["parallel", "stacked"])
def test_soft_on_a_preset_is_the_preset(preset):
    """A preset's beta is decisive: its soft mixture is exactly the chosen operation."""
    arch = preset_arch(preset, n=2, shallow="crossnet", dataset="", num_fields=3,
                       feature_num=20, emb_dim=2)
    hard = make_model("hard", arch=arch, concat_head="projected")  # the CONCAT layer at O
    soft = make_model("soft", arch=arch)
    hard.build((None, 3)), soft.build((None, 3))
    for plan in soft.graph:  # copy hard's weights into the chosen operation of each mixture
        if plan.node in soft.components:
            soft.components[plan.node].set_weights(hard.components[plan.node].get_weights())
        if plan.operation == "mixture":
            op = arch.operations[plan.node]
            soft.fusions[plan.node].fusion_operations[op].set_weights(
                hard.fusions[plan.node].get_weights())
    soft.embedding.assign(hard.embedding.value)
    soft.output_layer.set_weights(hard.output_layer.get_weights())
    hard._concat_into_logit = False  # exact: the same ops in the same order (not one fused map)
    np.testing.assert_array_equal(soft(IDS).numpy(), hard(IDS).numpy())


def test_search_operations_freezes_connections_and_trains_beta():
    model = make_model("search_operations")
    model.build((None, 3))
    assert [v.path.split("/")[-1] for v in model.architecture_variables] == ["beta"]
    assert [plan.node for plan in model.graph] == list(ARCH.live_nodes[1:])
    arch = model.current_arch()
    assert arch.connections == ARCH.connections and arch.beta != ARCH.beta


def test_gradients_reach_alpha_beta_and_embedding_rows_through_the_loss():
    model = make_model("search")
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(LABELS, model(IDS, training=True))
    alpha, beta = model.architecture_variables
    table = model.embedding_variables[0]
    g_alpha, g_beta, g_table = tape.gradient(loss, [alpha, beta, table])
    assert np.abs(g_alpha.numpy()).min() > 0  # every edge gets a gradient
    assert np.abs(g_beta.numpy()).sum(axis=1).min() > 0  # every node's beta too
    assert isinstance(g_table, tf.IndexedSlices)  # the lazy optimizer can update rows only
    assert set(np.unique(g_table.indices.numpy())) <= set(IDS.ravel())


def _set_alpha(model, arch):
    values = [arch.alpha[edge_name(s, d)] for s, d in model.space.edges]
    model.architecture_variables[0].assign(values)


def random_arch(n, seed, shallow="crossnet"):
    """Random alpha/beta for n pairs, with two live nodes that have no connected input (S1,
    which still sees x0 = E, and Dn, a constant) and hard operations cycling through all four."""
    rng = np.random.default_rng(seed)
    space = SearchSpace(n)
    alpha = {edge_name(s, d): float(rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 1.0))
             for s, d in space.edges}
    for unfed in ("S1", f"D{n}"):
        for src in space.candidate_inputs(unfed):
            alpha[edge_name(src, unfed)] = -0.4
        alpha[edge_name(unfed, "O")] = 0.6
    beta = {}
    for k, node in enumerate(space.fusing_nodes):
        logits = rng.normal(size=len(OPERATIONS))
        logits[(k + seed) % len(OPERATIONS)] += 4.0
        beta[node] = tuple(float(v) for v in logits)
    return ArchitectureSpec(n=n, shallow=shallow, alpha=alpha, beta=beta, dataset="", num_fields=3,
                    feature_num=20, emb_dim=2)


def searched_with(search, arch, fusion):
    """The supernet's logits for `arch` under re-train mode `fusion`: alpha from arch, beta
    such that softmax(beta) is the mode's operation weights (exactly one-hot but for soft)."""
    _set_alpha(search, arch)
    space = search.space
    if fusion == "soft":
        rows = [arch.beta[v] for v in space.fusing_nodes]
    else:
        operations = arch.operations_for(fusion)
        rows = [one_hot_beta(operations[v]) for v in space.fusing_nodes]
    search.architecture_variables[1].assign(np.array(rows, "float32"))
    return search(IDS).numpy()


@pytest.mark.parametrize(
    "n, shallow, norm",
    [(1, "crossnet", "none"), (2, "cin", "none"), (3, "crossnetv2", "none"), (4, "crossnet", "none"),
     (3, "crossnet", "rms")],
)
def test_every_retrain_mode_from_a_search_computes_the_supernet(n, shallow, norm):
    """The invariant of paper Sec. 3.4.2: alpha and beta fixed, a model initialised from the
    search with load_search_weights computes what the search computes for that architecture
    (unfed nodes that reach O included), in every re-train mode."""
    arch = dataclasses.replace(random_arch(n, seed=n, shallow=shallow), operation_norm=norm)
    assert {"S1", f"D{n}"} <= set(arch.unfed_nodes) and {"S1", f"D{n}"} <= set(arch.live_nodes)
    assert {"prod", "concat", "att"} <= set(arch.operations.values()) or n == 1
    search = OptFusionModel(**SHAPE, n=n, shallow=shallow, seed=n, operation_norm=norm)
    search.build((None, 3))
    rng = np.random.default_rng(n)
    for weight in search.weights:  # non-zero biases, so that every constant matters
        if weight.path.endswith("bias"):
            weight.assign(rng.normal(scale=0.3, size=weight.shape).astype("float32"))
    for fusion in ("hard", "soft", *OPERATIONS):
        fixed = OptFusionModel(**SHAPE, n=n, shallow=shallow, fusion=fusion, arch=arch, seed=0,
                               operation_norm=norm)
        fixed.build((None, 3))
        fixed.load_search_weights(search)
        np.testing.assert_allclose(
            fixed(IDS).numpy(), searched_with(search, arch, fusion), rtol=1e-5, atol=1e-5,
            err_msg=f"fusion={fusion}",
        )


@pytest.mark.parametrize("n", [2, 3])
def test_a_direct_head_warm_started_from_a_search_computes_the_supernet(n):
    """With concat_head="direct" the warm start multiplies the search's CONCAT at O (cut to the
    arch's inputs) and its logit layer: the same logits as the supernet for that arch."""
    arch = random_arch(n, seed=n)
    search = OptFusionModel(**SHAPE, n=n, seed=n)
    search.build((None, 3))
    rng = np.random.default_rng(n)
    for weight in search.weights:
        if weight.path.endswith("bias"):
            weight.assign(rng.normal(scale=0.3, size=weight.shape).astype("float32"))
    fixed = OptFusionModel(**SHAPE, n=n, fusion="concat", arch=arch, seed=0,
                           concat_head="direct")
    fixed.build((None, 3))
    assert fixed.direct_head
    fixed.load_search_weights(search)
    np.testing.assert_allclose(fixed(IDS).numpy(), searched_with(search, arch, "concat"),
                               rtol=1e-5, atol=1e-5)

def test_a_shallow_node_with_no_connected_input_is_kept():
    """The reviewed case: n=2, S1's inputs off but S1->O on. S1 still sees x0 = E."""
    edges = [("E", "S0"), ("E", "D1"), ("D1", "D2"), ("S1", "O"), ("D2", "O"), ("S0", "O")]
    arch = make_arch(2, edges, operations={"S1": "prod", "O": "add"})
    assert "S1" in arch.live_nodes and arch.unfed_nodes == ("S1",)
    search = make_model("search")
    search.build((None, 3))
    soft = make_model("soft", arch=arch)
    soft.build((None, 3))
    soft.load_search_weights(search)
    np.testing.assert_allclose(soft(IDS).numpy(), searched_with(search, arch, "soft"),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "search_mode, fixed_mode", [("search", "soft"), ("search_connections", "add")]
)
def test_the_pruned_model_computes_the_masked_supernet(search_mode, fixed_mode):
    """Masked inputs act as the identity: dropping them (and unreachable nodes) changes nothing."""
    search = make_model(search_mode)
    search.build((None, 3))
    _set_alpha(search, ARCH)
    arch = search.current_arch()
    assert arch.connections == ARCH.connections
    fixed = make_model(fixed_mode, arch=arch)
    fixed.build((None, 3))
    fixed.load_search_weights(search)
    np.testing.assert_allclose(fixed(IDS), search(IDS), rtol=1e-5, atol=1e-6)


def test_current_arch_follows_alpha_and_beta():
    model = make_model("search")
    model.build((None, 3))
    alpha, beta = model.architecture_variables
    alpha.assign(-np.ones(alpha.shape, "float32"))
    alpha[model.space.edges.index(("E", "O"))].assign(2.0)
    beta.assign(np.tile(np.eye(4, dtype="float32")[OPERATIONS.index("att")], (5, 1)))
    arch = model.current_arch()
    assert arch.connections["O"] == ("E",) and arch.live_nodes == ("E", "O")
    assert arch.unfed_nodes == ()
    assert set(arch.operations.values()) == {"att"}
    assert arch.alpha["E->O"] == 2.0 and arch.source == "search"


@pytest.mark.parametrize("preset", ["parallel", "stacked"])
def test_a_concat_output_goes_into_the_logit_as_one_linear_map(preset):
    """O = CONCAT then the logit layer is computed as one matmul (parallel; stacked's O is not
    a CONCAT): the same logits and gradients as the two layers called in turn."""
    model = OptFusionModel.from_preset(preset, feature_num=40, num_fields=4, emb_dim=3, seed=3,
                                       concat_head="projected")
    ids = np.random.default_rng(0).integers(0, 40, size=(32, 4))
    labels = np.random.default_rng(1).integers(0, 2, size=(32, 1)).astype("float32")
    assert model._concat_into_logit == (preset == "parallel")

    def logits_and_gradients(through_head):
        model._concat_into_logit = through_head
        with tf.GradientTape() as tape:
            logits = model(ids)
            loss = keras.losses.binary_crossentropy(labels, logits, from_logits=True)
        grads = tape.gradient(loss, model.trainable_variables)
        return logits, [tf.convert_to_tensor(g) for g in grads]

    one_map, one_map_grads = logits_and_gradients(preset == "parallel")
    two_layers, two_layers_grads = logits_and_gradients(False)
    np.testing.assert_allclose(one_map, two_layers, rtol=1e-5, atol=1e-6)
    for fast, slow in zip(one_map_grads, two_layers_grads):
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-7)


def test_the_direct_head_is_the_projected_one_with_its_two_maps_multiplied():
    """concat_head="direct": one logit layer over O's concatenated inputs, kernel
    [K * W, 1], no CONCAT layer at O; with the projected model's K @ k and b @ k + c it computes
    the same logits. Models whose O is not a CONCAT build the same with either head."""
    shape = dict(feature_num=40, num_fields=4, emb_dim=3, seed=3)  # W = 12
    direct = OptFusionModel.from_preset("parallel", **shape, concat_head="direct")
    projected = OptFusionModel.from_preset("parallel", **shape)  # the default
    ids = np.random.default_rng(0).integers(0, 40, size=(32, 4))
    direct.build((None, 4)), projected.build((None, 4))
    assert direct.direct_head and not projected.direct_head
    assert "O" not in direct.fusions and direct.output_layer.kernel.shape == (24, 1)
    assert len(direct.weights) == len(projected.weights) - 2  # O's CONCAT kernel and bias
    for layer in ("components", "fusions"):
        for node, target in getattr(direct, layer).items():
            target.set_weights(getattr(projected, layer)[node].get_weights())
    direct.embedding.assign(projected.embedding.value)
    concat_kernel, concat_bias = projected.fusions["O"].get_weights()
    head_kernel, head_bias = projected.output_layer.get_weights()
    direct.output_layer.set_weights(
        [concat_kernel @ head_kernel, concat_bias @ head_kernel + head_bias])
    np.testing.assert_allclose(direct(ids), projected(ids), rtol=1e-5, atol=1e-6)
    stacked = [OptFusionModel.from_preset("stacked", **shape, concat_head=head)
               for head in ("direct", "projected")]
    for model in stacked:
        model.build((None, 4))
    assert [v.shape for v in stacked[0].weights] == [v.shape for v in stacked[1].weights]
    assert not stacked[0].direct_head
    with pytest.raises(ValueError, match="`concat_head` must be one of"):
        OptFusionModel.from_preset("parallel", **shape, concat_head="dcn")


def test_concat_head_is_kept_in_the_config_and_absent_reads_as_projected():
    model = OptFusionModel.from_preset("parallel", feature_num=40, num_fields=4, emb_dim=3,
                                       concat_head="direct")
    config = model.get_config()
    assert config["concat_head"] == "direct" and OptFusionModel.from_config(config).direct_head
    del config["concat_head"]  # what files saved before the argument hold
    assert OptFusionModel.from_config(config).concat_head == "projected"


def test_mixed_bfloat16_deep_blocks_keep_float32_logits_gradients_and_file(tmp_path):
    exact = make_model("hard", n=2, arch=ARCH)
    mixed = make_model("hard", n=2, arch=ARCH, deep_dtype="mixed_bfloat16")
    deep = [layer for node, layer in mixed.components.items() if node.startswith("D")]
    assert deep and all(layer.compute_dtype == "bfloat16" for layer in deep)
    assert all(layer.compute_dtype == "float32" for node, layer in mixed.components.items()
               if node.startswith("S"))
    exact(IDS)
    mixed(IDS)
    mixed.set_weights(exact.get_weights())
    with tf.GradientTape() as tape:
        logits = mixed(IDS)
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(LABELS, logits, from_logits=True))
    assert logits.dtype == tf.float32
    np.testing.assert_allclose(logits, exact(IDS), rtol=2e-2, atol=2e-3)
    gradients = tape.gradient(loss, mixed.trainable_variables)
    assert all(g is not None and g.dtype == tf.float32 for g in gradients)
    path = str(tmp_path / "mixed.keras")
    mixed.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.deep_dtype == "mixed_bfloat16"
    np.testing.assert_allclose(loaded(IDS), logits, rtol=1e-6)
    config = mixed.get_config()
    del config["deep_dtype"]  # what files saved before the argument hold
    assert OptFusionModel.from_config(config).deep_dtype == "float32"
    with pytest.raises(ValueError, match="`deep_dtype` must be one of"):
        make_model("search", deep_dtype="float16")


def test_same_seed_same_model_and_embedding_init():
    a, b = make_model("search"), make_model("search")
    a.build((None, 3)), b.build((None, 3))
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    c = OptFusionModel(**{**SHAPE, "feature_num": 4000}, n=1, seed=1)
    c.build((None, 3))
    assert 0.009 < np.std(c.embedding_variables[0].numpy()) < 0.011  # the reference's 1e-2
    assert not np.allclose(c.fusions["O"].fusion_operations["concat"].kernel.numpy()[:6],
                           c.fusions["D1"].fusion_operations["concat"].kernel.numpy()[:6])


def test_kernel_init_glorot_normal_by_default_torch_reproduces_the_reference_start():
    """Every kernel (deep block, cross layer, fusion, output) starts from the chosen initializer:
    glorot_normal (std sqrt(2 / (fan_in + fan_out)), truncated at 2 std) or torch's nn.Linear
    default U(+-1/sqrt(fan_in)); the choice is kept in the config."""
    shape = {**SHAPE, "num_fields": 10, "emb_dim": 10}  # W = 100: 100 x 100 deep kernels
    for kind in ("glorot_normal", "torch"):
        model = OptFusionModel(**shape, n=1, fusion="search", seed=3,
                               **({} if kind == "glorot_normal" else {"kernel_init": kind}))
        model.build((None, 10))
        assert model.get_config()["kernel_init"] == kind
        kernel = model.components["D1"].weights[0].numpy()
        assert kernel.shape == (100, 100)
        if kind == "glorot_normal":
            assert 0.09 < kernel.std() < 0.11 and np.abs(kernel).max() <= 2 * 0.1 / 0.8796 + 1e-6
        else:
            assert 0.055 < kernel.std() < 0.06 and np.abs(kernel).max() <= 0.1
    a = OptFusionModel(**SHAPE, n=1, fusion="search", seed=3)
    b = OptFusionModel(**SHAPE, n=1, fusion="search", seed=3, kernel_init="torch")
    a.build((None, 3)), b.build((None, 3))
    assert not np.allclose(a.output_layer.kernel.numpy(), b.output_layer.kernel.numpy())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(fusion="hard"), ValueError, "fusion='hard' needs an `arch`"),
        (dict(fusion="search", arch=ARCH), ValueError, "takes no `arch`"),
        (dict(fusion="hard", arch=ARCH, n=3), ArchitectureSpecError, "n=2, but this run has n=3"),
        (dict(fusion="hard", arch=ARCH, shallow="cin"), ArchitectureSpecError, "shallow='crossnet'"),
        (dict(fusion="hard", arch=make_arch(1, [("E", "S1")])), ArchitectureSpecError, "O has no connected input"),
        (dict(fusion="sparse"), ValueError, "`fusion` must be one of"),
        (dict(shallow="fm"), ValueError, "`shallow` must be one of"),
        (dict(n=0), ValueError, "`n` must be a positive integer"),
        (dict(dropout=1.0), ValueError, "`dropout` must be in"),
        (dict(embedding_init_std=0.0), ValueError, "`embedding_init_std`"),
        (dict(kernel_init="he_normal"), ValueError, "`kernel_init` must be one of"),
    ],
)
def test_errors(kwargs, error, message):
    kwargs = {"n": kwargs.get("arch", ARCH).n if "arch" in kwargs else 2, **kwargs}
    with pytest.raises(error, match=message):
        OptFusionModel(**{**SHAPE, **kwargs})


def test_ids_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"feature ids of shape \[batch, 3\]"):
        make_model("search")(np.zeros((2, 4), "int32"))


def test_get_config_round_trip():
    for model in (make_model("search"), make_model("hard", batch_norm=True, dropout=0.2),
                  make_model("soft", kernel_init="torch")):
        config = model.get_config()
        assert config["arch"] is None or ArchitectureSpec.from_dict(config["arch"]) == ARCH
        clone = OptFusionModel.from_config(config)
        assert clone.get_config() == config
        assert [p for p in clone.graph] == [p for p in model.graph]


@pytest.mark.parametrize(
    "fusion, extra",
    [("search", dict(shallow="crossnetv2")), ("hard", dict(batch_norm=True, dropout=0.3)),
     ("soft", dict(shallow="cin")), ("concat", dict(concat_head="direct"))],
)
def test_keras_save_and_load_give_identical_predictions(tmp_path, fusion, extra):
    arch = make_arch(2, FED_ARCH_EDGES, shallow=extra.get("shallow", "crossnet"))
    model = make_model(fusion, arch=None if fusion == "search" else arch, **extra)
    expected = model.predict(IDS, verbose=0)
    path = tmp_path / f"{fusion}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is OptFusionModel and restored.fusion == fusion
    np.testing.assert_array_equal(restored.predict(IDS, verbose=0), expected)
    assert restored.current_arch() == model.current_arch()


def test_analytic_flops():
    # stacked, n=1, crossnet, W=6: S0 cross 5W, D1 dense 2W^2 + 2W, O: ADD of one input (0),
    # output 2W + 1.
    model = OptFusionModel.from_preset("stacked", **SHAPE, n=1)
    assert analytic_flops_per_sample(model) == 30 + (72 + 12) + 13
    search, hard = make_model("search"), make_model("hard")
    assert analytic_flops_per_sample(search) > analytic_flops_per_sample(hard) > 0
    # parallel, n=1, W=6: S1 cross 5W, D1 2W^2 + 2W, O = CONCAT(S1, D1) into the logit as one
    # [2W] -> 1 map: 2 * 2W + 1 (not CONCAT's 2 * 2W * W + W and then the output's 2W + 1).
    parallel = OptFusionModel.from_preset("parallel", **SHAPE, n=1)
    assert analytic_flops_per_sample(parallel) == 30 + (72 + 12) + 25


def test_operation_scales_show_prod_vanishing_over_many_relu_inputs():
    """At init, PROD over O's 8 candidate inputs (n=3) is orders of magnitude below ADD and
    mostly exact zeros (ReLU outputs); --operation_norm=rms brings every operation to unit RMS."""
    ids = np.random.default_rng(2).integers(0, 400, size=(64, 10))
    shape = dict(feature_num=400, num_fields=10, emb_dim=4)
    scales = OptFusionModel(**shape, n=3, seed=3).operation_scales(ids)
    assert set(scales) == {"S1", "D1", "S2", "D2", "S3", "D3", "O"}
    prod, add = scales["O"]["prod"], scales["O"]["add"]
    assert prod[0] < 1e-6 * add[0] and prod[1] > 0.5 and add[1] < 0.5
    normed = OptFusionModel(**shape, n=3, seed=3, operation_norm="rms")
    outputs = {}

    def keep_prod_at_o(plan, inputs, connections):
        if plan.node == "O":
            outputs["O"] = normed.fusions["O"].fusion_operations["prod"](inputs, connections)

    normed.operation_scales(ids)  # builds the model
    normed._forward(ids, observe=keep_prod_at_o)
    rms = np.sqrt(np.mean(np.square(outputs["O"].numpy()), axis=-1))
    assert (rms > 0).any()
    np.testing.assert_allclose(rms[rms > 0], 1.0, rtol=1e-4)


def test_the_python_api_defaults_are_the_scripts_recipe():
    """Issue 24, item 6: OptFusionModel and compile defaulted to the reference's 1e-2 embedding
    init and to no L2 and no clipping, unlike search.py / retrain.py."""
    recipe = TrainingConfig(dataset_dir="", run_dir="")
    model = OptFusionModel(feature_num=20, num_fields=3, emb_dim=2, n=1)
    assert model.embedding_init_std == recipe.embedding_init_std
    assert model.kernel_init == recipe.kernel_init
    model.compile(embedding_optimizer=make_embedding_optimizer("lazy_adam", recipe.lr_emb),
                  network_optimizer=keras.optimizers.Adam(recipe.lr_nn),
                  architecture_optimizer=keras.optimizers.Adam(recipe.arch_lr))
    compiled = model.get_compile_config()
    assert (compiled["l2_emb"], compiled["l2_nn"], compiled["clip_global_norm"]) == (
        recipe.l2_emb, recipe.l2_nn, recipe.clip_global_norm)
    # compile() with nothing: the recipe's optimizers and learning rates (issue 26, item 3).
    search = OptFusionModel(feature_num=20, num_fields=3, emb_dim=2, n=1)
    search.compile()
    groups = (search.embedding_optimizer, search.network_optimizer, search.architecture_optimizer)
    assert isinstance(groups[0], LazyAdam)
    assert [float(o.learning_rate.numpy()) for o in groups] == pytest.approx(
        [recipe.lr_emb, recipe.lr_nn, recipe.arch_lr])
    # A LazyAdam given its own l2 keeps it when compile is not given one (the review of the
    # default: "coupled L2 given twice" was raised).
    own = OptFusionModel.from_preset("parallel", feature_num=20, num_fields=3, emb_dim=2, n=1)
    own.compile(embedding_optimizer=LazyAdam(1e-3, l2=1e-4), network_optimizer="adam")
    assert own.get_compile_config()["l2_emb"] == 1e-4 and own.embedding_optimizer.l2 == 1e-4
