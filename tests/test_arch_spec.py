"""ArchSpec: derived connections/operations, hard pruning, presets, validation, arch.json I/O."""

import dataclasses
import json

import pytest

from optfusion_tf.arch_spec import (
    OPERATIONS,
    ArchSpec,
    ArchSpecError,
    preset_arch,
)
from optfusion_tf.search_space import SearchSpace, edge_name

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
    assert [arch.live_inputs(v) for v in ("S0", "D1", "D2", "O")] == [
        ("E",), ("S0",), ("D1",), ("D2",)
    ]
    assert arch.shallow == "cin"


def test_unknown_preset():
    with pytest.raises(ArchSpecError, match="preset must be one of.*Received: 'serial'"):
        preset_arch("serial", n=3, shallow="crossnet", **SHAPE)


def test_hard_pruning_drops_nodes_that_are_unfed_or_do_not_reach_o():
    arch = make_arch(
        2,
        [
            ("E", "S1"), ("S1", "O"),  # the path E -> S1 -> O
            ("E", "D1"), ("D1", "S2"),  # D1 and S2 are fed but reach nothing
            ("S0", "O"), ("S0", "D2"), ("D2", "O"),  # S0, D2 reach O, but E -> S0 is off
        ],
    )
    assert arch.live_nodes == ("E", "S1", "O")
    assert arch.connections["O"] == ("S0", "S1", "D2")
    assert arch.live_inputs("O") == ("S1",)


def test_live_inputs_are_connected_and_live():
    arch = make_arch(1, [("E", "S0"), ("S0", "S1"), ("E", "S1"), ("S1", "O"), ("D1", "O")])
    assert arch.live_nodes == ("E", "S0", "S1", "O")
    assert arch.live_inputs("S1") == ("E", "S0")
    assert arch.live_inputs("O") == ("S1",)


def test_operations_are_argmax_with_first_maximum_on_ties():
    arch = make_arch(1, [("E", "O")], operations={"S1": "att", "O": "prod"})
    assert arch.operations == {"S1": "att", "D1": "add", "O": "prod"}
    tied = dataclasses.replace(
        arch, beta={"S1": (0.2, 0.2, 0.1, 0.0), "D1": (0, 0, 0, 0), "O": (0, 1, 1, 0)}
    )
    assert tied.operations == {"S1": "add", "D1": "add", "O": "prod"}


def test_check_trainable_raises_when_nothing_connects_e_to_o():
    with pytest.raises(ArchSpecError, match="connects nothing from E to O"):
        make_arch(1, [("E", "S1"), ("D1", "O")]).check_trainable()
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
    assert data["format_version"] == 1
    assert data["operation_order"] == list(OPERATIONS)
    assert data["connections"]["O"] == ["E", "S1"]
    assert data["operations"]["O"] == "concat"
    assert data["live_nodes"] == ["E", "S1", "O"]
    assert ArchSpec.from_dict(data) == arch


def test_from_dict_refuses_derived_keys_that_disagree_with_alpha():
    data = make_arch(1, [("E", "O")]).to_dict()
    data["connections"]["O"] = ["E", "S1"]
    with pytest.raises(ArchSpecError, match="my.json: 'connections' disagrees with alpha/beta"):
        ArchSpec.from_dict(data, where="my.json")


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "expected a JSON object"),
        ({"format_version": 2}, "format_version must be 1"),
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
