"""OptFusionModel: modes, pruning, presets, gradients, serialization, FLOPs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from optfusion_tf.arch_spec import OPERATIONS, ArchSpec, ArchSpecError, preset_arch
from optfusion_tf.flops import analytic_flops_per_sample
from optfusion_tf.fusion import AddFusion, ConcatFusion, FusionMixture
from optfusion_tf.model import FUSION_MODES, OptFusionModel
from optfusion_tf.search_space import SearchSpace, edge_name

SHAPE = dict(feature_num=20, num_fields=3, emb_dim=2)  # W = 6
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
    return ArchSpec(n=n, shallow=shallow, alpha=alpha, beta=beta, dataset="", num_fields=3,
                    feature_num=20, emb_dim=2)


# Every node that reaches O is fed from E, so the pruned graph computes the supernet's function.
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


def test_hard_mode_builds_only_what_reaches_o():
    # D1 and S2 are fed but reach nothing; D2 reaches O but is fed by nothing live.
    arch = make_arch(
        2,
        [
            ("E", "S1"), ("S1", "O"), ("E", "D1"), ("D1", "S2"),
            ("S0", "D2"), ("D2", "O"), ("E", "O"),
        ],
        operations={"O": "concat"},
    )
    model = make_model("hard", arch=arch)
    model.build((None, 3))
    assert [(p.node, p.inputs, p.fusion) for p in model.graph] == [
        ("S1", ("E",), arch.operations["S1"]),
        ("O", ("E", "S1"), "concat"),
    ]
    assert sorted(model.components) == ["S1"]
    assert type(model.fusions["O"]) is ConcatFusion
    assert model.fusions["O"].kernel.shape == (2 * 6, 6)  # only the two live inputs
    assert not any(node in v.path for v in model.variables for node in ("D1", "S2", "D2", "S0"))


def test_presets_build_the_described_graphs():
    parallel = OptFusionModel.from_preset("parallel", **SHAPE, n=3, seed=0)
    assert parallel.fusion == "hard"
    assert [(p.node, p.inputs) for p in parallel.graph] == [
        ("S1", ("E",)), ("D1", ("E",)), ("S2", ("S1",)), ("D2", ("D1",)),
        ("S3", ("S2",)), ("D3", ("D2",)), ("O", ("S3", "D3")),
    ]
    assert parallel.graph[-1].fusion == "concat"
    stacked = OptFusionModel.from_preset("stacked", **SHAPE, n=2, shallow="cin", dropout=0.1)
    assert [(p.node, p.inputs, p.fusion) for p in stacked.graph] == [
        ("S0", ("E",), None), ("D1", ("S0",), "add"), ("D2", ("D1",), "add"), ("O", ("D2",), "add"),
    ]
    assert stacked(IDS).shape == (8, 1)
    assert stacked.current_arch() == preset_arch(
        "stacked", n=2, shallow="cin", dataset="", num_fields=3, feature_num=20, emb_dim=2
    )


def _set_alpha(model, arch):
    values = [arch.alpha[edge_name(s, d)] for s, d in model.space.edges]
    model.architecture_variables[0].assign(values)


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


def test_load_search_weights_refuses_a_model_without_these_nodes():
    narrow = make_model("search_operations", arch=make_arch(2, [("E", "O")]))
    with pytest.raises(ValueError, match=r"cannot come from it: \['S0', 'S1'"):
        make_model("hard").load_search_weights(narrow)


def test_current_arch_follows_alpha_and_beta():
    model = make_model("search")
    model.build((None, 3))
    alpha, beta = model.architecture_variables
    alpha.assign(-np.ones(alpha.shape, "float32"))
    alpha[model.space.edges.index(("E", "O"))].assign(2.0)
    beta.assign(np.tile(np.eye(4, dtype="float32")[OPERATIONS.index("att")], (5, 1)))
    arch = model.current_arch()
    assert arch.connections["O"] == ("E",) and arch.live_nodes == ("E", "O")
    assert set(arch.operations.values()) == {"att"}
    assert arch.alpha["E->O"] == 2.0 and arch.source == "search"


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


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(fusion="hard"), ValueError, "fusion='hard' needs an `arch`"),
        (dict(fusion="search", arch=ARCH), ValueError, "takes no `arch`"),
        (dict(fusion="hard", arch=ARCH, n=3), ArchSpecError, "n=2, but this run has n=3"),
        (dict(fusion="hard", arch=ARCH, shallow="cin"), ArchSpecError, "shallow='crossnet'"),
        (dict(fusion="hard", arch=make_arch(1, [("E", "S1")])), ArchSpecError, "connects nothing"),
        (dict(fusion="sparse"), ValueError, "`fusion` must be one of"),
        (dict(shallow="fm"), ValueError, "`shallow` must be one of"),
        (dict(n=0), ValueError, "`n` must be a positive integer"),
        (dict(dropout=1.0), ValueError, "`dropout` must be in"),
        (dict(embedding_init_std=0.0), ValueError, "`embedding_init_std`"),
    ],
)
def test_errors(kwargs, error, message):
    kwargs = {"n": kwargs.get("arch", ARCH).n if "arch" in kwargs else 2, **kwargs}
    with pytest.raises(error, match=message):
        OptFusionModel(**SHAPE, **kwargs)


def test_ids_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"feature ids of shape \[batch, 3\]"):
        make_model("search")(np.zeros((2, 4), "int32"))


def test_get_config_round_trip():
    for model in (make_model("search"), make_model("hard", batch_norm=True, dropout=0.2)):
        config = model.get_config()
        assert config["arch"] is None or ArchSpec.from_dict(config["arch"]) == ARCH
        clone = OptFusionModel.from_config(config)
        assert clone.get_config() == config
        assert [p for p in clone.graph] == [p for p in model.graph]


@pytest.mark.parametrize(
    "fusion, extra",
    [("search", dict(shallow="crossnetv2")), ("hard", dict(batch_norm=True, dropout=0.3)),
     ("soft", dict(shallow="cin"))],
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
