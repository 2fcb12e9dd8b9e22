"""The straight-through estimator: forward 1[alpha > 0], backward identity."""

import numpy as np
import tensorflow as tf
import keras

from optfusion_tf.models.ste import straight_through_step


def test_forward_is_the_unit_step_exactly():
    alpha = np.array([-2.0, -1e-8, 0.0, 1e-8, 0.5, 3.0], dtype="float32")
    out = straight_through_step(alpha)
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    assert out.dtype == tf.float32


def test_backward_is_the_identity():
    alpha = tf.Variable([-1.0, 0.0, 2.0])
    upstream = tf.constant([3.0, -5.0, 7.0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(straight_through_step(alpha) * upstream)
    np.testing.assert_allclose(tape.gradient(loss, alpha), upstream)


def test_works_on_a_keras_variable_inside_tf_function():
    alpha = keras.Variable([0.5, -0.5, 0.25], name="alpha")

    @tf.function
    def loss_and_grad():
        with tf.GradientTape() as tape:
            c = straight_through_step(alpha)
            loss = tf.reduce_sum(c * tf.constant([1.0, 2.0, 3.0]))
        return c, tape.gradient(loss, alpha.value)

    c, grad = loss_and_grad()
    np.testing.assert_array_equal(c, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(grad, [1.0, 2.0, 3.0])
