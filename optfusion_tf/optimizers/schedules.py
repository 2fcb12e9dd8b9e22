"""The network's learning rate over a re-train: lr / (1 + floor(epoch / decay_epochs)).

Keras' own `InverseTimeDecay` with `staircase=True` counts in optimizer steps; this module only
converts epochs to steps, so the schedule is saved, loaded and resumed (the optimizer's
`iterations` are checkpointed) as any Keras schedule.
"""

from __future__ import annotations

import keras


def epoch_decayed_rate(
    learning_rate: float, decay_epochs: int, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`learning_rate` during epochs 0 .. decay_epochs - 1, then learning_rate / 2 for the next
    decay_epochs epochs, / 3 for the next, ...; the float itself when decay_epochs is 0.

    Args:
        learning_rate: the rate of the first epochs (> 0).
        decay_epochs: epochs between two steps of the divisor (0: a constant rate).
        steps_per_epoch: optimizer steps of one epoch (>= 1), as the fit counts them.
    """
    if decay_epochs < 0 or steps_per_epoch < 1:
        raise ValueError(
            "decay_epochs must be >= 0 and steps_per_epoch >= 1. "
            f"Received: decay_epochs={decay_epochs}, steps_per_epoch={steps_per_epoch}"
        )
    if decay_epochs == 0:
        return learning_rate
    return keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps=decay_epochs * steps_per_epoch, decay_rate=1.0, staircase=True
    )
