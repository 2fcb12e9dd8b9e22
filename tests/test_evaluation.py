"""Exact split metrics, the validation callback's hand-off to later callbacks, resume, NaN stop."""

import logging
import math
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit
from sklearn.metrics import log_loss, roc_auc_score

from optfusion_tf.training.evaluation import (
    PROBABILITY_EPSILON,
    ExactValidationMetrics,
    StopOnNaN,
    binary_metrics,
    evaluate_split,
    non_finite_weights,
    predict_logits,
)
from optfusion_tf.training.results import constant_model_warning

NUM_FIELDS = 3
VOCAB = 40


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """feature_ids int64 [rows, F] and labels float32 [rows, 1] that depend on field 0."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(rows, NUM_FIELDS)).astype(np.int64)
    labels = (rng.random(rows) < expit(ids[:, 0] / 10.0 - 2.0)).astype(np.float32)
    return ids, labels[:, None]


def _dataset(rows: int = 300, seed: int = 0, batch: int = 64) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(_data(rows, seed)).batch(batch)


def _model() -> keras.Model:
    """feature_ids [B, F] -> logits [B, 1]: embedding, flatten, dense."""
    inputs = keras.Input((NUM_FIELDS,), dtype="int64")
    x = keras.layers.Flatten()(keras.layers.Embedding(VOCAB, 4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def _linear_model(kernel: np.ndarray, bias: float) -> keras.Model:
    """logits = float(feature_ids) @ kernel + bias, with known weights."""
    inputs = keras.Input((NUM_FIELDS,), dtype="int64")
    dense = keras.layers.Dense(1)
    outputs = dense(keras.ops.cast(inputs, "float32"))
    dense.set_weights([kernel.reshape(NUM_FIELDS, 1).astype(np.float32),
                       np.array([bias], np.float32)])
    return keras.Model(inputs, outputs)


def test_evaluate_split_matches_sklearn_on_all_examples():
    # Base-40 weights: distinct id rows get distinct logits, so float32 rounding cannot change
    # the ranking (ties) between the model and this float64 reference.
    kernel, bias = np.array([1e-4, 4e-3, 0.16]), -3.28
    ids, labels = _data(300, seed=1)
    metrics = evaluate_split(_linear_model(kernel, bias), _dataset(300, seed=1, batch=64))

    logits = ids.astype(np.float64) @ kernel + bias
    probabilities = np.clip(expit(logits), PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
    assert metrics["examples"] == 300  # 4 full batches and a partial one
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels[:, 0], logits), abs=1e-9)
    assert metrics["logloss"] == pytest.approx(log_loss(labels[:, 0], probabilities), abs=1e-6)


def test_predict_logits_keeps_dataset_order():
    ids, labels = _data(130, seed=2)
    got_labels, got_logits = predict_logits(
        _linear_model(np.array([1.0, 0.0, 0.0]), 0.0), _dataset(130, seed=2, batch=32)
    )
    np.testing.assert_array_equal(got_labels, labels[:, 0])
    np.testing.assert_allclose(got_logits, ids[:, 0].astype(np.float64))


def test_a_constant_model_is_reported_loudly():
    """Issue 12: a model whose logits do not vary (PROD over 8 inputs trained one) is named in
    the log and in metrics.json's warnings, instead of exiting 0 silently."""
    labels = np.array([0, 1, 0, 1, 1, 0], np.float64)
    constant = binary_metrics(labels, np.full(6, -1.3))
    assert constant["distinct_logits"] == 1 and constant["auc"] == 0.5
    assert constant_model_warning(constant).startswith("THE MODEL IS CONSTANT: validation AUC 0.500000 with 1 distinct")
    varied = binary_metrics(labels, np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3]))
    assert varied["distinct_logits"] == 6 and constant_model_warning(varied) == ""
    # Varying logits that rank nothing (AUC exactly 0.5) are reported too.
    chance = binary_metrics(np.array([0, 1, 0, 1], np.float64), np.array([0.1, 0.1, 0.2, 0.2]))
    assert chance["auc"] == 0.5 and constant_model_warning(chance)


def test_binary_metrics_clips_saturated_probabilities():
    metrics = binary_metrics(np.array([0.0, 1.0, 1.0]), np.array([-50.0, 50.0, -60.0]))
    # The confidently wrong example costs -log(eps), not infinity.
    assert metrics["logloss"] == pytest.approx(-math.log(PROBABILITY_EPSILON) / 3, rel=1e-3)
    assert metrics["auc"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "labels, logits, message",
    [
        (np.ones(5), np.arange(5.0), "all 5 examples have label 1"),
        (np.array([0.0, 1.0, 2.0]), np.zeros(3), "Expected 0/1 labels"),
        (np.array([0.0, 1.0]), np.array([0.0, np.nan]), "1 of 2 logits are NaN"),
        (np.array([0.0, 1.0]), np.zeros(3), "as many logits as labels"),
    ],
)
def test_binary_metrics_errors(labels, logits, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(labels, logits)


def test_predict_logits_errors():
    model = _linear_model(np.zeros(NUM_FIELDS), 0.0)
    with pytest.raises(ValueError, match="dataset is empty"):
        predict_logits(model, _dataset(10).take(0))
    with pytest.raises(ValueError, match="Expected a dataset of"):
        predict_logits(model, _dataset(10).map(lambda x, y: x))
    two_outputs = keras.Model(model.inputs, keras.ops.concatenate([model.outputs[0]] * 2, axis=1))
    with pytest.raises(ValueError, match="one logit per label"):
        predict_logits(two_outputs, _dataset(10))


class _RecordLogs(keras.callbacks.Callback):
    """Keeps a copy of what the callbacks after ExactValidationMetrics receive."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(dict(logs))


def test_later_callbacks_see_exact_validation_metrics(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    model, valid = _model(), _dataset(200, seed=3)
    exact = ExactValidationMetrics(valid, history_path=tmp_path / "epochs.json")
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=5, restore_best_weights=True
    )
    checkpoint_path = str(tmp_path / "best.weights.h5")
    checkpoint = keras.callbacks.ModelCheckpoint(
        checkpoint_path, monitor="val_auc", mode="max", save_best_only=True, save_weights_only=True
    )
    recorder = _RecordLogs()
    with warnings.catch_warnings():
        # EarlyStopping and ModelCheckpoint only warn when their monitor is missing from logs.
        warnings.filterwarnings("error", message=".*(not available|only with val_auc).*")
        history = model.fit(_dataset(300), epochs=2, verbose=0, shuffle=False,
                            callbacks=[exact, stopping, checkpoint, recorder])

    aucs = [r["val_auc"] for r in exact.records]
    assert [r["epoch"] for r in exact.records] == [1, 2]
    assert [logs["val_auc"] for logs in recorder.seen] == aucs
    assert history.history["val_auc"] == aucs
    assert history.history["val_logloss"] == [r["val_logloss"] for r in exact.records]
    assert stopping.best == max(aucs) and stopping.best_epoch + 1 == exact.best["epoch"]
    assert os.path.isfile(checkpoint_path)
    # Best weights restored: the model now scores the best epoch's exact AUC.
    assert evaluate_split(model, valid)["auc"] == pytest.approx(exact.best["val_auc"], abs=1e-6)
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(summaries) == 2 and "val_auc" in summaries[0] and summaries[0].endswith(" s")


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")


def test_records_survive_a_backup_and_restore_resume(tmp_path):
    history_path, backup = tmp_path / "epochs.json", str(tmp_path / "backup")
    train, valid = _dataset(300), _dataset(200, seed=3)
    first = ExactValidationMetrics(valid, history_path=history_path)
    with pytest.raises(KeyboardInterrupt):
        _model().fit(train, epochs=4, verbose=0, shuffle=False, callbacks=[
            first, keras.callbacks.BackupAndRestore(backup), _Interrupt()])
    assert [r["epoch"] for r in first.records] == [1, 2]

    second = ExactValidationMetrics(valid, history_path=history_path)
    assert second.records == first.records  # known before fit, e.g. for a checkpoint threshold
    history = _model().fit(train, epochs=4, verbose=0, shuffle=False, callbacks=[
        second, keras.callbacks.BackupAndRestore(backup)])
    assert len(history.history["val_auc"]) == 2  # epochs 3 and 4 only: nothing redone
    assert [r["epoch"] for r in second.records] == [1, 2, 3, 4]
    assert second.records[:2] == first.records


class _CorruptWeights(keras.callbacks.Callback):
    """Makes the loss NaN from the second epoch on."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_nan_loss_stops_and_keeps_the_best_checkpoint(tmp_path):
    valid = _dataset(200, seed=3)
    exact = ExactValidationMetrics(valid)
    nan_stop = StopOnNaN()
    stopping = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max",
                                             restore_best_weights=True)
    checkpoint_path = str(tmp_path / "best.weights.h5")
    model = _model()
    model.fit(_dataset(300), epochs=4, verbose=0, shuffle=False, callbacks=[
        _CorruptWeights(), nan_stop, exact, stopping,
        keras.callbacks.ModelCheckpoint(checkpoint_path, monitor="val_auc", mode="max",
                                        save_best_only=True, save_weights_only=True)])

    assert nan_stop.stopped_at == (2, 0)
    assert "epoch 2, batch 0" in nan_stop.message
    assert len(exact.records) == 2 and math.isnan(exact.records[1]["val_auc"])
    assert exact.best["epoch"] == 1
    restored = _model()
    restored.optimizer.build(restored.trainable_variables)  # the checkpoint holds Adam's state
    restored.load_weights(checkpoint_path)
    expected = exact.records[0]["val_auc"]
    assert evaluate_split(restored, valid)["auc"] == pytest.approx(expected, abs=1e-6)
    assert evaluate_split(model, valid)["auc"] == pytest.approx(expected, abs=1e-6)


class _CorruptUnseenRow(keras.callbacks.Callback):
    """At the end of epoch 1, a NaN embedding row that no validation example looks up."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            table = self.model.layers[1].embeddings
            table.assign(tf.tensor_scatter_nd_update(
                table.value, [[VOCAB]], np.full((1, 4), np.nan, np.float32)))


def test_a_non_finite_model_is_never_the_best_checkpoint(tmp_path):
    """Issue 12, item 7: NaN weights in epoch 1 give val_auc NaN even when every validation
    prediction is finite, and a NaN first epoch is not saved (Keras saves any first epoch)."""
    valid = _dataset(200, seed=3)
    exact = ExactValidationMetrics(valid)
    checkpoint_path = str(tmp_path / "best.weights.h5")
    inputs = keras.Input((NUM_FIELDS,), dtype="int64")
    x = keras.layers.Flatten()(keras.layers.Embedding(VOCAB + 1, 4)(inputs))  # row VOCAB: unseen
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(_dataset(300), epochs=1, verbose=0, shuffle=False, callbacks=[
        _CorruptUnseenRow(), exact,
        keras.callbacks.ModelCheckpoint(checkpoint_path, monitor="val_auc", mode="max",
                                        save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=-math.inf)])
    assert math.isnan(exact.records[0]["val_auc"])
    assert not os.path.exists(checkpoint_path)
    assert non_finite_weights(model) == [model.layers[1].embeddings.path]
    assert non_finite_weights(_model()) == []


def test_stop_on_nan_is_silent_on_a_healthy_run():
    nan_stop = StopOnNaN()
    _model().fit(_dataset(100), epochs=1, verbose=0, shuffle=False, callbacks=[nan_stop])
    assert nan_stop.stopped_at is None and nan_stop.message == ""
