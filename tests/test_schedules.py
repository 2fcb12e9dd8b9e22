"""optfusion_tf/optimizers/schedules.py: the per-epoch decay of the network's learning rate."""

from __future__ import annotations

import keras
import pytest

from optfusion_tf.optimizers.schedules import epoch_decayed_rate, lowest_rate_divisor


def test_the_rate_is_divided_by_one_plus_the_finished_decay_periods():
    schedule = epoch_decayed_rate(1e-3, decay_epochs=3, steps_per_epoch=10)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 29, 30, 59, 60, 95)]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 1e-3 / 3, 1e-3 / 4])


def test_a_limit_stops_the_divisor_there():
    """limit=3: 1e-3 in epochs 0-2, 5e-4 in 3-5, then 1e-3 / 3 for good."""
    schedule = epoch_decayed_rate(1e-3, decay_epochs=3, steps_per_epoch=10, limit=3)
    steps = (0, 29, 30, 59, 60, 95, 10**6)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 1e-3 / 3, 1e-3 / 3, 1e-3 / 3])
    assert epoch_decayed_rate(1e-3, decay_epochs=3, steps_per_epoch=10, limit=1) == 1e-3


def test_no_decay_is_the_constant_itself_and_the_schedule_round_trips():
    assert epoch_decayed_rate(3e-4, decay_epochs=0, steps_per_epoch=17) == 3e-4
    optimizer = keras.optimizers.Adam(epoch_decayed_rate(1e-3, 2, 5))
    again = keras.optimizers.Adam.from_config(optimizer.get_config())
    again.iterations.assign(10)
    assert float(keras.ops.convert_to_numpy(again.learning_rate)) == pytest.approx(5e-4)
    limited = keras.optimizers.Adam(epoch_decayed_rate(1e-3, 2, 5, limit=2))
    again = keras.optimizers.Adam.from_config(limited.get_config())
    again.iterations.assign(100)
    assert float(keras.ops.convert_to_numpy(again.learning_rate)) == pytest.approx(5e-4)


@pytest.mark.parametrize("decay_epochs, steps, limit", [(-1, 10, 0), (3, 0, 0), (3, 10, -1)])
def test_bad_arguments_are_refused(decay_epochs, steps, limit):
    with pytest.raises(ValueError, match="decay_epochs and limit must be >= 0 and steps_per_epoch"):
        epoch_decayed_rate(1e-3, decay_epochs, steps, limit)


def test_the_lowest_rate_divisor_is_the_limit_of_a_decay():
    assert lowest_rate_divisor(3, 3) == 3
    assert lowest_rate_divisor(0, 3) == 1  # constant
    assert lowest_rate_divisor(3, 0) == 1  # no last rate
