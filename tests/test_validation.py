"""Validation of an ArchitectureSpec's fields, and its checks against a use (trainable, compatible,
numerically sound)."""

import pytest

from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.architecture.validation import ArchitectureSpecError
from test_architecture_spec import SHAPE, make_arch


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
        with pytest.raises(ArchitectureSpecError, match="O's connected inputs \\['S1'\\] output constants"):
            arch.check_trainable(fusion)


def test_an_unfed_deep_node_is_a_constant_and_s0_without_e_gets_zero():
    arch = _unfed_arch("crossnetv2", node="D1")
    assert arch.depends_on_example(arch.operations_for("prod")) == ("E",)
    with pytest.raises(ArchitectureSpecError, match="does not depend on the example"):
        arch.check_trainable("hard")
    # S0 with E->S0 off receives 0: CrossNet gives its bias, CrossNetV2 x0 * b.
    for shallow, varies in (("crossnet", False), ("crossnetv2", True)):
        arch = make_arch(1, [("S0", "O")], shallow=shallow)
        assert ("O" in arch.depends_on_example(arch.operations_for("hard"))) is varies


def test_check_trainable_raises_when_o_has_no_input():
    with pytest.raises(ArchitectureSpecError, match="O has no connected input"):
        make_arch(1, [("E", "S1"), ("E", "D1")]).check_trainable()
    make_arch(1, [("E", "O")]).check_trainable()


def test_check_compatible_names_the_mismatch():
    arch = make_arch(1, [("E", "O")])
    with pytest.raises(ArchitectureSpecError, match="searched with n=1, but this run has n=2"):
        arch.check_compatible(dataset="criteo", num_fields=3, feature_num=20, n=2)
    with pytest.raises(ArchitectureSpecError, match="shallow='crossnet'.*shallow='cin'"):
        arch.check_compatible(dataset="criteo", num_fields=3, feature_num=20, shallow="cin")
    with pytest.raises(ArchitectureSpecError, match="dataset='criteo'.*dataset='avazu'"):
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
    with pytest.raises(ArchitectureSpecError, match=message):
        ArchitectureSpec(**fields)


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
