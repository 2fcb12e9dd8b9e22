"""ArchSpec: derived connections/operations, hard pruning, presets, validation, arch.json I/O."""

import dataclasses
import json

import pytest

from optfusion_tf.analysis.architecture_plot import softmax
from optfusion_tf.architecture.arch_spec import (
    MIXTURE,
    OPERATIONS,
    ArchSpec,
    ArchSpecError,
    one_hot_beta,
    preset_arch,
)
from optfusion_tf.architecture.search_space import SearchSpace, edge_name

SHAPE = dict(dataset="criteo", num_fields=3, feature_num=20, emb_dim=2)


def make_arch(n, connected, operations=None, shallow="crossnet"):
    """An ArchSpec with exactly the edges `connected` on and the given argmax operations."""
    space = SearchSpace(n)
    on = {edge_name(s, d) for s, d in connected}
    assert set(connected) <= set(space.edges), "test arch uses edges outside the space"
    alpha = {edge_name(s, d): (0.7 if edge_name(s, d) in on else -0.3) for s, d in space.edges}
    operations = operations or {}
    beta = {
        node: tuple(1.0 if op == operations.get(node, "add") else 0.0 for op in OPERATIONS)
        for node in space.fusing_nodes
    }
    return ArchSpec(n=n, shallow=shallow, alpha=alpha, beta=beta, **SHAPE)


def test_parallel_preset_is_two_chains_concatenated():
    arch = preset_arch("parallel", n=3, shallow="crossnet", **SHAPE)
    assert arch.connections == {
        "S0": (), "S1": ("E",), "D1": ("E",), "S2": ("S1",), "D2": ("D1",),
        "S3": ("S2",), "D3": ("D2",), "O": ("S3", "D3"),
    }
    assert arch.operations["O"] == "concat"
    assert all(arch.operations[v] == "add" for v in arch.operations if v != "O")
    assert arch.live_nodes == ("E", "S1", "D1", "S2", "D2", "S3", "D3", "O")
    assert arch.source == "preset:parallel"


def test_stacked_preset_is_one_chain_through_s0():
    arch = preset_arch("stacked", n=2, shallow="cin", **SHAPE)
    assert arch.live_nodes == ("E", "S0", "D1", "D2", "O")
    assert [arch.connections[v] for v in ("S0", "D1", "D2", "O")] == [
        ("E",), ("S0",), ("D1",), ("D2",)
    ]
    assert arch.shallow == "cin"


@pytest.mark.parametrize("preset", ["parallel", "stacked"])
def test_preset_beta_softmax_is_exactly_the_chosen_operation(preset):
    arch = preset_arch(preset, n=2, shallow="crossnet", **SHAPE)
    for node, logits in arch.beta.items():
        probabilities = softmax(logits)
        assert probabilities[OPERATIONS.index(arch.operations[node])] == 1.0, node
        assert sorted(probabilities) == [0.0, 0.0, 0.0, 1.0]
    assert arch.beta["S1"] == one_hot_beta("add")


def test_unknown_preset():
    with pytest.raises(ArchSpecError, match="preset must be one of.*Received: 'serial'"):
        preset_arch("serial", n=3, shallow="crossnet", **SHAPE)


def test_live_nodes_are_those_that_reach_o_fed_or_not():
    arch = make_arch(
        2,
        [
            ("E", "S1"), ("S1", "O"),  # the path E -> S1 -> O
            ("E", "D1"), ("D1", "S2"),  # D1 and S2 are fed but reach nothing: pruned
            ("S0", "O"), ("S0", "D2"), ("D2", "O"),  # S0, D2 reach O, but E -> S0 is off
        ],
    )
    assert arch.live_nodes == ("E", "S0", "S1", "D2", "O")
    assert arch.unfed_nodes == ("S0",)
    assert arch.connections["O"] == ("S0", "S1", "D2")
    assert arch.implicit_inputs == {"S0": ("E",), "S1": ("E",), "S2": ("E",)}


def _unfed_arch(shallow, node="S1"):
    """n=1: `node` has no connected input and is O's only input."""
    return make_arch(1, [(node, "O")], shallow=shallow)


@pytest.mark.parametrize(
    "shallow, fusion, varies",
    [
        # CrossNet(x0, x) = x0 (x . w) + b + x: constant b when the fused x is exactly 0.
        ("crossnet", "add", False),
        ("crossnet", "att", False),
        ("crossnet", "prod", True),  # x = 1: x0 (1 . w) + b + 1 varies
        ("crossnet", "concat", True),  # x = the CONCAT bias
        ("crossnet", "soft", True),  # the mixture of nothing: p_prod + p_concat b
        ("cin", "add", False),
        ("cin", "prod", True),
        ("crossnetv2", "add", True),  # x0 (W 0 + b) + 0 = x0 b varies
    ],
)
def test_depends_on_example_follows_what_a_shallow_node_computes(shallow, fusion, varies):
    arch = _unfed_arch(shallow)
    assert arch.live_nodes == ("E", "S1", "O") and arch.unfed_nodes == ("S1",)
    dependent = arch.depends_on_example(arch.operations_for(fusion))
    assert (("S1" in dependent) and ("O" in dependent)) is varies
    if varies:
        arch.check_trainable(fusion)
    else:
        with pytest.raises(ArchSpecError, match="O's connected inputs \\['S1'\\] output constants"):
            arch.check_trainable(fusion)


def test_an_unfed_deep_node_is_a_constant_and_s0_without_e_gets_zero():
    arch = _unfed_arch("crossnetv2", node="D1")
    assert arch.depends_on_example(arch.operations_for("prod")) == ("E",)
    with pytest.raises(ArchSpecError, match="does not depend on the example"):
        arch.check_trainable("hard")
    # S0 with E->S0 off receives 0: CrossNet gives its bias, CrossNetV2 x0 * b.
    for shallow, varies in (("crossnet", False), ("crossnetv2", True)):
        arch = make_arch(1, [("S0", "O")], shallow=shallow)
        assert ("O" in arch.depends_on_example(arch.operations_for("hard"))) is varies


def test_operations_for_each_retrain_mode():
    arch = make_arch(1, [("E", "O")], operations={"S1": "att", "O": "prod"})
    assert arch.operations_for("hard") == {"S1": "att", "D1": "add", "O": "prod"}
    assert set(arch.operations_for("soft").values()) == {MIXTURE}
    assert set(arch.operations_for("concat").values()) == {"concat"}
    with pytest.raises(ArchSpecError, match="fusion must be"):
        arch.operations_for("search")


def test_operations_are_argmax_with_first_maximum_on_ties():
    arch = make_arch(1, [("E", "O")], operations={"S1": "att", "O": "prod"})
    assert arch.operations == {"S1": "att", "D1": "add", "O": "prod"}
    tied = dataclasses.replace(
        arch, beta={"S1": (0.2, 0.2, 0.1, 0.0), "D1": (0, 0, 0, 0), "O": (0, 1, 1, 0)}
    )
    assert tied.operations == {"S1": "add", "D1": "add", "O": "prod"}


def test_check_trainable_raises_when_o_has_no_input():
    with pytest.raises(ArchSpecError, match="O has no connected input"):
        make_arch(1, [("E", "S1"), ("E", "D1")]).check_trainable()
    make_arch(1, [("E", "O")]).check_trainable()


def test_check_compatible_names_the_mismatch():
    arch = make_arch(1, [("E", "O")])
    with pytest.raises(ArchSpecError, match="searched with n=1, but this run has n=2"):
        arch.check_compatible(dataset="criteo", num_fields=3, feature_num=20, n=2)
    with pytest.raises(ArchSpecError, match="shallow='crossnet'.*shallow='cin'"):
        arch.check_compatible(dataset="criteo", num_fields=3, feature_num=20, shallow="cin")
    with pytest.raises(ArchSpecError, match="dataset='criteo'.*dataset='avazu'"):
        arch.check_compatible(dataset="avazu", num_fields=3, feature_num=20)
    arch.check_compatible(dataset="", num_fields=3, feature_num=20, n=1, shallow="crossnet")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(n=0), "n must be an integer >= 1"),
        (dict(shallow="fm"), "shallow must be one of"),
        (dict(emb_dim=0), "emb_dim must be a positive integer"),
        (dict(alpha={"E->S0": 1.0}), "alpha lacks edges of the n=1 search space"),
        (dict(extra_edge="S1->D1"), "alpha has edges that n=1 does not allow"),
        (dict(nan_edge="E->O"), r"alpha\['E->O'\] must be a finite number"),
        (dict(beta={"S1": (0, 0, 0, 1)}), "beta must have exactly the fusing nodes"),
        (dict(short_beta="O"), r"beta\['O'\] must be 4 finite numbers"),
    ],
)
def test_validation_messages(change, message):
    data = make_arch(1, [("E", "O")]).to_dict()
    fields = dict(
        n=data["n"], shallow=data["shallow"], alpha=dict(data["alpha"]),
        beta={k: tuple(v) for k, v in data["beta"].items()}, **SHAPE,
    )
    if "extra_edge" in change:
        fields["alpha"][change.pop("extra_edge")] = 1.0
    if "nan_edge" in change:
        fields["alpha"][change.pop("nan_edge")] = float("nan")
    if "short_beta" in change:
        fields["beta"][change.pop("short_beta")] = (1.0, 0.0)
    fields.update(change)
    with pytest.raises(ArchSpecError, match=message):
        ArchSpec(**fields)


def test_to_dict_from_dict_round_trip_and_derived_keys():
    arch = make_arch(2, [("E", "S1"), ("S1", "O"), ("E", "O")], operations={"O": "concat"})
    data = json.loads(json.dumps(arch.to_dict()))
    assert data["format_version"] == 2
    assert data["operation_order"] == list(OPERATIONS)
    assert data["connections"]["O"] == ["E", "S1"]
    assert data["implicit_inputs"] == {"S0": ["E"], "S1": ["E"], "S2": ["E"]}
    assert data["operations"]["O"] == "concat"
    assert data["live_nodes"] == ["E", "S1", "O"]
    assert ArchSpec.from_dict(data) == arch


def test_version_1_files_are_read_with_live_nodes_recomputed_and_choices_made_decisive():
    """Version 1 dropped unfed nodes from live_nodes and stored a preset's (or
    search_connections') fixed choices as one-hot logits, whose softmax is a mixture."""
    arch = make_arch(1, [("S0", "O"), ("E", "O")], operations={"O": "concat"})
    data = json.loads(json.dumps(arch.to_dict()))
    data.update(format_version=1, live_nodes=["E", "O"], source="preset:parallel")
    del data["implicit_inputs"]
    old = ArchSpec.from_dict(data)
    assert old.live_nodes == ("E", "S0", "O")
    assert old.beta["O"] == one_hot_beta("concat") and softmax(old.beta["O"])[2] == 1.0
    data["source"] = "search"  # learned logits are kept as they are
    assert ArchSpec.from_dict(data).beta["O"] == (0.0, 0.0, 1.0, 0.0)


def test_from_dict_refuses_derived_keys_that_disagree_with_alpha():
    data = make_arch(1, [("E", "O")]).to_dict()
    data["connections"]["O"] = ["E", "S1"]
    with pytest.raises(ArchSpecError, match="my.json: 'connections' disagrees with alpha/beta"):
        ArchSpec.from_dict(data, where="my.json")


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "expected a JSON object"),
        ({"format_version": 3}, "format_version must be one of \\[1, 2\\]"),
        ({"format_version": 1, "operation_order": ["add"]}, "operation_order must be"),
        ({"format_version": 1, "n": 1}, "missing keys"),
    ],
)
def test_from_dict_errors(data, message):
    with pytest.raises(ArchSpecError, match=message):
        ArchSpec.from_dict(data)


def test_save_and_load(tmp_path):
    arch = preset_arch("parallel", n=2, shallow="crossnetv2", **SHAPE)
    path = tmp_path / "arch.json"
    arch.save(path)
    assert ArchSpec.load(path) == arch
    assert not (tmp_path / "arch.json.tmp").exists()


def test_load_errors(tmp_path):
    with pytest.raises(ArchSpecError, match="no such arch file"):
        ArchSpec.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArchSpecError, match="bad.json: not valid JSON"):
        ArchSpec.load(bad)


def test_numerical_warnings_name_prod_nodes_over_many_or_relu_inputs():
    arch = make_arch(
        2,
        [("E", "S1"), ("E", "D1"), ("S1", "O"), ("D1", "O"), ("E", "O"), ("S1", "S2"),
         ("E", "S2"), ("S2", "O")],
        operations={"O": "prod", "S2": "prod"},
    )
    warnings = arch.numerical_warnings("hard")
    assert len(warnings) == 1  # S2: PROD of two shallow inputs is fine
    assert warnings[0].startswith("O: fusion=hard applies PROD to 4 inputs (E, S1, D1, S2) and "
                                  "the ReLU output of D1")
    assert "--operation_norm=rms" in warnings[0]
    assert arch.numerical_warnings("soft") == []
    assert {w.split(":")[0] for w in arch.numerical_warnings("prod")} == {"O"}


def test_operation_norm_is_recorded_and_checked():
    arch = dataclasses.replace(make_arch(1, [("E", "O")]), operation_norm="rms")
    assert ArchSpec.from_dict(json.loads(json.dumps(arch.to_dict()))).operation_norm == "rms"
    with pytest.raises(ArchSpecError, match="operation_norm='rms', but this run has operation_norm='none'"):
        arch.check_compatible(dataset="", num_fields=3, feature_num=20, operation_norm="none")
    with pytest.raises(ArchSpecError, match="operation_norm must be one of"):
        dataclasses.replace(arch, operation_norm="layer")
