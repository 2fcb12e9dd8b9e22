"""Fusion operations and their mixture: golden values and the identity of disconnected inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from optfusion_tf.architecture.validation import OPERATIONS
from optfusion_tf.operations.base import unit_rms
from optfusion_tf.operations import (
    FUSION_OPERATIONS,
    AddFusion,
    AttentionFusion,
    ConcatFusion,
    FusionMixture,
    ProdFusion,
    make_fusion_operation,
)

RNG = np.random.default_rng(0)
INPUTS = [RNG.normal(size=(4, 3)).astype("float32") for _ in range(3)]
CONNECTED = np.array([1.0, 0.0, 1.0], dtype="float32")  # the middle input is disconnected


def attention_weights(width, seed=1):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(width, width)).astype("float32"),
        rng.normal(size=(width,)).astype("float32"),
        rng.normal(size=(width, 1)).astype("float32"),
    ]


def built(layer, num_inputs=3, width=3):
    layer.build([(None, width)] * num_inputs)
    return layer


def test_add_golden():
    np.testing.assert_allclose(AddFusion(3)(INPUTS), sum(INPUTS), rtol=1e-6)
    np.testing.assert_allclose(
        AddFusion(3)(INPUTS, CONNECTED), INPUTS[0] + INPUTS[2], rtol=1e-6
    )


def test_add_of_one_connected_input_is_that_input():
    only_second = np.array([0.0, 1.0, 0.0], dtype="float32")
    np.testing.assert_array_equal(AddFusion(3)(INPUTS, only_second), INPUTS[1])
    np.testing.assert_array_equal(AddFusion(1)(INPUTS[:1]), INPUTS[0])


def test_prod_golden_and_disconnected_inputs_contribute_one():
    np.testing.assert_allclose(ProdFusion(3)(INPUTS), INPUTS[0] * INPUTS[1] * INPUTS[2], rtol=1e-6)
    np.testing.assert_allclose(ProdFusion(3)(INPUTS, CONNECTED), INPUTS[0] * INPUTS[2], rtol=1e-6)
    # Equal to PROD over the connected inputs only, never the reference's zero vector.
    np.testing.assert_allclose(
        ProdFusion(3)(INPUTS, CONNECTED), ProdFusion(2)([INPUTS[0], INPUTS[2]]), rtol=1e-6
    )
    np.testing.assert_array_equal(ProdFusion(3)(INPUTS, np.zeros(3, "float32")), np.ones((4, 3)))


def test_concat_golden_and_disconnected_slots_are_zero():
    layer = built(ConcatFusion(3))
    kernel = RNG.normal(size=(9, 3)).astype("float32")
    bias = np.array([0.1, -0.2, 0.3], dtype="float32")
    layer.set_weights([kernel, bias])
    np.testing.assert_allclose(layer(INPUTS), np.concatenate(INPUTS, -1) @ kernel + bias, rtol=1e-5)
    masked = np.concatenate([INPUTS[0], 0 * INPUTS[1], INPUTS[2]], -1) @ kernel + bias
    np.testing.assert_allclose(layer(INPUTS, CONNECTED), masked, rtol=1e-5)
    # The same as CONCAT over the connected inputs with their row blocks of the kernel.
    pruned = built(ConcatFusion(2), 2)
    pruned.set_weights([np.concatenate([kernel[0:3], kernel[6:9]]), bias])
    np.testing.assert_allclose(layer(INPUTS, CONNECTED), pruned([INPUTS[0], INPUTS[2]]), rtol=1e-5)


@pytest.mark.parametrize("connections", [None, CONNECTED])
def test_concat_through_a_linear_head_is_the_head_of_its_output(connections):
    layer = built(ConcatFusion(3))
    layer.set_weights([RNG.normal(size=(9, 3)).astype("float32"), np.array([0.1, -0.2, 0.3], "float32")])
    head_kernel, head_bias = RNG.normal(size=(3, 2)).astype("float32"), np.array([0.5, -1.0], "float32")
    np.testing.assert_allclose(
        layer.through_linear_head(INPUTS, connections, head_kernel, head_bias),
        np.asarray(layer(INPUTS, connections)) @ head_kernel + head_bias, rtol=1e-5, atol=1e-6,
    )
    rms = built(ConcatFusion(3, output_norm="rms"))
    with pytest.raises(ValueError, match="needs output_norm='none'"):
        rms.through_linear_head(INPUTS, connections, head_kernel, head_bias)


def test_attention_golden():
    layer = built(AttentionFusion(3))
    w1, b1, w2 = attention_weights(3)
    layer.set_weights([w1, b1, w2])
    scores = np.stack([np.maximum(x @ w1 + b1, 0) @ w2[:, 0] for x in INPUTS])  # [K, batch]
    a = np.exp(scores - scores.max(0)) / np.exp(scores - scores.max(0)).sum(0)
    expected = sum(a[k][:, None] * INPUTS[k] for k in range(3))
    np.testing.assert_allclose(layer(INPUTS), expected, rtol=1e-5)
    # Connections: a softmax over the connected inputs only.
    a = np.exp(scores[[0, 2]]) / np.exp(scores[[0, 2]]).sum(0)
    expected = a[0][:, None] * INPUTS[0] + a[1][:, None] * INPUTS[2]
    np.testing.assert_allclose(layer(INPUTS, CONNECTED), expected, rtol=1e-5)


def test_attention_ignores_disconnected_inputs_whatever_their_values():
    layer = built(AttentionFusion(3))
    layer.set_weights(attention_weights(3))
    huge = [INPUTS[0], 1e4 * np.ones_like(INPUTS[1]), INPUTS[2]]  # a dominating score
    pruned = built(AttentionFusion(2), 2)
    pruned.set_weights(layer.get_weights())
    expected = pruned([INPUTS[0], INPUTS[2]])
    np.testing.assert_allclose(layer(INPUTS, CONNECTED), expected, rtol=1e-5)
    np.testing.assert_allclose(layer(huge, CONNECTED), expected, rtol=1e-5)


def test_attention_single_input_is_identity_and_no_connection_gives_zero_without_nan():
    np.testing.assert_array_equal(AttentionFusion(1)(INPUTS[:1]), INPUTS[0])
    layer = built(AttentionFusion(3))
    layer.set_weights(attention_weights(3))
    connections = tf.Variable(np.zeros(3, "float32"))
    with tf.GradientTape() as tape:
        out = layer(INPUTS, connections)
        loss = tf.reduce_sum(out)
    np.testing.assert_array_equal(out, np.zeros((4, 3)))
    grads = tape.gradient(loss, [connections, *layer.trainable_variables])
    assert all(np.isfinite(keras.ops.convert_to_numpy(g)).all() for g in grads)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_gradients_reach_the_connections(operation):
    layer = make_fusion_operation(operation, 3)
    connections = tf.Variable(CONNECTED)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(INPUTS, connections)))
    grad = keras.ops.convert_to_numpy(tape.gradient(loss, connections))
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_mixture_is_the_weighted_sum_of_the_operations():
    mixture = built(FusionMixture(3))
    assert list(mixture.fusion_operations) == list(OPERATIONS)
    p = np.array([0.1, 0.2, 0.3, 0.4], dtype="float32")
    for connections in (None, CONNECTED):
        expected = sum(
            p[i] * keras.ops.convert_to_numpy(mixture.fusion_operations[name](INPUTS, connections))
            for i, name in enumerate(OPERATIONS)
        )
        np.testing.assert_allclose(mixture(INPUTS, p, connections), expected, rtol=1e-5, atol=1e-6)


def test_mixture_operations_get_distinct_seeded_initializers():
    init = keras.initializers.VarianceScaling(seed=5)
    mixture = built(FusionMixture(1, kernel_initializer=init), num_inputs=1)
    concat = mixture.fusion_operations["concat"].kernel.numpy()
    att = mixture.fusion_operations["att"]
    assert not np.allclose(concat, att.kernel.numpy())
    assert not np.allclose(att.kernel.numpy()[:, :1], att.score_kernel.numpy())


def test_validation():
    with pytest.raises(ValueError, match="`num_inputs` must be a positive integer"):
        AddFusion(0)
    with pytest.raises(ValueError, match="`num_inputs` must be a positive integer"):
        FusionMixture(True)
    with pytest.raises(ValueError, match="expects 2 inputs of shape"):
        ConcatFusion(2)(INPUTS)
    with pytest.raises(ValueError, match="one known W"):
        AttentionFusion(2)([INPUTS[0], np.ones((4, 5), "float32")])
    with pytest.raises(ValueError, match="must be one of.*Received: 'max'"):
        make_fusion_operation("max", 2)


@pytest.mark.parametrize(
    "layer",
    [
        AddFusion(2),
        ProdFusion(3, name="p"),
        ConcatFusion(2, kernel_initializer="ones"),
        AttentionFusion(3, kernel_initializer=keras.initializers.VarianceScaling(seed=1)),
        FusionMixture(2, bias_initializer="ones"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_registry_keys_are_the_operations():
    assert tuple(FUSION_OPERATIONS) == OPERATIONS
    concat = make_fusion_operation("concat", 2, kernel_initializer="ones", name="c")
    assert concat.name == "c" and concat.get_config()["kernel_initializer"]["class_name"] == "Ones"
    assert type(make_fusion_operation("add", 2, kernel_initializer="ones")) is AddFusion


def test_unit_rms_gradient_is_exact_and_finite_for_tiny_rows():
    """unit_rms(x) = x / rms(x): its gradient equals that of the float64 formula, and stays
    finite for a row of 1e-25 values (the scale's own gradient, -x / scale^2, overflowed float32
    and made rms searches go NaN)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8))
    upstream = rng.normal(size=(3, 8))

    def gradient(values, dtype):
        v = tf.constant(values, dtype)
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = unit_rms(v) if dtype == tf.float32 else v / tf.sqrt(tf.reduce_mean(v * v, -1, keepdims=True))
            loss = tf.reduce_sum(y * tf.constant(upstream, dtype))
        return tape.gradient(loss, v).numpy()

    np.testing.assert_allclose(gradient(x, tf.float32), gradient(x, tf.float64), rtol=1e-4, atol=1e-5)
    tiny = gradient(x * 1e-25, tf.float32)
    assert np.isfinite(tiny).all()
    np.testing.assert_allclose(tiny * 1e-25, gradient(x, tf.float64), rtol=1e-3, atol=1e-4)
    # A row of zeros (or below 1e-30) gives 0 and a zero gradient, even under a large upstream
    # gradient (the old floor amplified it by 1e36 into inf, and inf * 0 = NaN in a PROD).
    dead = x.copy()
    dead[1] = 0.0
    dead[2] *= 1e-33
    v = tf.constant(dead, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = unit_rms(v)
        loss = tf.reduce_sum(y * tf.constant(upstream * 1e4, tf.float32))
    grad = tape.gradient(loss, v).numpy()
    np.testing.assert_array_equal(y.numpy()[1:], 0.0)
    assert np.isfinite(grad).all() and (grad[1:] == 0).all()
