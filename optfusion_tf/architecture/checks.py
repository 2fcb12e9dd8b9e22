"""The integer- and choice-argument checks shared by the folders that may import architecture/ (architecture,
fusion, models, training, analysis; tests/test_layout.py). layers/, which imports no other
folder, has its own (`layers.types.check_positive_int`). Plain Python, no TensorFlow."""

from __future__ import annotations

from typing import Any, Sequence


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int = 1, *, wording: str | None = None) -> int:
    """Returns `value` if it is an integer (not a bool) >= `low`; else raises ValueError
    "`name` must be <wording>. Received: name=value", the wording "an integer >= low" unless
    given (e.g. "a positive integer")."""
    if not is_int(value) or value < low:
        wording = wording or f"an integer >= {low}"
        raise ValueError(f"`{name}` must be {wording}. Received: {name}={value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> Any:
    """Returns `value` if it is one of `choices`; else raises ValueError "`name` must be one of
    [choices]. Received: name=value"."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value
