"""The preset architectures: their connections, operations and one-hot beta."""

import pytest

from optfusion_tf.analysis.architecture_plot import softmax
from optfusion_tf.architecture.spec import one_hot_beta
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import OPERATIONS, ArchitectureSpecError
from test_architecture_spec import SHAPE


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
    with pytest.raises(ArchitectureSpecError, match="preset must be one of.*Received: 'serial'"):
        preset_arch("serial", n=3, shallow="crossnet", **SHAPE)
