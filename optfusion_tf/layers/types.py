"""Type aliases shared by the layers, the fusion operations and the model."""

from typing import Any, Sequence

# A backend tensor (tf.Tensor, tf.Variable, keras.KerasTensor, ...), as keras.ops accepts it.
Tensor = Any
Shape = Sequence[int | None]
