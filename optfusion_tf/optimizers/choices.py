"""The names of the embedding optimizers and the learning-rate rule's one check: plain Python,
no TensorFlow, so that the scripts' flags take them before TensorFlow is imported."""

from __future__ import annotations

# The embedding optimizers by name (--embedding_optimizer): AUTO resolves to one of the others
# (optfusion_tf/optimizers/lazy_adam.py).
AUTO, LAZY_ADAM, DENSE_ADAM = "auto", "lazy_adam", "adam"
EMBEDDING_OPTIMIZERS = (AUTO, LAZY_ADAM, DENSE_ADAM)


def rates_conflict(plateau_lr_factor: float, lr_nn_decay_epochs: int) -> bool:
    """Whether a plateau step and a decay of the network's rate would both set that rate."""
    return plateau_lr_factor < 1.0 and lr_nn_decay_epochs > 0
