"""Type aliases shared by the layers, the fusion operations and the model, and the layers'
integer-argument check (layers/ may import no other folder: architecture.checks serves the rest)."""

from typing import Any, Sequence

# A backend tensor (tf.Tensor, tf.Variable, keras.KerasTensor, ...), as keras.ops accepts it.
Tensor = Any
Shape = Sequence[int | None]


def check_positive_int(name: str, value: Any) -> None:
    """Raises ValueError unless `value` is an integer (not a bool) >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
