"""LazyAdam: equals dense Adam when every row is in every batch, leaves absent rows untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from optfusion_tf.optimizers.lazy_adam import (
    LazyAdam,
    make_embedding_optimizer,
    resolve_embedding_optimizer,
    sum_duplicate_rows,
)

VOCAB, DIM, STEPS = 6, 3, 5
HYPER = dict(learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=1e-6)


def _sparse_grad(values: np.ndarray, ids: np.ndarray) -> tf.IndexedSlices:
    return tf.IndexedSlices(
        tf.convert_to_tensor(values), tf.convert_to_tensor(ids), tf.constant([VOCAB, DIM])
    )


def _train(optimizer, batches, densify: bool) -> keras.Variable:
    """Applies one gradient per batch `(ids, values)` to a fresh [VOCAB, DIM] table."""
    table = keras.Variable(np.arange(VOCAB * DIM, dtype="float32").reshape(VOCAB, DIM) / 10.0)
    for ids, values in batches:
        grad = _sparse_grad(values, ids)
        optimizer.apply([tf.convert_to_tensor(grad) if densify else grad], [table])
    return table


def _batches(ids_per_step, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (np.asarray(ids, dtype="int64"), rng.normal(size=(len(ids), DIM)).astype("float32"))
        for ids in ids_per_step
    ]


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_equals_dense_adam_when_every_row_is_in_every_batch(l2):
    # Every id in every batch, with duplicates (0, 2 and 5 repeat) in a changing order.
    ids = [[0, 1, 2, 3, 4, 5, 5, 0, 2, 2], [5, 4, 3, 2, 1, 0, 0], [2, 2, 2, 1, 0, 3, 4, 5]] * 2
    batches = _batches(ids[:STEPS])
    lazy = LazyAdam(**HYPER, l2=l2)
    dense = keras.optimizers.Adam(**HYPER)
    lazy_table = _train(lazy, batches, densify=False)

    # Reference: Keras Adam on the dense gradient with the coupled L2 added by hand.
    table = keras.Variable(np.arange(VOCAB * DIM, dtype="float32").reshape(VOCAB, DIM) / 10.0)
    for ids_, values in batches:
        grad = tf.convert_to_tensor(_sparse_grad(values, ids_)) + l2 * table.value
        dense.apply([grad], [table])

    np.testing.assert_allclose(lazy_table.numpy(), table.numpy(), rtol=1e-5, atol=1e-6)
    for name in ("momentum", "velocity"):
        lazy_moment = next(v for v in lazy.variables if name in v.path)
        dense_moment = next(v for v in dense.variables if name in v.path)
        np.testing.assert_allclose(lazy_moment.numpy(), dense_moment.numpy(), rtol=1e-5, atol=1e-7)


def test_dense_gradient_falls_back_to_adam_with_coupled_l2():
    batches = _batches([[0, 1, 2, 3, 4, 5]] * 3)
    lazy_table = _train(LazyAdam(**HYPER, l2=0.1), batches, densify=True)
    dense_table = _train(LazyAdam(**HYPER, l2=0.1), batches, densify=False)
    np.testing.assert_allclose(lazy_table.numpy(), dense_table.numpy(), rtol=1e-5, atol=1e-6)


def test_absent_rows_keep_weights_and_moments():
    optimizer = LazyAdam(**HYPER, l2=0.1)
    table = keras.Variable(np.ones((VOCAB, DIM), "float32"))
    first, *rest = _batches([[0, 1, 2, 3, 4, 5], [1, 3, 3], [3, 1]])
    # The first step touches every row, so every row has non-zero moments.
    optimizer.apply([_sparse_grad(first[1], first[0])], [table])
    before = [table.numpy()] + [v.numpy() for v in optimizer.variables[2:]]
    for ids, values in rest:  # then only rows 1 and 3
        optimizer.apply([_sparse_grad(values, ids)], [table])
    after = [table.numpy()] + [v.numpy() for v in optimizer.variables[2:]]
    absent, present = [0, 2, 4, 5], [1, 3]
    assert len(after) == 3  # table, momentum, velocity
    for old, new in zip(before, after):
        np.testing.assert_array_equal(new[absent], old[absent])
        assert np.all(new[present] != old[present])
    assert int(optimizer.iterations.numpy()) == 3


def test_bias_correction_uses_the_global_step():
    # Row 2 is first seen at step 3: its update uses t = 3 (as TF Addons' LazyAdam), which for
    # a first gradient g gives
    #   -lr * sqrt(1 - b2^3) / (1 - b1^3) * (1 - b1) g / (sqrt((1 - b2) g^2) + eps).
    optimizer = LazyAdam(**HYPER)
    table = keras.Variable(np.zeros((VOCAB, DIM), "float32"))
    g = np.full((1, DIM), 0.5, "float32")
    for ids in ([0], [1], [2]):
        optimizer.apply([_sparse_grad(g, np.array(ids))], [table])
    b1, b2, lr, eps = (HYPER[k] for k in ("beta_1", "beta_2", "learning_rate", "epsilon"))
    t = 3
    m, v = (1 - b1) * 0.5, (1 - b2) * 0.25
    expected = -lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(table.numpy()[2], np.full(DIM, expected), rtol=1e-5)


def test_sum_duplicate_rows():
    grad = tf.IndexedSlices(
        tf.constant([[1.0], [2.0], [3.0], [4.0]]), tf.constant([7, 3, 7, 7]), tf.constant([9, 1])
    )
    ids, values = sum_duplicate_rows(grad)
    np.testing.assert_array_equal(ids.numpy(), [7, 3])
    np.testing.assert_array_equal(values.numpy(), [[8.0], [2.0]])


def test_works_inside_tf_function():
    optimizer = LazyAdam(**HYPER)
    table = keras.Variable(np.zeros((VOCAB, DIM), "float32"))
    ((ids, values),) = _batches([[1, 1, 4]])

    @tf.function
    def step(ids, values):
        optimizer.apply([_sparse_grad(values, ids)], [table])

    step(tf.constant(ids), tf.constant(values))
    step(tf.constant(ids), tf.constant(values))
    np.testing.assert_array_equal(table.numpy()[[0, 2, 3, 5]], 0.0)
    assert np.all(table.numpy()[[1, 4]] != 0.0)


def test_config_round_trip():
    optimizer = LazyAdam(learning_rate=0.01, beta_1=0.8, epsilon=1e-8, l2=3e-6, name="emb")
    config = optimizer.get_config()
    assert config["l2"] == 3e-6 and "amsgrad" not in config
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone, LazyAdam)
    assert clone.get_config() == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(l2=-1.0), "`l2` must be a float >= 0"),
        (dict(amsgrad=True), "does not support `amsgrad`"),
        (dict(weight_decay=0.01), "does not support decoupled `weight_decay`"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LazyAdam(**kwargs)


def test_make_embedding_optimizer():
    lazy = make_embedding_optimizer("lazy_adam", 3e-4)
    dense = make_embedding_optimizer("adam", 3e-4)
    assert isinstance(lazy, LazyAdam) and lazy.name == "embedding_optimizer"
    assert type(dense) is keras.optimizers.Adam
    for optimizer in (lazy, dense):
        assert optimizer.get_config()["learning_rate"] == pytest.approx(3e-4)
        assert optimizer.epsilon == 1e-8  # torch Adam's default, as the reference
    for name in ("sgd", "auto"):
        with pytest.raises(ValueError, match=f"'lazy_adam' or 'adam'.*Received: name='{name}'"):
            make_embedding_optimizer(name, 1e-3)


@pytest.mark.parametrize(
    "name, coverage, expected",
    [
        ("auto", 0.5, "adam"),  # a batch looks up half of the table's rows
        ("auto", 0.57, "adam"),  # Frappe at batch 4096
        ("auto", 0.4999, "lazy_adam"),
        ("auto", 0.21, "lazy_adam"),  # criteo_sample at batch 256
        ("lazy_adam", 1.0, "lazy_adam"),  # a name given explicitly is kept
        ("adam", 0.0, "adam"),
    ],
)
def test_resolve_embedding_optimizer(name, coverage, expected):
    assert resolve_embedding_optimizer(name, coverage) == expected
