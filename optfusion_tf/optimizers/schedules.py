"""The network's learning rate over a run: lr / min(1 + floor(epoch / decay_epochs), limit).

Keras' own schedules count in optimizer steps (`InverseTimeDecay` with `staircase=True` without a
limit, `PiecewiseConstantDecay` with one); this module only converts epochs to steps, so the
schedule is saved, loaded and resumed (the optimizer's `iterations` are checkpointed) as any
Keras schedule.
"""

from __future__ import annotations

import keras


def epoch_decayed_rate(
    learning_rate: float, decay_epochs: int, steps_per_epoch: int, limit: int = 0
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`learning_rate` during epochs 0 .. decay_epochs - 1, then learning_rate / 2 for the next
    decay_epochs epochs, / 3 for the next, ... until the divisor reaches `limit`, where it stays;
    the float itself when decay_epochs is 0 or limit is 1.

    Args:
        learning_rate: the rate of the first epochs (> 0).
        decay_epochs: epochs between two steps of the divisor (0: a constant rate).
        steps_per_epoch: optimizer steps of one epoch (>= 1), as the fit counts them.
        limit: the largest divisor (0: none, the rate keeps falling).
    """
    if decay_epochs < 0 or limit < 0 or steps_per_epoch < 1:
        raise ValueError(
            "decay_epochs and limit must be >= 0 and steps_per_epoch >= 1. Received: "
            f"decay_epochs={decay_epochs}, limit={limit}, steps_per_epoch={steps_per_epoch}"
        )
    if decay_epochs == 0 or limit == 1:
        return learning_rate
    period = decay_epochs * steps_per_epoch
    if limit == 0:
        return keras.optimizers.schedules.InverseTimeDecay(
            learning_rate, decay_steps=period, decay_rate=1.0, staircase=True
        )
    # PiecewiseConstantDecay keeps values[i] while step <= boundaries[i]: the divisor k + 1
    # starts at step k x period, as floor(step / period) does above.
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[k * period - 1 for k in range(1, limit)],
        values=[learning_rate / k for k in range(1, limit + 1)],
    )


def lowest_rate_divisor(decay_epochs: int, limit: int) -> int:
    """The divisor of `epoch_decayed_rate`'s last and lowest rate: `limit` for a decay with a
    limit, 1 for a constant rate (and for a decay without a limit, which has no last rate)."""
    return limit if decay_epochs > 0 and limit > 0 else 1
