"""The node plan: which nodes live, what feeds them, which operation each applies, the edge
slices."""

from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.search_space import SearchSpace
from optfusion_tf.operations import ConcatFusion
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.models.node_plan import edge_slices, plan_nodes

from test_model import IDS, SHAPE, make_arch, make_model


def test_search_plans_every_node_masked_and_slices_alpha_by_destination():
    space = SearchSpace(2)
    plans = plan_nodes(space, "search", None)
    assert [p.node for p in plans] == list(space.nodes[1:])
    assert all(p.masked and not p.unfed for p in plans)
    assert [p.inputs for p in plans] == [space.candidate_inputs(p.node) for p in plans]
    slices = edge_slices(space)
    for plan in plans:
        start, stop = slices[plan.node]
        assert [src for src, _ in space.edges[start:stop]] == list(plan.inputs)


def test_hard_mode_prunes_only_what_does_not_reach_o():
    # D1 and S2 are fed but reach nothing: pruned. S0 and D2 reach O without being fed from E
    # (E->S0 is off): kept, because they still change the output.
    arch = make_arch(
        2,
        [
            ("E", "S1"), ("S1", "O"), ("E", "D1"), ("D1", "S2"),
            ("S0", "D2"), ("D2", "O"), ("E", "O"),
        ],
        operations={"O": "concat"},
    )
    model = make_model("hard", arch=arch, concat_head="projected")
    model.build((None, 3))
    assert [(p.node, p.inputs, p.operation, p.unfed) for p in model.graph] == [
        ("S0", ("E",), None, True),
        ("S1", ("E",), arch.operations["S1"], False),
        ("D2", ("S0",), arch.operations["D2"], False),
        ("O", ("E", "S1", "D2"), "concat", False),
    ]
    assert sorted(model.components) == ["D2", "S0", "S1"]
    assert type(model.fusions["O"]) is ConcatFusion
    assert model.fusions["O"].kernel.shape == (3 * 6, 6)  # only the three connected inputs
    direct = make_model("hard", arch=arch, concat_head="direct")  # no CONCAT layer at O
    direct.build((None, 3))
    assert "O" not in direct.fusions and direct.output_layer.kernel.shape == (3 * 6, 1)
    assert not any(node in v.path for v in model.variables for node in ("D1", "S2"))


def test_presets_build_the_described_graphs():
    parallel = OptFusionModel.from_preset("parallel", **SHAPE, n=3, seed=0)
    assert parallel.fusion == "hard"
    assert [(p.node, p.inputs) for p in parallel.graph] == [
        ("S1", ("E",)), ("D1", ("E",)), ("S2", ("S1",)), ("D2", ("D1",)),
        ("S3", ("S2",)), ("D3", ("D2",)), ("O", ("S3", "D3")),
    ]
    assert parallel.graph[-1].operation == "concat"
    stacked = OptFusionModel.from_preset("stacked", **SHAPE, n=2, shallow="cin", dropout=0.1)
    assert [(p.node, p.inputs, p.operation) for p in stacked.graph] == [
        ("S0", ("E",), None), ("D1", ("S0",), "add"), ("D2", ("D1",), "add"), ("O", ("D2",), "add"),
    ]
    assert stacked(IDS).shape == (8, 1)
    assert stacked.current_arch() == preset_arch(
        "stacked", n=2, shallow="cin", dataset="", num_fields=3, feature_num=20, emb_dim=2
    )


def test_old_names_of_the_mode_and_the_operation_still_read():
    # `model.fusion` is the mode under its public (constructor, config key) name; `plan.fusion`
    # is the former name of `plan.operation`.
    model = OptFusionModel.from_preset("parallel", **SHAPE, n=1, seed=0)
    assert model.mode == model.fusion == model.get_config()["fusion"] == "hard"
    assert [p.fusion for p in model.graph] == [p.operation for p in model.graph]
