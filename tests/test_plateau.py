"""ValidationPlateau's stop rule on recorded validation curves, and effective_patience."""

import keras
import pytest

from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.training.plateau import ValidationPlateau, effective_patience

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


@pytest.mark.parametrize("steps, divisor, expected", [(17, 3, 23), (17, 1, 8), (8900, 3, 2)])
def test_patience_steps_count_at_the_full_rate(steps, divisor, expected):
    assert effective_patience(2, 128, steps, rate_divisor=divisor) == expected


# Our stacked preset on a Frappe split (split 2, seed 1) with the network's rate at 1e-3 / 3
# from epoch 7: a plateau from epoch 6 on; its best, 0.9354 at epoch 8, is tied at epoch 16.
STACKED_FRAPPE = [0.9123, 0.9249, 0.9284, 0.9318, 0.9346, 0.9351, 0.9353, 0.9354, 0.9351,
                  0.9349, 0.9349, 0.9350, 0.9351, 0.9352, 0.9353, 0.9354]


def test_a_plateau_at_a_third_of_the_rate_gets_three_times_the_steps():
    assert stop_epoch(STACKED_FRAPPE, effective_patience(2, 128, 17)) == (16, pytest.approx(1e-3))
    assert stop_epoch(STACKED_FRAPPE, effective_patience(2, 128, 17, rate_divisor=3)) == (
        0, pytest.approx(1e-3))


def test_effective_patience_errors():
    with pytest.raises(ValueError, match="`steps_per_epoch` must be an integer >= 1"):
        effective_patience(2, 128, 0)
    with pytest.raises(ValueError, match="`patience_steps`"):
        effective_patience(2, -1, 10)
    with pytest.raises(ValueError, match="`rate_divisor`"):
        effective_patience(2, 128, 10, rate_divisor=0)


def test_a_short_plateau_of_short_epochs_does_not_stop_the_run():
    # Patience 2 stops DCN at epoch 8, on the plateau; the default steps rule (128 steps of 17:
    # 8 epochs) lets it reach epoch 12's gain and run on.
    assert stop_epoch(DCN_FRAPPE, 2) == (8, pytest.approx(1e-3))
    assert stop_epoch(DCN_FRAPPE, effective_patience(2, 128, 17)) == (0, pytest.approx(1e-3))


def test_the_learning_rate_steps_on_every_flat_epoch_and_stops_after_patience():
    stopped, lr = stop_epoch([0.5, 0.6, 0.6, 0.59, 0.58], 3, factor=0.1)
    assert stopped == 5 and lr == pytest.approx(1e-6)  # 1e-3 -> 1e-4 -> 1e-5 -> 1e-6 (floor)


# A curve with every case (issue 24, item 4): gains, a flat epoch, a NaN, a tie with the best
# (not a gain), a gain after 2 flat epochs, then a plateau that stops at patience 3 after epoch
# 11 (epoch 12 would be a gain, never reached).
CURVE = [0.60, 0.65, 0.64, float("nan"), 0.66, 0.66, 0.65, 0.67, 0.66, 0.67, 0.665, 0.9]
LR0, FACTOR, MIN_LR = 1e-3, 0.5, 2e-4


def _compiled(lr: float = LR0) -> keras.Model:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(lr), "mse")
    return model


def _train(model, records, first_epoch, curve, patience=3):
    """Runs a ValidationPlateau as fit would from `first_epoch` (0-based; the epochs before it
    finished in an earlier process whose history is `records`) over `curve[first_epoch:]`.
    Returns the callback and, per epoch trained, (epoch, learning rate after it, wait, best)."""
    callback = ValidationPlateau(lambda: records, patience=patience, factor=FACTOR, min_lr=MIN_LR)
    callback.set_model(model)
    callback.on_train_begin()
    trace = []
    for epoch in range(first_epoch, len(curve)):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"val_auc": curve[epoch]})
        lr = float(model.optimizer.learning_rate.numpy())
        trace.append((epoch + 1, lr, callback.wait, callback.best))
        if model.stop_training:
            break
    return callback, trace


def test_step_floor_and_stop_on_a_recorded_curve():
    callback, trace = _train(_compiled(), [], 0, CURVE)
    assert [(e, w, b) for e, _, w, b in trace] == [
        (1, 0, 0.60), (2, 0, 0.65), (3, 1, 0.65), (4, 2, 0.65), (5, 0, 0.66), (6, 1, 0.66),
        (7, 2, 0.66), (8, 0, 0.67), (9, 1, 0.67), (10, 2, 0.67), (11, 3, 0.67),
    ]
    # x0.5 on each of the 7 flat epochs (NaN and the tie included), never below the floor.
    lrs = [lr for _, lr, _, _ in trace]
    assert lrs[:4] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])
    assert lrs[4:] == pytest.approx([2.5e-4, 2e-4, 2e-4, 2e-4, 2e-4, 2e-4, 2e-4])
    assert callback.stopped_epoch == 11


@pytest.mark.parametrize("finished", range(len(CURVE)))
def test_a_resume_after_any_epoch_continues_as_the_uninterrupted_run(finished):
    """Killed after `finished` epochs: the backup restores the learning rate the callback had
    set, epochs.json the records (plus a record of the epoch being trained when the kill came,
    which must be ignored); the resumed callback steps, counts and stops as the uninterrupted
    one, and `replay` says whether training had already ended (after epoch 11)."""
    _, whole = _train(_compiled(), [], 0, CURVE)
    assert whole[-1][0] == 11
    records = [{"epoch": e + 1, "val_auc": v} for e, v in enumerate(CURVE[:finished])]
    records.append({"epoch": finished + 1, "val_auc": 0.99})  # the epoch the kill interrupted
    probe = ValidationPlateau(lambda: records, patience=3, factor=FACTOR, min_lr=MIN_LR)
    assert probe.replay(finished) == (finished == 11)
    if finished == 11:
        return
    lr = LR0 if finished == 0 else whole[finished - 1][1]
    _, resumed = _train(_compiled(lr), records, finished, CURVE)
    # Flattened: pytest >= 9 refuses nested structures in approx.
    flat = lambda trace: [value for row in trace for value in row]  # noqa: E731
    assert flat(resumed) == pytest.approx(flat(whole[finished:]))


def test_replay_says_when_training_had_ended():
    records = [{"epoch": e + 1, "val_auc": v} for e, v in enumerate([0.6, 0.7, 0.6, 0.6])]
    plateau = ValidationPlateau(lambda: records, patience=2)
    assert [plateau.replay(n) for n in range(5)] == [False, False, False, False, True]
    assert plateau.best == 0.7 and plateau.wait == 2
    # patience 0 and 1 both stop at the first epoch without a gain, never after a gain.
    for patience in (0, 1):
        plateau = ValidationPlateau(lambda: records, patience=patience)
        assert [plateau.replay(n) for n in range(5)] == [False, False, False, True, True]


def test_every_optimizer_group_is_stepped():
    model = OptFusionModel(feature_num=10, num_fields=2, emb_dim=2, n=1, seed=0)
    model.compile(embedding_optimizer=keras.optimizers.Adam(1e-3),
                  network_optimizer=keras.optimizers.Adam(2e-3),
                  architecture_optimizer=keras.optimizers.Adam(0.1))
    callback = ValidationPlateau(lambda: [], patience=5, factor=0.1, min_lr=1e-4)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate([0.7, 0.6]):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"val_auc": value})
    lrs = [float(o.learning_rate.numpy()) for o in
           (model.embedding_optimizer, model.network_optimizer, model.architecture_optimizer)]
    assert lrs == pytest.approx([1e-4, 2e-4, 1e-2])


@pytest.mark.parametrize(
    "kwargs, message",
    [({"patience": -1}, "`patience` must be an integer >= 0"),
     ({"patience": 1.5}, "`patience` must be an integer"),
     ({"factor": 0.0}, r"`factor` must be in \(0, 1\]"),
     ({"factor": 1.5}, r"`factor` must be in \(0, 1\]"),
     ({"min_lr": -1.0}, "`min_lr` and `min_delta` must be >= 0")],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ValidationPlateau(lambda: [], **kwargs)
