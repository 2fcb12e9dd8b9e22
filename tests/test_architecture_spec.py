"""ArchitectureSpec: derived connections/operations, hard pruning, arch.json I/O and its versions."""

import dataclasses
import json

import pytest

from optfusion_tf.analysis.architecture_plot import softmax
from optfusion_tf.architecture.spec import MIXTURE, ArchitectureSpec, one_hot_beta
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.search_space import SearchSpace, edge_name
from optfusion_tf.architecture.validation import OPERATIONS, ArchitectureSpecError

SHAPE = dict(dataset="criteo", num_fields=3, feature_num=20, emb_dim=2)


def make_arch(n, connected, operations=None, shallow="crossnet"):
    """An ArchitectureSpec with exactly the edges `connected` on and the given argmax operations."""
    space = SearchSpace(n)
    on = {edge_name(s, d) for s, d in connected}
    assert set(connected) <= set(space.edges), "test arch uses edges outside the space"
    alpha = {edge_name(s, d): (0.7 if edge_name(s, d) in on else -0.3) for s, d in space.edges}
    operations = operations or {}
    beta = {
        node: tuple(1.0 if op == operations.get(node, "add") else 0.0 for op in OPERATIONS)
        for node in space.fusing_nodes
    }
    return ArchitectureSpec(n=n, shallow=shallow, alpha=alpha, beta=beta, **SHAPE)


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


def test_operations_for_each_retrain_mode():
    arch = make_arch(1, [("E", "O")], operations={"S1": "att", "O": "prod"})
    assert arch.operations_for("hard") == {"S1": "att", "D1": "add", "O": "prod"}
    assert set(arch.operations_for("soft").values()) == {MIXTURE}
    assert set(arch.operations_for("concat").values()) == {"concat"}
    with pytest.raises(ArchitectureSpecError, match="fusion must be"):
        arch.operations_for("search")


def test_operations_are_argmax_with_first_maximum_on_ties():
    arch = make_arch(1, [("E", "O")], operations={"S1": "att", "O": "prod"})
    assert arch.operations == {"S1": "att", "D1": "add", "O": "prod"}
    tied = dataclasses.replace(
        arch, beta={"S1": (0.2, 0.2, 0.1, 0.0), "D1": (0, 0, 0, 0), "O": (0, 1, 1, 0)}
    )
    assert tied.operations == {"S1": "add", "D1": "add", "O": "prod"}


def test_to_dict_from_dict_round_trip_and_derived_keys():
    arch = make_arch(2, [("E", "S1"), ("S1", "O"), ("E", "O")], operations={"O": "concat"})
    data = json.loads(json.dumps(arch.to_dict()))
    assert data["format_version"] == 2
    assert data["operation_order"] == list(OPERATIONS)
    assert data["connections"]["O"] == ["E", "S1"]
    assert data["implicit_inputs"] == {"S0": ["E"], "S1": ["E"], "S2": ["E"]}
    assert data["operations"]["O"] == "concat"
    assert data["live_nodes"] == ["E", "S1", "O"]
    assert ArchitectureSpec.from_dict(data) == arch


def test_version_1_files_are_read_with_live_nodes_recomputed_and_choices_made_decisive():
    """Version 1 dropped unfed nodes from live_nodes and stored a preset's (or
    search_connections') fixed choices as one-hot logits, whose softmax is a mixture."""
    arch = make_arch(1, [("S0", "O"), ("E", "O")], operations={"O": "concat"})
    data = json.loads(json.dumps(arch.to_dict()))
    data.update(format_version=1, live_nodes=["E", "O"], source="preset:parallel")
    del data["implicit_inputs"]
    old = ArchitectureSpec.from_dict(data)
    assert old.live_nodes == ("E", "S0", "O")
    assert old.beta["O"] == one_hot_beta("concat") and softmax(old.beta["O"])[2] == 1.0
    data["source"] = "search"  # learned logits are kept as they are
    assert ArchitectureSpec.from_dict(data).beta["O"] == (0.0, 0.0, 1.0, 0.0)


def test_from_dict_refuses_derived_keys_that_disagree_with_alpha():
    data = make_arch(1, [("E", "O")]).to_dict()
    data["connections"]["O"] = ["E", "S1"]
    with pytest.raises(ArchitectureSpecError, match="my.json: 'connections' disagrees with alpha/beta"):
        ArchitectureSpec.from_dict(data, where="my.json")


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
    with pytest.raises(ArchitectureSpecError, match=message):
        ArchitectureSpec.from_dict(data)


def test_save_and_load(tmp_path):
    arch = preset_arch("parallel", n=2, shallow="crossnetv2", **SHAPE)
    path = tmp_path / "arch.json"
    arch.save(path)
    assert ArchitectureSpec.load(path) == arch
    assert not (tmp_path / "arch.json.tmp").exists()


def test_load_errors(tmp_path):
    with pytest.raises(ArchitectureSpecError, match="no such arch file"):
        ArchitectureSpec.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArchitectureSpecError, match="bad.json: not valid JSON"):
        ArchitectureSpec.load(bad)


def test_operation_norm_is_recorded_and_checked():
    arch = dataclasses.replace(make_arch(1, [("E", "O")]), operation_norm="rms")
    assert ArchitectureSpec.from_dict(json.loads(json.dumps(arch.to_dict()))).operation_norm == "rms"
    with pytest.raises(ArchitectureSpecError, match="operation_norm='rms', but this run has operation_norm='none'"):
        arch.check_compatible(dataset="", num_fields=3, feature_num=20, operation_norm="none")
    with pytest.raises(ArchitectureSpecError, match="operation_norm must be one of"):
        dataclasses.replace(arch, operation_norm="layer")
