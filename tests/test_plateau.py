"""ValidationPlateau's stop rule on recorded validation curves, and effective_patience."""

import keras
import pytest

from optfusion_tf.plateau import ValidationPlateau, effective_patience

# DeepCTR DCN on Frappe (seed 2, bench/deepctr_peer.py, 17 steps an epoch): a plateau at 0.929
# from epoch 6 to 11, then its second learning phase.
DCN_FRAPPE = [0.9009, 0.9167, 0.9217, 0.9275, 0.9287, 0.9290, 0.9286, 0.9289, 0.9287, 0.9287,
              0.9290, 0.9297, 0.9305, 0.9310, 0.9314, 0.9320]


def stop_epoch(curve, patience, factor=1.0):
    """The 1-based epoch after which the callback stops (0: never), and the learning rate."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    callback = ValidationPlateau(lambda: [], patience=patience, factor=factor, min_lr=1e-6)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(curve):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"val_auc": value})
        if model.stop_training:
            break
    return callback.stopped_epoch, float(model.optimizer.learning_rate.numpy())


@pytest.mark.parametrize(
    "patience, patience_steps, steps, expected",
    [(2, 0, 17, 2), (2, 128, 17, 8), (2, 128, 8900, 2), (2, 128, 64, 2), (2, 128, 63, 3),
     (0, 0, 1, 0), (0, 5, 1, 5), (3, 100, 20, 5)],
)
def test_effective_patience_covers_patience_steps(patience, patience_steps, steps, expected):
    assert effective_patience(patience, patience_steps, steps) == expected


def test_effective_patience_errors():
    with pytest.raises(ValueError, match="`steps_per_epoch` must be an integer >= 1"):
        effective_patience(2, 128, 0)
    with pytest.raises(ValueError, match="`patience_steps`"):
        effective_patience(2, -1, 10)


def test_a_short_plateau_of_short_epochs_does_not_stop_the_run():
    # Patience 2 stops DCN at epoch 8, on the plateau; the default steps rule (128 steps of 17:
    # 8 epochs) lets it reach epoch 12's gain and run on.
    assert stop_epoch(DCN_FRAPPE, 2) == (8, pytest.approx(1e-3))
    assert stop_epoch(DCN_FRAPPE, effective_patience(2, 128, 17)) == (0, pytest.approx(1e-3))


def test_the_learning_rate_steps_on_every_flat_epoch_and_stops_after_patience():
    stopped, lr = stop_epoch([0.5, 0.6, 0.6, 0.59, 0.58], 3, factor=0.1)
    assert stopped == 5 and lr == pytest.approx(1e-6)  # 1e-3 -> 1e-4 -> 1e-5 -> 1e-6 (floor)
