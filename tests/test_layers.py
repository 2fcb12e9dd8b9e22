"""Shallow and deep components: golden values, validation, get_config round trips."""

import keras
import numpy as np
import pytest

from optfusion_tf.architecture.validation import SHALLOW_COMPONENTS
from optfusion_tf.layers import (
    CIN,
    SHALLOW_LAYERS,
    CrossNet,
    CrossNetV2,
    DeepBlock,
    make_shallow_layer,
)

X0 = np.array([[1.0, 2.0, 3.0, -1.0], [0.5, -0.5, 0.0, 2.0]], dtype="float32")
X = np.array([[0.5, -1.0, 2.0, 1.0], [1.0, 1.0, -1.0, 0.0]], dtype="float32")
BIAS = np.array([0.1, 0.2, 0.3, 0.4], dtype="float32")


def test_cross_net_golden():
    layer = CrossNet()
    layer.build(X0.shape, X.shape)
    w = np.array([[1.0], [2.0], [0.0], [-1.0]], dtype="float32")
    layer.set_weights([w, BIAS])
    # x . w = [0.5 - 2 + 0 - 1, 1 + 2 + 0 - 0] = [-2.5, 3]
    expected = X0 * np.array([[-2.5], [3.0]], dtype="float32") + BIAS + X
    np.testing.assert_allclose(layer(X0, X), expected, rtol=1e-6)


def test_cross_net_v2_golden():
    layer = CrossNetV2()
    layer.build(X0.shape, X.shape)
    kernel = np.arange(16, dtype="float32").reshape(4, 4) / 10.0
    layer.set_weights([kernel, BIAS])
    expected = X0 * (X @ kernel + BIAS) + X
    np.testing.assert_allclose(layer(X0, X), expected, rtol=1e-6)


def test_cin_golden_against_the_outer_product_definition():
    num_fields, emb_dim = 2, 2  # W = 4: fields [x_0, x_1], [x_2, x_3]
    layer = CIN(num_fields)
    layer.build(X0.shape, X.shape)
    kernel = np.arange(8, dtype="float32").reshape(2, 2, 2) - 3.0  # [h, m, k]
    bias = np.array([0.5, -0.5], dtype="float32")
    layer.set_weights([kernel, bias])
    x0 = X0.reshape(2, num_fields, emb_dim)
    x = X.reshape(2, num_fields, emb_dim)
    expected = np.zeros_like(x)
    for b in range(2):
        for k in range(num_fields):
            for h in range(num_fields):
                for m in range(num_fields):
                    expected[b, k] += kernel[h, m, k] * x[b, h] * x0[b, m]
            expected[b, k] += bias[k]
    np.testing.assert_allclose(layer(X0, X), expected.reshape(2, 4), rtol=1e-5)


def test_cin_keeps_the_width_and_validates_fields():
    assert CIN(3)(np.ones((5, 6), "float32"), np.ones((5, 6), "float32")).shape == (5, 6)
    with pytest.raises(ValueError, match="multiple of num_fields=3. Received: W=4"):
        CIN(3)(X0, X)
    with pytest.raises(ValueError, match="`num_fields` must be a positive integer"):
        CIN(0)


@pytest.mark.parametrize("cls", [CrossNet, CrossNetV2])
def test_shallow_layers_reject_mismatched_inputs(cls):
    with pytest.raises(ValueError, match="expects `x0` and `x` of the same shape"):
        cls()(X0, X[:, :3])


def test_deep_block_golden_and_training_modes():
    layer = DeepBlock(3, batch_norm=True, dropout=0.5, seed=1)
    layer.build(X.shape)
    kernel = np.array([[1, 0, -1], [0, 1, 0], [1, 1, 1], [0, 0, 2]], dtype="float32")
    bias = np.array([0.0, -1.0, 0.5], dtype="float32")
    dense_weights = [kernel, bias]
    layer.dense.set_weights(dense_weights)
    # Inference: fresh batch norm statistics (mean 0, variance 1), no dropout.
    epsilon = layer.norm.epsilon
    expected = np.maximum((X @ kernel + bias) / np.sqrt(1.0 + epsilon), 0.0)
    np.testing.assert_allclose(layer(X, training=False), expected, rtol=1e-5)
    dropped = keras.ops.convert_to_numpy(layer(np.tile(X, (50, 1)), training=True))
    assert (dropped == 0).mean() > 0.3  # dropout is active in training


def test_deep_block_without_extras_is_dense_relu():
    layer = DeepBlock(2, kernel_initializer="ones", bias_initializer="zeros")
    np.testing.assert_allclose(layer(X), np.maximum(X.sum(-1, keepdims=True), 0) * [[1, 1]])
    assert [w.path.split("/", 1)[1] for w in layer.weights] == ["dense/kernel", "dense/bias"]


def test_a_mixed_bfloat16_deep_block_keeps_float32_weights_and_output():
    exact = DeepBlock(3, batch_norm=True)
    mixed = DeepBlock(3, batch_norm=True, dtype="mixed_bfloat16")
    exact.build(X.shape)
    mixed.build(X.shape)
    mixed.set_weights(exact.get_weights())
    assert {w.dtype for w in mixed.weights} == {"float32"}
    assert mixed.dense.compute_dtype == "bfloat16"
    y = mixed(X, training=False)
    # The block's result comes back in float32, for the float32 layers after it.
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    # bfloat16 keeps 8 significant bits: within 1% of the float32 block.
    np.testing.assert_allclose(y, exact(X, training=False), rtol=1e-2, atol=1e-2)
    restored = DeepBlock.from_config(mixed.get_config())
    assert restored.dtype_policy.name == "mixed_bfloat16"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(units=0), "`units` must be a positive integer"),
        (dict(units=2, dropout=1.0), "`dropout`"),
    ],
)
def test_deep_block_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeepBlock(**kwargs)


@pytest.mark.parametrize(
    "layer",
    [
        CrossNet(kernel_initializer="ones", bias_initializer="ones"),
        CrossNetV2(kernel_initializer=keras.initializers.VarianceScaling(seed=3)),
        CIN(2, name="cin"),
        DeepBlock(4, dropout=0.1, batch_norm=True, seed=7),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
    # Same weights give the same outputs.
    call_args = (X,) if isinstance(layer, DeepBlock) else (X0, X)
    reference = layer(*call_args)
    restored(*call_args)
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(restored(*call_args), reference, rtol=1e-6)


def test_registry_selects_shallow_components_by_name():
    assert tuple(SHALLOW_LAYERS) == SHALLOW_COMPONENTS
    assert type(make_shallow_layer("crossnet", num_fields=2)) is CrossNet
    assert type(make_shallow_layer("crossnetv2", num_fields=2)) is CrossNetV2
    cin = make_shallow_layer("cin", num_fields=2, name="c")
    assert type(cin) is CIN and cin.num_fields == 2 and cin.name == "c"
    with pytest.raises(ValueError, match="`shallow` must be one of.*Received: shallow='fm'"):
        make_shallow_layer("fm", num_fields=2)
